// bench/sum/tbb.cpp — tbb::parallel_reduce over a blocked_range (auto_partitioner, the default) with
// sum_leaf() as the body, inside a task_arena of `threads` slots (the caller + threads - 1 workers).
#include <functional>

#include <oneapi/tbb/blocked_range.h>
#include <oneapi/tbb/parallel_reduce.h>
#include <oneapi/tbb/task_arena.h>
#include <oneapi/tbb/version.h>

#include "common.hpp"

namespace bench {

void add_tbb(std::vector<Case>& cases, const SumDataPtr& d) {
  auto arena = std::make_shared<tbb::task_arena>(static_cast<int>(d->threads));
  arena->initialize();
  auto result = std::make_shared<double>(0);
  add_contender(cases, "sum",
                {"oneTBB", "tbb::parallel_reduce(blocked_range, 0.0, sum_leaf, std::plus) in tbb::task_arena(" +
                               std::to_string(d->threads) + ")",
                 false, {},
                 [d, arena, result] {
                   arena->execute([&] {
                     const double* a = d->a.get();
                     *result = tbb::parallel_reduce(
                         tbb::blocked_range<std::size_t>(0, d->n), 0.0,
                         [a](const tbb::blocked_range<std::size_t>& r, double acc) {
                           return sum_leaf(a, r.begin(), r.end(), acc);
                         },
                         std::plus<double>());
                   });
                 },
                 [d, result] { return check_sum(*result, d->expected); }});
}

std::string tbb_version() { return std::string("oneTBB ") + TBB_VERSION_STRING; }

}  // namespace bench
