// weft/core/detail/deadline.hpp — turning a timeout into a steady-clock deadline without overflow.
#pragma once

#include <chrono>

namespace weft::detail {

/// now + d on the steady clock, saturated: a wait longer than the clock can represent (say
/// nanoseconds::max(), meaning "no limit") ends at time_point::max() instead of overflowing into the past.
template <class Rep, class Period>
std::chrono::steady_clock::time_point deadline_after(std::chrono::duration<Rep, Period> d) {
  using Clock = std::chrono::steady_clock;
  const Clock::time_point now = Clock::now();
  if (d <= d.zero()) return now;
  // Compared in floating point, because converting d to the clock's duration may itself overflow.
  const std::chrono::duration<long double> room = Clock::time_point::max() - now;
  if (std::chrono::duration<long double>(d) >= room) return Clock::time_point::max();
  return now + std::chrono::ceil<Clock::duration>(d);
}

}  // namespace weft::detail
