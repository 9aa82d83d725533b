// Tests of weft::ForkJoinPool's life cycle: submit/post from inside the workers, the error handler of posted
// tasks, trace spans, the statistics, current()/current_worker_index()/in_pool(), default_pool(), option
// checks, back-pressure of the injection queue, and shutdown (from a worker, cancel_pending, idempotence).
// No test sleeps to synchronise.
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

// ---- submit and post --------------------------------------------------------------------------------------

TEST(ForkJoinPool, SubmitAndPostFromInsideTheWorkers) {
  Watchdog dog("SubmitAndPostFromInsideTheWorkers");
  for (std::size_t threads : kSweep) {
    SCOPED_TRACE("threads=" + std::to_string(threads));
    // Declared before the pool: a worker may still be inside set_value() (past the point where the future
    // became ready) until the pool has joined its workers.
    Promise<void> all;
    Future<void> all_ran = all.get_future();
    ForkJoinPool pool(threads);
    // A task submits sub-tasks (to its own deque) and waits for them.
    const int total = pool.invoke([&] {
      std::vector<Future<int>> parts;
      for (int i = 0; i < 100; ++i) parts.push_back(pool.submit([](int x) { return x; }, i));
      int s = 0;
      for (auto& f : parts) s += f.get();
      return s;
    });
    EXPECT_EQ(total, 99 * 100 / 2);
    // A task posts detached tasks; the last of them fulfils a promise.
    constexpr int kPosted = 64;
    std::atomic<int> ran{0};
    pool.submit([&] {
          for (int i = 0; i < kPosted; ++i) {
            pool.post(JobOptions{.name = "inner-post"}, [&] {
              if (ran.fetch_add(1) + 1 == kPosted) all.set_value();
            });
          }
        })
        .get_for(kSafetyNet);
    all_ran.get_for(kSafetyNet);
    EXPECT_EQ(ran.load(), kPosted);
    // Submitted tasks submitting further tasks, their futures returned to the outside.
    auto nested = pool.submit([&] { return pool.submit([&] { return pool.submit([] { return 7; }); }); });
    EXPECT_EQ(nested.get_for(kSafetyNet).get_for(kSafetyNet).get_for(kSafetyNet), 7);
  }
}

TEST(ForkJoinPool, PostedExceptionsGoToOnError) {
  Watchdog dog("PostedExceptionsGoToOnError");
  std::mutex mutex;
  std::vector<int> codes;
  Promise<void> three;
  Future<void> three_reported = three.get_future();
  ForkJoinPool pool(ForkJoinPoolOptions{.threads = 2, .on_error = [&](std::exception_ptr e) {
                                          try {
                                            std::rethrow_exception(e);
                                          } catch (const TaskError& t) {
                                            std::lock_guard lock(mutex);
                                            codes.push_back(t.code);
                                            if (codes.size() == 3) three.set_value();
                                          } catch (...) {
                                            ADD_FAILURE() << "unexpected exception type";
                                          }
                                        }});
  pool.post([] { throw TaskError("p1", 1); });
  pool.post([](int c) { throw TaskError("p2", c); }, 2);
  pool.submit([&] { pool.post([] { throw TaskError("p3", 3); }); }).get_for(kSafetyNet);
  three_reported.get_for(kSafetyNet);
  {
    std::lock_guard lock(mutex);
    std::vector<int> sorted = codes;
    std::sort(sorted.begin(), sorted.end());
    EXPECT_EQ(sorted, (std::vector<int>{1, 2, 3}));
  }
  EXPECT_EQ(pool.submit([] { return 1; }).get_for(kSafetyNet), 1);  // the workers survived
  pool.shutdown();
  EXPECT_EQ(pool.stats().failed, 3u);
}

TEST(ForkJoinPool, PostedExceptionsGoToTheUnhandledHandlerByDefault) {
  Watchdog dog("PostedExceptionsGoToTheUnhandledHandlerByDefault");
  std::latch reported(1);
  CapturingHandler handler(&reported);
  {
    ForkJoinPool pool(2);
    pool.post([] { throw TaskError("posted boom", 1); });
    reported.wait();
  }
  const auto reports = handler.reports();
  ASSERT_EQ(reports.size(), 1u);
  EXPECT_EQ(reports[0].what, "posted boom");
  EXPECT_FALSE(reports[0].context.empty());
}

TEST(ForkJoinPool, SubmitWithATraceNameAndArguments) {
  ForkJoinPool pool(2);
  auto f = pool.submit(JobOptions{.name = "named"}, [](int a, std::string b) { return b + std::to_string(a); }, 4,
                       std::string("n"));
  EXPECT_EQ(f.get_for(kSafetyNet), "n4");
  auto g = pool.submit([](std::unique_ptr<int> p) { return *p; }, std::make_unique<int>(6));
  EXPECT_EQ(g.get_for(kSafetyNet), 6);
}

// ---- tracing and statistics -------------------------------------------------------------------------------

TEST(ForkJoinPool, RecordsTraceSpansUnderItsName) {
  namespace trace = weft::trace;
  constexpr int kOk = 40;
  trace::clear();
  trace::enable();
  {
    ForkJoinPool pool(ForkJoinPoolOptions{.threads = 2, .name = "fj-traced-pool"});
    std::vector<Future<int>> futures;
    for (int i = 0; i < kOk; ++i) futures.push_back(pool.submit(JobOptions{.name = "fj-span-ok"}, [i] { return i; }));
    auto bad = pool.submit(JobOptions{.name = "fj-span-fail"}, []() -> int { throw TaskError("traced", 1); });
    std::latch posted(1);
    pool.post(JobOptions{.name = "fj-span-post"}, [&] { posted.count_down(); });
    TaskGroup group(pool);
    for (int i = 0; i < 5; ++i) group.spawn(JobOptions{.name = "fj-span-group"}, [] {});
    group.wait();
    for (int i = 0; i < kOk; ++i) EXPECT_EQ(futures[i].get_for(kSafetyNet), i);
    EXPECT_THROW(bad.get_for(kSafetyNet), TaskError);
    posted.wait();
    pool.shutdown();  // the workers are joined: every span is recorded
  }
  trace::disable();
  const std::vector<trace::Span> spans = trace::snapshot();
  std::ostringstream json;
  trace::write_chrome_json(json);
  trace::clear();

  int ok = 0, fail = 0, post = 0, group_spans = 0;
  std::set<std::uint32_t> executors;
  for (const auto& s : spans) {
    if (s.name == nullptr) continue;
    const std::string name = s.name;
    if (name.rfind("fj-span-", 0) != 0) continue;
    executors.insert(s.executor);
    EXPECT_LT(s.worker, 2u) << name;
    EXPECT_LE(s.submit, s.start) << name;
    EXPECT_LE(s.start, s.end) << name;
    if (name == "fj-span-ok") {
      ++ok;
      EXPECT_FALSE(s.failed);
    } else if (name == "fj-span-fail") {
      ++fail;
      EXPECT_TRUE(s.failed);
    } else if (name == "fj-span-post") {
      ++post;
    } else if (name == "fj-span-group") {
      ++group_spans;
    }
  }
  EXPECT_EQ(ok, kOk);
  EXPECT_EQ(fail, 1);
  EXPECT_EQ(post, 1);
  EXPECT_EQ(group_spans, 5);
  ASSERT_EQ(executors.size(), 1u) << "the spans of one pool carry one executor id";
  const std::uint32_t id = *executors.begin();
  EXPECT_NE(id, 0u) << "the pool registers its name with the tracer";
  const std::string expected = "\"pid\":" + std::to_string(id) + ",\"tid\":0,\"args\":{\"name\":\"fj-traced-pool\"}";
  EXPECT_NE(json.str().find(expected), std::string::npos) << "no process named after the pool in the trace";
}

TEST(ForkJoinPool, NoSpansWhenTracingIsOff) {
  namespace trace = weft::trace;
  trace::disable();
  trace::clear();
  {
    ForkJoinPool pool(2);
    for (int i = 0; i < 10; ++i) pool.submit(JobOptions{.name = "fj-untraced"}, [] {}).get_for(kSafetyNet);
  }
  for (const auto& s : trace::snapshot()) {
    EXPECT_FALSE(s.name != nullptr && std::string(s.name) == "fj-untraced");
  }
}

TEST(ForkJoinPool, StatsCountJobs) {
  Watchdog dog("StatsCountJobs");
  ForkJoinPool pool(ForkJoinPoolOptions{.threads = 2, .spin = std::chrono::nanoseconds(0)});
  EXPECT_EQ(pool.stats().threads, 2u);
  EXPECT_TRUE(eventually([&] { return pool.stats().parks >= 1; })) << "an idle pool's workers never slept";

  constexpr int kTasks = 100;
  std::vector<Future<int>> futures;
  for (int i = 0; i < kTasks; ++i) {
    futures.push_back(pool.submit([i]() -> int {
      if (i % 10 == 0) throw TaskError("counted", i);
      return i;
    }));
  }
  for (int i = 0; i < kTasks; ++i) {
    if (i % 10 == 0) {
      EXPECT_THROW(futures[i].get_for(kSafetyNet), TaskError);
    } else {
      EXPECT_EQ(futures[i].get_for(kSafetyNet), i);
    }
  }

  // A join whose first half waits for the second: the second is stolen.
  std::latch b_started(1);
  pool.invoke([&] { pool.join([&] { b_started.wait(); }, [&] { b_started.count_down(); }); });
  EXPECT_GE(pool.stats().stolen, 1u);

  // Queued behind held workers: counted as queued; two of them cancelled through their futures.
  {
    HeldWorkers held(pool, 2);
    std::vector<Future<int>> queued;
    for (int i = 0; i < 5; ++i) queued.push_back(pool.submit([i] { return i; }));
    EXPECT_EQ(pool.stats().queued, 5u);
    EXPECT_TRUE(queued[1].cancel());
    EXPECT_TRUE(queued[3].cancel());
    held.release();
    for (int i : {0, 2, 4}) EXPECT_EQ(queued[i].get_for(kSafetyNet), i);
    EXPECT_THROW(queued[1].get(), Cancelled);
  }
  pool.shutdown();  // the workers are joined: the counters are final
  const auto s = pool.stats();
  EXPECT_EQ(s.failed, 10u);
  EXPECT_EQ(s.cancelled, 2u);
  EXPECT_GE(s.executed, static_cast<std::uint64_t>(kTasks) + 1 + 2 + 3);  // tasks, stolen half, held, queued
  EXPECT_EQ(s.queued, 0u);
  EXPECT_GE(s.parks, 1u);
}

// ---- where am I -------------------------------------------------------------------------------------------

TEST(ForkJoinPool, CurrentAndWorkerIndexAndInPool) {
  EXPECT_EQ(ForkJoinPool::current(), nullptr);
  EXPECT_EQ(ForkJoinPool::current_worker_index(), -1);
  for (std::size_t threads : {std::size_t{1}, std::size_t{2}, std::size_t{5}}) {
    SCOPED_TRACE("threads=" + std::to_string(threads));
    ForkJoinPool pool(ForkJoinPoolOptions{.threads = threads, .name = "fjw"});
    ForkJoinPool other(1);
    EXPECT_FALSE(pool.in_pool());
    EXPECT_EQ(pool.threads(), threads);
    EXPECT_EQ(pool.name(), "fjw");
    {
      HeldWorkers held(pool, threads);  // one held task per worker: every index appears once
      std::set<int> expected;
      for (std::size_t i = 0; i < threads; ++i) expected.insert(static_cast<int>(i));
      EXPECT_EQ(held.indices(), expected);
    }
    auto seen = pool.invoke([&] {
      return std::tuple(ForkJoinPool::current() == &pool, pool.in_pool(), other.in_pool(), os_thread_name(),
                        ForkJoinPool::current_worker_index());
    });
    EXPECT_TRUE(std::get<0>(seen));
    EXPECT_TRUE(std::get<1>(seen));
    EXPECT_FALSE(std::get<2>(seen));
    EXPECT_EQ(std::get<3>(seen), "fjw-" + std::to_string(std::get<4>(seen)));
    // A plain thread started from a worker is not a worker.
    auto from_thread = pool.invoke([&] {
      int index = 0;
      bool inside = true;
      ForkJoinPool* cur = &pool;
      std::thread t([&] {
        index = ForkJoinPool::current_worker_index();
        inside = pool.in_pool();
        cur = ForkJoinPool::current();
      });
      t.join();
      return index == -1 && !inside && cur == nullptr;
    });
    EXPECT_TRUE(from_thread);
  }
  EXPECT_EQ(ForkJoinPool::current(), nullptr);
}

TEST(ForkJoinPool, DefaultPool) {
  ForkJoinPool& d = weft::default_pool();
  EXPECT_EQ(&d, &weft::default_pool());
  EXPECT_EQ(d.threads(), cpus_in_affinity_mask());
  EXPECT_EQ(&weft::current_or_default_pool(), &d);
  // Made once even when first asked for from several threads at once.
  std::vector<ForkJoinPool*> seen(4, nullptr);
  {
    std::vector<std::jthread> threads;
    for (std::size_t i = 0; i < seen.size(); ++i) threads.emplace_back([&seen, i] { seen[i] = &weft::default_pool(); });
  }
  for (auto* p : seen) EXPECT_EQ(p, &d);
  // The free join uses the default pool from outside and the current pool from a worker.
  auto [on_default, two] = weft::join([] { return ForkJoinPool::current(); }, [] { return 2; });
  EXPECT_EQ(on_default, &d);
  EXPECT_EQ(two, 2);
  ForkJoinPool pool(2);
  auto inside = pool.invoke([&] {
    auto [p, q] = weft::join([] { return ForkJoinPool::current(); }, [] { return ForkJoinPool::current(); });
    return std::tuple(&weft::current_or_default_pool() == &pool, p == &pool, q == &pool);
  });
  EXPECT_TRUE(std::get<0>(inside));
  EXPECT_TRUE(std::get<1>(inside));
  EXPECT_TRUE(std::get<2>(inside));
  EXPECT_EQ(d.submit([] { return 5; }).get_for(kSafetyNet), 5);
}

// ---- options --------------------------------------------------------------------------------------------

TEST(ForkJoinPool, OptionsAreValidated) {
  EXPECT_THROW(ForkJoinPool(ForkJoinPoolOptions{.capacity = 0}), std::invalid_argument);
  EXPECT_THROW(ForkJoinPool(ForkJoinPoolOptions{.deque_capacity = 0}), std::invalid_argument);
  EXPECT_THROW(ForkJoinPool(ForkJoinPoolOptions{.deque_capacity = 1}), std::invalid_argument);
  {
    ForkJoinPool pool(ForkJoinPoolOptions{});
    EXPECT_EQ(pool.threads(), cpus_in_affinity_mask());
    EXPECT_EQ(pool.name(), "forkjoin");
  }
  {
    ForkJoinPool pool(std::size_t{3});
    EXPECT_EQ(pool.threads(), 3u);
  }
  {
    ForkJoinPool pool(std::size_t{0});
    EXPECT_EQ(pool.threads(), cpus_in_affinity_mask());
  }
}

TEST(ForkJoinPool, TinyDequesRunOverflowingJobsInline) {
  // A deque of two jobs: deep recursion pushes past it, and those halves run at once on the pusher.
  for (std::size_t threads : {std::size_t{1}, std::size_t{4}}) {
    SCOPED_TRACE("threads=" + std::to_string(threads));
    ForkJoinPool pool(ForkJoinPoolOptions{.threads = threads, .deque_capacity = 2});
    EXPECT_EQ(pool.invoke([&] { return fib(pool, 20); }), fib_seq(20));
    auto sum = pool.invoke([&] {
      std::vector<Future<int>> fs;
      for (int i = 0; i < 50; ++i) fs.push_back(pool.submit([i] { return i; }));
      int s = 0;
      for (auto& f : fs) s += f.get();
      return s;
    });
    EXPECT_EQ(sum, 49 * 50 / 2);
  }
}

TEST(ForkJoinPool, SmallStacksStillRunDeepRecursion) {
  ForkJoinPool pool(ForkJoinPoolOptions{.threads = 2, .stack_size = std::size_t{1} << 20});
  EXPECT_EQ(pool.invoke([&] { return fib(pool, 18); }), fib_seq(18));
}

// ---- back-pressure ----------------------------------------------------------------------------------------

TEST(ForkJoinPool, InjectionQueueBlocksOutsideSubmittersWhenFull) {
  Watchdog dog("InjectionQueueBlocksOutsideSubmittersWhenFull");
  for (std::size_t capacity : {std::size_t{1}, std::size_t{2}}) {
    for (std::size_t threads : {std::size_t{1}, std::size_t{2}}) {
      SCOPED_TRACE("capacity=" + std::to_string(capacity) + " threads=" + std::to_string(threads));
      ForkJoinPool pool(ForkJoinPoolOptions{.threads = threads, .capacity = capacity});
      HeldWorkers held(pool, threads);  // nobody takes from the injection queue until released
      const int total = static_cast<int>(capacity) + 3;
      std::atomic<int> submitted{0};
      std::atomic<bool> released{false};
      std::atomic<int> returned_early{0};  // submits past the capacity that returned while nothing was taken
      std::atomic<int> ran{0};
      std::vector<Future<int>> futures(static_cast<std::size_t>(total));
      std::jthread producer([&] {
        for (int i = 0; i < total; ++i) {
          futures[static_cast<std::size_t>(i)] = pool.submit([&ran, i] {
            ran.fetch_add(1);
            return i;
          });
          if (i >= static_cast<int>(capacity) && !released.load()) returned_early.fetch_add(1);
          submitted.store(i + 1);
        }
      });
      ASSERT_TRUE(eventually([&] { return submitted.load() >= static_cast<int>(capacity); }));
      EXPECT_EQ(pool.stats().queued, capacity);
      EXPECT_EQ(ran.load(), 0);
      released = true;
      held.release();
      producer.join();
      EXPECT_EQ(returned_early.load(), 0) << "a submit returned while the injection queue was full";
      for (int i = 0; i < total; ++i) EXPECT_EQ(futures[static_cast<std::size_t>(i)].get_for(kSafetyNet), i);
      EXPECT_EQ(ran.load(), total);
    }
  }
}

TEST(ForkJoinPool, SeveralBlockedSubmittersAllGetThrough) {
  Watchdog dog("SeveralBlockedSubmittersAllGetThrough");
  constexpr int kProducers = 4;
  constexpr int kEach = 50;
  for (std::size_t threads : {std::size_t{1}, std::size_t{3}}) {
    SCOPED_TRACE("threads=" + std::to_string(threads));
    ForkJoinPool pool(ForkJoinPoolOptions{.threads = threads, .capacity = 1});
    std::atomic<long> sum{0};
    std::latch go(kProducers + 1);
    {
      HeldWorkers held(pool, threads);
      std::vector<std::jthread> producers;
      for (int p = 0; p < kProducers; ++p) {
        producers.emplace_back([&, p] {
          go.arrive_and_wait();
          for (int i = 0; i < kEach; ++i) pool.post([&sum, v = p * kEach + i] { sum.fetch_add(v); });
        });
      }
      go.arrive_and_wait();
      held.release();
    }  // producers joined: every post has returned
    pool.shutdown();
    const long n = kProducers * kEach;
    EXPECT_EQ(sum.load(), n * (n - 1) / 2);
  }
}

TEST(ForkJoinPool, ShutdownWakesASubmitterBlockedOnAFullQueue) {
  Watchdog dog("ShutdownWakesASubmitterBlockedOnAFullQueue");
  ForkJoinPool pool(ForkJoinPoolOptions{.threads = 1, .capacity = 2});
  HeldWorkers held(pool, 1);
  std::atomic<int> submitted{0};
  std::vector<Future<int>> queued(2);
  std::atomic<bool> refused{false};
  std::jthread producer([&] {
    for (int i = 0; i < 2; ++i) {
      queued[static_cast<std::size_t>(i)] = pool.submit([i] { return i; });
      submitted.store(i + 1);
    }
    try {
      (void)pool.submit([] { return -1; });  // blocks: full, and the worker is held
    } catch (const BrokenExecutor&) {
      refused = true;
    }
  });
  ASSERT_TRUE(eventually([&] { return submitted.load() == 2; }));
  std::jthread stopper([&] { pool.shutdown(Shutdown::drain); });
  producer.join();  // returns only once the shutdown has woken it
  EXPECT_TRUE(refused.load());
  held.release();
  stopper.join();
  for (int i = 0; i < 2; ++i) EXPECT_EQ(queued[static_cast<std::size_t>(i)].get(), i);  // drained
}

// ---- shutdown -----------------------------------------------------------------------------------------------

TEST(ForkJoinPool, ShutdownFromAWorkerDoesNotDeadlock) {
  Watchdog dog("ShutdownFromAWorkerDoesNotDeadlock");
  for (Shutdown mode : {Shutdown::drain, Shutdown::cancel_pending}) {
    for (std::size_t threads : {std::size_t{1}, std::size_t{2}, std::size_t{4}}) {
      SCOPED_TRACE("threads=" + std::to_string(threads) + (mode == Shutdown::drain ? " drain" : " cancel_pending"));
      auto pool = std::make_unique<ForkJoinPool>(threads);
      ForkJoinPool& p = *pool;
      std::atomic<int> group_ran{0};
      struct Outcome {
        bool refused_submit = false;
        bool refused_post = false;
        int join_sum = 0;
        std::vector<Future<int>> queued;
      };
      auto f = p.submit([&] {
        Outcome o;
        for (int i = 0; i < 20; ++i) o.queued.push_back(p.submit([i] { return i; }));  // queued before
        p.shutdown(mode);  // returns at once: a worker cannot join the workers
        try {
          (void)p.submit([] { return 0; });
        } catch (const BrokenExecutor&) {
          o.refused_submit = true;
        }
        try {
          p.post([] {});
        } catch (const BrokenExecutor&) {
          o.refused_post = true;
        }
        // Running jobs may still join and spawn.
        auto [x, y] = p.join([] { return 1; }, [] { return 2; });
        o.join_sum = x + y;
        TaskGroup g(p);
        for (int i = 0; i < 10; ++i) g.spawn([&] { ++group_ran; });
        g.wait();
        return o;
      });
      Outcome o = f.get_for(kSafetyNet);
      EXPECT_TRUE(o.refused_submit);
      EXPECT_TRUE(o.refused_post);
      EXPECT_EQ(o.join_sum, 3);
      EXPECT_EQ(group_ran.load(), 10);
      EXPECT_THROW((void)p.submit([] { return 0; }), BrokenExecutor);
      EXPECT_THROW(p.post([] {}), BrokenExecutor);
      EXPECT_THROW(p.invoke([] { return 0; }), BrokenExecutor);
      EXPECT_THROW(p.join([] {}, [] {}), BrokenExecutor);  // from outside join is an invoke
      pool.reset();  // the destructor joins the workers
      for (int i = 0; i < 20; ++i) {
        auto& q = o.queued[static_cast<std::size_t>(i)];
        ASSERT_TRUE(q.ready());
        if (mode == Shutdown::drain) {
          EXPECT_EQ(q.get(), i);
        } else if (q.cancelled()) {
          EXPECT_THROW(q.get(), Cancelled);
        } else {
          EXPECT_EQ(q.get(), i);
        }
      }
    }
  }
}

TEST(ForkJoinPool, ShutdownCancelPendingStillRunsGroupTasksAndInvokes) {
  Watchdog dog("ShutdownCancelPendingStillRunsGroupTasksAndInvokes");
  ForkJoinPool pool(2);
  HeldWorkers held(pool, 2);
  TaskGroup group(pool);
  std::atomic<int> group_ran{0};
  std::atomic<int> submitted_ran{0};
  for (int i = 0; i < 20; ++i) group.spawn([&] { ++group_ran; });
  std::vector<Future<int>> submitted;
  for (int i = 0; i < 10; ++i) {
    submitted.push_back(pool.submit([&submitted_ran, i] {
      ++submitted_ran;
      return i;
    }));
  }
  int invoked = 0;
  std::jthread invoker([&] { invoked = pool.invoke([] { return 42; }); });
  // Everything is queued (the invoker's job too) before the shutdown starts.
  ASSERT_TRUE(eventually([&] { return pool.stats().queued == 31; }));
  std::jthread stopper([&] { pool.shutdown(Shutdown::cancel_pending); });
  // Submitted tasks are cancelled even while the workers are still held...
  for (auto& f : submitted) {
    ASSERT_TRUE(f.wait_for(kSafetyNet));
    EXPECT_TRUE(f.cancelled());
  }
  held.release();
  // ...while the group's tasks and the invoked job are parts of running work: they still run.
  invoker.join();
  EXPECT_EQ(invoked, 42);
  group.wait();
  EXPECT_EQ(group_ran.load(), 20);
  stopper.join();
  EXPECT_EQ(submitted_ran.load(), 0);
}

// Regression: shutdown(cancel_pending) takes every job out of the injection queue, cancels the submitted
// ones and hands the others (TaskGroup tasks, invoke jobs) to the workers. Workers must not see the pool as
// drained while that hand-over is in progress, or they leave with group tasks never run (and wait() hangs).
// Group tasks queued both before and after the cancelled ones keep workers and the shutdown racing.
TEST(ForkJoinPool, ShutdownCancelPendingLosesNoGroupTask) {
  Watchdog dog("ShutdownCancelPendingLosesNoGroupTask");
  const int rounds = static_cast<int>(weft::test::scaled(100, 40));
  constexpr int kBefore = 20;
  constexpr int kSubmitted = 10;
  constexpr int kAfter = 200;
  for (int round = 0; round < rounds; ++round) {
    SCOPED_TRACE("round " + std::to_string(round));
    ForkJoinPool pool(2);
    HeldWorkers held(pool, 2);
    std::atomic<int> group_ran{0};
    // On the heap: if tasks were lost, the group can never finish, and is left behind instead of hanging
    // in its destructor.
    auto group = std::make_unique<TaskGroup>(pool);
    for (int i = 0; i < kBefore; ++i) group->spawn([&] { ++group_ran; });
    std::vector<Future<int>> submitted;
    for (int i = 0; i < kSubmitted; ++i) submitted.push_back(pool.submit([i] { return i; }));
    for (int i = 0; i < kAfter; ++i) group->spawn([&] { ++group_ran; });
    ASSERT_EQ(pool.stats().queued, static_cast<std::size_t>(kBefore + kSubmitted + kAfter));
    std::jthread stopper([&] { pool.shutdown(Shutdown::cancel_pending); });
    for (auto& f : submitted) ASSERT_TRUE(f.wait_for(kSafetyNet));
    held.release();  // the workers now race the shutdown's hand-over
    stopper.join();  // the workers have left: nothing runs any more
    EXPECT_EQ(group_ran.load(), kBefore + kAfter) << "workers left with group tasks still queued";
    if (group_ran.load() != kBefore + kAfter) {
      (void)group.release();  // waiting would never end
      break;
    }
    group->wait();
  }
}

TEST(ForkJoinPool, ShutdownIsIdempotentAndOutsideTaskGroupsAreRefused) {
  ForkJoinPool pool(2);
  pool.shutdown();
  pool.shutdown(Shutdown::cancel_pending);
  pool.shutdown();
  TaskGroup group(pool);
  EXPECT_THROW(group.spawn([] {}), BrokenExecutor);
  group.wait();  // nothing was queued: returns at once
  EXPECT_THROW((void)pool.map([](int x) { return x; }, std::vector<int>{1}), BrokenExecutor);
}


}  // namespace
