// bench/pipeline/main.cpp — bench_pipeline: a three-stage pipeline of small items (serial in-order input,
// parallel work, serial in-order output); weft::parallel_pipeline against tbb::parallel_pipeline and a plain
// loop, in one process, in alternation (method: bench/harness/harness.hpp).
//
//   bench_pipeline [--items 4000000] [--work-iters 80] [--in-flight 0 (= 4 x threads)] [--threads 2]
//                  [--reps N] [--warmup N] [--settle-ms N] [--only TEXT] [--json FILE]
#include <chrono>
#include <cstdio>
#include <string>
#include <vector>

#include "common.hpp"

int main(int argc, char** argv) {
  using namespace bench;
  Cli cli(argc, argv, "bench_pipeline", "3-stage pipeline of small items: weft, oneTBB, sequential");
  PipelineParams p;
  p.items = cli.size("--items", 4'000'000, "items through the pipeline");
  p.work_iters = static_cast<int>(cli.size("--work-iters", 80, "steps of the parallel stage's work per item"));
  p.in_flight = cli.size("--in-flight", 0, "most items in flight (0: 4 x threads)");
  const Settings s = cli.settings(Settings{});
  cli.finish();
  if (p.items == 0) fail("--items must be > 0");
  p.threads = s.threads;
  if (p.in_flight == 0) p.in_flight = 4 * s.threads;

  const auto t0 = std::chrono::steady_clock::now();
  for (std::uint64_t i = 0; i < p.items; ++i) p.expected_sum += item_work(i, p.work_iters);
  const double work_ns = std::chrono::duration<double, std::nano>(std::chrono::steady_clock::now() - t0).count() /
                         static_cast<double>(p.items);
  char ns[32];
  std::snprintf(ns, sizeof ns, "%.0f", work_ns);

  std::vector<Case> cases = {
      {"pipeline",
       std::to_string(p.items) + " items: serial in-order input -> parallel work (~" + ns +
           " ns each) -> serial in-order output; at most " + std::to_string(p.in_flight) + " in flight",
       static_cast<double>(p.items) / 1e6, "M items/s"},
  };
  add_weft(cases, p);
  add_tbb(cases, p);
  add_seq(cases, p);
  run_cases("pipeline", s, cases,
            {{"items", std::to_string(p.items)},
             {"work_iters", std::to_string(p.work_iters)},
             {"work_ns", ns},
             {"in_flight", std::to_string(p.in_flight)}},
            {{"weft", weft_version()}, {"tbb", tbb_version()}});
  return 0;
}
