// The shared-memory ring; the protocol is at the top of weft/process/detail/ring.hpp.
#include "weft/process/detail/ring.hpp"

#include <sched.h>

#include <climits>
#include <cstring>
#include <new>

#include "weft/core/detail/futex.hpp"
#include "weft/core/errors.hpp"
#include "weft/process/errors.hpp"

namespace weft::process::detail {

namespace {
constexpr std::uint64_t kRingMagic = 0x57454654'52494e47ULL;  // "WEFTRING"
using Clock = std::chrono::steady_clock;
constexpr auto kSpinFor = std::chrono::microseconds(50);  // then sleep on the futex
constexpr auto kSpinForAtMost = std::chrono::microseconds(1000);

// How long to spin before sleeping when the other side has to copy `bytes` to let us go on: the base budget
// plus that copy at 2 GB/s (a slow copy), at most kSpinForAtMost. A side that sleeps while its peer is
// still copying makes the peer pay a wake-up (a system call, and the sleeper's CPU waking) per message,
// which for large messages costs more than the spin.
Clock::duration spin_for(std::size_t bytes) {
  const auto copy = std::chrono::nanoseconds(static_cast<std::int64_t>(bytes / 2));
  return std::min<Clock::duration>(kSpinFor + copy, kSpinForAtMost);
}

// The length of the last message this thread received: the size it will probably wait for next.
thread_local std::size_t last_get_length = 0;
constexpr std::size_t align64(std::size_t n) { return (n + 63) & ~std::size_t{63}; }

// Protocol step 4 for either side: spin (yielding now and then), then sleep on `word`, announced in `waiting`,
// until attempt() succeeds or the deadline passes. attempt() may throw (the ring was closed): the
// announcement is withdrawn on every way out of an iteration.
template <class Attempt>
bool wait_until_done(Attempt attempt, std::atomic<std::uint32_t>& word, std::atomic<std::uint32_t>& waiting,
                     const Clock::time_point* deadline, Clock::duration spin) {
  const auto spin_until = Clock::now() + spin;
  for (std::uint32_t round = 0;; ++round) {
    if (attempt()) return true;
    if (round < 64 || Clock::now() < spin_until) {
      if ((round & 15) != 0) {
        weft::detail::cpu_relax();
      } else {
        ::sched_yield();
      }
      continue;
    }
    const std::uint32_t seen = word.load(std::memory_order_acquire);
    waiting.fetch_add(1, std::memory_order_seq_cst);  // Dekker pair with the other side's fence (step 4)
    struct Withdraw {
      std::atomic<std::uint32_t>& w;
      ~Withdraw() { w.fetch_sub(1, std::memory_order_relaxed); }
    } withdraw{waiting};
    if (attempt()) return true;
    if (!weft::detail::futex_wait_shared(word, seen, deadline)) return attempt();
  }
}
}  // namespace

std::size_t Ring::bytes_for(std::size_t slots) noexcept {
  return align64(sizeof(RingHeader)) + align64(slots * sizeof(RingMeta)) + slots * kRingSlotBytes;
}

Ring Ring::create(void* memory, std::size_t slots, std::size_t max_message) noexcept {
  auto* h = new (memory) RingHeader{};
  h->magic = kRingMagic;
  h->slots = slots;
  h->max_message = max_message;
  h->tail.store(0, std::memory_order_relaxed);
  h->head.store(0, std::memory_order_relaxed);
  h->items.store(0, std::memory_order_relaxed);
  h->consumers_waiting.store(0, std::memory_order_relaxed);
  h->space.store(0, std::memory_order_relaxed);
  h->producers_waiting.store(0, std::memory_order_relaxed);
  h->closed.store(0, std::memory_order_relaxed);
  auto* meta = reinterpret_cast<RingMeta*>(static_cast<char*>(memory) + align64(sizeof(RingHeader)));
  for (std::size_t i = 0; i < slots; ++i) {
    auto* m = new (&meta[i]) RingMeta{};
    m->turn.store(i, std::memory_order_relaxed);
  }
  // Everything above is published to other processes by whatever hands them the ring (a descriptor sent
  // through a socket or the fork server: both are full barriers).
  std::atomic_thread_fence(std::memory_order_release);
  return attach(memory, bytes_for(slots));
}

Ring Ring::attach(void* memory, std::size_t size) {
  if (size < sizeof(RingHeader)) throw ProtocolError("weft: shared memory too small for a queue");
  auto* h = static_cast<RingHeader*>(memory);
  std::atomic_thread_fence(std::memory_order_acquire);
  if (h->magic != kRingMagic || h->slots == 0 || (h->slots & (h->slots - 1)) != 0 || bytes_for(h->slots) > size ||
      h->max_message > h->slots * kRingSlotBytes) {
    throw ProtocolError("weft: this shared memory does not hold a weft queue (bad header)");
  }
  Ring r;
  r.h_ = h;
  r.n_ = h->slots;
  r.meta_ = reinterpret_cast<RingMeta*>(static_cast<char*>(memory) + align64(sizeof(RingHeader)));
  r.data_ = static_cast<char*>(memory) + align64(sizeof(RingHeader)) + align64(r.n_ * sizeof(RingMeta));
  return r;
}

Ring::Try Ring::try_put_once(std::string_view message, std::uint64_t k) {
  std::uint64_t t = h_->tail.load(std::memory_order_relaxed);
  // acquire: pairs with the consumers' CAS on head, so the slots below head are claimed (their consumers
  // may still be copying: await_turn covers that).
  const std::uint64_t hd = h_->head.load(std::memory_order_acquire);
  if (static_cast<std::int64_t>(t + k - hd) > static_cast<std::int64_t>(n_)) {
    return t == h_->tail.load(std::memory_order_relaxed) ? Try::empty_or_full : Try::retry;
  }
  // Every slot of [t, t+k) must have been freed by the consumer of the previous lap (consumers claim before
  // they copy, so a slot below head may still be being read). acquire: pairs with the consumer's release
  // when it freed the slot, so its reads of the old bytes happen before our writes. A free slot stays free
  // until its position is claimed, and if the CAS below succeeds we are the claimer: no waiting afterwards.
  const std::uint64_t mask = n_ - 1;
  for (std::uint64_t j = 0; j < k; ++j) {
    if (meta_[(t + j) & mask].turn.load(std::memory_order_acquire) != t + j) {
      return t == h_->tail.load(std::memory_order_relaxed) ? Try::empty_or_full : Try::retry;
    }
  }
  if (!h_->tail.compare_exchange_weak(t, t + k, std::memory_order_relaxed, std::memory_order_relaxed)) return Try::retry;
  // The bytes: contiguous from slot t, wrapping once past the end.
  const std::size_t at = static_cast<std::size_t>(t & mask) * kRingSlotBytes;
  const std::size_t room = static_cast<std::size_t>(n_) * kRingSlotBytes - at;
  const std::size_t first = message.size() < room ? message.size() : room;
  std::memcpy(data_ + at, message.data(), first);
  if (first < message.size()) std::memcpy(data_, message.data() + first, message.size() - first);
  RingMeta& m = meta_[t & mask];
  m.length.store(static_cast<std::uint32_t>(message.size()), std::memory_order_relaxed);
  m.count.store(static_cast<std::uint32_t>(k), std::memory_order_relaxed);
  // Publish the first slot only: consumers look at a message's first slot alone (head moves from message to
  // message), and the other slots keep turn == their position until their consumer frees them. Release:
  // pairs with the consumer's acquire of turn (the bytes, length and count).
  m.turn.store(t + 1, std::memory_order_release);
  wake_consumers();
  return Try::done;
}

Ring::Try Ring::try_get_once(std::string& out) {
  std::uint64_t hd = h_->head.load(std::memory_order_relaxed);
  const std::uint64_t mask = n_ - 1;
  RingMeta& m = meta_[hd & mask];
  // acquire: pairs with the producer's release of the first slot's turn (its length, count and bytes).
  const std::uint64_t turn = m.turn.load(std::memory_order_acquire);
  if (turn != hd + 1) {
    return static_cast<std::int64_t>(turn - (hd + 1)) < 0 ? Try::empty_or_full : Try::retry;
  }
  const std::uint64_t k = m.count.load(std::memory_order_relaxed);
  const std::size_t len = m.length.load(std::memory_order_relaxed);
  // If this CAS succeeds nobody else claimed position hd, so the slot (freed only by its claimer) still holds
  // the message whose count and length were just read. A failed CAS discards them.
  if (!h_->head.compare_exchange_weak(hd, hd + k, std::memory_order_acq_rel, std::memory_order_relaxed)) {
    return Try::retry;
  }
  const std::size_t at = static_cast<std::size_t>(hd & mask) * kRingSlotBytes;
  const std::size_t room = static_cast<std::size_t>(n_) * kRingSlotBytes - at;
  const std::size_t first = len < room ? len : room;
  out.resize(len);
  std::memcpy(out.data(), data_ + at, first);
  if (first < len) std::memcpy(out.data() + first, data_, len - first);
  // Free the slots for the next lap. Release: pairs with the producer's acquire in await_turn, so our reads
  // of the bytes happen before its writes.
  for (std::uint64_t j = 0; j < k; ++j) meta_[(hd + j) & mask].turn.store(hd + j + n_, std::memory_order_release);
  wake_producers();
  return Try::done;
}

void Ring::wake_consumers() noexcept {
  // Dekker pair with the waiter's seq_cst increment of consumers_waiting (protocol step 4).
  std::atomic_thread_fence(std::memory_order_seq_cst);
  if (h_->consumers_waiting.load(std::memory_order_relaxed) != 0) {
    h_->items.fetch_add(1, std::memory_order_release);
    weft::detail::futex_wake_shared(h_->items, 1);
  }
}

void Ring::wake_producers() noexcept {
  std::atomic_thread_fence(std::memory_order_seq_cst);
  if (h_->producers_waiting.load(std::memory_order_relaxed) != 0) {
    h_->space.fetch_add(1, std::memory_order_release);
    weft::detail::futex_wake_shared(h_->space, INT_MAX);  // the freed slots may fit several producers
  }
}

bool Ring::try_put(std::string_view message) {
  if (message.size() > h_->max_message) throw MessageTooLarge(message.size(), static_cast<std::size_t>(h_->max_message));
  if (h_->closed.load(std::memory_order_acquire) != 0) throw weft::ChannelClosed("weft: the queue is closed");
  const std::uint64_t k = message.empty() ? 1 : (message.size() + kRingSlotBytes - 1) / kRingSlotBytes;
  for (;;) {
    Try r = try_put_once(message, k);
    if (r == Try::done) return true;
    if (r == Try::empty_or_full) return false;
  }
}

bool Ring::try_get(std::string& out) {
  for (;;) {
    Try r = try_get_once(out);
    if (r == Try::done) return true;
    if (r == Try::empty_or_full) {
      if (h_->closed.load(std::memory_order_acquire) != 0) {
        // Closed: a message published before the close may still be claimable.
        r = try_get_once(out);
        if (r == Try::done) return true;
        if (r == Try::retry) continue;
        throw weft::ChannelClosed("weft: the queue is closed and empty");
      }
      return false;
    }
  }
}

bool Ring::put(std::string_view message, const Clock::time_point* deadline) {
  return wait_until_done([&] { return try_put(message); }, h_->space, h_->producers_waiting, deadline,
                         spin_for(message.size()));
}

bool Ring::get(std::string& out, const Clock::time_point* deadline) {
  const bool got = wait_until_done([&] { return try_get(out); }, h_->items, h_->consumers_waiting, deadline,
                                   spin_for(last_get_length));
  if (got) last_get_length = out.size();
  return got;
}

void Ring::close() noexcept {
  h_->closed.store(1, std::memory_order_release);
  h_->items.fetch_add(1, std::memory_order_release);
  h_->space.fetch_add(1, std::memory_order_release);
  weft::detail::futex_wake_shared(h_->items, INT_MAX);
  weft::detail::futex_wake_shared(h_->space, INT_MAX);
}

bool Ring::closed() const noexcept { return h_->closed.load(std::memory_order_acquire) != 0; }

std::size_t Ring::used_slots() const noexcept {
  const std::uint64_t t = h_->tail.load(std::memory_order_relaxed);
  const std::uint64_t hd = h_->head.load(std::memory_order_relaxed);
  return t > hd ? static_cast<std::size_t>(t - hd) : 0;
}

}  // namespace weft::process::detail
