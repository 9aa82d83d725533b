// weft/core/when.hpp — combining futures: when_all, when_any, as_completed and wait(…, ReturnWhen).
//
// concurrent.futures' module functions, in C++. All of them register done-callbacks on the futures and never
// poll. The waiting ones (AsCompleted::next, wait) wait on a weft::Future internally, so inside an executor's
// worker they help run other work instead of blocking it.
#pragma once

#include <atomic>
#include <chrono>
#include <cstddef>
#include <memory>
#include <mutex>
#include <optional>
#include <stdexcept>
#include <tuple>
#include <vector>

#include "weft/core/future.hpp"

namespace weft {

namespace detail {
// Adds a done-callback to the state behind `f` without consuming `f`.
template <class T, class Fn>
void on_state_done(const Future<T>& f, Fn&& fn) {
  if (!f.valid()) throw FutureError("weft: an invalid future was passed to when_all/when_any/wait/as_completed");
  f.on_done(std::forward<Fn>(fn));
}
}  // namespace detail

/// A future that becomes ready when every future in `futures` is ready (with a value, an exception or a
/// cancellation); its value is the same futures, now ready, in the same order. Never fails itself.
/// Throws FutureError when one of them is invalid.
template <class T>
Future<std::vector<Future<T>>> when_all(std::vector<Future<T>> futures) {
  struct Ctx {
    std::vector<Future<T>> futures;
    std::atomic<std::size_t> remaining;
    Promise<std::vector<Future<T>>> promise;
    void arrive() {
      if (remaining.fetch_sub(1, std::memory_order_acq_rel) == 1) promise.set_value(std::move(futures));
    }
  };
  for (const auto& f : futures) {
    if (!f.valid()) throw FutureError("weft: when_all got an invalid future");
  }
  auto ctx = std::make_shared<Ctx>();
  const std::size_t n = futures.size();
  ctx->futures = std::move(futures);
  ctx->remaining.store(n + 1, std::memory_order_relaxed);  // +1: registration itself, so nobody moves the
                                                            // vector while this loop still reads it
  auto out = ctx->promise.get_future();
  for (std::size_t i = 0; i < n; ++i) detail::on_state_done(ctx->futures[i], [ctx] { ctx->arrive(); });
  ctx->arrive();
  return out;
}

/// when_all over futures of different types: ready when all are, with the ready futures in a tuple.
template <class... Ts>
Future<std::tuple<Future<Ts>...>> when_all(Future<Ts>... futures) {
  struct Ctx {
    std::tuple<Future<Ts>...> futures;
    std::atomic<std::size_t> remaining{sizeof...(Ts) + 1};
    Promise<std::tuple<Future<Ts>...>> promise;
    void arrive() {
      if (remaining.fetch_sub(1, std::memory_order_acq_rel) == 1) promise.set_value(std::move(futures));
    }
  };
  if ((!futures.valid() || ...)) throw FutureError("weft: when_all got an invalid future");
  auto ctx = std::make_shared<Ctx>();
  ctx->futures = std::tuple<Future<Ts>...>(std::move(futures)...);
  auto out = ctx->promise.get_future();
  std::apply([&ctx](auto&... f) { (detail::on_state_done(f, [ctx] { ctx->arrive(); }), ...); }, ctx->futures);
  ctx->arrive();
  return out;
}

/// The value of when_any: which future finished first, and all of them (that one is ready).
template <class T>
struct WhenAnyResult {
  std::size_t index;
  std::vector<Future<T>> futures;
};

/// A future that becomes ready as soon as one of `futures` is ready. Throws std::invalid_argument for an
/// empty vector and FutureError for an invalid future.
template <class T>
Future<WhenAnyResult<T>> when_any(std::vector<Future<T>> futures) {
  if (futures.empty()) throw std::invalid_argument("weft: when_any needs at least one future");
  for (const auto& f : futures) {
    if (!f.valid()) throw FutureError("weft: when_any got an invalid future");
  }
  struct Ctx {
    std::vector<Future<T>> futures;
    std::atomic<std::size_t> winner{static_cast<std::size_t>(-1)};
    std::atomic<int> gate{2};  // the winner's callback and the end of registration; the second one publishes
    Promise<WhenAnyResult<T>> promise;
    void pass() {
      if (gate.fetch_sub(1, std::memory_order_acq_rel) == 1) {
        promise.set_value(WhenAnyResult<T>{winner.load(std::memory_order_relaxed), std::move(futures)});
      }
    }
  };
  auto ctx = std::make_shared<Ctx>();
  ctx->futures = std::move(futures);
  auto out = ctx->promise.get_future();
  for (std::size_t i = 0; i < ctx->futures.size(); ++i) {
    detail::on_state_done(ctx->futures[i], [ctx, i] {
      std::size_t none = static_cast<std::size_t>(-1);
      if (ctx->winner.compare_exchange_strong(none, i, std::memory_order_acq_rel)) ctx->pass();
    });
  }
  ctx->pass();
  return out;
}

/// One element of as_completed: the position of the future in the input, and the (ready) future.
template <class T>
struct Completed {
  std::size_t index;
  Future<T> future;
};

/// Yields futures in the order they complete (concurrent.futures.as_completed). Built by as_completed().
/// Not thread-safe: one consumer.
template <class T>
class AsCompleted {
  struct Ctx {
    std::mutex mutex;
    std::vector<std::size_t> done;  // indices completed and not yet handed out (FIFO from `head`)
    std::size_t head = 0;
    std::optional<Promise<void>> waiter;  // set by next() when it has to wait
  };

 public:
  /// Takes ownership of the futures. `timeout`, if given, bounds the whole iteration from this call
  /// (as in Python): next() throws weft::Timeout when the deadline passes first.
  explicit AsCompleted(std::vector<Future<T>> futures,
                       std::optional<std::chrono::nanoseconds> timeout = std::nullopt)
      : futures_(std::move(futures)), ctx_(std::make_shared<Ctx>()) {
    if (timeout) deadline_ = detail::deadline_after(*timeout);
    for (std::size_t i = 0; i < futures_.size(); ++i) {
      detail::on_state_done(futures_[i], [ctx = ctx_, i] {
        std::optional<Promise<void>> wake;
        {
          std::lock_guard lock(ctx->mutex);
          ctx->done.push_back(i);
          wake.swap(ctx->waiter);
        }
        if (wake) wake->set_value();
      });
    }
  }

  /// Number of futures not yet returned by next().
  std::size_t remaining() const noexcept { return futures_.size() - returned_; }

  /// The next future to complete, or nullopt when all were returned. Throws weft::Timeout at the deadline.
  std::optional<Completed<T>> next() {
    if (remaining() == 0) return std::nullopt;
    for (;;) {
      Future<void> wait_on;
      {
        std::lock_guard lock(ctx_->mutex);
        if (ctx_->head < ctx_->done.size()) {
          const std::size_t i = ctx_->done[ctx_->head++];
          ++returned_;
          return Completed<T>{i, std::move(futures_[i])};
        }
        ctx_->waiter.emplace();
        wait_on = ctx_->waiter->get_future();
      }
      if (deadline_) {
        if (!wait_on.wait_until(*deadline_)) {
          std::lock_guard lock(ctx_->mutex);
          if (ctx_->head >= ctx_->done.size()) {
            ctx_->waiter.reset();  // sets BrokenPromise on wait_on, which nobody reads any more
            throw Timeout("weft: as_completed timed out");
          }
        }
      } else {
        wait_on.wait();
      }
    }
  }

  /// Input iterator over Completed<T> (for range-for). Each step calls next().
  class iterator {
   public:
    using value_type = Completed<T>;
    using difference_type = std::ptrdiff_t;
    iterator() = default;
    explicit iterator(AsCompleted* owner) : owner_(owner) { ++*this; }
    Completed<T>& operator*() { return *current_; }
    Completed<T>* operator->() { return &*current_; }
    iterator& operator++() {
      current_ = owner_->next();
      if (!current_) owner_ = nullptr;
      return *this;
    }
    void operator++(int) { ++*this; }
    bool operator==(const iterator& o) const { return owner_ == o.owner_; }

   private:
    AsCompleted* owner_ = nullptr;
    std::optional<Completed<T>> current_;
  };
  iterator begin() { return iterator(this); }
  iterator end() { return iterator(); }

 private:
  std::vector<Future<T>> futures_;
  std::shared_ptr<Ctx> ctx_;
  std::size_t returned_ = 0;
  std::optional<std::chrono::steady_clock::time_point> deadline_;
};

/// Futures in completion order: `for (auto& [i, f] : weft::as_completed(std::move(futs))) use(f.get());`
template <class T>
AsCompleted<T> as_completed(std::vector<Future<T>> futures,
                            std::optional<std::chrono::nanoseconds> timeout = std::nullopt) {
  return AsCompleted<T>(std::move(futures), timeout);
}

/// When wait() returns (concurrent.futures' FIRST_COMPLETED, FIRST_EXCEPTION, ALL_COMPLETED).
enum class ReturnWhen { first_completed, first_exception, all_completed };

/// The indices of the futures that were ready when wait() returned, and of those that were not.
struct WaitResult {
  std::vector<std::size_t> done;
  std::vector<std::size_t> not_done;
};

/// Waits until the condition holds or `timeout` passes (none: wait as long as it takes); returns which
/// futures are done. first_exception returns when any future fails with an exception (a cancellation does
/// not count), or when all are done. The futures are not consumed. Throws FutureError for an invalid future.
template <class T>
WaitResult wait(const std::vector<Future<T>>& futures, ReturnWhen when = ReturnWhen::all_completed,
                std::optional<std::chrono::nanoseconds> timeout = std::nullopt) {
  // A plain time point (max() = no limit) rather than an optional: GCC 12 warns on the optional's payload.
  const auto deadline = timeout ? detail::deadline_after(*timeout) : std::chrono::steady_clock::time_point::max();
  struct Ctx {
    std::atomic<std::size_t> remaining;
    std::atomic<bool> fired{false};
    Promise<void> promise;
    void fire() {
      if (!fired.exchange(true, std::memory_order_acq_rel)) promise.set_value();
    }
  };
  auto ctx = std::make_shared<Ctx>();
  ctx->remaining.store(futures.size(), std::memory_order_relaxed);
  Future<void> trigger = ctx->promise.get_future();
  if (futures.empty()) ctx->fire();
  for (const auto& f : futures) {
    detail::on_state_done(f, [ctx, when, s = detail::state_of(f)] {
      // The callback runs once `s` is ready; reading its flags is then race-free. `s` stays alive while
      // its own callbacks run.
      const bool last = ctx->remaining.fetch_sub(1, std::memory_order_acq_rel) == 1;
      const bool failed = s->has_exception() && !s->cancelled();
      if (last || when == ReturnWhen::first_completed || (when == ReturnWhen::first_exception && failed)) {
        ctx->fire();
      }
    });
  }
  if (timeout) {
    trigger.wait_until(deadline);
  } else {
    trigger.wait();
  }
  WaitResult result;
  for (std::size_t i = 0; i < futures.size(); ++i) (futures[i].ready() ? result.done : result.not_done).push_back(i);
  return result;
}

}  // namespace weft
