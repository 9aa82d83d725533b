// bench/fib/common.hpp — what the contenders of the fork/join fib benchmark share.
//
// Cases (the same for every contender; each file implements them with its own library):
//  - nocutoff: fib(n) with a task per call down to n < 2 — millions of tiny tasks, so the figure is the cost
//    of one fork/join (spawn, maybe steal, wait) more than anything else.
//  - cutoff:   fib(n), forking only while n >= cutoff and calling fib_serial() below it — coarse tasks, so
//    the figure is how close the library gets to `threads` times the serial speed.
// Every run's result is checked against fib_expected(n).
#pragma once

#include <cstddef>
#include <memory>
#include <string>
#include <vector>

#include "harness.hpp"

namespace bench {

struct FibParams {
  int n = 32;
  int cutoff = 20;
  std::size_t threads = 2;
};

/// Plain recursion (seq.cpp). The sequential contender, and the leaf every cutoff contender calls below the
/// cutoff: one definition in one translation unit, so every contender runs the same machine code there.
long fib_serial(int n);

inline long fib_expected(int n) {
  long a = 0, b = 1;
  for (int i = 0; i < n; ++i) {
    const long c = a + b;
    a = b;
    b = c;
  }
  return a;
}

inline std::string check_fib(long got, int n) {
  return got == fib_expected(n) ? std::string() : "fib(" + std::to_string(n) + ") = " + std::to_string(got);
}

void add_weft(std::vector<Case>& cases, const FibParams& p);
void add_tbb(std::vector<Case>& cases, const FibParams& p);
void add_omp(std::vector<Case>& cases, const FibParams& p);
void add_seq(std::vector<Case>& cases, const FibParams& p);

}  // namespace bench
