// bench/fib/tbb.cpp — oneTBB: tbb::task_group run() + wait() per call, the shape of oneTBB's own fib
// example, inside a task_arena of `threads` slots (the calling thread takes one, as with the other
// contenders' `threads` workers; it works in wait()).
#include <memory>

#include <oneapi/tbb/task_arena.h>
#include <oneapi/tbb/task_group.h>
#include <oneapi/tbb/version.h>

#include "common.hpp"

namespace bench {
namespace {

long fib_group(int n, int cutoff) {
  if (n < 2) return n;
  if (n < cutoff) return fib_serial(n);
  long x = 0;
  tbb::task_group g;
  g.run([&] { x = fib_group(n - 1, cutoff); });
  const long y = fib_group(n - 2, cutoff);
  g.wait();
  return x + y;
}

}  // namespace

void add_tbb(std::vector<Case>& cases, const FibParams& p) {
  auto arena = std::make_shared<tbb::task_arena>(static_cast<int>(p.threads));
  arena->initialize();
  const std::string config = "tbb::task_arena(" + std::to_string(p.threads) + ") (the caller + " +
                             std::to_string(p.threads - 1) + " worker), tbb::task_group run() + wait() per call";
  for (const bool cut : {false, true}) {
    auto result = std::make_shared<long>(0);
    const int cutoff = cut ? p.cutoff : 0;
    add_contender(cases, cut ? "cutoff" : "nocutoff",
                  {"oneTBB", config + (cut ? ", fib_serial below the cutoff" : ""), false, {},
                   [arena, result, n = p.n, cutoff] { arena->execute([&] { *result = fib_group(n, cutoff); }); },
                   [result, n = p.n] { return check_fib(*result, n); }});
  }
}

std::string tbb_version() { return std::string("oneTBB ") + TBB_VERSION_STRING; }

}  // namespace bench
