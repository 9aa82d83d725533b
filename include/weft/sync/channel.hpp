// weft/sync/channel.hpp — Channel<T>: a bounded, closable multi-producer multi-consumer queue for passing
// messages between threads (Go's channels; Python's queue.Queue with shutdown).
//
// Parts: ring_ is a detail::MpmcRing (Vyukov's bounded queue; bit 63 of its tail counter is the close bit);
// receivers_ holds the receivers asleep on "not empty", senders_ the senders asleep on "not full"
// (detail::ChannelSleepers, below: a sleeper is woken once per notify, never twice).
//
// Protocol
//  1. Send: push into the ring. ok → step 2. closed → throw ChannelClosed. full → spin (step 5), then sleep
//     on senders_ (step 6) with "the push succeeded or failed with closed" as the condition.
//  2. After a push: one seq_cst fence, then
//     a. if receivers_ has a sleeper not yet notified, notify_one() (a value can feed one receiver only);
//     b. if senders_ has one and size() < capacity(), notify_one() on senders_: the chained wake of step 8.
//     With nobody asleep this costs the fence and two loads of read-mostly cache lines.
//  3. Receive: pop from the ring. A value → step 4. Nothing: if the ring is drained (closed, and every
//     claimed position popped) → nullopt; else spin (step 5), then sleep on receivers_ (step 6) with "a
//     value was popped, or the ring is drained" as the condition.
//  4. After a pop: one seq_cst fence, then
//     a. if senders_ has a sleeper not yet notified, notify_one() (a slot was freed);
//     b. if receivers_ has one: notify_one() when another value is ready at the head (chained wake, step 8);
//        else notify_all() when the ring is now drained (step 7).
//  5. Spin: kPauseRounds retries with 1, 2, 4, 8, 16 cpu_relax() before them (31 pauses, 1-3 µs), then
//     kYieldRounds retries with a std::this_thread::yield() before each. Waking a sleeping thread costs
//     tens of microseconds on a virtual machine, and the other side usually makes room (or brings a value)
//     sooner than that, so the spin saves both the sleep and the other side's wake call. The growing gaps
//     keep a spinning thread from pulling the slot's cache line away from the thread about to write it.
//     The yields matter when threads outnumber CPUs (or the scheduler puts sender and receiver on one
//     CPU): the thread we wait for is then runnable but not running, and a yield lets it run at once,
//     where pausing would burn the CPU it needs. On an idle CPU a yield returns at once. Measured on a
//     2-CPU virtual machine, 1 producer and 1 consumer, as the median of 7-9 runs against moodycamel in
//     the same runs: 64 rounds of one pause reached 0.4-0.8x its throughput, longer spins less, this
//     schedule 1.2-1.7x.
//  6. Sleep: enter() (registers, seq_cst fence); retry the operation and re-check the condition; if it
//     holds, or the deadline passed, leave(); else sleep(deadline) and go to 6. A sleeper always retries
//     after waking, even past its deadline, so a wake that chose it is never wasted while it gives up.
//  7. Close: ring_.close() sets the close bit (fetch_or on the tail counter), then notify_all() on both
//     sides. Sleeping senders wake, retry, see the bit and throw ChannelClosed. Sleeping receivers wake,
//     keep popping, and return nullopt only once the ring is drained. A sender that claimed its position
//     before the close may publish it after close() returned; its step 2a wakes a receiver, and whoever
//     pops the last value sees the ring drained and wakes every other receiver (step 4b).
//  8. Chained wakes. The ring's head (or tail) slot can be claimed by one thread and not yet finished when
//     another thread finishes the next slot and notifies. The woken receiver then finds the head slot not
//     yet published and sleeps again; when the head value arrives, its notify_one() wakes one receiver,
//     and without step 4b the value behind it would sit in the ring with receivers asleep. Likewise for
//     senders and step 2b (size() < capacity() holds whenever the tail slot is free; when it is a false
//     alarm, the receiver still freeing that slot notifies again in step 4a).
//
// Why no value is lost at close: a send claims its position with a CAS on the ring's tail counter that
// expects the close bit clear, and close() is a fetch_or on the same word. Modifications of one atomic are
// totally ordered, so each send either claimed a position before the close — then the value is published
// and drained() stays false until it has been popped — or fails with closed and throws. A receiver returns
// nullopt (closed and drained) only after drained() saw head == tail with the close bit set, that is,
// after every claimed position was popped.
//
// Why no wake-up is lost: every event that can make a sleeper's condition true (a push or pop in steps 2/4,
// the close in step 7) is followed by a seq_cst fence and a has_sleepers() check; every sleeper registers
// and runs a seq_cst fence before it re-checks. The two fences are totally ordered, so either the
// sleeper's re-check sees the event, or the event's thread sees the registration and wakes a sleeper
// (Dekker's pattern, as in event_count.hpp).
//
// Why not EventCount: it counts a waiter until the woken thread has run again, so every send or receive in
// that window (tens of microseconds here) sees "a waiter" and pays another futex_wake system call. With
// two producers and two consumers on two CPUs that was two system calls per message and 1 M messages/s.
// ChannelSleepers hands each notify to one registration, so each sleep costs at most one wake call.
#pragma once

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <iterator>
#include <limits>
#include <new>
#include <optional>
#include <thread>
#include <type_traits>
#include <utility>

#include "weft/core/detail/deadline.hpp"
#include "weft/core/detail/futex.hpp"
#include "weft/core/errors.hpp"
#include "weft/sync/detail/mpmc_ring.hpp"

namespace weft {

namespace detail {

/// A seq_cst fence, for the Dekker handshakes between sleepers and notifiers. ThreadSanitizer does not
/// model fences (GCC says so with -Wtsan); nothing here needs it to: these fences order atomics only, and
/// every plain value travels through the ring's release/acquire pairs, which ThreadSanitizer does see.
inline void dekker_fence() noexcept {
#if defined(__SANITIZE_THREAD__) && defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wtsan"
#endif
  std::atomic_thread_fence(std::memory_order_seq_cst);
#if defined(__SANITIZE_THREAD__) && defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic pop
#endif
}

/// The threads asleep on one condition of a Channel ("not empty" or "not full"). Like EventCount, a
/// notifier that finds nobody registered pays one fence and one load; unlike it, each notify_one() claims
/// one registration and hands out one wake token, so a sleeper that was notified but has not run yet is
/// not notified again (see "Why not EventCount" above).
///
/// It is a counting semaphore whose signal only counts when somebody waits:
///  - registered_ is minus the number of registrations not yet claimed by a notifier (never positive);
///  - tokens_ is the number of wakes handed out and not yet taken, and the futex word sleepers block on.
/// Protocol:
///  1. Sleeper: enter() — registered_ -= 1, then a seq_cst fence (pairs with the notifier's fence: Dekker);
///     then re-check its condition.
///  2. Notifier: change the condition, seq_cst fence, has_sleepers() (registered_ < 0), then notify_one():
///     CAS registered_ one up (the claim), then tokens_ += 1 and futex_wake(1). notify_all() claims all.
///  3. Sleeper whose condition held: leave() — withdraw one registration with a CAS while registered_ < 0;
///     if it is not negative, every registration (ours included) has been claimed, and the claim's token
///     is (or is about to be) added: take it, so the counts stay equal.
///  4. Sleeper whose condition did not hold: sleep() — take a token, blocking on tokens_ while it is 0. On
///     timeout, withdraw as in step 3 (or take the token that is on its way) and report the timeout.
/// Registrations are anonymous: each one is settled exactly once, by a withdrawal or by one token, and
/// every claim adds exactly one token, so a token is never left untaken while a sleeper blocks on 0.
class ChannelSleepers {
 public:
  using SteadyTime = std::chrono::steady_clock::time_point;

  /// Step 1: registers the caller. Re-check the condition, then call leave() or sleep() exactly once.
  void enter() noexcept {
    registered_.fetch_sub(1, std::memory_order_relaxed);
    // Orders the registration before the caller's re-check of its condition: pairs with the fence a
    // notifier runs between changing the condition and calling has_sleepers().
    detail::dekker_fence();
  }

  /// Step 3: the condition held after enter(); settles the registration without sleeping. May wait for a
  /// notifier that has claimed it to add its token (a few instructions away).
  void leave() noexcept {
    if (!withdraw()) (void)take_token(nullptr);
  }

  /// Step 4: sleeps until a token is taken (true) or the deadline passes (false). Either way the
  /// registration is settled: re-check the condition, and enter() again to sleep more.
  bool sleep(const SteadyTime* deadline) noexcept { return take_token(deadline); }

  /// True when some registration has not been claimed yet. Call after the seq_cst fence that follows the
  /// change of the condition.
  bool has_sleepers() const noexcept { return registered_.load(std::memory_order_relaxed) < 0; }

  /// Step 2: wakes one registered sleeper that has not been claimed yet, if there is one.
  void notify_one() noexcept { claim(1); }
  /// Step 2: wakes every registered sleeper.
  void notify_all() noexcept { claim(std::numeric_limits<std::int32_t>::max()); }

 private:
  // True when one registration was withdrawn; false when none is left unclaimed.
  bool withdraw() noexcept {
    std::int32_t r = registered_.load(std::memory_order_relaxed);
    while (r < 0) {
      // relaxed: only the count matters here; the condition is ordered by the fences of steps 1 and 2.
      if (registered_.compare_exchange_weak(r, r + 1, std::memory_order_relaxed)) return true;
    }
    return false;
  }

  void claim(std::int32_t most) noexcept {
    std::int32_t r = registered_.load(std::memory_order_relaxed);
    std::int32_t n = 0;
    do {
      if (r >= 0) return;  // nobody left to wake: every registration is claimed or withdrawn
      n = std::min(-r, most);
    } while (!registered_.compare_exchange_weak(r, r + n, std::memory_order_relaxed));
    // release: pairs with the acquire CAS in take_token(), so a woken sleeper's retry sees what this
    // thread did before notifying (the ring publishes its slots with its own release stores as well).
    tokens_.fetch_add(static_cast<std::uint32_t>(n), std::memory_order_release);
    futex_wake(tokens_, n);
  }

  bool take_token(const SteadyTime* deadline) noexcept {
    for (;;) {
      std::uint32_t t = tokens_.load(std::memory_order_acquire);
      while (t > 0) {
        if (tokens_.compare_exchange_weak(t, t - 1, std::memory_order_acquire)) return true;
      }
      if (!futex_wait(tokens_, 0, deadline)) {  // timed out
        if (withdraw()) return false;
        deadline = nullptr;  // claimed in the meantime: its token is on the way; take it
      }
    }
  }

  alignas(64) std::atomic<std::int32_t> registered_{0};
  std::atomic<std::uint32_t> tokens_{0};  // same line: both are written only on the sleeping path
};

/// The ring's element type for Channel<T>: an optional T whose construction from T and move assignment
/// are noexcept whenever T's move constructor is (the ring needs that: a claimed slot must be filled).
template <class T>
struct ChannelCell {
  std::optional<T> value;

  ChannelCell() noexcept = default;
  explicit ChannelCell(T&& v) noexcept : value(std::in_place, std::move(v)) {}
  ChannelCell(const ChannelCell&) = delete;
  ChannelCell& operator=(const ChannelCell&) = delete;
  /// Only used by MpmcRing::try_pop, which moves the slot into a fresh cell: construct, never assign T.
  ChannelCell& operator=(ChannelCell&& other) noexcept {
    value.reset();
    if (other.value) value.emplace(std::move(*other.value));
    return *this;
  }
  ~ChannelCell() = default;
};

/// Turns a deadline on any clock into a steady-clock one. Saturates: a deadline more than ~30 years away
/// (time_point::max(), duration::max()) means "no deadline" and yields std::nullopt.
template <class Rep, class Period>
std::optional<std::chrono::steady_clock::time_point> steady_deadline_after(
    const std::chrono::duration<Rep, Period>& d) {
  // Beyond about 30 years: no deadline at all (a plain blocking wait), rather than a far-away one.
  if (std::chrono::duration<double>(d).count() > 1e9) return std::nullopt;
  return deadline_after(d);
}

template <class Clock, class Duration>
std::optional<std::chrono::steady_clock::time_point> steady_deadline_at(
    const std::chrono::time_point<Clock, Duration>& tp) {
  const auto now = Clock::now();
  if (tp <= now) return std::chrono::steady_clock::now();  // also keeps tp - now from overflowing
  const auto left = tp - now;
  if constexpr (std::is_same_v<Clock, std::chrono::steady_clock>) {
    if (std::chrono::duration<double>(left).count() > 1e9) return std::nullopt;
    return std::chrono::ceil<std::chrono::steady_clock::duration>(tp);
  } else {
    // Another clock (system_clock): measured once; a later change of that clock does not move the deadline.
    return steady_deadline_after(left);
  }
}

}  // namespace detail

/// A bounded multi-producer multi-consumer channel of T values that can be closed.
///
/// Senders block while it is full, receivers while it is empty. close() ends the stream: later sends throw
/// weft::ChannelClosed; receivers still get every value sent before the close, then std::nullopt.
/// Every member function is thread-safe. The channel must outlive every call on it: destroying it while a
/// thread is blocked in send()/recv() (or iterating) is undefined behaviour. Values left in a channel are
/// destroyed with it.
///
/// Hazards: a sender and a receiver of the same channel on one thread deadlock once it is full/empty; a
/// bounded pool whose tasks block on a channel that only other queued tasks would feed deadlocks the same
/// way. Send and receive order is FIFO as the ring sees it: values from one sender reach one receiver in
/// the order they were sent; values spread over several receivers may be processed in any order.
template <class T>
class Channel {
  static_assert(std::is_object_v<T> && !std::is_const_v<T> && !std::is_array_v<T>,
                "weft::Channel<T>: T must be a non-const, non-array object type");
  static_assert(std::is_nothrow_move_constructible_v<T>,
                "weft::Channel<T>: T must be nothrow-move-constructible: once a sender has claimed a slot, "
                "receivers wait for it to be filled, so moving the value in must not fail");

  using Cell = detail::ChannelCell<T>;
  using Ring = detail::MpmcRing<Cell>;
  using SteadyTime = std::chrono::steady_clock::time_point;

 public:
  using value_type = T;
  class iterator;

  /// A channel holding at most `capacity` values. Throws std::invalid_argument when capacity is 0, and
  /// std::bad_alloc when the ring (one 64-byte-aligned slot per value) cannot be allocated.
  explicit Channel(std::size_t capacity) : ring_(capacity) {}

  Channel(const Channel&) = delete;
  Channel& operator=(const Channel&) = delete;

  /// Sends `v`, blocking while the channel is full. Thread-safe.
  /// Throws weft::ChannelClosed when the channel is closed, including when close() happens while this call
  /// is blocked; `v` is then destroyed (use try_send/send_for/send_until to keep it).
  void send(T v) { (void)send_impl(v, nullptr); }

  /// Sends `v` if there is room now; never blocks. Moves from `v` only when it returns true; returns false
  /// when the channel is full. Thread-safe. Throws weft::ChannelClosed when the channel is closed.
  [[nodiscard]] bool try_send(T& v) {
    switch (ring_.try_emplace(0, std::move(v))) {
      case detail::PushResult::ok:
        after_push();
        return true;
      case detail::PushResult::closed:
        throw ChannelClosed();
      case detail::PushResult::full:
        break;
    }
    return false;
  }
  /// As try_send(T&); a failed call leaves the argument's object untouched.
  [[nodiscard]] bool try_send(T&& v) { return try_send(v); }

  /// Sends `v`, blocking while the channel is full for at most `timeout`. Moves from `v` only when it
  /// returns true; false when the time ran out. Thread-safe. Throws weft::ChannelClosed when the channel is
  /// closed (before or during the wait). May return a few microseconds after the timeout (spin phase).
  template <class Rep, class Period>
  [[nodiscard]] bool send_for(T& v, const std::chrono::duration<Rep, Period>& timeout) {
    const auto deadline = detail::steady_deadline_after(timeout);
    return send_impl(v, deadline ? &*deadline : nullptr);
  }
  template <class Rep, class Period>
  [[nodiscard]] bool send_for(T&& v, const std::chrono::duration<Rep, Period>& timeout) {
    return send_for(v, timeout);
  }

  /// As send_for(), with an absolute deadline. A deadline on another clock than steady_clock is converted
  /// once, at the call. Thread-safe. Throws weft::ChannelClosed when the channel is closed.
  template <class Clock, class Duration>
  [[nodiscard]] bool send_until(T& v, const std::chrono::time_point<Clock, Duration>& deadline) {
    const auto steady = detail::steady_deadline_at(deadline);
    return send_impl(v, steady ? &*steady : nullptr);
  }
  template <class Clock, class Duration>
  [[nodiscard]] bool send_until(T&& v, const std::chrono::time_point<Clock, Duration>& deadline) {
    return send_until(v, deadline);
  }

  /// Receives the oldest value, blocking while the channel is empty. Returns std::nullopt once the channel
  /// is closed and every value sent before the close has been received. Thread-safe; does not throw.
  [[nodiscard]] std::optional<T> recv() noexcept {
    Received r;
    if (!recv_impl(r, nullptr)) return std::nullopt;
    return r.take();
  }

  /// Receives a value if one is ready now; never blocks. std::nullopt when there is none (closed() tells
  /// "empty for now" from "closed and drained"). Thread-safe; does not throw.
  /// Hazard: a value whose sender has claimed its slot but not finished writing it is not "ready"; nullopt
  /// then does not prove the channel empty.
  [[nodiscard]] std::optional<T> try_recv() noexcept {
    Received r;
    if (!pop_into(r)) return std::nullopt;
    after_pop();
    return r.take();
  }

  /// Receives a value, blocking for at most `timeout`. std::nullopt when the time ran out or the channel is
  /// closed and drained; closed() tells them apart. Thread-safe; does not throw. May return a few
  /// microseconds after the timeout (spin phase).
  template <class Rep, class Period>
  [[nodiscard]] std::optional<T> recv_for(const std::chrono::duration<Rep, Period>& timeout) {
    const auto deadline = detail::steady_deadline_after(timeout);
    Received r;
    if (!recv_impl(r, deadline ? &*deadline : nullptr)) return std::nullopt;
    return r.take();
  }

  /// As recv_for(), with an absolute deadline (converted once to steady_clock when on another clock).
  template <class Clock, class Duration>
  [[nodiscard]] std::optional<T> recv_until(const std::chrono::time_point<Clock, Duration>& deadline) {
    const auto steady = detail::steady_deadline_at(deadline);
    Received r;
    if (!recv_impl(r, steady ? &*steady : nullptr)) return std::nullopt;
    return r.take();
  }

  /// Closes the channel: every later send throws weft::ChannelClosed, blocked senders wake and throw,
  /// blocked receivers wake, receive what is left, then get std::nullopt. Idempotent; thread-safe; noexcept.
  void close() noexcept {
    if (!ring_.close()) return;  // the first closer notifies; later calls have nothing to add
    // Orders the close bit's fetch_or before the loads of the registrations: pairs with the fence in every
    // sleeper's enter() (protocol step 7).
    detail::dekker_fence();
    senders_.notify_all();
    receivers_.notify_all();
  }

  /// True once close() has been called. Thread-safe.
  [[nodiscard]] bool closed() const noexcept { return ring_.closed(); }

  /// The number of values in the channel, including ones whose send is under way. Approximate while other
  /// threads send or receive. Thread-safe.
  [[nodiscard]] std::size_t size() const noexcept { return ring_.size(); }

  /// The capacity given at construction. Thread-safe.
  [[nodiscard]] std::size_t capacity() const noexcept { return ring_.capacity(); }

  /// Starts a range-for over received values: `for (T& v : channel)` calls recv() until the channel is
  /// closed and drained. begin() itself blocks for the first value. Several threads may iterate at once,
  /// each receiving a share of the values. Thread-safe.
  [[nodiscard]] iterator begin() { return iterator(this); }
  [[nodiscard]] std::default_sentinel_t end() const noexcept { return {}; }

 private:
  // Spin phase (protocol step 5): round r < kPauseRounds pauses 2^r times, later rounds yield.
  static constexpr int kPauseRounds = 5;
  static constexpr int kYieldRounds = 8;
  static constexpr int kSpinRounds = kPauseRounds + kYieldRounds;

  static void spin_pause(int round) noexcept {
    if (round < kPauseRounds) {
      for (int i = 0; i < (1 << round); ++i) detail::cpu_relax();
    } else {
      std::this_thread::yield();
    }
  }

  static bool past(const SteadyTime* deadline) noexcept {
    return deadline != nullptr && std::chrono::steady_clock::now() >= *deadline;
  }

  // Returns true when `v` was sent (moved from), false on timeout (`v` untouched); throws on closed.
  bool send_impl(T& v, const SteadyTime* deadline) {
    // Steps 1 and 5: the first attempt, then the spin.
    for (int round = 0;; ++round) {
      switch (ring_.try_emplace(0, std::move(v))) {
        case detail::PushResult::ok:
          after_push();
          return true;
        case detail::PushResult::closed:
          throw ChannelClosed();
        case detail::PushResult::full:
          break;
      }
      if (round == kSpinRounds || past(deadline)) break;  // an expired deadline makes it a try
      spin_pause(round);
    }
    // Step 6: sleep on senders_.
    for (;;) {
      senders_.enter();
      switch (ring_.try_emplace(0, std::move(v))) {
        case detail::PushResult::ok:
          senders_.leave();
          after_push();
          return true;
        case detail::PushResult::closed:
          senders_.leave();
          throw ChannelClosed();
        case detail::PushResult::full:
          break;
      }
      if (past(deadline)) {
        senders_.leave();
        return false;
      }
      (void)senders_.sleep(deadline);  // the retry above decides, whatever sleep() returned
    }
  }

  // Room for one received value; pop_into() constructs it, take() moves it out and ends its lifetime.
  // The receive paths wrap it in a std::optional only at the end, in the caller's inlined code, instead
  // of filling an optional and returning that: for an 8-byte T, GCC writes an optional with an 8-byte and
  // a 1-byte store and then copies it with one 16-byte load, which waits for both stores to retire (a
  // failed store-to-load forward). That was over half of the receiver's time in bench/channel; with this,
  // a send+recv pair on one thread went from 15-18 ns to 11-12 ns.
  union Received {
    T value;
    Received() noexcept {}
    ~Received() {}
    T take() noexcept {
      T v(std::move(value));
      value.~T();
      return v;
    }
  };

  // Pops one value into `out`. False when none is ready; `out` is then left unconstructed.
  bool pop_into(Received& out) noexcept {
    Cell cell;
    if (!ring_.try_pop(cell)) return false;
    ::new (static_cast<void*>(&out.value)) T(std::move(*cell.value));
    return true;
  }

  // True with a value constructed in `out`; false on timeout, or when the channel is closed and drained.
  bool recv_impl(Received& out, const SteadyTime* deadline) noexcept {
    // Steps 3 and 5: the first attempt, then the spin. drained() reads the tail counter, a line the senders
    // write, so the spin checks it once rather than on every round.
    for (int round = 0;; ++round) {
      if (pop_into(out)) {
        after_pop();
        return true;
      }
      if (round == 0 && ring_.drained()) return false;
      if (round == kSpinRounds || past(deadline)) break;  // an expired deadline makes it a try
      spin_pause(round);
    }
    // Step 6: sleep on receivers_.
    for (;;) {
      receivers_.enter();
      if (pop_into(out)) {
        receivers_.leave();
        after_pop();
        return true;
      }
      if (ring_.drained() || past(deadline)) {
        receivers_.leave();
        return false;
      }
      (void)receivers_.sleep(deadline);
    }
  }

  // Step 2.
  void after_push() noexcept {
    // Orders this push (the release store of the slot's sequence) before the loads of the registrations:
    // pairs with the seq_cst fence in a receiver's enter(), which orders its registration before its
    // re-check (Dekker). Without it, this thread could read "no receiver" while that receiver reads "empty".
    detail::dekker_fence();
    if (receivers_.has_sleepers()) receivers_.notify_one();
    // Step 8: pass the wake on if room is left, in case this sender took a wake meant for a free slot
    // behind one that was not freed yet.
    if (senders_.has_sleepers() && ring_.size() < ring_.capacity()) senders_.notify_one();
  }

  // Step 4.
  void after_pop() noexcept {
    // Orders this pop (the head CAS and the release store that frees the slot) before the loads of the
    // registrations and of the ring state: pairs with the seq_cst fence in the enter() of a sender or a
    // receiver about to sleep, and with the fence in close() (protocol step 7).
    detail::dekker_fence();
    if (senders_.has_sleepers()) senders_.notify_one();
    if (receivers_.has_sleepers()) {
      if (ring_.has_ready()) {
        receivers_.notify_one();  // step 8: a value is waiting behind the one just taken
      } else if (ring_.drained()) {
        receivers_.notify_all();  // step 7: the last value after close; every receiver may now return
      }
    }
  }

  Ring ring_;
  detail::ChannelSleepers receivers_;  // asleep on "a value is ready, or the channel is closed and drained"
  detail::ChannelSleepers senders_;    // asleep on "a slot is free, or the channel is closed"
};

/// Input iterator over a channel's received values: each increment calls recv(); equal to the sentinel
/// (std::default_sentinel) once recv() returned std::nullopt. Move-only when T is.
template <class T>
class Channel<T>::iterator {
 public:
  using iterator_concept = std::input_iterator_tag;
  using iterator_category = std::input_iterator_tag;
  using value_type = T;
  using difference_type = std::ptrdiff_t;
  using reference = T&;

  iterator() = default;

  /// The value received last. Precondition: not at the end.
  T& operator*() const noexcept { return *value_; }
  T* operator->() const noexcept { return &*value_; }

  /// Receives the next value (blocks; see Channel::recv()).
  iterator& operator++() noexcept {
    value_.reset();
    if (std::optional<T> next = channel_->recv()) value_.emplace(std::move(*next));  // T need not be assignable
    return *this;
  }
  void operator++(int) noexcept { ++*this; }

  friend bool operator==(const iterator& it, std::default_sentinel_t) noexcept { return !it.value_; }

 private:
  friend class Channel;
  explicit iterator(Channel* channel) noexcept : channel_(channel), value_(channel->recv()) {}

  Channel* channel_ = nullptr;
  mutable std::optional<T> value_;  // mutable: operator*() const hands out T&, as input iterators do
};

}  // namespace weft
