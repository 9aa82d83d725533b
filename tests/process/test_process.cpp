// Process: children run a function with its arguments; exit codes, signals, timeouts, daemons, zombies.
#include "weft/process/process.hpp"

#include "support.hpp"

#include <gtest/gtest.h>
#include <signal.h>
#include <sys/syscall.h>
#include <unistd.h>
#include <poll.h>

#include <chrono>
#include <cstdlib>
#include <numeric>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

namespace {

using namespace std::chrono_literals;
using weft::process::Process;
using weft::process::ProcessOptions;

using weft::test::kLong;

void exit_with_sum(std::vector<int> v, std::string s) { ::_exit((std::accumulate(v.begin(), v.end(), 0) + static_cast<int>(s.size())) % 256); }
void returns_normally(int) {}
void throws(std::string what) { throw std::runtime_error(what); }
void blocks_forever() {
  for (;;) ::pause();
}
void crashes() { ::raise(SIGSEGV); }
void exits_with(int code) { std::exit(code); }
void big_argument(std::vector<std::uint8_t> v) {
  std::uint64_t sum = 0;
  for (auto b : v) sum += b;
  ::_exit(v.size() == (8u << 20) && sum == 8u * (1u << 20) * 3u ? 0 : 1);
}

bool gone(int pid) { return ::kill(pid, 0) != 0 && errno == ESRCH; }

TEST(Process, RunsTheFunctionWithItsArguments) {
  Process p(&exit_with_sum, std::vector<int>{10, 20, 30}, "abcd");
  ASSERT_TRUE(p.join(kLong));
  EXPECT_EQ(p.exitcode(), 64);
  EXPECT_EQ(p.signal(), 0);
  EXPECT_FALSE(p.is_alive());
}

TEST(Process, ReturnIsExitCodeZeroAndExitCodesPassThrough) {
  Process a(&returns_normally, 1);
  Process b(&exits_with, 42);
  ASSERT_TRUE(a.join(kLong));
  ASSERT_TRUE(b.join(kLong));
  EXPECT_EQ(a.exitcode(), 0);
  EXPECT_EQ(b.exitcode(), 42);
}

TEST(Process, ExceptionIsExitCodeOne) {
  Process p(&throws, std::string("boom"));
  ASSERT_TRUE(p.join(kLong));
  EXPECT_EQ(p.exitcode(), 1);
}

TEST(Process, JoinTimesOutWhileTheChildRunsThenKillEndsIt) {
  Process p(&blocks_forever);
  EXPECT_FALSE(p.join(20ms));
  EXPECT_TRUE(p.is_alive());
  EXPECT_EQ(p.exitcode(), std::nullopt);
  p.kill();
  ASSERT_TRUE(p.join(kLong));
  EXPECT_EQ(p.exitcode(), -SIGKILL);
  EXPECT_EQ(p.signal(), SIGKILL);
  p.kill();  // already ended: nothing happens
}

TEST(Process, TerminateSendsSigterm) {
  Process p(&blocks_forever);
  p.terminate();
  ASSERT_TRUE(p.join(kLong));
  EXPECT_EQ(p.exitcode(), -SIGTERM);
}

TEST(Process, SegfaultIsReportedAsItsSignal) {
  Process p(&crashes);
  ASSERT_TRUE(p.join(kLong));
  EXPECT_EQ(p.signal(), SIGSEGV);
}

TEST(Process, LargeArgumentsArrive) {
  Process p(&big_argument, std::vector<std::uint8_t>(8u << 20, 3));
  ASSERT_TRUE(p.join(kLong));
  EXPECT_EQ(p.exitcode(), 0);
}

TEST(Process, JoinedChildrenAreReaped) {
  std::vector<Process> ps;
  for (int i = 0; i < 16; ++i) ps.emplace_back(&exits_with, i);
  for (int i = 0; i < 16; ++i) {
    ASSERT_TRUE(ps[i].join(kLong));
    EXPECT_EQ(ps[i].exitcode(), i);
    // The fork server writes the status after reaping: a joined child is no zombie.
    EXPECT_TRUE(gone(ps[i].pid())) << "pid " << ps[i].pid();
  }
}

TEST(Process, ChildrenStartedFromManyThreadsAtOnce) {
  for (int threads : {1, 2, 8}) {
    std::vector<std::thread> ts;
    std::vector<int> wrong(threads, 0);
    for (int t = 0; t < threads; ++t) {
      ts.emplace_back([t, &wrong] {
        for (int i = 0; i < 6; ++i) {
          Process p(&exits_with, t * 10 + i);
          if (!p.join(kLong) || p.exitcode() != t * 10 + i) ++wrong[t];
        }
      });
    }
    for (auto& th : ts) th.join();
    for (int t = 0; t < threads; ++t) EXPECT_EQ(wrong[t], 0) << "thread " << t << " of " << threads;
  }
}

TEST(Process, NamesDefaultAndCanBeGiven) {
  Process a(&returns_normally, 0);
  Process b(ProcessOptions{.name = "loader"}, &returns_normally, 0);
  EXPECT_EQ(a.name().rfind("Process-", 0), 0u);
  EXPECT_EQ(b.name(), "loader");
  a.join(kLong);
  b.join(kLong);
}

TEST(Process, ForkRunsACapturingCallable) {
  int secret = 17;
  Process p = Process::fork([secret] { ::_exit(secret + 1); });
  ASSERT_TRUE(p.join(kLong));
  EXPECT_EQ(p.exitcode(), 18);
  Process q = Process::fork([] { ::raise(SIGKILL); });
  ASSERT_TRUE(q.join(kLong));
  EXPECT_EQ(q.signal(), SIGKILL);
}

// A daemon child dies with the program that started it. The "program" here is a directly forked child that
// starts its own fork server and a daemon, reports the daemon's pid, and exits.
TEST(Process, DaemonChildDiesWithItsProgram) {
  int pipefd[2];
  ASSERT_EQ(::pipe(pipefd), 0);
  Process program = Process::fork([w = pipefd[1]] {
    Process d(ProcessOptions{.name = "daemon", .daemon = true}, &blocks_forever);
    int pid = d.pid();
    if (::write(w, &pid, sizeof pid) != sizeof pid) ::_exit(3);
    ::_exit(0);  // the program ends without joining its daemon
  });
  ::close(pipefd[1]);
  int daemon_pid = 0;
  ASSERT_EQ(::read(pipefd[0], &daemon_pid, sizeof daemon_pid), static_cast<ssize_t>(sizeof daemon_pid));
  ::close(pipefd[0]);
  ASSERT_TRUE(program.join(kLong));
  ASSERT_GT(daemon_pid, 0);
  int pidfd = static_cast<int>(::syscall(SYS_pidfd_open, daemon_pid, 0));
  if (pidfd >= 0) {  // still there: it must end soon (its server saw EOF and killed it)
    pollfd p{pidfd, POLLIN, 0};
    EXPECT_EQ(::poll(&p, 1, 60'000), 1) << "the daemon outlived its program";
    ::close(pidfd);
  }
}

TEST(Process, ForkServerRuns) { EXPECT_GT(weft::process::fork_server_pid(), 0); }

// A child gets the program's disposition of SIGINT (here the default), not the fork server's.
void sigint_is_the_default() {
  struct sigaction sa {};
  if (::sigaction(SIGINT, nullptr, &sa) != 0 || sa.sa_handler != SIG_DFL) {
    throw std::runtime_error("SIGINT is not the default in the child");
  }
}

// Ctrl-C and a service manager's SIGTERM reach the whole process group: the fork server ignores both (the
// program decides what they mean, and a warm shutdown may still start children), and keeps serving.
TEST(Process, TheForkServerOutlivesSigintAndSigterm) {
  const int server = weft::process::fork_server_pid();
  ASSERT_GT(server, 0);
  ASSERT_EQ(::kill(server, SIGINT), 0);
  ASSERT_EQ(::kill(server, SIGTERM), 0);
  Process p(&sigint_is_the_default);
  ASSERT_TRUE(p.join(kLong));
  EXPECT_EQ(p.exitcode(), 0);
  EXPECT_EQ(weft::process::fork_server_pid(), server);
}

}  // namespace
