// A worker's prefetch (WorkerOptions::prefetch): the limits it accepts, that it never holds more messages than
// it, that stop() hands the prefetched ones back at once, and a sweep of concurrency x prefetch on memory://
// and sqlite:// (where results are stored in batches by the worker's completer).
#include "support.hpp"

#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <future>
#include <mutex>
#include <optional>
#include <stdexcept>
#include <string>
#include <thread>
#include <tuple>
#include <utility>
#include <vector>

#include "weft/tasks/app.hpp"
#include "weft/tasks/worker.hpp"

namespace {

using namespace weft::tasks;
using namespace std::chrono_literals;
using weft::test::TempDir;
using Steady = std::chrono::steady_clock;

constexpr auto kLong = std::chrono::seconds(30);  // a safety net, never the thing measured

// What is left of `until` (zero once it passed): one deadline shared by many waits, so that a broken worker
// fails a test once instead of once per result.
std::chrono::nanoseconds left(Steady::time_point until) {
  return std::max(until - Steady::now(), Steady::duration::zero());
}

// Every result of `rs` arrives (within kLong for all) and result i is factor * i.
void expect_values(const std::vector<AsyncResult>& rs, int factor) {
  const auto until = Steady::now() + kLong;
  for (std::size_t i = 0; i < rs.size(); ++i) {
    Json v;
    ASSERT_NO_THROW(v = rs[i].get_json(left(until))) << "task " << i;
    EXPECT_EQ(v, factor * static_cast<int>(i)) << "task " << i;
  }
}

// Checks, from inside tasks, that a worker never holds more messages than its prefetch. A message counts
// against the prefetch from its reservation until its task has returned at the earliest, so at any moment
// stats().received <= prefetch + (tasks returned so far). `received` is read before `returned`, and a task
// counts itself returned just before it returns: neither can make the check fail when the limit held.
// Tasks find the one that exists (declare it before the Worker, so that it outlives the worker's threads).
struct PrefetchBound;
PrefetchBound* g_bound = nullptr;
struct PrefetchBound {
  explicit PrefetchBound(std::size_t limit) : prefetch(limit) { g_bound = this; }
  ~PrefetchBound() { g_bound = nullptr; }
  PrefetchBound(const PrefetchBound&) = delete;
  PrefetchBound& operator=(const PrefetchBound&) = delete;
  void at_start() {
    const std::uint64_t received = worker->stats().received;
    const std::uint64_t done = returned.load();
    if (received > prefetch + done) ++over;
  }
  void at_return() { ++returned; }
  const std::size_t prefetch;
  const Worker* worker = nullptr;  // set before the worker starts
  std::atomic<std::uint64_t> returned{0};
  std::atomic<int> over{0};  // checks that found more held than the prefetch
};

// What gated() waits for: the first `running` calls are counted as started (wait_started()), and every call
// waits until open(). The waits are bounded by kLong, a safety net.
struct Gate;
Gate* g_gate = nullptr;
struct Gate {
  explicit Gate(int running) : running_(running) { g_gate = this; }
  ~Gate() { g_gate = nullptr; }
  Gate(const Gate&) = delete;
  Gate& operator=(const Gate&) = delete;
  void enter() {
    std::unique_lock lock(mu_);
    ++starts_;
    cv_.notify_all();
    if (!cv_.wait_for(lock, kLong, [&] { return open_; })) throw std::runtime_error("the gate never opened");
  }
  [[nodiscard]] bool wait_started() {
    std::unique_lock lock(mu_);
    return cv_.wait_for(lock, kLong, [&] { return starts_ >= running_; });
  }
  void open() {
    {
      std::lock_guard lock(mu_);
      open_ = true;
    }
    cv_.notify_all();
  }

 private:
  const int running_;
  std::mutex mu_;
  std::condition_variable cv_;
  int starts_ = 0;  // guarded by mu_
  bool open_ = false;  // guarded by mu_
};

int gated(int x) {
  if (g_bound != nullptr) g_bound->at_start();
  g_gate->enter();
  if (g_bound != nullptr) g_bound->at_return();
  return x;
}

int add(int a, int b) {
  if (g_bound != nullptr) {
    g_bound->at_start();
    g_bound->at_return();
  }
  return a + b;
}

// Sends `n` calls of gated(i) in one batch, before any worker starts.
std::vector<AsyncResult> send_gated(App& app, int n) {
  std::vector<TaskMessage> calls;
  for (int i = 0; i < n; ++i) calls.push_back(app.make_message("p.gated", Json::array({i}), Json::object(), {}));
  return app.send_many(std::move(calls));
}

// True once stop() has begun on `w`. Needs a worker whose heartbeats are an hour apart: then only start()
// and heartbeat_now() write its heartbeat, and heartbeat_now() writes nothing once the worker is stopping, so
// the heartbeat erased here stays erased exactly then. (stop() itself erases it only after its tasks ended.)
bool stopping(App& app, Worker& w) {
  const std::string key = "worker:" + w.hostname();
  app.backend().erase(key);
  w.heartbeat_now();
  return !app.backend().read(key);
}

TEST(PrefetchOptions, MustBeFromConcurrencyToTheLimitOrZero) {
  App app({.broker = "memory://prefetch-options", .backend = "memory://prefetch-options"});
  EXPECT_THROW(Worker(app, {.concurrency = 2, .prefetch = 1}), std::invalid_argument);
  EXPECT_THROW(Worker(app, {.concurrency = 8, .prefetch = 7}), std::invalid_argument);
  EXPECT_THROW(Worker(app, {.concurrency = 2, .prefetch = WorkerOptions::kMaxPrefetch + 1}), std::invalid_argument);
  // With autoscale, against its max.
  EXPECT_THROW(Worker(app, {.autoscale = Autoscale{.max = 4, .min = 1}, .prefetch = 3}), std::invalid_argument);
  EXPECT_NO_THROW(Worker(app, {.concurrency = 2, .prefetch = 0}));
  EXPECT_NO_THROW(Worker(app, {.concurrency = 2, .prefetch = 2}));
  EXPECT_NO_THROW(Worker(app, {.concurrency = 2, .prefetch = WorkerOptions::kMaxPrefetch}));
  EXPECT_NO_THROW(Worker(app, {.autoscale = Autoscale{.max = 4, .min = 1}, .prefetch = 4}));
}

class Prefetch : public ::testing::TestWithParam<const char*> {
 protected:
  AppOptions options() const {
    const std::string url = weft::test::fresh_url_for(GetParam(), dir_, "prefetch");
    return AppOptions{.broker = url, .backend = url};
  }
  TempDir dir_;
};

// Twenty tasks wait, published before the worker starts; 2 threads, prefetch 4. The first thread to look
// reserves min(prefetch, ready) = 4 in one reserve_many (the other waits meanwhile: one thread fetches at a
// time); both take one of them and block. Held = 4 = prefetch from then on until a task returns, so nothing
// more is reserved: received is exactly 4, deterministically. Once the gate opens, the rest run under the
// same limit (PrefetchBound).
TEST_P(Prefetch, HoldsAtMostPrefetchMessages) {
  App app(options());
  app.task<&gated>("p.gated");
  Gate gate(2);
  const std::vector<AsyncResult> rs = send_gated(app, 20);
  PrefetchBound bound(4);
  Worker w(app, {.concurrency = 2, .prefetch = 4});
  bound.worker = &w;
  w.start();
  ASSERT_TRUE(gate.wait_started());
  EXPECT_EQ(w.stats().received, 4u);
  EXPECT_EQ(app.broker().size("celery"), 20u);  // reserved, not acknowledged
  // The heartbeat tells the two running tasks apart from the two prefetched ones.
  w.heartbeat_now();
  const auto workers = app.workers();
  ASSERT_EQ(workers.size(), 1u);
  EXPECT_EQ(workers[0].active.size(), 2u) << workers[0].active.dump();
  for (const Json& a : workers[0].active) EXPECT_EQ(a.value("name", ""), "p.gated") << a.dump();
  EXPECT_EQ(workers[0].reserved, 2u);
  EXPECT_EQ(workers[0].prefetch, 4u);
  gate.open();
  expect_values(rs, 1);
  w.stop();
  EXPECT_EQ(bound.over.load(), 0);
  const WorkerStats st = w.stats();
  EXPECT_EQ(st.received, 20u);
  EXPECT_EQ(st.succeeded, 20u);
  EXPECT_EQ(st.redelivered, 0u);
  EXPECT_EQ(st.errors, 0u) << st.last_error;
  EXPECT_EQ(app.broker().size("celery"), 0u);
}

// prefetch 0 is 4 x concurrency, and with autoscale 4 x its max: the first reserve_many takes that many.
TEST_P(Prefetch, DefaultIsFourTimesConcurrency) {
  for (const bool scaled : {false, true}) {
    SCOPED_TRACE(scaled ? "autoscale max 2" : "concurrency 1");
    App app(options());
    app.task<&gated>("p.gated");
    Gate gate(scaled ? 2 : 1);  // autoscale: the one thread starts a task, then one more thread (max 2) starts
    const std::vector<AsyncResult> rs = send_gated(app, 20);
    WorkerOptions o{.concurrency = 1};
    if (scaled) o.autoscale = Autoscale{.max = 2, .min = 1};
    Worker w(app, o);
    w.start();
    ASSERT_TRUE(gate.wait_started());
    EXPECT_EQ(w.stats().received, scaled ? 8u : 4u);
    gate.open();
    expect_values(rs, 1);
    w.stop();
    EXPECT_EQ(w.stats().succeeded, 20u);
    EXPECT_EQ(app.broker().size("celery"), 0u);
  }
}

// stop() while two tasks run and two more wait, prefetched: the running ones finish and their results are
// stored; the prefetched ones go back to the broker, ready at once (delivered again, so delivery_count 2).
// The running tasks return only once stop() has begun (stopping() tells), so that their threads take no
// prefetched task after them: exactly two run.
TEST_P(Prefetch, StopHandsPrefetchedMessagesBack) {
  App app(options());
  app.task<&gated>("p.gated");
  Gate gate(2);
  const std::vector<AsyncResult> rs = send_gated(app, 20);
  const std::string host = std::string("prefetch-stop-") + GetParam() + "@test";
  Worker w(app, {.concurrency = 2, .hostname = host, .heartbeat = std::chrono::hours(1), .prefetch = 4});
  w.start();
  ASSERT_TRUE(gate.wait_started());
  EXPECT_EQ(w.stats().received, 4u);
  auto stopper = std::async(std::launch::async, [&] { w.stop(); });
  const auto until = Steady::now() + kLong;
  bool began = false;
  while (!(began = stopping(app, w)) && Steady::now() < until) std::this_thread::yield();
  EXPECT_TRUE(began) << "stop() did not begin";
  gate.open();
  stopper.get();

  // The two that ran: stored by the time stop() returned.
  for (int i = 0; i < 2; ++i) {
    const std::optional<ResultMeta> m = app.backend().get(rs[i].id());
    ASSERT_TRUE(m) << "task " << i;
    EXPECT_EQ(m->state, State::success);
    EXPECT_EQ(m->result, i);
  }
  for (int i = 2; i < 20; ++i) EXPECT_FALSE(app.backend().get(rs[i].id())) << "task " << i << " ran";
  const WorkerStats st = w.stats();
  EXPECT_EQ(st.received, 4u);
  EXPECT_EQ(st.succeeded, 2u);
  EXPECT_EQ(st.errors, 0u) << st.last_error;
  EXPECT_EQ(app.broker().size("celery"), 18u);
  // Handed back ready at once (a deadline that has passed: no waiting for a lease to end), in their old
  // places: before the sixteen that were never reserved.
  const std::vector<std::string> queues{"celery"};
  for (int i = 2; i < 5; ++i) {
    const std::optional<Delivery> d = app.broker().reserve(queues, 60s, Steady::now());
    ASSERT_TRUE(d) << "task " << i << " is not ready";
    EXPECT_EQ(decode_envelope(envelope_of(*d)).id, rs[i].id()) << "task " << i;
    EXPECT_EQ(d->delivery_count, i < 4 ? 2 : 1) << "task " << i;
  }
}

INSTANTIATE_TEST_SUITE_P(Brokers, Prefetch, ::testing::Values("memory", "sqlite"));

// Every concurrency x prefetch (its lowest, and the default) on both brokers: every task runs once with the
// right result, nothing fails, the broker is empty afterwards, and the prefetch held throughout.
using SweepCase = std::tuple<const char*, std::size_t, bool>;  // broker, concurrency, prefetch = concurrency

class PrefetchSweep : public ::testing::TestWithParam<SweepCase> {
 protected:
  TempDir dir_;
};

TEST_P(PrefetchSweep, RunsEveryTaskOnce) {
  const auto [kind, concurrency, lowest] = GetParam();
  constexpr int kTasks = 500;
  const std::string url = weft::test::fresh_url_for(kind, dir_, "sweep");
  App app({.broker = url, .backend = url});
  app.task<&add>("p.add");
  std::vector<TaskMessage> calls;
  for (int i = 0; i < kTasks; ++i) calls.push_back(app.make_message("p.add", Json::array({i, i}), Json::object(), {}));
  PrefetchBound bound(lowest ? concurrency : 4 * concurrency);
  Worker w(app, {.concurrency = concurrency, .prefetch = lowest ? concurrency : 0});
  bound.worker = &w;
  w.start();
  const std::vector<AsyncResult> rs = app.send_many(std::move(calls));
  expect_values(rs, 2);
  w.stop();
  const WorkerStats st = w.stats();
  EXPECT_EQ(st.succeeded, static_cast<std::uint64_t>(kTasks));
  EXPECT_EQ(st.received, static_cast<std::uint64_t>(kTasks));
  EXPECT_EQ(st.failed, 0u);
  EXPECT_EQ(st.redelivered, 0u);
  EXPECT_EQ(st.errors, 0u) << st.last_error;
  EXPECT_EQ(bound.returned.load(), static_cast<std::uint64_t>(kTasks));
  EXPECT_EQ(bound.over.load(), 0);
  EXPECT_EQ(app.broker().size("celery"), 0u);
}

std::string sweep_name(const ::testing::TestParamInfo<SweepCase>& info) {
  return std::string(std::get<0>(info.param)) + "_c" + std::to_string(std::get<1>(info.param)) +
         (std::get<2>(info.param) ? "_prefetch_c" : "_prefetch_default");
}

INSTANTIATE_TEST_SUITE_P(Brokers, PrefetchSweep,
                         ::testing::Combine(::testing::Values("memory", "sqlite"),
                                            ::testing::Values(std::size_t{1}, std::size_t{2}, std::size_t{4},
                                                              std::size_t{8}),
                                            ::testing::Bool()),
                         sweep_name);

}  // namespace
