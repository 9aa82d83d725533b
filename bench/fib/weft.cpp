// bench/fib/weft.cpp — weft::ForkJoinPool::join(a, b) per call: a runs on the calling worker, b waits in its
// deque to be stolen (the example at the top of fork_join_pool.hpp). The run enters the pool with invoke().
#include <memory>

#include "common.hpp"
#include "weft/parallel/fork_join_pool.hpp"

namespace bench {
namespace {

long fib_join(weft::ForkJoinPool& pool, int n, int cutoff) {
  if (n < 2) return n;
  if (n < cutoff) return fib_serial(n);
  auto [a, b] = pool.join([&] { return fib_join(pool, n - 1, cutoff); }, [&] { return fib_join(pool, n - 2, cutoff); });
  return a + b;
}

}  // namespace

void add_weft(std::vector<Case>& cases, const FibParams& p) {
  auto pool = std::make_shared<weft::ForkJoinPool>(p.threads);
  const std::string config = "weft::ForkJoinPool(" + std::to_string(p.threads) +
                             ") (default options), join() per call, entered with invoke()";
  for (const bool cut : {false, true}) {
    auto result = std::make_shared<long>(0);
    const int cutoff = cut ? p.cutoff : 0;
    add_contender(cases, cut ? "cutoff" : "nocutoff",
                  {"weft", config + (cut ? ", fib_serial below the cutoff" : ""), true, {},
                   [pool, result, n = p.n, cutoff] {
                     *result = pool->invoke([&] { return fib_join(*pool, n, cutoff); });
                   },
                   [result, n = p.n] { return check_fib(*result, n); }});
  }
}

}  // namespace bench
