// The task queue's subcommands, run as separate processes on a sqlite:// broker in a fresh directory: a
// worker loading a task module, call/result/inspect/purge/revoke, the worker's warm and cold shutdowns, and
// two beats feeding a worker.
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <regex>
#include <sstream>
#include <cctype>
#include <string>
#include <vector>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#ifndef WEFT_CLI_PATH
#error "WEFT_CLI_PATH must name the weft executable"
#endif
#ifndef WEFT_TASKS_MODULE
#error "WEFT_TASKS_MODULE must name the test task module"
#endif

extern char** environ;

namespace {

using Steady = std::chrono::steady_clock;
constexpr auto kLong = std::chrono::seconds(60);  // a safety net, never the thing measured

// A weft process with its stdout and stderr on one pipe.
class Weft {
 public:
  explicit Weft(std::vector<std::string> args) {
    args.insert(args.begin(), WEFT_CLI_PATH);
    int fds[2];
    if (::pipe2(fds, O_CLOEXEC) != 0) throw std::runtime_error("pipe");
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_adddup2(&fa, fds[1], 1);
    posix_spawn_file_actions_adddup2(&fa, fds[1], 2);
    posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
    std::vector<char*> argv;
    for (auto& a : args) argv.push_back(a.data());
    argv.push_back(nullptr);
    const int rc = ::posix_spawn(&pid_, argv[0], &fa, nullptr, argv.data(), environ);
    posix_spawn_file_actions_destroy(&fa);
    ::close(fds[1]);
    fd_ = fds[0];
    if (rc != 0) throw std::runtime_error("posix_spawn failed");
  }
  ~Weft() {
    if (pid_ > 0) {
      ::kill(pid_, SIGKILL);
      ::waitpid(pid_, nullptr, 0);
    }
    ::close(fd_);
  }
  // Reads until the output contains `text` (true) or the process closed its output / kLong passed (false).
  bool wait_for(const std::string& text) {
    const auto until = Steady::now() + kLong;
    while (out_.find(text) == std::string::npos) {
      const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(until - Steady::now()).count();
      if (left <= 0) return false;
      pollfd p{fd_, POLLIN, 0};
      if (::poll(&p, 1, static_cast<int>(left)) <= 0) continue;
      char buf[4096];
      const ssize_t n = ::read(fd_, buf, sizeof buf);
      if (n <= 0) return out_.find(text) != std::string::npos;
      out_.append(buf, static_cast<std::size_t>(n));
    }
    return true;
  }
  void signal(int sig) { ::kill(pid_, sig); }
  // Waits for the exit; returns the exit status (128 + n for a signal n), reading the rest of the output.
  int wait() {
    wait_for(std::string(1, '\0'));  // reads to the end of the output
    int status = 0;
    ::waitpid(pid_, &status, 0);
    pid_ = -1;
    return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
  }
  const std::string& output() const { return out_; }

 private:
  pid_t pid_ = -1;
  int fd_ = -1;
  std::string out_;
};

struct CliResult {
  int code;
  std::string out;
};
CliResult weft(std::vector<std::string> args) {
  Weft w(std::move(args));
  const int code = w.wait();
  return {code, w.output()};
}

class TasksCli : public ::testing::Test {
 protected:
  TasksCli() {
    char tmpl[] = "/tmp/weft-cli-tasks-XXXXXX";
    if (::mkdtemp(tmpl) == nullptr) throw std::runtime_error("mkdtemp");
    dir_ = tmpl;
    url_ = "sqlite://" + dir_ + "/q.db";
  }
  ~TasksCli() override {
    std::error_code ec;
    std::filesystem::remove_all(dir_, ec);
  }
  // args + the broker option.
  std::vector<std::string> with_broker(std::vector<std::string> args) const {
    args.push_back("--broker");
    args.push_back(url_);
    return args;
  }
  std::unique_ptr<Weft> start_worker(const std::string& name, std::vector<std::string> extra = {}) {
    std::vector<std::string> args{"worker", "--load", WEFT_TASKS_MODULE, "-c", "2", "-n", name, "--heartbeat", "0.1"};
    args.insert(args.end(), extra.begin(), extra.end());
    auto w = std::make_unique<Weft>(with_broker(args));
    EXPECT_TRUE(w->wait_for("ready")) << w->output();
    return w;
  }
  std::string dir_, url_;
};

std::string trim(std::string s) {
  while (!s.empty() && (s.back() == '\n' || s.back() == ' ')) s.pop_back();
  return s;
}

TEST_F(TasksCli, CallResultMapInspectAndWarmShutdown) {
  auto worker = start_worker("cli@test");
  CliResult r = weft(with_broker({"call", "test.add", "2", "3", "--wait", "--timeout", "60"}));
  EXPECT_EQ(r.code, 0) << r.out;
  EXPECT_EQ(trim(r.out), "5");
  r = weft(with_broker({"call", "test.shout", "hello there", "--wait", "--timeout", "60"}));
  EXPECT_EQ(trim(r.out), "\"HELLO THERE!\"") << r.out;
  r = weft(with_broker({"call", "test.add", "40", "2", "--serializer", "msgpack", "--wait", "--timeout", "60"}));
  EXPECT_EQ(trim(r.out), "42") << r.out;

  // Without --wait: the id; `weft result` waits for it.
  r = weft(with_broker({"call", "test.square", "12"}));
  ASSERT_EQ(r.code, 0) << r.out;
  const std::string id = trim(r.out);
  EXPECT_TRUE(std::regex_match(id, std::regex("[0-9a-f-]{36}"))) << id;
  r = weft(with_broker({"result", id, "--timeout", "60"}));
  EXPECT_EQ(r.code, 0) << r.out;
  EXPECT_EQ(trim(r.out), "144");

  // A failing task: exit 1 and the error.
  r = weft(with_broker({"call", "test.fails", "1", "--wait", "--timeout", "60"}));
  EXPECT_EQ(r.code, 1);
  EXPECT_NE(r.out.find("no good"), std::string::npos) << r.out;
  // Wrong argument types: a TypeError-like failure, the worker keeps running.
  r = weft(with_broker({"call", "test.add", "x", "--wait", "--timeout", "60"}));
  EXPECT_EQ(r.code, 1);
  EXPECT_NE(r.out.find("takes 2 positional arguments"), std::string::npos) << r.out;

  // --map: one call per input line, results in input order, progress lines on a pipe.
  const std::string inputs = dir_ + "/inputs.txt";
  {
    std::ofstream f(inputs);
    for (int i = 1; i <= 40; ++i) f << i << "\n";
  }
  r = weft(with_broker({"call", "test.square", "--map", inputs, "--timeout", "60"}));
  EXPECT_EQ(r.code, 0) << r.out;
  // The results (stdout) in input order, between the progress lines (stderr).
  std::vector<long> got;
  {
    std::istringstream lines(r.out);
    for (std::string line; std::getline(lines, line);) {
      if (!line.empty() && std::isdigit(static_cast<unsigned char>(line[0]))) got.push_back(std::stol(line));
    }
  }
  ASSERT_EQ(got.size(), 40u) << r.out;
  for (int i = 1; i <= 40; ++i) EXPECT_EQ(got[i - 1], i * i);
  EXPECT_NE(r.out.find("100%"), std::string::npos) << r.out;

  // inspect: from the worker's heartbeats.
  r = weft(with_broker({"inspect", "ping"}));
  EXPECT_EQ(r.code, 0) << r.out;
  EXPECT_NE(r.out.find("cli@test: pong"), std::string::npos) << r.out;
  r = weft(with_broker({"inspect", "registered"}));
  EXPECT_NE(r.out.find("test.square"), std::string::npos) << r.out;
  r = weft(with_broker({"inspect", "workers", "--json"}));
  ASSERT_EQ(r.code, 0) << r.out;
  const auto j = nlohmann::json::parse(r.out);
  ASSERT_TRUE(j.contains("cli@test")) << r.out;
  EXPECT_EQ(j["cli@test"]["concurrency"], 2);
  EXPECT_EQ(j["cli@test"]["pool"], "threads");

  // Warm shutdown: a running task (1.5 s: still running when the signal comes) finishes first.
  r = weft(with_broker({"call", "test.takes", "1500"}));
  const std::string slow = trim(r.out);
  for (int i = 0; i < 600; ++i) {  // until the worker reports it running (its heartbeat), bounded
    r = weft(with_broker({"inspect", "active"}));
    if (r.out.find(slow) != std::string::npos) break;
  }
  ASSERT_NE(r.out.find(slow), std::string::npos) << r.out;
  worker->signal(SIGTERM);
  EXPECT_EQ(worker->wait(), 0) << worker->output();
  EXPECT_NE(worker->output().find("warm shutdown"), std::string::npos) << worker->output();
  r = weft(with_broker({"result", slow, "--no-wait"}));
  EXPECT_NE(r.out.find("\"status\":\"SUCCESS\""), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("\"result\":1500"), std::string::npos) << r.out;
  r = weft(with_broker({"inspect", "ping"}));
  EXPECT_EQ(r.code, 1) << r.out;  // a stopped worker removes its heartbeat
}

TEST_F(TasksCli, PurgeAndRevokeWithoutAWorker) {
  CliResult r = weft(with_broker({"call", "test.add", "1", "1", "-Q", "later"}));
  const std::string id = trim(r.out);
  weft(with_broker({"call", "test.add", "2", "2", "-Q", "later"}));
  r = weft(with_broker({"revoke", id}));
  EXPECT_EQ(r.code, 0) << r.out;
  EXPECT_NE(r.out.find("revoked " + id), std::string::npos) << r.out;
  r = weft(with_broker({"result", id, "--no-wait"}));
  EXPECT_EQ(trim(r.out), "PENDING");
  r = weft(with_broker({"purge", "-Q", "later"}));  // stdin is not a terminal: refused without --force
  EXPECT_NE(r.code, 0);
  r = weft(with_broker({"purge", "-Q", "later", "-f"}));
  EXPECT_EQ(r.code, 0) << r.out;
  EXPECT_NE(r.out.find("purged 2 messages"), std::string::npos) << r.out;
  r = weft(with_broker({"call", "test.add", "1", "1", "--broker", "nope://x"}));
  EXPECT_NE(r.code, 0);
}

TEST_F(TasksCli, ARevokedCallIsNotRun) {
  CliResult r = weft(with_broker({"call", "test.add", "1", "1"}));
  const std::string id = trim(r.out);
  weft(with_broker({"revoke", id}));
  auto worker = start_worker("revoke@test");
  r = weft(with_broker({"result", id, "--timeout", "60"}));
  EXPECT_NE(r.code, 0);
  EXPECT_NE(r.out.find("revoked"), std::string::npos) << r.out;
}

TEST_F(TasksCli, ASecondSignalIsAColdShutdown) {
  auto worker = start_worker("cold@test");
  CliResult r = weft(with_broker({"call", "test.takes", "60000"}));
  const std::string id = trim(r.out);
  for (int i = 0; i < 600; ++i) {
    r = weft(with_broker({"inspect", "active"}));
    if (r.out.find(id) != std::string::npos) break;
  }
  ASSERT_NE(r.out.find(id), std::string::npos) << r.out;
  worker->signal(SIGTERM);
  ASSERT_TRUE(worker->wait_for("warm shutdown")) << worker->output();
  worker->signal(SIGTERM);
  EXPECT_EQ(worker->wait(), 128 + SIGTERM) << worker->output();
  EXPECT_NE(worker->output().find("cold shutdown"), std::string::npos) << worker->output();
  // Not acknowledged: the task is still in the broker for the next worker (after its lease).
  r = weft(with_broker({"result", id, "--no-wait"}));
  EXPECT_EQ(trim(r.out), "PENDING");
}

TEST_F(TasksCli, TwoBeatsFeedAWorkerEachPeriodOnce) {
  const std::string schedule = dir_ + "/schedule.json";
  {
    std::ofstream f(schedule);
    f << R"({"entries": [{"name": "adder", "task": "test.add", "every": 0.1, "args": [1, 2]}]})";
  }
  auto worker = start_worker("beat@test");
  Weft beat1(with_broker({"beat", "--schedule", schedule}));
  Weft beat2(with_broker({"beat", "--schedule", schedule}));
  ASSERT_TRUE(beat1.wait_for("ready")) << beat1.output();
  ASSERT_TRUE(beat2.wait_for("ready")) << beat2.output();
  // Until the worker has run a few periods (its heartbeat's counters), bounded.
  for (int i = 0; i < 600; ++i) {
    CliResult r = weft(with_broker({"inspect", "stats", "--json"}));
    if (r.code == 0 && nlohmann::json::parse(r.out)["beat@test"]["stats"]["succeeded"].get<int>() >= 5) break;
  }
  beat1.signal(SIGTERM);
  beat2.signal(SIGTERM);
  EXPECT_EQ(beat1.wait(), 0) << beat1.output();
  EXPECT_EQ(beat2.wait(), 0) << beat2.output();
  const std::regex stats("sent ([0-9]+), skipped ([0-9]+)");
  std::smatch m1, m2;
  ASSERT_TRUE(std::regex_search(beat1.output(), m1, stats)) << beat1.output();
  ASSERT_TRUE(std::regex_search(beat2.output(), m2, stats)) << beat2.output();
  const int sent = std::stoi(m1[1]) + std::stoi(m2[1]);
  EXPECT_GE(sent, 5);
  EXPECT_GE(std::stoi(m1[2]) + std::stoi(m2[2]), 1) << "the beats never met on a period";
  // Every sent period ran exactly once: wait (bounded) for the worker to have run them all, then stop it.
  for (int i = 0; i < 600; ++i) {
    CliResult r = weft(with_broker({"inspect", "stats", "--json"}));
    if (r.code == 0 && nlohmann::json::parse(r.out)["beat@test"]["stats"]["succeeded"].get<int>() >= sent) break;
  }
  worker->signal(SIGTERM);
  EXPECT_EQ(worker->wait(), 0);
  const std::regex done("received ([0-9]+), succeeded ([0-9]+)");
  std::smatch w;
  ASSERT_TRUE(std::regex_search(worker->output(), w, done)) << worker->output();
  EXPECT_EQ(std::stoi(w[1]), sent) << worker->output();
  EXPECT_EQ(std::stoi(w[2]), sent) << worker->output();
}

TEST_F(TasksCli, AProcessPoolWorkerRunsModuleTasksInItsProcesses) {
  auto worker = start_worker("procs@test", {"--pool", "processes"});
  CliResult r = weft(with_broker({"call", "test.add", "20", "22", "--wait", "--timeout", "60"}));
  EXPECT_EQ(r.code, 0) << r.out << worker->output();
  EXPECT_EQ(trim(r.out), "42");
  r = weft(with_broker({"call", "test.fails", "1", "--wait", "--timeout", "60"}));
  EXPECT_EQ(r.code, 1);
  EXPECT_NE(r.out.find("no good"), std::string::npos) << r.out;
  r = weft(with_broker({"inspect", "workers", "--json"}));
  ASSERT_EQ(r.code, 0) << r.out;
  EXPECT_EQ(nlohmann::json::parse(r.out)["procs@test"]["pool"], "processes");
  worker->signal(SIGTERM);
  EXPECT_EQ(worker->wait(), 0) << worker->output();
}

TEST_F(TasksCli, AnAsyncPoolWorkerRunsModuleTasksOnItsEventLoop) {
  auto worker = start_worker("async@test", {"--pool", "async"});  // -c 2: two tasks at once
  CliResult r = weft(with_broker({"call", "test.slow_add", "20", "22", "--wait", "--timeout", "60"}));
  EXPECT_EQ(r.code, 0) << r.out << worker->output();
  EXPECT_EQ(trim(r.out), "42");
  r = weft(with_broker({"call", "test.add", "1", "2", "--wait", "--timeout", "60"}));  // a plain task
  EXPECT_EQ(r.code, 0) << r.out << worker->output();
  EXPECT_EQ(trim(r.out), "3");
  r = weft(with_broker({"inspect", "workers", "--json"}));
  ASSERT_EQ(r.code, 0) << r.out;
  const auto info = nlohmann::json::parse(r.out)["async@test"];
  EXPECT_EQ(info["pool"], "async");
  EXPECT_EQ(info["concurrency"], 2);
  worker->signal(SIGTERM);
  EXPECT_EQ(worker->wait(), 0) << worker->output();
  EXPECT_NE(worker->output().find("pool async, concurrency 2"), std::string::npos) << worker->output();
}

TEST_F(TasksCli, BadScheduleAndLoadAreClearErrors) {
  const std::string schedule = dir_ + "/bad.json";
  {
    std::ofstream f(schedule);
    f << R"({"entries": [{"name": "x", "task": "t", "every": 1, "evry": 2}]})";
  }
  CliResult r = weft(with_broker({"beat", "--schedule", schedule}));
  EXPECT_EQ(r.code, 1);
  EXPECT_NE(r.out.find("unknown key 'evry'"), std::string::npos) << r.out;
  r = weft(with_broker({"worker", "--load", dir_ + "/missing.so"}));
  EXPECT_EQ(r.code, 1);
  EXPECT_NE(r.out.find("cannot load task module"), std::string::npos) << r.out;
}

}  // namespace
