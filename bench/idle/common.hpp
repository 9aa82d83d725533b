// bench/idle/common.hpp — what the contenders of the idle-CPU benchmark share.
//
// Each measurement runs in a child process of its own (fork() from a parent that has started no threads
// and no runtime), so that one library's threads cannot add to another's figure: the child makes the
// library's pool (or arena, or team) of `threads` threads, runs a short burst of fork/join work on it so that
// every worker has started and worked, and then, with the pool still alive and no work given, takes its own
// CPU time (getrusage RUSAGE_SELF: every thread of the child) before and after `seconds` of sleep on the
// main thread. The window starts as soon as the burst has returned, so it includes each library's spinning
// before its workers sleep. The child sends the sample back through a pipe.
#pragma once

#include <cstddef>
#include <functional>
#include <string>
#include <vector>

#include "harness.hpp"

namespace bench {

struct IdleParams {
  double seconds = 5;
  std::size_t threads = 2;
};

/// In a child process: setup_and_burst() (makes the runtime, runs the burst, keeps the runtime alive until
/// the child exits), then the window. Returns the child's sample; fails the program if the child fails.
Sample measure_in_child(const IdleParams& p, const std::function<void()>& setup_and_burst);

/// Plain recursion, the leaf below the burst's cutoff (main.cpp).
long fib_serial(int n);

void add_weft(std::vector<Case>& cases, const IdleParams& p);
void add_tbb(std::vector<Case>& cases, const IdleParams& p);
void add_omp(std::vector<Case>& cases, const IdleParams& p);

}  // namespace bench
