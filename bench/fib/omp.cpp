// bench/fib/omp.cpp — OpenMP (GCC's libgomp): `#pragma omp task` for one half, `taskwait`, in a parallel
// region of `threads` threads entered once per run (the team's threads are kept between regions).
#include <omp.h>

#include <memory>

#include "common.hpp"

namespace bench {
namespace {

long fib_task(int n, int cutoff) {
  if (n < 2) return n;
  if (n < cutoff) return fib_serial(n);
  long x = 0;
#pragma omp task shared(x) firstprivate(n, cutoff)
  x = fib_task(n - 1, cutoff);
  const long y = fib_task(n - 2, cutoff);
#pragma omp taskwait
  return x + y;
}

long fib_region(int n, int cutoff, int threads) {
  long r = 0;
#pragma omp parallel num_threads(threads) shared(r)
  {
#pragma omp single
    r = fib_task(n, cutoff);
  }
  return r;
}

}  // namespace

void add_omp(std::vector<Case>& cases, const FibParams& p) {
  const std::string config = "#pragma omp parallel num_threads(" + std::to_string(p.threads) +
                             ") + single; #pragma omp task for fib(n-1), taskwait";
  for (const bool cut : {false, true}) {
    auto result = std::make_shared<long>(0);
    const int cutoff = cut ? p.cutoff : 0;
    add_contender(cases, cut ? "cutoff" : "nocutoff",
                  {"OpenMP", config + (cut ? ", fib_serial below the cutoff" : ""), false, {},
                   [result, n = p.n, cutoff, t = static_cast<int>(p.threads)] { *result = fib_region(n, cutoff, t); },
                   [result, n = p.n] { return check_fib(*result, n); }});
  }
}

std::string omp_version() { return "GCC libgomp (OpenMP " + std::to_string(_OPENMP) + ")"; }

}  // namespace bench
