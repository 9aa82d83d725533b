// Stress tests of weft::ThreadPool: many producers against 1 to 64 workers, mixed priorities, back-pressure
// with a tiny queue, the reject and caller_runs policies under load, cancel racing with run, resize and
// shutdown racing with producers, nested waits on many workers, many short-lived pools, and the sleep/wake
// races (blocked producers and idle workers that must be woken, wait_idle() that must not return early).
// The wake-up tests run under a Watchdog, so that a lost wake-up aborts with its name instead of hanging.
//
// Every loop is bounded in count; sizes shrink under the sanitizers. What is checked is exact: every
// accepted task runs exactly once (or is cancelled, where the test cancels), every future has the right value.
#include "weft/thread/thread_pool.hpp"

#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <latch>
#include <memory>
#include <string>
#include <thread>
#include <tuple>
#include <utility>
#include <vector>

#include "pool_test_support.hpp"
#include "weft/core/errors.hpp"
#include "weft/core/future.hpp"

namespace {

using weft::Overflow;
using weft::Priority;
using weft::Shutdown;
using weft::ThreadPool;
using weft::ThreadPoolOptions;
using weft::test::kSafetyNet;
using weft::test::scaled;

constexpr Priority kLevels[] = {Priority::lowest, Priority::low, Priority::normal, Priority::high,
                                Priority::highest};

std::uint64_t value_of(std::size_t producer, std::size_t i) { return producer * 1'000'003u + i * 7u + 1u; }

// Runs body(p) for p in [0, n) on n threads that start together; joins them.
template <class Body>
void run_producers(std::size_t n, Body body) {
  std::latch go(static_cast<std::ptrdiff_t>(n));
  std::vector<std::thread> threads;
  threads.reserve(n);
  for (std::size_t p = 0; p < n; ++p) {
    threads.emplace_back([&, p] {
      go.arrive_and_wait();
      body(p);
    });
  }
  for (auto& t : threads) t.join();
}

// ---- the sweep: workers × producers × one or many levels ----------------------------------------------

using SweepParam = std::tuple<std::size_t, std::size_t, bool>;  // threads, producers, mixed priorities

class ThreadPoolSweep : public ::testing::TestWithParam<SweepParam> {};

std::string sweep_name(const ::testing::TestParamInfo<SweepParam>& param_info) {
  const auto& [threads, producers, mixed] = param_info.param;
  return "threads_" + std::to_string(threads) + "_producers_" + std::to_string(producers) +
         (mixed ? "_mixed" : "_normal");
}

TEST_P(ThreadPoolSweep, EveryFutureResolvesWithTheRightValue) {
  const auto [threads, producers, mixed] = GetParam();
  const std::size_t per_producer = scaled(20000, 2000);
  ThreadPool pool(ThreadPoolOptions{.threads = threads, .aging = std::chrono::microseconds(200)});
  std::atomic<std::uint64_t> posted_sum{0};
  std::vector<std::vector<weft::Future<std::uint64_t>>> futures(producers);
  run_producers(producers, [&](std::size_t p) {
    auto& mine = futures[p];
    mine.reserve(per_producer);
    for (std::size_t i = 0; i < per_producer; ++i) {
      const Priority level = mixed ? kLevels[(i + p) % 5] : Priority::normal;
      if (i % 8 == 7) {
        pool.post({.priority = level}, [&posted_sum, v = value_of(p, i)] { posted_sum.fetch_add(v); });
        mine.emplace_back();  // keeps indices aligned; checked below as "posted"
      } else {
        mine.push_back(pool.submit({.priority = level}, [v = value_of(p, i)] { return v; }));
      }
    }
  });
  std::uint64_t expected_posted = 0;
  std::size_t wrong = 0;
  for (std::size_t p = 0; p < producers; ++p) {
    for (std::size_t i = 0; i < per_producer; ++i) {
      if (i % 8 == 7) {
        expected_posted += value_of(p, i);
      } else if (futures[p][i].get_for(kSafetyNet) != value_of(p, i)) {
        ++wrong;
      }
    }
  }
  EXPECT_EQ(wrong, 0u);
  pool.wait_idle();
  EXPECT_EQ(posted_sum.load(), expected_posted);
  const auto s = pool.stats();
  EXPECT_EQ(s.completed, producers * per_producer);
  EXPECT_EQ(s.failed + s.cancelled + s.rejected, 0u);
  EXPECT_EQ(s.queued, 0u);
}

INSTANTIATE_TEST_SUITE_P(
    ThreadPoolStress, ThreadPoolSweep,
    ::testing::Combine(::testing::Values(std::size_t{1}, std::size_t{2}, std::size_t{4}, std::size_t{8},
                                         std::size_t{16}, std::size_t{64}),
                       ::testing::Values(std::size_t{1}, std::size_t{2}, std::size_t{4}), ::testing::Bool()),
    sweep_name);

// ---- overflow policies under load ----------------------------------------------------------------------

TEST(ThreadPoolStress, BackPressureWithATinyQueueLosesNothing) {
  const std::size_t per_producer = scaled(20000, 2000);
  constexpr std::size_t kProducers = 4;
  for (std::size_t threads : {1u, 2u, 8u}) {
    ThreadPool pool(ThreadPoolOptions{.threads = threads, .capacity = 8, .overflow = Overflow::block});
    std::vector<std::atomic<int>> runs(kProducers * per_producer);
    std::vector<std::vector<weft::Future<std::size_t>>> futures(kProducers);
    run_producers(kProducers, [&](std::size_t p) {
      for (std::size_t i = 0; i < per_producer; ++i) {
        const std::size_t id = p * per_producer + i;
        const Priority level = i % 3 == 0 ? Priority::high : Priority::normal;
        if (i % 2 == 0) {
          pool.post({.priority = level}, [&runs, id] { runs[id].fetch_add(1); });
        } else {
          futures[p].push_back(pool.submit({.priority = level}, [&runs, id] {
            runs[id].fetch_add(1);
            return id;
          }));
        }
      }
    });
    for (std::size_t p = 0; p < kProducers; ++p) {
      std::size_t i = 1;
      for (auto& f : futures[p]) {
        EXPECT_EQ(f.get_for(kSafetyNet), p * per_producer + i);
        i += 2;
      }
    }
    pool.wait_idle();
    std::size_t wrong = 0;
    for (auto& r : runs) wrong += r.load() != 1 ? 1 : 0;
    EXPECT_EQ(wrong, 0u) << threads << " threads";
    EXPECT_EQ(pool.stats().completed, kProducers * per_producer);
  }
}

// Regression: a producer blocked on a full queue could sleep through every later pop. A notify that found
// no producer registered left the "wake-up on its way" flag set, and the producer that went to sleep next
// (after clearing the flag too early) was then skipped by every pop. No spinning, so producers sleep often.
TEST(ThreadPoolStress, BlockedProducersAreAlwaysWoken) {
  const std::size_t rounds = scaled(40, 10);
  const std::size_t per_producer = scaled(2000, 500);
  constexpr std::size_t kProducers = 4;
  weft::test::Watchdog watchdog("ThreadPoolStress.BlockedProducersAreAlwaysWoken");
  for (std::size_t round = 0; round < rounds; ++round) {
    ThreadPool pool(ThreadPoolOptions{
        .threads = 1 + round % 2, .capacity = 1 + round % 3, .spin = std::chrono::nanoseconds(0)});
    std::atomic<std::uint64_t> ran{0};
    run_producers(kProducers, [&](std::size_t p) {
      for (std::size_t i = 0; i < per_producer; ++i) {
        pool.post({.priority = (i + p) % 2 == 0 ? Priority::normal : Priority::high}, [&ran] { ran.fetch_add(1); });
      }
    });
    pool.wait_idle();
    ASSERT_EQ(ran.load(), kProducers * per_producer) << "round " << round;
  }
}

// Regression: a worker that saw a task and cancelled its sleep left the "wake-up on its way" flag set when
// the producer's notify found nobody else registered yet; the workers that went to sleep just after that
// were then never woken by later pushes. Here the worker that took the first task blocks until all the others
// have started, so every one of the k tasks needs its own worker to be woken.
TEST(ThreadPoolStress, EveryIdleWorkerCanBeWokenForTasksThatWaitForEachOther) {
  const std::size_t rounds = scaled(300, 60);
  weft::test::Watchdog watchdog("ThreadPoolStress.EveryIdleWorkerCanBeWokenForTasksThatWaitForEachOther");
  for (std::size_t round = 0; round < rounds; ++round) {
    const std::size_t k = std::size_t{2} << (round % 3);  // 2, 4, 8 workers
    const auto spin = round % 2 == 0 ? std::chrono::nanoseconds(0) : std::chrono::nanoseconds(20000);
    ThreadPool pool(ThreadPoolOptions{.threads = k, .spin = spin});
    std::latch all_started(static_cast<std::ptrdiff_t>(k));
    std::vector<weft::Future<void>> tasks;
    for (std::size_t i = 0; i < k; ++i) tasks.push_back(pool.submit([&all_started] { all_started.arrive_and_wait(); }));
    for (auto& t : tasks) t.get_for(kSafetyNet);
  }
}

TEST(ThreadPoolStress, RejectUnderLoadAccountsForEveryTask) {
  const std::size_t per_producer = scaled(20000, 2000);
  constexpr std::size_t kProducers = 4;
  ThreadPool pool(ThreadPoolOptions{.threads = 2, .capacity = 8, .overflow = Overflow::reject});
  std::atomic<std::uint64_t> ran{0};
  std::atomic<std::uint64_t> accepted{0};
  std::atomic<std::uint64_t> refused{0};
  run_producers(kProducers, [&](std::size_t p) {
    std::vector<weft::Future<void>> mine;
    for (std::size_t i = 0; i < per_producer; ++i) {
      if ((i + p) % 2 == 0) {
        try {
          pool.post([&ran] { ran.fetch_add(1); });
          accepted.fetch_add(1);
        } catch (const weft::QueueFull&) {
          refused.fetch_add(1);
        }
      } else {
        mine.push_back(pool.submit([&ran] { ran.fetch_add(1); }));
      }
    }
    for (auto& f : mine) {
      try {
        f.get_for(kSafetyNet);
        accepted.fetch_add(1);
      } catch (const weft::QueueFull&) {
        refused.fetch_add(1);
      }
    }
  });
  pool.wait_idle();
  EXPECT_EQ(accepted.load() + refused.load(), kProducers * per_producer);
  EXPECT_EQ(ran.load(), accepted.load());
  const auto s = pool.stats();
  EXPECT_EQ(s.rejected, refused.load());
  EXPECT_EQ(s.completed, accepted.load());
}

TEST(ThreadPoolStress, CallerRunsUnderLoadRunsEverythingOnce) {
  const std::size_t per_producer = scaled(20000, 2000);
  constexpr std::size_t kProducers = 4;
  ThreadPool pool(ThreadPoolOptions{.threads = 2, .capacity = 8, .overflow = Overflow::caller_runs});
  std::vector<std::atomic<int>> runs(kProducers * per_producer);
  std::atomic<std::uint64_t> on_producers{0};
  run_producers(kProducers, [&](std::size_t p) {
    const auto me = std::this_thread::get_id();
    for (std::size_t i = 0; i < per_producer; ++i) {
      const std::size_t id = p * per_producer + i;
      pool.post([&, id, me] {
        runs[id].fetch_add(1);
        if (std::this_thread::get_id() == me) on_producers.fetch_add(1);
      });
    }
  });
  pool.wait_idle();
  std::size_t wrong = 0;
  for (auto& r : runs) wrong += r.load() != 1 ? 1 : 0;
  EXPECT_EQ(wrong, 0u);
  EXPECT_EQ(pool.stats().completed, kProducers * per_producer);
  EXPECT_EQ(pool.stats().rejected, 0u);
  // Four producers against a queue of 8 and two workers: some tasks ran on their producers. Not asserted to be
  // non-zero (a fast pool may keep up), only reported.
  RecordProperty("ran_on_producers", std::to_string(on_producers.load()));
}

// ---- cancel, resize and shutdown racing with the workers -----------------------------------------------

TEST(ThreadPoolStress, CancelRacesWithRunExactlyOneWins) {
  const std::size_t kTasks = scaled(20000, 3000);
  ThreadPool pool(4);
  std::vector<std::atomic<int>> ran(kTasks);
  std::vector<weft::Future<std::size_t>> futures;
  std::vector<bool> cancelled(kTasks);
  futures.reserve(kTasks);
  for (std::size_t i = 0; i < kTasks; ++i) {
    futures.push_back(pool.submit([&ran, i] {
      ran[i].fetch_add(1);
      return i;
    }));
    if (i % 2 == 0) cancelled[i] = futures.back().cancel();  // races with a worker starting it
  }
  std::size_t inconsistent = 0;
  std::uint64_t cancels = 0;
  for (std::size_t i = 0; i < kTasks; ++i) {
    if (cancelled[i]) {
      ++cancels;
      try {
        futures[i].get_for(kSafetyNet);
        ++inconsistent;
      } catch (const weft::Cancelled&) {
      }
    } else {
      inconsistent += futures[i].get_for(kSafetyNet) != i ? 1 : 0;
    }
  }
  pool.wait_idle();
  for (std::size_t i = 0; i < kTasks; ++i) inconsistent += ran[i].load() != (cancelled[i] ? 0 : 1) ? 1 : 0;
  EXPECT_EQ(inconsistent, 0u);
  const auto s = pool.stats();
  EXPECT_EQ(s.cancelled, cancels);
  EXPECT_EQ(s.completed, kTasks - cancels);
}

TEST(ThreadPoolStress, ResizeRepeatedlyWhileProducersSubmit) {
  const std::size_t per_producer = scaled(20000, 2000);
  constexpr std::size_t kProducers = 2;
  ThreadPool pool(ThreadPoolOptions{.threads = 2, .max_threads = 16, .capacity = 64});
  std::vector<std::atomic<int>> runs(kProducers * per_producer);
  std::atomic<bool> producing{true};
  std::thread resizer([&] {
    const std::size_t sizes[] = {8, 1, 16, 3, 5, 2, 12, 1, 4};
    // Bounded: at most 200 resizes, fewer if the producers finish first.
    for (std::size_t round = 0; round < 200 && producing.load(); ++round) pool.resize(sizes[round % 9]);
  });
  run_producers(kProducers, [&](std::size_t p) {
    for (std::size_t i = 0; i < per_producer; ++i) {
      const std::size_t id = p * per_producer + i;
      pool.post({.priority = kLevels[i % 5]}, [&runs, id] { runs[id].fetch_add(1); });
    }
  });
  producing = false;
  resizer.join();
  pool.wait_idle();
  std::size_t wrong = 0;
  for (auto& r : runs) wrong += r.load() != 1 ? 1 : 0;
  EXPECT_EQ(wrong, 0u);
  EXPECT_EQ(pool.stats().threads, pool.threads());
  EXPECT_EQ(pool.stats().completed, kProducers * per_producer);
}

TEST(ThreadPoolStress, ShutdownRacesWithProducers) {
  const std::size_t rounds = scaled(40, 10);
  const std::size_t per_producer = scaled(5000, 500);
  constexpr std::size_t kProducers = 3;
  for (std::size_t round = 0; round < rounds; ++round) {
    const Shutdown mode = round % 2 == 0 ? Shutdown::drain : Shutdown::cancel_pending;
    ThreadPool pool(ThreadPoolOptions{.threads = 1 + round % 4, .capacity = 32});
    std::atomic<std::uint64_t> ran{0};
    std::vector<std::vector<weft::Future<std::size_t>>> futures(kProducers);
    std::latch some_queued(static_cast<std::ptrdiff_t>(kProducers));
    std::thread stopper([&] {
      some_queued.wait();
      pool.shutdown(mode);
    });
    run_producers(kProducers, [&](std::size_t p) {
      bool counted = false;
      for (std::size_t i = 0; i < per_producer; ++i) {
        if (i == 16) {
          some_queued.count_down();
          counted = true;
        }
        try {
          futures[p].push_back(pool.submit({.priority = kLevels[i % 5]}, [&ran, i] {
            ran.fetch_add(1);
            return i;
          }));
        } catch (const weft::BrokenExecutor&) {
          break;
        }
      }
      if (!counted) some_queued.count_down();
    });
    stopper.join();
    std::uint64_t values = 0;
    std::uint64_t cancels = 0;
    std::size_t wrong = 0;
    for (auto& mine : futures) {
      for (std::size_t i = 0; i < mine.size(); ++i) {
        try {
          wrong += mine[i].get_for(kSafetyNet) != i ? 1 : 0;
          ++values;
        } catch (const weft::Cancelled&) {
          ++cancels;
        }
      }
    }
    EXPECT_EQ(wrong, 0u);
    EXPECT_EQ(ran.load(), values) << "round " << round;
    if (mode == Shutdown::drain) {
      EXPECT_EQ(cancels, 0u) << "round " << round;
    }
    const auto s = pool.stats();
    EXPECT_EQ(s.completed, values);
    EXPECT_EQ(s.cancelled, cancels);
    EXPECT_EQ(s.threads, 0u);
  }
}

TEST(ThreadPoolStress, ManyShortLivedPools) {
  const std::size_t pools = scaled(200, 60);
  std::atomic<std::uint64_t> ran{0};
  std::uint64_t submitted = 0;
  for (std::size_t n = 0; n < pools; ++n) {
    ThreadPool pool(ThreadPoolOptions{.threads = 1 + n % 8, .name = "short"});
    const std::size_t tasks = n % 5 == 0 ? 0 : 1 + n % 17;  // some pools never get a task
    for (std::size_t i = 0; i < tasks; ++i) pool.post([&ran] { ran.fetch_add(1); });
    submitted += tasks;
    if (n % 3 == 0) pool.resize(1 + (n / 3) % 8);
  }  // each destructor drains and joins, while its workers may still be starting
  EXPECT_EQ(ran.load(), submitted);
}

TEST(ThreadPoolStress, ManyShortLivedPoolsCancelledWhileBusy) {
  const std::size_t pools = scaled(100, 30);
  for (std::size_t n = 0; n < pools; ++n) {
    ThreadPool pool(1 + n % 4);
    std::atomic<std::uint64_t> ran{0};
    std::vector<weft::Future<void>> futures;
    for (std::size_t i = 0; i < 64; ++i) futures.push_back(pool.submit([&ran] { ran.fetch_add(1); }));
    pool.shutdown(Shutdown::cancel_pending);
    std::uint64_t cancels = 0;
    for (auto& f : futures) {
      try {
        f.get_for(kSafetyNet);
      } catch (const weft::Cancelled&) {
        ++cancels;
      }
    }
    EXPECT_EQ(ran.load() + cancels, 64u);
    EXPECT_EQ(pool.stats().cancelled, cancels);
  }
}

// ---- waiting inside the pool, concurrently -------------------------------------------------------------

std::uint64_t fib(ThreadPool& pool, int n) {
  if (n < 2) return static_cast<std::uint64_t>(n);
  const Priority level = n % 2 == 0 ? Priority::high : Priority::normal;
  auto a = pool.submit({.priority = level}, [&pool, n] { return fib(pool, n - 1); });
  auto b = pool.submit([&pool, n] { return fib(pool, n - 2); });
  return a.get() + b.get();
}

TEST(ThreadPoolStress, NestedWaitsOnManyWorkers) {
  const int n = weft::test::kSanitized ? 15 : 18;
  const std::uint64_t expected = n == 15 ? 610u : 2584u;
  const std::uint64_t calls = n == 15 ? 1973u : 8361u;  // 2·fib(n + 1) − 1: each call is one task
  for (std::size_t threads : {1u, 2u, 4u, 16u}) {
    // A small queue on top: a worker whose own submit finds the queue full helps instead of blocking.
    for (std::size_t capacity : {std::size_t{16}, std::size_t{16384}}) {
      ThreadPool pool(ThreadPoolOptions{.threads = threads, .capacity = capacity});
      auto roots = std::vector<weft::Future<std::uint64_t>>{};
      for (int r = 0; r < 2; ++r) roots.push_back(pool.submit([&pool, n] { return fib(pool, n); }));
      for (auto& f : roots) EXPECT_EQ(f.get_for(kSafetyNet), expected) << threads << " threads, capacity " << capacity;
      pool.wait_idle();
      const auto s = pool.stats();
      EXPECT_EQ(s.queued, 0u);
      EXPECT_EQ(s.completed, 2 * calls);  // tasks run early by their waiter are counted once, not twice
      EXPECT_EQ(s.cancelled, 0u);
    }
  }
}

// wait_idle() must see every task posted before it. It used to read "every worker asleep" before "the queues
// are empty", so it could return while a worker that had just woken up ran the last task it popped; that
// window is narrow and this loop hits it only rarely, but without spinning, workers sleep and wake around
// every round, which is where it was.
TEST(ThreadPoolStress, WaitIdleRoundsSeeEveryEarlierTask) {
  const std::size_t rounds = scaled(300, 60);
  for (const auto spin : {std::chrono::nanoseconds(0), std::chrono::nanoseconds(std::chrono::microseconds(50))}) {
    for (std::size_t threads : {1u, 2u, 8u}) {
      ThreadPool pool(ThreadPoolOptions{.threads = threads, .spin = spin});
      std::atomic<std::uint64_t> ran{0};
      for (std::size_t round = 1; round <= rounds; ++round) {
        for (std::size_t i = 0; i < 20; ++i) pool.post([&ran] { ran.fetch_add(1); });
        pool.wait_idle();
        ASSERT_EQ(ran.load(), round * 20) << threads << " threads, spin " << spin.count() << " ns";
      }
    }
  }
}

}  // namespace
