// bench/sum/main.cpp — bench_sum: the sum of an array of doubles; weft::parallel_reduce against
// tbb::parallel_reduce, OpenMP, one thread, and the streaming-read bandwidth of `threads` plain threads, in
// one process, in alternation (method: bench/harness/harness.hpp).
//
//   bench_sum [--n 200000000] [--threads 2] [--reps N] [--warmup N] [--settle-ms N] [--only TEXT] [--json FILE]
#include <string>
#include <thread>
#include <vector>

#include "common.hpp"

int main(int argc, char** argv) {
  using namespace bench;
  Cli cli(argc, argv, "bench_sum", "sum of doubles: weft, oneTBB, OpenMP, sequential, read bandwidth");
  const std::size_t n = cli.size("--n", 200'000'000, "doubles to sum");
  Settings defaults;
  defaults.reps = 7;
  const Settings s = cli.settings(defaults);
  cli.finish();
  if (n == 0) fail("--n must be > 0");

  auto d = std::make_shared<SumData>();
  d->n = n;
  d->threads = s.threads;
  d->a.reset(new double[n]);  // not value-initialised: the fill below is the first touch
  {
    std::vector<std::thread> fill;
    for (std::size_t t = 0; t < s.threads; ++t) {
      fill.emplace_back([&d, n, t, parts = s.threads] {
        for (std::size_t i = n * t / parts; i < n * (t + 1) / parts; ++i) d->a[i] = static_cast<double>(i & 1023);
      });
    }
    for (auto& t : fill) t.join();
  }
  std::uint64_t whole = 0;
  for (std::size_t i = 0; i < n; ++i) whole += i & 1023;
  d->expected = static_cast<double>(whole);
  d->expected_words = sum_words(d->a.get(), 0, n);

  const double gb = static_cast<double>(n) * sizeof(double) / 1e9;
  std::vector<Case> cases = {
      {"sum", "sum of " + std::to_string(n) + " doubles (" + std::to_string(gb).substr(0, 4) + " GB)", gb, "GB/s"},
  };
  add_weft(cases, d);
  add_tbb(cases, d);
  add_omp(cases, d);
  add_seq(cases, d);
  add_bandwidth(cases, d);
  run_cases("sum", s, cases, {{"n", std::to_string(n)}},
            {{"weft", weft_version()}, {"tbb", tbb_version()}, {"openmp", omp_version()}});
  return 0;
}
