// The executor contract as a typed GoogleTest suite: the behaviour include/weft/core/executor.hpp promises,
// run the same way on every executor.
//
// To run it on an executor E, specialise the factory and instantiate the suite in a test file:
//
//   #include "executor_contract.hpp"
//   namespace weft::test {
//   template <>
//   struct ExecutorFactory<MyExecutor> {
//     static std::unique_ptr<MyExecutor> make(std::size_t threads) { ... }   // `threads` workers
//   };
//   INSTANTIATE_TYPED_TEST_SUITE_P(MyExecutor, ExecutorContract, ::testing::Types<MyExecutor>);
//   }  // namespace weft::test
//
// The tasks are ordinary lambdas that capture by reference and synchronise through std::latch and weft
// futures, so the executor must run them in this process. Tests that need every worker held inside a task
// (shutdown with queued work, cancelling a queued task) occupy each worker with a task blocked on a
// std::latch: it must not be able to run other tasks on that thread meanwhile.
//
// Tests sweep the worker counts in kThreadSweep (1, 2, ..., many more than cores) or kFewThreads.
#pragma once

#include "weft/core/errors.hpp"
#include "weft/core/executor.hpp"
#include "weft/core/future.hpp"

#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstddef>
#include <exception>
#include <functional>
#include <latch>
#include <limits>
#include <list>
#include <memory>
#include <numeric>
#include <stdexcept>
#include <string>
#include <thread>
#include <type_traits>
#include <utility>
#include <vector>

namespace weft::test {

/// Makes the executor under test with `threads` workers. Specialise it for each executor:
/// `static std::unique_ptr<E> make(std::size_t threads);`
template <class E>
struct ExecutorFactory;

namespace contract {

// Worker counts: one, two, and many more than cores. Tests whose outcome does not depend much on the count
// use the shorter list (starting 64 threads is slow under ThreadSanitizer).
inline constexpr std::size_t kThreadSweep[] = {1, 2, 4, 16, 64};
inline constexpr std::size_t kFewThreads[] = {1, 2, 16};
inline constexpr auto kLong = std::chrono::seconds(60);  // a safety net, never the thing measured

// An exception type no executor knows about, with a payload: it must arrive as itself.
struct ContractError : std::exception {
  explicit ContractError(int c) : code(c) {}
  const char* what() const noexcept override { return "contract error"; }
  int code;
};

// A move-only argument and result type.
struct MoveOnly {
  explicit MoveOnly(int v) : value(std::make_unique<int>(v)) {}
  std::unique_ptr<int> value;
};

// Holds `n` workers of `ex` inside tasks that block on a std::latch (which never runs other work on the
// thread) until release(). Construct it after the executor and it is destroyed first, releasing them.
template <class E>
class Occupied {
 public:
  Occupied(E& ex, std::size_t n) : started_(static_cast<std::ptrdiff_t>(n)) {
    futures_.reserve(n);
    for (std::size_t i = 0; i < n; ++i) {
      futures_.push_back(ex.submit([this, i] {
        started_.count_down();
        release_.wait();
        return i;
      }));
    }
    started_.wait();  // every worker is now inside one of these tasks
  }
  Occupied(const Occupied&) = delete;
  Occupied& operator=(const Occupied&) = delete;
  ~Occupied() {
    release();
    for (auto& f : futures_) {  // the tasks touch this object until they return
      if (f.valid()) f.wait();
    }
  }

  void release() {
    if (!released_.exchange(true)) release_.count_down();
  }

  /// Releases the workers and checks that each held task finished normally.
  void finish() {
    release();
    for (std::size_t i = 0; i < futures_.size(); ++i) EXPECT_EQ(futures_[i].get_for(kLong), i);
  }

 private:
  std::latch started_;
  std::latch release_{1};
  std::atomic<bool> released_{false};
  std::vector<Future<std::size_t>> futures_;
};

}  // namespace contract

template <class E>
class ExecutorContract : public ::testing::Test {
 protected:
  static std::unique_ptr<E> make(std::size_t threads) {
    std::unique_ptr<E> ex = ExecutorFactory<E>::make(threads);
    EXPECT_NE(ex, nullptr);
    return ex;
  }
};

TYPED_TEST_SUITE_P(ExecutorContract);

TYPED_TEST_P(ExecutorContract, SatisfiesTheConcept) {
  static_assert(weft::Executor<TypeParam>);
  auto ex = this->make(1);
  static_assert(std::is_same_v<decltype(ex->submit([] { return 1; })), Future<int>>);
  static_assert(std::is_same_v<decltype(ex->submit([] {})), Future<void>>);
  static_assert(std::is_same_v<decltype(ex->submit([](int x) { return x; }, 1)), Future<int>>);
}

TYPED_TEST_P(ExecutorContract, SubmitReturnsValues) {
  using contract::kLong;
  for (std::size_t threads : contract::kThreadSweep) {
    SCOPED_TRACE("threads=" + std::to_string(threads));
    auto ex = this->make(threads);
    std::vector<Future<int>> futures;
    for (int i = 0; i < 200; ++i) futures.push_back(ex->submit([i] { return i * i; }));
    auto with_args = ex->submit([](int a, const std::string& b, double c) { return b + std::to_string(a + int(c)); }, 1,
                                std::string("n"), 2.0);
    std::atomic<int> side{0};
    Future<void> v = ex->submit([&side] { side.store(7); });
    for (int i = 0; i < 200; ++i) EXPECT_EQ(futures[i].get_for(kLong), i * i);
    EXPECT_EQ(with_args.get_for(kLong), "n3");
    v.get_for(kLong);
    EXPECT_EQ(side.load(), 7);
  }
}

TYPED_TEST_P(ExecutorContract, SubmitDecayCopiesArguments) {
  using contract::kLong;
  for (std::size_t threads : contract::kFewThreads) {
    SCOPED_TRACE("threads=" + std::to_string(threads));
    auto ex = this->make(threads);
    std::string text = "original";
    int number = 1;
    std::latch gate(1);
    // The task reads its arguments only after the caller has changed the originals.
    auto f = ex->submit(
        [](std::latch* g, const std::string& s, const int& n) {
          g->wait();
          return s + ":" + std::to_string(n);
        },
        &gate, text, number);
    text = "changed";
    number = 2;
    gate.count_down();
    EXPECT_EQ(f.get_for(kLong), "original:1");

    // std::ref is the way to pass a reference.
    int target = 0;
    ex->submit([](int& t) { t = 5; }, std::ref(target)).get_for(kLong);
    EXPECT_EQ(target, 5);

    // A string literal decays to a pointer; an array argument to a pointer as well.
    auto lit = ex->submit([](const char* s) { return std::string(s); }, "lit");
    EXPECT_EQ(lit.get_for(kLong), "lit");
  }
}

TYPED_TEST_P(ExecutorContract, SubmitMoveOnlyArgumentsAndResults) {
  using contract::kLong;
  using contract::MoveOnly;
  for (std::size_t threads : contract::kFewThreads) {
    SCOPED_TRACE("threads=" + std::to_string(threads));
    auto ex = this->make(threads);
    auto doubled = ex->submit([](std::unique_ptr<int> p) { return *p * 2; }, std::make_unique<int>(21));
    EXPECT_EQ(doubled.get_for(kLong), 42);

    auto result = ex->submit([] { return std::make_unique<std::string>("owned"); });
    static_assert(std::is_same_v<decltype(result), Future<std::unique_ptr<std::string>>>);
    auto owned = result.get_for(kLong);
    ASSERT_NE(owned, nullptr);
    EXPECT_EQ(*owned, "owned");

    // A move-only callable, a move-only argument and a move-only result at once.
    auto passthrough = ex->submit(
        [held = std::make_unique<int>(1)](MoveOnly m) mutable {
          *m.value += *held;
          return m;
        },
        MoveOnly(9));
    MoveOnly back = passthrough.get_for(kLong);
    EXPECT_EQ(*back.value, 10);
  }
}

TYPED_TEST_P(ExecutorContract, ExceptionsReachTheFutureUnchanged) {
  using contract::ContractError;
  using contract::kLong;
  for (std::size_t threads : contract::kFewThreads) {
    SCOPED_TRACE("threads=" + std::to_string(threads));
    auto ex = this->make(threads);
    auto custom = ex->submit([]() -> int { throw ContractError(17); });
    try {
      custom.get_for(kLong);
      ADD_FAILURE() << "expected ContractError";
    } catch (const ContractError& e) {
      EXPECT_EQ(e.code, 17);
    }
    auto range = ex->submit([] { throw std::out_of_range("range"); });
    try {
      range.get_for(kLong);
      ADD_FAILURE() << "expected std::out_of_range";
    } catch (const std::out_of_range& e) {
      EXPECT_STREQ(e.what(), "range");
    }
    auto non_std = ex->submit([]() -> std::string { throw 5; });
    EXPECT_THROW(non_std.get_for(kLong), int);
    // The executor keeps working after tasks failed, on every worker.
    std::vector<Future<int>> after;
    for (std::size_t i = 0; i < 2 * threads; ++i) after.push_back(ex->submit([i] { return static_cast<int>(i); }));
    for (std::size_t i = 0; i < after.size(); ++i) EXPECT_EQ(after[i].get_for(kLong), static_cast<int>(i));
  }
}

TYPED_TEST_P(ExecutorContract, FuturesOutliveTheExecutor) {
  using contract::kLong;
  for (std::size_t threads : contract::kFewThreads) {
    SCOPED_TRACE("threads=" + std::to_string(threads));
    std::vector<Future<int>> futures;
    {
      auto ex = this->make(threads);
      for (int i = 0; i < 50; ++i) futures.push_back(ex->submit([i] { return i; }));
    }
    for (int i = 0; i < 50; ++i) EXPECT_EQ(futures[i].get_for(kLong), i);
  }
}

TYPED_TEST_P(ExecutorContract, MapReturnsResultsInInputOrder) {
  constexpr std::size_t kSizes[] = {0, 1, 7, 1000};
  constexpr std::size_t kChunks[] = {0, 1, 3, std::numeric_limits<std::size_t>::max()};
  for (std::size_t threads : contract::kThreadSweep) {
    auto ex = this->make(threads);
    for (std::size_t n : kSizes) {
      std::vector<long> items(n);
      std::iota(items.begin(), items.end(), 0L);
      std::vector<long> expected(n);
      std::transform(items.begin(), items.end(), expected.begin(), [](long x) { return x * x - 3; });
      for (std::size_t chunk : kChunks) {
        SCOPED_TRACE("threads=" + std::to_string(threads) + " n=" + std::to_string(n) +
                     " chunk=" + std::to_string(chunk));
        std::atomic<std::size_t> calls{0};
        std::vector<long> out = ex->map(
            [&calls](long x) {
              calls.fetch_add(1, std::memory_order_relaxed);
              return x * x - 3;
            },
            items, chunk);
        EXPECT_EQ(out, expected);
        EXPECT_EQ(calls.load(), n);  // every item exactly once
      }
    }
  }
}

TYPED_TEST_P(ExecutorContract, MapAcceptsOtherRangesAndResultTypes) {
  for (std::size_t threads : {std::size_t{1}, std::size_t{4}}) {
    SCOPED_TRACE("threads=" + std::to_string(threads));
    auto ex = this->make(threads);
    const std::list<int> list{5, 3, 8, 1};  // forward only: no random access
    std::vector<std::string> words =
        ex->map([](int x) { return std::string(static_cast<std::size_t>(x), 'a'); }, list, 3);
    EXPECT_EQ(words, (std::vector<std::string>{"aaaaa", "aaa", "aaaaaaaa", "a"}));
    const std::vector<std::string> in{"x", "yy", "zzz"};
    std::vector<std::size_t> sizes = ex->map([](const std::string& s) { return s.size(); }, in);
    EXPECT_EQ(sizes, (std::vector<std::size_t>{1, 2, 3}));
    auto ptrs = ex->map([](int x) { return std::make_unique<int>(x); }, std::vector<int>{1, 2});
    ASSERT_EQ(ptrs.size(), 2u);
    EXPECT_EQ(*ptrs[1], 2);
  }
}

TYPED_TEST_P(ExecutorContract, MapRethrowsTheFirstExceptionInInputOrder) {
  using contract::ContractError;
  using contract::kLong;
  constexpr std::size_t kChunks[] = {0, 1, 3};
  std::vector<int> items(1000);
  std::iota(items.begin(), items.end(), 0);
  for (std::size_t threads : contract::kThreadSweep) {
    auto ex = this->make(threads);
    for (std::size_t chunk : kChunks) {
      SCOPED_TRACE("threads=" + std::to_string(threads) + " chunk=" + std::to_string(chunk));
      // With more than one worker, item 123 fails only after items 456 and 789 already have, so completion
      // order and input order disagree.
      Promise<void> later_failed;
      Future<void> later_failed_f = later_failed.get_future();
      std::atomic<int> later{0};
      auto f = [&](int x) -> int {
        if (x == 456 || x == 789) {
          if (later.fetch_add(1) + 1 == 2) later_failed.set_value();
          throw ContractError(x);
        }
        if (x == 123) {
          if (threads > 1) (void)later_failed_f.wait_for(kLong);
          throw ContractError(x);
        }
        return x;
      };
      try {
        (void)ex->map(f, items, chunk);
        ADD_FAILURE() << "map must rethrow";
      } catch (const ContractError& e) {
        EXPECT_EQ(e.code, 123);
      }
    }
  }
}

TYPED_TEST_P(ExecutorContract, MapTouchesNothingAfterItReturns) {
  using contract::ContractError;
  for (std::size_t threads : contract::kThreadSweep) {
    SCOPED_TRACE("threads=" + std::to_string(threads));
    auto ex = this->make(threads);
    std::atomic<bool> returned{false};
    std::atomic<int> active{0};
    std::atomic<int> late{0};
    auto f = [&](const std::string& s) {
      active.fetch_add(1);
      if (returned.load()) late.fetch_add(1);
      struct Leave {
        std::atomic<int>& a;
        ~Leave() { a.fetch_sub(1); }
      } leave{active};
      const int i = std::stoi(s.substr(32));
      if (i == 40) throw ContractError(i);
      std::size_t h = 0;
      for (int k = 0; k < 200; ++k) h = h * 31 + static_cast<unsigned char>(s[static_cast<std::size_t>(k) % s.size()]);
      return h;
    };
    for (std::size_t chunk : {std::size_t{0}, std::size_t{1}, std::size_t{5}}) {
      SCOPED_TRACE("chunk=" + std::to_string(chunk));
      returned.store(false);
      // Owned on the heap and freed right after map returns: a task still reading an item would be a
      // use-after-free (AddressSanitizer), and any call at all after the return shows up in `late`.
      auto items = std::make_unique<std::vector<std::string>>();
      for (int i = 0; i < 400; ++i) {
        items->push_back(std::string(32, static_cast<char>('a' + i % 26)) + std::to_string(i));
      }
      EXPECT_THROW((void)ex->map(f, *items, chunk), ContractError);
      returned.store(true);
      EXPECT_EQ(active.load(), 0) << "a task was still running when map returned";
      items.reset();
    }
    ex->shutdown(Shutdown::drain);  // whatever map left queued runs now
    EXPECT_EQ(late.load(), 0) << "f was called after map returned";
    EXPECT_EQ(active.load(), 0);
  }
}

TYPED_TEST_P(ExecutorContract, ShutdownDrainRunsEveryQueuedTask) {
  using contract::kLong;
  for (std::size_t threads : contract::kThreadSweep) {
    SCOPED_TRACE("threads=" + std::to_string(threads));
    auto ex = this->make(threads);
    std::atomic<int> ran{0};
    contract::Occupied<TypeParam> occupied(*ex, threads);
    constexpr int kQueued = 100;
    std::vector<Future<int>> queued;
    for (int i = 0; i < kQueued; ++i) {
      queued.push_back(ex->submit([&ran, i] {
        ran.fetch_add(1);
        return i;
      }));
    }
    std::jthread stopper([&] { ex->shutdown(Shutdown::drain); });
    // Submit probes until the executor refuses them: from then on it is shutting down with work queued.
    int accepted = 0;
    bool refused = false;
    for (int attempt = 0; attempt < 10'000'000 && !refused; ++attempt) {
      try {
        (void)ex->submit([&ran] { ran.fetch_add(1); });
        ++accepted;
      } catch (const BrokenExecutor&) {
        refused = true;
      }
      std::this_thread::yield();
    }
    EXPECT_TRUE(refused) << "the executor kept accepting work after shutdown began";
    occupied.finish();
    stopper.join();  // shutdown returns once everything queued has run
    EXPECT_EQ(ran.load(), kQueued + accepted);
    for (int i = 0; i < kQueued; ++i) {
      ASSERT_TRUE(queued[i].ready());
      EXPECT_EQ(queued[i].get(), i);
    }
  }
}

TYPED_TEST_P(ExecutorContract, ShutdownCancelPendingCancelsQueuedTasks) {
  using contract::kLong;
  for (std::size_t threads : contract::kThreadSweep) {
    SCOPED_TRACE("threads=" + std::to_string(threads));
    auto ex = this->make(threads);
    std::atomic<int> ran{0};
    contract::Occupied<TypeParam> occupied(*ex, threads);
    constexpr int kQueued = 50;
    std::vector<Future<int>> queued;
    for (int i = 0; i < kQueued; ++i) {
      queued.push_back(ex->submit([&ran, i] {
        ran.fetch_add(1);
        return i;
      }));
    }
    std::jthread stopper([&] { ex->shutdown(Shutdown::cancel_pending); });
    // The queued tasks are cancelled while the running ones are still held.
    bool all_ready = true;
    for (auto& f : queued) all_ready = all_ready && f.wait_for(kLong);
    EXPECT_TRUE(all_ready) << "a queued task was neither run nor cancelled while the workers were held";
    if (all_ready) {
      for (auto& f : queued) {
        EXPECT_TRUE(f.cancelled());
        EXPECT_THROW(f.get(), Cancelled);
      }
    }
    occupied.finish();  // the tasks that were running finish normally
    stopper.join();
    EXPECT_EQ(ran.load(), 0);
    EXPECT_THROW((void)ex->submit([] {}), BrokenExecutor);
  }
}

TYPED_TEST_P(ExecutorContract, SubmitAfterShutdownThrowsBrokenExecutor) {
  for (Shutdown mode : {Shutdown::drain, Shutdown::cancel_pending}) {
    for (std::size_t threads : contract::kFewThreads) {
      SCOPED_TRACE("threads=" + std::to_string(threads));
      auto ex = this->make(threads);
      auto before = ex->submit([] { return 1; });
      ex->shutdown(mode);
      EXPECT_THROW((void)ex->submit([] { return 2; }), BrokenExecutor);
      EXPECT_THROW((void)ex->submit([](int x) { return x; }, 3), BrokenExecutor);
      EXPECT_THROW((void)ex->map([](int x) { return x; }, std::vector<int>{1, 2, 3}), BrokenExecutor);
      ex->shutdown(mode);  // idempotent
      ex->shutdown(Shutdown::drain);
      EXPECT_TRUE(before.ready());  // shutdown returned only after the task ran (or was cancelled)
      if (mode == Shutdown::drain) {
        EXPECT_EQ(before.get(), 1);
      } else if (before.cancelled()) {
        EXPECT_THROW(before.get(), Cancelled);
      } else {
        EXPECT_EQ(before.get(), 1);
      }
    }
  }
}

TYPED_TEST_P(ExecutorContract, DestructorDrains) {
  for (std::size_t threads : contract::kThreadSweep) {
    SCOPED_TRACE("threads=" + std::to_string(threads));
    constexpr int kTasks = 200;
    std::atomic<int> ran{0};
    std::vector<Future<int>> futures;
    std::latch gate(1);  // declared before the executor: its tasks use it until the executor is gone
    {
      auto ex = this->make(threads);
      // Held behind a gate opened just before destruction, so most tasks are still queued when it starts.
      for (std::size_t i = 0; i < threads; ++i) (void)ex->submit([&gate] { gate.wait(); });
      for (int i = 0; i < kTasks; ++i) {
        futures.push_back(ex->submit([&ran, i] {
          ran.fetch_add(1);
          return i;
        }));
      }
      gate.count_down();
    }
    EXPECT_EQ(ran.load(), kTasks);
    for (int i = 0; i < kTasks; ++i) {
      ASSERT_TRUE(futures[i].ready());
      EXPECT_EQ(futures[i].get(), i);
    }
  }
}

TYPED_TEST_P(ExecutorContract, CancelBeforeStartSkipsTheTask) {
  using contract::kLong;
  for (std::size_t threads : contract::kFewThreads) {
    SCOPED_TRACE("threads=" + std::to_string(threads));
    auto ex = this->make(threads);
    std::atomic<int> ran{0};
    {
      contract::Occupied<TypeParam> occupied(*ex, threads);
      auto doomed = ex->submit([&ran] { ran.fetch_add(1); });
      auto kept = ex->submit([&ran] { return ran.fetch_add(10); });
      EXPECT_TRUE(doomed.cancel());
      occupied.finish();
      EXPECT_THROW(doomed.get(), Cancelled);
      EXPECT_TRUE(kept.wait_for(kLong));
      EXPECT_FALSE(kept.cancel());  // finished: too late
      EXPECT_EQ(kept.get(), 0);
    }
    ex->shutdown(Shutdown::drain);
    EXPECT_EQ(ran.load(), 10);
  }
}

TYPED_TEST_P(ExecutorContract, TaskWaitingOnItsOwnExecutorDoesNotDeadlock) {
  using contract::kLong;
  for (std::size_t threads : contract::kThreadSweep) {
    SCOPED_TRACE("threads=" + std::to_string(threads));
    auto ex = this->make(threads);
    TypeParam& e = *ex;
    // More waiting tasks than workers: every worker ends up waiting on a task queued behind it.
    std::vector<Future<std::size_t>> outer;
    for (std::size_t i = 0; i < threads + 2; ++i) {
      outer.push_back(e.submit([&e, i] {
        Future<std::size_t> inner = e.submit([i] { return i * 2; });
        return inner.get() + 1;
      }));
    }
    for (std::size_t i = 0; i < outer.size(); ++i) EXPECT_EQ(outer[i].get_for(kLong), i * 2 + 1);

    // A chain of tasks, each waiting on the next.
    std::function<int(int)> chain = [&e, &chain](int depth) {
      if (depth == 0) return 0;
      return e.submit(chain, depth - 1).get() + 1;
    };
    EXPECT_EQ(e.submit(chain, 8).get_for(kLong), 8);

    // map() from inside a task of the same executor.
    auto inside = e.submit([&e] {
      std::vector<int> v(50);
      std::iota(v.begin(), v.end(), 0);
      std::vector<int> r = e.map([](int x) { return x + 1; }, v, 4);
      return std::accumulate(r.begin(), r.end(), 0);
    });
    EXPECT_EQ(inside.get_for(kLong), 50 * 51 / 2);
  }
}

TYPED_TEST_P(ExecutorContract, ManyConcurrentSubmitters) {
  using contract::kLong;
  constexpr long kPerSubmitter = 200;
  for (std::size_t threads : contract::kThreadSweep) {
    auto ex = this->make(threads);
    for (std::size_t submitters : {std::size_t{1}, std::size_t{2}, std::size_t{8}}) {
      SCOPED_TRACE("threads=" + std::to_string(threads) + " submitters=" + std::to_string(submitters));
      std::atomic<long> ran{0};
      std::vector<long> sums(submitters, -1);
      std::latch go(static_cast<std::ptrdiff_t>(submitters));
      {
        std::vector<std::jthread> producers;
        for (std::size_t s = 0; s < submitters; ++s) {
          producers.emplace_back([&, s] {
            go.arrive_and_wait();
            std::vector<Future<long>> futures;
            futures.reserve(kPerSubmitter);
            for (long i = 0; i < kPerSubmitter; ++i) {
              futures.push_back(ex->submit(
                  [&ran](long v) {
                    ran.fetch_add(1, std::memory_order_relaxed);
                    return v;
                  },
                  static_cast<long>(s) * kPerSubmitter + i));
            }
            long sum = 0;
            for (auto& f : futures) sum += f.get_for(kLong);
            sums[s] = sum;
          });
        }
      }
      EXPECT_EQ(ran.load(), static_cast<long>(submitters) * kPerSubmitter);
      for (std::size_t s = 0; s < submitters; ++s) {
        const long first = static_cast<long>(s) * kPerSubmitter;
        EXPECT_EQ(sums[s], kPerSubmitter * first + kPerSubmitter * (kPerSubmitter - 1) / 2) << "submitter " << s;
      }
    }
  }
}

TYPED_TEST_P(ExecutorContract, ThenRunsOnTheExecutor) {
  using contract::kLong;
  auto ex = this->make(2);
  Promise<int> p;
  auto g = p.get_future().then(*ex, [](int x) { return x * 3; });
  std::jthread producer([&] { p.set_value(4); });
  EXPECT_EQ(g.get_for(kLong), 12);
}

REGISTER_TYPED_TEST_SUITE_P(ExecutorContract, SatisfiesTheConcept, SubmitReturnsValues, SubmitDecayCopiesArguments,
                            SubmitMoveOnlyArgumentsAndResults, ExceptionsReachTheFutureUnchanged,
                            FuturesOutliveTheExecutor, MapReturnsResultsInInputOrder,
                            MapAcceptsOtherRangesAndResultTypes, MapRethrowsTheFirstExceptionInInputOrder,
                            MapTouchesNothingAfterItReturns, ShutdownDrainRunsEveryQueuedTask,
                            ShutdownCancelPendingCancelsQueuedTasks, SubmitAfterShutdownThrowsBrokenExecutor,
                            DestructorDrains, CancelBeforeStartSkipsTheTask, TaskWaitingOnItsOwnExecutorDoesNotDeadlock,
                            ManyConcurrentSubmitters, ThenRunsOnTheExecutor);

}  // namespace weft::test
