// io::Loop: call_soon order, call_soon_threadsafe from several threads (and waking a blocked loop), the bound
// of the cross-thread queue, spawned background tasks (run, report failures, cancelled at the end of run()),
// and run() on a thread that already runs a loop.
#include <gtest/gtest.h>

#include <atomic>
#include <cstdio>
#include <fstream>
#include <mutex>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "io_test_support.hpp"
#include "weft/core/future.hpp"
#include "weft/io/future.hpp"

namespace {

using namespace weft::test::iotest;
using weft::Future;
using weft::Promise;

class IoLoop : public BackendTest {};
WEFT_IO_INSTANTIATE(IoLoop);

TEST_P(IoLoop, CallSoonRunsInCallOrder) {
  std::vector<int> order;
  run([](std::vector<int>& out) -> io::Task<void> {
    io::Loop& loop = *io::Loop::current();
    Promise<void> done;
    Future<void> f = done.get_future();
    for (int i = 0; i < 100; ++i) loop.call_soon([&out, i] { out.push_back(i); });
    loop.call_soon([&done] { done.set_value(); });
    EXPECT_TRUE(out.empty()) << "call_soon ran a call inline";
    co_await std::move(f);
  }(order));
  ASSERT_EQ(order.size(), 100u);
  for (int i = 0; i < 100; ++i) EXPECT_EQ(order[i], i);
}

TEST_P(IoLoop, CallSoonThreadsafeFromSeveralThreads) {
  constexpr int kThreads = 4;
  const int per_thread = static_cast<int>(scaled(2000, 500));
  std::vector<int> last_seen(kThreads, -1);  // loop thread only
  int total = 0;                             // loop thread only
  bool in_order = true;
  run([](int per, std::vector<int>& last, int& count, bool& ordered) -> io::Task<void> {
    io::Loop& loop = *io::Loop::current();
    Promise<void> all_ran;
    Future<void> f = all_ran.get_future();
    std::vector<std::thread> threads;
    for (int t = 0; t < kThreads; ++t) {
      threads.emplace_back([&, t] {
        for (int i = 0; i < per; ++i) {
          loop.call_soon_threadsafe([&, t, i] {
            if (i != last[t] + 1) ordered = false;
            last[t] = i;
            if (++count == kThreads * per) all_ran.set_value();
          });
        }
      });
    }
    co_await std::move(f);
    for (auto& th : threads) th.join();
  }(per_thread, last_seen, total, in_order));
  EXPECT_EQ(total, kThreads * per_thread);
  EXPECT_TRUE(in_order) << "calls from one thread ran out of order";
  for (int t = 0; t < kThreads; ++t) EXPECT_EQ(last_seen[t], per_thread - 1);
}

// The state letter of thread `tid` of this process ('S' = sleeping in the kernel), or 0.
char thread_state(pid_t tid) {
  std::ifstream in("/proc/self/task/" + std::to_string(tid) + "/stat");
  std::string line;
  std::getline(in, line);
  auto close = line.rfind(')');
  return close == std::string::npos || close + 2 >= line.size() ? 0 : line[close + 2];
}

// Awaitable that suspends the task and hands its handle to `slot` (resumed by whoever holds it).
struct Park {
  std::coroutine_handle<>* slot;
  bool await_ready() const noexcept { return false; }
  void await_suspend(std::coroutine_handle<> h) noexcept { *slot = h; }
  void await_resume() const noexcept {}
};

TEST_P(IoLoop, CallSoonThreadsafeWakesABlockedLoop) {
  // The only task parks with nothing pending (no I/O, no timer): the loop blocks in the kernel with no
  // timeout. Another thread waits until the loop thread is asleep, then posts the call that resumes the task.
  // A missed wake-up hangs the loop; the watchdog then aborts the test binary.
  Watchdog watchdog("CallSoonThreadsafeWakesABlockedLoop (missed wake-up?)", std::chrono::seconds(30));
  io::Loop loop(options());
  expect_backend(loop);
  const pid_t loop_tid = static_cast<pid_t>(::syscall(SYS_gettid));
  std::coroutine_handle<> parked;
  std::atomic<bool> saw_sleep{false};
  std::thread poster;
  loop.run([](io::Loop& l, std::coroutine_handle<>& slot, std::thread& th, pid_t tid,
              std::atomic<bool>& saw) -> io::Task<void> {
    th = std::thread([&l, &slot, tid, &saw] {
      // Bounded: about 10 s of polling /proc. If the loop never sleeps, post anyway (the test still checks
      // that the call runs, only the "blocked" part is then not exercised, which saw_sleep reports).
      for (int i = 0; i < 100'000 && !saw.load(); ++i) {
        if (thread_state(tid) == 'S') saw = true;
        else std::this_thread::yield();
      }
      l.call_soon_threadsafe([&slot] { slot.resume(); });
    });
    co_await Park{&slot};
  }(loop, parked, poster, loop_tid, saw_sleep));
  poster.join();
  EXPECT_TRUE(saw_sleep.load()) << "the loop thread was never seen blocked";
  EXPECT_GE(loop.stats().waits, 1u);
}

TEST_P(IoLoop, CallSoonThreadsafeRejectsBeyondMaxPendingCalls) {
  io::LoopOptions o;
  o.max_pending_calls = 8;
  io::Loop loop(options(o));
  expect_backend(loop);
  int ran = 0;
  Promise<void> eighth;
  Future<void> f = eighth.get_future();
  // Queued before the loop runs (any thread may post; none of them runs yet).
  for (int i = 0; i < 7; ++i) loop.call_soon_threadsafe([&ran] { ++ran; });
  loop.call_soon_threadsafe([&ran, &eighth] {
    ++ran;
    eighth.set_value();
  });
  EXPECT_THROW(loop.call_soon_threadsafe([&ran] { ran += 1000; }), weft::QueueFull);
  EXPECT_EQ(ran, 0);
  loop.run(io::wait_for(
      [](Future<void> all, int& count, io::Loop& l) -> io::Task<void> {
        co_await std::move(all);
        EXPECT_EQ(count, 8);
        // Drained: the queue takes calls again.
        Promise<void> again;
        Future<void> g = again.get_future();
        std::thread other([&l, &again] { l.call_soon_threadsafe([&again] { again.set_value(); }); });
        co_await std::move(g);
        other.join();
      }(std::move(f), ran, loop),
      kScenarioLimit));
  EXPECT_EQ(ran, 8);
}

io::Task<void> background(int& counter, Promise<void>& started) {
  ++counter;
  started.set_value();
  co_return;
}

TEST_P(IoLoop, SpawnedTasksRun) {
  io::Loop loop(options());
  expect_backend(loop);
  int counter = 0;
  Promise<void> before_run;
  Promise<void> from_task;
  Future<void> f1 = before_run.get_future();
  Future<void> f2 = from_task.get_future();
  loop.spawn(background(counter, before_run));  // spawned before run(): starts when the loop runs
  loop.run(io::wait_for(
      [](Future<void> a, Future<void> b, int& c, Promise<void>& p) -> io::Task<void> {
        co_await std::move(a);
        io::Loop::current()->spawn(background(c, p));
        co_await std::move(b);
      }(std::move(f1), std::move(f2), counter, from_task),
      kScenarioLimit));
  EXPECT_EQ(counter, 2);
}

// Records the reports of the unhandled-exception handler and fulfils `first` on the first one.
class RecordingHandler {
 public:
  RecordingHandler()
      : previous_(weft::set_unhandled_exception_handler([this](std::exception_ptr e, std::string_view ctx) {
          std::lock_guard lock(mutex_);
          errors_.push_back(e);
          contexts_.emplace_back(ctx);
          if (errors_.size() == 1) first_.set_value();
        })) {}
  ~RecordingHandler() { weft::set_unhandled_exception_handler(std::move(previous_)); }
  Future<void> first() { return first_.get_future(); }
  std::vector<std::exception_ptr> errors() {
    std::lock_guard lock(mutex_);
    return errors_;
  }

 private:
  std::mutex mutex_;
  std::vector<std::exception_ptr> errors_;
  std::vector<std::string> contexts_;
  Promise<void> first_;
  weft::UnhandledExceptionHandler previous_;
};

io::Task<void> failing_background(int code) {
  co_await io::sleep(0ms);
  throw TestError(code);
}

// Reports through `outcome` whether it finished (true) or was cancelled (false).
io::Task<void> slow_background(Promise<bool>& outcome) {
  try {
    co_await io::sleep(1ms);
    co_await io::sleep(1ms);
  } catch (const weft::Cancelled&) {
    outcome.set_value(false);
    throw;
  }
  outcome.set_value(true);
}

TEST_P(IoLoop, SpawnedTaskFailureReachesTheUnhandledExceptionHandler) {
  RecordingHandler handler;
  Future<void> reported = handler.first();
  Promise<bool> other;
  Future<bool> other_outcome = other.get_future();
  bool other_finished = false;
  bool main_finished = false;
  run([](Future<void> rep, Promise<bool>& o, Future<bool> of, bool& other_done, bool& main_done) -> io::Task<void> {
    io::Loop::current()->spawn(failing_background(99));
    io::Loop::current()->spawn(slow_background(o));
    co_await std::move(rep);
    // A failing background task cancels nothing: the main task and the other background task go on.
    other_done = co_await std::move(of);
    main_done = true;
  }(std::move(reported), other, std::move(other_outcome), other_finished, main_finished));
  EXPECT_TRUE(main_finished);
  EXPECT_TRUE(other_finished) << "a background task was cancelled by a sibling's failure";
  auto errors = handler.errors();
  ASSERT_EQ(errors.size(), 1u);
  try {
    std::rethrow_exception(errors[0]);
  } catch (const TestError& e) {
    EXPECT_EQ(e.code, 99);
  } catch (...) {
    ADD_FAILURE() << "the handler got another exception: " << weft::describe_exception(errors[0]);
  }
}

io::Task<void> sleeps_until_cancelled(Promise<void>& started, bool& saw_cancelled, bool& finished) {
  started.set_value();
  try {
    co_await io::sleep(std::chrono::hours(1));
  } catch (const weft::Cancelled&) {
    saw_cancelled = true;
    throw;
  }
  finished = true;
}

TEST_P(IoLoop, SpawnedTasksAreCancelledWhenTheMainTaskEnds) {
  RecordingHandler handler;  // a cancelled background task is not an error to report
  Promise<void> started;
  Future<void> f = started.get_future();
  bool saw_cancelled = false;
  bool finished = false;
  io::Loop loop(options());
  expect_backend(loop);
  int value = loop.run(io::wait_for(
      [](Future<void> s, Promise<void>& p, bool& c, bool& fin) -> io::Task<int> {
        io::Loop::current()->spawn(sleeps_until_cancelled(p, c, fin));
        co_await std::move(s);
        co_return 5;
      }(std::move(f), started, saw_cancelled, finished),
      kScenarioLimit));
  EXPECT_EQ(value, 5);
  EXPECT_TRUE(saw_cancelled);
  EXPECT_FALSE(finished);
  EXPECT_TRUE(handler.errors().empty()) << weft::describe_exception(handler.errors().front());
  // The loop can run again afterwards.
  EXPECT_EQ(loop.run([]() -> io::Task<int> { co_return 6; }()), 6);
}

TEST_P(IoLoop, RunOnAThreadAlreadyRunningALoopThrows) {
  bool inner_ran = false;
  run([](io::LoopOptions o, bool& ran) -> io::Task<void> {
    io::Loop* outer = io::Loop::current();
    io::Loop inner(o);
    bool threw = false;
    try {
      inner.run([](bool& r) -> io::Task<void> {
        r = true;
        co_return;
      }(ran));
    } catch (const weft::Error&) {
      threw = true;
    }
    EXPECT_TRUE(threw);
    threw = false;
    try {
      io::run([]() -> io::Task<int> { co_return 1; }(), o);
    } catch (const weft::Error&) {
      threw = true;
    }
    EXPECT_TRUE(threw);
    // The outer loop is still the current one and still works.
    EXPECT_EQ(io::Loop::current(), outer);
    co_await io::sleep(1ms);
  }(options(), inner_ran));
  EXPECT_FALSE(inner_ran);
}

TEST_P(IoLoop, CallSoonFailureIsReportedAndTheLoopGoesOn) {
  RecordingHandler handler;
  Future<void> reported = handler.first();
  int after = 0;
  run([](Future<void> rep, int& a) -> io::Task<void> {
    io::Loop& loop = *io::Loop::current();
    loop.call_soon([] { throw TestError(3); });
    loop.call_soon([&a] { ++a; });
    co_await std::move(rep);
    co_await io::sleep(0ms);
  }(std::move(reported), after));
  EXPECT_EQ(after, 1);
  EXPECT_EQ(handler.errors().size(), 1u);
}

TEST_P(IoLoop, StatsCountTurnsAndWaits) {
  io::Loop loop(options());
  expect_backend(loop);
  loop.run([]() -> io::Task<void> {
    for (int i = 0; i < 5; ++i) co_await io::sleep(1ms);
  }());
  io::Loop::Stats s = loop.stats();
  EXPECT_GE(s.turns, 5u);
  EXPECT_GE(s.waits, 1u);
  EXPECT_EQ(s.buffers_in_use, 0u);
}

}  // namespace
