#pragma once
// Timers of the event loop: io::sleep / io::sleep_until (asyncio.sleep).
#include <chrono>

#include "weft/io/detail/awaiters.hpp"

namespace weft::io {

/// Suspends the calling task for `d` (at least; rounded to the loop's timer resolution, ~1 µs). A zero or
/// negative duration still yields to other ready tasks once. Throws weft::Cancelled if the task's scope is
/// cancelled while it sleeps. Loop thread only (throws weft::Error outside a running loop).
template <class Rep, class Period>
detail::TimerAwaiter sleep(std::chrono::duration<Rep, Period> d) {
  detail::LoopCore& core = detail::current_core();
  auto ns = std::chrono::duration_cast<std::chrono::nanoseconds>(d).count();
  if (ns < 0) ns = 0;
  // A fresh clock reading, not the loop's per-turn one: "at least d" from the caller's point of view.
  const auto now = std::chrono::duration_cast<std::chrono::nanoseconds>(
                       std::chrono::steady_clock::now().time_since_epoch()).count();
  return detail::TimerAwaiter(core, now + ns + 1);
}

/// Suspends the calling task until `tp` on the steady clock. See sleep().
inline detail::TimerAwaiter sleep_until(std::chrono::steady_clock::time_point tp) {
  detail::LoopCore& core = detail::current_core();
  auto ns = std::chrono::duration_cast<std::chrono::nanoseconds>(tp.time_since_epoch()).count();
  return detail::TimerAwaiter(core, ns > 0 ? ns : 1);
}

}  // namespace weft::io
