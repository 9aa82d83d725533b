// Waiting inside a ForkJoinPool: the case work-stealing runtimes are known to get wrong (a worker blocked in
// a wait holds its thread while the work it waits for sits in a queue nobody serves). A waiting worker of
// a ForkJoinPool must keep running other jobs, so none of these may deadlock, even on one worker:
// recursive join 10,000 levels deep, a task waiting on futures of tasks it submitted (10,000 levels),
// fib with a submit and a get per call, waits inside parallel-for bodies made with join, a wait on a Promise
// that an outside thread fulfils only after other queued jobs ran, waits on futures of other executors,
// every worker waiting at once, and timed waits that must time out on time.
//
// Every test runs under a Watchdog: a deadlock aborts with the test's name instead of hanging. No test
// sleeps to synchronise (the timed waits measure a timeout, which is the thing under test).
#include "weft/parallel/fork_join_pool.hpp"

#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <latch>
#include <list>
#include <memory>
#include <string>
#include <thread>
#include <tuple>
#include <utility>
#include <vector>

#include "../thread/pool_test_support.hpp"
#include "weft/core/errors.hpp"
#include "weft/core/future.hpp"
#include "weft/parallel/task_group.hpp"
#include "weft/thread/thread_pool.hpp"
#include "fork_join_test_support.hpp"

namespace {

using namespace weft::test::forkjoin;
using weft::ThreadPool;

#if defined(WEFT_TEST_TSAN)
// ThreadSanitizer keeps its own shadow call stack of at most 65,536 frames per thread and aborts beyond it;
// a level of these chains costs it several frames, so it runs them less deep.
constexpr int kDeep = 3'000;
#else
constexpr int kDeep = 10'000;
#endif

// ---- recursion ---------------------------------------------------------------------------------------------

// A linear chain: each level joins a trivial job with the next level. In join_chain_first the recursion is
// the first half (so every level leaves its trivial second half in the deque: 10,000 queued jobs); in
// join_chain_second it is the second half (the part a thief takes, so the chain moves between workers).
long join_chain_first(ForkJoinPool& pool, int depth) {
  if (depth == 0) return 0;
  auto [rest, one] = pool.join([&] { return join_chain_first(pool, depth - 1); }, [] { return 1L; });
  return rest + one;
}

long join_chain_second(ForkJoinPool& pool, int depth) {
  if (depth == 0) return 0;
  auto [one, rest] = pool.join([] { return 1L; }, [&] { return join_chain_second(pool, depth - 1); });
  return one + rest;
}

TEST(NestedWaits, RecursiveJoinTenThousandLevelsDeep) {
  Watchdog dog("NestedWaits.RecursiveJoinTenThousandLevelsDeep");
  for (std::size_t threads : {std::size_t{1}, std::size_t{2}}) {
    SCOPED_TRACE("threads=" + std::to_string(threads));
    ForkJoinPool pool(threads);
    EXPECT_EQ(pool.invoke([&] { return join_chain_first(pool, kDeep); }), kDeep);
    EXPECT_EQ(pool.invoke([&] { return join_chain_second(pool, kDeep); }), kDeep);
    EXPECT_EQ(join_chain_second(pool, kDeep), kDeep);  // the first level from outside
  }
}

// Each level submits the next to the same pool and waits on its future.
int future_chain(ForkJoinPool* pool, int depth) {
  if (depth == 0) return 0;
  return pool->submit(&future_chain, pool, depth - 1).get() + 1;
}

TEST(NestedWaits, FutureChainTenThousandLevelsDeep) {
  Watchdog dog("NestedWaits.FutureChainTenThousandLevelsDeep");
  for (std::size_t threads : {std::size_t{1}, std::size_t{2}}) {
    SCOPED_TRACE("threads=" + std::to_string(threads));
    ForkJoinPool pool(threads);
    EXPECT_EQ(pool.submit(&future_chain, &pool, kDeep).get_for(kSafetyNet), kDeep);
  }
}

// Both children submitted, then both awaited: the first get() finds the second child on top of the deque.
long fib_futures(ForkJoinPool* pool, int n) {
  if (n < 2) return n;
  Future<long> a = pool->submit(&fib_futures, pool, n - 1);
  Future<long> b = pool->submit(&fib_futures, pool, n - 2);
  return a.get() + b.get();
}

long fib_seq(int n) { return n < 2 ? n : fib_seq(n - 1) + fib_seq(n - 2); }

TEST(NestedWaits, FibWithASubmitAndAGetPerCall) {
  Watchdog dog("NestedWaits.FibWithASubmitAndAGetPerCall");
  ForkJoinPool one(1);
  EXPECT_EQ(one.submit(&fib_futures, &one, 20).get_for(kSafetyNet), fib_seq(20));
  one.shutdown();
  EXPECT_EQ(one.stats().executed, 2u * 10946u - 1u);  // one job per call of fib(20): 2 fib(21) - 1
  for (std::size_t threads : {std::size_t{2}, std::size_t{4}}) {
    SCOPED_TRACE("threads=" + std::to_string(threads));
    ForkJoinPool pool(threads);
    EXPECT_EQ(pool.submit(&fib_futures, &pool, static_cast<int>(scaled(20, 17))).get_for(kSafetyNet),
              fib_seq(static_cast<int>(scaled(20, 17))));
  }
}

// ---- waits inside parallel bodies ------------------------------------------------------------------------

// A parallel for made with binary join splitting.
template <class Body>
void for_each_index(ForkJoinPool& pool, int lo, int hi, const Body& body) {
  if (hi - lo == 1) {
    body(lo);
    return;
  }
  const int mid = lo + (hi - lo) / 2;
  pool.join([&] { for_each_index(pool, lo, mid, body); }, [&] { for_each_index(pool, mid, hi, body); });
}

TEST(NestedWaits, WaitsInsideParallelForBodiesMadeWithJoin) {
  Watchdog dog("NestedWaits.WaitsInsideParallelForBodiesMadeWithJoin");
  constexpr int kItems = 256;
  for (std::size_t threads : {std::size_t{1}, std::size_t{2}, std::size_t{4}, std::size_t{16}}) {
    SCOPED_TRACE("threads=" + std::to_string(threads));
    ForkJoinPool pool(threads);
    std::vector<long> out(kItems, -1);
    pool.invoke([&] {
      for_each_index(pool, 0, kItems, [&](int i) {
        long v = 0;
        switch (i % 4) {
          case 0: {  // a nested parallel for
            std::atomic<long> s{0};
            for_each_index(pool, 0, 8, [&](int j) { s.fetch_add(j); });
            v = s.load();
            break;
          }
          case 1:  // a future of the same pool
            v = pool.submit([i] { return static_cast<long>(i) * 2; }).get();
            break;
          case 2: {  // a task group
            TaskGroup g(pool);
            std::atomic<long> s{0};
            for (int j = 0; j < 4; ++j) g.spawn([&s, j] { s.fetch_add(j + 1); });
            g.wait();
            v = s.load();
            break;
          }
          default: {  // a future submitted by a sub-task, handed back and awaited here
            Future<Future<long>> outer = pool.submit([&pool, i] { return pool.submit([i] { return static_cast<long>(i); }); });
            v = outer.get().get() + 1;
          }
        }
        out[static_cast<std::size_t>(i)] = v;
      });
    });
    for (int i = 0; i < kItems; ++i) {
      const long expected = i % 4 == 0 ? 28 : i % 4 == 1 ? 2L * i : i % 4 == 2 ? 10 : i + 1L;
      EXPECT_EQ(out[static_cast<std::size_t>(i)], expected) << "item " << i;
    }
  }
}

// ---- waits on things fulfilled elsewhere ----------------------------------------------------------------

TEST(NestedWaits, WaitingWorkerKeepsRunningOtherJobsUntilAnOutsidePromiseIsKept) {
  Watchdog dog("NestedWaits.WaitingWorkerKeepsRunningOtherJobsUntilAnOutsidePromiseIsKept");
  ForkJoinPool pool(1);
  Promise<int> promise;
  Future<int> awaited = promise.get_future();
  std::latch waiting(1);
  std::atomic<bool> waiter_returned{false};
  auto w = pool.submit([&] {
    waiting.count_down();
    const int v = awaited.get() * 2;  // the only worker waits here
    waiter_returned = true;
    return v;
  });
  waiting.wait();

  // Jobs queued now can only run on the waiting worker, while it waits. Only they count these latches down,
  // and the outside thread keeps the promise only after both reached zero.
  constexpr int kFirstWave = 100;
  std::latch first_wave(kFirstWave);
  std::latch second_wave(1);
  for (int i = 0; i < kFirstWave; ++i) pool.post([&] { first_wave.count_down(); });
  std::atomic<bool> returned_too_early{false};
  std::jthread fulfiller([&] {
    first_wave.wait();
    // A second job arrives while the worker has had nothing else to do: it must wake up for it.
    pool.post([&] { second_wave.count_down(); });
    second_wave.wait();
    returned_too_early = waiter_returned.load();
    promise.set_value(21);
  });
  EXPECT_EQ(w.get_for(kSafetyNet), 42);
  fulfiller.join();
  EXPECT_FALSE(returned_too_early.load());
}

TEST(NestedWaits, WaitingWorkerRunsJobsSubmittedFromOutsideWhileItWaits) {
  Watchdog dog("NestedWaits.WaitingWorkerRunsJobsSubmittedFromOutsideWhileItWaits");
  // Waiters queued first, the jobs they wait for behind them: the one worker must take waiters and jobs from
  // the injection queue while it waits (it nests one waiter inside the other's wait).
  constexpr int kWaiters = 200;
  ForkJoinPool pool(1);
  std::vector<Promise<Future<int>>> handoff(kWaiters);
  std::vector<Future<int>> waiters;
  for (int i = 0; i < kWaiters; ++i) {
    waiters.push_back(pool.submit([f = handoff[static_cast<std::size_t>(i)].get_future()]() mutable {
      return f.get().get() + 1;
    }));
  }
  for (int i = 0; i < kWaiters; ++i) handoff[static_cast<std::size_t>(i)].set_value(pool.submit([i] { return i; }));
  for (int i = 0; i < kWaiters; ++i) EXPECT_EQ(waiters[static_cast<std::size_t>(i)].get_for(kSafetyNet), i + 1);
}

TEST(NestedWaits, TaskWaitsOnAThreadPoolFuture) {
  Watchdog dog("NestedWaits.TaskWaitsOnAThreadPoolFuture");
  ForkJoinPool fj(1);
  ThreadPool tp(1);
  // The ThreadPool's task waits on a job sitting in the ForkJoinPool worker's own deque: the worker has to
  // run it while it waits on the ThreadPool.
  auto own_deque = fj.submit([&] {
    Future<int> mine = fj.submit([] { return 5; });
    Future<int> across = tp.submit([m = std::move(mine)]() mutable { return m.get() * 3; });
    return across.get() + 1;
  });
  EXPECT_EQ(own_deque.get_for(kSafetyNet), 16);
  // The ThreadPool's task submits to the ForkJoinPool from outside (the injection queue) and waits on it.
  auto injected = fj.submit([&] {
    Future<int> across = tp.submit([&fj] { return fj.submit([] { return 7; }).get() * 2; });
    return across.get();
  });
  EXPECT_EQ(injected.get_for(kSafetyNet), 14);
  // Many rounds both ways.
  std::vector<Future<int>> rounds;
  for (int i = 0; i < 50; ++i) {
    rounds.push_back(fj.submit([&tp, &fj, i] {
      return tp.submit([&fj, i] { return fj.submit([i] { return i; }).get(); }).get() + 1;
    }));
  }
  for (int i = 0; i < 50; ++i) EXPECT_EQ(rounds[static_cast<std::size_t>(i)].get_for(kSafetyNet), i + 1);
}

TEST(NestedWaits, WaitsAcrossTwoForkJoinPoolsBothWays) {
  Watchdog dog("NestedWaits.WaitsAcrossTwoForkJoinPoolsBothWays");
  ForkJoinPool a(1);
  ForkJoinPool b(1);
  constexpr int kRounds = 100;
  std::vector<Future<int>> results;
  for (int i = 0; i < kRounds; ++i) {
    ForkJoinPool& first = i % 2 == 0 ? a : b;
    ForkJoinPool& second = i % 2 == 0 ? b : a;
    results.push_back(first.submit([&second, i] { return second.submit([i] { return i * i; }).get() + 1; }));
  }
  for (int i = 0; i < kRounds; ++i) EXPECT_EQ(results[static_cast<std::size_t>(i)].get_for(kSafetyNet), i * i + 1);
}

TEST(NestedWaits, EveryWorkerWaitingAtOnce) {
  Watchdog dog("NestedWaits.EveryWorkerWaitingAtOnce");
  for (std::size_t threads : {std::size_t{1}, std::size_t{2}, std::size_t{4}, std::size_t{16}}) {
    SCOPED_TRACE("threads=" + std::to_string(threads));
    // The promises of every round outlive the pool: a job may still be inside set_value() (past the point
    // where the future became ready) until the pool has joined its workers.
    std::list<std::vector<Promise<int>>> all_promises;
    ForkJoinPool pool(threads);
    for (int round = 0; round < 5; ++round) {
      std::vector<Promise<int>>& promises = all_promises.emplace_back(threads);
      std::latch all_waiting(static_cast<std::ptrdiff_t>(threads));
      std::vector<Future<int>> waiters;
      for (std::size_t i = 0; i < threads; ++i) {
        waiters.push_back(pool.submit([&all_waiting, f = promises[i].get_future()]() mutable {
          all_waiting.count_down();
          return f.get();
        }));
      }
      all_waiting.wait();  // every waiter has started: every worker is in a wait (or runs a waiter in one)
      // The promises are kept by jobs that only the waiting workers can run.
      for (std::size_t i = 0; i < threads; ++i) {
        pool.post([&promises, i] { promises[i].set_value(static_cast<int>(i) + 100); });
      }
      for (std::size_t i = 0; i < threads; ++i) EXPECT_EQ(waiters[i].get_for(kSafetyNet), static_cast<int>(i) + 100);
    }
    // A ring: waiter i waits on waiter i+1's future; the last one on a job submitted after all started.
    std::vector<Promise<Future<int>>> next(threads);
    std::latch all_started(static_cast<std::ptrdiff_t>(threads));
    std::vector<Future<int>> ring;
    for (std::size_t i = 0; i < threads; ++i) {
      ring.push_back(pool.submit([&all_started, f = next[i].get_future()]() mutable {
        all_started.count_down();
        return f.get().get() + 1;
      }));
    }
    all_started.wait();
    for (std::size_t i = 0; i + 1 < threads; ++i) next[i].set_value(std::move(ring[i + 1]));
    next[threads - 1].set_value(pool.submit([] { return 0; }));
    EXPECT_EQ(ring[0].get_for(kSafetyNet), static_cast<int>(threads));
  }
}

// ---- timed waits --------------------------------------------------------------------------------------------

TEST(NestedWaits, TimedWaitsInsideAWorkerTimeOutOnTime) {
  Watchdog dog("NestedWaits.TimedWaitsInsideAWorkerTimeOutOnTime");
  constexpr auto kTimeout = 50ms;
  constexpr auto kGenerous = 20s;  // an upper bound that only a lost wake-up reaches
  for (std::size_t threads : {std::size_t{1}, std::size_t{2}}) {
    for (bool busy : {false, true}) {
      SCOPED_TRACE("threads=" + std::to_string(threads) + (busy ? " with other jobs" : " idle"));
      ForkJoinPool pool(threads);
      Promise<int> never;
      std::atomic<int> others{0};
      auto f = pool.submit([&, g = never.get_future()]() mutable {
        if (busy) {
          for (int i = 0; i < 200; ++i) pool.post([&others] { others.fetch_add(1); });
        }
        const auto t0 = std::chrono::steady_clock::now();
        bool threw = false;
        try {
          (void)g.get_for(kTimeout);
        } catch (const Timeout&) {
          threw = true;
        }
        const auto t1 = std::chrono::steady_clock::now();
        const bool ready_after_wait_for = g.wait_for(1ms);
        const bool ready_after_wait_until = g.wait_until(std::chrono::steady_clock::now() + 1ms);
        return std::tuple(threw, t1 - t0, ready_after_wait_for, ready_after_wait_until, g.valid());
      });
      auto [threw, elapsed, ready1, ready2, still_valid] = f.get_for(kSafetyNet);
      EXPECT_TRUE(threw);
      EXPECT_GE(elapsed, kTimeout);
      EXPECT_LT(elapsed, kGenerous);
      EXPECT_FALSE(ready1);
      EXPECT_FALSE(ready2);
      EXPECT_TRUE(still_valid);  // get_for keeps the future on a timeout
      never.set_value(0);
      pool.shutdown();
      if (busy) {
        EXPECT_EQ(others.load(), 200);
      }
    }
  }
}

TEST(NestedWaits, TimedWaitThatSucceedsWhileOthersWait) {
  Watchdog dog("NestedWaits.TimedWaitThatSucceedsWhileOthersWait");
  ForkJoinPool pool(2);
  // Inside a worker, a timed wait on a future that becomes ready in time returns the value.
  auto f = pool.submit([&] {
    auto inner = pool.submit([] { return 3; });
    return inner.get_for(kSafetyNet);
  });
  EXPECT_EQ(f.get_for(kSafetyNet), 3);
}

}  // namespace
