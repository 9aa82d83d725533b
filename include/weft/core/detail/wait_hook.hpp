// weft/core/detail/wait_hook.hpp — lets an executor's worker do useful work while it waits on a future.
//
// A thread that belongs to an executor (a pool worker) installs a hook. When code running on that thread
// waits on a Future that is not ready, the wait goes to the hook instead of blocking the thread: the hook
// runs other queued tasks of its executor until the future is ready or the deadline passes. This is how a
// task that waits on a future of its own pool avoids the classic self-deadlock.
#pragma once

#include <chrono>

namespace weft::detail {

class StateBase;

class WaitHook {
 public:
  /// Waits until `state.ready()` or `*deadline` passes (no deadline when null), running other work
  /// meanwhile. Returns state.ready(). Called only on the thread that installed the hook.
  virtual bool wait(StateBase& state, const std::chrono::steady_clock::time_point* deadline) = 0;

 protected:
  ~WaitHook() = default;
};

/// Lets a producer make its futures' waiters useful: a state with a helper, waited on by a thread without a
/// WaitHook, calls helper->help() instead of spinning and sleeping itself. A ProcessPool's helper
/// makes the waiting thread collect the pool's results itself (one hand-off less than waking a collector
/// thread that then wakes the waiter).
/// Lifetime: a helper must stay callable for as long as any state that names it may be waited on — helpers
/// are never destroyed, only recycled — and help() must return at once when the state is already ready.
class WaitHelper {
 public:
  /// Waits until `state.ready()` or `*deadline` passes (no deadline when null). Returns state.ready().
  virtual bool help(StateBase& state, const std::chrono::steady_clock::time_point* deadline) = 0;

 protected:
  ~WaitHelper() = default;
};

/// The hook installed on the calling thread, or null.
WaitHook* current_wait_hook() noexcept;

/// Installs `hook` on the calling thread (null removes it) and returns the previous one.
WaitHook* exchange_wait_hook(WaitHook* hook) noexcept;

}  // namespace weft::detail
