// bench/harness/harness.hpp — the driver shared by the fork/join benchmarks (bench/fib, sort, sum, dgemm,
// pipeline, idle): the command line, the wall/CPU meter, the contender and case registry, the alternating run
// loop, the table on stdout and the JSON file scripts/bench.py reads.
//
// Method (the same for every program): a program defines one or more cases (a workload: "fib(32), a task per
// call"); each case has contenders (one per library, each in its own source file). `warmup` unrecorded rounds,
// then `reps` recorded rounds; a round runs every contender of the case once, starting one further along the
// list each round (A B C, B C A, C A B, ...), so slow drifts of the machine and the order effects (caches,
// threads of the previous library still spinning) spread over all of them. Before each run the driver
// sleeps `settle_ms` so the previous library's idle threads have gone to sleep, then calls the contender's
// prepare() (untimed: copying the input, say), times run(), and calls check() (untimed): a wrong result
// stops the program with exit status 1, so a contender cannot win by doing less work.
//
// Output: progress on stderr; on stdout a table per case (median time, min - max, the rate when the case has
// one, median process CPU time, and the headline contender's speed over each row's); with --json FILE the
// raw samples, which is what scripts/bench.py turns into bench/RESULTS.md:
//   {"benchmark", "threads", "repetitions", "warmup", "settle_ms", "hardware_concurrency", "compiler",
//    "libraries": {id: version}, "parameters": {name: value},
//    "cases": [{"id", "title", "kind": "time" | "idle", "work", "rate_unit", "batch",
//               "contenders": [{"name", "config", "headline", "samples": [{"wall_s", "cpu_s", "vcsw"}]}]}]}
// A case's rate is work / wall_s in rate_unit (work 0: the case has no rate). Times are per run (a sample of
// a case with batch > 1 is the mean of that many back-to-back runs). An "idle" case measures CPU time over a
// window instead: wall_s is the window, cpu_s the CPU time used in it.
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <map>
#include <string>
#include <utility>
#include <vector>

namespace bench {

struct Sample {
  double wall_s = 0;        // steady_clock
  double cpu_s = 0;         // process user + system time (getrusage RUSAGE_SELF), every thread
  std::int64_t vcsw = 0;    // voluntary context switches of the process
};

/// Starts at construction; stop() returns the wall and CPU time since then.
class Meter {
 public:
  Meter();
  Sample stop() const;

 private:
  double wall0_;
  double cpu0_;
  std::int64_t vcsw0_;
};

double process_cpu_seconds();

struct Contender {
  std::string name;    // short and unique within its case: "weft", "oneTBB", "OpenMP", "sequential"
  std::string config;  // how it was configured, printed with the results
  bool headline = false;  // the row the case's ratios are computed for (weft, default options)
  std::function<void()> prepare = {};  // untimed, before every run
  std::function<void()> run = {};      // timed
  // Untimed, after every run: an empty string when the result is right, otherwise what is wrong.
  std::function<std::string()> check = {};
  // Instead of prepare/run: measures itself (the idle cases, which watch a window of time).
  std::function<Sample()> measure = {};
};

enum class CaseKind { time, idle };

struct Case {
  std::string id;     // short: "nocutoff", "sort", "dgemm"
  std::string title;  // one line for humans
  double work = 0;    // rate = work / wall_s, in rate_unit; 0: no rate column
  std::string rate_unit = {};
  CaseKind kind = CaseKind::time;
  std::vector<Contender> contenders = {};
  // Runs per sample, back to back (prepare() once before them, check() once after): for runs of a few
  // milliseconds, where one run's figure would be mostly timer and wake-up noise. A sample's times are per run.
  int batch = 1;
};

/// Adds `c` to the case whose id is `case_id` (which must exist).
void add_contender(std::vector<Case>& cases, const std::string& case_id, Contender c);

struct Settings {
  std::size_t threads = 2;  // workers per pool, threads per team
  int reps = 5;
  int warmup = 1;
  int settle_ms = 50;
  std::string json_path;
  std::string only;  // run only contenders whose name contains this (empty: all)
};

/// The command line: `--flag value` pairs. Each program reads its own flags with size()/real() (which
/// record them for --help), then calls settings() for the common ones and finish(), which prints the usage
/// for --help and fails on a flag nobody read.
class Cli {
 public:
  Cli(int argc, char** argv, std::string program, std::string summary);
  std::size_t size(const std::string& flag, std::size_t fallback, const std::string& help);
  double real(const std::string& flag, double fallback, const std::string& help);
  /// --threads, --reps, --warmup, --settle-ms, --json, --only, with the program's defaults.
  Settings settings(const Settings& defaults);
  void finish();

 private:
  const std::string* take(const std::string& flag);

  std::string program_;
  std::string summary_;
  std::map<std::string, std::string> values_;
  std::map<std::string, bool> used_;
  std::vector<std::string> help_;
  bool want_help_ = false;
};

/// Runs every case as described at the top of this file, prints the tables, writes the JSON when asked.
/// `parameters` and `libraries` go into the JSON and the heading. Exits with status 1 on a failed check.
void run_cases(const std::string& benchmark, const Settings& settings, std::vector<Case>& cases,
               const std::vector<std::pair<std::string, std::string>>& parameters,
               const std::vector<std::pair<std::string, std::string>>& libraries);

[[noreturn]] void fail(const std::string& what);

std::string compiler();

/// The library versions the benchmarks report. weft_version() is defined in harness.cpp; tbb_version() and
/// omp_version() in each program's TBB and OpenMP contender, where that library's headers are included.
std::string weft_version();
std::string tbb_version();
std::string omp_version();

}  // namespace bench
