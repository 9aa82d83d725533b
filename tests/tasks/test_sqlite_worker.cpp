// Workers on the embedded sqlite:// broker, across processes: a worker killed with SIGKILL in the middle of a
// batch loses nothing, and only the tasks it was running run twice.
#include "weft/process/process.hpp"
#include "weft/tasks/app.hpp"
#include "weft/tasks/worker.hpp"

#include "support.hpp"

#include <fcntl.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <string>
#include <vector>

namespace {
using namespace weft::tasks;
using namespace std::chrono_literals;

constexpr auto kLong = std::chrono::seconds(120);  // a safety net

// Each run appends "<x>\n" to the file named by WEFT_TEST_RUNS (O_APPEND: one write per line, whole).
// Opened per call: each test names a file of its own.
int record(int x) {
  const int fd = ::open(std::getenv("WEFT_TEST_RUNS"), O_WRONLY | O_APPEND | O_CLOEXEC);
  const std::string line = std::to_string(x) + "\n";
  if (fd < 0 || ::write(fd, line.data(), line.size()) != static_cast<ssize_t>(line.size())) std::abort();
  ::close(fd);
  return x;
}

using weft::test::TempDir;

void register_record(App& app) { app.task<&record>("t.record"); }

// The worker killed is a process of its own with a thread pool, or with a process pool (its worker processes
// die with it: the pool's processes end when their parent does).
class SqliteWorker : public ::testing::TestWithParam<Pool> {};

TEST_P(SqliteWorker, KilledWorkerLosesNothingAndOnlyItsRunningTasksRunTwice) {
  TempDir dir;
  const std::string db = "sqlite://" + dir.db();
  const std::string runs = dir.path() + "/runs.txt";
  std::ofstream(runs).close();
  ::setenv("WEFT_TEST_RUNS", runs.c_str(), 1);
  constexpr int kTasks = 600;
  std::vector<std::string> ids;
  {
    App client({.broker = db, .backend = db});
    auto record_t = client.task<&record>("t.record");
    for (int i = 0; i < kTasks; ++i) ids.push_back(record_t.delay(i).id());
  }
  // A worker process with 2 threads and a short lease (its tasks come back 2 s after it dies); killed once it
  // has finished task 100.
  const pid_t child = ::fork();
  ASSERT_GE(child, 0);
  if (child == 0) {
    if (GetParam() == Pool::processes) weft::process::start_fork_server();  // this child has one thread
    App app({.broker = db, .backend = db});
    register_record(app);
    Worker w(app, {.concurrency = 2, .lease = 2000ms, .pool = GetParam(), .setup = &register_record});
    w.start();
    for (;;) ::pause();
  }
  App app({.broker = db, .backend = db});
  app.task<&record>("t.record");
  EXPECT_EQ(app.result(ids[100]).get<int>(kLong), 100);
  ::kill(child, SIGKILL);
  int status = 0;
  ASSERT_EQ(::waitpid(child, &status, 0), child);
  ASSERT_TRUE(WIFSIGNALED(status));
  {
    // A long lease here: a commit slowed by a busy disk must not make this worker's own tasks run twice.
    Worker w(app, {.concurrency = 2, .lease = 30s});
    w.start();
    for (int i = 0; i < kTasks; ++i) ASSERT_EQ(app.result(ids[i]).get<int>(kLong), i) << "task " << i;
    w.stop();
  }
  std::map<int, int> count;
  std::ifstream in(runs);
  for (int x; in >> x;) ++count[x];
  EXPECT_EQ(count.size(), static_cast<std::size_t>(kTasks)) << "a task never ran";
  int twice = 0;
  for (auto [x, n] : count) {
    EXPECT_LE(n, 2) << "task " << x;
    twice += n - 1;
  }
  EXPECT_LE(twice, 2) << "more duplicates than the killed worker had tasks running";
  EXPECT_EQ(app.broker().size("celery"), 0u);
}

INSTANTIATE_TEST_SUITE_P(Pools, SqliteWorker, ::testing::Values(Pool::threads, Pool::processes),
                         [](const auto& p) { return std::string(p.param == Pool::threads ? "threads" : "processes"); });

}  // namespace
