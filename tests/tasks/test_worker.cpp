// Calls, states, retries, poison messages and leases: an App and Workers on the memory:// broker.
#include "weft/tasks/app.hpp"
#include "weft/tasks/worker.hpp"
#include "weft/thread/thread_pool.hpp"

#include <gtest/gtest.h>

#include <atomic>
#include <future>
#include <stdexcept>
#include <thread>

namespace {
using namespace weft::tasks;
using namespace std::chrono_literals;
using Steady = std::chrono::steady_clock;

constexpr auto kLong = std::chrono::seconds(60);  // a safety net, never the thing measured

int add(int a, int b) { return a + b; }
std::string greet(std::string who) { return "hello " + who; }
int fail_always(int) { throw std::out_of_range("index 7 is past the end"); }
std::atomic<int> flaky_runs{0};
int flaky(int succeed_on) {
  if (++flaky_runs < succeed_on) throw std::runtime_error("not yet");
  return flaky_runs.load();
}
std::atomic<int> asked_runs{0};
int asks_to_retry(int times) {
  if (++asked_runs <= times) throw Retry("asked", 1ms);
  return asked_runs.load();
}
std::atomic<int> slow_runs{0};
int slow(int ms) {
  ++slow_runs;
  std::this_thread::sleep_for(std::chrono::milliseconds(ms));  // the workload: a task slower than its lease
  return ms;
}
std::promise<void>* ran_signal = nullptr;
std::promise<void>* gate_started = nullptr;
std::shared_future<void> gate_go;
int gated(int x) {
  gate_started->set_value();
  gate_go.wait();
  return x;
}
void signal_ran() { ran_signal->set_value(); }

// A fresh App on brokers and backends of its own (memory:// names are per process).
AppOptions fresh() {
  const std::string name = ::testing::UnitTest::GetInstance()->current_test_info()->name();
  return AppOptions{.broker = "memory://" + name, .backend = "memory://" + name};
}

TEST(Tasks, EveryCallForm) {
  App app(fresh());
  auto add_t = app.task<&add>("t.add");
  auto greet_t = app.task<&greet>("t.greet");
  EXPECT_EQ(add_t(2, 3), 5);  // in place
  Worker w(app, {.concurrency = 2});
  w.start();
  EXPECT_EQ(add_t.delay(2, 3).get<int>(kLong), 5);
  EXPECT_EQ(greet_t.delay(std::string("you")).get<std::string>(kLong), "hello you");
  EXPECT_EQ(app.send_task("t.add", Json::array({40, 2})).get<int>(kLong), 42);
  auto r = add_t.apply_async({.task_id = std::string("my-id")}, 1, 1);
  EXPECT_EQ(r.id(), "my-id");
  EXPECT_EQ(r.get<int>(kLong), 2);
  EXPECT_TRUE(r.successful());
  EXPECT_EQ(app.result("my-id").state(), State::success);
  const auto t0 = std::chrono::system_clock::now();
  auto later = add_t.apply_async({.countdown = 100ms}, 1, 2);
  EXPECT_EQ(later.get<int>(kLong), 3);
  EXPECT_GE(later.meta()->date_done.value(), t0 + 100ms);  // not run before its countdown
  weft::ThreadPool waiters(1);
  EXPECT_EQ(add_t.delay(3, 4).to_future<int>(waiters).get(), 7);
  EXPECT_EQ(app.registered(), (std::vector<std::string>{"t.add", "t.greet"}));
}

TEST(Tasks, StatesFromPendingToSuccessFailureAndRevoked) {
  App app(fresh());
  auto add_t = app.task<&add>("t.add");
  auto fail_t = app.task<&fail_always>("t.fail");
  auto r = add_t.delay(1, 2);
  EXPECT_EQ(r.state(), State::pending);  // no worker yet
  EXPECT_THROW((void)r.get<int>(20ms), weft::Timeout);
  auto expired = add_t.apply_async({.expires = std::chrono::system_clock::now() - 1s}, 1, 1);
  Worker w(app, {.concurrency = 1});
  w.start();
  EXPECT_EQ(r.get<int>(kLong), 3);
  try {
    (void)fail_t.delay(0).get<int>(kLong);
    FAIL() << "no error";
  } catch (const weft::RemoteError& e) {
    EXPECT_EQ(e.type(), "std::out_of_range");
    EXPECT_EQ(e.message(), "index 7 is past the end");
  }
  EXPECT_THROW((void)expired.get<int>(kLong), weft::Cancelled);
  EXPECT_EQ(expired.state(), State::revoked);
}

TEST(Tasks, RetriesWithBackoffUntilSuccessOrTheLimit) {
  App app(fresh());
  flaky_runs = 0;
  asked_runs = 0;
  auto flaky_t = app.task<&flaky>("t.flaky", {.max_retries = 5,
                                               .retry_delay = 20ms,
                                               .retry_backoff = 2.0,
                                               .retry_jitter = false,
                                               .autoretry_for = retry_on<std::runtime_error>()});
  auto asked_t = app.task<&asks_to_retry>("t.asked", {.max_retries = 2});
  auto never_t = app.task<&fail_always>("t.never", {.max_retries = 2, .retry_delay = 1ms,
                                                    .autoretry_for = retry_on<std::logic_error>()});
  Worker w(app, {.concurrency = 2});
  w.start();
  const auto t0 = Steady::now();
  auto r = flaky_t.delay(3);  // fails twice, then succeeds
  EXPECT_EQ(r.get<int>(kLong), 3);
  EXPECT_GE(Steady::now() - t0, 60ms);  // 20 ms, then 40 ms
  EXPECT_EQ(r.meta()->retries, 2);
  EXPECT_EQ(asked_t.delay(2).get<int>(kLong), 3);  // Retry thrown twice, within max_retries = 2
  try {
    (void)never_t.delay(0).get<int>(kLong);
    FAIL() << "no error";
  } catch (const weft::RemoteError& e) {
    EXPECT_EQ(e.type(), "MaxRetriesExceededError");
    EXPECT_NE(e.message().find("out_of_range"), std::string::npos) << e.message();
  }
  EXPECT_EQ(w.stats().retried, 6u);  // two for each task
}

TEST(Tasks, PoisonMessagesFailClearlyAndTheWorkerGoesOn) {
  App app(fresh());
  auto add_t = app.task<&add>("t.add");
  Worker w(app, {.concurrency = 1});
  w.start();
  auto unknown = app.send_task("t.nosuch", Json::array({1}));
  auto wrong_types = app.send_task("t.add", Json::array({"two", 3}));
  auto wrong_count = app.send_task("t.add", Json::array({1}));
  auto kwargs = app.send_task("t.add", Json::array({1, 2}), Json{{"c", 3}});
  app.broker().publish("celery", "this is not a task message", 0, std::nullopt);
  TaskMessage m;
  m.id = "poison-body";
  m.task = "t.add";
  Json env = Json::parse(encode_envelope(m));
  env["body"] = base64_encode("[[1, 2]]");  // not [args, kwargs, embed]
  app.broker().publish("celery", env.dump(), 0, std::nullopt);
  auto remote_type = [](const AsyncResult& r) {
    try {
      (void)r.get_json(kLong);
    } catch (const weft::RemoteError& e) {
      return e.type() + ": " + e.message();
    }
    return std::string("no error");
  };
  EXPECT_NE(remote_type(unknown).find("NotRegistered: weft: no task 't.nosuch'"), std::string::npos);
  EXPECT_NE(remote_type(wrong_types).find("TypeError: t.add() argument 1"), std::string::npos);
  EXPECT_NE(remote_type(wrong_count).find("takes 2 positional arguments but 1 were given"), std::string::npos);
  EXPECT_NE(remote_type(kwargs).find("keyword arguments"), std::string::npos);
  EXPECT_NE(remote_type(app.result("poison-body")).find("ProtocolError"), std::string::npos);
  EXPECT_EQ(add_t.delay(2, 2).get<int>(kLong), 4);  // still working
  w.stop();  // its last acknowledgement follows the result
  EXPECT_EQ(w.stats().poison, 6u);
  EXPECT_EQ(app.broker().size("celery"), 0u);  // poison is dropped, not redelivered
  EXPECT_THROW((void)app.send_task("t.add", Json::array({std::string(kMaxEnvelope, 'x')})), MessageTooLarge);
}

// A task slower than the lease keeps it by renewal: it runs once although two workers wait for work.
TEST(Tasks, ASlowTaskOutlivingItsLeaseRunsOnce) {
  App app(fresh());
  slow_runs = 0;
  auto slow_t = app.task<&slow>("t.slow");
  Worker a(app, {.concurrency = 2, .lease = 60ms});
  Worker b(app, {.concurrency = 2, .lease = 60ms});
  a.start();
  b.start();
  EXPECT_EQ(slow_t.delay(400).get<int>(kLong), 400);
  EXPECT_EQ(slow_runs.load(), 1);
  EXPECT_EQ(a.stats().redelivered + b.stats().redelivered, 0u);
}

TEST(Tasks, IgnoreResultStoresNothingAndQueuesRoute) {
  App app(fresh());
  std::promise<void> ran;
  ran_signal = &ran;
  auto quiet = app.task<&signal_ran>("t.quiet", {.ignore_result = true});
  auto add_t = app.task<&add>("t.add", {.queue = "math"});
  Worker celery(app, {.concurrency = 1});
  celery.start();
  auto r = quiet.delay();
  ASSERT_EQ(ran.get_future().wait_for(kLong), std::future_status::ready);
  celery.stop();
  EXPECT_EQ(r.state(), State::pending);
  auto sum = add_t.delay(1, 2);  // to queue "math": the "celery" worker does not take it
  EXPECT_EQ(app.broker().size("math"), 1u);
  Worker math(app, {.concurrency = 1, .queues = {"math"}});
  math.start();
  EXPECT_EQ(sum.get<int>(kLong), 3);
}

TEST(Tasks, RateLimitSpacesStarts) {
  App app(fresh());
  auto add_t = app.task<&add>("t.add", {.rate_limit = 20.0});
  Worker w(app, {.concurrency = 2});
  w.start();
  const auto t0 = Steady::now();
  std::vector<AsyncResult> rs;
  for (int i = 0; i < 5; ++i) rs.push_back(add_t.delay(i, i));
  for (auto& r : rs) (void)r.get<int>(kLong);
  EXPECT_GE(Steady::now() - t0, 200ms);  // five starts at 20 per second: four gaps of 50 ms
}

TEST(Tasks, StopIsWarmAndTrackStartedRecordsTheWorker) {
  App app(fresh());
  std::promise<void> started, go;
  gate_started = &started;
  gate_go = go.get_future().share();
  auto gated_t = app.task<&gated>("t.gated");
  Worker w(app, WorkerOptions{.concurrency = 1, .track_started = true, .hostname = "w1"});
  w.start();
  auto r = gated_t.delay(5);
  ASSERT_EQ(started.get_future().wait_for(kLong), std::future_status::ready);
  EXPECT_EQ(r.state(), State::started);  // stored before the task began
  EXPECT_EQ(r.meta()->result.value("hostname", ""), "w1");
  auto stopping = std::async(std::launch::async, [&] { w.stop(); });
  go.set_value();
  stopping.get();  // returns only once the running task finished
  EXPECT_EQ(r.state(), State::success);
  EXPECT_EQ(r.get<int>(kLong), 5);
  EXPECT_EQ(w.stats().succeeded, 1u);
}

}  // namespace
