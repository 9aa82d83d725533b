// bench/idle/omp.cpp — OpenMP (GCC's libgomp, default wait policy): the burst is fib(27) with tasks (fork
// while n >= 15) in a parallel region of `threads` threads, three times; then the team's threads are idle.
#include <omp.h>

#include "common.hpp"

namespace bench {
namespace {

long fib_task(int n) {
  if (n < 15) return fib_serial(n);
  long x = 0;
#pragma omp task shared(x) firstprivate(n)
  x = fib_task(n - 1);
  const long y = fib_task(n - 2);
#pragma omp taskwait
  return x + y;
}

}  // namespace

void add_omp(std::vector<Case>& cases, const IdleParams& p) {
  add_contender(cases, "idle",
                {"OpenMP team",
                 "#pragma omp parallel num_threads(" + std::to_string(p.threads) +
                     "), after 3 x fib(27) with tasks; default OMP_WAIT_POLICY",
                 false, {}, {}, {},
                 [p] {
                   return measure_in_child(p, [&p] {
                     long r = 0;
                     for (int i = 0; i < 3; ++i) {
#pragma omp parallel num_threads(static_cast<int>(p.threads)) reduction(+ : r)
                       {
#pragma omp single
                         r += fib_task(27);
                       }
                     }
                     if (r != 3 * 196418) fail("OpenMP burst: wrong fib");
                   });
                 }});
}

std::string omp_version() { return "GCC libgomp (OpenMP " + std::to_string(_OPENMP) + ")"; }

}  // namespace bench
