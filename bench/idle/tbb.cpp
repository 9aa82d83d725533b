// bench/idle/tbb.cpp — oneTBB: a task_arena of `threads` slots; the burst is fib(27) with task_group (fork
// while n >= 15), run three times through execute(); then the arena is left alive and idle.
#include <memory>

#include <oneapi/tbb/task_arena.h>
#include <oneapi/tbb/task_group.h>
#include <oneapi/tbb/version.h>

#include "common.hpp"

namespace bench {
namespace {

long fib_group(int n) {
  if (n < 15) return fib_serial(n);
  long x = 0;
  tbb::task_group g;
  g.run([&] { x = fib_group(n - 1); });
  const long y = fib_group(n - 2);
  g.wait();
  return x + y;
}

}  // namespace

void add_tbb(std::vector<Case>& cases, const IdleParams& p) {
  add_contender(cases, "idle",
                {"oneTBB task_arena",
                 "tbb::task_arena(" + std::to_string(p.threads) + "), after 3 x fib(27) with task_group", false, {},
                 {}, {},
                 [p] {
                   return measure_in_child(p, [&p] {
                     auto* arena = new tbb::task_arena(static_cast<int>(p.threads));  // alive until _exit
                     long r = 0;
                     for (int i = 0; i < 3; ++i) arena->execute([&] { r += fib_group(27); });
                     if (r != 3 * 196418) fail("oneTBB burst: wrong fib");
                   });
                 }});
}

std::string tbb_version() { return std::string("oneTBB ") + TBB_VERSION_STRING; }

}  // namespace bench
