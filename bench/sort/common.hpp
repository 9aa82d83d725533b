// bench/sort/common.hpp — what the contenders of the sort benchmark share.
//
// Input: `n` uniformly random std::uint32_t from std::mt19937 with a fixed seed, made once; every contender
// sorts the same values. Before each run the input is copied into the work array (untimed, so every run
// starts from the same unsorted data in memory that is already touched); after it the work array must be
// sorted and hold the same multiset (checked with a sum and an xor, untimed).
// Cases:
//  - sort:        unstable sort, std::less (weft also with a lambda comparator, so that an implementation
//                 that treats std::less on integers specially is measured on the comparison path as well);
//  - stable_sort: stable sort, std::less. With plain integers stability cannot be seen in the output; the
//                 case measures the cost of the stable algorithms, whose correctness the unit tests check.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "harness.hpp"

namespace bench {

struct SortData {
  std::vector<std::uint32_t> input;
  std::vector<std::uint32_t> work;
  std::uint64_t sum = 0;
  std::uint32_t xor_all = 0;
  std::size_t threads = 2;

  void prepare() { std::copy(input.begin(), input.end(), work.begin()); }
  std::string check() const;
};

using SortDataPtr = std::shared_ptr<SortData>;

void add_weft(std::vector<Case>& cases, const SortDataPtr& d);
void add_tbb(std::vector<Case>& cases, const SortDataPtr& d);
void add_gnu_parallel(std::vector<Case>& cases, const SortDataPtr& d);
void add_seq(std::vector<Case>& cases, const SortDataPtr& d);

std::string gnu_parallel_version();

}  // namespace bench
