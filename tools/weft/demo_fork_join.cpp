// tools/weft/demo_fork_join.cpp — the fork/join sections of `weft demo` (see demo_fork_join.hpp).
#include "demo_fork_join.hpp"

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <random>
#include <string>
#include <vector>

#include <fmt/core.h>

#include "weft/parallel/fork_join_pool.hpp"
#include "weft/parallel/sort.hpp"

namespace weft::cli {
namespace {

using Clock = std::chrono::steady_clock;

double seconds_since(Clock::time_point start) {
  return std::chrono::duration<double>(Clock::now() - start).count();
}

std::string workers(std::size_t n) { return fmt::format("{} worker{}", n, n == 1 ? "" : "s"); }

std::uint64_t fib_serial(int n) { return n < 2 ? static_cast<std::uint64_t>(n) : fib_serial(n - 1) + fib_serial(n - 2); }

// Divide and conquer: the two recursive calls are the two halves of a join. The caller runs the first;
// the second waits in its deque, where an idle worker steals it — or the caller runs it next.
std::uint64_t fib_parallel(ForkJoinPool& pool, int n, int cutoff) {
  if (n < cutoff) return fib_serial(n);
  auto [a, b] = pool.join([&] { return fib_parallel(pool, n - 1, cutoff); },
                          [&] { return fib_parallel(pool, n - 2, cutoff); });
  return a + b;
}

}  // namespace

ForkJoinResult fork_join_sort(std::size_t n, std::size_t threads) {
  ForkJoinResult r;
  r.workload = fmt::format("sort {} keys", n);
  std::vector<std::uint32_t> keys(n);
  std::mt19937 gen(12345);
  for (auto& k : keys) k = static_cast<std::uint32_t>(gen());
  std::vector<std::uint32_t> parallel = keys;

  ForkJoinPool pool(ForkJoinPoolOptions{.threads = threads, .name = "demo-forkjoin"});
  auto start = Clock::now();
  parallel_sort(pool, parallel.begin(), parallel.end());
  r.parallel_seconds = seconds_since(start);
  r.stolen = pool.stats().stolen;

  start = Clock::now();
  std::sort(keys.begin(), keys.end());
  r.sequential_seconds = seconds_since(start);
  r.ok = parallel == keys;

  fmt::print("  weft::parallel_sort on {}: {:.3f} s   std::sort: {:.3f} s   {}\n", workers(pool.threads()),
             r.parallel_seconds, r.sequential_seconds, r.ok ? "same order: ok" : "DIFFERENT from std::sort");
  fmt::print("  speedup: {:.2f}x  ({} pieces stolen by idle workers)\n", r.speedup(), r.stolen);
  return r;
}

ForkJoinResult fork_join_fib(int n, int cutoff, std::size_t threads) {
  ForkJoinResult r;
  r.workload = fmt::format("fib({}), join per call", n);
  ForkJoinPool pool(ForkJoinPoolOptions{.threads = threads, .name = "demo-forkjoin"});
  auto start = Clock::now();
  const std::uint64_t parallel = pool.invoke([&] { return fib_parallel(pool, n, cutoff); });
  r.parallel_seconds = seconds_since(start);
  r.stolen = pool.stats().stolen;

  start = Clock::now();
  const std::uint64_t sequential = fib_serial(n);
  r.sequential_seconds = seconds_since(start);
  r.ok = parallel == sequential;

  fmt::print("  fib({}) = {} with a join per call for n >= {}: {:.3f} s on {}, {:.3f} s plain   {}\n", n,
             parallel, cutoff, r.parallel_seconds, workers(pool.threads()), r.sequential_seconds,
             r.ok ? "ok" : fmt::format("WRONG, plain recursion gives {}", sequential));
  fmt::print("  speedup: {:.2f}x  ({} join halves stolen by idle workers)\n", r.speedup(), r.stolen);
  return r;
}

}  // namespace weft::cli
