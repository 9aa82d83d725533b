// `co_await` on weft::Future inside io::Task: pool futures (value, exception, already ready), promises fulfilled
// by other threads, the loop serving other tasks meanwhile, cancellation of queued and of running work, and
// run_in_executor.
#include <gtest/gtest.h>

#include <atomic>
#include <memory>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "../thread/pool_test_support.hpp"
#include "io_test_support.hpp"
#include "weft/core/future.hpp"
#include "weft/io/future.hpp"
#include "weft/parallel/fork_join_pool.hpp"
#include "weft/parallel/sort.hpp"
#include "weft/thread/thread_pool.hpp"

namespace {

using namespace weft::test::iotest;
using weft::Cancelled;
using weft::Future;
using weft::Promise;
using weft::ThreadPool;
using weft::test::Blocker;

class IoFutureBridge : public BackendTest {};
WEFT_IO_INSTANTIATE(IoFutureBridge);

template <class T>
io::Task<T> await_future(Future<T> f) {
  co_return co_await std::move(f);
}

TEST_P(IoFutureBridge, AwaitsAThreadPoolValue) {
  ThreadPool pool(2);
  run([](ThreadPool& p) -> io::Task<void> {
    int v = co_await p.submit([] { return 42; });
    EXPECT_EQ(v, 42);
    std::string s = co_await p.submit([](int n) { return std::string(n, 'z'); }, 3);
    EXPECT_EQ(s, "zzz");
    co_await p.submit([] {});
    auto up = co_await p.submit([] { return std::make_unique<int>(8); });
    EXPECT_EQ(*up, 8);
  }(pool));
}

TEST_P(IoFutureBridge, AwaitsAThreadPoolException) {
  ThreadPool pool(1);
  run([](ThreadPool& p) -> io::Task<void> {
    std::exception_ptr err = co_await error_of(await_future(p.submit([]() -> int { throw TestError(5); })));
    EXPECT_TRUE(is_error<TestError>(err));
  }(pool));
}

TEST_P(IoFutureBridge, AwaitsAnAlreadyReadyFuture) {
  io::Loop loop(options());
  expect_backend(loop);
  loop.run([](io::Loop& l) -> io::Task<void> {
    std::uint64_t turns = l.stats().turns;
    int v = co_await weft::make_ready_future(7);
    EXPECT_EQ(v, 7);
    co_await weft::make_ready_future();
    Promise<std::string> p;
    Future<std::string> f = p.get_future();
    p.set_value("set before the await");
    std::string s = co_await std::move(f);
    EXPECT_EQ(s, "set before the await");
    EXPECT_EQ(l.stats().turns, turns) << "awaiting a ready future suspended the task";
    std::exception_ptr err = co_await error_of(
        await_future(weft::make_exceptional_future<int>(std::make_exception_ptr(TestError(1)))));
    EXPECT_TRUE(is_error<TestError>(err));
    err = co_await error_of(await_future(Future<int>()));
    EXPECT_TRUE(is_error<weft::FutureError>(err)) << "an invalid future must be refused";
  }(loop));
}

TEST_P(IoFutureBridge, AwaitsAPromiseFulfilledFromAnotherThread) {
  run([]() -> io::Task<void> {
    Promise<std::unique_ptr<int>> value;
    Promise<int> error;
    Future<std::unique_ptr<int>> fv = value.get_future();
    Future<int> fe = error.get_future();
    std::thread producer([&] {
      value.set_value(std::make_unique<int>(3));
      error.set_exception(std::make_exception_ptr(TestError(9)));
    });
    std::unique_ptr<int> v = co_await std::move(fv);
    std::exception_ptr err = co_await error_of(await_future(std::move(fe)));
    producer.join();
    EXPECT_EQ(*v, 3);
    EXPECT_TRUE(is_error<TestError>(err));
  }());
}

TEST_P(IoFutureBridge, TheLoopServesOtherTasksWhileATaskWaits) {
  // The pool task holds until the loop's other task has made progress: if awaiting blocked the loop, that
  // never happens and the pool task reports "timed out" after 10 s.
  ThreadPool pool(1);
  run([](ThreadPool& p) -> io::Task<void> {
    Promise<void> gate;
    Future<void> gate_f = gate.get_future();
    Future<std::string> work = p.submit([g = std::move(gate_f)]() mutable {
      return std::string(g.wait_for(std::chrono::seconds(10)) ? "released" : "timed out");
    });
    int ticks = 0;
    std::string result;
    co_await io::task_group([&](io::TaskGroup& g) -> io::Task<void> {
      g.spawn([](Future<std::string> w, std::string& out) -> io::Task<void> {
        out = co_await std::move(w);
      }(std::move(work), result));
      g.spawn([](int& t, Promise<void>& open) -> io::Task<void> {
        for (int i = 0; i < 5; ++i) {
          co_await io::sleep(1ms);
          ++t;
        }
        open.set_value();
      }(ticks, gate));
      co_return;
    });
    EXPECT_EQ(result, "released");
    EXPECT_EQ(ticks, 5);
  }(pool));
}

TEST_P(IoFutureBridge, CancellingWhileTheWorkIsQueuedCancelsTheWork) {
  ThreadPool pool(1);
  std::atomic<bool> ran{false};
  {
    Blocker blocker(pool);  // the only worker is busy: what is submitted now stays queued
    Future<int> f1 = pool.submit([&ran] {
      ran = true;
      return 1;
    });
    Future<int> f2 = pool.submit([&ran] {
      ran = true;
      return 2;
    });
    run([](Future<int> a, Future<int> b) -> io::Task<void> {
      // By wait_for's timeout...
      std::exception_ptr err = co_await error_of(io::wait_for(await_future(std::move(a)), 20ms));
      EXPECT_TRUE(is_error<weft::Timeout>(err));
      // ...and by a group's cancellation.
      bool cancelled = false;
      co_await io::task_group([&](io::TaskGroup& g) -> io::Task<void> {
        g.spawn([](Future<int> f, bool& c) -> io::Task<void> {
          try {
            co_await std::move(f);
          } catch (const Cancelled&) {
            c = true;
          }
        }(std::move(b), cancelled));
        co_await io::sleep(0ms);
        g.cancel();
      });
      EXPECT_TRUE(cancelled);
    }(std::move(f1), std::move(f2)));
  }  // releases the worker
  pool.wait_idle();
  EXPECT_FALSE(ran.load()) << "cancelled work still ran";
  EXPECT_EQ(pool.stats().cancelled, 2u);
}

TEST_P(IoFutureBridge, CancellingWhileTheWorkRunsStopsWaiting) {
  ThreadPool pool(1);
  Promise<void> started;
  Promise<void> gate;
  Future<void> started_f = started.get_future();
  Future<void> gate_f = gate.get_future();
  std::atomic<bool> finished{false};
  Future<int> work = pool.submit([&started, &finished, g = std::move(gate_f)]() mutable {
    started.set_value();
    g.wait_for(std::chrono::seconds(10));
    finished = true;
    return 9;
  });
  bool cancelled = false;
  run([](Future<int> w, Future<void> s, bool& c) -> io::Task<void> {
    co_await io::task_group([&](io::TaskGroup& g) -> io::Task<void> {
      g.spawn([](Future<int> f, bool& cc) -> io::Task<void> {
        try {
          co_await std::move(f);
        } catch (const Cancelled&) {
          cc = true;
        }
      }(std::move(w), c));
      co_await std::move(s);  // the work is running now: it can no longer be cancelled
      g.cancel();
    });
  }(std::move(work), std::move(started_f), cancelled));
  // The loop is gone; the work is still held by the gate. Finishing it now must neither touch the loop nor
  // leak the awaiter's wake-up record.
  EXPECT_TRUE(cancelled);
  EXPECT_FALSE(finished.load());
  gate.set_value();
  pool.wait_idle();
  EXPECT_TRUE(finished.load());
}

TEST_P(IoFutureBridge, RunInExecutor) {
  ThreadPool pool(2);
  run([](ThreadPool& p) -> io::Task<void> {
    const auto loop_thread = std::this_thread::get_id();
    auto [sum, where] = co_await io::run_in_executor(
        p, [](int a, int b) { return std::make_pair(a + b, std::this_thread::get_id()); }, 2, 3);
    EXPECT_EQ(sum, 5);
    EXPECT_NE(where, loop_thread) << "run_in_executor ran the call on the loop thread";
  }(pool));
}

// A fork/join computation handed off from the loop: the loop awaits the ForkJoinPool's future while the pool's
// workers sort, and another task on the loop keeps running meanwhile.
TEST_P(IoFutureBridge, AwaitsAForkJoinPoolComputation) {
  weft::ForkJoinPool pool(weft::ForkJoinPoolOptions{.threads = 2});
  run([](weft::ForkJoinPool& p) -> io::Task<void> {
    std::vector<int> keys(200'000);
    for (std::size_t i = 0; i < keys.size(); ++i) keys[i] = static_cast<int>((i * 7919) % 100'003);
    int ticks = 0;
    bool sorted = false;
    co_await io::task_group([&](io::TaskGroup& g) -> io::Task<void> {
      g.spawn([](int& t, bool& done) -> io::Task<void> {
        while (!done && t < 100'000) {  // the loop stays free while the workers sort
          ++t;
          co_await io::sleep(0ms);
        }
      }(ticks, sorted));
      auto sort_job = [&keys, &p] { weft::parallel_sort(p, keys.begin(), keys.end()); };
      Future<void> job = io::run_in_executor(p, sort_job);
      co_await std::move(job);
      sorted = true;
      int sum = co_await p.submit([] { return 20 + 22; });
      EXPECT_EQ(sum, 42);
    });
    EXPECT_TRUE(std::is_sorted(keys.begin(), keys.end()));
    EXPECT_GT(ticks, 0) << "the loop did not run another task while it waited";
  }(pool));
}

TEST_P(IoFutureBridge, RunInExecutorReportsAFullPool) {
  weft::ThreadPoolOptions o;
  o.threads = 1;
  o.max_threads = 1;
  o.capacity = 1;
  o.overflow = weft::Overflow::reject;
  ThreadPool pool(o);
  {
    Blocker blocker(pool);
    Future<void> queued = pool.submit([] {});  // fills the one queue slot
    run([](ThreadPool& p) -> io::Task<void> {
      std::exception_ptr err = co_await error_of([](ThreadPool& pp) -> io::Task<int> {
        co_return co_await io::run_in_executor(pp, [] { return 1; });
      }(p));
      EXPECT_TRUE(is_error<weft::QueueFull>(err));
    }(pool));
  }
  pool.wait_idle();
}

TEST_P(IoFutureBridge, ManyTasksAwaitPoolFuturesAtOnce) {
  const int n = static_cast<int>(scaled(2000, 300));
  ThreadPool pool(2);
  long total = run([](ThreadPool& p, int count) -> io::Task<long> {
    std::vector<io::Task<long>> tasks;
    for (int i = 0; i < count; ++i) tasks.push_back(await_future(p.submit([i] { return long{i} * i; })));
    std::vector<long> values = co_await io::gather(std::move(tasks));
    long sum = 0;
    for (long v : values) sum += v;
    co_return sum;
  }(pool, n));
  long expected = 0;
  for (long i = 0; i < n; ++i) expected += i * i;
  EXPECT_EQ(total, expected);
}

}  // namespace
