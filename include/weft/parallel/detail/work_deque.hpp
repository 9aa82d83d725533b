// weft/parallel/detail/work_deque.hpp — the Chase–Lev work-stealing deque of one ForkJoinPool worker.
//
// The owner pushes and pops at the bottom (LIFO: the newest job, whose data is hot in its cache); thieves
// take from the top (FIFO: the oldest job, in fork/join the biggest piece of work). The algorithm is
// Chase & Lev, "Dynamic Circular Work-Stealing Deque" (SPAA'05), with the C11 memory orders of Lê, Pop,
// Cohen & Zappa Nardelli, "Correct and Efficient Work-Stealing for Weak Memory Models" (PPoPP'13, fig. 1).
// Departures from the paper:
//  - The two seq_cst fences (in take/pop and steal) are replaced by seq_cst accesses to top_ and bottom_:
//    the same StoreLoad order (on x86 the store becomes an xchg instead of mov + mfence, the loads stay plain),
//    and a form ThreadSanitizer understands, which it does not for fences.
//  - Slots are std::atomic<Job*> accessed relaxed: a thief may read a slot the owner is overwriting (its
//    CAS on top_ then fails and the value is discarded); the paper's plain accesses would be a data race.
//  - Growth is bounded: the array doubles up to `max_capacity` jobs, past which push() returns false and
//    the caller runs the job itself (a recursion that deep has more than enough parallel slack).
//  - Arrays replaced by growth are kept until the deque is destroyed instead of being reclaimed: a thief may
//    still read the old array. Doubling bounds the kept memory by the size of the current array.
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <vector>

#include "weft/parallel/detail/job.hpp"

namespace weft::detail {

class WorkDeque {
 public:
  /// Starts with `initial` slots (a power of two) and grows to at most `max_capacity` (a power of two).
  WorkDeque(std::size_t initial, std::size_t max_capacity)
      : max_capacity_(max_capacity < initial ? initial : max_capacity) {
    arrays_.push_back(std::make_unique<Array>(initial));
    array_.store(arrays_.back().get(), std::memory_order_relaxed);
  }
  WorkDeque(const WorkDeque&) = delete;
  WorkDeque& operator=(const WorkDeque&) = delete;

  /// Owner only. False when the deque holds max_capacity jobs (the job was not queued).
  [[nodiscard]] bool push(Job* job) {
    const std::int64_t b = bottom_.load(std::memory_order_relaxed);
    // acquire: pairs with the thieves' CAS on top_, so slots they emptied may be reused.
    const std::int64_t t = top_.load(std::memory_order_acquire);
    Array* a = array_.load(std::memory_order_relaxed);
    if (b - t > static_cast<std::int64_t>(a->mask)) {
      a = grow(a, t, b);
      if (a == nullptr) return false;
    }
    a->at(b).store(job, std::memory_order_relaxed);
    // release: a thief that reads the new bottom (acquire) sees the slot and the job's contents.
    bottom_.store(b + 1, std::memory_order_release);
    return true;
  }

  /// Owner only. The newest job, or null when empty.
  Job* pop() noexcept {
    const std::int64_t b = bottom_.load(std::memory_order_relaxed) - 1;
    Array* a = array_.load(std::memory_order_relaxed);
    // seq_cst store, then seq_cst load: the StoreLoad order the paper gets from a fence. With the thief's
    // seq_cst loads of top_ and bottom_ (and the CAS) in one total order, either the thief sees the
    // decremented bottom_ or the owner sees the thief's top_.
    bottom_.store(b, std::memory_order_seq_cst);
    std::int64_t t = top_.load(std::memory_order_seq_cst);
    if (t > b) {  // empty
      bottom_.store(b + 1, std::memory_order_relaxed);
      return nullptr;
    }
    Job* job = a->at(b).load(std::memory_order_relaxed);
    if (t == b) {
      // The last job: race the thieves for it with the same CAS they use.
      if (!top_.compare_exchange_strong(t, t + 1, std::memory_order_seq_cst, std::memory_order_relaxed)) job = nullptr;
      bottom_.store(b + 1, std::memory_order_relaxed);
    }
    return job;
  }

  /// Any thread. The oldest job; null when empty or when it lost a race (then try again or elsewhere).
  Job* steal() noexcept {
    // seq_cst (acquire at least): pairs with the CAS of other thieves (and of pop) on top_; ordered before
    // the load of bottom_ in the single seq_cst order (see pop()).
    std::int64_t t = top_.load(std::memory_order_seq_cst);
    // seq_cst, so also acquire: pairs with push()'s release store, so the slot and the job are visible.
    const std::int64_t b = bottom_.load(std::memory_order_seq_cst);
    if (t >= b) return nullptr;
    // acquire: pairs with grow()'s release store of a new array, whose slots were filled before it.
    Array* a = array_.load(std::memory_order_acquire);
    Job* job = a->at(t).load(std::memory_order_relaxed);
    // seq_cst: the CAS decides between this thief, other thieves and pop() taking the last job.
    if (!top_.compare_exchange_strong(t, t + 1, std::memory_order_seq_cst, std::memory_order_relaxed)) return nullptr;
    return job;
  }

  /// Any thread. A snapshot: may be stale by the time the caller acts on it.
  bool empty() const noexcept {
    const std::int64_t t = top_.load(std::memory_order_acquire);
    const std::int64_t b = bottom_.load(std::memory_order_acquire);
    return b <= t;
  }

  /// Any thread. Approximate number of queued jobs.
  std::size_t size() const noexcept {
    const std::int64_t t = top_.load(std::memory_order_acquire);
    const std::int64_t b = bottom_.load(std::memory_order_acquire);
    return b > t ? static_cast<std::size_t>(b - t) : 0;
  }

 private:
  struct Array {
    explicit Array(std::size_t n) : mask(n - 1), slots(new std::atomic<Job*>[n]) {}
    std::atomic<Job*>& at(std::int64_t i) noexcept { return slots[static_cast<std::size_t>(i) & mask]; }
    std::size_t mask;
    std::unique_ptr<std::atomic<Job*>[]> slots;
  };

  Array* grow(Array* a, std::int64_t t, std::int64_t b) {
    const std::size_t n = a->mask + 1;
    if (n >= max_capacity_) return nullptr;
    auto bigger = std::make_unique<Array>(n * 2);
    for (std::int64_t i = t; i < b; ++i) bigger->at(i).store(a->at(i).load(std::memory_order_relaxed), std::memory_order_relaxed);
    Array* raw = bigger.get();
    arrays_.push_back(std::move(bigger));  // the old array stays alive: thieves may still be reading it
    array_.store(raw, std::memory_order_release);
    return raw;
  }

  // top_ and bottom_ on separate cache lines: thieves hammer top_, the owner writes bottom_ on every push/pop.
  alignas(64) std::atomic<std::int64_t> top_{0};
  alignas(64) std::atomic<std::int64_t> bottom_{0};
  alignas(64) std::atomic<Array*> array_{nullptr};
  const std::size_t max_capacity_;
  std::vector<std::unique_ptr<Array>> arrays_;  // owner only
};

}  // namespace weft::detail
