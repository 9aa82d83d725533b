// Shared by the parallel algorithm test files (parallel_for, reduce, sort, merge): the pool sweep and the
// grains swept.
#pragma once

#include <gtest/gtest.h>

#include <cstddef>
#include <string>

#include "weft/parallel/fork_join_pool.hpp"

namespace weft::test::algorithms {

// Worker counts the algorithms run on: one, two, and more than the machine's cores.
inline constexpr std::size_t kWorkerCounts[] = {1, 2, 8};

// Grains for the index forms: automatic (0), the smallest, an odd one, and one larger than most sizes.
inline constexpr std::size_t kGrains[] = {0, 1, 3, 1000};

// Runs f(pool) on pools of 1, 2 and 8 workers.
template <class F>
void for_each_pool(F f) {
  for (std::size_t workers : kWorkerCounts) {
    SCOPED_TRACE("workers=" + std::to_string(workers));
    weft::ForkJoinPool pool(workers);
    f(pool);
  }
}

// The label for a size and grain, for SCOPED_TRACE.
inline std::string size_and_grain(std::size_t n, std::size_t grain) {
  return "n=" + std::to_string(n) + " grain=" + std::to_string(grain);
}

}  // namespace weft::test::algorithms
