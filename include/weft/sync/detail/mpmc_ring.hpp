// weft/sync/detail/mpmc_ring.hpp — a bounded lock-free multi-producer multi-consumer FIFO that can be closed.
//
// The algorithm is D. Vyukov's bounded MPMC queue (2010): every slot carries a sequence number that says
// whose turn it is. For position p (a 64-bit counter that never wraps in practice) the slot is i = p mod cap:
//  - a producer may fill slot i for position p when seq == 2p; it claims p with a CAS on tail_, writes the
//    value, and publishes with seq = 2p + 1 (release; pairs with the consumer's acquire load of seq);
//  - a consumer may take it when seq == 2p + 1; it claims p with a CAS on head_, moves the value out, and
//    hands the slot to the next lap with seq = 2(p + cap) (release; pairs with the producer's acquire load).
//  seq < 2p (producer) means the slot still holds last lap's value: the ring is full. seq < 2p + 1
//  (consumer) means nothing was published there yet: empty.
// Departure from the paper: the paper uses seq == p (free), p + 1 (full) and p + cap (free for the next
// lap). With cap == 1 "full for p" and "free for p + 1" are then the same number, so a second producer
// overwrote an unconsumed value and the consumer spun forever. Doubling the sequence keeps the two states
// apart for every capacity: free states are even, full states odd.
// Departure from the paper: bit 63 of tail_ is a "closed" flag. close() sets it with fetch_or, so every
// later claim CAS (which expects the bit clear) fails and the producer sees kClosed; positions claimed before
// the close are still published and consumed. drained() = closed and head_ caught up with tail_: nothing
// more will ever come out. Capacities that are not powers of two use a modulo instead of a mask.
//
// Each slot also carries a 64-bit stamp written with the value (the ThreadPool stores the submit time there
// for aging); peek_stamp() reads the head's stamp without claiming it, as a hint.
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <new>
#include <optional>
#include <stdexcept>
#include <type_traits>
#include <utility>

namespace weft::detail {

enum class PushResult { ok, full, closed };

template <class T>
class MpmcRing {
  static constexpr std::uint64_t kClosed = std::uint64_t{1} << 63;

  struct alignas(64) Slot {  // a cache line each: a producer and a consumer at neighbouring slots do not collide
    std::atomic<std::uint64_t> seq;
    std::atomic<std::uint64_t> stamp;
    alignas(T) unsigned char storage[sizeof(T)];
    T* value() noexcept { return std::launder(reinterpret_cast<T*>(storage)); }
  };

 public:
  /// A ring of exactly `capacity` slots. Throws std::invalid_argument for capacity 0.
  explicit MpmcRing(std::size_t capacity)
      : capacity_(capacity), mask_(is_pow2(capacity) ? capacity - 1 : 0), slots_(make_slots(capacity)) {}

  MpmcRing(const MpmcRing&) = delete;
  MpmcRing& operator=(const MpmcRing&) = delete;

  ~MpmcRing() {
    std::uint64_t head = head_.load(std::memory_order_relaxed);
    const std::uint64_t tail = tail_.load(std::memory_order_relaxed) & ~kClosed;
    for (; head < tail; ++head) {
      Slot& s = slot(head);
      if (s.seq.load(std::memory_order_relaxed) == full_seq(head)) s.value()->~T();
    }
  }

  std::size_t capacity() const noexcept { return capacity_; }

  /// Constructs T(args...) at the tail. The arguments are consumed only when the result is ok.
  template <class... A>
  PushResult try_emplace(std::uint64_t stamp, A&&... args) {
    // Once a position is claimed, consumers wait for it to be published, so construction must not fail.
    static_assert(std::is_nothrow_constructible_v<T, A&&...>, "ring values must be nothrow-constructible");
    std::uint64_t pos = tail_.load(std::memory_order_relaxed);
    for (;;) {
      if ((pos & kClosed) != 0) return PushResult::closed;
      Slot& s = slot(pos);
      const std::uint64_t seq = s.seq.load(std::memory_order_acquire);  // pairs with the consumer's release
      const auto diff = static_cast<std::int64_t>(seq - free_seq(pos));
      if (diff == 0) {
        // relaxed: the CAS only arbitrates between producers; the slot's data is published through seq.
        if (tail_.compare_exchange_weak(pos, pos + 1, std::memory_order_relaxed, std::memory_order_relaxed)) {
          ::new (static_cast<void*>(s.storage)) T(std::forward<A>(args)...);
          s.stamp.store(stamp, std::memory_order_relaxed);
          s.seq.store(full_seq(pos), std::memory_order_release);  // pairs with the consumer's acquire load
          return PushResult::ok;
        }
      } else if (diff < 0) {
        return PushResult::full;
      } else {
        pos = tail_.load(std::memory_order_relaxed);
      }
    }
  }

  /// Moves the head value into `out` (and its stamp into `*stamp`, when given). False when nothing is
  /// published at the head (empty, or the next position is claimed but not yet written).
  bool try_pop(T& out, std::uint64_t* stamp = nullptr) {
    std::uint64_t pos = head_.load(std::memory_order_relaxed);
    for (;;) {
      Slot& s = slot(pos);
      const std::uint64_t seq = s.seq.load(std::memory_order_acquire);  // pairs with the producer's release
      const auto diff = static_cast<std::int64_t>(seq - full_seq(pos));
      if (diff == 0) {
        if (head_.compare_exchange_weak(pos, pos + 1, std::memory_order_relaxed, std::memory_order_relaxed)) {
          T* v = s.value();
          if (stamp != nullptr) *stamp = s.stamp.load(std::memory_order_relaxed);
          out = std::move(*v);
          v->~T();
          // pairs with the producer's acquire load
          s.seq.store(free_seq(pos + capacity_), std::memory_order_release);
          return true;
        }
      } else if (diff < 0) {
        return false;
      } else {
        pos = head_.load(std::memory_order_relaxed);
      }
    }
  }

  /// The stamp of the value at the head, if one is published there. A hint: it may be gone by the time
  /// the caller tries to pop it.
  std::optional<std::uint64_t> peek_stamp() const noexcept {
    const std::uint64_t pos = head_.load(std::memory_order_relaxed);
    const Slot& s = slot(pos);
    if (s.seq.load(std::memory_order_acquire) != full_seq(pos)) return std::nullopt;
    return s.stamp.load(std::memory_order_relaxed);
  }

  /// True when something is published at the head (a hint, like peek_stamp()).
  bool has_ready() const noexcept {
    const std::uint64_t pos = head_.load(std::memory_order_relaxed);
    return slot(pos).seq.load(std::memory_order_acquire) == full_seq(pos);
  }

  /// Stops all further pushes (they return closed). Idempotent. Returns true for the call that closed it.
  bool close() noexcept { return (tail_.fetch_or(kClosed, std::memory_order_acq_rel) & kClosed) == 0; }

  bool closed() const noexcept { return (tail_.load(std::memory_order_acquire) & kClosed) != 0; }

  /// Closed, and every value pushed before the close has been popped.
  bool drained() const noexcept {
    const std::uint64_t tail = tail_.load(std::memory_order_acquire);
    return (tail & kClosed) != 0 && head_.load(std::memory_order_acquire) == (tail & ~kClosed);
  }

  /// Values pushed and not yet popped (claimed positions included). Approximate under concurrency.
  std::size_t size() const noexcept {
    const std::uint64_t head = head_.load(std::memory_order_acquire);
    const std::uint64_t tail = tail_.load(std::memory_order_acquire) & ~kClosed;
    return tail > head ? static_cast<std::size_t>(tail - head) : 0;
  }

 private:
  static bool is_pow2(std::size_t n) noexcept { return n != 0 && (n & (n - 1)) == 0; }
  // Slot sequence values (see the top of the file): even = free for position p, odd = holds p's value.
  static constexpr std::uint64_t free_seq(std::uint64_t pos) noexcept { return 2 * pos; }
  static constexpr std::uint64_t full_seq(std::uint64_t pos) noexcept { return 2 * pos + 1; }

  static std::unique_ptr<Slot[]> make_slots(std::size_t capacity) {
    if (capacity == 0) throw std::invalid_argument("weft: a ring needs a capacity of at least 1");
    std::unique_ptr<Slot[]> slots(new Slot[capacity]);
    for (std::size_t i = 0; i < capacity; ++i) {
      slots[i].seq.store(free_seq(i), std::memory_order_relaxed);
      slots[i].stamp.store(0, std::memory_order_relaxed);
    }
    return slots;
  }

  Slot& slot(std::uint64_t pos) const noexcept {
    return slots_[mask_ != 0 || capacity_ == 1 ? (pos & mask_) : (pos % capacity_)];
  }

  const std::size_t capacity_;
  const std::size_t mask_;  // capacity - 1 for powers of two, else 0 (then pos % capacity)
  std::unique_ptr<Slot[]> slots_;
  alignas(64) std::atomic<std::uint64_t> tail_{0};  // next position to push; bit 63: closed
  alignas(64) std::atomic<std::uint64_t> head_{0};  // next position to pop
};

}  // namespace weft::detail
