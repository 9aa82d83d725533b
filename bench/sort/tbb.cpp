// bench/sort/tbb.cpp — oneTBB's tbb::parallel_sort (unstable; oneTBB has no stable parallel sort) inside a
// task_arena of `threads` slots (the caller + threads - 1 workers).
#include <functional>

#include <oneapi/tbb/parallel_sort.h>
#include <oneapi/tbb/task_arena.h>
#include <oneapi/tbb/version.h>

#include "common.hpp"

namespace bench {

void add_tbb(std::vector<Case>& cases, const SortDataPtr& d) {
  auto arena = std::make_shared<tbb::task_arena>(static_cast<int>(d->threads));
  arena->initialize();
  add_contender(cases, "sort",
                {"oneTBB", "tbb::parallel_sort, std::less, in tbb::task_arena(" + std::to_string(d->threads) +
                               ") (the caller + " + std::to_string(d->threads - 1) + " worker)",
                 false, [d] { d->prepare(); },
                 [d, arena] { arena->execute([&] { tbb::parallel_sort(d->work.begin(), d->work.end()); }); },
                 [d] { return d->check(); }});
}

std::string tbb_version() { return std::string("oneTBB ") + TBB_VERSION_STRING; }

}  // namespace bench
