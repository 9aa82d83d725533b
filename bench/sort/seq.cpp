// bench/sort/seq.cpp — std::sort and std::stable_sort on the calling thread.
#include <algorithm>

#include "common.hpp"

namespace bench {

void add_seq(std::vector<Case>& cases, const SortDataPtr& d) {
  auto check = [d] { return d->check(); };
  add_contender(cases, "sort",
                {"std::sort", "std::sort, std::less, one thread", false, [d] { d->prepare(); },
                 [d] { std::sort(d->work.begin(), d->work.end()); }, check});
  add_contender(cases, "stable_sort",
                {"std::stable_sort", "std::stable_sort, std::less, one thread", false, [d] { d->prepare(); },
                 [d] { std::stable_sort(d->work.begin(), d->work.end()); }, check});
}

}  // namespace bench
