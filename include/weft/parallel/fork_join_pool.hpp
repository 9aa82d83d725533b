// weft/parallel/fork_join_pool.hpp — a work-stealing pool for fork/join parallelism.
//
//   weft::ForkJoinPool pool;                                 // one worker per available core
//   long fib(weft::ForkJoinPool& p, int n) {
//     if (n < 2) return n;
//     auto [a, b] = p.join([&] { return fib(p, n - 1); }, [&] { return fib(p, n - 2); });
//     return a + b;
//   }
//   long f30 = pool.invoke([&] { return fib(pool, 30); });   // from outside: runs on a worker, waits
//   auto fut = pool.submit([] { return 42; });               // the executor contract, like ThreadPool
//
// What a user relies on:
// - Work stealing: each worker owns a Chase–Lev deque; it pushes and pops its own jobs at one end (LIFO,
//   cache-hot) and idle workers steal the oldest job of a randomly chosen victim. Work from outside the
//   pool goes through a bounded injection queue.
// - join(a, b) runs a, offers b for stealing, runs b itself when nobody took it, and allocates nothing.
// - Waiting never blocks a worker: a worker that waits — on join's other half, on a TaskGroup, or on any
//   weft::Future (of this pool, another executor, or a Promise) — runs other jobs meanwhile (its own first,
//   then stolen ones), and sleeps only when there is nothing to run, to be woken by new work or by what
//   it waits for. So recursive fork/join of any depth, and futures waited on inside tasks, do not deadlock,
//   even on one worker.
// - Idle workers spin for `spin`, then sleep on a futex: an idle pool uses no CPU. Nothing is lost between
//   a push and a worker falling asleep (the protocol is at the top of src/parallel/fork_join_pool.cpp).
// - No exception is swallowed: join and invoke rethrow, a submitted task's exception reaches its future, a
//   posted task's exception goes to on_error.
//
// Thread safety: every member function may be called from any thread, including from the pool's own jobs,
// except shutdown() and the destructor, which must not run on one of this pool's workers.
//
// Hazards:
// - A waiting worker runs other jobs on its own stack. Do not hold a lock across a wait (join, TaskGroup::
//   wait, Future::get) that those jobs may need; and a job it picks up runs to completion before the wait
//   can return, so a waiter's latency includes that job. A job that blocks on something only a later part of
//   the waiting task will do (e.g. a std::latch counted down after the wait) deadlocks, as it would in any
//   work-stealing runtime: wait on futures, joins and task groups, not on hand-made blocking primitives.
// - Helping is bounded by stack space: with less than a quarter of the worker's stack left, a waiting worker
//   runs only its own jobs (its callee's children) and otherwise sleeps until the awaited thing is done.
//   Workers get large stacks (ForkJoinPoolOptions::stack_size, 64 MiB by default, reserved not committed).
#pragma once

#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <exception>
#include <functional>
#include <memory>
#include <optional>
#include <ranges>
#include <string>
#include <type_traits>
#include <utility>

#include "weft/core/detail/bind.hpp"
#include "weft/core/executor.hpp"
#include "weft/core/future.hpp"
#include "weft/parallel/detail/job.hpp"

namespace weft {

struct ForkJoinPoolOptions {
  /// Workers. 0: the number of CPUs this process may run on (its affinity mask).
  std::size_t threads = 0;
  /// Jobs from outside the pool that may wait in the injection queue; at the limit, an outside submitter
  /// blocks until a worker takes one (back-pressure). A power of two is not required.
  std::size_t capacity = 16384;
  /// Most jobs one worker's deque holds (rounded up to a power of two). A job pushed beyond it runs at once
  /// on the pushing worker, as a function call.
  std::size_t deque_capacity = std::size_t{1} << 20;
  /// How long a worker with nothing to do keeps looking (stealing) before it sleeps.
  std::chrono::nanoseconds spin = std::chrono::microseconds(50);
  /// Stack size of each worker thread (address space reserved; pages are committed as they are touched).
  std::size_t stack_size = std::size_t{64} << 20;
  /// Worker thread names are "<name>-<index>"; also the executor's name in traces.
  std::string name = "forkjoin";
  /// Receives exceptions thrown by posted (detached) tasks. Empty: report_unhandled_exception.
  std::function<void(std::exception_ptr)> on_error = {};
};

/// Counters, read without stopping the pool (each figure is exact, the set is not a single snapshot).
struct ForkJoinPoolStats {
  std::size_t threads = 0;      ///< workers
  std::size_t queued = 0;       ///< jobs in the deques and the injection queue (approximate)
  std::uint64_t executed = 0;   ///< jobs run by workers (submitted, posted, spawned, stolen join halves)
  std::uint64_t failed = 0;     ///< of which threw
  std::uint64_t cancelled = 0;  ///< submitted/posted tasks cancelled before they started
  std::uint64_t stolen = 0;     ///< jobs taken from another worker's deque
  std::uint64_t parks = 0;      ///< times a worker went to sleep
};

/// Name for a submitted, posted or spawned task in traces (a literal, or from trace::intern()).
struct JobOptions {
  const char* name = nullptr;
};

class TaskGroup;

/// A work-stealing pool (fork/join). Satisfies weft::Executor.
class ForkJoinPool {
 public:
  /// Starts the workers. Throws std::invalid_argument for capacity 0 or deque_capacity < 2, and
  /// std::system_error when a thread cannot be started.
  explicit ForkJoinPool(ForkJoinPoolOptions options = {});
  /// A pool of `threads` workers with default options.
  explicit ForkJoinPool(std::size_t threads);
  ForkJoinPool(const ForkJoinPool&) = delete;
  ForkJoinPool& operator=(const ForkJoinPool&) = delete;

  /// shutdown(Shutdown::drain), then joins the workers. Must not run on one of the pool's workers
  /// (std::terminate then).
  ~ForkJoinPool();

  /// Queues f(args...) (decay-copied) and returns the future of its result. From a worker of this pool the
  /// job goes to that worker's deque; from elsewhere to the injection queue (blocking while it is full).
  /// Throws BrokenExecutor after shutdown.
  template <class F, class... Args>
    requires(!std::is_same_v<std::remove_cvref_t<F>, JobOptions>)
  auto submit(F&& f, Args&&... args) {
    return submit(JobOptions{}, std::forward<F>(f), std::forward<Args>(args)...);
  }

  /// submit() with a trace name.
  template <class F, class... Args>
    requires std::is_invocable_v<std::decay_t<F>, std::decay_t<Args>...>
  auto submit(JobOptions options, F&& f, Args&&... args)
      -> Future<std::invoke_result_t<std::decay_t<F>, std::decay_t<Args>...>> {
    using R = std::invoke_result_t<std::decay_t<F>, std::decay_t<Args>...>;
    using Fn = decltype(detail::bind_task(std::forward<F>(f), std::forward<Args>(args)...));
    auto* state = new detail::SharedState<R>();  // two references: the job's and the future's
    Future<R> future = detail::adopt_future(state);
    auto* job = new detail::FutureJob<R, Fn>(state, detail::bind_task(std::forward<F>(f), std::forward<Args>(args)...));
    job->name = options.name;
    try {
      schedule(job, /*task=*/true);
    } catch (...) {
      detail::FutureJob<R, Fn>::discard(job, std::current_exception());
      throw;
    }
    return future;
  }

  /// Queues f(args...) with no future: an exception it throws goes to on_error. Throws BrokenExecutor after
  /// shutdown.
  template <class F, class... Args>
    requires(!std::is_same_v<std::remove_cvref_t<F>, JobOptions>)
  void post(F&& f, Args&&... args) {
    post(JobOptions{}, std::forward<F>(f), std::forward<Args>(args)...);
  }

  /// post() with a trace name.
  template <class F, class... Args>
    requires std::is_invocable_v<std::decay_t<F>, std::decay_t<Args>...>
  void post(JobOptions options, F&& f, Args&&... args) {
    using Fn = decltype(detail::bind_task(std::forward<F>(f), std::forward<Args>(args)...));
    auto job = std::make_unique<detail::PostJob<Fn>>(detail::bind_task(std::forward<F>(f), std::forward<Args>(args)...),
                                                     &on_error_);
    job->name = options.name;
    schedule(job.get(), /*task=*/true);
    (void)job.release();
  }

  /// f(item) for every item, in input order, in chunks of `chunk` items (0: about four chunks per worker).
  /// Returns the results, or rethrows the first exception in input order after the chunks already running
  /// have finished (the others are cancelled). f is called concurrently.
  template <class F, std::ranges::forward_range Range>
  auto map(F&& f, const Range& items, std::size_t chunk = 0) {
    return detail::map_on(*this, threads(), std::forward<F>(f), items, chunk);
  }

  /// Runs `f()` on this pool and returns its result (or rethrows its exception). On a worker of this pool it
  /// is a plain call; elsewhere the job is injected and the caller blocks until a worker has run it.
  /// Throws BrokenExecutor after shutdown (from outside the pool).
  template <class F>
  auto invoke(F&& f) -> std::invoke_result_t<F&> {
    using R = std::invoke_result_t<F&>;
    if (in_pool()) return std::invoke(f);
    detail::StackJob<std::remove_reference_t<F>> job(f);
    schedule(&job, /*task=*/false);
    wait_external(job.completion());
    if (job.error()) std::rethrow_exception(job.error());
    if constexpr (std::is_void_v<R>) {
      return;
    } else {
      return job.take();
    }
  }

  /// Runs `a()` and `b()`, potentially in parallel, and returns when both have finished: a runs on the
  /// calling worker while b waits in its deque to be stolen; if nobody took b, the caller runs it next.
  /// Returns std::pair of the two results (void results become std::monostate), or nothing when both are
  /// void. If a throws, b is skipped unless it already started (then the caller waits for it); a's
  /// exception is rethrown, else b's. Outside the pool, join runs as invoke([&] { return join(a, b); }).
  template <class A, class B>
  auto join(A&& a, B&& b) -> detail::JoinResult<A, B> {
    if (!in_pool()) return invoke([&]() -> detail::JoinResult<A, B> { return join_here(a, b); });
    return join_here(a, b);
  }

  /// Stops taking work from submit/post/invoke (they throw BrokenExecutor; jobs running may still join and
  /// spawn), runs or cancels what is queued (cancel_pending cancels submitted and posted tasks that have not
  /// started — their futures throw Cancelled — while join halves and TaskGroup tasks still run: they are
  /// parts of running tasks), and joins the workers. Idempotent. Called from one of the pool's own jobs it
  /// does not wait: the destructor joins.
  void shutdown(Shutdown mode = Shutdown::drain);

  std::size_t threads() const noexcept { return threads_; }
  const std::string& name() const noexcept { return name_; }
  ForkJoinPoolStats stats() const;
  /// True when the calling thread is one of this pool's workers.
  bool in_pool() const noexcept;
  /// The pool whose worker the calling thread is, or null.
  static ForkJoinPool* current() noexcept;
  /// The calling worker's index in [0, threads()), or -1 when the calling thread is not a worker of a pool.
  static int current_worker_index() noexcept;

 private:
  friend class TaskGroup;
  struct Core;

  ForkJoinPool(ForkJoinPoolOptions&& validated, int);

  // join() on a worker of this pool.
  template <class A, class B>
  auto join_here(A& a, B& b) -> detail::JoinResult<A, B> {
    using RA = std::invoke_result_t<A&>;
    using RB = std::invoke_result_t<B&>;
    detail::StackJob<std::remove_reference_t<B>> job_b(b);
    const bool queued = push_local(&job_b);
    std::exception_ptr error_a;
    std::optional<detail::ResultOf<RA>> result_a;
    try {
      result_a.emplace(detail::call_for_result(a));
    } catch (...) {
      error_a = std::current_exception();
    }
    if (!queued || take_back(&job_b)) {
      if (!error_a) job_b.run_inline();
    } else {
      wait_latch(job_b.completion());  // stolen: help until the thief has finished it
    }
    if (error_a) std::rethrow_exception(error_a);
    if (job_b.error()) std::rethrow_exception(job_b.error());
    if constexpr (std::is_void_v<RA> && std::is_void_v<RB>) {
      return;
    } else {
      return std::pair<detail::ResultOf<RA>, detail::ResultOf<RB>>(std::move(*result_a), job_b.take());
    }
  }


  // Queues `job`: on the calling worker's deque when it belongs to this pool (running it at once when the
  // deque is full), otherwise in the injection queue. `task`: from submit/post (refused with BrokenExecutor
  // after shutdown even from inside); join halves and TaskGroup jobs are refused only from outside.
  void schedule(detail::Job* job, bool task);
  // Pushes on the calling worker's deque (a worker of this pool). False when the deque is full.
  bool push_local(detail::Job* job);
  // Pops the calling worker's own jobs until `job` comes back (true), running any others it meets;
  // false when `job` was stolen.
  bool take_back(detail::Job* job);
  // On a worker of this pool: runs other jobs until the latch is done. Elsewhere: wait_external().
  void wait_latch(detail::JobLatch& latch);
  // Blocks the calling thread (not a worker of this pool) until the latch is done.
  void wait_external(detail::JobLatch& latch);

  const std::size_t threads_;
  const std::string name_;
  const std::function<void(std::exception_ptr)> on_error_;
  std::unique_ptr<Core> core_;
};

static_assert(Executor<ForkJoinPool>);

/// The process-wide pool the parallel algorithms use when given none: made on first use with one worker per
/// available CPU, destroyed at exit. Thread-safe.
ForkJoinPool& default_pool();

/// The pool the calling thread works for, or default_pool() when it is not a worker of any ForkJoinPool.
inline ForkJoinPool& current_or_default_pool() {
  ForkJoinPool* p = ForkJoinPool::current();
  return p != nullptr ? *p : default_pool();
}

/// join(a, b) on current_or_default_pool().
template <class A, class B>
auto join(A&& a, B&& b) {
  return current_or_default_pool().join(std::forward<A>(a), std::forward<B>(b));
}

}  // namespace weft
