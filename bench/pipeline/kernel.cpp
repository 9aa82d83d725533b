// bench/pipeline/kernel.cpp — item_work(): the parallel stage's work (see common.hpp).
#include "common.hpp"

namespace bench {

std::uint64_t item_work(std::uint64_t index, int iters) {
  std::uint64_t x = index;
  for (int i = 0; i < iters; ++i) {  // a dependent chain: no vectorising, no overlapping of iterations
    x = x * 6364136223846793005ULL + 1442695040888963407ULL;
    x ^= x >> 29;
  }
  return x;
}

}  // namespace bench
