// Tests of weft::TaskGroup: spawn and wait from outside and inside the pool, many tasks, the first exception
// (running tasks finish first, unstarted ones are skipped), cancel(), reuse after wait, destruction without
// wait, tasks that spawn into their own group, and nested groups.
//
// Synchronisation is by std::latch, weft futures and the group's own cancelled() flag; no test sleeps.
#include "weft/parallel/task_group.hpp"

#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <latch>
#include <memory>
#include <stdexcept>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "../thread/pool_test_support.hpp"
#include "weft/core/errors.hpp"
#include "weft/core/future.hpp"
#include "weft/parallel/fork_join_pool.hpp"
#include "fork_join_test_support.hpp"

namespace {

using namespace weft::test::forkjoin;

// ---- spawn and wait ---------------------------------------------------------------------------------------

TEST(TaskGroup, SpawnAndWaitFromOutside) {
  for (std::size_t threads : kSweep) {
    SCOPED_TRACE("threads=" + std::to_string(threads));
    ForkJoinPool pool(threads);
    TaskGroup group(pool);
    EXPECT_EQ(&group.pool(), &pool);
    std::atomic<long> sum{0};
    std::atomic<int> on_workers{0};
    for (int i = 1; i <= 100; ++i) {
      group.spawn([&sum, &on_workers, &pool, i] {
        sum.fetch_add(i);
        if (pool.in_pool()) on_workers.fetch_add(1);
      });
    }
    group.wait();
    EXPECT_EQ(sum.load(), 5050);
    EXPECT_EQ(on_workers.load(), 100);  // tasks run on the pool, not on the waiting thread
    group.wait();                       // nothing left: returns at once
  }
}

TEST(TaskGroup, WaitWithNothingSpawned) {
  ForkJoinPool pool(2);
  TaskGroup group(pool);
  group.wait();
  EXPECT_FALSE(group.cancelled());
  pool.invoke([&] { group.wait(); });
}

TEST(TaskGroup, ManyTasks) {
  const int kTasks = static_cast<int>(scaled(100'000, 20'000));
  for (std::size_t threads : kSweep) {
    SCOPED_TRACE("threads=" + std::to_string(threads));
    ForkJoinPool pool(threads);
    std::atomic<std::int64_t> sum{0};
    {
      TaskGroup outside(pool);
      for (int i = 0; i < kTasks; ++i) outside.spawn([&sum, i] { sum.fetch_add(i, std::memory_order_relaxed); });
      outside.wait();
    }
    const std::int64_t expected = std::int64_t{kTasks} * (kTasks - 1) / 2;
    EXPECT_EQ(sum.load(), expected);
    sum = 0;
    pool.invoke([&] {
      TaskGroup inside(pool);
      for (int i = 0; i < kTasks; ++i) inside.spawn([&sum, i] { sum.fetch_add(i, std::memory_order_relaxed); });
      inside.wait();
    });
    EXPECT_EQ(sum.load(), expected);
  }
}

TEST(TaskGroup, SpawnAndWaitInsideAWorker) {
  for (std::size_t threads : kSweep) {
    SCOPED_TRACE("threads=" + std::to_string(threads));
    ForkJoinPool pool(threads);
    const long total = pool.invoke([&] {
      TaskGroup group(pool);
      std::vector<long> parts(64, 0);
      for (std::size_t i = 0; i < parts.size(); ++i) {
        group.spawn([&parts, i] { parts[i] = static_cast<long>(i * i); });
      }
      group.wait();
      long s = 0;
      for (long p : parts) s += p;
      return s;
    });
    long expected = 0;
    for (long i = 0; i < 64; ++i) expected += i * i;
    EXPECT_EQ(total, expected);
  }
}

TEST(TaskGroup, SpawnFromOtherThreadsWhileATaskRuns) {
  Watchdog dog("SpawnFromOtherThreadsWhileATaskRuns");
  ForkJoinPool pool(2);
  TaskGroup group(pool);
  std::atomic<int> ran{0};
  constexpr int kThreads = 4;
  constexpr int kEach = 100;
  {
    std::vector<std::jthread> spawners;
    for (int t = 0; t < kThreads; ++t) {
      spawners.emplace_back([&] {
        for (int i = 0; i < kEach; ++i) group.spawn([&ran] { ran.fetch_add(1); });
      });
    }
  }
  group.wait();
  EXPECT_EQ(ran.load(), kThreads * kEach);
}

TEST(TaskGroup, DefaultConstructorUsesTheCurrentPoolOrTheDefault) {
  {
    TaskGroup group;
    EXPECT_EQ(&group.pool(), &weft::default_pool());
    std::atomic<bool> on_default{false};
    group.spawn([&] { on_default = ForkJoinPool::current() == &weft::default_pool(); });
    group.wait();
    EXPECT_TRUE(on_default.load());
  }
  ForkJoinPool pool(2);
  const bool same = pool.invoke([&] {
    TaskGroup group;
    std::atomic<bool> here{false};
    group.spawn([&] { here = ForkJoinPool::current() == &pool; });
    group.wait();
    return &group.pool() == &pool && here.load();
  });
  EXPECT_TRUE(same);
}

// ---- failures -----------------------------------------------------------------------------------------------

TEST(TaskGroup, TheFirstExceptionReachesWaitAfterTheRunningTasksFinish) {
  Watchdog dog("TheFirstExceptionReachesWaitAfterTheRunningTasksFinish");
  for (std::size_t threads : {std::size_t{2}, std::size_t{4}}) {
    SCOPED_TRACE("threads=" + std::to_string(threads));
    ForkJoinPool pool(threads);
    TaskGroup group(pool);
    std::latch runner_started(1);
    std::latch runner_saw_failure(1);
    std::latch let_runner_finish(1);
    std::atomic<bool> runner_done{false};
    std::atomic<bool> runner_timed_out{false};
    // The runner is running when the failure happens, and it finishes only afterwards.
    group.spawn([&] {
      runner_started.count_down();
      if (!eventually([&] { return group.cancelled(); })) runner_timed_out = true;
      runner_saw_failure.count_down();
      let_runner_finish.wait();
      runner_done = true;
    });
    group.spawn([&] {
      runner_started.wait();  // on another worker than the runner
      throw TaskError("first", 1);
    });
    runner_saw_failure.wait();
    // Spawned after the failure: queued, then skipped.
    constexpr int kLate = 50;
    std::atomic<int> late_ran{0};
    for (int i = 0; i < kLate; ++i) group.spawn([&] { late_ran.fetch_add(1); });
    EXPECT_TRUE(group.cancelled());
    let_runner_finish.count_down();
    expect_task_error(1, [&] {
      group.wait();
    });
    EXPECT_FALSE(runner_timed_out.load()) << "the failure did not mark the group cancelled";
    EXPECT_TRUE(runner_done.load()) << "wait returned before a running task finished";
    EXPECT_EQ(late_ran.load(), 0) << (kLate - late_ran.load()) << " of " << kLate << " late tasks were skipped";
    EXPECT_FALSE(group.cancelled());  // reset by wait
  }
}

TEST(TaskGroup, UnstartedTasksAreSkippedAfterAFailure) {
  Watchdog dog("UnstartedTasksAreSkippedAfterAFailure");
  constexpr int kTasks = 2000;
  for (std::size_t threads : kSweep) {
    for (bool inside : {false, true}) {
      SCOPED_TRACE("threads=" + std::to_string(threads) + (inside ? " inside" : " outside"));
      ForkJoinPool pool(threads);
      std::atomic<int> order{0};
      std::atomic<int> ran{0};
      std::atomic<int> started_after_failure{0};
      auto body = [&] {
        TaskGroup group(pool);
        for (int i = 0; i < kTasks; ++i) {
          group.spawn([&] {
            if (group.cancelled()) started_after_failure.fetch_add(1);
            ran.fetch_add(1);
            if (order.fetch_add(1) == 0) throw TaskError("the first task to run", 7);
            // Hold this worker until the group has recorded the failure, so that tasks are still queued when
            // it does: on a loaded machine (16 workers on 2 CPUs under ASan) the other workers could otherwise
            // run every task while the first one is still unwinding its exception.
            const auto limit = std::chrono::steady_clock::now() + kSafetyNet;
            while (!group.cancelled() && std::chrono::steady_clock::now() < limit) std::this_thread::yield();
          });
        }
        expect_task_error(7, [&] {
          group.wait();
        });
      };
      if (inside) {
        pool.invoke(body);
      } else {
        body();
      }
      const int skipped = kTasks - ran.load();
      if (threads == 1) {
        // The only worker ran the failing task first: every other task was still queued.
        EXPECT_EQ(ran.load(), 1);
        EXPECT_EQ(skipped, kTasks - 1);
      } else {
        // Tasks that passed the skip check just before the failure was recorded may run; at most one
        // per other worker (and the waiting thread, when it helps).
        EXPECT_LE(started_after_failure.load(), static_cast<int>(threads) + 1);
        EXPECT_GT(skipped, 0);
      }
    }
  }
}

TEST(TaskGroup, LaterExceptionsAreDropped) {
  Watchdog dog("LaterExceptionsAreDropped");
  ForkJoinPool pool(2);
  TaskGroup group(pool);
  std::latch second_started(1);
  std::atomic<bool> second_timed_out{false};
  group.spawn([&] {
    second_started.wait();  // the second task is already running
    throw TaskError("first", 1);
  });
  group.spawn([&] {
    second_started.count_down();
    if (!eventually([&] { return group.cancelled(); })) second_timed_out = true;
    throw TaskError("second", 2);
  });
  expect_task_error(1, [&] {
    group.wait();
  });
  EXPECT_FALSE(second_timed_out.load());
}

TEST(TaskGroup, ExceptionFromAWaitInsideAWorker) {
  for (std::size_t threads : kSweep) {
    SCOPED_TRACE("threads=" + std::to_string(threads));
    ForkJoinPool pool(threads);
    const int code = pool.invoke([&] {
      TaskGroup group(pool);
      for (int i = 0; i < 10; ++i) {
        group.spawn([i] {
          if (i == 5) throw TaskError("inside", 5);
        });
      }
      try {
        group.wait();
      } catch (const TaskError& e) {
        return e.code;
      }
      return -1;
    });
    EXPECT_EQ(code, 5);
  }
}

// ---- cancel, reuse, destruction -----------------------------------------------------------------------------

TEST(TaskGroup, CancelSkipsUnstartedTasks) {
  for (std::size_t threads : kSweep) {
    SCOPED_TRACE("threads=" + std::to_string(threads));
    ForkJoinPool pool(threads);
    TaskGroup group(pool);
    std::atomic<int> ran{0};
    group.cancel();
    EXPECT_TRUE(group.cancelled());
    for (int i = 0; i < 100; ++i) group.spawn([&] { ran.fetch_add(1); });
    group.wait();  // returns normally: nothing threw
    EXPECT_EQ(ran.load(), 0);
    EXPECT_FALSE(group.cancelled());
    // Cancelled by one of its own tasks: the tasks after it in a one-worker pool never start.
    if (threads == 1) {
      std::atomic<int> after{0};
      pool.invoke([&] {
        TaskGroup g(pool);
        std::atomic<int> order{0};
        for (int i = 0; i < 100; ++i) {
          g.spawn([&] {
            if (order.fetch_add(1) == 0) {
              g.cancel();
            } else {
              after.fetch_add(1);
            }
          });
        }
        g.wait();
      });
      EXPECT_EQ(after.load(), 0);
    }
  }
}

TEST(TaskGroup, CancelDuringWaitLetsRunningTasksFinish) {
  Watchdog dog("CancelDuringWaitLetsRunningTasksFinish");
  ForkJoinPool pool(2);
  TaskGroup group(pool);
  std::latch started(1);
  std::atomic<bool> finished{false};
  std::atomic<bool> timed_out{false};
  group.spawn([&] {
    started.count_down();
    if (!eventually([&] { return group.cancelled(); })) timed_out = true;
    finished = true;
  });
  started.wait();
  std::atomic<int> late{0};
  group.cancel();
  for (int i = 0; i < 20; ++i) group.spawn([&] { late.fetch_add(1); });
  group.wait();
  EXPECT_FALSE(timed_out.load());
  EXPECT_TRUE(finished.load());
  EXPECT_EQ(late.load(), 0);
}

TEST(TaskGroup, ReusableAfterWait) {
  for (std::size_t threads : {std::size_t{1}, std::size_t{3}}) {
    SCOPED_TRACE("threads=" + std::to_string(threads));
    ForkJoinPool pool(threads);
    TaskGroup group(pool);
    std::atomic<int> ran{0};
    for (int round = 0; round < 5; ++round) {
      for (int i = 0; i < 20; ++i) group.spawn([&] { ran.fetch_add(1); });
      group.wait();
      EXPECT_EQ(ran.load(), (round + 1) * 20);
    }
    // After a failure: not cancelled any more, and the next round runs in full.
    group.spawn([] { throw TaskError("once", 1); });
    EXPECT_THROW(group.wait(), TaskError);
    EXPECT_FALSE(group.cancelled());
    ran = 0;
    for (int i = 0; i < 20; ++i) group.spawn([&] { ran.fetch_add(1); });
    group.wait();  // the old exception is not rethrown
    EXPECT_EQ(ran.load(), 20);
    // After cancel().
    group.cancel();
    group.wait();
    for (int i = 0; i < 20; ++i) group.spawn([&] { ran.fetch_add(1); });
    group.wait();
    EXPECT_EQ(ran.load(), 40);
  }
}

TEST(TaskGroup, DestructorWithoutWaitCancelsUnstartedAndWaitsForRunning) {
  Watchdog dog("DestructorWithoutWaitCancelsUnstartedAndWaitsForRunning");
  for (std::size_t threads : {std::size_t{1}, std::size_t{2}}) {
    SCOPED_TRACE("threads=" + std::to_string(threads));
    ForkJoinPool pool(threads);
    std::atomic<bool> running_done{false};
    std::atomic<bool> timed_out{false};
    std::atomic<int> queued_ran{0};
    std::latch started(1);
    std::latch others_busy(static_cast<std::ptrdiff_t>(threads - 1));
    std::latch release_others(1);
    {
      TaskGroup group(pool);
      group.spawn([&] {
        started.count_down();
        // Finishes only once the destructor has cancelled the group.
        if (!eventually([&] { return group.cancelled(); })) timed_out = true;
        running_done = true;
      });
      started.wait();
      // Keep the other workers out of the way so the next tasks stay queued.
      std::vector<Future<void>> blockers;
      for (std::size_t i = 0; i + 1 < threads; ++i) {
        blockers.push_back(pool.submit([&] {
          others_busy.count_down();
          release_others.wait();
        }));
      }
      others_busy.wait();
      for (int i = 0; i < 30; ++i) group.spawn([&] { queued_ran.fetch_add(1); });
      release_others.count_down();  // the others may now run or skip the queued tasks, racing the destructor
      for (auto& b : blockers) b.wait();
      if (threads == 1) {
        EXPECT_EQ(queued_ran.load(), 0);
      }
    }  // ~TaskGroup: cancel, then wait for the running task
    EXPECT_FALSE(timed_out.load()) << "the destructor did not cancel the group";
    EXPECT_TRUE(running_done.load()) << "the destructor returned before a running task finished";
    if (threads == 1) {
      EXPECT_EQ(queued_ran.load(), 0) << "queued tasks ran after the group was destroyed";
    }
  }
}

TEST(TaskGroup, DestructorReportsAnUncollectedException) {
  Watchdog dog("DestructorReportsAnUncollectedException");
  CapturingHandler handler;
  ForkJoinPool pool(2);
  {
    TaskGroup group(pool);
    std::latch started(1);
    group.spawn([&] {
      started.count_down();
      throw TaskError("never collected", 9);
    });
    started.wait();
  }  // the running task finishes before the destructor returns, and its exception is reported
  const auto reports = handler.reports();
  ASSERT_EQ(reports.size(), 1u);
  EXPECT_EQ(reports[0].what, "never collected");
}

TEST(TaskGroup, DestroyedUnwaitedInsideAWorker) {
  Watchdog dog("DestroyedUnwaitedInsideAWorker");
  ForkJoinPool pool(2);
  std::atomic<int> ran{0};
  pool.invoke([&] {
    TaskGroup group(pool);
    for (int i = 0; i < 100; ++i) group.spawn([&] { ran.fetch_add(1); });
  });  // cancelled and waited for on the worker, helping
  EXPECT_LE(ran.load(), 100);
  pool.shutdown();
  EXPECT_LE(ran.load(), 100);  // nothing ran after the group was gone (AddressSanitizer checks the rest)
}

// ---- spawning from tasks, nesting -----------------------------------------------------------------------------

// Each task spawns two children into the same group down to `depth`: 2^(depth+1) - 1 tasks in all.
void spawn_tree(TaskGroup& group, std::atomic<long>& count, int depth) {
  count.fetch_add(1, std::memory_order_relaxed);
  if (depth == 0) return;
  group.spawn([&group, &count, depth] { spawn_tree(group, count, depth - 1); });
  group.spawn([&group, &count, depth] { spawn_tree(group, count, depth - 1); });
}

TEST(TaskGroup, TasksSpawnIntoTheirOwnGroup) {
  const int depth = static_cast<int>(scaled(13, 10));
  for (std::size_t threads : kSweep) {
    SCOPED_TRACE("threads=" + std::to_string(threads));
    ForkJoinPool pool(threads);
    std::atomic<long> count{0};
    {
      TaskGroup group(pool);
      group.spawn([&] { spawn_tree(group, count, depth); });
      group.wait();  // counts the tasks spawned by tasks too
      EXPECT_EQ(count.load(), (2L << depth) - 1);
    }
    count = 0;
    pool.invoke([&] {
      TaskGroup group(pool);
      spawn_tree(group, count, depth);
      group.wait();
    });
    EXPECT_EQ(count.load(), (2L << depth) - 1);
  }
}

// A tree of groups: every task makes its own group of `fanout` children and waits on it.
long nested_groups(ForkJoinPool& pool, int depth, int fanout) {
  if (depth == 0) return 1;
  TaskGroup group(pool);
  std::vector<long> parts(static_cast<std::size_t>(fanout), 0);
  for (int i = 0; i < fanout; ++i) {
    group.spawn([&pool, &parts, i, depth, fanout] { parts[static_cast<std::size_t>(i)] = nested_groups(pool, depth - 1, fanout); });
  }
  group.wait();
  long s = 1;
  for (long p : parts) s += p;
  return s;
}

TEST(TaskGroup, NestedGroups) {
  Watchdog dog("TaskGroup.NestedGroups");
  const int depth = static_cast<int>(scaled(5, 4));
  constexpr int kFanout = 5;
  long expected = 0;
  for (int d = 0, level = 1; d <= depth; ++d, level *= kFanout) expected += level;
  for (std::size_t threads : kSweep) {
    SCOPED_TRACE("threads=" + std::to_string(threads));
    ForkJoinPool pool(threads);
    EXPECT_EQ(pool.invoke([&] { return nested_groups(pool, depth, kFanout); }), expected);
    EXPECT_EQ(nested_groups(pool, depth, kFanout), expected);  // the outermost wait from outside
  }
}

TEST(TaskGroup, NestedGroupFailurePropagatesOutward) {
  for (std::size_t threads : {std::size_t{1}, std::size_t{4}}) {
    SCOPED_TRACE("threads=" + std::to_string(threads));
    ForkJoinPool pool(threads);
    TaskGroup outer(pool);
    for (int i = 0; i < 4; ++i) {
      outer.spawn([&pool, i] {
        TaskGroup inner(pool);
        for (int j = 0; j < 4; ++j) {
          inner.spawn([i, j] {
            if (i == 2 && j == 3) throw TaskError("deep", 23);
          });
        }
        inner.wait();
      });
    }
    expect_task_error(23, [&] {
      outer.wait();
    });
  }
}

TEST(TaskGroup, GroupsAndJoinsMixed) {
  for (std::size_t threads : kSweep) {
    SCOPED_TRACE("threads=" + std::to_string(threads));
    ForkJoinPool pool(threads);
    std::atomic<long> leaves{0};
    std::function<void(int)> walk = [&](int depth) {
      if (depth == 0) {
        leaves.fetch_add(1);
        return;
      }
      if (depth % 2 == 0) {
        pool.join([&] { walk(depth - 1); }, [&] { walk(depth - 1); });
      } else {
        TaskGroup g(pool);
        g.spawn([&] { walk(depth - 1); });
        g.spawn([&] { walk(depth - 1); });
        g.wait();
      }
    };
    pool.invoke([&] { walk(12); });
    EXPECT_EQ(leaves.load(), 1L << 12);
  }
}

}  // namespace
