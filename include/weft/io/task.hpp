#pragma once
// io::Task<T>: the lazy coroutine of weft's event loop (asyncio's coroutine objects).
//
// A Task does nothing until it is awaited (or handed to io::run / a task group / Loop::spawn). Awaiting it
// starts it on the awaiting coroutine's thread; when it finishes, the awaiter resumes by symmetric transfer (no
// stack growth however long a chain of tasks is) and gets its value, or its exception rethrown unchanged.
//
// Cancellation: a task runs under the stop state of its scope (it inherits the awaiter's when awaited, or the
// group's when spawned). A stop request makes the operation the task is suspended in — an I/O request, a
// timer, a wait on a queue, lock or future — finish at once with weft::Cancelled thrown at the co_await; the
// pending I/O request itself is cancelled in the kernel. A task may catch Cancelled to clean up (it is an
// ordinary exception) but should let it propagate afterwards.
//
// Thread safety: a Task and everything it awaits belong to the one thread running its event loop.
//
// Hazard: symmetric transfer is a tail call only in optimized builds (GCC: -O2, -foptimize-sibling-calls). In
// an unoptimized build every await of a task that completes without suspending takes some stack until the
// awaiting task suspends, so very long chains of such awaits (~100,000) can overflow the stack there.
//
// Hazard (g++ 12): two coroutine forms are miscompiled and must be avoided — a conditional expression with a
// co_await in each branch (`x = c ? co_await a() : co_await b();`: write an if/else), and a capturing lambda
// built inside a co_await expression whose result is a temporary needing destruction
// (`co_await pool.submit([s] {...})`: name the lambda, or the future, first).
#include <coroutine>
#include <exception>
#include <optional>
#include <type_traits>
#include <utility>

#include "weft/io/detail/stop_state.hpp"

namespace weft::io {

template <class T = void>
class Task;

namespace detail {

class PromiseBase;

/// Called at final suspend when a task has no awaiting coroutine (spawned into a group, or run as a root).
/// May destroy the frame.
/// Returns the coroutine to resume next (std::noop_coroutine() for none).
using DoneFn = std::coroutine_handle<> (*)(PromiseBase&, std::coroutine_handle<>) noexcept;

/// What every io::Task promise has: the awaiting coroutine or a done-function, the scope's stop state, the
/// exception, and links for the owner's intrusive list of live children.
class PromiseBase {
 public:
  struct FinalAwaiter {
    bool await_ready() const noexcept { return false; }
    template <class P>
    std::coroutine_handle<> await_suspend(std::coroutine_handle<P> h) noexcept {
      PromiseBase& p = h.promise();
      if (p.continuation_) return p.continuation_;
      if (p.on_done_ != nullptr) return p.on_done_(p, h);  // may destroy the frame: touch nothing afterwards
      return std::noop_coroutine();
    }
    void await_resume() const noexcept {}
  };

  std::suspend_always initial_suspend() const noexcept { return {}; }
  FinalAwaiter final_suspend() const noexcept { return {}; }
  void unhandled_exception() noexcept { error_ = std::current_exception(); }

  /// The stop state of the scope this task runs in (null: cannot be cancelled).
  StopState* stop_state() const noexcept { return stop_; }
  void set_stop_state(StopState* s) noexcept { stop_ = s; }
  void set_continuation(std::coroutine_handle<> c) noexcept { continuation_ = c; }
  void set_done(DoneFn fn) noexcept { on_done_ = fn; }
  std::exception_ptr& error() noexcept { return error_; }

  // Owner bookkeeping (task groups): intrusive list of live children and an opaque owner pointer.
  PromiseBase* list_prev = nullptr;
  PromiseBase* list_next = nullptr;
  void* owner = nullptr;

 protected:
  void rethrow_if_failed() {
    if (error_) std::rethrow_exception(error_);
  }

 private:
  std::coroutine_handle<> continuation_;
  DoneFn on_done_ = nullptr;
  StopState* stop_ = nullptr;
  std::exception_ptr error_;
};

template <class T>
class Promise final : public PromiseBase {
 public:
  Task<T> get_return_object() noexcept;
  template <class U = T>
    requires std::is_convertible_v<U&&, T>
  void return_value(U&& v) noexcept(std::is_nothrow_constructible_v<T, U&&>) {
    value_.emplace(std::forward<U>(v));
  }
  T result() {
    rethrow_if_failed();
    return std::move(*value_);
  }

 private:
  std::optional<T> value_;
};

template <>
class Promise<void> final : public PromiseBase {
 public:
  Task<void> get_return_object() noexcept;
  void return_void() const noexcept {}
  void result() { rethrow_if_failed(); }
};

/// The stop state of the coroutine `h` when it is an io::Task (null for other coroutines).
template <class P>
StopState* stop_state_of(std::coroutine_handle<P> h) noexcept {
  if constexpr (std::is_base_of_v<PromiseBase, P>) return h.promise().stop_state();
  else return nullptr;
}

}  // namespace detail

/// A lazily started coroutine producing a T (see the top of this file). Move-only; destroying a Task that was
/// never started destroys its frame. Awaiting it (`co_await std::move(t)` or `co_await f()`) consumes it.
template <class T>
class [[nodiscard]] Task {
 public:
  using promise_type = detail::Promise<T>;
  using value_type = T;
  using Handle = std::coroutine_handle<promise_type>;

  Task() noexcept = default;
  explicit Task(Handle h) noexcept : h_(h) {}
  Task(Task&& other) noexcept : h_(std::exchange(other.h_, {})) {}
  Task& operator=(Task&& other) noexcept {
    if (this != &other) {
      reset();
      h_ = std::exchange(other.h_, {});
    }
    return *this;
  }
  Task(const Task&) = delete;
  Task& operator=(const Task&) = delete;
  ~Task() { reset(); }

  /// False for a default-constructed or moved-from (consumed) Task.
  bool valid() const noexcept { return static_cast<bool>(h_); }

  struct Awaiter {
    Handle h;
    detail::StopState* scope = nullptr;  // run under this stop state instead of the awaiter's
    bool await_ready() const noexcept { return false; }
    template <class P>
    std::coroutine_handle<> await_suspend(std::coroutine_handle<P> caller) noexcept {
      h.promise().set_continuation(caller);
      h.promise().set_stop_state(scope != nullptr ? scope : detail::stop_state_of(caller));
      return h;
    }
    T await_resume() {
      struct Destroy {
        Handle h;
        ~Destroy() { h.destroy(); }
      } d{h};
      return h.promise().result();
    }
  };

  /// Starts the task and suspends the caller until it finishes; returns its value or rethrows its exception.
  /// Precondition: valid(). The frame is destroyed when the awaiter resumes.
  Awaiter operator co_await() && noexcept { return Awaiter{std::exchange(h_, {})}; }

  /// Like `co_await`, but the task runs under `scope` rather than the awaiter's stop state (task groups).
  Awaiter run_in(detail::StopState* scope) && noexcept { return Awaiter{std::exchange(h_, {}), scope}; }

  /// Gives up ownership of the frame (for schedulers: task groups, Loop::spawn, io::run).
  Handle release() noexcept { return std::exchange(h_, {}); }

 private:
  void reset() noexcept {
    if (h_) std::exchange(h_, {}).destroy();
  }
  Handle h_;
};

namespace detail {
template <class T>
Task<T> Promise<T>::get_return_object() noexcept {
  return Task<T>(std::coroutine_handle<Promise<T>>::from_promise(*this));
}
inline Task<void> Promise<void>::get_return_object() noexcept {
  return Task<void>(std::coroutine_handle<Promise<void>>::from_promise(*this));
}
}  // namespace detail

/// Awaitable that returns the calling task's cancellation status without suspending: true when the task's scope
/// has been asked to stop. Lets long computations between awaits check for cancellation:
/// `if (co_await io::stop_requested()) co_return;`
struct stop_requested {
  bool value = false;
  bool await_ready() const noexcept { return false; }
  template <class P>
  bool await_suspend(std::coroutine_handle<P> h) noexcept {
    detail::StopState* s = detail::stop_state_of(h);
    value = s != nullptr && s->stop_requested();
    return false;  // never suspends
  }
  bool await_resume() const noexcept { return value; }
};

}  // namespace weft::io
