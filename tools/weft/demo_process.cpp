// tools/weft/demo_process.cpp — the multiprocessing section of `weft demo` (see demo_process.hpp).
#include "demo_process.hpp"

#include <fmt/core.h>

#include <chrono>
#include <cstdio>
#include <vector>

#include "primes.hpp"
#include "progress.hpp"
#include "weft/process/pool.hpp"

namespace weft::cli {

namespace {

// Worker-side state, set once per worker process by the pool's initializer.
std::vector<std::uint32_t> g_base;

void init_worker(std::uint64_t limit) { g_base = base_primes(limit); }

std::uint64_t count_chunk(std::uint64_t lo, std::uint64_t hi) { return count_primes(lo, hi, g_base); }

}  // namespace

ProcessDemoResult process_primes(std::uint64_t limit, std::uint64_t chunk, std::size_t workers,
                                 std::uint64_t expected, bool quiet) {
  using Clock = std::chrono::steady_clock;
  ProcessDemoResult r;
  const auto t0 = Clock::now();
  process::ProcessPoolOptions options{.workers = workers, .name = "demo-processes"};
  options.initialize(&init_worker, limit);
  process::ProcessPool pool(std::move(options));
  r.workers = pool.workers();
  std::vector<Future<std::uint64_t>> parts;
  for (std::uint64_t lo = 0; lo < limit; lo += chunk) {
    parts.push_back(pool.submit(&count_chunk, lo, std::min(limit, lo + chunk)));
  }
  r.tasks = parts.size();
  Progress progress(stderr, Progress::style_for(stderr, quiet), "process pool", parts.size());
  for (auto& f : parts) {
    r.primes += f.get();
    progress.advance();
  }
  progress.finish();
  r.seconds = std::chrono::duration<double>(Clock::now() - t0).count();
  r.ok = r.primes == expected;
  const auto stats = pool.stats();
  fmt::print("  primes below {}: {}  ({:.3f} s, {} worker processes started from the fork server, {} tasks)\n",
             limit, r.primes, r.seconds, stats.workers_started, stats.completed);
  fmt::print("  {}\n", r.ok ? "the process pool agrees with the thread pool and the sequential count"
                           : "MISMATCH with the sequential count");
  return r;
}

}  // namespace weft::cli
