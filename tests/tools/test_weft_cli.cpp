// The weft command, run as a child process the way a user runs it: exit codes and output.
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>

#include <gtest/gtest.h>

#ifndef WEFT_CLI_PATH
#error "WEFT_CLI_PATH must name the weft executable"
#endif
#ifndef WEFT_VERSION
#error "WEFT_VERSION must be the project version"
#endif

namespace {

struct CliRun {
  int exit_code = -1;  // -1: did not exit normally
  std::string output;  // stdout and stderr, interleaved
};

std::string shell_quote(const std::string& s) {
  std::string q = "'";
  for (char c : s) q += c == '\'' ? std::string("'\\''") : std::string(1, c);
  return q + "'";
}

// Runs the weft command with `args` (already shell-quoted where needed) and collects what it prints.
CliRun weft(const std::string& args) {
  const std::string command = shell_quote(WEFT_CLI_PATH) + " " + args + " 2>&1";
  CliRun run;
  FILE* pipe = ::popen(command.c_str(), "r");
  if (pipe == nullptr) {
    ADD_FAILURE() << "popen failed for: " << command;
    return run;
  }
  char buf[4096];
  for (std::size_t n; (n = std::fread(buf, 1, sizeof buf, pipe)) > 0;) run.output.append(buf, n);
  const int status = ::pclose(pipe);
  if (status != -1 && WIFEXITED(status)) run.exit_code = WEXITSTATUS(status);
  return run;
}

bool contains(const std::string& haystack, const std::string& needle) {
  return haystack.find(needle) != std::string::npos;
}

// A file path unique to this process and test, removed when the test ends.
class TempFile {
 public:
  explicit TempFile(const std::string& tag)
      : path_(std::filesystem::temp_directory_path() /
              ("weft-cli-test-" + std::to_string(::getpid()) + "-" + tag + ".trace.json")) {
    std::filesystem::remove(path_);
  }
  ~TempFile() {
    std::error_code ec;
    std::filesystem::remove(path_, ec);
  }
  TempFile(const TempFile&) = delete;
  TempFile& operator=(const TempFile&) = delete;
  const std::filesystem::path& path() const { return path_; }

 private:
  std::filesystem::path path_;
};

std::string read_file(const std::filesystem::path& p) {
  std::ifstream in(p);
  std::ostringstream s;
  s << in.rdbuf();
  return s.str();
}

TEST(WeftCli, PrintsVersion) {
  const CliRun r = weft("--version");
  EXPECT_EQ(r.exit_code, 0) << r.output;
  EXPECT_EQ(r.output, "weft " WEFT_VERSION "\n");
}

TEST(WeftCli, HelpListsCommandsAndOptions) {
  const CliRun r = weft("--help");
  EXPECT_EQ(r.exit_code, 0) << r.output;
  EXPECT_TRUE(contains(r.output, "demo")) << r.output;
  EXPECT_TRUE(contains(r.output, "--version")) << r.output;
}

TEST(WeftCli, DemoHelpListsItsOptions) {
  const CliRun r = weft("demo --help");
  EXPECT_EQ(r.exit_code, 0) << r.output;
  for (const char* option : {"--limit", "--chunk", "--threads", "--trace", "--quiet", "--pages", "--concurrency",
                             "--tasks", "--tasks-limit"}) {
    EXPECT_TRUE(contains(r.output, option)) << option << " missing from:\n" << r.output;
  }
}

TEST(WeftCli, UnknownCommandFails) {
  const CliRun r = weft("frobnicate");
  EXPECT_NE(r.exit_code, 0) << r.output;
  EXPECT_NE(r.exit_code, -1) << "weft did not exit normally";
  EXPECT_TRUE(contains(r.output, "unknown command 'frobnicate'")) << r.output;
}

TEST(WeftCli, NoCommandFails) {
  const CliRun r = weft("");
  EXPECT_NE(r.exit_code, 0) << r.output;
  EXPECT_NE(r.exit_code, -1) << "weft did not exit normally";
}

TEST(WeftCli, DemoRejectsInvalidOptions) {
  for (const char* args : {"demo --chunk 0", "demo --limit 1", "demo --threads many", "demo --no-such-option",
                           "demo --pages 0", "demo --concurrency 0", "demo --tasks 0", "demo --tasks 10001",
                           "demo --tasks-limit 1"}) {
    const CliRun r = weft(args);
    EXPECT_NE(r.exit_code, 0) << args << ":\n" << r.output;
    EXPECT_NE(r.exit_code, -1) << args << ": weft did not exit normally";
  }
}

TEST(WeftCli, DemoCountsPrimesAndWritesTrace) {
  TempFile trace("demo");
  const CliRun r = weft("demo --limit 200000 --chunk 10000 --threads 2 --sort-size 300000 --fib 27 "
                     "--tasks-limit 100000 --tasks 50 --quiet --trace " + shell_quote(trace.path().string()));
  ASSERT_EQ(r.exit_code, 0) << r.output;
  // π(200,000) = 17,984, from the pool run and the sequential run.
  EXPECT_TRUE(contains(r.output, "primes below 200000: 17984")) << r.output;
  EXPECT_TRUE(contains(r.output, "agree")) << r.output;
  // The futures section checks π(10^3..10^6).
  EXPECT_TRUE(contains(r.output, "78498  ok")) << r.output;
  // The channel section sums per-block counts below 10^6 sent by producer tasks.
  EXPECT_TRUE(contains(r.output, "primes below 1000000: 78498  ok")) << r.output;
  // The per-task trace summary and the final summary table with the pool's counters:
  // 20 chunks + 4 π tasks + 10 producers.
  EXPECT_TRUE(contains(r.output, "count_primes")) << r.output;
  for (const char* column : {"workload", "threads", "wall time", "tasks/s", "speedup"}) {
    EXPECT_TRUE(contains(r.output, column)) << column << " missing from:\n" << r.output;
  }
  EXPECT_TRUE(contains(r.output, "completed 34, failed 0, cancelled 0, rejected 0")) << r.output;
  // The fork/join sections: parallel_sort against std::sort, fib(27) = 196418 with a join per call.
  EXPECT_TRUE(contains(r.output, "weft::parallel_sort on 2 workers:")) << r.output;
  EXPECT_TRUE(contains(r.output, "same order: ok")) << r.output;
  EXPECT_TRUE(contains(r.output, "fib(27) = 196418")) << r.output;
  EXPECT_TRUE(contains(r.output, "sort 300000 keys (fork/join)")) << r.output;
  // The async I/O section: 60 slow pages fetched from the demo's own HTTP server, sequentially and 20 at once.
  EXPECT_TRUE(contains(r.output, "[7/11] async I/O")) << r.output;
  // The multiprocessing section: the same chunks on a ProcessPool, with the same count.
  EXPECT_TRUE(contains(r.output, "[8/11] multiprocessing")) << r.output;
  EXPECT_TRUE(contains(r.output, "the process pool agrees with the thread pool and the sequential count")) << r.output;
  EXPECT_TRUE(contains(r.output, "(processes)")) << r.output;
  EXPECT_TRUE(contains(r.output, "the server saw at most 20 requests at once")) << r.output;
  EXPECT_TRUE(contains(r.output, "the same both ways: ok")) << r.output;
  EXPECT_TRUE(contains(r.output, "60 slow pages over HTTP (async, 20 at once)")) << r.output;
  // The task-queue section: a worker in the demo's process on a temporary sqlite broker and backend; the batch
  // of 50 tasks counts π(100,000) = 9,592, like one thread; a task succeeds on its retry; a Beat's periodic task
  // runs three times; the worker's counters show the one retry and no failure.
  EXPECT_TRUE(contains(r.output, "[9/11] task queue")) << r.output;
  EXPECT_TRUE(contains(r.output, "in this process, 2 threads")) << r.output;
  EXPECT_TRUE(contains(r.output, "batch: 50 tasks sent with delay(), one per chunk of 2000 numbers")) << r.output;
  EXPECT_TRUE(contains(r.output, "primes below 100000: 9592  (")) << r.output;
  EXPECT_TRUE(contains(r.output, "the same as counted on one thread: ok")) << r.output;
  EXPECT_TRUE(contains(r.output, "published value pi(100000) = 9592: ok")) << r.output;
  EXPECT_TRUE(contains(r.output, "round trip p50")) << r.output;
  EXPECT_TRUE(contains(r.output, "retry: demo.flaky raised std::runtime_error on its first attempt")) << r.output;
  EXPECT_TRUE(contains(r.output, "then ended SUCCESS after 1 retry")) << r.output;
  EXPECT_TRUE(contains(r.output, "waited for 3 ticks: 3 ran")) << r.output;
  EXPECT_TRUE(contains(r.output, "retried 1, failed 0  ok")) << r.output;
  EXPECT_TRUE(contains(r.output, "primes below 100000 (task queue, sqlite)")) << r.output;
  EXPECT_FALSE(contains(r.output, "WRONG")) << r.output;
  EXPECT_FALSE(contains(r.output, "FAILED")) << r.output;
  EXPECT_TRUE(contains(r.output, "all checks passed")) << r.output;
  // --quiet: no progress display at all.
  EXPECT_FALSE(contains(r.output, "counting")) << r.output;
  EXPECT_FALSE(contains(r.output, "task queue: 100%")) << r.output;

  ASSERT_TRUE(std::filesystem::exists(trace.path())) << r.output;
  const std::string json = read_file(trace.path());
  EXPECT_EQ(json.front(), '{');
  EXPECT_TRUE(contains(json, "\"traceEvents\"")) << json.substr(0, 200);
  EXPECT_TRUE(contains(json, "\"count_primes\"")) << json.substr(0, 200);
}

TEST(WeftCli, DemoOnOneThreadAgreesWithKnownCount) {
  TempFile trace("one-thread");
  const CliRun r = weft("demo --limit 100000 --chunk 7777 --threads 1 --sort-size 1000 --fib 20 --tasks-limit 200000 "
                     "--tasks 30 --quiet --trace " + shell_quote(trace.path().string()));
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_TRUE(contains(r.output, "primes below 100000: 9592")) << r.output;
  // The task queue's worker has one thread too; 30 tasks of 6,667 numbers count π(200,000) = 17,984.
  EXPECT_TRUE(contains(r.output, "in this process, 1 thread;")) << r.output;
  EXPECT_TRUE(contains(r.output, "batch: 30 tasks sent with delay(), one per chunk of 6667 numbers")) << r.output;
  EXPECT_TRUE(contains(r.output, "primes below 200000: 17984  (")) << r.output;
  EXPECT_TRUE(contains(r.output, "the same as counted on one thread: ok")) << r.output;
  EXPECT_TRUE(contains(r.output, "then ended SUCCESS after 1 retry")) << r.output;
  EXPECT_TRUE(contains(r.output, "waited for 3 ticks: 3 ran")) << r.output;
  EXPECT_TRUE(contains(r.output, "weft::parallel_sort on 1 worker:")) << r.output;
  EXPECT_TRUE(contains(r.output, "fib(20) = 6765")) << r.output;
  EXPECT_TRUE(contains(r.output, "all checks passed")) << r.output;
}

TEST(WeftCli, DemoProgressLinesWhenNotATerminal) {
  // stderr is a pipe here, so the progress display is plain lines (at most one per quarter), not a bar.
  TempFile trace("progress");
  const CliRun r = weft("demo --limit 100000 --chunk 1000 --threads 3 --sort-size 1000 --fib 20 --tasks-limit 100000 "
                     "--tasks 40 --trace " + shell_quote(trace.path().string()));
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_TRUE(contains(r.output, "counting: 100%  100/100")) << r.output;
  // The task-queue batch's progress follows its results.
  EXPECT_TRUE(contains(r.output, "task queue: 100%  40/40")) << r.output;
  EXPECT_FALSE(contains(r.output, "\r")) << "a bar was drawn into a pipe";
  std::size_t lines = 0;
  for (std::size_t at = 0; (at = r.output.find("counting:", at)) != std::string::npos; ++at) ++lines;
  EXPECT_LE(lines, 4u) << r.output;
}

}  // namespace
