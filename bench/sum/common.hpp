// bench/sum/common.hpp — what the contenders of the sum benchmark share.
//
// Input: `n` doubles, a[i] = i mod 1024, made once. The array is filled (first touched) by `threads`
// std::threads, each writing one contiguous part, the parts every contender then reads in much the same
// split; it is read-only afterwards. Every partial sum is a whole number below 2^53, so each contender's
// result is exact whatever its order of additions, and is checked for equality.
// Contenders: weft::parallel_reduce (iterator form with std::plus, and index form with sum_leaf),
// tbb::parallel_reduce with sum_leaf, OpenMP `parallel for simd reduction`, sum_leaf on one thread, and a
// reference: `threads` std::threads each reading its part of the array as 64-bit words in a loop the compiler
// vectorises — about as fast as these threads can stream the array from memory, so the others are compared
// with the memory bandwidth they could reach, measured in the same run.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "harness.hpp"

namespace bench {

struct SumData {
  std::unique_ptr<double[]> a;
  std::size_t n = 0;
  std::size_t threads = 2;
  double expected = 0;            // sum of a[i]
  std::uint64_t expected_words = 0;  // sum of the bit patterns of a[i], modulo 2^64
};

using SumDataPtr = std::shared_ptr<SumData>;

/// acc + a[lo] + ... + a[hi - 1] with four 2-wide vector accumulators (kernel.cpp): the vectorised leaf the
/// tbb, weft index-form and sequential contenders use, compiled once so they all run the same machine code.
double sum_leaf(const double* a, std::size_t lo, std::size_t hi, double acc);

inline std::string check_sum(double got, double expected) {
  return got == expected ? std::string() : "sum " + std::to_string(got) + ", expected " + std::to_string(expected);
}

void add_weft(std::vector<Case>& cases, const SumDataPtr& d);
void add_tbb(std::vector<Case>& cases, const SumDataPtr& d);
void add_omp(std::vector<Case>& cases, const SumDataPtr& d);
void add_seq(std::vector<Case>& cases, const SumDataPtr& d);
void add_bandwidth(std::vector<Case>& cases, const SumDataPtr& d);
std::uint64_t sum_words(const double* a, std::size_t lo, std::size_t hi);  // bandwidth.cpp

}  // namespace bench
