// tools/weft/demo_fork_join.hpp — the fork/join part of `weft demo`: a parallel sort and a recursive
// computation on a ForkJoinPool, each checked against its sequential version and timed for the speedup.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

namespace weft::cli {

/// One timed comparison: the parallel run against the sequential one.
struct ForkJoinResult {
  std::string workload;
  double parallel_seconds = 0;
  double sequential_seconds = 0;
  std::uint64_t stolen = 0;  ///< jobs the parallel run's workers took from one another
  bool ok = false;          ///< the two runs produced the same result
  double speedup() const { return parallel_seconds > 0 ? sequential_seconds / parallel_seconds : 0; }
};

/// Sorts `n` pseudo-random 32-bit keys with weft::parallel_sort on a ForkJoinPool of `threads` workers
/// (0: every available core) and with std::sort, and compares the results. Prints its lines to stdout.
ForkJoinResult fork_join_sort(std::size_t n, std::size_t threads);

/// fib(n) with a fork/join task per call above `cutoff` (plain recursion below it), against plain
/// recursion on one thread. Prints its lines to stdout.
ForkJoinResult fork_join_fib(int n, int cutoff, std::size_t threads);

}  // namespace weft::cli
