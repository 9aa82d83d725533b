// bench/fib/main.cpp — bench_fib: recursive fib with fork/join, weft::ForkJoinPool against oneTBB's
// task_group, OpenMP tasks and plain recursion, every contender in the same process, in alternation (the
// method is at the top of bench/harness/harness.hpp).
//
//   bench_fib [--n 32] [--cutoff 20] [--batch 10] [--threads 2] [--reps N] [--warmup N] [--settle-ms N] [--only TEXT]
//             [--json FILE]
#include <string>
#include <vector>

#include "common.hpp"

int main(int argc, char** argv) {
  using namespace bench;
  Cli cli(argc, argv, "bench_fib", "recursive fib with fork/join: weft, oneTBB, OpenMP, sequential");
  FibParams p;
  p.n = static_cast<int>(cli.size("--n", 32, "fib argument"));
  p.cutoff = static_cast<int>(cli.size("--cutoff", 20, "the cutoff case runs fib_serial below this n"));
  const int batch = static_cast<int>(cli.size("--batch", 10, "cutoff case: runs per sample (each a few ms)"));
  Settings defaults;
  defaults.reps = 7;
  const Settings s = cli.settings(defaults);
  cli.finish();
  p.threads = s.threads;
  if (p.n < 2 || p.n > 45) fail("--n must be in [2, 45]");

  const std::string fn = "fib(" + std::to_string(p.n) + ")";
  std::vector<Case> cases = {
      {"nocutoff", fn + ", a task per call, no cutoff"},
      {"cutoff", fn + ", tasks while n >= " + std::to_string(p.cutoff) + ", plain recursion below"},
  };
  cases[1].batch = batch;
  add_weft(cases, p);
  add_tbb(cases, p);
  add_omp(cases, p);
  add_seq(cases, p);
  run_cases("fib", s, cases,
            {{"n", std::to_string(p.n)}, {"cutoff", std::to_string(p.cutoff)}, {"batch", std::to_string(batch)}},
            {{"weft", weft_version()}, {"tbb", tbb_version()}, {"openmp", omp_version()}});
  return 0;
}
