// bench/idle/weft.cpp — weft::ForkJoinPool(threads), default options (idle workers spin 50 us, then sleep):
// the burst is fib(27) with join() (fork while n >= 15), run three times through invoke(); then the pool is
// left alive and idle.
#include "common.hpp"
#include "weft/parallel/fork_join_pool.hpp"

namespace bench {
namespace {

long fib_join(weft::ForkJoinPool& pool, int n) {
  if (n < 15) return fib_serial(n);
  auto [a, b] = pool.join([&] { return fib_join(pool, n - 1); }, [&] { return fib_join(pool, n - 2); });
  return a + b;
}

}  // namespace

void add_weft(std::vector<Case>& cases, const IdleParams& p) {
  add_contender(cases, "idle",
                {"weft::ForkJoinPool",
                 "weft::ForkJoinPool(" + std::to_string(p.threads) +
                     ") (default options: spin 50 us, then sleep), after 3 x fib(27) with join()",
                 true, {}, {}, {},
                 [p] {
                   return measure_in_child(p, [&p] {
                     auto* pool = new weft::ForkJoinPool(p.threads);  // alive until _exit
                     long r = 0;
                     for (int i = 0; i < 3; ++i) r += pool->invoke([&] { return fib_join(*pool, 27); });
                     if (r != 3 * 196418) fail("weft burst: wrong fib");
                   });
                 }});
}

}  // namespace bench
