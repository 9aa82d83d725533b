// tools/weft/demo_process.hpp — the multiprocessing part of `weft demo`: the primes workload on a
// ProcessPool, compared with the ThreadPool and one thread that the demo ran before it.
#pragma once

#include <cstddef>
#include <cstdint>

namespace weft::cli {

struct ProcessDemoResult {
  std::uint64_t primes = 0;
  double seconds = 0;
  std::size_t workers = 0;
  std::size_t tasks = 0;
  bool ok = false;  ///< the process pool's count matched `expected`
};

/// Counts the primes below `limit` in chunks of `chunk` numbers, one ProcessPool task per chunk, on
/// `workers` worker processes (0: one per CPU). Each worker computes the base primes once, in the pool's
/// initializer. Checks the count against `expected`. Prints its lines to stdout; progress to stderr.
ProcessDemoResult process_primes(std::uint64_t limit, std::uint64_t chunk, std::size_t workers,
                                 std::uint64_t expected, bool quiet);

}  // namespace weft::cli
