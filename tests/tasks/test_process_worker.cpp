// The process pool of a Worker: tasks run in worker processes; a crash or a hard time limit fails (or retries)
// only the task concerned, and the worker goes on. main() starts the fork server first (../process/main.cpp).
#include "weft/process/errors.hpp"
#include "weft/tasks/app.hpp"
#include "weft/tasks/worker.hpp"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <poll.h>
#include <signal.h>
#include <sys/stat.h>
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
// Writes its pid into the named pipe `fifo` (the test reads it: the task has started), then never returns.
int report_pid_then_spin(std::string fifo) {
  const int fd = ::open(fifo.c_str(), O_WRONLY | O_CLOEXEC);
  if (fd < 0) throw std::runtime_error("cannot open " + fifo);
  const long pid = static_cast<long>(::getpid());
  const bool ok = ::write(fd, &pid, sizeof pid) == static_cast<ssize_t>(sizeof pid);
  ::close(fd);
  if (!ok) throw std::runtime_error("cannot write to " + fifo);
  for (;;) std::this_thread::sleep_for(1ms);  // ignores cancelled(): only killing its process ends it
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
  app.task<&report_pid_then_spin>("p.report_then_spin");
}

// A named pipe for report_pid_then_spin, opened for reading (so the task's open for writing does not wait).
class PidPipe {
 public:
  PidPipe() {
    path_ = "/tmp/weft-pw-" + std::to_string(::getpid()) + "-" +
            ::testing::UnitTest::GetInstance()->current_test_info()->name();
    ::unlink(path_.c_str());
    if (::mkfifo(path_.c_str(), 0600) != 0) throw std::runtime_error("mkfifo " + path_);
    fd_ = ::open(path_.c_str(), O_RDONLY | O_NONBLOCK | O_CLOEXEC);
    if (fd_ < 0) throw std::runtime_error("open " + path_);
  }
  ~PidPipe() {
    ::close(fd_);
    ::unlink(path_.c_str());
  }
  PidPipe(const PidPipe&) = delete;
  PidPipe& operator=(const PidPipe&) = delete;
  const std::string& path() const { return path_; }
  // The pid the task wrote, or 0 when none came within kLong.
  long wait_for_pid() {
    pollfd p{fd_, POLLIN, 0};
    if (::poll(&p, 1, static_cast<int>(std::chrono::milliseconds(kLong).count())) != 1) return 0;
    long pid = 0;
    if (::read(fd_, &pid, sizeof pid) != static_cast<ssize_t>(sizeof pid)) return 0;
    return pid;
  }

 private:
  std::string path_;
  int fd_ = -1;
};

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

// Revoked with terminate while it runs: REVOKED at once, its process killed (one process: the next task could
// not run otherwise, since this one never returns), and the worker goes on.
TEST(ProcessWorker, TerminateKillsTheTasksProcess) {
  App app(fresh());
  register_tasks(app);
  PidPipe pipe;
  WorkerOptions o = processes(1);
  o.control_interval = 20ms;
  Worker w(app, o);
  w.start();
  AsyncResult r = app.send_task("p.report_then_spin", Json::array({pipe.path()}));
  const long pid = pipe.wait_for_pid();
  ASSERT_GT(pid, 0);
  r.revoke({.terminate = true});
  EXPECT_THROW(r.get_json(kLong), weft::Cancelled);
  EXPECT_EQ(app.send_task("p.add", {20, 22}).get<int>(kLong), 42) << "the one process was replaced";
  EXPECT_NE(app.send_task("p.pid").get<long>(kLong), pid);
  w.stop();
  EXPECT_EQ(w.stats().revoked, 1u);
}

TEST(ProcessWorker, APoolWithoutTheTasksRegistrationIsRefused) {
  App app(fresh());
  EXPECT_THROW(Worker(app, {.pool = Pool::processes}), std::invalid_argument);
}

}  // namespace
