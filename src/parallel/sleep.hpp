// src/parallel/sleep.hpp — who of a ForkJoinPool's workers is searching, running or asleep, and waking them.
//
// The protocol that uses it is at the top of fork_join_pool.cpp. This object is shared (std::shared_ptr)
// because a done-callback added to a weft::Future by a waiting worker may run after the pool is gone: it
// then unparks nobody, harmlessly.
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <mutex>
#include <vector>

#include "weft/core/detail/futex.hpp"

namespace weft::detail {

class Sleep {
 public:
  // counts_: searching workers in the low 16 bits, awake (not parked) workers in the high 16 bits.
  static constexpr std::uint32_t kSearching = 1;
  static constexpr std::uint32_t kAwake = 1u << 16;
  static constexpr std::uint32_t kMaxWorkers = 0x7fff;  // both fields must hold n without overflow

  explicit Sleep(std::uint32_t n) : n_(n), slots_(new Slot[n]) {
    sleepers_.reserve(n);
    counts_.store(n * kAwake, std::memory_order_relaxed);  // workers start awake, not searching
  }

  static std::uint32_t searching(std::uint32_t c) noexcept { return c & 0xffffu; }
  static std::uint32_t awake(std::uint32_t c) noexcept { return c >> 16; }

  /// Nobody is searching and somebody is asleep: a producer with new work should wake one.
  bool should_wake(std::uint32_t c) const noexcept { return searching(c) == 0 && awake(c) < n_; }

  std::atomic<std::uint32_t>& counts() noexcept { return counts_; }

  /// Wakes one parked worker, which comes back counted as searching, unless somebody is searching already
  /// or nobody sleeps.
  void wake_one() noexcept {
    if (!should_wake(counts_.load(std::memory_order_seq_cst))) return;
    Slot* woken = nullptr;
    {
      std::scoped_lock lock(mutex_);
      if (sleepers_.empty() || !should_wake(counts_.load(std::memory_order_relaxed))) return;
      const std::uint32_t i = sleepers_.back();
      sleepers_.pop_back();
      woken = &slots_[i];
      unpark_locked(*woken);
    }
    futex_wake(woken->word, 1);
  }

  /// Wakes worker `i` if it is parked (what it waits for may be done). Otherwise does nothing: an awake
  /// worker re-checks its condition before it parks.
  void unpark(std::uint32_t i) noexcept {
    if (i >= n_) return;
    {
      std::scoped_lock lock(mutex_);
      if (!slots_[i].parked) return;
      erase(i);
      unpark_locked(slots_[i]);
    }
    futex_wake(slots_[i].word, 1);
  }

  /// Wakes every parked worker (shutdown, and a worker leaving for good).
  void unpark_all() noexcept {
    std::vector<std::uint32_t> woken;
    {
      std::scoped_lock lock(mutex_);
      woken.swap(sleepers_);
      for (std::uint32_t i : woken) unpark_locked(slots_[i]);
      sleepers_.reserve(n_);
    }
    for (std::uint32_t i : woken) futex_wake(slots_[i].word, 1);
  }

  /// Worker `i` goes to sleep: leaves the searching count (when `was_searching`) and the awake count, and
  /// joins the sleepers. Returns the counts before the change. Call park_wait() next (after re-checking).
  std::uint32_t park_begin(std::uint32_t i, bool was_searching) noexcept {
    std::scoped_lock lock(mutex_);
    Slot& s = slots_[i];
    s.parked = true;
    s.word.store(1, std::memory_order_relaxed);
    sleepers_.push_back(i);
    // seq_cst: ordered against producers' fences (Dekker, step 3 of the protocol).
    return counts_.fetch_sub(kAwake + (was_searching ? kSearching : 0), std::memory_order_seq_cst);
  }

  /// Undoes park_begin() if nobody woke worker `i` meanwhile. Either way the worker is then counted as
  /// awake and searching (a waker counts it so).
  void park_cancel(std::uint32_t i) noexcept {
    std::scoped_lock lock(mutex_);
    if (!slots_[i].parked) return;
    erase(i);
    unpark_locked(slots_[i]);
  }

  /// Sleeps until woken or the deadline passes. Returns with the worker counted as awake and searching.
  void park_wait(std::uint32_t i, const std::chrono::steady_clock::time_point* deadline) noexcept {
    Slot& s = slots_[i];
    // acquire: pairs with the waker's release store of 0, so what the waker did before is visible.
    while (s.word.load(std::memory_order_acquire) == 1) {
      if (!futex_wait(s.word, 1, deadline)) {
        park_cancel(i);  // timed out (or woken at the same moment: then this does nothing)
        return;
      }
    }
  }

 private:
  struct alignas(64) Slot {
    std::atomic<std::uint32_t> word{0};  // 1 while parked; the futex the worker sleeps on
    bool parked = false;                 // guarded by mutex_
  };

  void unpark_locked(Slot& s) noexcept {
    s.parked = false;
    counts_.fetch_add(kAwake + kSearching, std::memory_order_seq_cst);
    s.word.store(0, std::memory_order_release);
  }

  void erase(std::uint32_t i) noexcept {
    for (auto it = sleepers_.begin(); it != sleepers_.end(); ++it) {
      if (*it == i) {
        *it = sleepers_.back();
        sleepers_.pop_back();
        return;
      }
    }
  }

  const std::uint32_t n_;
  alignas(64) std::atomic<std::uint32_t> counts_{0};
  std::mutex mutex_;
  std::vector<std::uint32_t> sleepers_;  // guarded by mutex_
  std::unique_ptr<Slot[]> slots_;
};

}  // namespace weft::detail
