// bench/pipeline/common.hpp — what the contenders of the pipeline benchmark share.
//
// Three stages over `items` small items:
//   1. serial, in order: hands out Item{index} for index = 0, 1, ..., items - 1, then stops the input;
//   2. parallel:         value = item_work(index) — a chain of `work_iters` dependent multiply/xor steps
//                        (about 100 ns at the default on this machine; the program prints the figure it
//                        measured when it computed the expected sum);
//   3. serial, in order: checks that indices arrive as 0, 1, 2, ... and adds up the values.
// At most `in_flight` items between the first and the last stage (4 per thread by default). Each run's
// count and sum are checked against the expected ones, so an out-of-order or lost item fails the program.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "harness.hpp"

namespace bench {

struct Item {
  std::uint64_t index = 0;
  std::uint64_t value = 0;
};

/// The parallel stage's work (kernel.cpp): compiled once, so every contender runs the same machine code.
std::uint64_t item_work(std::uint64_t index, int iters);

/// The last stage's state: the next index expected, the sum so far, and whether the order ever broke.
struct Sink {
  std::uint64_t next = 0;
  std::uint64_t sum = 0;
  bool out_of_order = false;

  void take(const Item& it) {
    if (it.index != next) out_of_order = true;
    next = it.index + 1;
    sum += it.value;
  }
};

struct PipelineParams {
  std::size_t items = 0;
  int work_iters = 0;
  std::size_t in_flight = 0;
  std::size_t threads = 2;
  std::uint64_t expected_sum = 0;

  std::string check(const Sink& s) const {
    if (s.out_of_order) return "items reached the last stage out of order";
    if (s.next != items) return std::to_string(s.next) + " items reached the last stage";
    if (s.sum != expected_sum) return "wrong sum";
    return {};
  }
};

void add_weft(std::vector<Case>& cases, const PipelineParams& p);
void add_tbb(std::vector<Case>& cases, const PipelineParams& p);
void add_seq(std::vector<Case>& cases, const PipelineParams& p);

}  // namespace bench
