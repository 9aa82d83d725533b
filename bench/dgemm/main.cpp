// bench/dgemm/main.cpp — bench_dgemm: square matrix multiplication in double and float; weft::matmul
// against OpenBLAS (cblas_dgemm / cblas_sgemm) and, for context, a plain blocked loop on OpenMP, in one
// process, in alternation (method: bench/harness/harness.hpp).
//
//   bench_dgemm [--n 2048] [--threads 2] [--reps N] [--warmup N] [--settle-ms N] [--only TEXT] [--json FILE]
#include <string>
#include <vector>

#include "common.hpp"

int main(int argc, char** argv) {
  using namespace bench;
  Cli cli(argc, argv, "bench_dgemm", "C = A * B, n x n, double and float: weft, OpenBLAS, OpenMP loop");
  const std::size_t n = cli.size("--n", 2048, "matrix size");
  Settings defaults;
  defaults.reps = 3;
  // OpenBLAS's threads keep polling for work for a while after each call: let them stop before the next run.
  defaults.settle_ms = 300;
  const Settings s = cli.settings(defaults);
  cli.finish();
  if (n == 0) fail("--n must be > 0");

  GemmInputs in{std::make_shared<GemmData<double>>(n, s.threads, 1),
                std::make_shared<GemmData<float>>(n, s.threads, 2)};
  const double gflop = 2.0 * static_cast<double>(n) * static_cast<double>(n) * static_cast<double>(n) / 1e9;
  const std::string dims = std::to_string(n) + " x " + std::to_string(n);
  std::vector<Case> cases = {
      {"dgemm", "C = A * B, " + dims + " double, row-major", gflop, "GFLOP/s"},
      {"sgemm", "C = A * B, " + dims + " float, row-major", gflop, "GFLOP/s"},
  };
  add_weft(cases, in);
  add_openblas(cases, in);
  add_omp(cases, in);
  run_cases("dgemm", s, cases, {{"n", std::to_string(n)}},
            {{"weft", weft_version()}, {"openblas", openblas_version()}, {"openmp", omp_version()}});
  return 0;
}
