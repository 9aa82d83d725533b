// bench/sort/weft.cpp — weft::parallel_sort (std::less, and a lambda comparator) and
// weft::parallel_stable_sort on a weft::ForkJoinPool of `threads` workers, called from outside the pool.
#include <memory>

#include "common.hpp"
#include "weft/parallel/fork_join_pool.hpp"
#include "weft/parallel/sort.hpp"

namespace bench {

void add_weft(std::vector<Case>& cases, const SortDataPtr& d) {
  auto pool = std::make_shared<weft::ForkJoinPool>(d->threads);
  const std::string on = " on weft::ForkJoinPool(" + std::to_string(d->threads) + ") (default options)";
  auto check = [d] { return d->check(); };
  add_contender(cases, "sort",
                {"weft", "weft::parallel_sort, std::less (default)" + on, true, [d] { d->prepare(); },
                 [d, pool] { weft::parallel_sort(*pool, d->work.begin(), d->work.end()); }, check});
  add_contender(cases, "sort",
                {"weft (lambda comparator)", "weft::parallel_sort, [](uint32_t a, uint32_t b) { return a < b; }" + on,
                 false, [d] { d->prepare(); },
                 [d, pool] {
                   weft::parallel_sort(*pool, d->work.begin(), d->work.end(),
                                       [](std::uint32_t a, std::uint32_t b) { return a < b; });
                 },
                 check});
  add_contender(cases, "stable_sort",
                {"weft", "weft::parallel_stable_sort, std::less (default)" + on, true, [d] { d->prepare(); },
                 [d, pool] { weft::parallel_stable_sort(*pool, d->work.begin(), d->work.end()); }, check});
}

}  // namespace bench
