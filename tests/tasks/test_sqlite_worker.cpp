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

#include <cstdio>
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

// Each run appends "<x> <who>\n" to the file named by WEFT_TEST_RUNS (O_APPEND: one write per line, whole),
// where <who> is WEFT_TEST_WORKER ("killed" in the worker that is killed and in the processes of its pool,
// "second" otherwise). Opened per call: each test names a file of its own.
int record(int x) {
  const int fd = ::open(std::getenv("WEFT_TEST_RUNS"), O_WRONLY | O_APPEND | O_CLOEXEC);
  const char* who = std::getenv("WEFT_TEST_WORKER");
  const std::string line = std::to_string(x) + " " + (who != nullptr ? who : "second") + "\n";
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
  ::unsetenv("WEFT_TEST_WORKER");
  constexpr int kTasks = 10'000;
  constexpr int kKillAfter = 5'000;  // the killed worker is killed once this task's result is in
  constexpr std::size_t kConcurrency = 2;
  constexpr std::size_t kPrefetch = 4 * kConcurrency;
  std::vector<std::string> ids;
  {
    App client({.broker = db, .backend = db});
    client.task<&record>("t.record");
    std::vector<TaskMessage> batch;
    for (int i = 0; i < kTasks; ++i) batch.push_back(client.make_message("t.record", Json::array({i}), Json::object(), {}));
    for (const AsyncResult& r : client.send_many(std::move(batch))) ids.push_back(r.id());
  }
  // A worker process with a short lease (what it held comes back 2 s after it dies), killed in the middle.
  const pid_t child = ::fork();
  ASSERT_GE(child, 0);
  if (child == 0) {
    ::setenv("WEFT_TEST_WORKER", "killed", 1);
    if (GetParam() == Pool::processes) weft::process::start_fork_server();  // this child has one thread
    App app({.broker = db, .backend = db});
    register_record(app);
    Worker w(app, {.concurrency = kConcurrency, .lease = 2000ms, .pool = GetParam(), .setup = &register_record,
                   .prefetch = kPrefetch});
    w.start();
    for (;;) ::pause();
  }
  App app({.broker = db, .backend = db});
  app.task<&record>("t.record");
  EXPECT_EQ(app.result(ids[kKillAfter]).get<int>(kLong), kKillAfter);
  ::kill(child, SIGKILL);
  int status = 0;
  ASSERT_EQ(::waitpid(child, &status, 0), child);
  ASSERT_TRUE(WIFSIGNALED(status));
  std::size_t stored_before = 0;  // results stored by the killed worker: those tasks are done for good
  for (const std::string& id : ids) stored_before += app.backend().get(id) && app.result(id).ready() ? 1 : 0;
  {
    // A long lease here: a commit slowed by a busy disk must not make this worker's own tasks run twice.
    Worker w(app, {.concurrency = kConcurrency, .lease = 30s});
    w.start();
    for (int i = 0; i < kTasks; ++i) ASSERT_EQ(app.result(ids[i]).get<int>(kLong), i) << "task " << i;
    w.stop();
  }
  std::map<int, std::vector<std::string>> by_task;  // task -> who ran it, in order
  std::ifstream in(runs);
  int x = 0;
  for (std::string who; in >> x >> who;) by_task[x].push_back(who);
  EXPECT_EQ(by_task.size(), static_cast<std::size_t>(kTasks)) << "a task never ran";
  int twice = 0;
  for (const auto& [task, who] : by_task) {
    if (who.size() == 1) continue;
    ++twice;
    // Run twice: first by the killed worker (it ran it, or was running it, when it died), then once more.
    ASSERT_EQ(who.size(), 2u) << "task " << task;
    EXPECT_EQ(who[0], "killed") << "task " << task;
    EXPECT_EQ(who[1], "second") << "task " << task;
  }
  // Only what the killed worker held can run twice: the tasks it was running and those whose results were
  // still on their way to the disk — at most its prefetch, plus 64 results waiting for a commit, plus one per
  // thread waiting to hand its result over (WorkerOptions::prefetch). Every task it stored ran once.
  std::printf("[          ] %d of %d tasks ran twice; the killed worker had stored %zu results\n", twice, kTasks,
              stored_before);
  EXPECT_GE(stored_before, static_cast<std::size_t>(kKillAfter));
  EXPECT_LE(twice, static_cast<int>(kPrefetch + 64 + kConcurrency)) << "more duplicates than the killed worker held";
  EXPECT_EQ(app.broker().size("celery"), 0u);
}

INSTANTIATE_TEST_SUITE_P(Pools, SqliteWorker, ::testing::Values(Pool::threads, Pool::processes),
                         [](const auto& p) { return std::string(p.param == Pool::threads ? "threads" : "processes"); });

}  // namespace
