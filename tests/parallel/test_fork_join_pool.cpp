// Tests of weft::ForkJoinPool: join (results, void and mixed results, move-only results, exceptions from
// either half, the second half skipped or waited for), invoke, and outside waiters seeing the jobs' writes.
// Submit/post, tracing, statistics, options, back-pressure and shutdown are in test_fork_join_lifecycle.cpp;
// the executor contract in test_fork_join_contract.cpp, task groups in test_task_group.cpp, waiting inside
// the pool in test_nested_waits.cpp, bounded stress runs in test_fork_join_stress.cpp.
//
// Workers are held still with HeldWorkers (tasks blocked on a std::latch, which never helps), so what is
// queued behind them is known exactly; no test sleeps to synchronise.
#include "weft/parallel/fork_join_pool.hpp"

#include <pthread.h>
#include <sched.h>

#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <exception>
#include <functional>
#include <latch>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <sstream>
#include <stdexcept>
#include <string>
#include <thread>
#include <tuple>
#include <type_traits>
#include <utility>
#include <variant>
#include <vector>

#include "../thread/pool_test_support.hpp"
#include "weft/core/errors.hpp"
#include "weft/core/future.hpp"
#include "weft/parallel/task_group.hpp"
#include "weft/trace/trace.hpp"
#include "fork_join_test_support.hpp"

namespace {

using namespace weft::test::forkjoin;

// ---- join: results ----------------------------------------------------------------------------------------

TEST(ForkJoinPool, JoinReturnsBothResults) {
  for (std::size_t threads : kSweep) {
    SCOPED_TRACE("threads=" + std::to_string(threads));
    ForkJoinPool pool(threads);
    // From outside the pool join runs as invoke.
    auto outside = pool.join([] { return 1; }, [] { return std::string("two"); });
    static_assert(std::is_same_v<decltype(outside), std::pair<int, std::string>>);
    EXPECT_EQ(outside.first, 1);
    EXPECT_EQ(outside.second, "two");
    // From a worker.
    auto inside = pool.invoke([&] { return pool.join([] { return 3; }, [] { return 4.5; }); });
    EXPECT_EQ(inside.first, 3);
    EXPECT_EQ(inside.second, 4.5);
    // A result type without a default constructor.
    auto nd = pool.join([] { return NoDefault(5); }, [] { return NoDefault(6); });
    EXPECT_EQ(nd.first.value + nd.second.value, 11);
    // Recursion.
    EXPECT_EQ(pool.invoke([&] { return fib(pool, 22); }), fib_seq(22));
    EXPECT_EQ(fib(pool, 18), fib_seq(18));  // outermost join from outside, the rest inside
  }
}

TEST(ForkJoinPool, JoinVoidAndMixedResults) {
  for (std::size_t threads : {std::size_t{1}, std::size_t{3}}) {
    SCOPED_TRACE("threads=" + std::to_string(threads));
    ForkJoinPool pool(threads);
    std::atomic<int> a{0};
    std::atomic<int> b{0};
    static_assert(std::is_void_v<decltype(pool.join([] {}, [] {}))>);
    static_assert(std::is_same_v<decltype(pool.join([] {}, [] { return 1; })), std::pair<std::monostate, int>>);
    static_assert(std::is_same_v<decltype(pool.join([] { return 1; }, [] {})), std::pair<int, std::monostate>>);

    pool.join([&] { a += 1; }, [&] { b += 1; });
    EXPECT_EQ(a.load(), 1);
    EXPECT_EQ(b.load(), 1);
    auto [m1, v1] = pool.join([&] { a += 1; }, [] { return 7; });
    (void)m1;
    EXPECT_EQ(v1, 7);
    auto [v2, m2] = pool.join([] { return std::string("x"); }, [&] { b += 1; });
    (void)m2;
    EXPECT_EQ(v2, "x");
    EXPECT_EQ(a.load(), 2);
    EXPECT_EQ(b.load(), 2);

    pool.invoke([&] {
      pool.join([&] { a += 10; }, [&] { b += 10; });
      auto [m, v] = pool.join([&] { a += 10; }, [] { return 8; });
      (void)m;
      EXPECT_EQ(v, 8);
    });
    EXPECT_EQ(a.load(), 22);
    EXPECT_EQ(b.load(), 12);
  }
}

TEST(ForkJoinPool, JoinMoveOnlyResults) {
  for (std::size_t threads : {std::size_t{1}, std::size_t{2}, std::size_t{8}}) {
    SCOPED_TRACE("threads=" + std::to_string(threads));
    ForkJoinPool pool(threads);
    auto [p, q] = pool.join([] { return std::make_unique<int>(1); }, [] { return std::make_unique<std::string>("b"); });
    ASSERT_NE(p, nullptr);
    ASSERT_NE(q, nullptr);
    EXPECT_EQ(*p, 1);
    EXPECT_EQ(*q, "b");
    // Moved up through a recursion, from both halves.
    std::function<std::unique_ptr<long>(int)> sum = [&](int n) -> std::unique_ptr<long> {
      if (n == 0) return std::make_unique<long>(1);
      auto [l, r] = pool.join([&] { return sum(n - 1); }, [&] { return sum(n - 1); });
      return std::make_unique<long>(*l + *r);
    };
    auto total = pool.invoke([&] { return sum(10); });
    ASSERT_NE(total, nullptr);
    EXPECT_EQ(*total, 1024);
  }
}

TEST(ForkJoinPool, JoinRunsTheSecondHalfOnAThiefWhenTheFirstWaitsForIt) {
  Watchdog dog("JoinRunsTheSecondHalfOnAThiefWhenTheFirstWaitsForIt");
  for (std::size_t threads : {std::size_t{2}, std::size_t{4}}) {
    SCOPED_TRACE("threads=" + std::to_string(threads));
    ForkJoinPool pool(threads);
    // a blocks (without helping) until b has started, so b can only run on another worker: a thief.
    std::latch b_started(1);
    auto [ta, tb] = pool.invoke([&] {
      return pool.join(
          [&] {
            b_started.wait();
            return std::this_thread::get_id();
          },
          [&] {
            b_started.count_down();
            return std::this_thread::get_id();
          });
    });
    EXPECT_NE(ta, tb);
  }
}

// ---- join: exceptions -------------------------------------------------------------------------------------

TEST(ForkJoinPool, JoinRethrowsTheExceptionOfTheFirstHalf) {
  for (std::size_t threads : kSweep) {
    SCOPED_TRACE("threads=" + std::to_string(threads));
    ForkJoinPool pool(threads);
    auto thrower = [] () -> int { throw TaskError("a", 1); };
    expect_task_error(1, [&] {
      (void)pool.join(thrower, [] { return 2; });  // from outside
    });
    expect_task_error(1, [&] {
      pool.invoke([&] { (void)pool.join(thrower, [] { return 2; }); });  // from a worker
    });
    EXPECT_THROW(pool.join([] { throw 5; }, [] {}), int);  // not a std::exception
    EXPECT_EQ(pool.invoke([&] { return fib(pool, 12); }), fib_seq(12));  // the pool still works
  }
}

TEST(ForkJoinPool, JoinRethrowsTheExceptionOfTheSecondHalf) {
  for (std::size_t threads : kSweep) {
    SCOPED_TRACE("threads=" + std::to_string(threads));
    ForkJoinPool pool(threads);
    std::atomic<bool> a_ran{false};
    expect_task_error(2, [&] {
      pool.invoke([&] {
        (void)pool.join([&] { a_ran = true; return 1; }, []() -> int { throw TaskError("b", 2); });
      });
    });
    EXPECT_TRUE(a_ran.load());
    EXPECT_THROW(pool.join([] {}, [] { throw std::out_of_range("b"); }), std::out_of_range);
  }
}

TEST(ForkJoinPool, JoinRethrowsTheSecondHalfsExceptionFromAThief) {
  Watchdog dog("JoinRethrowsTheSecondHalfsExceptionFromAThief");
  ForkJoinPool pool(2);
  std::latch b_started(1);
  expect_task_error(3, [&] {
    pool.invoke([&] {
      pool.join([&] { b_started.wait(); },  // b can only run on the other worker
                [&] {
                  b_started.count_down();
                  throw TaskError("stolen b", 3);
                });
    });
  });
}

TEST(ForkJoinPool, JoinWhenBothHalvesThrowTheFirstHalfsExceptionWins) {
  Watchdog dog("JoinWhenBothHalvesThrowTheFirstHalfsExceptionWins");
  for (std::size_t threads : kSweep) {
    SCOPED_TRACE("threads=" + std::to_string(threads));
    ForkJoinPool pool(threads);
    // Plain: b may be skipped (a threw first), or run on a thief.
    for (int round = 0; round < 20; ++round) {
      expect_task_error(1, [&] {
        pool.invoke([&] {
          pool.join([] { throw TaskError("a", 1); }, [] { throw TaskError("b", 2); });
        });
      });
    }
    if (threads < 2) continue;
    // Both certainly throw: a throws only once b runs on a thief (and b may throw before or after a).
    for (int round = 0; round < 20; ++round) {
      std::latch b_started(1);
      expect_task_error(1, [&] {
        pool.invoke([&] {
          pool.join(
              [&] {
                b_started.wait();
                throw TaskError("a", 1);
              },
              [&] {
                b_started.count_down();
                throw TaskError("b", 2);
              });
        });
      });
    }
  }
}

TEST(ForkJoinPool, JoinSkipsTheSecondHalfWhenTheFirstThrewAndNobodyStoleIt) {
  // One worker: nobody can steal b.
  {
    ForkJoinPool pool(1);
    std::atomic<int> b_ran{0};
    for (int round = 0; round < 10; ++round) {
      EXPECT_THROW(pool.invoke([&] { pool.join([] { throw TaskError("a", 1); }, [&] { ++b_ran; }); }), TaskError);
    }
    EXPECT_THROW(pool.join([] { throw TaskError("a", 1); }, [&] { ++b_ran; }), TaskError);
    EXPECT_EQ(b_ran.load(), 0);
  }
  // Four workers, three of them held: the joining worker is the only one free, so again nobody steals.
  {
    ForkJoinPool pool(4);
    HeldWorkers held(pool, 3);
    std::atomic<int> b_ran{0};
    for (int round = 0; round < 10; ++round) {
      EXPECT_THROW(pool.invoke([&] { pool.join([] { throw TaskError("a", 1); }, [&] { ++b_ran; }); }), TaskError);
    }
    EXPECT_EQ(b_ran.load(), 0);
  }
}

TEST(ForkJoinPool, JoinWaitsForAStolenSecondHalfBeforeRethrowing) {
  Watchdog dog("JoinWaitsForAStolenSecondHalfBeforeRethrowing");
  ForkJoinPool pool(2);
  for (int round = 0; round < 20; ++round) {
    std::latch b_started(1);
    std::latch a_threw(1);
    std::atomic<bool> b_done{false};
    std::atomic<bool> returned{false};
    std::atomic<bool> b_saw_return{false};
    try {
      pool.invoke([&] {
        pool.join(
            [&] {
              b_started.wait();  // b is running on the other worker
              a_threw.count_down();
              throw TaskError("a", 1);
            },
            [&] {
              b_started.count_down();
              a_threw.wait();
              for (int i = 0; i < 200; ++i) {  // keep running a little after a threw
                if (returned.load()) b_saw_return = true;
                std::this_thread::yield();
              }
              b_done = true;
            });
      });
      ADD_FAILURE() << "join must rethrow";
    } catch (const TaskError& e) {
      returned = true;
      EXPECT_EQ(e.code, 1);
    }
    EXPECT_TRUE(b_done.load()) << "join returned while its stolen half was still running";
    EXPECT_FALSE(b_saw_return.load());
  }
}

// ---- invoke -------------------------------------------------------------------------------------------

TEST(ForkJoinPool, InvokeFromOutsideRunsOnAWorker) {
  for (std::size_t threads : kSweep) {
    SCOPED_TRACE("threads=" + std::to_string(threads));
    ForkJoinPool pool(threads);
    const auto caller = std::this_thread::get_id();
    auto [index, tid, inside] = pool.invoke([&] {
      return std::tuple(ForkJoinPool::current_worker_index(), std::this_thread::get_id(), pool.in_pool());
    });
    EXPECT_GE(index, 0);
    EXPECT_LT(index, static_cast<int>(threads));
    EXPECT_NE(tid, caller);
    EXPECT_TRUE(inside);
    std::atomic<int> side{0};
    pool.invoke([&] { side = 3; });  // void
    EXPECT_EQ(side.load(), 3);
    auto owned = pool.invoke([] { return std::make_unique<int>(9); });  // move-only
    EXPECT_EQ(*owned, 9);
    EXPECT_THROW(pool.invoke([]() -> int { throw TaskError("x", 1); }), TaskError);
    // A mutable callable passed as an lvalue is called in place (no copy).
    int calls = 0;
    auto counter = [&calls]() mutable { return ++calls; };
    EXPECT_EQ(pool.invoke(counter), 1);
    EXPECT_EQ(pool.invoke(counter), 2);
  }
}

// Busy work of a length that varies from call to call, so that over many calls some jobs end just as an
// outside waiter stops spinning and registers to sleep.
void busy(int i) {
  volatile int sink = 0;
  for (int j = 0; j < (i % 61) * 40; ++j) sink = sink + j;
}

// An outside caller of invoke, join or TaskGroup::wait reads what the jobs wrote (the result, the group's
// outputs) as soon as its wait returns: the wait must synchronise with the job's end (acquire) on every
// path, including the one where the caller finds the job finished only as it registers to sleep.
// ThreadSanitizer reports the race if a path lacks the acquire (regression: the path where registering found
// the count already zero returned after a relaxed load). Several callers at once make each of them
// go round that path often (a job's end wakes every outside waiter of the pool, and they re-register).
TEST(ForkJoinPool, OutsideWaitersSeeWhatTheJobsWrote) {
  Watchdog dog("OutsideWaitersSeeWhatTheJobsWrote");
  constexpr int kCallers = 4;
  const int rounds = static_cast<int>(weft::test::scaled(500, 250));
  for (std::size_t threads : {std::size_t{1}, std::size_t{2}, std::size_t{16}}) {
    SCOPED_TRACE("threads=" + std::to_string(threads));
    ForkJoinPool pool(threads);
    std::atomic<int> wrong{0};
    {
      std::vector<std::jthread> callers;
      for (int c = 0; c < kCallers; ++c) {
        callers.emplace_back([&pool, &wrong, rounds, c] {
          for (int r = 0; r < rounds; ++r) {
            const int i = r * kCallers + c;
            std::string s = pool.invoke([i] {
              busy(i);
              return std::string(40, static_cast<char>('a' + i % 26)) + std::to_string(i);
            });
            if (s.size() != 40 + std::to_string(i).size() || s[0] != static_cast<char>('a' + i % 26)) ++wrong;
            auto [p, q] = pool.join(
                [i] {
                  busy(i + 7);
                  return std::make_unique<int>(i);
                },
                [i] { return std::vector<int>(3, i); });
            if (*p != i || q[2] != i) ++wrong;
            std::vector<int> parts(4, -1);
            TaskGroup group(pool);
            for (int k = 0; k < 4; ++k) {
              group.spawn([&parts, k, i] {
                busy(i + 13 * k);
                parts[static_cast<std::size_t>(k)] = k + i;
              });
            }
            group.wait();
            for (int k = 0; k < 4; ++k) {
              if (parts[static_cast<std::size_t>(k)] != k + i) ++wrong;
            }
          }
        });
      }
    }
    EXPECT_EQ(wrong.load(), 0);
  }
}

TEST(ForkJoinPool, InvokeInsideAWorkerIsAPlainCall) {
  ForkJoinPool pool(3);
  auto same = pool.invoke([&] {
    const auto tid = std::this_thread::get_id();
    const int index = ForkJoinPool::current_worker_index();
    return pool.invoke([&] { return tid == std::this_thread::get_id() && index == ForkJoinPool::current_worker_index(); });
  });
  EXPECT_TRUE(same);
  EXPECT_THROW(pool.invoke([&] { pool.invoke([] { throw TaskError("inner", 4); }); }), TaskError);
}

TEST(ForkJoinPool, InvokeFromAWorkerOfAnotherPool) {
  ForkJoinPool a(ForkJoinPoolOptions{.threads = 2, .name = "fj-a"});
  ForkJoinPool b(ForkJoinPoolOptions{.threads = 2, .name = "fj-b"});
  auto r = a.invoke([&] {
    EXPECT_TRUE(a.in_pool());
    EXPECT_FALSE(b.in_pool());
    return b.invoke([&] { return std::pair(ForkJoinPool::current() == &b, b.in_pool() && !a.in_pool()); });
  });
  EXPECT_TRUE(r.first);
  EXPECT_TRUE(r.second);
}


}  // namespace
