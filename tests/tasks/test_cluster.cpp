// ClusterExecutor: the executor contract (callables run on its local pool), and registered tasks placed on
// local threads or on Workers discovered from their heartbeats, on memory:// and sqlite:// brokers.
#include "../core/executor_contract.hpp"

#include "support.hpp"
#include "weft/tasks/app.hpp"
#include "weft/tasks/cluster.hpp"
#include "weft/tasks/worker.hpp"

#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <cstddef>
#include <functional>
#include <latch>
#include <memory>
#include <stdexcept>
#include <string>
#include <thread>
#include <type_traits>
#include <vector>

namespace weft::test {

template <>
struct ExecutorFactory<tasks::ClusterExecutor> {
  static std::unique_ptr<tasks::ClusterExecutor> make(std::size_t threads) {
    // One App for every executor of the suite: it must outlive them, and no worker ever reads its broker.
    static tasks::App app({.broker = "memory://cluster-contract", .backend = "memory://cluster-contract"});
    return std::make_unique<tasks::ClusterExecutor>(
        app, tasks::ClusterOptions{.local_threads = threads, .name = "contract"});
  }
};

INSTANTIATE_TYPED_TEST_SUITE_P(ClusterExecutor, ExecutorContract, ::testing::Types<tasks::ClusterExecutor>);

}  // namespace weft::test

namespace {
using namespace weft::tasks;
using namespace std::chrono_literals;
using Steady = std::chrono::steady_clock;

constexpr auto kLong = std::chrono::seconds(60);  // a safety net, never the thing measured

// Where a call ran ("local", or the worker's hostname) and its result.
std::string where(int x) {
  const TaskContext* ctx = current_task();
  return (ctx != nullptr ? ctx->hostname() : std::string("local")) + ":" + std::to_string(x * x);
}
int square(int x) { return x * x; }
int fail_with(int code) { throw std::out_of_range("code " + std::to_string(code)); }
std::string text_for(int x) { return "text " + std::to_string(x); }
std::atomic<int> touched{0};
void touch(int by) { touched.fetch_add(by); }

std::string ran_at(const std::string& result) { return result.substr(0, result.find(':')); }
std::string value_of(const std::string& result) { return result.substr(result.find(':') + 1); }

// A fresh App on brokers and backends of its own (memory:// names are per process; the counter keeps
// repeated runs, --gtest_repeat, apart).
AppOptions fresh() {
  static std::atomic<int> runs{0};
  const std::string name = std::string("cluster-") + ::testing::UnitTest::GetInstance()->current_test_info()->name() +
                           "-" + std::to_string(runs.fetch_add(1));
  return AppOptions{.broker = "memory://" + name, .backend = "memory://" + name};
}

// Polls a condition that heartbeats (or the collector) make true, for at most kLong.
bool eventually(const std::function<bool()>& condition) {
  const auto deadline = Steady::now() + kLong;
  while (Steady::now() < deadline) {
    if (condition()) return true;
    std::this_thread::sleep_for(2ms);  // the poll period, not a synchronisation
  }
  return condition();
}

// Holds `n` local threads of `ex` inside tasks blocked on a latch until release() (or destruction).
class HoldLocal {
 public:
  HoldLocal(ClusterExecutor& ex, std::size_t n) : started_(static_cast<std::ptrdiff_t>(n)) {
    for (std::size_t i = 0; i < n; ++i) {
      held_.push_back(ex.submit([this] {
        started_.count_down();
        release_.wait();
      }));
    }
    started_.wait();
  }
  HoldLocal(const HoldLocal&) = delete;
  HoldLocal& operator=(const HoldLocal&) = delete;
  ~HoldLocal() {
    release();
    for (auto& f : held_) f.wait();
  }
  void release() {
    if (!released_.exchange(true)) release_.count_down();
  }

 private:
  std::latch started_;
  std::latch release_{1};
  std::atomic<bool> released_{false};
  std::vector<weft::Future<void>> held_;
};

// Calls a registered task while the only local thread is busy: the calls go to the worker as long as it has
// room, the results are right whichever side ran them.
void runs_on_the_worker_while_local_threads_are_busy(App& app) {
  auto where_t = app.task<&where>("cluster.where");
  Worker w(app, {.concurrency = 2, .hostname = "w1@test", .heartbeat = 20ms});
  w.start();
  ClusterExecutor ex(app, {.local_threads = 1, .discovery_interval = 20ms});
  ex.refresh();  // the worker is listed once its start() returned
  ASSERT_EQ(ex.remote_concurrency(), 2u);

  constexpr int kCalls = 40;
  std::vector<weft::Future<std::string>> results;
  {
    HoldLocal hold(ex, 1);
    for (int i = 0; i < kCalls; ++i) results.push_back(ex.submit(where_t, i));
  }
  int remote = 0;
  for (int i = 0; i < kCalls; ++i) {
    const std::string r = results[i].get_for(kLong);
    EXPECT_EQ(value_of(r), std::to_string(i * i));
    const std::string at = ran_at(r);
    EXPECT_TRUE(at == "local" || at == "w1@test") << r;
    if (at == "w1@test") ++remote;
  }
  // The first call found no free local thread and two free worker threads.
  EXPECT_GT(remote, 0);
  const ClusterStats s = ex.stats();
  EXPECT_EQ(s.remote_calls, static_cast<std::uint64_t>(remote));
  EXPECT_EQ(s.remote_succeeded, static_cast<std::uint64_t>(remote));
  EXPECT_EQ(s.local_calls, static_cast<std::uint64_t>(1 + kCalls - remote));  // with the holding task
  EXPECT_EQ(s.remote_in_flight, 0u);
  EXPECT_EQ(w.stats().succeeded, static_cast<std::uint64_t>(remote));  // counted before the result is stored
}

TEST(ClusterExecutor, RunsTaskCallsOnWorkersWhileLocalThreadsAreBusy) {
  App app(fresh());
  runs_on_the_worker_while_local_threads_are_busy(app);
}

TEST(ClusterExecutor, RunsTaskCallsOnWorkersOverSqlite) {
  weft::test::TempDir dir;
  App app({.broker = "sqlite://" + dir.db(), .backend = "sqlite://" + dir.db()});
  runs_on_the_worker_while_local_threads_are_busy(app);
}

TEST(ClusterExecutor, IdleLocalThreadsAreUsedFirst) {
  App app(fresh());
  auto where_t = app.task<&where>("cluster.where");
  Worker w(app, {.concurrency = 2, .hostname = "w1@test", .heartbeat = 20ms});
  w.start();
  ClusterExecutor ex(app, {.local_threads = 2, .discovery_interval = 20ms});
  ex.refresh();  // the worker is listed once its start() returned
  ASSERT_EQ(ex.remote_concurrency(), 2u);
  static_assert(std::is_same_v<decltype(ex.submit(where_t, 1)), weft::Future<std::string>>);
  // One call at a time: a local thread is always free.
  for (int i = 0; i < 10; ++i) EXPECT_EQ(ex.submit(where_t, i).get_for(kLong), "local:" + std::to_string(i * i));
  EXPECT_EQ(ex.stats().remote_calls, 0u);
}

TEST(ClusterExecutor, MapReturnsTaskResultsInInputOrder) {
  App app(fresh());
  auto square_t = app.task<&square>("cluster.square");
  auto where_t = app.task<&where>("cluster.where");
  Worker w(app, {.concurrency = 2, .hostname = "w1@test", .heartbeat = 20ms});
  w.start();
  std::vector<int> items(50);
  for (int i = 0; i < 50; ++i) items[i] = i;
  {
    // Every call on the worker: two threads complete them out of order.
    ClusterExecutor ex(app, {.local_threads = 1, .local_tasks = false});
    const std::vector<int> squares = ex.map(square_t, items);
    ASSERT_EQ(squares.size(), items.size());
    for (int i = 0; i < 50; ++i) EXPECT_EQ(squares[i], i * i);
    EXPECT_EQ(ex.stats().remote_calls, 50u);
    EXPECT_TRUE(ex.map(square_t, std::vector<int>{}).empty());
  }
  {
    // Calls split between the held local thread and the worker.
    ClusterExecutor ex(app, {.local_threads = 1, .discovery_interval = 20ms});
    ex.refresh();  // the worker is listed once its start() returned
  ASSERT_EQ(ex.remote_concurrency(), 2u);
    HoldLocal hold(ex, 1);
    std::vector<std::string> out;
    std::jthread mapper([&] { out = ex.map(where_t, items); });
    // Every call is placed (a local one queued behind the held task) before the local thread is let go.
    ASSERT_TRUE(eventually([&] {
      const ClusterStats s = ex.stats();
      return s.local_calls + s.remote_calls == 1 + items.size();
    }));
    hold.release();
    mapper.join();
    ASSERT_EQ(out.size(), items.size());
    for (int i = 0; i < 50; ++i) EXPECT_EQ(value_of(out[i]), std::to_string(i * i)) << out[i];
    EXPECT_GT(ex.stats().remote_calls, 0u);
  }
}

TEST(ClusterExecutor, DiscoversWorkersAsTheyStartAndStop) {
  App app(fresh());
  auto add_t = app.task<&square>("cluster.square");
  ClusterExecutor ex(app, {.local_threads = 1, .discovery_interval = 20ms});
  EXPECT_TRUE(ex.workers().empty());
  EXPECT_EQ(ex.remote_cpus(), 0u);
  EXPECT_EQ(ex.local_threads(), 1u);
  {
    Worker one(app, {.concurrency = 3, .hostname = "one@test", .heartbeat = 20ms});
    one.start();
    ASSERT_TRUE(eventually([&] { return ex.workers().size() == 1; }));
    const std::vector<WorkerInfo> seen = ex.workers();
    EXPECT_EQ(seen[0].hostname, "one@test");
    EXPECT_EQ(seen[0].concurrency, 3u);
    EXPECT_GE(seen[0].cpus, 1);
    EXPECT_EQ(ex.remote_cpus(), static_cast<std::size_t>(seen[0].cpus));
    EXPECT_EQ(ex.remote_concurrency(), 3u);

    Worker two(app, {.concurrency = 2, .hostname = "two@test", .heartbeat = 20ms});
    two.start();
    ASSERT_TRUE(eventually([&] { return ex.workers().size() == 2; }));
    EXPECT_EQ(ex.remote_concurrency(), 5u);

    one.stop();  // removes its heartbeat
    ASSERT_TRUE(eventually([&] { return ex.workers().size() == 1; }));
    EXPECT_EQ(ex.workers()[0].hostname, "two@test");
    EXPECT_EQ(ex.remote_concurrency(), 2u);
  }
  ASSERT_TRUE(eventually([&] { return ex.workers().empty(); }));
  EXPECT_EQ(ex.remote_cpus(), 0u);
  EXPECT_GE(ex.stats().discoveries, 4u);
  EXPECT_EQ(ex.stats().errors, 0u);
  // The local pool changes size at run time too.
  ex.set_local_threads(3);
  EXPECT_EQ(ex.local_threads(), 3u);
  EXPECT_EQ(ex.submit(add_t, 4).get_for(kLong), 16);
}

TEST(ClusterExecutor, RemoteFailureBecomesRemoteError) {
  App app(fresh());
  auto fail_t = app.task<&fail_with>("cluster.fail");
  Worker w(app, {.concurrency = 1, .heartbeat = 20ms});
  w.start();
  ClusterExecutor ex(app, {.local_threads = 1, .local_tasks = false});
  auto f = ex.submit(fail_t, 7);
  try {
    (void)f.get_for(kLong);
    ADD_FAILURE() << "expected RemoteError";
  } catch (const weft::RemoteError& e) {
    EXPECT_EQ(e.type(), "std::out_of_range");
    EXPECT_EQ(e.message(), "code 7");
  }
  EXPECT_EQ(ex.stats().remote_failed, 1u);
  // The stored result was consumed and forgotten (keep_results = false).
  ASSERT_TRUE(eventually([&] { return ex.stats().remote_in_flight == 0; }));
}

TEST(ClusterExecutor, VoidTaskCallsCompleteRemotelyAndLocally) {
  App app(fresh());
  auto touch_t = app.task<&touch>("cluster.touch");
  touched = 0;
  Worker w(app, {.concurrency = 1, .heartbeat = 20ms});
  w.start();
  ClusterExecutor remote(app, {.local_threads = 1, .local_tasks = false});
  weft::Future<void> there = remote.submit(touch_t, 2);
  there.get_for(kLong);
  EXPECT_EQ(touched.load(), 2);
  EXPECT_EQ(remote.stats().remote_succeeded, 1u);
  ClusterExecutor local(app, {.local_threads = 1});
  local.submit(touch_t, 3).get_for(kLong);  // a free local thread: runs here
  EXPECT_EQ(touched.load(), 5);
  EXPECT_EQ(local.stats().remote_calls, 0u);
}

TEST(ClusterExecutor, ResultOfAnotherTypeIsAnArgumentError) {
  // Client and worker share a broker but not a registry: the worker's "cluster.shape" returns text.
  const AppOptions shared = fresh();
  App client(shared);
  App server(shared);
  auto shape_t = client.task<&square>("cluster.shape");
  server.task<&text_for>("cluster.shape");
  Worker w(server, {.concurrency = 1, .heartbeat = 20ms});
  w.start();
  ClusterExecutor ex(client, {.local_threads = 1, .local_tasks = false});
  auto f = ex.submit(shape_t, 3);
  EXPECT_THROW((void)f.get_for(kLong), ArgumentError);
  EXPECT_EQ(ex.stats().remote_succeeded, 1u);  // the worker stored SUCCESS; the conversion here failed
}

TEST(ClusterExecutor, NoLiveWorkersMeansEverythingRunsLocally) {
  App app(fresh());
  auto where_t = app.task<&where>("cluster.where");
  auto fail_t = app.task<&fail_with>("cluster.fail");
  Worker w(app, {.concurrency = 2, .hostname = "w1@test", .heartbeat = 20ms});
  w.start();
  ClusterExecutor ex(app, {.local_threads = 2, .discovery_interval = 20ms});
  ex.refresh();
  ASSERT_EQ(ex.workers().size(), 1u);
  w.stop();  // removes its heartbeat before it returns
  ex.refresh();
  ASSERT_TRUE(ex.workers().empty());

  std::vector<weft::Future<std::string>> results;
  {
    HoldLocal hold(ex, 2);
    for (int i = 0; i < 20; ++i) results.push_back(ex.submit(where_t, i));
  }
  for (int i = 0; i < 20; ++i) EXPECT_EQ(results[i].get_for(kLong), "local:" + std::to_string(i * i));
  EXPECT_EQ(ex.stats().remote_calls, 0u);
  // Run locally, a task's own exception arrives unchanged.
  EXPECT_THROW((void)ex.submit(fail_t, 3).get_for(kLong), std::out_of_range);
}

TEST(ClusterExecutor, IgnoreResultTasksStayLocal) {
  App app(fresh());
  auto where_t = app.task<&where>("cluster.where", {.ignore_result = true});
  Worker w(app, {.concurrency = 2, .heartbeat = 20ms});
  w.start();
  ClusterExecutor ex(app, {.local_threads = 1, .local_tasks = false});
  // Even with local_tasks = false: no result would ever come back from a worker.
  EXPECT_EQ(ex.submit(where_t, 5).get_for(kLong), "local:25");
  EXPECT_EQ(ex.stats().remote_calls, 0u);
}

TEST(ClusterExecutor, CancelledRemoteCallIsRevoked) {
  App app(fresh());
  auto square_t = app.task<&square>("cluster.square");
  ClusterExecutor ex(app, {.local_threads = 1, .local_tasks = false});
  auto doomed = ex.submit(square_t, 3);  // no worker yet: it waits in the broker
  EXPECT_TRUE(doomed.cancel());
  EXPECT_THROW((void)doomed.get(), weft::Cancelled);
  ASSERT_TRUE(eventually([&] { return ex.stats().remote_cancelled == 1; }));
  EXPECT_EQ(ex.stats().remote_in_flight, 0u);
  // A worker that receives it later skips it.
  Worker w(app, {.concurrency = 1, .heartbeat = 20ms});
  w.start();
  // One worker thread takes the queue in order: once the next call's result is in, the revoked one was seen.
  EXPECT_EQ(ex.submit(square_t, 4).get_for(kLong), 16);
  EXPECT_EQ(w.stats().revoked, 1u);
  EXPECT_EQ(w.stats().succeeded, 1u);
}

TEST(ClusterExecutor, ShutdownDrainCollectsRemoteResults) {
  App app(fresh());
  auto square_t = app.task<&square>("cluster.square");
  std::vector<weft::Future<int>> results;
  {
    ClusterExecutor ex(app, {.local_threads = 1, .local_tasks = false});
    for (int i = 0; i < 20; ++i) results.push_back(ex.submit(square_t, i));
    Worker w(app, {.concurrency = 2, .heartbeat = 20ms});
    w.start();
    ex.shutdown(weft::Shutdown::drain);
    EXPECT_THROW((void)ex.submit(square_t, 1), weft::BrokenExecutor);
    for (auto& f : results) EXPECT_TRUE(f.ready());
  }
  for (int i = 0; i < 20; ++i) EXPECT_EQ(results[i].get(), i * i);
}

TEST(ClusterExecutor, ShutdownCancelPendingCancelsRemoteCalls) {
  App app(fresh());
  auto square_t = app.task<&square>("cluster.square");
  ClusterExecutor ex(app, {.local_threads = 1, .local_tasks = false});
  std::vector<weft::Future<int>> queued;
  for (int i = 0; i < 10; ++i) queued.push_back(ex.submit(square_t, i));  // no worker: none starts
  ex.shutdown(weft::Shutdown::cancel_pending);
  for (auto& f : queued) {
    ASSERT_TRUE(f.ready());
    EXPECT_TRUE(f.cancelled());
    EXPECT_THROW((void)f.get(), weft::Cancelled);
  }
  EXPECT_EQ(ex.stats().remote_cancelled, 10u);
  EXPECT_THROW((void)ex.submit(square_t, 1), weft::BrokenExecutor);
}

TEST(ClusterExecutor, DrainTimeoutBreaksTheCallsStillOut) {
  App app(fresh());
  auto square_t = app.task<&square>("cluster.square");
  weft::Future<int> out;
  {
    ClusterExecutor ex(app, {.local_threads = 1, .local_tasks = false, .drain_timeout = 50ms});
    out = ex.submit(square_t, 2);  // no worker ever comes
  }
  ASSERT_TRUE(out.ready());
  EXPECT_THROW((void)out.get(), weft::BrokenPromise);
}

TEST(ClusterExecutor, RejectsOptionsOutOfRange) {
  App app(fresh());
  EXPECT_THROW({ ClusterExecutor ex(app, {.result_poll = 0ms}); }, std::invalid_argument);
  EXPECT_THROW({ ClusterExecutor ex(app, {.discovery_interval = -1ms}); }, std::invalid_argument);
  EXPECT_THROW({ ClusterExecutor ex(app, {.max_remote_in_flight = 0}); }, std::invalid_argument);
  EXPECT_THROW({ ClusterExecutor ex(app, {.drain_timeout = -1ms}); }, std::invalid_argument);
}

}  // namespace
