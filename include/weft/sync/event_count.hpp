// weft/sync/event_count.hpp — sleep until "something changed", without lost wake-ups and without a mutex.
//
// Protocol (the waiter checks a condition that the notifier changes; both sides follow Dekker's pattern):
//  Waiter                                      Notifier
//  1. key = prepare_wait()  (waiters_++,       1. change the condition (e.g. push to a queue)
//     seq_cst fence, read epoch_)              2. notify_one()/notify_all(): seq_cst fence, then read
//  2. re-check the condition; if it holds,        waiters_; if non-zero, epoch_++ and futex-wake
//     cancel_wait() and go on
//  3. wait(key): futex-wait while epoch_ == key
// The two seq_cst fences order "waiters_++ then read condition" against "write condition then read
// waiters_": at least one side sees the other. Either the waiter sees the new condition in step 2, or the
// notifier sees waiters_ > 0 and bumps epoch_, so the waiter's futex_wait (which compares against key)
// returns at once or is woken. A notify with no registered waiter costs one fence and one load.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>

#include "weft/core/detail/futex.hpp"

namespace weft {

class EventCount {
 public:
  using Key = std::uint32_t;

  /// Registers the caller as a waiter; re-check the condition after this, then wait() or cancel_wait().
  [[nodiscard]] Key prepare_wait() noexcept {
    waiters_.fetch_add(1, std::memory_order_seq_cst);
    std::atomic_thread_fence(std::memory_order_seq_cst);  // pairs with the fence in notify_*()
    return epoch_.load(std::memory_order_acquire);
  }

  /// Undoes prepare_wait() when the condition already holds.
  void cancel_wait() noexcept { waiters_.fetch_sub(1, std::memory_order_relaxed); }

  /// Sleeps until a notify after prepare_wait() returned `key`, or the deadline (steady clock) passes.
  /// Returns false on timeout. May return early (spuriously): re-check the condition.
  bool wait(Key key, const std::chrono::steady_clock::time_point* deadline = nullptr) noexcept {
    bool notified = true;
    while (epoch_.load(std::memory_order_acquire) == key) {
      if (!detail::futex_wait(epoch_, key, deadline)) {
        notified = epoch_.load(std::memory_order_acquire) != key;
        break;
      }
    }
    waiters_.fetch_sub(1, std::memory_order_relaxed);
    return notified;
  }

  /// Wakes one waiter, if any is registered.
  void notify_one() noexcept { notify(1); }
  /// Wakes every registered waiter.
  void notify_all() noexcept { notify(0x7fffffff); }

  /// True when some thread is between prepare_wait() and the end of wait()/cancel_wait(). Call after a
  /// seq_cst fence when it decides whether to notify.
  bool has_waiters() const noexcept { return waiters_.load(std::memory_order_relaxed) != 0; }

 private:
  void notify(int count) noexcept {
    std::atomic_thread_fence(std::memory_order_seq_cst);  // pairs with the fence in prepare_wait()
    if (waiters_.load(std::memory_order_relaxed) == 0) return;
    epoch_.fetch_add(1, std::memory_order_acq_rel);
    detail::futex_wake(epoch_, count);
  }

  alignas(64) std::atomic<std::uint32_t> epoch_{0};
  std::atomic<std::uint32_t> waiters_{0};
};

}  // namespace weft
