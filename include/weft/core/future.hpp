// weft/core/future.hpp — weft::Future<T> and weft::Promise<T>: the one result type of every weft executor.
//
// A Future is the consumer's end, a Promise the producer's. T may be void or move-only (not a reference).
// Like concurrent.futures.Future: wait with or without a timeout, get the value or the task's own exception
// (unchanged), cancel before the task starts, chain with then(), be told when done.
//
// Thread safety: one Future or Promise object is used by one thread at a time (like std::future); the
// shared state between them is fully thread-safe, so the Promise may live on one thread and the Future on
// another, and callbacks may be added while the value is being set.
//
// Hazard — waiting inside an executor: waiting on a future from inside a task never blocks the worker
// thread while its executor has other work: the worker runs other queued tasks of its executor until the
// future is ready (it "helps"). So a task that waits on a future of its own pool does not deadlock that pool.
// Do not hold a lock across such a wait that the helped tasks may need.
#pragma once

#include <chrono>
#include <exception>
#include <functional>
#include <type_traits>
#include <utility>

#include "weft/core/detail/deadline.hpp"
#include "weft/core/detail/shared_state.hpp"
#include "weft/core/errors.hpp"

namespace weft {

template <class T>
class Future;
template <class T>
class Promise;

namespace detail {
template <class T>
struct IsFuture : std::false_type {};
template <class T>
struct IsFuture<Future<T>> : std::true_type {
  using value_type = T;
};

template <class T>
Future<T> adopt_future(SharedState<T>* s) noexcept;
template <class T>
SharedState<T>* state_of(const Future<T>& f) noexcept;

// Calling a continuation with the value: f(T&&), or f() for T = void. `result` is the std::invoke_result
// trait itself (not its ::type), so naming it is valid even when the call is not.
template <class F, class T>
struct ValueCall {
  static constexpr bool ok = std::is_invocable_v<F&, T&&>;
  using result = std::invoke_result<F&, T&&>;
};
template <class F>
struct ValueCall<F, void> {
  static constexpr bool ok = std::is_invocable_v<F&>;
  using result = std::invoke_result<F&>;
};

// The result type of a continuation f applied to a ready Future<T>: f(T) (or f() for void) is preferred;
// f(Future<T>) is used when the value form does not fit.
template <class F, class T>
struct ContinuationTraits {
  static constexpr bool takes_value = ValueCall<F, T>::ok;
  static constexpr bool takes_future = std::is_invocable_v<F&, Future<T>&&>;
  static_assert(takes_value || takes_future,
                "then(f): f must be callable with the value (T&&, or nothing for Future<void>) or with Future<T>&&");
  using raw = typename std::conditional_t<takes_value, typename ValueCall<F, T>::result,
                                          std::invoke_result<F&, Future<T>&&>>::type;
};

// The value type of then()'s result: U when the continuation returns Future<U> (flattened), else its result.
template <class Raw>
struct Flattened {
  using type = Raw;
};
template <class U>
struct Flattened<Future<U>> {
  using type = U;
};

template <class F, class T>
decltype(auto) invoke_continuation(F& f, Future<T>&& src);

// Forwards the eventual result of `src` into `dst` (used to flatten then() callbacks that return a Future).
template <class T>
void forward_into(Future<T>&& src, Promise<T>&& dst);
}  // namespace detail

/// The producer's end of a shared state: set a value or an exception exactly once.
///
/// Thread safety: one thread at a time per Promise object. Destroying a Promise that was never satisfied
/// sets a BrokenPromise exception, so the Future never waits forever.
template <class T>
class Promise {
  static_assert(!std::is_reference_v<T>, "weft::Promise<T&> is not supported; use T* or std::reference_wrapper");

 public:
  /// Creates a fresh shared state.
  Promise() : state_(new detail::SharedState<T>()) {}
  Promise(Promise&& other) noexcept : state_(std::exchange(other.state_, nullptr)), retrieved_(other.retrieved_) {}
  Promise& operator=(Promise&& other) noexcept {
    if (this != &other) {
      abandon();
      state_ = std::exchange(other.state_, nullptr);
      retrieved_ = other.retrieved_;
    }
    return *this;
  }
  Promise(const Promise&) = delete;
  Promise& operator=(const Promise&) = delete;
  ~Promise() { abandon(); }

  /// The Future of this promise. May be called once; throws FutureError on a second call or an empty promise.
  Future<T> get_future() {
    if (state_ == nullptr || retrieved_) throw FutureError("weft: get_future() called twice or on an empty promise");
    retrieved_ = true;
    return detail::adopt_future(state_);  // takes the future's reference, counted when the state was made
  }

  /// Marks the task as started, so that cancel() no longer succeeds. Returns false when the future was already
  /// cancelled: the producer should then not run the work at all. Optional for producers that cannot be cancelled.
  [[nodiscard]] bool try_start() noexcept { return state_ != nullptr && state_->try_start(); }

  /// True when the consumer cancelled the future.
  bool cancelled() const noexcept { return state_ != nullptr && state_->cancelled(); }

  /// Sets the value (constructed from args). Returns false when the future was cancelled (the value is
  /// dropped). Throws FutureError when already satisfied.
  template <class... A>
  bool set_value(A&&... args) {
    return checked()->set_value(std::forward<A>(args)...);
  }

  /// Sets an exception (which get() will rethrow unchanged). Returns false when cancelled; FutureError when
  /// already satisfied.
  bool set_exception(std::exception_ptr e) { return checked()->set_exception(std::move(e)); }

  /// Runs f(args...) and sets its result, or the exception it threw. Returns false when cancelled.
  template <class F, class... A>
  bool set_from(F&& f, A&&... args) {
    return checked()->set_from(std::forward<F>(f), std::forward<A>(args)...);
  }

  bool valid() const noexcept { return state_ != nullptr; }

  /// For executors: waiters of this promise's future that have no WaitHook call `helper` instead of sleeping
  /// at once (see weft/core/detail/wait_hook.hpp for the lifetime rule). Call before handing out the future.
  void set_wait_helper(detail::WaitHelper* helper) noexcept {
    if (state_ != nullptr) state_->set_helper(helper);
  }

 private:
  detail::SharedState<T>* checked() const {
    if (state_ == nullptr) throw FutureError("weft: use of an empty promise");
    return state_;
  }

  void abandon() noexcept {
    if (state_ == nullptr) return;
    if (!state_->ready()) {
      try {
        state_->set_exception(std::make_exception_ptr(BrokenPromise()));
      } catch (const FutureError&) {
        // Another thread cannot satisfy this promise (one owner at a time), so only "already set" lands here.
      }
    }
    if (!retrieved_) state_->release();  // the future's reference was never handed out
    std::exchange(state_, nullptr)->release();
  }

  detail::SharedState<T>* state_;
  bool retrieved_ = false;
};

/// The consumer's end: the eventual value of a task, or the exception it threw.
///
/// Thread safety: one thread at a time per Future object (it is move-only). Everything here may race freely
/// with the producer setting the value.
template <class T>
class Future {
  static_assert(!std::is_reference_v<T>, "weft::Future<T&> is not supported; use T* or std::reference_wrapper");

 public:
  using value_type = T;

  /// An empty future: valid() is false.
  Future() noexcept = default;
  Future(Future&& other) noexcept : state_(std::exchange(other.state_, nullptr)) {}
  Future& operator=(Future&& other) noexcept {
    if (this != &other) {
      reset();
      state_ = std::exchange(other.state_, nullptr);
    }
    return *this;
  }
  Future(const Future&) = delete;
  Future& operator=(const Future&) = delete;
  ~Future() { reset(); }

  /// True when this object refers to a shared state (not default-constructed, moved from, or consumed).
  bool valid() const noexcept { return state_ != nullptr; }

  /// True when a value, an exception or a cancellation is available. Never blocks.
  bool ready() const { return checked()->ready(); }

  /// True when the future was cancelled (by cancel() or an executor's shutdown(cancel_pending)).
  bool cancelled() const { return checked()->cancelled(); }

  /// Blocks until ready. Inside an executor's worker, runs other work of that executor meanwhile.
  void wait() const { checked()->wait_until(nullptr); }

  /// Waits at most `d`. Returns ready(). Inside a worker, a helped task may make this return later than `d`.
  template <class Rep, class Period>
  bool wait_for(std::chrono::duration<Rep, Period> d) const {
    return wait_until(detail::deadline_after(d));
  }

  /// Waits until `tp` (steady clock). Returns ready().
  bool wait_until(std::chrono::steady_clock::time_point tp) const { return checked()->wait_until(&tp); }

  /// Waits, then returns the value (moved out) or rethrows the task's exception unchanged (Cancelled if it
  /// was cancelled). Consumes the future: valid() is false afterwards. Throws FutureError when !valid().
  T get() {
    checked()->wait_until(nullptr);
    Future keep(std::move(*this));  // released when get() returns, after the value was moved out
    return keep.state_->take();
  }

  /// get() with a time limit: throws weft::Timeout (and keeps the future valid) when not ready within `d`.
  template <class Rep, class Period>
  T get_for(std::chrono::duration<Rep, Period> d) {
    if (!wait_for(d)) throw Timeout("weft: Future::get_for timed out");
    return get();
  }

  /// Waits, then returns the task's exception, or null when it produced a value. Does not consume.
  std::exception_ptr exception() const {
    wait();
    return state_->has_exception() ? state_->exception() : std::exception_ptr{};
  }

  /// Cancels the task if it has not started. True when it was cancelled by this call; false when it already
  /// started or finished. A cancelled future's get() throws weft::Cancelled.
  bool cancel() { return checked()->cancel(); }

  /// Calls `fn()` exactly once when the future becomes ready — at once on this thread if it already is,
  /// otherwise on the thread that completes it. Does not consume the future. fn must be quick and should not
  /// throw (an exception goes to the unhandled-exception handler).
  template <class F>
  void on_done(F&& fn) const {
    checked()->add_callback(UniqueFunction<void()>(std::forward<F>(fn)));
  }

  /// Chains a continuation: returns a future of f's result. f is called with the value (T&&, or nothing for
  /// Future<void>) — if this future fails, f is skipped and the exception passes through — or, if it cannot
  /// take the value, with the ready Future<T>&& itself (to inspect failures). f runs on the thread that
  /// completes this future (or this thread, if already ready). If f returns a Future<U>, the result is
  /// flattened to Future<U>. Consumes this future. Cancelling the returned future before f starts skips f.
  template <class F>
  auto then(F&& f) && {
    using Raw = typename detail::ContinuationTraits<std::decay_t<F>, T>::raw;
    using R = typename detail::Flattened<Raw>::type;
    Promise<R> p;
    Future<R> out = p.get_future();
    auto* src = std::exchange(state_, nullptr);
    checked_state(src)->add_callback(
        [src, p = std::move(p), fn = std::forward<F>(f)]() mutable {
          Future<T> ready_src = detail::adopt_future(src);
          if (!p.try_start()) return;  // the continuation was cancelled
          if constexpr (detail::IsFuture<Raw>::value) {
            Future<R> inner;
            try {
              inner = detail::invoke_continuation(fn, std::move(ready_src));
            } catch (...) {
              p.set_exception(std::current_exception());
              return;
            }
            detail::forward_into(std::move(inner), std::move(p));
          } else {
            p.set_from([&]() -> decltype(auto) { return detail::invoke_continuation(fn, std::move(ready_src)); });
          }
        });
    return out;
  }

  /// Like then(f), but f runs as a task on `executor` (anything with submit(f) → Future). If the executor
  /// rejects the task (shut down, queue full), the returned future carries that error. The executor must
  /// outlive this future's completion. A Future<U> returned by f is flattened to Future<U>, as with then(f).
  template <class Executor, class F>
  auto then(Executor& executor, F&& f) && {
    using Raw = typename detail::ContinuationTraits<std::decay_t<F>, T>::raw;
    // then() flattens the Future that submit() returns; a Future returned by f itself is one level deeper.
    auto out = std::move(*this).then([ex = &executor, fn = std::forward<F>(f)](Future<T>&& src) mutable {
      return ex->submit([fn = std::move(fn), src = std::move(src)]() mutable -> decltype(auto) {
        return detail::invoke_continuation(fn, std::move(src));
      });
    });
    if constexpr (detail::IsFuture<Raw>::value) {
      return std::move(out).then([](Raw inner) { return inner; });
    } else {
      return out;
    }
  }

 private:
  friend Future detail::adopt_future<T>(detail::SharedState<T>*) noexcept;
  friend detail::SharedState<T>* detail::state_of<T>(const Future&) noexcept;

  explicit Future(detail::SharedState<T>* s) noexcept : state_(s) {}

  static detail::SharedState<T>* checked_state(detail::SharedState<T>* s) {
    if (s == nullptr) throw FutureError("weft: use of an invalid future (empty, moved from, or already consumed)");
    return s;
  }
  detail::SharedState<T>* checked() const { return checked_state(state_); }

  void reset() noexcept {
    if (state_ != nullptr) std::exchange(state_, nullptr)->release();
  }

  detail::SharedState<T>* state_ = nullptr;
};

/// A future that is already ready with `value`.
template <class T>
Future<std::decay_t<T>> make_ready_future(T&& value) {
  Promise<std::decay_t<T>> p;
  p.set_value(std::forward<T>(value));
  return p.get_future();
}

/// A ready Future<void>.
inline Future<void> make_ready_future() {
  Promise<void> p;
  p.set_value();
  return p.get_future();
}

/// A future that is already failed with `error`.
template <class T>
Future<T> make_exceptional_future(std::exception_ptr error) {
  Promise<T> p;
  p.set_exception(std::move(error));
  return p.get_future();
}

namespace detail {

template <class T>
Future<T> adopt_future(SharedState<T>* s) noexcept {
  return Future<T>(s);
}

template <class T>
SharedState<T>* state_of(const Future<T>& f) noexcept {
  return f.state_;
}

template <class F, class T>
decltype(auto) invoke_continuation(F& f, Future<T>&& src) {
  if constexpr (ContinuationTraits<F, T>::takes_value) {
    if constexpr (std::is_void_v<T>) {
      src.get();  // rethrows the source's exception, skipping f
      return std::invoke(f);
    } else {
      return std::invoke(f, src.get());
    }
  } else {
    return std::invoke(f, std::move(src));
  }
}

template <class T>
void forward_into(Future<T>&& src, Promise<T>&& dst) {
  SharedState<T>* s = state_of(src);
  if (s == nullptr) {
    dst.set_exception(std::make_exception_ptr(FutureError("weft: then(f): f returned an invalid future")));
    return;
  }
  s->add_ref();
  s->add_callback([s, dst = std::move(dst)]() mutable {
    Future<T> ready_src = adopt_future(s);
    dst.set_from([&]() -> T { return ready_src.get(); });
  });
}

}  // namespace detail
}  // namespace weft
