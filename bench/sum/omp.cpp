// bench/sum/omp.cpp — OpenMP: `parallel for simd reduction(+ : s)`, static schedule, `threads` threads.
#include <omp.h>

#include "common.hpp"

namespace bench {
namespace {

double omp_sum(const double* a, std::size_t n, int threads) {
  double s = 0;
#pragma omp parallel for simd reduction(+ : s) num_threads(threads) schedule(static)
  for (std::size_t i = 0; i < n; ++i) s += a[i];
  return s;
}

}  // namespace

void add_omp(std::vector<Case>& cases, const SumDataPtr& d) {
  auto result = std::make_shared<double>(0);
  add_contender(cases, "sum",
                {"OpenMP", "#pragma omp parallel for simd reduction(+ : s) num_threads(" + std::to_string(d->threads) +
                               ") schedule(static)",
                 false, {}, [d, result] { *result = omp_sum(d->a.get(), d->n, static_cast<int>(d->threads)); },
                 [d, result] { return check_sum(*result, d->expected); }});
}

std::string omp_version() { return "GCC libgomp (OpenMP " + std::to_string(_OPENMP) + ")"; }

}  // namespace bench
