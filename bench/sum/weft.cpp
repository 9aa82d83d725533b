// bench/sum/weft.cpp — weft::parallel_reduce on a weft::ForkJoinPool of `threads` workers: the iterator form
// (like std::reduce, std::plus — weft's own leaf) and the index form with sum_leaf() as the leaf.
#include <functional>
#include <memory>

#include "common.hpp"
#include "weft/parallel/fork_join_pool.hpp"
#include "weft/parallel/reduce.hpp"

namespace bench {

void add_weft(std::vector<Case>& cases, const SumDataPtr& d) {
  auto pool = std::make_shared<weft::ForkJoinPool>(d->threads);
  const std::string on = " on weft::ForkJoinPool(" + std::to_string(d->threads) + ") (default options), grain auto";
  auto iterator_result = std::make_shared<double>(0);
  add_contender(cases, "sum",
                {"weft", "weft::parallel_reduce(pool, a, a + n, 0.0) (iterator form, std::plus)" + on, true, {},
                 [d, pool, iterator_result] {
                   *iterator_result = weft::parallel_reduce(*pool, d->a.get(), d->a.get() + d->n, 0.0);
                 },
                 [d, iterator_result] { return check_sum(*iterator_result, d->expected); }});
  auto index_result = std::make_shared<double>(0);
  add_contender(cases, "sum",
                {"weft (index form, sum_leaf)",
                 "weft::parallel_reduce(pool, 0, n, 0.0, sum_leaf, std::plus) (index form)" + on, false, {},
                 [d, pool, index_result] {
                   const double* a = d->a.get();
                   *index_result = weft::parallel_reduce(
                       *pool, std::size_t{0}, d->n, 0.0,
                       [a](std::size_t lo, std::size_t hi, double acc) { return sum_leaf(a, lo, hi, acc); },
                       std::plus<double>());
                 },
                 [d, index_result] { return check_sum(*index_result, d->expected); }});
}

}  // namespace bench
