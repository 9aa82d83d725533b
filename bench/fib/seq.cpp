// bench/fib/seq.cpp — plain recursion on the calling thread: the sequential contender, and fib_serial(),
// the leaf below the cutoff for every parallel contender.
#include "common.hpp"

namespace bench {

long fib_serial(int n) { return n < 2 ? n : fib_serial(n - 1) + fib_serial(n - 2); }

void add_seq(std::vector<Case>& cases, const FibParams& p) {
  for (const char* id : {"nocutoff", "cutoff"}) {
    auto result = std::make_shared<long>(0);
    add_contender(cases, id,
                  {"sequential", "plain recursion on the calling thread", false, {},
                   [result, n = p.n] { *result = fib_serial(n); },
                   [result, n = p.n] { return check_fib(*result, n); }});
  }
}

}  // namespace bench
