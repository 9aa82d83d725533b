// Tests of weft::ThreadPool's life cycle and waits: shutdown (drain, cancel_pending, from inside a task,
// idempotence), resize under load, wait_idle, and waiting on futures from inside the pool (the pool helps
// instead of deadlocking).
#include "weft/thread/thread_pool.hpp"

#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstddef>
#include <functional>
#include <future>
#include <latch>
#include <memory>
#include <stdexcept>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "pool_test_support.hpp"
#include "weft/core/errors.hpp"
#include "weft/core/future.hpp"
#include "weft/thread/thread.hpp"

namespace {

using namespace std::chrono_literals;
using weft::Priority;
using weft::Shutdown;
using weft::ThreadPool;
using weft::ThreadPoolOptions;
using weft::test::Blocker;
using weft::test::kSafetyNet;

// ---- shutdown ------------------------------------------------------------------------------------------

TEST(ThreadPoolShutdown, DrainRunsEverythingQueued) {
  constexpr std::size_t kCapacity = 8;
  ThreadPool pool(ThreadPoolOptions{.threads = 1, .capacity = kCapacity});
  Blocker blocker(pool);
  std::atomic<int> ran{0};
  int posted = 0;
  for (; posted < 4; ++posted) pool.post([&] { ++ran; });

  // shutdown() runs on another thread while the worker is still held, so everything queued is queued
  // before the shutdown and can only run because drain runs it.
  std::thread stopper([&] { pool.shutdown(Shutdown::drain); });
  // Keep posting until the pool refuses: once the queue is full, post() blocks until the shutdown closes it
  // (and wakes the blocked producer), so this loop ends after at most kCapacity + 1 rounds.
  bool refused = false;
  for (std::size_t i = 0; i <= kCapacity && !refused; ++i) {
    try {
      pool.post([&] { ++ran; });
      ++posted;
    } catch (const weft::BrokenExecutor&) {
      refused = true;
    }
  }
  EXPECT_TRUE(refused);
  blocker.release();
  stopper.join();
  EXPECT_EQ(ran.load(), posted);
  const auto s = pool.stats();
  EXPECT_EQ(s.completed, static_cast<std::uint64_t>(posted) + 1);
  EXPECT_EQ(s.cancelled, 0u);
  EXPECT_EQ(s.threads, 0u);
}

TEST(ThreadPoolShutdown, CancelPendingCancelsQueuedTasksAndFinishesTheRunningOne) {
  ThreadPool pool(ThreadPoolOptions{.threads = 1, .aging = std::chrono::hours(1)});
  std::latch started(1);
  std::latch gate(1);
  auto running = pool.submit([&] {
    started.count_down();
    gate.wait();
    return 1;
  });
  started.wait();
  std::atomic<int> ran{0};
  std::vector<weft::Future<int>> queued;
  for (int i = 0; i < 5; ++i) {
    queued.push_back(pool.submit({.priority = i % 2 == 0 ? Priority::normal : Priority::high}, [&ran, i] {
      ++ran;
      return i;
    }));
  }
  pool.post([&ran] { ++ran; });
  pool.post({.priority = Priority::low}, [&ran] { ++ran; });

  std::thread stopper([&] { pool.shutdown(Shutdown::cancel_pending); });
  // The queued futures are cancelled by the shutdown while the worker is still held.
  for (auto& f : queued) EXPECT_THROW(f.get_for(kSafetyNet), weft::Cancelled);
  EXPECT_THROW(pool.submit([] { return 0; }), weft::BrokenExecutor);
  EXPECT_FALSE(running.ready());
  gate.count_down();
  stopper.join();
  EXPECT_EQ(running.get_for(kSafetyNet), 1);
  EXPECT_EQ(ran.load(), 0);
  const auto s = pool.stats();
  EXPECT_EQ(s.cancelled, 7u);
  EXPECT_EQ(s.completed, 1u);
  EXPECT_EQ(s.queued, 0u);
}

TEST(ThreadPoolShutdown, SubmitAndPostAfterShutdownThrowBrokenExecutor) {
  for (Shutdown mode : {Shutdown::drain, Shutdown::cancel_pending}) {
    ThreadPool pool(2);
    pool.shutdown(mode);
    EXPECT_THROW(pool.submit([] { return 1; }), weft::BrokenExecutor);
    EXPECT_THROW(pool.post([] {}), weft::BrokenExecutor);
    // A level that was never used before the shutdown takes the same path.
    EXPECT_THROW(pool.submit({.priority = Priority::highest}, [] { return 1; }), weft::BrokenExecutor);
    EXPECT_THROW(pool.post({.priority = Priority::lowest}, [] {}), weft::BrokenExecutor);
    EXPECT_THROW(pool.resize(3), weft::BrokenExecutor);
    EXPECT_THROW(pool.map([](int x) { return x; }, std::vector<int>{1, 2, 3}), weft::BrokenExecutor);
  }
}

TEST(ThreadPoolShutdown, IsIdempotent) {
  ThreadPool pool(3);
  auto f = pool.submit([] { return 1; });
  pool.shutdown();
  pool.shutdown();
  pool.shutdown(Shutdown::cancel_pending);
  EXPECT_EQ(f.get_for(kSafetyNet), 1);
  EXPECT_EQ(pool.stats().threads, 0u);
  pool.wait_idle();  // nothing left: returns at once
}  // and the destructor shuts down once more

TEST(ThreadPoolShutdown, DestructorDrains) {
  std::atomic<int> ran{0};
  std::vector<weft::Future<int>> futures;
  {
    ThreadPool pool(1);
    Blocker blocker(pool);
    for (int i = 0; i < 50; ++i) {
      futures.push_back(pool.submit([&ran, i] {
        ++ran;
        return i;
      }));
    }
    blocker.release();  // the Blocker goes first (declared last): the pool then drains what is queued
  }
  EXPECT_EQ(ran.load(), 50);
  for (int i = 0; i < 50; ++i) EXPECT_EQ(futures[i].get(), i);
}

TEST(ThreadPoolShutdown, FromInsideATaskDoesNotDeadlock) {
  for (Shutdown mode : {Shutdown::drain, Shutdown::cancel_pending}) {
    ThreadPool pool(1);
    std::latch gate(1);
    auto stopper = pool.submit([&] {
      gate.wait();
      pool.shutdown(mode);  // a worker cannot join itself: this returns, the destructor joins later
      return pool.in_pool();
    });
    std::vector<weft::Future<int>> queued;
    for (int i = 0; i < 5; ++i) queued.push_back(pool.submit([i] { return i; }));
    gate.count_down();
    EXPECT_TRUE(stopper.get_for(kSafetyNet));
    EXPECT_THROW(pool.submit([] { return 0; }), weft::BrokenExecutor);
    for (int i = 0; i < 5; ++i) {
      if (mode == Shutdown::drain) {
        EXPECT_EQ(queued[i].get_for(kSafetyNet), i);
      } else {
        EXPECT_THROW(queued[i].get_for(kSafetyNet), weft::Cancelled);
      }
    }
    pool.shutdown();  // from outside: joins the worker
    EXPECT_EQ(pool.stats().threads, 0u);
  }
}

TEST(ThreadPoolShutdown, FromInsideATaskThenDestroyed) {
  std::atomic<int> ran{0};
  {
    ThreadPool pool(2);
    std::latch both_posted(1);  // the in-task shutdown must not overtake the second post
    pool.post([&] {
      ++ran;
      both_posted.wait();
      pool.shutdown();
    });
    pool.post([&] { ++ran; });
    both_posted.count_down();
  }  // the destructor joins whatever the in-task shutdown left running
  EXPECT_EQ(ran.load(), 2);
}

// ---- resize --------------------------------------------------------------------------------------------

TEST(ThreadPoolResize, UnderLoadEveryTaskRunsExactlyOnce) {
  const std::size_t kTasks = weft::test::scaled(20000, 4000);
  ThreadPool pool(ThreadPoolOptions{.threads = 1, .max_threads = 8, .capacity = 256});
  std::vector<std::atomic<int>> runs(kTasks);
  std::latch quarter(1);
  std::latch half(1);
  std::thread producer([&] {
    for (std::size_t i = 0; i < kTasks; ++i) {
      pool.post({.priority = i % 3 == 0 ? Priority::high : Priority::normal}, [&runs, i] { runs[i].fetch_add(1); });
      if (i == kTasks / 4) quarter.count_down();
      if (i == kTasks / 2) half.count_down();
    }
  });
  quarter.wait();
  pool.resize(8);
  EXPECT_EQ(pool.threads(), 8u);
  half.wait();
  pool.resize(2);
  EXPECT_EQ(pool.threads(), 2u);
  EXPECT_EQ(pool.stats().threads, 2u);  // the retired workers have been joined
  producer.join();
  pool.wait_idle();
  std::size_t wrong = 0;
  for (std::size_t i = 0; i < kTasks; ++i) wrong += runs[i].load() != 1 ? 1 : 0;
  EXPECT_EQ(wrong, 0u);
  const auto s = pool.stats();
  EXPECT_EQ(s.completed, kTasks);
  EXPECT_EQ(s.threads, 2u);
  EXPECT_EQ(s.queued, 0u);
}

TEST(ThreadPoolResize, ThreadCountSettles) {
  ThreadPool pool(ThreadPoolOptions{.threads = 1, .max_threads = 8});
  pool.resize(8);
  pool.wait_idle();
  EXPECT_EQ(pool.stats().threads, 8u);
  pool.resize(8);  // no change
  EXPECT_EQ(pool.threads(), 8u);
  pool.resize(2);
  EXPECT_EQ(pool.stats().threads, 2u);
  pool.resize(5);
  pool.wait_idle();
  EXPECT_EQ(pool.stats().threads, 5u);
  // The regrown workers take the names of their slots.
  std::latch all(5);
  std::vector<weft::Future<std::string>> names;
  for (int i = 0; i < 5; ++i) {
    names.push_back(pool.submit([&all] {
      all.arrive_and_wait();
      return weft::this_thread::name();
    }));
  }
  std::vector<std::string> got;
  for (auto& f : names) got.push_back(f.get_for(kSafetyNet));
  std::sort(got.begin(), got.end());
  EXPECT_EQ(got, (std::vector<std::string>{"pool-0", "pool-1", "pool-2", "pool-3", "pool-4"}));
}

TEST(ThreadPoolResize, ShrinkingLetsBusyWorkersFinishTheirTask) {
  ThreadPool pool(ThreadPoolOptions{.threads = 4, .max_threads = 4});
  Blocker blocker(pool, 4);
  std::atomic<int> ran{0};
  for (int i = 0; i < 20; ++i) pool.post([&] { ++ran; });
  std::thread shrinker([&] { pool.resize(1); });  // waits for the held workers to finish their task
  blocker.release();
  shrinker.join();
  EXPECT_EQ(pool.stats().threads, 1u);
  pool.wait_idle();
  EXPECT_EQ(ran.load(), 20);
  EXPECT_EQ(pool.stats().completed, 24u);
}

TEST(ThreadPoolResize, InvalidCountsThrow) {
  ThreadPool pool(ThreadPoolOptions{.threads = 2, .max_threads = 4});
  EXPECT_THROW(pool.resize(0), std::invalid_argument);
  EXPECT_THROW(pool.resize(5), std::invalid_argument);
  EXPECT_EQ(pool.threads(), 2u);
  pool.resize(4);
  EXPECT_EQ(pool.threads(), 4u);
}

TEST(ThreadPoolResize, ResizeAndWaitIdleFromInsideATaskThrowLogicError) {
  ThreadPool pool(2);
  auto resize = pool.submit([&] { pool.resize(3); });
  auto wait = pool.submit([&] { pool.wait_idle(); });
  EXPECT_THROW(resize.get_for(kSafetyNet), std::logic_error);
  EXPECT_THROW(wait.get_for(kSafetyNet), std::logic_error);
  EXPECT_EQ(pool.threads(), 2u);
}

// ---- wait_idle -----------------------------------------------------------------------------------------

TEST(ThreadPoolWaitIdle, ReturnsOnlyWhenEverythingSubmittedHasFinished) {
  for (std::size_t threads : {1u, 2u, 8u}) {
    ThreadPool pool(threads);
    std::atomic<int> finished{0};
    constexpr int kTasks = 64;
    for (int i = 0; i < kTasks; ++i) {
      pool.post([&] {
        std::this_thread::sleep_for(200us);  // the work under test: a task that takes a while
        finished.fetch_add(1);
      });
    }
    pool.wait_idle();
    EXPECT_EQ(finished.load(), kTasks) << threads << " threads";
    EXPECT_EQ(pool.stats().queued, 0u);
    EXPECT_EQ(pool.stats().running, 0u);
  }
}

TEST(ThreadPoolWaitIdle, WaitsForTasksQueuedByTasks) {
  ThreadPool pool(2);
  constexpr int kChain = 50;
  std::atomic<int> ran{0};
  std::function<void(int)> link = [&](int left) {
    ran.fetch_add(1);
    if (left > 1) pool.post(link, left - 1);  // queued before this task ends: the pool is not idle yet
  };
  pool.post(link, kChain);
  pool.wait_idle();
  EXPECT_EQ(ran.load(), kChain);
}

TEST(ThreadPoolWaitIdle, BlocksWhileAWorkerIsHeld) {
  ThreadPool pool(2);
  auto blocker = std::make_unique<Blocker>(pool);
  std::latch about_to_wait(1);
  std::atomic<bool> released{false};
  bool released_when_returned = false;
  std::promise<void> returned;
  auto returned_future = returned.get_future();
  std::thread waiter([&] {
    about_to_wait.count_down();
    pool.wait_idle();
    released_when_returned = released.load();
    returned.set_value();
  });
  about_to_wait.wait();
  // A bounded look that cannot fail a correct pool: wait_idle() must not return while a task runs.
  EXPECT_EQ(returned_future.wait_for(50ms), std::future_status::timeout);
  released = true;
  blocker.reset();
  returned_future.get();
  waiter.join();
  EXPECT_TRUE(released_when_returned) << "wait_idle() returned while a task was still running";
}

TEST(ThreadPoolWaitIdle, OnAFreshPoolReturns) {
  for (std::size_t threads : {1u, 4u, 16u}) {
    ThreadPool pool(threads);
    pool.wait_idle();
    pool.wait_idle();
    EXPECT_EQ(pool.stats().threads, threads);
  }
}

// ---- waiting inside the pool ---------------------------------------------------------------------------

int fib(ThreadPool& pool, int n) {
  if (n < 2) return n;
  auto a = pool.submit([&pool, n] { return fib(pool, n - 1); });
  auto b = pool.submit([&pool, n] { return fib(pool, n - 2); });
  return a.get() + b.get();  // waits on this pool's own futures, from inside the pool
}

TEST(ThreadPoolHelping, NestedFuturesOfTheSamePoolDoNotDeadlock) {
  for (std::size_t threads : {1u, 2u, 4u}) {
    ThreadPool pool(threads);
    auto f = pool.submit([&pool] { return fib(pool, 15); });
    EXPECT_EQ(f.get_for(kSafetyNet), 610) << threads << " threads";
    pool.wait_idle();
    EXPECT_EQ(pool.stats().completed, 1973u);  // every call of fib(15) is one task
  }
}

TEST(ThreadPoolHelping, DeepChainOnOneWorker) {
  // Each level waits on the next: the only worker runs the whole chain on its own stack.
  ThreadPool pool(1);
  std::function<int(int)> depth = [&](int n) { return n == 0 ? 0 : 1 + pool.submit(depth, n - 1).get(); };
  EXPECT_EQ(pool.submit(depth, 40).get_for(kSafetyNet), 40);
}

// Regression: a worker whose submit found its own pool's queue full slept until a worker made room — which,
// with every worker doing that, was never.
TEST(ThreadPoolHelping, SubmitToItsOwnFullPoolDoesNotDeadlock) {
  ThreadPool pool(ThreadPoolOptions{.threads = 1, .capacity = 2, .overflow = weft::Overflow::block});
  std::atomic<int> posted{0};
  auto total = pool.submit([&pool, &posted] {
    std::vector<weft::Future<int>> parts;
    for (int i = 0; i < 50; ++i) {
      parts.push_back(pool.submit([i] { return i; }));
      pool.post([&posted] { posted.fetch_add(1); });
    }
    int sum = 0;
    for (auto& p : parts) sum += p.get();
    return sum;
  });
  EXPECT_EQ(total.get_for(kSafetyNet), 49 * 50 / 2);
  pool.wait_idle();
  EXPECT_EQ(posted.load(), 50);
  EXPECT_EQ(pool.stats().completed, 101u);
}

TEST(ThreadPoolHelping, WaitingTaskRunsOtherTasksMeanwhile) {
  ThreadPool pool(1);
  weft::Promise<int> promise;
  auto waiting = pool.submit([f = promise.get_future()]() mutable { return f.get() * 2; });
  // The only worker is inside `waiting`; these can only run because it helps while it waits.
  std::vector<weft::Future<int>> others;
  for (int i = 0; i < 10; ++i) others.push_back(pool.submit([i] { return i; }));
  for (int i = 0; i < 10; ++i) EXPECT_EQ(others[i].get_for(kSafetyNet), i);
  EXPECT_FALSE(waiting.ready());
  promise.set_value(21);
  EXPECT_EQ(waiting.get_for(kSafetyNet), 42);
}

TEST(ThreadPoolHelping, TaskWaitsOnAFutureThatAnotherPoolCompletesLater) {
  ThreadPool a(1);
  ThreadPool b(1);
  std::latch b_started(1);
  std::latch gate(1);
  auto from_b = b.submit([&] {
    b_started.count_down();
    gate.wait();
    return 7;
  });
  b_started.wait();
  auto on_a = a.submit([f = std::move(from_b)]() mutable { return f.get() * 6; });
  auto other = a.submit([] { return 1; });  // a's worker is waiting, and helps with this
  EXPECT_EQ(other.get_for(kSafetyNet), 1);
  EXPECT_FALSE(on_a.ready());
  gate.count_down();
  EXPECT_EQ(on_a.get_for(kSafetyNet), 42);
}

TEST(ThreadPoolHelping, TimedWaitInsideThePoolTimesOut) {
  ThreadPool pool(1);
  weft::Promise<int> never;
  auto f = pool.submit([g = never.get_future()]() mutable { return g.get_for(20ms); });
  EXPECT_THROW(f.get_for(kSafetyNet), weft::Timeout);
  never.set_value(0);
}

TEST(ThreadPoolHelping, WaitsAcrossTwoPoolsBothWays) {
  // Tasks of a wait on b and tasks of b wait on a, each pool with one worker: helping keeps both going.
  ThreadPool a(1);
  ThreadPool b(1);
  constexpr int kRounds = 100;
  std::vector<weft::Future<int>> results;
  for (int i = 0; i < kRounds; ++i) {
    ThreadPool& first = i % 2 == 0 ? a : b;
    ThreadPool& second = i % 2 == 0 ? b : a;
    results.push_back(first.submit([&second, i] { return second.submit([i] { return i * i; }).get() + 1; }));
  }
  for (int i = 0; i < kRounds; ++i) EXPECT_EQ(results[i].get_for(kSafetyNet), i * i + 1);
}

}  // namespace
