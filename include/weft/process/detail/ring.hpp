// weft/process/detail/ring.hpp — a bounded multi-producer multi-consumer ring of variable-size messages in
// memory shared between processes, with spin-then-futex waiting. Queue and ProcessPool are built on it.
//
// Layout (one mapping; offsets fixed at creation, checked on attach):
//   RingHeader  (counters, each on its own cache line)
//   Meta[N]     per slot: the turn word, and for a message's first slot its length and slot count
//   data[N*64]  the bytes; a message of L bytes takes max(1, ceil(L/64)) consecutive slots, so it is
//               contiguous except where it wraps past the end (then it is copied in two pieces)
//
// Protocol (tickets, after Vyukov's bounded MPMC queue, generalised to messages that span slots):
//  1. Position p (a 64-bit ticket that never wraps) lives in slot p % N. Slot i starts with turn = i.
//     turn == p       : the slot is free for the message at position p (or holds part of a message that
//                       started at an earlier position: only a message's first slot is ever published);
//     turn == p + 1   : the message that starts at p is published (its bytes, length and count are readable);
//     consumed        : the consumer stores turn = p + N in every slot of the message, freeing them for the
//                       next lap.
//  2. put: a producer that needs k slots reads tail t and the consumers' head h; if t + k - h > N the ring is
//     full. Consumers claim before they copy, so a slot below head may still be being read: the producer
//     also checks turn == p for each slot of [t, t+k) (acquire) and otherwise treats the ring as full. A free
//     slot stays free until its position is claimed, so after claiming [t, t+k) by CAS on tail it owns them
//     without waiting. It copies the bytes, stores the first slot's length and count, and publishes the first
//     slot's turn = p + 1 (release; pairs with the consumer's acquire). The other slots are not published:
//     head moves from a message's first slot to the next message's, so no consumer looks at them.
//  3. get: a consumer reads head h and the turn of slot h. turn == h + 1 means a message starts there and,
//     the first slot being published last, is complete: it reads the message's count k and claims [h, h+k)
//     by CAS on head. (If the CAS succeeds nobody else claimed h, so the count it read belongs to this
//     message: slots are reused only after their consumer frees them.) It copies, then frees each slot
//     (turn = p + N, release). Neither side ever waits for another mid-operation.
//  4. Sleeping: a consumer that found the ring empty spins a while (50 µs plus the time its peer needs to
//     copy a message of the size it waits for, at most 1 ms; yielding now and then: on a
//     machine with more runnable threads than CPUs the producer may need this CPU), then increments
//     consumers_waiting, re-checks, and futex-waits on items (process-shared futex). A producer, after
//     publishing, issues a seq_cst fence and reads consumers_waiting; if nonzero it bumps items and wakes
//     one. The fence and the waiter's seq_cst increment form a Dekker pair: either the producer sees the
//     waiter, or the waiter's re-check sees the message. Producers waiting for space mirror this on space.
//  5. close(): sets closed, bumps both futex words and wakes everyone. put after close throws
//     ChannelClosed; get drains what is left, then throws ChannelClosed.
//  Hazard: a process killed between claiming and publishing (or claiming and freeing) leaves that slot
//  stuck: the ring looks empty (or full) from there on, and later operations wait until their timeout (then
//  Timeout); nobody spins on it forever. Only kill processes that use a ring when the ring is discarded.
#pragma once

#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

namespace weft::process::detail {

inline constexpr std::size_t kRingSlotBytes = 64;

struct alignas(64) RingHeader {
  std::uint64_t magic;
  std::uint64_t slots;        // N, a power of two
  std::uint64_t max_message;  // bytes
  alignas(64) std::atomic<std::uint64_t> tail;
  alignas(64) std::atomic<std::uint64_t> head;
  alignas(64) std::atomic<std::uint32_t> items;  // futex: bumped when a message is published to a waiter
  std::atomic<std::uint32_t> consumers_waiting;
  alignas(64) std::atomic<std::uint32_t> space;  // futex: bumped when slots are freed for a waiter
  std::atomic<std::uint32_t> producers_waiting;
  alignas(64) std::atomic<std::uint32_t> closed;
};

struct RingMeta {
  std::atomic<std::uint64_t> turn;
  // First slot of a message: its length in bytes and how many slots it takes. Atomic (relaxed) because a
  // consumer may read them while a producer of a later lap writes them; such a read is discarded (step 3).
  std::atomic<std::uint32_t> length;
  std::atomic<std::uint32_t> count;
};

/// A view of a ring in mapped memory (the mapping is owned elsewhere). Cheap to copy.
class Ring {
 public:
  /// Bytes a ring with `slots` slots (a power of two) needs.
  static std::size_t bytes_for(std::size_t slots) noexcept;
  /// Builds an empty ring in `memory` (bytes_for(slots) bytes, 64-byte aligned, zeroed or not).
  static Ring create(void* memory, std::size_t slots, std::size_t max_message) noexcept;
  /// Checks the header of a ring another process built in `memory` of `size` bytes.
  /// Throws ProtocolError when it is not one.
  static Ring attach(void* memory, std::size_t size);

  Ring() = default;

  /// Puts one message. Blocks (spin, then futex) while the ring is full, until `deadline` (null: forever).
  /// Returns false when the deadline passed (nothing put). Throws ChannelClosed, MessageTooLarge.
  bool put(std::string_view message, const std::chrono::steady_clock::time_point* deadline);
  /// Takes one message into `out` (replacing its contents). Blocks while empty until `deadline`.
  /// Returns false when the deadline passed. Throws ChannelClosed once closed and empty.
  bool get(std::string& out, const std::chrono::steady_clock::time_point* deadline);

  /// Non-blocking forms: true when done.
  bool try_put(std::string_view message);
  bool try_get(std::string& out);

  void close() noexcept;
  bool closed() const noexcept;
  std::size_t max_message() const noexcept { return static_cast<std::size_t>(h_->max_message); }
  std::size_t capacity_bytes() const noexcept { return n_ * kRingSlotBytes; }
  /// Messages' slots in use now (claimed by producers, not yet freed by consumers); approximate.
  std::size_t used_slots() const noexcept;

 private:
  enum class Try { done, empty_or_full, retry };
  Try try_put_once(std::string_view message, std::uint64_t k);
  Try try_get_once(std::string& out);
  void wake_consumers() noexcept;
  void wake_producers() noexcept;

  RingHeader* h_ = nullptr;
  RingMeta* meta_ = nullptr;
  char* data_ = nullptr;
  std::uint64_t n_ = 0;
};

}  // namespace weft::process::detail
