// bench/sum/seq.cpp — sum_leaf() over the whole array on the calling thread.
#include "common.hpp"

namespace bench {

void add_seq(std::vector<Case>& cases, const SumDataPtr& d) {
  auto result = std::make_shared<double>(0);
  add_contender(cases, "sum",
                {"sequential", "sum_leaf (vectorised: four 2-wide accumulators) over the whole array, one thread",
                 false, {},
                 [d, result] { *result = sum_leaf(d->a.get(), 0, d->n, 0.0); },
                 [d, result] { return check_sum(*result, d->expected); }});
}

}  // namespace bench
