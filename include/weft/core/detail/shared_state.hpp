// weft/core/detail/shared_state.hpp — the state a Promise and its Future share.
//
// Protocol (one 32-bit atomic word, `state_`, is both the phase and the futex the waiters sleep on):
//  1. A state starts kPending with two references (promise + future).
//  2. An executor calls try_start() (kPending → kRunning) right before it runs the task. cancel() succeeds
//     only from kPending (kPending → kReady|kHasException|kCancelled, with a Cancelled exception stored), so
//     exactly one of "the task runs" and "the future is cancelled" happens.
//  3. The producer claims the state (kPending or kRunning → kSetting, a CAS), writes the value or the
//     exception (plain writes: nobody else touches them while kSetting), then publishes with a release
//     fetch_or to kReady. A claim that finds the state cancelled drops the value: the consumer said it no
//     longer wants it. A claim that finds it ready otherwise is a second set: FutureError.
//  4. A waiter spins briefly, then sets kWaiters (CAS against the phase it saw) and futex-waits on the word.
//     The publisher's fetch_or changes the word, so a waiter that set kWaiters either sleeps and is woken by
//     the publisher (who sees kWaiters in the fetch_or's result) or finds the word changed and does not sleep.
//  5. Done-callbacks live in a lock-free stack (`callbacks_`). After publishing, the publisher swaps in the
//     kClosed sentinel and runs what it took, oldest first. add_callback() that meets kClosed runs the callback
//     at once: the acquire load of kClosed pairs with the publisher's exchange, which follows its release of
//     kReady, so such a callback sees the value.
//  6. References are counted (`refs_`); the last release deletes the state. A Promise destroyed without a value
//     sets BrokenPromise, so every state becomes ready and every callback runs exactly once.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <exception>
#include <new>
#include <type_traits>
#include <utility>

#include "weft/core/detail/futex.hpp"
#include "weft/core/detail/wait_hook.hpp"
#include "weft/core/errors.hpp"
#include "weft/core/function.hpp"

namespace weft::detail {

using Deadline = std::chrono::steady_clock::time_point;

class StateBase {
 public:
  // Phase, in the low two bits. The phase only moves forward: pending → running → setting → ready.
  static constexpr std::uint32_t kPhaseMask = 0b11;
  static constexpr std::uint32_t kPending = 0;
  static constexpr std::uint32_t kRunning = 1;
  static constexpr std::uint32_t kSetting = 2;
  static constexpr std::uint32_t kReady = 3;
  // Set together with kReady, never unset.
  static constexpr std::uint32_t kHasException = 1u << 2;
  static constexpr std::uint32_t kCancelled = 1u << 3;  // set on entering kSetting by cancel(); with kReady it
                                                         // comes with kHasException (a Cancelled is stored)
  // Some thread is blocked (or about to block) in futex_wait; only the publisher acts on it.
  static constexpr std::uint32_t kWaiters = 1u << 4;
  static_assert((kSetting | 1u) == kReady, "publishing is a fetch_or of bit 0 onto kSetting");

  StateBase() = default;
  StateBase(const StateBase&) = delete;
  StateBase& operator=(const StateBase&) = delete;

  bool ready() const noexcept { return (state_.load(std::memory_order_acquire) & kPhaseMask) == kReady; }
  bool cancelled() const noexcept { return (state_.load(std::memory_order_acquire) & kCancelled) != 0; }
  bool has_exception() const noexcept { return (state_.load(std::memory_order_acquire) & kHasException) != 0; }

  /// kPending → kRunning. False when the state was cancelled (or already started / set): do not run the task.
  [[nodiscard]] bool try_start() noexcept {
    std::uint32_t s = state_.load(std::memory_order_relaxed);
    while ((s & kPhaseMask) == kPending) {
      if (state_.compare_exchange_weak(s, (s & ~kPhaseMask) | kRunning, std::memory_order_acq_rel,
                                       std::memory_order_relaxed)) {
        return true;
      }
    }
    return false;
  }

  /// Cancels a state that has not started. True when this call cancelled it.
  bool cancel() noexcept {
    std::uint32_t s = state_.load(std::memory_order_relaxed);
    do {
      if ((s & kPhaseMask) != kPending) return false;
      // kCancelled goes in with kSetting, so a producer racing to set a value sees it and drops the value
      // instead of reporting a double set.
    } while (!state_.compare_exchange_weak(s, (s & ~kPhaseMask) | kSetting | kCancelled, std::memory_order_acq_rel,
                                           std::memory_order_relaxed));
    exception_ = std::make_exception_ptr(Cancelled());
    publish(kHasException | kCancelled);
    return true;
  }

  /// Blocks until ready (helping through the thread's WaitHook when there is one). Returns ready().
  bool wait_until(const Deadline* deadline) {
    if (ready()) return true;
    // A helper does its own spinning (and useful work meanwhile); a thread with a WaitHook keeps using it.
    WaitHelper* helper = helper_.load(std::memory_order_acquire);
    if (helper != nullptr && current_wait_hook() == nullptr) return helper->help(*this, deadline);
    for (int i = 0; i < kSpinRounds; ++i) {
      cpu_relax();
      if (ready()) return true;
    }
    if (WaitHook* hook = current_wait_hook()) return hook->wait(*this, deadline);
    return block_until(deadline);
  }

  /// Names the helper a waiter without a WaitHook calls (see WaitHelper). Set by the producer before it
  /// hands out the future; the release pairs with the waiter's acquire.
  void set_helper(WaitHelper* helper) noexcept { helper_.store(helper, std::memory_order_release); }

  /// Blocks the thread on the futex until ready or the deadline; never helps. Returns ready().
  bool block_until(const Deadline* deadline) noexcept {
    std::uint32_t s = state_.load(std::memory_order_acquire);
    while ((s & kPhaseMask) != kReady) {
      if ((s & kWaiters) == 0 &&
          !state_.compare_exchange_weak(s, s | kWaiters, std::memory_order_acquire, std::memory_order_acquire)) {
        continue;  // s was reloaded
      }
      if (!futex_wait(state_, s | kWaiters, deadline)) return ready();
      s = state_.load(std::memory_order_acquire);
    }
    return true;
  }

  /// Runs `fn` once the state is ready: now, on this thread, if it already is; otherwise on the thread that
  /// makes it ready. An exception from `fn` goes to the unhandled-exception handler.
  void add_callback(UniqueFunction<void()> fn) {
    auto* node = new CallbackNode{nullptr, std::move(fn)};
    CallbackNode* head = callbacks_.load(std::memory_order_acquire);
    do {
      if (head == closed()) {
        run_callback(node);
        return;
      }
      node->next = head;
    } while (!callbacks_.compare_exchange_weak(head, node, std::memory_order_release, std::memory_order_acquire));
  }

  /// The stored exception; meaningful only once ready() and has_exception().
  const std::exception_ptr& exception() const noexcept { return exception_; }

  void add_ref() noexcept { refs_.fetch_add(1, std::memory_order_relaxed); }
  void release() noexcept {
    // acq_rel: the deleting thread must see every write the other owners made before they released.
    if (refs_.fetch_sub(1, std::memory_order_acq_rel) == 1) delete this;
  }

  /// Sets the exception. False when the state was cancelled (the exception is dropped: nobody wants it).
  /// Throws FutureError when the state was already set.
  bool set_exception(std::exception_ptr e) {
    if (!claim()) return false;
    exception_ = std::move(e);
    publish(kHasException);
    return true;
  }

 protected:
  virtual ~StateBase() {
    CallbackNode* head = callbacks_.load(std::memory_order_relaxed);
    while (head != nullptr && head != closed()) {  // only when never published, which Promise prevents
      CallbackNode* next = head->next;
      delete head;
      head = next;
    }
  }

  /// kPending/kRunning → kSetting. False when cancelled; throws FutureError when already set.
  bool claim() {
    std::uint32_t s = state_.load(std::memory_order_relaxed);
    for (;;) {
      const std::uint32_t phase = s & kPhaseMask;
      if (phase == kReady || phase == kSetting) {
        if ((s & kCancelled) != 0) return false;
        throw FutureError("weft: the promise was already satisfied");
      }
      if (state_.compare_exchange_weak(s, (s & ~kPhaseMask) | kSetting, std::memory_order_acquire,
                                       std::memory_order_relaxed)) {
        return true;
      }
    }
  }

  /// kSetting → kReady|flags; wakes waiters; runs the callbacks.
  void publish(std::uint32_t flags) noexcept {
    // release: pairs with the acquire loads in ready()/block_until(), so they see the value or exception.
    const std::uint32_t prev = state_.fetch_or(1u | flags, std::memory_order_acq_rel);
    if ((prev & kWaiters) != 0) futex_wake(state_, 0x7fffffff);
    CallbackNode* list = callbacks_.exchange(closed(), std::memory_order_acq_rel);
    CallbackNode* fifo = nullptr;  // the stack holds newest first; run oldest first
    while (list != nullptr) {
      CallbackNode* next = list->next;
      list->next = fifo;
      fifo = list;
      list = next;
    }
    while (fifo != nullptr) {
      CallbackNode* next = fifo->next;
      run_callback(fifo);
      fifo = next;
    }
  }

  bool value_present() const noexcept {
    const std::uint32_t s = state_.load(std::memory_order_acquire);
    return (s & kPhaseMask) == kReady && (s & kHasException) == 0;
  }

  std::exception_ptr exception_;

 private:
  struct CallbackNode {
    CallbackNode* next;
    UniqueFunction<void()> fn;
  };
  static CallbackNode* closed() noexcept { return reinterpret_cast<CallbackNode*>(std::uintptr_t{1}); }

  static void run_callback(CallbackNode* node) noexcept {
    try {
      node->fn();
    } catch (...) {
      report_unhandled_exception(std::current_exception(), "a future's done-callback");
    }
    delete node;
  }

  static constexpr int kSpinRounds = 256;

  std::atomic<std::uint32_t> state_{kPending};
  std::atomic<std::uint32_t> refs_{2};
  std::atomic<WaitHelper*> helper_{nullptr};
  std::atomic<CallbackNode*> callbacks_{nullptr};
};

template <class T>
class SharedState final : public StateBase {
 public:
  SharedState() {}
  ~SharedState() override {
    if constexpr (!std::is_void_v<T>) {
      if (value_present()) value_.~T();
    }
  }

  /// Stores the value. False when cancelled (value dropped); FutureError when already set.
  template <class... A>
  bool set_value(A&&... args) {
    if (!claim()) return false;
    if constexpr (!std::is_void_v<T>) {
      try {
        ::new (static_cast<void*>(std::addressof(value_))) T(std::forward<A>(args)...);
      } catch (...) {
        exception_ = std::current_exception();
        publish(kHasException);
        return true;
      }
    }
    publish(0);
    return true;
  }

  /// Runs f(args...) and stores its result or its exception. False when cancelled.
  template <class F, class... A>
  bool set_from(F&& f, A&&... args) {
    if constexpr (std::is_void_v<T>) {
      try {
        std::invoke(std::forward<F>(f), std::forward<A>(args)...);
      } catch (...) {
        return set_exception(std::current_exception());
      }
      return set_value();
    } else {
      // `returned` tells an exception from f apart from one of set_value (a second set: FutureError).
      bool returned = false;
      auto mark = [&returned]<class U>(U&& u) -> U&& {
        returned = true;
        return std::forward<U>(u);
      };
      try {
        return set_value(mark(std::invoke(std::forward<F>(f), std::forward<A>(args)...)));
      } catch (...) {
        if (returned) throw;
        return set_exception(std::current_exception());
      }
    }
  }

  /// After ready(): rethrows the exception, or moves the value out.
  T take() {
    if (has_exception()) std::rethrow_exception(exception_);
    if constexpr (!std::is_void_v<T>) return std::move(value_);
  }

 private:
  struct Empty {};
  union {
    std::conditional_t<std::is_void_v<T>, Empty, T> value_;
  };
};

}  // namespace weft::detail
