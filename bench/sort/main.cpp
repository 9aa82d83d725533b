// bench/sort/main.cpp — bench_sort: sorting random 32-bit integers; weft::parallel_sort and
// parallel_stable_sort against libstdc++'s parallel mode (__gnu_parallel, on OpenMP), oneTBB's
// parallel_sort and std::sort / std::stable_sort, in one process, in alternation (method: bench/harness).
//
//   bench_sort [--n 50000000] [--seed 1] [--threads 2] [--reps N] [--warmup N] [--settle-ms N] [--only TEXT]
//              [--json FILE]
#include <algorithm>
#include <random>
#include <string>
#include <vector>

#include "common.hpp"

namespace bench {

std::string SortData::check() const {
  if (!std::is_sorted(work.begin(), work.end())) return "not sorted";
  std::uint64_t s = 0;
  std::uint32_t x = 0;
  for (const std::uint32_t v : work) {
    s += v;
    x ^= v;
  }
  if (s != sum || x != xor_all) return "not a permutation of the input (sum or xor differs)";
  return {};
}

}  // namespace bench

int main(int argc, char** argv) {
  using namespace bench;
  Cli cli(argc, argv, "bench_sort", "sorting random uint32: weft, __gnu_parallel, oneTBB, std");
  const std::size_t n = cli.size("--n", 50'000'000, "values to sort");
  const std::size_t seed = cli.size("--seed", 1, "std::mt19937 seed of the input");
  Settings defaults;
  defaults.reps = 3;
  defaults.warmup = 0;  // runs take seconds, and the work array is touched before the first one
  const Settings s = cli.settings(defaults);
  cli.finish();
  if (n == 0) fail("--n must be > 0");

  auto d = std::make_shared<SortData>();
  d->threads = s.threads;
  d->input.resize(n);
  std::mt19937 gen(static_cast<std::mt19937::result_type>(seed));
  for (auto& v : d->input) {
    v = static_cast<std::uint32_t>(gen());
    d->sum += v;
    d->xor_all ^= v;
  }
  d->work = d->input;  // allocated and touched once, here

  const double mkeys = static_cast<double>(n) / 1e6;
  const std::string what = std::to_string(n) + " random uint32 (std::mt19937, seed " + std::to_string(seed) + ")";
  std::vector<Case> cases = {
      {"sort", "unstable sort of " + what, mkeys, "M keys/s"},
      {"stable_sort", "stable sort of " + what, mkeys, "M keys/s"},
  };
  add_weft(cases, d);
  add_gnu_parallel(cases, d);
  add_tbb(cases, d);
  add_seq(cases, d);
  run_cases("sort", s, cases, {{"n", std::to_string(n)}, {"seed", std::to_string(seed)}},
            {{"weft", weft_version()}, {"tbb", tbb_version()}, {"gnu_parallel", gnu_parallel_version()}});
  return 0;
}
