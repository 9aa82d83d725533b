#pragma once
// Synchronisation between the tasks of one event loop (asyncio.Event, Semaphore, Lock and Queue): Event,
// Semaphore (with SemaphoreGuard), Lock (with LockGuard) and the bounded Queue<T>.
//
// A waiting task suspends only itself, never the loop. Every primitive keeps its waiters in an intrusive FIFO
// list whose nodes live in the awaiters, that is in the suspended coroutines' frames: waiting allocates nothing.
//
// Protocol of every waiting operation (detail::SyncWaiter and detail::WaitList carry steps 1 and 3-5):
//  1. await_suspend looks at the task's stop state first: a task whose scope is already stopping throws
//     weft::Cancelled at once, even when the primitive could grant at once (stop_state.hpp, step 3), so a
//     loop of awaits on a primitive always notices a cancellation.
//  2. Fast path: when the primitive can grant now and nobody is queued, the awaiter takes what it wants
//     without suspending. A newcomer never overtakes a queued waiter.
//  3. Slow path: the awaiter appends its node to the primitive's wait list, links a StopHook into the task's
//     stop state and suspends.
//  4. Grant: set(), release(), unlock(), put(), get() or close() pops the first waiter, gives it what it
//     waited for (the lock, a permit, an item, a free slot, or "closed"), unlinks its StopHook and queues it
//     with LoopCore::schedule. Nobody is resumed inline: the granting code runs on to its next await first.
//  5. Stop: the hook removes a still-queued waiter from the wait list and queues it to throw weft::Cancelled.
//     A waiter that was already granted has no hook left (step 4), so a stop that arrives between the grant
//     and the resumption cannot touch it: it resumes normally — owns the lock, holds the permit, returns the
//     item, has its item in the queue — and sees the stop at its next await. A grant is never lost to a
//     cancellation, and nothing has to be passed on.
//
// Invariants (what makes step 2 safe): Lock: waiters ⇒ locked (unlock hands the lock over without freeing it).
// Semaphore: waiters ⇒ no permit available. Queue: waiting getters ⇒ empty; waiting putters ⇒ full.
// Event: waiters ⇒ not set.
//
// Thread safety: a primitive belongs to the loop whose tasks use it; call every member on that loop's thread
// (the non-waiting members may also be called before the loop runs). To signal a loop from another thread,
// use Loop::call_soon_threadsafe.
// Hazard: a primitive must outlive every task waiting on it (destroying it with waiters is undefined).
#include <cassert>
#include <coroutine>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <optional>
#include <stdexcept>
#include <type_traits>
#include <utility>

#include "weft/core/errors.hpp"
#include "weft/io/detail/stop_state.hpp"
#include "weft/io/loop.hpp"
#include "weft/io/task.hpp"

namespace weft::io {
namespace detail {

enum class WaitResult : std::uint8_t { none, waiting, granted, cancelled, closed };

class WaitList;

/// One queued operation: the list links, the coroutine, its loop and its stop hook. The awaiters of sync.hpp
/// derive from it. Copying gives a fresh, unqueued node (awaiters are moved only before they are awaited).
class SyncWaiter {
 public:
  SyncWaiter() = default;
  SyncWaiter(const SyncWaiter&) noexcept {}
  SyncWaiter& operator=(const SyncWaiter&) = delete;
  inline ~SyncWaiter();

  WaitResult result() const noexcept { return result_; }

 protected:
  /// Step 1: true (and result "cancelled") when the task's scope is already stopping.
  bool stopping(StopState* stop) noexcept {
    if (stop == nullptr || !stop->stop_requested()) return false;
    result_ = WaitResult::cancelled;
    return true;
  }
  /// Step 2 succeeded (or the primitive is closed): resume without suspending.
  bool done_now(WaitResult r) noexcept {
    result_ = r;
    return false;
  }
  /// Step 3. Throws weft::Error when no loop runs on this thread (before anything is linked).
  inline bool enqueue(WaitList& list, std::coroutine_handle<> h, StopState* stop);
  /// First thing in await_resume: forgets the hook; throws weft::Cancelled when stopped (step 5).
  void finish(const char* what) {
    hook_.unlink();
    if (result_ == WaitResult::cancelled) throw Cancelled(what);
  }

 private:
  friend class WaitList;
  static inline void on_stop(StopHook* h);

  SyncWaiter* prev_ = nullptr;
  SyncWaiter* next_ = nullptr;
  WaitList* list_ = nullptr;
  LoopCore* core_ = nullptr;
  std::coroutine_handle<> handle_;
  ScopedStopHook hook_;
  WaitResult result_ = WaitResult::none;
};

/// A primitive's FIFO of waiters (intrusive, doubly linked: a stopped waiter leaves from anywhere in O(1)).
class WaitList {
 public:
  WaitList() = default;
  WaitList(const WaitList&) = delete;
  WaitList& operator=(const WaitList&) = delete;
  ~WaitList() { assert(empty() && "an io sync primitive was destroyed while tasks were waiting on it"); }

  bool empty() const noexcept { return head_ == nullptr; }

  /// The first waiter, still queued: the granter fills in what it hands over, then calls wake_front().
  /// Precondition: !empty().
  template <class W>
  W& front() const noexcept {
    return static_cast<W&>(*head_);
  }
  /// Step 4: dequeues the first waiter with result `r`, unlinks its stop hook and queues it on its loop (first,
  /// so that a failure to queue it leaves it waiting). Precondition: !empty().
  void wake_front(WaitResult r) {
    SyncWaiter* w = head_;
    w->core_->schedule(w->handle_);
    remove(w);
    w->hook_.unlink();
    w->result_ = r;
  }
  void wake_all(WaitResult r) {
    while (!empty()) wake_front(r);
  }

  void push_back(SyncWaiter* w) noexcept {
    w->prev_ = tail_;
    w->next_ = nullptr;
    if (tail_ != nullptr) tail_->next_ = w;
    else head_ = w;
    tail_ = w;
    w->list_ = this;
  }
  void remove(SyncWaiter* w) noexcept {
    if (w->prev_ != nullptr) w->prev_->next_ = w->next_;
    else head_ = w->next_;
    if (w->next_ != nullptr) w->next_->prev_ = w->prev_;
    else tail_ = w->prev_;
    w->prev_ = w->next_ = nullptr;
    w->list_ = nullptr;
  }

 private:
  SyncWaiter* head_ = nullptr;
  SyncWaiter* tail_ = nullptr;
};

inline SyncWaiter::~SyncWaiter() {
  // Only reached with a queued node when a suspended frame is destroyed: leave the list (the hook unlinks
  // itself).
  if (result_ == WaitResult::waiting && list_ != nullptr) list_->remove(this);
}

inline bool SyncWaiter::enqueue(WaitList& list, std::coroutine_handle<> h, StopState* stop) {
  core_ = &current_core();
  handle_ = h;
  result_ = WaitResult::waiting;
  list.push_back(this);
  if (stop != nullptr) hook_.link(stop, &SyncWaiter::on_stop, this);
  return true;
}

inline void SyncWaiter::on_stop(StopHook* h) {  // step 5
  auto* self = static_cast<SyncWaiter*>(h->ctx);
  if (self->result_ != WaitResult::waiting) return;  // granted: the grant wins (cannot happen, see step 4)
  self->core_->schedule(self->handle_);
  self->list_->remove(self);
  self->result_ = WaitResult::cancelled;
}

}  // namespace detail

// ---------------------------------------------------------------------------------------------------------

/// A flag tasks can wait for (asyncio.Event). Loop thread only; not copyable or movable.
class Event {
 public:
  class WaitAwaiter : public detail::SyncWaiter {
   public:
    explicit WaitAwaiter(Event& e) noexcept : event_(&e) {}
    bool await_ready() const noexcept { return false; }
    template <class P>
    bool await_suspend(std::coroutine_handle<P> h) {
      detail::StopState* stop = detail::stop_state_of(h);
      if (stopping(stop)) return false;
      if (event_->set_) return done_now(detail::WaitResult::granted);
      return enqueue(event_->waiters_, h, stop);
    }
    void await_resume() { finish("weft::io::Event::wait: cancelled"); }

   private:
    Event* event_;
  };

  Event() = default;
  Event(const Event&) = delete;
  Event& operator=(const Event&) = delete;

  /// Sets the flag and wakes every waiting task, in the order they started waiting (through the loop: they
  /// run in a later turn, after the caller's next await). Idempotent. Does not throw.
  void set() {
    set_ = true;
    waiters_.wake_all(detail::WaitResult::granted);
  }
  /// Clears the flag. Tasks already woken by set() still return from wait(). Does not throw.
  void clear() noexcept { set_ = false; }
  bool is_set() const noexcept { return set_; }

  /// `co_await ev.wait()`: returns at once when the flag is set, else waits for set(). Throws weft::Cancelled
  /// when the task's scope is stopping (already, or while it waits).
  [[nodiscard]] WaitAwaiter wait() noexcept { return WaitAwaiter(*this); }

 private:
  detail::WaitList waiters_;
  bool set_ = false;
};

// ---------------------------------------------------------------------------------------------------------

class Semaphore;

/// Holds one permit of a Semaphore and releases it when destroyed (or at reset()). Movable, not copyable.
/// Hazard: releasing that permit by hand as well makes the guard's release throw, which terminates.
class [[nodiscard]] SemaphoreGuard {
 public:
  SemaphoreGuard() noexcept = default;
  explicit SemaphoreGuard(Semaphore& s) noexcept : sem_(&s) {}
  SemaphoreGuard(SemaphoreGuard&& o) noexcept : sem_(std::exchange(o.sem_, nullptr)) {}
  SemaphoreGuard& operator=(SemaphoreGuard&& o) noexcept {
    if (this != &o) {
      reset();
      sem_ = std::exchange(o.sem_, nullptr);
    }
    return *this;
  }
  ~SemaphoreGuard() { reset(); }
  bool owns_permit() const noexcept { return sem_ != nullptr; }
  /// Releases the permit now (no-op when it holds none).
  inline void reset() noexcept;

 private:
  Semaphore* sem_ = nullptr;
};

/// A counting semaphore with an upper bound (asyncio.BoundedSemaphore). Waiters are served in FIFO order and
/// release() hands the permit straight to the first of them. Loop thread only; not copyable or movable.
class Semaphore {
 public:
  class AcquireAwaiter : public detail::SyncWaiter {
   public:
    explicit AcquireAwaiter(Semaphore& s) noexcept : sem_(&s) {}
    bool await_ready() const noexcept { return false; }
    template <class P>
    bool await_suspend(std::coroutine_handle<P> h) {
      detail::StopState* stop = detail::stop_state_of(h);
      if (stopping(stop)) return false;
      if (sem_->try_acquire()) return done_now(detail::WaitResult::granted);
      return enqueue(sem_->waiters_, h, stop);
    }
    void await_resume() { finish("weft::io::Semaphore::acquire: cancelled"); }

   protected:
    Semaphore* sem_;
  };
  class GuardAwaiter : public AcquireAwaiter {
   public:
    using AcquireAwaiter::AcquireAwaiter;
    SemaphoreGuard await_resume() {
      AcquireAwaiter::await_resume();
      return SemaphoreGuard(*sem_);
    }
  };

  /// `initial` permits, at most `max`. Throws std::invalid_argument when initial > max.
  explicit Semaphore(std::size_t initial, std::size_t max = SIZE_MAX) : count_(initial), max_(max) {
    if (initial > max) throw std::invalid_argument("weft::io::Semaphore: initial count exceeds the maximum");
  }
  Semaphore(const Semaphore&) = delete;
  Semaphore& operator=(const Semaphore&) = delete;

  /// `co_await sem.acquire()`: takes a permit, waiting (FIFO) while none is free. Throws weft::Cancelled when
  /// the task's scope is stopping (already, or while it waits); a permit handed over before the stop is kept.
  [[nodiscard]] AcquireAwaiter acquire() noexcept { return AcquireAwaiter(*this); }
  /// `co_await sem.guard()`: acquire(), returning a SemaphoreGuard that releases the permit. Same throws.
  [[nodiscard]] GuardAwaiter guard() noexcept { return GuardAwaiter(*this); }

  /// Takes a permit if one is free and nobody is queued. Never waits; does not throw.
  [[nodiscard]] bool try_acquire() noexcept {
    if (count_ == 0) return false;  // invariant: count_ > 0 ⇒ no waiters
    --count_;
    return true;
  }

  /// Gives a permit back: to the first waiter (woken through the loop) or to the pool. Throws weft::Error when
  /// that would make more than `max` permits available (a release without an acquire).
  void release() {
    if (!waiters_.empty()) {
      waiters_.wake_front(detail::WaitResult::granted);
      return;
    }
    if (count_ == max_) throw Error("weft::io::Semaphore::release: would exceed the maximum count");
    ++count_;
  }

  /// Permits free now.
  std::size_t available() const noexcept { return count_; }

 private:
  detail::WaitList waiters_;
  std::size_t count_;
  std::size_t max_;
};

inline void SemaphoreGuard::reset() noexcept {
  if (sem_ != nullptr) std::exchange(sem_, nullptr)->release();
}

// ---------------------------------------------------------------------------------------------------------

class Lock;

/// Owns a Lock and unlocks it when destroyed (or at unlock()). Movable, not copyable.
/// Hazard: calling Lock::unlock() by hand while a guard owns the lock makes the guard's unlock throw, which
/// terminates; use LockGuard::unlock() or release() instead.
class [[nodiscard]] LockGuard {
 public:
  LockGuard() noexcept = default;
  explicit LockGuard(Lock& l) noexcept : lock_(&l) {}
  LockGuard(LockGuard&& o) noexcept : lock_(std::exchange(o.lock_, nullptr)) {}
  LockGuard& operator=(LockGuard&& o) noexcept {
    if (this != &o) {
      unlock();
      lock_ = std::exchange(o.lock_, nullptr);
    }
    return *this;
  }
  ~LockGuard() { unlock(); }
  bool owns_lock() const noexcept { return lock_ != nullptr; }
  /// Unlocks now (no-op when it owns nothing).
  inline void unlock() noexcept;
  /// Stops owning the lock without unlocking it; the caller must call Lock::unlock() later.
  Lock* release() noexcept { return std::exchange(lock_, nullptr); }

 private:
  Lock* lock_ = nullptr;
};

/// A mutual-exclusion lock for tasks (asyncio.Lock) that stays held across awaits. FIFO: unlock() hands the
/// lock directly to the first waiter, so no task can take it in between. Not reentrant: a task that awaits
/// lock() while holding it waits for ever. Loop thread only; not copyable or movable.
/// Hazard: std::lock_guard / std::scoped_lock call lock() without awaiting it and so lock nothing; use the
/// LockGuard that `co_await lock.lock()` returns.
class Lock {
 public:
  class LockAwaiter : public detail::SyncWaiter {
   public:
    explicit LockAwaiter(Lock& l) noexcept : lock_(&l) {}
    bool await_ready() const noexcept { return false; }
    template <class P>
    bool await_suspend(std::coroutine_handle<P> h) {
      detail::StopState* stop = detail::stop_state_of(h);
      if (stopping(stop)) return false;
      if (lock_->try_lock()) return done_now(detail::WaitResult::granted);
      return enqueue(lock_->waiters_, h, stop);
    }
    LockGuard await_resume() {
      finish("weft::io::Lock::lock: cancelled");
      return LockGuard(*lock_);
    }

   private:
    Lock* lock_;
  };

  Lock() = default;
  Lock(const Lock&) = delete;
  Lock& operator=(const Lock&) = delete;

  /// `co_await lock.lock()`: waits (FIFO) until the lock is free and returns a LockGuard owning it. Throws
  /// weft::Cancelled when the task's scope is stopping (already, or while it waits); a lock handed over
  /// before the stop is kept (the guard owns it).
  [[nodiscard]] LockAwaiter lock() noexcept { return LockAwaiter(*this); }

  /// Takes the lock if it is free (it is never free while tasks wait for it). Never waits; does not throw.
  [[nodiscard]] bool try_lock() noexcept {
    if (locked_) return false;
    locked_ = true;
    return true;
  }

  /// Releases the lock: hands it to the first waiter (woken through the loop; it stays locked meanwhile) or
  /// frees it. Throws weft::Error when the lock is not locked.
  void unlock() {
    if (!locked_) throw Error("weft::io::Lock::unlock: the lock is not locked");
    if (!waiters_.empty()) waiters_.wake_front(detail::WaitResult::granted);
    else locked_ = false;
  }

  bool locked() const noexcept { return locked_; }

 private:
  detail::WaitList waiters_;
  bool locked_ = false;
};

inline void LockGuard::unlock() noexcept {
  if (lock_ != nullptr) std::exchange(lock_, nullptr)->unlock();
}

// ---------------------------------------------------------------------------------------------------------

/// A bounded FIFO queue between tasks (asyncio.Queue with a maxsize, plus close()). A put waits while the
/// queue is full, a get while it is empty; an item put while a getter waits goes straight to that getter.
/// Items and waiters are served in FIFO order. close() ends the stream: waiting and later puts throw
/// weft::ChannelClosed; gets still return the items already queued, then throw weft::ChannelClosed.
/// Items left in the queue are destroyed with it. Loop thread only; not copyable or movable.
template <class T>
class Queue {
  static_assert(std::is_object_v<T> && !std::is_const_v<T> && std::is_move_constructible_v<T>,
                "weft::io::Queue<T>: T must be a non-const, move-constructible object type");

 public:
  class PutAwaiter : public detail::SyncWaiter {
   public:
    PutAwaiter(Queue& q, T v) : queue_(&q), value_(std::move(v)) {}
    bool await_ready() const noexcept { return false; }
    template <class P>
    bool await_suspend(std::coroutine_handle<P> h) {
      detail::StopState* stop = detail::stop_state_of(h);
      if (stopping(stop)) return false;
      if (queue_->closed_) return done_now(detail::WaitResult::closed);
      if (queue_->try_put(value_)) return done_now(detail::WaitResult::granted);
      return enqueue(queue_->putters_, h, stop);
    }
    void await_resume() {
      finish("weft::io::Queue::put: cancelled");
      if (result() == detail::WaitResult::closed) throw ChannelClosed("weft::io::Queue::put: the queue is closed");
    }

   private:
    friend class Queue;
    Queue* queue_;
    T value_;
  };

  class GetAwaiter : public detail::SyncWaiter {
   public:
    explicit GetAwaiter(Queue& q) noexcept : queue_(&q) {}
    bool await_ready() const noexcept { return false; }
    template <class P>
    bool await_suspend(std::coroutine_handle<P> h) {
      detail::StopState* stop = detail::stop_state_of(h);
      if (stopping(stop)) return false;
      if (!queue_->items_.empty()) {
        slot_.emplace(queue_->pop_front());
        return done_now(detail::WaitResult::granted);
      }
      if (queue_->closed_) return done_now(detail::WaitResult::closed);
      return enqueue(queue_->getters_, h, stop);
    }
    T await_resume() {
      finish("weft::io::Queue::get: cancelled");
      if (result() == detail::WaitResult::closed)
        throw ChannelClosed("weft::io::Queue::get: the queue is closed and drained");
      return std::move(*slot_);
    }

   private:
    friend class Queue;
    Queue* queue_;
    std::optional<T> slot_;
  };

  /// Throws std::invalid_argument when capacity is 0.
  explicit Queue(std::size_t capacity) : capacity_(capacity) {
    if (capacity == 0) throw std::invalid_argument("weft::io::Queue: capacity must be at least 1");
  }
  Queue(const Queue&) = delete;
  Queue& operator=(const Queue&) = delete;

  /// `co_await q.put(v)`: appends `v`, waiting (FIFO) while the queue is full. Throws weft::ChannelClosed
  /// when the queue is closed (before or while it waits), weft::Cancelled when the task's scope is stopping
  /// (already, or while it waits); `v` is then destroyed, not queued. A put whose item was taken into the
  /// queue before the stop returns normally.
  [[nodiscard]] PutAwaiter put(T v) { return PutAwaiter(*this, std::move(v)); }

  /// `co_await q.get()`: removes and returns the oldest item, waiting (FIFO) while the queue is empty. Throws
  /// weft::ChannelClosed when the queue is closed and empty, weft::Cancelled when the task's scope is stopping
  /// (already, or while it waits). An item handed to a waiting getter before the stop is returned normally.
  [[nodiscard]] GetAwaiter get() noexcept { return GetAwaiter(*this); }

  /// Appends `v` if there is room now (to a waiting getter first); moves from `v` only when it returns true.
  /// Never waits. Throws weft::ChannelClosed when the queue is closed.
  [[nodiscard]] bool try_put(T& v) {
    if (closed_) throw ChannelClosed("weft::io::Queue::try_put: the queue is closed");
    if (!getters_.empty()) {  // invariant: waiting getters ⇒ empty: hand the item over directly
      getters_.template front<GetAwaiter>().slot_.emplace(std::move(v));
      getters_.wake_front(detail::WaitResult::granted);
      return true;
    }
    if (items_.size() >= capacity_) return false;  // waiting putters ⇒ full, so FIFO holds for them too
    items_.push_back(std::move(v));
    return true;
  }
  /// As try_put(T&); a failed call leaves the argument's object untouched.
  [[nodiscard]] bool try_put(T&& v) { return try_put(v); }

  /// Removes the oldest item if there is one (then the first waiting putter's item moves in). Never waits;
  /// does not throw (closed() tells "empty for now" from "closed and drained").
  [[nodiscard]] std::optional<T> try_get() {
    if (items_.empty()) return std::nullopt;
    return std::optional<T>(pop_front());
  }

  /// Closes the queue: wakes every waiting getter and putter with weft::ChannelClosed. Items already queued
  /// stay for get()/try_get(). Idempotent; does not throw.
  void close() {
    closed_ = true;
    getters_.wake_all(detail::WaitResult::closed);
    putters_.wake_all(detail::WaitResult::closed);
  }

  std::size_t size() const noexcept { return items_.size(); }
  std::size_t capacity() const noexcept { return capacity_; }
  bool empty() const noexcept { return items_.empty(); }
  bool full() const noexcept { return items_.size() >= capacity_; }
  bool closed() const noexcept { return closed_; }

 private:
  // Takes the oldest item; the first waiting putter's item takes the freed place (step 4 for putters). The
  // putter's item goes in first, so a failed allocation leaves both the queue and the putter as they were.
  T pop_front() {
    if (!putters_.empty()) {
      items_.push_back(std::move(putters_.template front<PutAwaiter>().value_));
      putters_.wake_front(detail::WaitResult::granted);
    }
    T v = std::move(items_.front());
    items_.pop_front();
    return v;
  }

  std::deque<T> items_;
  detail::WaitList getters_;
  detail::WaitList putters_;
  std::size_t capacity_;
  bool closed_ = false;
};

}  // namespace weft::io
