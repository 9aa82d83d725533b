// Async tasks (coroutines returning io::Task<V>) and the worker's async pool (Pool::async_): many tasks at once
// on one event loop thread, within the concurrency limit; terminate and the hard time limit cancel a task's
// coroutine; plain tasks run off the loop; failures, retries and bad arguments as in the other pools; async
// tasks on the threads pool and in place; warm shutdown; the heartbeat; the options it refuses.
#include "support.hpp"

#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <future>
#include <mutex>
#include <stdexcept>
#include <string>
#include <thread>
#include <type_traits>
#include <utility>
#include <vector>

#include "weft/core/errors.hpp"
#include "weft/core/future.hpp"
#include "weft/io/future.hpp"
#include "weft/io/loop.hpp"
#include "weft/io/sync.hpp"
#include "weft/io/time.hpp"
#include "weft/tasks/app.hpp"
#include "weft/tasks/cluster.hpp"
#include "weft/tasks/worker.hpp"

namespace {

using namespace weft::tasks;
using namespace std::chrono_literals;
using weft::test::TempDir;
namespace io = weft::io;

constexpr auto kLong = std::chrono::seconds(30);  // a safety net, never the thing measured

std::uint64_t this_thread_id() { return std::hash<std::thread::id>{}(std::this_thread::get_id()); }

// ---- the tasks ----------------------------------------------------------------------------------------------
// Their state is global (tasks are plain functions). What only the loop thread touches needs no lock: each test
// resets it before its worker starts (thread creation orders the two).

io::Task<int> add_async(int a, int b) {
  co_await io::sleep(1ms);
  co_return a + b;
}

io::Task<long> square_async(long x) {
  co_await io::sleep(0ms);
  co_return x * x;
}

// Waits until `n` calls have started, all at once: only a pool running n tasks concurrently finishes them.
int g_started = 0;
std::unique_ptr<io::Event> g_all_started;  // a fresh one per test
io::Task<std::uint64_t> rendezvous(int n) {
  if (++g_started == n) g_all_started->set();
  co_await g_all_started->wait();
  co_return this_thread_id();
}

// Counts the calls running at once.
int g_live = 0;
int g_max_live = 0;
io::Task<int> counted(int i) {
  g_max_live = std::max(g_max_live, ++g_live);
  co_await io::sleep(2ms);
  --g_live;
  co_return i;
}

// Reports that it started, then waits for a future the test may never set; reports a cancellation it saw.
std::promise<void>* g_entered = nullptr;
std::promise<void>* g_saw_cancel = nullptr;
weft::Future<int>* g_release = nullptr;
io::Task<int> parked() {
  g_entered->set_value();
  try {
    int v = co_await std::move(*g_release);
    co_return v;
  } catch (const weft::Cancelled&) {
    g_saw_cancel->set_value();
    throw;
  }
}

// What one parked() call reports to its test, and the promise that releases it. Declared before the Worker,
// so that it outlives the worker's threads.
struct ParkedSignals {
  ParkedSignals() {
    g_entered = &entered;
    g_saw_cancel = &saw_cancel;
    g_release = &released;
  }
  bool wait_entered() { return entered.get_future().wait_for(kLong) == std::future_status::ready; }
  std::promise<void> entered, saw_cancel;
  weft::Promise<int> release;
  weft::Future<int> released = release.get_future();
};

// Reads its reference parameter after suspending: the converted argument must still be alive.
io::Task<std::string> shout(const std::string& s) {
  co_await io::sleep(1ms);
  std::string out = s;
  for (char& c : out) c = static_cast<char>(c >= 'a' && c <= 'z' ? c - 'a' + 'A' : c);
  co_return out;
}

io::Task<int> fails_async() {
  co_await io::sleep(0ms);
  throw std::runtime_error("the remote service said no");
}

std::atomic<int> g_flaky_calls{0};
io::Task<int> flaky_async() {
  co_await io::sleep(0ms);
  if (g_flaky_calls.fetch_add(1) == 0) throw Retry("not yet", 5ms);
  co_return 7;
}

// Counts its runs (a rate-limited task that must not run once revoked).
std::atomic<int> g_limited_runs{0};
io::Task<int> limited(int i) {
  ++g_limited_runs;
  co_await io::sleep(0ms);
  co_return i;
}

// A plain task that blocks its thread until the test lets it go.
std::future<void>* g_plain_release = nullptr;
std::promise<std::uint64_t>* g_plain_thread = nullptr;
std::uint64_t plain_blocking() {
  g_plain_thread->set_value(this_thread_id());
  g_plain_release->wait();
  return this_thread_id();
}

// ---- helpers -------------------------------------------------------------------------------------------------

class AsyncPool : public ::testing::TestWithParam<const char*> {
 protected:
  void SetUp() override {
    url_ = weft::test::fresh_url_for(GetParam(), dir_, "async");
    app_ = std::make_unique<App>(AppOptions{.broker = url_, .backend = url_});
    g_started = 0;
    g_live = 0;
    g_max_live = 0;
    g_flaky_calls = 0;
    g_all_started = std::make_unique<io::Event>();
  }
  WorkerOptions options(std::size_t concurrency) {
    WorkerOptions o;
    o.pool = Pool::async_;
    o.concurrency = concurrency;
    o.control_interval = 20ms;
    return o;
  }
  TempDir dir_;
  std::string url_;
  std::unique_ptr<App> app_;
};

// ---- tests ---------------------------------------------------------------------------------------------------

TEST_P(AsyncPool, RunsManyTasksAtOnceOnOneThread) {
  auto task = app_->task<&rendezvous>("t.rendezvous");
  constexpr int kTasks = 64;
  Worker w(*app_, options(kTasks));
  w.start();
  std::vector<AsyncResult> rs;
  for (int i = 0; i < kTasks; ++i) rs.push_back(task.delay(kTasks));
  std::vector<std::uint64_t> threads;
  for (const auto& r : rs) threads.push_back(r.get<std::uint64_t>(kLong));  // a timeout: not all at once
  for (auto t : threads) EXPECT_EQ(t, threads.front()) << "every async task runs on the loop thread";
  EXPECT_NE(threads.front(), this_thread_id());
  w.stop();
  EXPECT_EQ(w.stats().succeeded, static_cast<std::uint64_t>(kTasks));
}

TEST_P(AsyncPool, NeverRunsMoreThanItsConcurrency) {
  auto task = app_->task<&counted>("t.counted");
  Worker w(*app_, options(3));
  w.start();
  std::vector<AsyncResult> rs;
  for (int i = 0; i < 40; ++i) rs.push_back(task.delay(i));
  for (int i = 0; i < 40; ++i) EXPECT_EQ(rs[i].get<int>(kLong), i);
  w.stop();  // joins the loop thread: its writes are visible here
  EXPECT_LE(g_max_live, 3);
  EXPECT_GE(g_max_live, 1);
}

TEST_P(AsyncPool, ArgumentsByReferenceOutliveTheSuspension) {
  auto task = app_->task<&shout>("t.shout");
  Worker w(*app_, options(8));
  w.start();
  std::vector<AsyncResult> rs;
  for (int i = 0; i < 16; ++i) rs.push_back(task.delay(std::string(100, 'a') + std::to_string(i)));
  for (int i = 0; i < 16; ++i) EXPECT_EQ(rs[i].get<std::string>(kLong), std::string(100, 'A') + std::to_string(i));
}

TEST_P(AsyncPool, FailuresRetriesAndBadArgumentsAreStoredAsInTheOtherPools) {
  auto fails = app_->task<&fails_async>("t.fails");
  auto flaky = app_->task<&flaky_async>("t.flaky", {.max_retries = 2, .retry_jitter = false});
  auto add = app_->task<&add_async>("t.add");
  Worker w(*app_, options(4));
  w.start();
  auto failed = fails.delay();
  auto retried = flaky.delay();
  auto bad = app_->send_task("t.add", Json::array({"two", 3}));
  try {
    failed.get_json(kLong);
    ADD_FAILURE() << "a failed task's get() must throw";
  } catch (const weft::RemoteError& e) {
    EXPECT_EQ(e.type(), "std::runtime_error");
    EXPECT_NE(std::string(e.what()).find("the remote service said no"), std::string::npos) << e.what();
  }
  EXPECT_EQ(retried.get<int>(kLong), 7);
  EXPECT_EQ(retried.meta()->retries, 1);
  try {
    bad.get_json(kLong);
    ADD_FAILURE() << "bad arguments must fail the task";
  } catch (const weft::RemoteError& e) {
    EXPECT_EQ(e.type(), "TypeError");
  }
  EXPECT_EQ(add.delay(2, 3).get<int>(kLong), 5) << "the worker goes on";
  w.stop();
  const WorkerStats st = w.stats();
  EXPECT_EQ(st.retried, 1u);
  EXPECT_EQ(st.poison, 1u);
  EXPECT_EQ(st.failed, 2u);
}

TEST_P(AsyncPool, TerminateCancelsTheRunningCoroutine) {
  auto task = app_->task<&parked>("t.parked");
  auto add = app_->task<&add_async>("t.add");
  ParkedSignals park;
  Worker w(*app_, options(4));
  w.start();
  auto r = task.delay();
  ASSERT_TRUE(park.wait_entered());
  r.revoke({.terminate = true});
  EXPECT_THROW(r.get_json(kLong), weft::Cancelled);
  EXPECT_EQ(r.state(), State::revoked);
  EXPECT_EQ(park.saw_cancel.get_future().wait_for(kLong), std::future_status::ready)
      << "the coroutine sees weft::Cancelled at its await";
  EXPECT_EQ(add.delay(1, 2).get<int>(kLong), 3) << "the worker goes on";
  w.stop();
  EXPECT_EQ(w.stats().revoked, 1u);
}

TEST_P(AsyncPool, TheHardTimeLimitCancelsTheCoroutine) {
  auto task = app_->task<&parked>("t.parked", {.time_limit = 100ms});
  ParkedSignals park;
  Worker w(*app_, options(4));
  w.start();
  auto r = task.delay();
  try {
    r.get_json(kLong);
    ADD_FAILURE() << "a task past its hard limit fails";
  } catch (const weft::RemoteError& e) {
    EXPECT_EQ(e.type(), "TimeLimitExceeded");
  }
  EXPECT_EQ(park.saw_cancel.get_future().wait_for(kLong), std::future_status::ready);
  w.stop();
  EXPECT_EQ(w.stats().time_limited, 1u);
}

// A rate limit's wait happens in the task's coroutine, not in the thread that feeds the loop: a task revoked
// while it waits never runs — with terminate at once, otherwise when its slot comes.
TEST_P(AsyncPool, ATaskRevokedWhileItWaitsForItsRateLimitNeverRuns) {
  g_limited_runs = 0;
  auto task = app_->task<&limited>("t.limited", {.rate_limit = 2.0});  // a start every 500 ms
  auto add = app_->task<&add_async>("t.add");
  Worker w(*app_, options(4));
  w.start();
  EXPECT_EQ(task.delay(1).get<int>(kLong), 1);
  auto second = task.delay(2);  // its slot: 500 ms after the first's
  auto third = task.delay(3);   // 1 s after
  EXPECT_EQ(add.delay(1, 1).get<int>(kLong), 2) << "other tasks do not wait for the rate-limited ones";
  second.revoke({.terminate = true});
  third.revoke();
  EXPECT_THROW(second.get_json(kLong), weft::Cancelled);
  EXPECT_THROW(third.get_json(kLong), weft::Cancelled);
  w.stop();
  EXPECT_EQ(g_limited_runs.load(), 1);
  EXPECT_EQ(w.stats().revoked, 2u);
}

TEST_P(AsyncPool, PlainTasksRunOffTheLoop) {
  auto plain = app_->task<&plain_blocking>("t.plain");
  auto add = app_->task<&add_async>("t.add");
  std::promise<void> release;
  std::future<void> released = release.get_future();
  std::promise<std::uint64_t> plain_thread;
  g_plain_release = &released;
  g_plain_thread = &plain_thread;
  Worker w(*app_, options(4));
  w.start();
  auto blocked = plain.delay();
  auto on_thread = plain_thread.get_future();
  ASSERT_EQ(on_thread.wait_for(kLong), std::future_status::ready);
  // The plain task holds its thread; an async task still runs to the end meanwhile.
  EXPECT_EQ(add.delay(20, 22).get<int>(kLong), 42);
  EXPECT_FALSE(blocked.ready());
  release.set_value();
  EXPECT_EQ(blocked.get<std::uint64_t>(kLong), on_thread.get());
  w.stop();
}

TEST_P(AsyncPool, StopLetsTheRunningTasksFinish) {
  auto task = app_->task<&parked>("t.parked");
  ParkedSignals park;
  Worker w(*app_, options(4));
  w.start();
  auto r = task.delay();
  ASSERT_TRUE(park.wait_entered());
  std::thread stopper([&] { w.stop(); });
  // Released only once stop() has begun, so that a stop() that did not wait, or cancelled, would show.
  const auto until = std::chrono::steady_clock::now() + kLong;
  while (!w.stopping() && std::chrono::steady_clock::now() < until) std::this_thread::yield();
  EXPECT_TRUE(w.stopping());
  park.release.set_value(11);
  stopper.join();
  EXPECT_EQ(r.state(), State::success) << "stop() returns once the running task's result is stored";
  EXPECT_EQ(r.get<int>(0s), 11);
  EXPECT_EQ(park.saw_cancel.get_future().wait_for(0s), std::future_status::timeout) << "a warm shutdown cancels nothing";
}

TEST_P(AsyncPool, TheHeartbeatNamesThePool) {
  Worker w(*app_, options(250));
  w.start();
  const auto workers = app_->workers();
  ASSERT_EQ(workers.size(), 1u);
  EXPECT_EQ(workers[0].pool, "async");
  EXPECT_EQ(workers[0].concurrency, 250u);
  EXPECT_EQ(w.concurrency(), 250u);
  EXPECT_EQ(workers[0].prefetch, 1000u);
}

INSTANTIATE_TEST_SUITE_P(Brokers, AsyncPool, ::testing::Values("memory", "sqlite"));

TEST(AsyncPoolOptions, RefusesAutoscaleAndDefaultsToAHundred) {
  App app(AppOptions{.broker = "memory://async-options", .backend = "memory://async-options"});
  WorkerOptions o;
  o.pool = Pool::async_;
  o.autoscale = Autoscale{.max = 4, .min = 1};
  EXPECT_THROW(Worker(app, o), std::invalid_argument);
  o.autoscale.reset();
  Worker w(app, o);
  EXPECT_EQ(w.concurrency(), 100u);
  EXPECT_STREQ(to_string(Pool::async_), "async");
}

TEST(AsyncTasks, RunOnTheThreadsPoolAndInPlace) {
  App app(AppOptions{.broker = "memory://async-threads", .backend = "memory://async-threads"});
  auto add = app.task<&add_async>("t.add");
  auto sh = app.task<&shout>("t.shout");
  static_assert(decltype(add)::is_async);
  static_assert(std::is_same_v<decltype(add)::Value, int>);
  EXPECT_EQ(add.run_here(2, 3), 5);
  EXPECT_EQ(io::run(add(4, 5)), 9) << "operator() returns the coroutine";
  WorkerOptions o;
  o.concurrency = 2;
  Worker w(app, o);
  w.start();
  EXPECT_EQ(add.delay(6, 7).get<int>(kLong), 13);
  EXPECT_EQ(sh.delay(std::string("abc")).get<std::string>(kLong), "ABC");
  EXPECT_THROW(app.send_task("t.add", Json::array({1})).get_json(kLong), weft::RemoteError);
}

TEST(AsyncTasks, AClusterExecutorRunsThemLocallyAndOnAnAsyncWorker) {
  App app(AppOptions{.broker = "memory://async-cluster", .backend = "memory://async-cluster"});
  auto add = app.task<&add_async>("t.add");
  auto square = app.task<&square_async>("t.square");
  {
    ClusterExecutor local(app, {.local_threads = 1});
    weft::Future<int> f = local.submit(add, 2, 3);
    EXPECT_EQ(f.get(), 5);
  }
  WorkerOptions o;
  o.pool = Pool::async_;
  o.concurrency = 8;
  o.heartbeat = 50ms;
  Worker w(app, o);
  w.start();
  ClusterExecutor remote(app, {.local_threads = 1, .local_tasks = false});
  std::vector<long> squares = remote.map(square, std::vector<long>{1, 2, 3, 4});
  EXPECT_EQ(squares, (std::vector<long>{1, 4, 9, 16}));
}

}  // namespace
