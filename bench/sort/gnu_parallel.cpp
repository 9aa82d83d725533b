// bench/sort/gnu_parallel.cpp — libstdc++'s parallel mode: __gnu_parallel::sort and stable_sort (multiway
// mergesort on OpenMP, the library's default algorithm), with `threads` threads.
#include <omp.h>

#include <functional>
#include <parallel/algorithm>

#include "common.hpp"

namespace bench {

void add_gnu_parallel(std::vector<Case>& cases, const SortDataPtr& d) {
  // The parallel mode runs sequentially unless omp_get_max_threads() > 1; the tag sets the team size.
  omp_set_num_threads(static_cast<int>(d->threads));
  const auto threads = static_cast<__gnu_parallel::_ThreadIndex>(d->threads);
  const std::string how = ", std::less, default_parallel_tag(" + std::to_string(d->threads) +
                          ") (multiway mergesort, OpenMP)";
  auto check = [d] { return d->check(); };
  add_contender(cases, "sort",
                {"__gnu_parallel::sort", "__gnu_parallel::sort" + how, false, [d] { d->prepare(); },
                 [d, threads] {
                   __gnu_parallel::sort(d->work.begin(), d->work.end(), std::less<std::uint32_t>(),
                                        __gnu_parallel::default_parallel_tag(threads));
                 },
                 check});
  add_contender(cases, "stable_sort",
                {"__gnu_parallel::stable_sort", "__gnu_parallel::stable_sort" + how, false, [d] { d->prepare(); },
                 [d, threads] {
                   __gnu_parallel::stable_sort(d->work.begin(), d->work.end(), std::less<std::uint32_t>(),
                                               __gnu_parallel::default_parallel_tag(threads));
                 },
                 check});
}

std::string gnu_parallel_version() {
  return "libstdc++ parallel mode on GCC libgomp (OpenMP " + std::to_string(_OPENMP) + ")";
}

}  // namespace bench
