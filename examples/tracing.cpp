// tracing.cpp — see where the time went: a timeline of every task, and per-task statistics.
//
// Python: the closest are cProfile (per-function statistics) and viztracer (a timeline you open in the
// Perfetto UI). weft records one span per task — when it was submitted, started and ended, on which worker —
// in a buffer per thread, at the cost of a few clock reads per task while on and one load when off.
//
//   weft::trace::enable();                      switch recording on (process-wide)
//   ... submit tasks with a name ...            TaskOptions{.name = "resize"}
//   weft::trace::write_chrome_json(path);       the timeline: open it in https://ui.perfetto.dev
//   weft::trace::summarize()                    count, run time and queue wait per task name
//
// Usage: example_tracing [trace-file]   (default: example_tracing.trace.json in the temp directory)
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <string>
#include <vector>

#include "weft/core/future.hpp"
#include "weft/thread/thread_pool.hpp"
#include "weft/trace/trace.hpp"

namespace {

double busy_work(int n) {  // something for the CPU to do
  double x = 0;
  for (int i = 1; i <= n; ++i) x += std::sqrt(static_cast<double>(i));
  return x;
}

}  // namespace

int main(int argc, char** argv) {
  const std::string path = argc > 1 ? argv[1]
                                    : (std::filesystem::temp_directory_path() / "example_tracing.trace.json").string();

  weft::ThreadPoolOptions options;
  options.threads = 2;
  options.name = "example";  // the executor's name: a "process" in the Perfetto timeline
  weft::ThreadPool pool(options);

  weft::trace::enable();

  // Task names must outlive the trace: string literals (or weft::trace::intern() for names built at run
  // time). Name task *kinds*, not individual tasks, so the summary can group them.
  std::vector<weft::Future<double>> futures;
  for (int i = 0; i < 40; ++i) futures.push_back(pool.submit({.name = "small"}, busy_work, 20'000));
  for (int i = 0; i < 10; ++i) futures.push_back(pool.submit({.name = "large"}, busy_work, 400'000));
  double sum = 0;
  for (auto& f : futures) sum += f.get();

  // A worker records a task's span just after the task's future becomes ready, so wait until the pool is
  // idle before reading the trace; then stop recording.
  pool.wait_idle();
  weft::trace::disable();

  const std::size_t spans = weft::trace::snapshot().size();
  weft::trace::write_chrome_json(path);
  std::printf("ran 50 tasks (checksum %.0f); %zu spans written to %s\n", sum, spans, path.c_str());
  std::printf("open the file in the Perfetto UI (https://ui.perfetto.dev) for the timeline\n\n");

  // The statistics, one row per task name: run time (mean, median, 99th percentile) and queue wait.
  std::printf("%s", weft::trace::format_summary(weft::trace::summarize()).c_str());
  return 0;
}
