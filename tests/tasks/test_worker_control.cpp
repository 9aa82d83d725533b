// Revocation, time limits, the running task's context and heartbeats: an App and Workers on memory://.
#include "weft/tasks/app.hpp"
#include "weft/tasks/worker.hpp"
#include "support.hpp"

#include <gtest/gtest.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <future>
#include <condition_variable>
#include <latch>
#include <mutex>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

namespace {
using namespace weft::tasks;
using namespace std::chrono_literals;
using Steady = std::chrono::steady_clock;

constexpr auto kLong = std::chrono::seconds(30);  // a safety net, never the thing measured

AppOptions fresh() {
  const std::string name = std::string("ctl-") + ::testing::UnitTest::GetInstance()->current_test_info()->name();
  return AppOptions{.broker = "memory://" + name, .backend = "memory://" + name};
}

std::atomic<int> plain_runs{0};
int plain(int x) {
  ++plain_runs;
  return x;
}

// A task that announces its start, then waits for the test (or for cancellation, polling its context).
std::latch* started = nullptr;
std::shared_future<void> release;
std::atomic<bool> saw_cancel{false};
std::string current_id_seen;
int waits(int x) {
  const TaskContext* ctx = current_task();
  if (ctx == nullptr) throw std::logic_error("no task context inside a task");
  current_id_seen = ctx->id();
  started->count_down();
  const auto until = Steady::now() + kLong;
  while (Steady::now() < until) {
    if (ctx->cancelled()) {
      saw_cancel = true;
      return -1;
    }
    if (release.wait_for(1ms) == std::future_status::ready) return x;
  }
  throw std::runtime_error("never released");
}

// Sets up waits(): `s` counts down when it starts; open() lets it return.
struct WaitsGate {
  std::latch s{1};
  std::promise<void> go;
  WaitsGate() {
    started = &s;
    release = go.get_future().share();
    saw_cancel = false;
  }
  void open() { go.set_value(); }
};

std::string soft_limited() {
  const TaskContext* ctx = current_task();
  const auto until = Steady::now() + kLong;
  while (Steady::now() < until) {
    if (ctx->soft_time_limit_exceeded()) return "stopped at the soft limit";
    std::this_thread::sleep_for(1ms);  // the workload: a long computation in small steps
  }
  return "never";
}

TEST(WorkerControl, NoTaskContextOutsideTasks) { EXPECT_EQ(current_task(), nullptr); }

TEST(WorkerControl, ARevokedTaskNeverRuns) {
  App app(fresh());
  auto t = app.task<&plain>("c.plain");
  plain_runs = 0;
  AsyncResult r = t.delay(1);
  r.revoke();
  AsyncResult other = t.delay(2);
  Worker w(app, {.concurrency = 1});
  w.start();
  EXPECT_EQ(other.get<int>(kLong), 2);
  EXPECT_THROW(r.get_json(kLong), weft::Cancelled);
  EXPECT_EQ(r.state(), State::revoked);
  EXPECT_EQ(plain_runs.load(), 1);
  w.stop();
  EXPECT_EQ(w.stats().revoked, 1u);
  EXPECT_EQ(w.stats().succeeded, 1u);
}

TEST(WorkerControl, TerminateEndsARunningTaskAndDiscardsItsResult) {
  App app(fresh());
  auto t = app.task<&waits>("c.waits");
  auto p = app.task<&plain>("c.plain");
  WaitsGate gate;
  Worker w(app, {.concurrency = 1, .control_interval = 10ms});
  w.start();
  AsyncResult r = t.delay(7);
  gate.s.wait();
  EXPECT_EQ(current_id_seen, r.id());
  r.revoke({.terminate = true});
  EXPECT_THROW(r.get_json(kLong), weft::Cancelled);
  // The function saw cancelled() and returned; its -1 was discarded; the worker goes on.
  EXPECT_EQ(p.delay(3).get<int>(kLong), 3);
  EXPECT_TRUE(saw_cancel.load());
  EXPECT_EQ(r.state(), State::revoked);
  w.stop();
  EXPECT_EQ(w.stats().revoked, 1u);
  EXPECT_EQ(app.broker().size("celery"), 0u);  // acknowledged, not delivered again
}

TEST(WorkerControl, RevokeWithoutTerminateLetsARunningTaskFinish) {
  App app(fresh());
  auto t = app.task<&waits>("c.waits");
  WaitsGate gate;
  Worker w(app, {.concurrency = 1, .control_interval = 10ms});
  w.start();
  AsyncResult r = t.delay(7);
  gate.s.wait();
  r.revoke();
  // cancelled() tells the task (it chooses to stop: -1 is its result); nothing else ends it.
  EXPECT_EQ(r.get<int>(kLong), -1);
  EXPECT_TRUE(saw_cancel.load());
}

TEST(WorkerControl, AHardTimeLimitFailsTheTaskAndTheWorkerGoesOn) {
  App app(fresh());
  auto t = app.task<&waits>("c.waits", {.time_limit = 50ms});
  auto p = app.task<&plain>("c.plain");
  WaitsGate gate;
  Worker w(app, {.concurrency = 2});
  w.start();
  AsyncResult r = t.delay(1);
  try {
    r.get_json(kLong);
    ADD_FAILURE() << "the task did not fail";
  } catch (const weft::RemoteError& e) {
    EXPECT_EQ(e.type(), "TimeLimitExceeded");
    EXPECT_NE(std::string(e.what()).find("hard time limit"), std::string::npos) << e.what();
  }
  EXPECT_EQ(p.delay(4).get<int>(kLong), 4);
  w.stop();  // the function saw cancelled() at its limit and returned
  EXPECT_TRUE(saw_cancel.load());
  EXPECT_EQ(r.state(), State::failure);  // its late result did not replace the failure
  EXPECT_EQ(w.stats().time_limited, 1u);
  EXPECT_EQ(app.broker().size("celery"), 0u);
}

TEST(WorkerControl, ASoftTimeLimitIsReportedToTheTask) {
  App app(fresh());
  auto t = app.task<&soft_limited>("c.soft", {.soft_time_limit = 30ms});
  Worker w(app, {.concurrency = 1});
  w.start();
  EXPECT_EQ(t.delay().get<std::string>(kLong), "stopped at the soft limit");
}

TEST(WorkerControl, HeartbeatsDescribeLiveWorkersAndStopRemovesThem) {
  App app(fresh());
  auto t = app.task<&waits>("c.waits");
  app.task<&plain>("c.plain");
  WaitsGate gate;
  EXPECT_TRUE(app.workers().empty());
  // An hour between heartbeats: the ones read here are the one start() writes and the one asked for below.
  Worker w(app, {.concurrency = 2, .hostname = "hb@test", .heartbeat = std::chrono::hours(1)});
  w.start();
  EXPECT_EQ(app.workers().size(), 1u);  // listed as soon as start() returns
  AsyncResult r = t.delay(5);
  gate.s.wait();
  w.heartbeat_now();  // describes the task running now
  const std::vector<WorkerInfo> ws = app.workers();
  ASSERT_EQ(ws.size(), 1u);
  const WorkerInfo& info = ws[0];
  EXPECT_EQ(info.hostname, "hb@test");
  EXPECT_EQ(info.pid, ::getpid());
  EXPECT_GE(info.cpus, 1);
  EXPECT_EQ(info.pool, "threads");
  EXPECT_EQ(info.concurrency, 2u);
  EXPECT_EQ(info.queues, std::vector<std::string>{"celery"});
  EXPECT_EQ(info.registered, (std::vector<std::string>{"c.plain", "c.waits"}));
  ASSERT_EQ(info.active.size(), 1u);
  EXPECT_EQ(info.active[0]["id"], r.id());
  EXPECT_EQ(info.active[0]["name"], "c.waits");
  EXPECT_NEAR(info.freq, 3600.0, 1e-9);
  EXPECT_LE(info.timestamp, std::chrono::system_clock::now());
  gate.open();
  EXPECT_EQ(r.get<int>(kLong), 5);
  w.stop();
  EXPECT_TRUE(app.workers().empty());
}

// Autoscale: tasks that hold their threads make the pool grow to max (never beyond); idle threads end down to min.
std::mutex gate_mu;
std::condition_variable gate_cv;
int gate_running = 0;
int gate_peak = 0;
bool gate_open = false;
int held(int x) {
  std::unique_lock lock(gate_mu);
  gate_peak = std::max(gate_peak, ++gate_running);
  gate_cv.notify_all();
  gate_cv.wait_for(lock, kLong, [] { return gate_open; });
  --gate_running;
  return x;
}

TEST(WorkerControl, AutoscaleGrowsToMaxUnderLoadAndShrinksToMinWhenIdle) {
  App app(fresh());
  auto t = app.task<&held>("c.held");
  {
    std::lock_guard lock(gate_mu);
    gate_running = gate_peak = 0;
    gate_open = false;
  }
  Worker w(app, {.heartbeat = 20ms, .autoscale = Autoscale{.max = 4, .min = 1, .idle = 50ms}});
  EXPECT_EQ(w.concurrency(), 1u);
  w.start();
  std::vector<AsyncResult> rs;
  for (int i = 0; i < 6; ++i) rs.push_back(t.delay(i));
  {
    // Four run at once: the pool grew from one thread to its max.
    std::unique_lock lock(gate_mu);
    ASSERT_TRUE(gate_cv.wait_for(lock, kLong, [] { return gate_running == 4; }));
  }
  EXPECT_EQ(w.concurrency(), 4u);
  {
    std::lock_guard lock(gate_mu);
    gate_open = true;
  }
  gate_cv.notify_all();
  for (int i = 0; i < 6; ++i) EXPECT_EQ(rs[i].get<int>(kLong), i);
  EXPECT_EQ(gate_peak, 4);  // never beyond max
  // Idle: back to min (threads end after 50 ms without a message; bounded wait on the worker's own clock).
  const auto until = Steady::now() + kLong;
  while (w.concurrency() > 1 && Steady::now() < until) std::this_thread::sleep_for(5ms);
  EXPECT_EQ(w.concurrency(), 1u);
  // And it grows again.
  {
    std::lock_guard lock(gate_mu);
    gate_open = false;
    gate_running = 0;
  }
  rs.clear();
  for (int i = 0; i < 2; ++i) rs.push_back(t.delay(i));
  {
    std::unique_lock lock(gate_mu);
    ASSERT_TRUE(gate_cv.wait_for(lock, kLong, [] { return gate_running == 2; }));
    gate_open = true;
  }
  gate_cv.notify_all();
  for (int i = 0; i < 2; ++i) EXPECT_EQ(rs[i].get<int>(kLong), i);
  w.stop();
  EXPECT_EQ(w.stats().succeeded, 8u);
}

std::string join_words(std::vector<std::string> words, std::string sep) {
  std::string out;
  for (const auto& w : words) out += (out.empty() ? "" : sep) + w;
  return out;
}

TEST(WorkerControl, MsgpackCallsRunLikeJsonOnes) {
  App app(fresh());
  auto t = app.task<&join_words>("c.join", {.serializer = Serializer::msgpack});
  auto p = app.task<&plain>("c.plain");
  Worker w(app, {.concurrency = 1});
  w.start();
  AsyncResult r = t.delay(std::vector<std::string>{"a", "b", "c"}, std::string("-"));
  EXPECT_EQ(r.get<std::string>(kLong), "a-b-c");
  // Per call, and a msgpack call with wrong argument types is a clear TypeError like a JSON one.
  EXPECT_EQ(p.apply_async({.serializer = Serializer::msgpack}, 5).get<int>(kLong), 5);
  try {
    app.send_task("c.join", {1, 2}, Json::object(), {.serializer = Serializer::msgpack}).get_json(kLong);
    ADD_FAILURE() << "no failure";
  } catch (const weft::RemoteError& e) {
    EXPECT_EQ(e.type(), "TypeError");
  }
}

std::atomic<int> limited_runs{0};
int limited(int x) {
  ++limited_runs;
  return x;
}

// A task waiting for its rate-limit slot keeps its lease: with slots 500 ms apart and a 150 ms lease, each of
// three tasks still runs once.
TEST(WorkerControl, ATaskWaitingForItsRateLimitSlotKeepsItsLease) {
  App app(fresh());
  auto t = app.task<&limited>("c.limited", {.rate_limit = 2.0});
  limited_runs = 0;
  Worker w(app, {.concurrency = 3, .lease = 150ms});
  w.start();
  std::vector<AsyncResult> rs;
  for (int i = 0; i < 3; ++i) rs.push_back(t.delay(i));
  for (int i = 0; i < 3; ++i) EXPECT_EQ(rs[i].get<int>(kLong), i);
  w.stop();
  EXPECT_EQ(limited_runs.load(), 3);
  EXPECT_EQ(w.stats().redelivered, 0u);
  EXPECT_EQ(w.stats().lease_lost, 0u);
}

int early_ack_runs = 0;
int acked_early(int ms) {
  ++early_ack_runs;
  std::this_thread::sleep_for(std::chrono::milliseconds(ms));  // the workload: longer than several renewals
  return ms;
}

// acks_late off: acknowledged before it runs, so nothing is renewed and no lease counts as lost.
TEST(WorkerControl, ATaskAcknowledgedEarlyIsNotRenewed) {
  App app(fresh());
  auto t = app.task<&acked_early>("c.early", {.acks_late = false});
  early_ack_runs = 0;
  Worker w(app, {.concurrency = 1, .lease = 60ms});
  w.start();
  EXPECT_EQ(t.delay(250).get<int>(kLong), 250);
  w.stop();
  EXPECT_EQ(early_ack_runs, 1);
  EXPECT_EQ(w.stats().lease_lost, 0u);
  EXPECT_EQ(w.stats().errors, 0u);
}

std::string not_utf8() { return std::string("\xff\xfe"); }

// A result JSON cannot hold (stored as text by sqlite://) fails its task; the worker goes on.
TEST(WorkerControl, AResultThatCannotBeStoredFailsTheTaskNotTheWorker) {
  weft::test::TempDir dir;
  const std::string url = "sqlite://" + dir.db();
  App app({.broker = url, .backend = url});
  auto bad = app.task<&not_utf8>("c.not_utf8");
  auto p = app.task<&plain>("c.plain");
  Worker w(app, {.concurrency = 1});
  w.start();
  try {
    bad.delay().get_json(kLong);
    ADD_FAILURE() << "no failure";
  } catch (const weft::RemoteError& e) {
    EXPECT_EQ(e.type(), "EncodeError");
  }
  EXPECT_EQ(p.delay(6).get<int>(kLong), 6);
}

TEST(WorkerControl, BadOptionsAreRefused) {
  App app(fresh());
  EXPECT_THROW(Worker(app, {.heartbeat = 0ms}), std::invalid_argument);
  EXPECT_THROW(Worker(app, {.control_interval = -1ms}), std::invalid_argument);
  EXPECT_THROW(Worker(app, {.autoscale = Autoscale{.max = 2, .min = 3}}), std::invalid_argument);
  EXPECT_THROW(Worker(app, {.autoscale = Autoscale{.max = 0, .min = 0}}), std::invalid_argument);
  EXPECT_THROW(Worker(app, {.autoscale = Autoscale{.max = 2, .min = 1, .idle = 0ms}}), std::invalid_argument);
}

}  // namespace
