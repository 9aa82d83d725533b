// weft/core/detail/clock.hpp — a cheap monotonic tick counter for task timestamps (aging, tracing).
//
// On x86-64 this is the time-stamp counter (~10 ns a read here, against ~27 ns for steady_clock::now()),
// which is constant-rate and synchronised across cores on the processors weft targets (constant_tsc,
// nonstop_tsc). Elsewhere it is steady_clock in nanoseconds. Convert with ns_per_tick().
#pragma once

#include <chrono>
#include <cstdint>

#if defined(__x86_64__) || defined(__i386__)
#include <x86intrin.h>
#endif

namespace weft::detail {

inline std::uint64_t ticks() noexcept {
#if defined(__x86_64__) || defined(__i386__)
  return __rdtsc();
#else
  return static_cast<std::uint64_t>(
      std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::steady_clock::now().time_since_epoch())
          .count());
#endif
}

/// Nanoseconds per tick. The first call calibrates against steady_clock (about 10 ms, once per process);
/// later calls return the cached value. Thread-safe.
double ns_per_tick() noexcept;

/// Converts a duration to ticks (rounding down), for comparing against differences of ticks().
std::uint64_t to_ticks(std::chrono::nanoseconds d) noexcept;

}  // namespace weft::detail
