// The process pool of a Worker: tasks run in worker processes; a crash or a hard time limit fails (or retries)
// only the task concerned, and the worker goes on. main() starts the fork server first (../process/main.cpp).
#include "weft/process/errors.hpp"
#include "weft/tasks/app.hpp"
#include "weft/tasks/worker.hpp"

#include <gtest/gtest.h>
#include <signal.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <stdexcept>
#include <string>
#include <thread>

namespace {
using namespace weft::tasks;
using namespace std::chrono_literals;

constexpr auto kLong = std::chrono::seconds(60);  // a safety net, never the thing measured

long pid_of_runner() { return static_cast<long>(::getpid()); }
int add(int a, int b) { return a + b; }
int crash(int) {
  ::raise(SIGKILL);  // as if the OOM killer took it
  return 0;
}
int crash_first_time(int x) {
  if (current_task()->retries() == 0) std::abort();
  return x;
}
int spin_forever() {
  for (;;) std::this_thread::sleep_for(1ms);  // a task stuck for good: ignores cancelled()
}
int fail_always(int) { throw std::out_of_range("index 7 is past the end"); }
int retry_once(int x) {
  if (current_task()->retries() == 0) throw Retry("not yet", 1ms);
  return x * 10;
}
std::string soft(int) {
  const auto until = std::chrono::steady_clock::now() + kLong;
  while (std::chrono::steady_clock::now() < until) {
    if (current_task()->soft_time_limit_exceeded()) return "soft limit seen in " + current_task()->name();
    std::this_thread::sleep_for(1ms);
  }
  return "never";
}

// The registration both sides share: the parent (for the task options) and each worker process.
void register_tasks(App& app) {
  app.task<&pid_of_runner>("p.pid");
  app.task<&add>("p.add");
  app.task<&crash>("p.crash");
  app.task<&crash_first_time>("p.crash_first_time",
                              {.retry_delay = 1ms, .autoretry_for = retry_on<weft::process::WorkerLost>()});
  app.task<&spin_forever>("p.spin", {.time_limit = 200ms});
  app.task<&fail_always>("p.fail");
  app.task<&retry_once>("p.retry_once");
  app.task<&soft>("p.soft", {.soft_time_limit = 30ms});
}

AppOptions fresh() {
  const std::string name = std::string("pw-") + ::testing::UnitTest::GetInstance()->current_test_info()->name();
  return AppOptions{.broker = "memory://" + name, .backend = "memory://" + name};
}

// The type of the error the task failed with ("no failure" when it did not fail); `what` gets the message.
std::string failure_type(const AsyncResult& r, std::string* what = nullptr) {
  try {
    r.get_json(kLong);
  } catch (const weft::RemoteError& e) {
    if (what != nullptr) *what = e.what();
    return e.type();
  }
  return "no failure";
}

WorkerOptions processes(std::size_t n = 2) {
  return WorkerOptions{.concurrency = n, .pool = Pool::processes, .setup = &register_tasks};
}

TEST(ProcessWorker, RunsTasksInOtherProcesses) {
  App app(fresh());
  register_tasks(app);
  Worker w(app, processes());
  w.start();
  EXPECT_EQ(app.send_task("p.add", {2, 3}).get<int>(kLong), 5);
  const long pid = app.send_task("p.pid").get<long>(kLong);
  EXPECT_NE(pid, static_cast<long>(::getpid()));
  EXPECT_GT(pid, 0);
  EXPECT_EQ(app.send_task("p.soft", {1}).get<std::string>(kLong), "soft limit seen in p.soft");
}

TEST(ProcessWorker, ExceptionsArgumentErrorsAndRetriesComeBack) {
  App app(fresh());
  register_tasks(app);
  Worker w(app, processes());
  w.start();
  std::string what;
  EXPECT_EQ(failure_type(app.send_task("p.fail", {1}), &what), "std::out_of_range");
  EXPECT_NE(what.find("index 7 is past the end"), std::string::npos) << what;
  EXPECT_EQ(failure_type(app.send_task("p.add", {"two", 3})), "TypeError");
  AsyncResult r = app.send_task("p.retry_once", {4});
  EXPECT_EQ(r.get<int>(kLong), 40);
  EXPECT_EQ(r.meta()->retries, 1);
  w.stop();
  EXPECT_EQ(w.stats().retried, 1u);
}

TEST(ProcessWorker, ACrashFailsOnlyItsTaskAndTheWorkerGoesOn) {
  App app(fresh());
  register_tasks(app);
  Worker w(app, processes());
  w.start();
  EXPECT_EQ(failure_type(app.send_task("p.crash", {1})), "WorkerLostError");
  for (int i = 0; i < 10; ++i) EXPECT_EQ(app.send_task("p.add", {i, 1}).get<int>(kLong), i + 1);
  w.stop();
  EXPECT_EQ(w.stats().processes_lost, 1u);
  EXPECT_EQ(w.stats().failed, 1u);
  EXPECT_EQ(w.stats().succeeded, 10u);
}

TEST(ProcessWorker, ACrashIsRetriedWhenTheTaskAsksForIt) {
  App app(fresh());
  register_tasks(app);
  Worker w(app, processes());
  w.start();
  AsyncResult r = app.send_task("p.crash_first_time", {9});
  EXPECT_EQ(r.get<int>(kLong), 9);
  EXPECT_EQ(r.meta()->retries, 1);
}

TEST(ProcessWorker, AHardTimeLimitKillsTheProcess) {
  App app(fresh());
  register_tasks(app);
  Worker w(app, processes(1));
  w.start();
  EXPECT_EQ(failure_type(app.send_task("p.spin")), "TimeLimitExceeded");
  // The one process was killed and replaced: the next task runs.
  EXPECT_EQ(app.send_task("p.add", {1, 1}).get<int>(kLong), 2);
  w.stop();
  EXPECT_EQ(w.stats().time_limited, 1u);
}

TEST(ProcessWorker, APoolWithoutTheTasksRegistrationIsRefused) {
  App app(fresh());
  EXPECT_THROW(Worker(app, {.pool = Pool::processes}), std::invalid_argument);
}

}  // namespace
