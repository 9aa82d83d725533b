// ProcessPool when things go wrong: workers killed, crashing, hanging, exiting; messages too large; and what
// the pool leaves behind (no zombies, nothing in /dev/shm).
#include "weft/process/pool.hpp"
#include "weft/process/queue.hpp"

#include "support.hpp"

#include <gtest/gtest.h>
#include <dirent.h>
#include <signal.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <set>
#include <string>
#include <vector>

namespace {

using namespace std::chrono_literals;
using weft::process::ProcessPool;
using weft::process::ProcessPoolOptions;
using weft::process::WorkerLost;

weft::process::Queue* g_started = nullptr;
void adopt_started(weft::process::Queue q) { g_started = new weft::process::Queue(std::move(q)); }

int square(int x) { return x * x; }
int report_then_hang() {
  g_started->put(static_cast<int>(::getpid()));
  for (;;) ::pause();
}
int hang() {
  for (;;) ::pause();
}
int segfault(int) {
  ::raise(SIGSEGV);
  return 0;
}
int aborts() { std::abort(); }
int exits(int code) { std::exit(code); }
std::string big_result(std::size_t n) { return std::string(n, 'r'); }
std::size_t length(std::string s) { return s.size(); }

using weft::test::shm_entries;

bool gone(int pid) { return ::kill(pid, 0) != 0 && errno == ESRCH; }

template <class F>
int lost_signal(F& f) {
  try {
    f.get();
  } catch (const WorkerLost& e) {
    return e.signal();
  }
  return -1;
}

TEST(ProcessPoolFailures, KilledWorkerFailsOnlyItsTaskAndIsReplaced) {
  weft::process::Queue started;
  ProcessPoolOptions o{.workers = 1};
  o.initialize(&adopt_started, started);
  ProcessPool pool(std::move(o));
  auto victim = pool.submit(&report_then_hang);
  std::vector<weft::Future<int>> behind;  // queued behind it on the same (only) worker
  for (int i = 0; i < 50; ++i) behind.push_back(pool.submit(&square, i));
  const int pid = started.get<int>(60s);
  ASSERT_EQ(::kill(pid, SIGKILL), 0);
  EXPECT_EQ(lost_signal(victim), SIGKILL);
  for (int i = 0; i < 50; ++i) EXPECT_EQ(behind[i].get(), i * i) << "task " << i << " was lost with the worker";
  EXPECT_EQ(pool.submit(&square, 9).get(), 81);
  EXPECT_NE(pool.worker_pids().at(0), pid);
  EXPECT_EQ(pool.stats().workers_lost, 1u);
}

// A KillSwitch ends the task it was given to: running (its worker is killed and replaced), waiting behind it
// (never runs), killed before it was submitted (never runs), finished (nothing happens).
TEST(ProcessPoolFailures, AKillSwitchEndsItsTaskWhereverItIs) {
  using weft::process::KillSwitch;
  weft::process::Queue started;
  ProcessPoolOptions o{.workers = 1};
  o.initialize(&adopt_started, started);
  ProcessPool pool(std::move(o));
  auto running_switch = std::make_shared<KillSwitch>();
  auto waiting_switch = std::make_shared<KillSwitch>();
  auto early_switch = std::make_shared<KillSwitch>();
  auto done_switch = std::make_shared<KillSwitch>();
  EXPECT_EQ(pool.submit({.kill_switch = done_switch}, &square, 3).get(), 9);
  done_switch->kill();  // finished: nothing happens
  auto running = pool.submit({.kill_switch = running_switch}, &report_then_hang);
  auto waiting = pool.submit({.kill_switch = waiting_switch}, &report_then_hang);  // behind it, one worker
  auto after = pool.submit(&square, 5);
  early_switch->kill();
  auto early = pool.submit({.kill_switch = early_switch}, &report_then_hang);
  EXPECT_THROW(early.get(), weft::Cancelled);
  const int pid = started.get<int>(60s);
  waiting_switch->kill();
  running_switch->kill();
  EXPECT_TRUE(running_switch->killed());
  EXPECT_THROW(running.get(), weft::Cancelled);
  EXPECT_THROW(waiting.get(), weft::Cancelled);
  EXPECT_EQ(after.get(), 25) << "the task behind them runs on the replacement worker";
  EXPECT_NE(pool.worker_pids().at(0), pid);
  const auto st = pool.stats();
  EXPECT_EQ(st.cancelled, 3u);
  EXPECT_EQ(st.completed, 2u);
  EXPECT_EQ(st.timeouts, 0u);
  EXPECT_EQ(st.failed, 0u);
}

TEST(ProcessPoolFailures, SegfaultAndAbortAreReportedWithTheirSignals) {
  for (std::size_t workers : {1u, 2u}) {
    ProcessPool pool(ProcessPoolOptions{.workers = workers});
    std::vector<weft::Future<int>> ok;
    for (int i = 0; i < 20; ++i) ok.push_back(pool.submit(&square, i));
    auto crash = pool.submit(&segfault, 1);
    auto ab = pool.submit(&aborts);
    for (int i = 0; i < 20; ++i) ok.push_back(pool.submit(&square, i));
    EXPECT_EQ(lost_signal(crash), SIGSEGV);
    EXPECT_EQ(lost_signal(ab), SIGABRT);
    for (int i = 0; i < 40; ++i) EXPECT_EQ(ok[i].get(), (i % 20) * (i % 20));
    try {
      pool.submit(&segfault, 2).get();
      FAIL();
    } catch (const WorkerLost& e) {
      EXPECT_NE(std::string(e.what()).find("SIGSEGV"), std::string::npos) << e.what();
    }
  }
}

TEST(ProcessPoolFailures, ExitInsideATaskIsAWorkerLostWithItsStatus) {
  ProcessPool pool(ProcessPoolOptions{.workers = 1});
  auto f = pool.submit(&exits, 7);
  try {
    f.get();
    FAIL();
  } catch (const WorkerLost& e) {
    EXPECT_EQ(e.signal(), 0);
    EXPECT_EQ(e.exit_code(), 7);
  }
  EXPECT_EQ(pool.submit(&square, 3).get(), 9);
}

TEST(ProcessPoolFailures, TaskPastItsTimeoutIsKilledAndTimesOut) {
  ProcessPool pool(ProcessPoolOptions{.workers = 2});
  auto slow = pool.submit(weft::process::SubmitOptions{.timeout = 100ms}, &hang);
  auto fast = pool.submit(weft::process::SubmitOptions{.timeout = 60s}, &square, 4);
  EXPECT_EQ(fast.get(), 16);
  EXPECT_THROW(slow.get(), weft::Timeout);
  EXPECT_EQ(pool.stats().timeouts, 1u);
  EXPECT_EQ(pool.submit(&square, 5).get(), 25);  // replaced
  EXPECT_EQ(pool.worker_pids().size(), 2u);
}

TEST(ProcessPoolFailures, DefaultTimeoutAppliesToEveryTask) {
  ProcessPool pool(ProcessPoolOptions{.workers = 1, .task_timeout = 200ms});
  EXPECT_THROW(pool.submit(&hang).get(), weft::Timeout);
  EXPECT_EQ(pool.submit(&square, 6).get(), 36);
}

// A task handed straight to an idle worker while the collector thread sleeps (and the waiting thread
// collects results itself) still times out: the collector is told of the new deadline.
TEST(ProcessPoolFailures, TimedTasksSubmittedToAnIdlePoolTimeOut) {
  ProcessPool pool(ProcessPoolOptions{.workers = 1});
  for (int round = 0; round < 3; ++round) {
    EXPECT_EQ(pool.submit(&square, round).get(), round * round);
    EXPECT_THROW(pool.submit(weft::process::SubmitOptions{.timeout = 50ms}, &hang).get(), weft::Timeout);
  }
  EXPECT_EQ(pool.stats().timeouts, 3u);
}

TEST(ProcessPoolFailures, OversizedArgumentsAndResultsAreClearErrors) {
  ProcessPool pool(ProcessPoolOptions{.workers = 1, .max_message = 1 << 16});
  EXPECT_THROW(pool.submit(&length, std::string(1 << 17, 'a')), weft::process::MessageTooLarge);
  EXPECT_EQ(pool.submit(&length, std::string(1000, 'a')).get(), 1000u);
  try {
    pool.submit(&big_result, std::size_t{1} << 17).get();
    FAIL();
  } catch (const weft::RemoteError& e) {
    EXPECT_NE(std::string(e.what()).find("MessageTooLarge"), std::string::npos) << e.what();
  }
  EXPECT_EQ(pool.submit(&big_result, std::size_t{10}).get(), std::string(10, 'r'));
}

TEST(ProcessPoolFailures, ShutdownLeavesNoZombiesAndNoSharedMemory) {
  const auto before = shm_entries();
  std::vector<int> pids;
  {
    ProcessPool pool(ProcessPoolOptions{.workers = 3, .max_tasks_per_child = 5});
    std::vector<weft::Future<int>> fs;
    for (int i = 0; i < 100; ++i) fs.push_back(pool.submit(&square, i));
    fs.push_back(pool.submit(&segfault, 0));
    for (auto& f : fs) {
      try {
        (void)f.get();
      } catch (const WorkerLost&) {
      }
    }
    pids = pool.worker_pids();
    ASSERT_EQ(pids.size(), 3u);
  }
  for (int pid : pids) EXPECT_TRUE(gone(pid)) << "worker " << pid << " outlived its pool (or is a zombie)";
  EXPECT_EQ(shm_entries(), before);
  EXPECT_TRUE(shm_entries(pids).empty()) << "a worker left a segment behind";
}

TEST(ProcessPoolFailures, DestroyingABusyPoolWaitsForItsTasks) {
  std::vector<weft::Future<int>> fs;
  {
    ProcessPool pool(ProcessPoolOptions{.workers = 2});
    for (int i = 0; i < 500; ++i) fs.push_back(pool.submit(&square, i));
  }
  for (int i = 0; i < 500; ++i) EXPECT_EQ(fs[i].get(), i * i);
}

}  // namespace
