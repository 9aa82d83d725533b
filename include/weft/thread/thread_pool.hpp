// weft/thread/thread_pool.hpp — a bounded thread pool with priorities, aging and an overflow policy.
//
//   weft::ThreadPool pool;                                  // one worker per available core
//   auto f = pool.submit([](int a, int b) { return a + b; }, 2, 3);
//   int five = f.get();
//   pool.post({.priority = weft::Priority::high, .name = "flush"}, [] { flush(); });
//   std::vector<int> squares = pool.map([](int x) { return x * x; }, inputs);
//
// What a user relies on:
// - Bounded: at most `capacity` tasks wait at each priority level; at the limit the overflow policy decides
//   (block the producer, reject with QueueFull, or run in the caller). Threads are bounded by max_threads.
// - Priorities with aging: a worker takes the task with the highest effective priority
//   level + waited / aging, so a task that has waited `aging` counts one level higher. A steady stream of
//   high-priority work therefore cannot starve low-priority work; tasks of one level run in FIFO order.
// - Waiting inside the pool helps: a task that waits on any weft::Future (including one of this pool) runs
//   other queued tasks of this pool meanwhile, so it never deadlocks the pool (see "Hazards"). If the future
//   is that of a task it submitted itself and no worker has started that task yet, it runs it at once, as a
//   function call, so recursive work (a task that submits sub-tasks and waits for them) nests only as deep
//   as its own recursion, even on one worker.
// - No exception is swallowed: a submitted task's exception reaches its future; a posted task's exception
//   reaches `on_error` (default: the unhandled-exception handler, which logs to stderr).
// - Idle workers spin for `spin` (default 50 µs), then sleep on a futex: an idle pool uses no CPU.
//
// Thread safety: every member function may be called from any thread, including from the pool's own tasks,
// except where noted (shutdown/resize/wait_idle from inside the pool).
//
// Hazards:
// - A task that waits on a future runs other tasks on its own stack while it waits. Do not hold a lock across
//   such a wait that those tasks may need. Running queued tasks of others while waiting is bounded (64 levels
//   of nesting), past which the wait blocks; running the awaited sub-task itself is not (it costs the stack
//   that calling it would).
// - With Overflow::block, a task that submits to its own full pool does not wait for space (only the
//   workers make room, so that could deadlock the pool): it runs the new task at once, itself, as
//   Overflow::caller_runs does. Do not hold a lock across such a submit that the new task may need.
#pragma once

#include <array>
#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <exception>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

#include "weft/core/detail/bind.hpp"
#include "weft/core/detail/clock.hpp"
#include "weft/core/executor.hpp"
#include "weft/core/function.hpp"
#include "weft/core/future.hpp"
#include "weft/sync/detail/mpmc_ring.hpp"
#include "weft/sync/event_count.hpp"
#include "weft/trace/trace.hpp"

namespace weft {

/// Task priority levels, lowest first.
enum class Priority : std::uint8_t { lowest = 0, low = 1, normal = 2, high = 3, highest = 4 };
inline constexpr std::size_t kPriorityLevels = 5;

/// What submit()/post() do when the task's priority level already holds `capacity` waiting tasks.
enum class Overflow {
  block,        ///< the producer waits for space (back-pressure); default. A worker of the pool itself runs
                ///< the task at once instead, since only the workers could make that space.
  reject,       ///< submit: the future fails with QueueFull; post: throws QueueFull
  caller_runs,  ///< the producer runs the task itself, at once
};

/// Per-task options.
struct TaskOptions {
  Priority priority = Priority::normal;
  /// Name used in traces and the trace summary. Must outlive the trace: a literal, or trace::intern().
  const char* name = nullptr;
};

struct ThreadPoolOptions {
  /// Workers started at construction. 0: the number of CPUs this process may run on (its affinity mask).
  std::size_t threads = 0;
  /// Upper bound for resize(). 0: max(threads, 4 × the available CPUs).
  std::size_t max_threads = 0;
  /// Tasks that may wait at each priority level (the queue of a level holds exactly this many).
  std::size_t capacity = 16384;
  Overflow overflow = Overflow::block;
  /// Waiting this long raises a queued task by one priority level when workers choose the next task.
  std::chrono::nanoseconds aging = std::chrono::milliseconds(20);
  /// How long an idle worker (and a producer blocked on a full queue) spins before it sleeps.
  std::chrono::nanoseconds spin = std::chrono::microseconds(50);
  /// Worker thread names are "<name>-<index>"; also the executor's name in traces.
  std::string name = "pool";
  /// Receives exceptions thrown by posted (detached) tasks. Empty: report_unhandled_exception.
  std::function<void(std::exception_ptr)> on_error = {};
};

/// Counters, read without stopping the pool (each figure is exact, the set is not a single snapshot).
struct ThreadPoolStats {
  std::size_t threads = 0;      ///< live workers
  std::size_t queued = 0;       ///< waiting in the queues
  std::size_t running = 0;      ///< being run by a worker right now
  std::uint64_t completed = 0;  ///< ran and returned normally
  std::uint64_t failed = 0;     ///< ran and threw
  std::uint64_t cancelled = 0;  ///< cancelled before they started (Future::cancel or shutdown)
  std::uint64_t rejected = 0;   ///< turned away by Overflow::reject
};

namespace detail {

enum class TaskMode : std::uint8_t { run, cancel, reject };
// skipped: the queue entry of a task that a waiting worker already ran (see "Helping" in thread_pool.cpp);
// nothing to count.
enum class TaskOutcome : std::uint8_t { completed, failed, cancelled, skipped };

// One queued task: 48 bytes, so that a ring slot (sequence + stamp + task) is one cache line.
struct PoolTask {
  UniqueFunction<TaskOutcome(TaskMode), 32> fn;
  const char* name = nullptr;
};
static_assert(sizeof(PoolTask) == 48);

// A task whose result goes to a future. Owns one reference to the shared state; if it is destroyed without
// having run (which the pool never does), the future gets BrokenPromise instead of waiting forever.
template <class R, class Fn>
class FutureTask {
 public:
  FutureTask(SharedState<R>* state, Fn&& fn) noexcept(std::is_nothrow_move_constructible_v<Fn>)
      : state_(state), fn_(std::move(fn)) {}
  FutureTask(FutureTask&& o) noexcept(std::is_nothrow_move_constructible_v<Fn>)
      : state_(std::exchange(o.state_, nullptr)), fn_(std::move(o.fn_)) {}
  FutureTask(const FutureTask&) = delete;
  ~FutureTask() {
    if (state_ != nullptr) {
      if (!state_->ready()) state_->set_exception(std::make_exception_ptr(BrokenPromise()));
      state_->release();
    }
  }

  TaskOutcome operator()(TaskMode mode) {
    SharedState<R>* s = std::exchange(state_, nullptr);
    TaskOutcome outcome = TaskOutcome::cancelled;
    if (mode == TaskMode::run && s->try_start()) {
      s->set_from(fn_);
      outcome = s->has_exception() ? TaskOutcome::failed : TaskOutcome::completed;
    } else if (mode == TaskMode::cancel) {
      s->cancel();
    } else if (mode == TaskMode::reject) {
      s->set_exception(std::make_exception_ptr(QueueFull()));
    }
    s->release();
    return outcome;
  }

 private:
  SharedState<R>* state_;
  Fn fn_;
};

// A detached task: exceptions go to the pool's error handler.
template <class Fn>
class PostTask {
 public:
  PostTask(Fn&& fn, const std::function<void(std::exception_ptr)>* on_error) noexcept(
      std::is_nothrow_move_constructible_v<Fn>)
      : fn_(std::move(fn)), on_error_(on_error) {}

  TaskOutcome operator()(TaskMode mode) {
    if (mode != TaskMode::run) return TaskOutcome::cancelled;
    try {
      fn_();
      return TaskOutcome::completed;
    } catch (...) {
      (*on_error_)(std::current_exception());
      return TaskOutcome::failed;
    }
  }

 private:
  Fn fn_;
  const std::function<void(std::exception_ptr)>* on_error_;
};

}  // namespace detail

/// A pool of worker threads running submitted callables (concurrent.futures.ThreadPoolExecutor, bounded).
/// Satisfies weft::Executor.
class ThreadPool {
 public:
  /// Starts the workers. Throws std::invalid_argument for capacity 0 or threads > max_threads, and
  /// std::system_error when a thread cannot be started.
  explicit ThreadPool(ThreadPoolOptions options = {});
  /// A pool of `threads` workers with default options.
  explicit ThreadPool(std::size_t threads);
  ThreadPool(const ThreadPool&) = delete;
  ThreadPool& operator=(const ThreadPool&) = delete;

  /// shutdown(Shutdown::drain): runs every queued task, then joins the workers.
  /// Must not run on one of the pool's own workers (that would join itself): std::terminate then.
  ~ThreadPool();

  /// Queues f(args...) (decay-copied) and returns the future of its result. Throws BrokenExecutor after
  /// shutdown. At the capacity limit: blocks, returns a future failed with QueueFull, or runs f at once,
  /// by the pool's Overflow policy.
  template <class F, class... Args>
    requires(!std::is_same_v<std::remove_cvref_t<F>, TaskOptions>)
  auto submit(F&& f, Args&&... args) {
    return submit(TaskOptions{}, std::forward<F>(f), std::forward<Args>(args)...);
  }

  /// submit() with a priority and a trace name.
  template <class F, class... Args>
    requires std::is_invocable_v<std::decay_t<F>, std::decay_t<Args>...>
  auto submit(TaskOptions options, F&& f, Args&&... args)
      -> Future<std::invoke_result_t<std::decay_t<F>, std::decay_t<Args>...>> {
    using R = std::invoke_result_t<std::decay_t<F>, std::decay_t<Args>...>;
    using Fn = decltype(detail::bind_task(std::forward<F>(f), std::forward<Args>(args)...));
    auto* state = new detail::SharedState<R>();  // two references: the task's and the future's
    Future<R> future = detail::adopt_future(state);
    enqueue(options,
            detail::PoolTask{detail::FutureTask<R, Fn>(
                                 state, detail::bind_task(std::forward<F>(f), std::forward<Args>(args)...)),
                             options.name},
            /*detached=*/false, state);
    return future;
  }

  /// Queues f(args...) with no future: an exception it throws goes to on_error. Throws BrokenExecutor after
  /// shutdown, and QueueFull at the capacity limit under Overflow::reject.
  template <class F, class... Args>
    requires(!std::is_same_v<std::remove_cvref_t<F>, TaskOptions>)
  void post(F&& f, Args&&... args) {
    post(TaskOptions{}, std::forward<F>(f), std::forward<Args>(args)...);
  }

  /// post() with a priority and a trace name.
  template <class F, class... Args>
    requires std::is_invocable_v<std::decay_t<F>, std::decay_t<Args>...>
  void post(TaskOptions options, F&& f, Args&&... args) {
    using Fn = decltype(detail::bind_task(std::forward<F>(f), std::forward<Args>(args)...));
    enqueue(options, detail::PoolTask{detail::PostTask<Fn>(
                                          detail::bind_task(std::forward<F>(f), std::forward<Args>(args)...),
                                          &on_error_),
                                      options.name},
            /*detached=*/true);
  }

  /// f(item) for every item, in input order, run in chunks of `chunk` items (0: about four chunks per
  /// worker). Returns the results, or rethrows the first exception in input order after the chunks already
  /// running have finished (the others are cancelled). f is called concurrently.
  template <class F, std::ranges::forward_range Range>
  auto map(F&& f, const Range& items, std::size_t chunk = 0) {
    return detail::map_on(*this, threads(), std::forward<F>(f), items, chunk);
  }

  /// Stops taking work (submit/post then throw BrokenExecutor), then drains or cancels what is queued,
  /// and joins the workers. Tasks already running always finish. Idempotent. Called from one of the pool's
  /// own tasks it does not wait (a worker cannot join itself): the destructor joins.
  void shutdown(Shutdown mode = Shutdown::drain);

  /// Changes the number of workers, while tasks run. Growing starts threads; shrinking lets the extra
  /// workers finish their current task and exit (queued tasks stay queued for the others). Returns when the
  /// change is done. Throws std::invalid_argument for 0 or more than max_threads, BrokenExecutor after
  /// shutdown, std::logic_error when called from one of this pool's tasks.
  void resize(std::size_t threads);

  /// Blocks until nothing is queued and every worker is idle (tasks submitted meanwhile by other threads
  /// are waited for too). Throws std::logic_error when called from one of this pool's tasks.
  void wait_idle();

  /// The current number of workers (as last set by the constructor or resize()).
  std::size_t threads() const noexcept { return target_threads_.load(std::memory_order_acquire); }
  std::size_t max_threads() const noexcept { return max_threads_; }
  std::size_t capacity() const noexcept { return capacity_; }
  const std::string& name() const noexcept { return name_; }
  ThreadPoolStats stats() const;
  /// True when the calling thread is one of this pool's workers.
  bool in_pool() const noexcept;

 private:
  struct Worker;
  class Helper;
  friend class Helper;

  // `awaited`: the state of the task's future (null for post); lets a worker that waits on it run it.
  void enqueue(const TaskOptions& options, detail::PoolTask&& task, bool detached = false,
               const detail::StateBase* awaited = nullptr);
  detail::MpmcRing<detail::PoolTask>* ring_for(Priority p);
  bool pop(detail::PoolTask& out, std::uint64_t& stamp);
  bool any_ready() const noexcept;
  bool all_drained() const noexcept;
  void run_task(Worker* w, detail::PoolTask& task, std::uint64_t stamp);
  void wake_worker() noexcept;
  void notify_space() noexcept;
  void worker_main(Worker& w);
  void start_worker(Worker& w);
  bool make_room_for_child(Worker& w);
  void park(Worker& w);

  using Ring = detail::MpmcRing<detail::PoolTask>;

  const std::size_t capacity_;
  const std::size_t max_threads_;
  const Overflow overflow_;
  const std::uint64_t aging_ticks_;
  const std::uint64_t spin_ticks_;
  const std::string name_;
  const std::function<void(std::exception_ptr)> on_error_;
  const std::uint32_t trace_id_;

  // Queues, one per priority level, made on first use. levels_mask_ has bit i once rings_[i] is published.
  std::array<std::atomic<Ring*>, kPriorityLevels> rings_{};
  std::array<std::unique_ptr<Ring>, kPriorityLevels> ring_owner_;
  std::atomic<std::uint32_t> levels_mask_{0};
  // ticks() when a second level came into use: the stand-in stamp of tasks pushed unstamped before that.
  std::atomic<std::uint64_t> multi_level_since_{0};
  std::mutex levels_mutex_;  // makes rings; also orders ring creation against shutdown's close

  // Sleep/wake (protocol at the top of thread_pool.cpp). work_ec_ is shared because a future's
  // done-callback may wake helping workers after the pool is gone.
  const std::shared_ptr<EventCount> work_ec_;  // idle workers (and helping waiters) sleep here
  EventCount space_ec_;                        // producers blocked on a full queue sleep here
  EventCount idle_ec_;                         // wait_idle() sleeps here
  alignas(64) std::atomic<std::uint32_t> spinning_{0};  // workers spinning for work
  std::atomic<std::uint32_t> parked_{0};                // workers asleep in work_ec_ with nothing to do
  std::atomic<std::uint32_t> live_{0};                  // workers started and not yet exited
  std::atomic<bool> wake_pending_{false};        // a wake-up is on its way to a sleeping worker
  std::atomic<bool> space_wake_pending_{false};  // likewise to blocked producers
  std::atomic<bool> stopping_{false};
  std::atomic<bool> cancel_pending_{false};

  std::atomic<std::size_t> target_threads_{0};
  std::atomic<std::uint64_t> rejected_{0};
  std::atomic<std::uint64_t> shutdown_cancelled_{0};  // cancelled by shutdown() on the calling thread
  std::atomic<std::uint64_t> caller_completed_{0};    // Overflow::caller_runs tasks
  std::atomic<std::uint64_t> caller_failed_{0};
  std::atomic<std::uint64_t> caller_traced_{0};  // ids of spans of tasks run by callers
  std::atomic<std::uint64_t> ran_early_{0};  // queue entries whose task a waiting worker already ran

  // One slot per possible worker (max_threads_), made at construction and never moved, so stats() can read
  // the counters without a lock. A slot's thread object is guarded by control_mutex_.
  std::unique_ptr<Worker[]> workers_;
  std::mutex control_mutex_;  // serialises shutdown(), resize() and the destructor
};

static_assert(Executor<ThreadPool>);

}  // namespace weft
