// bench/sum/kernel.cpp — sum_leaf(): the leaf several contenders share (see common.hpp).
#include <cstring>

#include "common.hpp"

namespace bench {

double sum_leaf(const double* a, std::size_t lo, std::size_t hi, double acc) {
  // Four vector accumulators of two doubles (GCC/Clang vector extensions; SSE2 at the default flags): vector
  // additions, and four independent chains to hide the latency of floating-point addition, which the
  // compiler may not reorder by itself.
  using V2 = double __attribute__((vector_size(16)));
  V2 s[4] = {{acc, 0}, {0, 0}, {0, 0}, {0, 0}};
  std::size_t i = lo;
  for (; i + 8 <= hi; i += 8) {
    for (std::size_t k = 0; k < 4; ++k) {
      V2 v;
      std::memcpy(&v, a + i + 2 * k, sizeof v);
      s[k] += v;
    }
  }
  const V2 t = (s[0] + s[1]) + (s[2] + s[3]);
  double r = t[0] + t[1];
  for (; i < hi; ++i) r += a[i];
  return r;
}

}  // namespace bench
