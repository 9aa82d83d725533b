#pragma once
// Structured concurrency on the event loop: task groups (asyncio.TaskGroup, Trio's nurseries), gather,
// wait_for and as_completed.
//
// Protocol of a group (io::task_group):
//  1. The group's stop state is a child of the caller's: cancelling the caller cancels the group.
//  2. The body runs under the group's stop state; spawn() starts a child in the next loop turn under it too.
//  3. The first child that fails with anything but weft::Cancelled has its exception kept and the group is
//     cancelled: the siblings and the body get weft::Cancelled at their next await. A Cancelled child is not a
//     failure.
//  4. When the body returns (or throws), the group waits for every child — always, even when it is being
//     cancelled — so no coroutine outlives its scope. Then it returns the body's value, or rethrows the kept
//     child failure, else the body's exception — except that a void body stopped by its own group's cancel()
//     (not by a cancelled caller) ends the scope normally: the cancellation was meant for that scope only.
//     A group stopped by its caller's cancellation ends with weft::Cancelled even if the body returned.
#include <chrono>
#include <coroutine>
#include <cstddef>
#include <exception>
#include <optional>
#include <tuple>
#include <type_traits>
#include <utility>
#include <variant>
#include <vector>

#include "weft/core/errors.hpp"
#include "weft/io/future.hpp"
#include "weft/io/detail/stop_state.hpp"
#include "weft/io/loop.hpp"
#include "weft/io/task.hpp"
#include "weft/io/time.hpp"

namespace weft::io {

template <class F>
auto task_group(F body);

/// The scope handed to a task_group body. Loop thread only; not movable (children point at it).
class TaskGroup {
 public:
  TaskGroup(const TaskGroup&) = delete;
  TaskGroup& operator=(const TaskGroup&) = delete;
  ~TaskGroup();

  /// Starts `task` as a child in the next loop turn; its value, if any, is discarded (see gather for values).
  /// Its failure cancels the group (step 3). Spawning into a group that is already cancelled still runs the
  /// task, which gets weft::Cancelled at its first await.
  template <class T>
  void spawn(Task<T> task) {
    adopt(task.release(), false);
  }

  /// Like spawn(), but runs the task at once, until its first suspension, before returning (asyncio's eager
  /// tasks): no loop turn between the event that caused it and its first step. Hazard: the caller's stack is
  /// under the task while it runs; do not call it recursively from a task started this way without a bound.
  template <class T>
  void spawn_eager(Task<T> task) {
    adopt(task.release(), true);
  }

  /// Cancels the group: every child and the body get weft::Cancelled at their next (or current) await.
  /// Not a failure: the group still finishes normally if nothing else failed.
  void cancel() {
    if (!stop_.stop_requested()) cancelled_here_ = true;
    stop_.request_stop();
  }
  /// True when cancel() (not the caller's cancellation) stopped the group.
  bool cancelled_here() const noexcept { return cancelled_here_; }
  bool cancelled() const noexcept { return stop_.stop_requested(); }

  /// Children started and not yet finished.
  std::size_t live() const noexcept { return live_; }

  /// Internal (task_group and the loop's root group).
  /// `core`: the loop (default: the running one). `report_only`: failures go to the unhandled-exception handler
  /// and cancel nothing (the loop's group of spawn()ed tasks).
  explicit TaskGroup(detail::StopState* parent, bool report_only = false, detail::LoopCore* core = nullptr);
  detail::StopState* stop_state() noexcept { return &stop_; }
  struct JoinAwaiter {
    TaskGroup* g;
    bool await_ready() const noexcept { return g->live_ == 0; }
    void await_suspend(std::coroutine_handle<> h) noexcept { g->joiner_ = h; }
    void await_resume() const noexcept {}
  };
  /// Waits for every child (never cancelled itself).
  JoinAwaiter join() noexcept { return JoinAwaiter{this}; }
  /// The kept child failure (step 3), or null.
  std::exception_ptr failure() const noexcept { return failure_; }

 private:
  template <class P>
  void adopt(std::coroutine_handle<P> h, bool eager) {
    adopt_erased(h.promise(), h, eager);
  }
  void adopt_erased(detail::PromiseBase& p, std::coroutine_handle<> h, bool eager);
  static std::coroutine_handle<> child_done(detail::PromiseBase& p, std::coroutine_handle<> h) noexcept;

  detail::LoopCore* core_;
  detail::StopState stop_;
  detail::StopHook parent_hook_;
  detail::StopState* parent_ = nullptr;
  detail::PromiseBase* children_ = nullptr;
  std::size_t live_ = 0;
  std::exception_ptr failure_;
  std::coroutine_handle<> joiner_;
  bool report_only_ = false;
  bool cancelled_here_ = false;
};

namespace detail {

/// An awaitable that returns the calling task's stop state without suspending.
struct CurrentStopState {
  StopState* s = nullptr;
  bool await_ready() const noexcept { return false; }
  template <class P>
  bool await_suspend(std::coroutine_handle<P> h) noexcept {
    s = stop_state_of(h);
    return false;
  }
  StopState* await_resume() const noexcept { return s; }
};

template <class T>
using ValueOr = std::conditional_t<std::is_void_v<T>, std::monostate, T>;

template <class T>
Task<void> store_into(Task<T> t, std::optional<ValueOr<T>>& slot) {
  if constexpr (std::is_void_v<T>) {
    co_await std::move(t);
    slot.emplace();
  } else {
    slot.emplace(co_await std::move(t));
  }
}

template <class F>
using BodyResult = typename std::invoke_result_t<F&, TaskGroup&>::value_type;

bool is_cancelled(const std::exception_ptr& e) noexcept;

}  // namespace detail

/// Runs `body(group)` — a callable returning io::Task<R> — as a structured scope (protocol at the top of this
/// file) and returns a Task<R> of the body's value. Children are spawned with group.spawn(task).
/// Hazard: the body is a coroutine lambda; capture by reference only what outlives the co_await of the returned
/// task (locals of the awaiting coroutine do).
template <class F>
auto task_group(F body) {
  using R = detail::BodyResult<F>;
  return [](F fn) -> Task<R> {
    TaskGroup group(co_await detail::CurrentStopState{});
    std::exception_ptr body_error;
    std::optional<detail::ValueOr<R>> value;
    try {
      if constexpr (std::is_void_v<R>) {
        co_await fn(group).run_in(group.stop_state());
        value.emplace();
      } else {
        value.emplace(co_await fn(group).run_in(group.stop_state()));
      }
    } catch (...) {
      body_error = std::current_exception();
      group.cancel();
    }
    co_await group.join();
    if (group.failure()) std::rethrow_exception(group.failure());
    if (body_error) {
      if constexpr (std::is_void_v<R>) {
        if (group.cancelled_here() && detail::is_cancelled(body_error)) co_return;  // step 4's exception
      }
      std::rethrow_exception(body_error);
    }
    // Stopped from outside (the caller is being cancelled): children may have been cut short, so the scope
    // does not pretend to have finished.
    if (group.cancelled() && !group.cancelled_here()) throw Cancelled("weft::io::task_group: cancelled");
    if constexpr (!std::is_void_v<R>) co_return std::move(*value);
  }(std::move(body));
}

/// Runs the tasks concurrently and returns their values in argument order (std::monostate for void tasks).
/// The first failure cancels the others and is rethrown once they have finished (asyncio.gather inside a
/// TaskGroup).
template <class... Ts>
Task<std::tuple<detail::ValueOr<Ts>...>> gather(Task<Ts>... tasks) {
  std::tuple<std::optional<detail::ValueOr<Ts>>...> slots;
  co_await task_group([&](TaskGroup& g) -> Task<void> {
    [&]<std::size_t... I>(std::index_sequence<I...>) {
      (g.spawn(detail::store_into(std::move(tasks), std::get<I>(slots))), ...);
    }(std::index_sequence_for<Ts...>{});
    co_return;
  });
  co_return std::apply([](auto&... s) { return std::tuple<detail::ValueOr<Ts>...>(std::move(*s)...); }, slots);
}

/// gather over a vector of tasks of one type: their values in order (Task<void> for void tasks).
template <class T>
Task<std::conditional_t<std::is_void_v<T>, void, std::vector<detail::ValueOr<T>>>> gather(std::vector<Task<T>> tasks) {
  std::vector<std::optional<detail::ValueOr<T>>> slots(tasks.size());
  co_await task_group([&](TaskGroup& g) -> Task<void> {
    for (std::size_t i = 0; i < tasks.size(); ++i) g.spawn(detail::store_into(std::move(tasks[i]), slots[i]));
    co_return;
  });
  if constexpr (!std::is_void_v<T>) {
    std::vector<T> out;
    out.reserve(slots.size());
    for (auto& s : slots) out.push_back(std::move(*s));
    co_return out;
  }
}

/// Runs `task` with a time limit: its value, or weft::Timeout once `timeout` has passed — after the task has
/// been cancelled and has finished (asyncio.wait_for). The task's own exceptions pass through.
template <class T, class Rep, class Period>
Task<T> wait_for(Task<T> task, std::chrono::duration<Rep, Period> timeout) {
  std::optional<detail::ValueOr<T>> slot;
  bool timed_out = false;
  co_await task_group([&](TaskGroup& g) -> Task<void> {
    g.spawn([](Task<T> t, std::optional<detail::ValueOr<T>>& out, TaskGroup& grp) -> Task<void> {
      co_await detail::store_into(std::move(t), out);
      grp.cancel();  // stops the timer
    }(std::move(task), slot, g));
    try {
      co_await sleep(timeout);
    } catch (const Cancelled&) {
      co_return;  // the task finished first (or the caller is being cancelled: the task was cancelled too)
    }
    timed_out = true;
    g.cancel();
  });
  if (!slot) {
    if (timed_out) throw Timeout("weft::io::wait_for: timed out");
    throw Cancelled("weft::io::wait_for: cancelled");
  }
  if constexpr (!std::is_void_v<T>) co_return std::move(*slot);
}

/// wait_for on a weft::Future: its value, or weft::Timeout (the work is cancelled if it has not started; see
/// future.hpp).
template <class T, class Rep, class Period>
Task<T> wait_for(Future<T> future, std::chrono::duration<Rep, Period> timeout) {
  return wait_for([](Future<T> f) -> Task<T> { co_return co_await std::move(f); }(std::move(future)), timeout);
}

/// wait_for on any awaitable with an await_resume (a socket read, a queue get, a sleep...).
template <class A, class Rep, class Period>
  requires(!requires { typename std::remove_cvref_t<A>::promise_type; } &&
           requires(std::remove_cvref_t<A>& a) { a.await_resume(); })
auto wait_for(A&& awaitable, std::chrono::duration<Rep, Period> timeout) {
  using R = decltype(std::declval<A>().await_resume());
  return wait_for([](std::remove_cvref_t<A> a) -> Task<R> { co_return co_await std::move(a); }(std::forward<A>(awaitable)),
                  timeout);
}

/// Runs the tasks concurrently and calls `on_result(index, value)` (or `on_result(index)` for void tasks) as
/// each finishes, in completion order (asyncio.as_completed). An exception from a task or from on_result
/// cancels the rest and is rethrown once they have finished.
template <class T, class F>
Task<void> as_completed(std::vector<Task<T>> tasks, F on_result) {
  co_await task_group([&](TaskGroup& g) -> Task<void> {
    for (std::size_t i = 0; i < tasks.size(); ++i) {
      g.spawn([](Task<T> t, F& f, std::size_t index) -> Task<void> {
        if constexpr (std::is_void_v<T>) {
          co_await std::move(t);
          f(index);
        } else {
          f(index, co_await std::move(t));
        }
      }(std::move(tasks[i]), on_result, i));
    }
    co_return;
  });
}

}  // namespace weft::io
