#include "weft/core/detail/clock.hpp"

#include <thread>

namespace weft::detail {

double ns_per_tick() noexcept {
#if defined(__x86_64__) || defined(__i386__)
  static const double value = [] {
    using clock = std::chrono::steady_clock;
    const auto t0 = clock::now();
    const std::uint64_t r0 = ticks();
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
    const auto t1 = clock::now();
    const std::uint64_t r1 = ticks();
    const double ns = static_cast<double>(std::chrono::duration_cast<std::chrono::nanoseconds>(t1 - t0).count());
    return r1 > r0 ? ns / static_cast<double>(r1 - r0) : 1.0;
  }();
  return value;
#else
  return 1.0;
#endif
}

std::uint64_t to_ticks(std::chrono::nanoseconds d) noexcept {
  if (d.count() <= 0) return 0;
  return static_cast<std::uint64_t>(static_cast<double>(d.count()) / ns_per_tick());
}

}  // namespace weft::detail
