// weft/tasks/cluster.hpp — ClusterExecutor: one executor over local threads and the task queue's workers
// (Parallel Python's transparent local/remote execution).
//
//   int add(int a, int b) { return a + b; }
//   weft::tasks::App app({.broker = "sqlite:///var/tmp/q.db", .backend = "sqlite:///var/tmp/q.db"});
//   auto add_task = app.task<&add>("demo.add");
//   weft::tasks::ClusterExecutor ex(app);                 // local threads: one per CPU
//   weft::Future<int> five = ex.submit(add_task, 2, 3);  // here or on a worker, wherever capacity is free
//   std::vector<int> sums = ex.map(add_one_task, inputs);  // one call per item, results in input order
//   auto local = ex.submit([&] { return scan(buffer); });  // any other callable: always on the local threads
//
// The same code runs on the local cores alone or with a cluster: the workers that share the App's broker and
// backend are discovered from their heartbeats (weft/tasks/worker.hpp, App::workers()), their number may
// change while the executor runs, and each call is placed when it is submitted.
//
// What travels: only calls of registered tasks (a Task<F> handle; DESIGN.md decision 4: only data crosses a
// process boundary). Their arguments and result are JSON, as for Task::delay. Any other callable — a lambda,
// a closure capturing references — runs on the executor's own ThreadPool, so ClusterExecutor satisfies the
// executor contract (weft/core/executor.hpp) for them exactly as a ThreadPool does.
//
// Placement of a Task call (under the executor's mutex, so concurrent submitters see each other's choices):
//  1. The capacity for the task is the sum of `concurrency` of the live workers whose heartbeat lists the
//     task's name among its registered tasks and the task's queue among its queues (heartbeats as of the last
//     discovery, step 6). Tasks registered with ignore_result always run locally: no result would come back.
//  2. free_local = local threads - local calls in flight (queued or running on the pool, callables included);
//     free_remote = capacity - this executor's remote calls in flight (results not yet collected).
//  3. With no capacity, or free_local > 0, or max_remote_in_flight reached: local. Otherwise remote when
//     free_remote > free_local, else local: an idle local thread is used first, then the side with more room
//     (the shorter backlog once both are saturated). With local_tasks = false, every Task call goes remote
//     (it waits in the broker until a worker takes it); at max_remote_in_flight the submitter waits.
//  4. A local call runs `F(args...)` on the pool, as Task::operator() does: no broker, no result stored, no
//     retries, rate or time limits. A remote call is App::send_task(name, args) on the executor's App.
// Collecting remote results — one collector thread per executor (never a pool thread per remote call):
//  5. Each round it reads the state of the oldest at most kSweep (256) remote calls with ResultBackend::get:
//     ready ones complete their futures (SUCCESS: the JSON result converted to R; FAILURE: weft::RemoteError
//     with the remote type, message and traceback; REVOKED: weft::Cancelled; a result that is not an R:
//     ArgumentError; a backend error: that error). Unless keep_results, the stored result is then forgotten.
//     A round that completed nothing waits on the oldest call (ResultBackend::wait) for at most result_poll.
//     Limits: a result other than the oldest one's is seen up to result_poll late; a round costs one backend
//     read per call in the sweep, and a completed call one more (AsyncResult::get converts the stored meta).
//  6. Every discovery_interval (default: the workers' heartbeat period) it rereads the heartbeats
//     (App::workers()); a failed read is counted in stats().errors and leaves no worker known until the next
//     one succeeds (every Task call then runs locally).
//  7. A future cancelled while its call is remote (Future::cancel succeeds until the result arrives) is
//     revoked in the broker: a worker that has not started the call skips it; one that has runs it to the end,
//     and its result is dropped.
// Shutdown:
//  8. shutdown() stops taking work (submit then throws BrokenExecutor), then drains or cancels the local pool
//     (ThreadPool::shutdown), then waits until every remote call has settled:
//     - drain: the remote results are collected as they arrive (for at most drain_timeout, when set; the calls
//       still out then get BrokenPromise and may still run remotely);
//     - cancel_pending: remote calls not known to have started are revoked and their futures cancelled
//       (Cancelled). "Started" is known only from workers with track_started (state STARTED); those are waited
//       for. Without it a running call is revoked as well: it runs to the end remotely and its result is
//       dropped.
//     After shutdown() returns (called from outside the executor) every future it produced is ready, so futures
//     outlive the executor as the contract requires.
//  9. The destructor is shutdown(drain), then it stops and joins the collector.
//
// Thread safety: every member function may be called from any thread, including from the executor's own
// tasks, except the destructor (see its comment); shutdown() there does not wait (see its comment).
//
// Hazards:
// - Callbacks of remote futures (Future::on_done, then(f)) run on the collector thread: one that blocks — on
//   another remote result of this executor above all — stalls (or deadlocks) the collection of every result.
//   Hand slow continuations to an executor with then(executor, f). Destroying the executor from such a
//   callback is a self-join: std::terminate.
// - Local and remote runs of a task fail differently: locally its own exception reaches the future unchanged;
//   remotely only data travels and it arrives as weft::RemoteError (catch std::exception, or weft::Error and
//   the task's own type, to handle both).
// - A remote call may run more than once (at-least-once delivery, DESIGN.md decision 6) and may run after its
//   future was cancelled (step 7): tasks sent through a ClusterExecutor should be idempotent.
// - The balance counts only this executor's calls (its remote calls of every task against each task's
//   capacity); other clients' work on the same workers is not seen.
// - memory:// brokers and backends live in one process: workers on other processes or hosts need a shared
//   broker and backend (sqlite:///path on one host).
// - A worker that registered a task only by name must implement the same function: placement cannot check it.
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <exception>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <ranges>
#include <string>
#include <thread>
#include <type_traits>
#include <unordered_map>
#include <utility>
#include <vector>

#include "weft/core/detail/bind.hpp"
#include "weft/core/detail/shared_state.hpp"
#include "weft/core/errors.hpp"
#include "weft/core/executor.hpp"
#include "weft/core/future.hpp"
#include "weft/tasks/app.hpp"
#include "weft/thread/thread_pool.hpp"

namespace weft::tasks {

struct ClusterOptions {
  /// Threads of the local pool. 0: the CPUs this process may run on.
  std::size_t local_threads = 0;
  /// true: a Task call runs locally when the balance says so (placement step 3). false: every Task call goes
  /// to the broker (Parallel Python with no local workers); callables still run locally.
  bool local_tasks = true;
  /// How often the workers' heartbeats are reread. 0: the shortest heartbeat period among the workers last
  /// seen (2 s, the Worker default, when none is). Must not be negative.
  std::chrono::milliseconds discovery_interval{0};
  /// The longest a collection round waits for the oldest remote result before it looks at the others again
  /// (placement step 5). Must be above 0.
  std::chrono::milliseconds result_poll{10};
  /// At most this many remote calls at once; past it Task calls run locally (or, with local_tasks = false,
  /// submit waits). Must be above 0.
  std::size_t max_remote_in_flight = 10'000;
  /// true: leave remote results in the backend (Celery's default). false: forget each once it is in its future.
  bool keep_results = false;
  /// The longest shutdown(drain) waits for remote results; none: as long as they take. Must not be negative.
  std::optional<std::chrono::milliseconds> drain_timeout{};
  /// The local pool's name (thread names "<name>-<index>", traces).
  std::string name = "cluster";
};

/// Counters, read without stopping the executor (one snapshot under the executor's mutex, except
/// local_calls and local_in_flight, which are exact on their own). A remote call is counted before its
/// future becomes ready, so a caller that got the result sees it counted.
struct ClusterStats {
  std::uint64_t local_calls = 0;       ///< calls handed to the local pool: callables and Task calls placed here
  std::uint64_t remote_calls = 0;      ///< Task calls sent to the broker
  std::uint64_t remote_succeeded = 0;  ///< remote calls whose worker stored SUCCESS (a result that then does not
                                       ///< convert to the task's type is counted here, its future fails)
  std::uint64_t remote_failed = 0;     ///< FAILURE or REVOKED stored, a backend error, given up at drain_timeout
  std::uint64_t remote_cancelled = 0;  ///< futures cancelled while their call was remote (the call was revoked)
  std::size_t local_in_flight = 0;     ///< local calls queued or running
  std::size_t remote_in_flight = 0;    ///< remote calls whose result was not collected yet
  std::uint64_t discoveries = 0;       ///< heartbeat reads that succeeded
  std::uint64_t errors = 0;            ///< failed heartbeat reads, revocations and forgets (see last_error)
  std::string last_error;              ///< the latest of those
};

namespace detail {

template <class T>
struct IsTask : std::false_type {};
template <auto F>
struct IsTask<Task<F>> : std::true_type {};

/// The value type of a Task<F>'s future.
template <auto F>
using TaskValue = std::remove_cvref_t<typename Task<F>::Value>;

/// Counts a local call from its submission until it returned, threw, or was dropped without running.
class LocalSlot {
 public:
  /// Counts one more call.
  explicit LocalSlot(std::atomic<std::ptrdiff_t>* count) noexcept : count_(count) {
    count_->fetch_add(1, std::memory_order_relaxed);  // a load estimate: no ordering needed
  }
  /// Takes over a count already made (placement reserves it).
  static LocalSlot adopt(std::atomic<std::ptrdiff_t>* count) noexcept { return LocalSlot(count, 0); }
  LocalSlot(LocalSlot&& other) noexcept : count_(std::exchange(other.count_, nullptr)) {}
  LocalSlot(const LocalSlot&) = delete;
  LocalSlot& operator=(const LocalSlot&) = delete;
  LocalSlot& operator=(LocalSlot&&) = delete;
  ~LocalSlot() { leave(); }
  /// Ends the count (once).
  void leave() noexcept {
    if (count_ != nullptr) std::exchange(count_, nullptr)->fetch_sub(1, std::memory_order_relaxed);
  }

 private:
  LocalSlot(std::atomic<std::ptrdiff_t>* count, int) noexcept : count_(count) {}
  std::atomic<std::ptrdiff_t>* count_;
};

/// Runs `fn` and ends the slot's count when it returns or throws (before the future's value is set, so a
/// caller woken by that value already sees the thread free).
template <class Fn>
decltype(auto) run_counted(LocalSlot& slot, Fn& fn) {
  struct Leave {
    LocalSlot& s;
    ~Leave() { s.leave(); }
  } leave{slot};
  return fn();
}

/// Sets a remote call's result into its state: the backend holds a ready meta for `r`.
template <class R>
void complete_remote(weft::detail::StateBase* state, const AsyncResult& r) {
  static_cast<weft::detail::SharedState<R>*>(state)->set_from(
      [&r]() -> R { return r.template get<R>(std::chrono::nanoseconds{0}); });
}

/// One remote call, from placement until its future is complete. Lives in the executor's table; the fields
/// are guarded by the executor's mutex until `sent`, after which only the collector changes the entry.
struct RemoteCall {
  RemoteCall() = default;
  RemoteCall(const RemoteCall&) = delete;
  RemoteCall& operator=(const RemoteCall&) = delete;
  ~RemoteCall() {
    if (state == nullptr) return;
    if (!state->ready()) {  // never completed (its send failed): the future must not wait forever
      try {
        state->set_exception(std::make_exception_ptr(BrokenPromise()));
      } catch (const FutureError&) {
        // only "already set": impossible here, the collector no longer touches a call it removed
      }
    }
    state->release();
  }

  std::uint64_t seq = 0;                       ///< the key in the table: submission order
  std::string id;                              ///< the task id, once sent
  weft::detail::StateBase* state = nullptr;    ///< one reference, owned
  void (*complete)(weft::detail::StateBase*, const AsyncResult&) = nullptr;
  bool sent = false;                           ///< the message is in the broker; the collector looks at it
  bool settled = false;                        ///< its outcome is decided; the collector completes and removes it
};

}  // namespace detail

/// An executor over a local ThreadPool and the workers of an App's broker. Satisfies weft::Executor.
class ClusterExecutor {
 public:
  /// Starts the local pool and the collector and reads the workers' heartbeats once. `app` must outlive the
  /// executor. Throws std::invalid_argument (options out of range, see ClusterOptions), weft::Error (the
  /// backend cannot be read), std::system_error (a thread cannot be started).
  explicit ClusterExecutor(App& app, ClusterOptions options = {});
  ClusterExecutor(const ClusterExecutor&) = delete;
  ClusterExecutor& operator=(const ClusterExecutor&) = delete;

  /// shutdown(Shutdown::drain), then stops and joins the collector. Must not run on one of the executor's
  /// threads (local pool or collector): std::terminate then.
  ~ClusterExecutor();

  /// Runs f(args...) (decay-copied) on the local pool and returns the future of its result. Throws
  /// BrokenExecutor after shutdown began. Waiting on the future inside a local task helps the pool
  /// (weft/thread/thread_pool.hpp).
  template <class F, class... Args>
    requires(!detail::IsTask<std::remove_cvref_t<F>>::value &&
             std::is_invocable_v<std::decay_t<F>, std::decay_t<Args>...>)
  auto submit(F&& f, Args&&... args) -> Future<std::invoke_result_t<std::decay_t<F>, std::decay_t<Args>...>> {
    if (stopping_.load(std::memory_order_acquire)) throw BrokenExecutor();
    detail::LocalSlot slot(&local_in_flight_);
    local_calls_.fetch_add(1, std::memory_order_relaxed);
    return pool_.submit([slot = std::move(slot),
                         fn = weft::detail::bind_task(std::forward<F>(f), std::forward<Args>(args)...)]() mutable
                        -> decltype(auto) { return detail::run_counted(slot, fn); });
  }

  /// Calls the registered task here or on a worker (placement at the top of this file) and returns the
  /// future of its result. The arguments must convert to JSON. Throws BrokenExecutor after shutdown began;
  /// for a remote call also what App::send_task throws (MessageTooLarge, weft::Error) and nlohmann::json's
  /// errors for arguments JSON cannot hold. The future fails with the task's own exception (local run) or
  /// RemoteError (remote FAILURE), Cancelled (revoked), ArgumentError (a result that is not an R).
  template <auto G, class... Args>
    requires std::is_invocable_v<decltype(G), std::decay_t<Args>...>
  auto submit(const Task<G>& task, Args&&... args) -> Future<detail::TaskValue<G>> {
    using R = detail::TaskValue<G>;
    detail::RemoteCall* call = place(task.name());
    if (call == nullptr) {  // local: place() counted it in local_in_flight_
      detail::LocalSlot slot = detail::LocalSlot::adopt(&local_in_flight_);
      auto fn = weft::detail::bind_task([task](auto&&... a) -> R { return task.run_here(std::forward<decltype(a)>(a)...); },
                                        std::forward<Args>(args)...);
      return pool_.submit([slot = std::move(slot), fn = std::move(fn)]() mutable -> R {
        return detail::run_counted(slot, fn);
      });
    }
    struct Abort {  // undoes the placement when anything below throws
      ClusterExecutor* ex;
      detail::RemoteCall* call;
      ~Abort() {
        if (call != nullptr) ex->abort_remote(call);
      }
    } abort{this, call};
    auto* state = new weft::detail::SharedState<R>();  // two references: the call's and the future's
    Future<R> future = weft::detail::adopt_future(state);
    call->state = state;
    call->complete = &detail::complete_remote<R>;
    Json json_args = Json::array({Json(std::forward<Args>(args))...});
    send_remote(call, task.name(), std::move(json_args));
    abort.call = nullptr;
    return future;
  }

  /// f(item) for every item on the local pool, in input order, in chunks of `chunk` items (0: about four
  /// chunks per local thread). Rethrows the first exception in input order after the chunks already running
  /// have finished (the others are cancelled). f is called concurrently.
  template <class F, std::ranges::forward_range Range>
    requires(!detail::IsTask<std::remove_cvref_t<F>>::value)
  auto map(F&& f, const Range& items, std::size_t chunk = 0) {
    return weft::detail::map_on(*this, local_threads(), std::forward<F>(f), items, chunk);
  }

  /// task(item) for every item, each a call placed like submit(task, item) (a message per remote item), the
  /// results in input order. On the first failure in input order the calls not yet started are cancelled
  /// (remote ones revoked), the local ones running are waited for, and the exception is rethrown.
  template <auto G, std::ranges::forward_range Range>
  std::vector<detail::TaskValue<G>> map(const Task<G>& task, const Range& items) {
    using R = detail::TaskValue<G>;
    static_assert(!std::is_void_v<R>, "map(task, items): the task must return a value; use submit() for void tasks");
    std::vector<Future<R>> parts;
    auto finish = [&parts](std::size_t from) {
      for (std::size_t i = from; i < parts.size(); ++i) parts[i].cancel();
      for (std::size_t i = from; i < parts.size(); ++i) parts[i].wait();
    };
    try {
      for (const auto& item : items) parts.push_back(submit(task, item));
    } catch (...) {
      finish(0);
      throw;
    }
    std::vector<R> out;
    out.reserve(parts.size());
    for (std::size_t i = 0; i < parts.size(); ++i) {
      try {
        out.push_back(parts[i].get());
      } catch (...) {
        finish(i + 1);
        throw;
      }
    }
    return out;
  }

  /// Stops taking work, drains or cancels the local pool, and waits until every remote call has settled
  /// (steps 8 at the top of this file). Idempotent; a later cancel_pending still cancels remote calls out.
  /// Called from a local task or a remote future's callback it does not wait (the destructor does).
  void shutdown(Shutdown mode = Shutdown::drain);

  /// The live workers as of the last discovery (at most one discovery_interval old).
  std::vector<WorkerInfo> workers() const;
  /// The CPUs of those workers, summed (the heartbeats' "cpus").
  std::size_t remote_cpus() const;
  /// Their task threads, summed (the heartbeats' "concurrency"), whatever tasks they registered.
  std::size_t remote_concurrency() const;
  /// The local pool's threads.
  std::size_t local_threads() const noexcept { return pool_.threads(); }
  /// Changes the local pool's threads while tasks run (ThreadPool::resize; throws what it throws).
  void set_local_threads(std::size_t threads) { pool_.resize(threads); }
  /// Rereads the workers' heartbeats now, on the calling thread. Throws weft::Error (backend failure).
  void refresh();
  ClusterStats stats() const;
  App& app() const noexcept { return app_; }
  const ClusterOptions& options() const noexcept { return options_; }

  /// Remote calls a collection round looks at, oldest first.
  static constexpr std::size_t kSweep = 256;

 private:
  using Steady = std::chrono::steady_clock;
  // What a collection round found for a call: succeeded (SUCCESS stored), ready (FAILURE or REVOKED stored),
  // cancelled (by its future, or by shutdown(cancel_pending)), failed (a backend error, drain_timeout).
  enum class Outcome : std::uint8_t { pending, succeeded, ready, cancelled, failed };
  struct Verdict {
    detail::RemoteCall* call;
    Outcome outcome;
    std::exception_ptr error;  // Outcome::failed
  };

  // Placement (steps 1-3): null for local (local_in_flight_ counted), else a new unsent call in calls_.
  // Throws BrokenExecutor after shutdown began.
  detail::RemoteCall* place(const std::string& task);
  // Sends the call's message and hands it to the collector. Throws what send_task throws.
  void send_remote(detail::RemoteCall* call, const std::string& task, Json args);
  // Removes a call whose send failed (its future gets BrokenPromise, but nobody holds it any more).
  void abort_remote(detail::RemoteCall* call) noexcept;
  // The task's capacity among the known workers (step 1); mu_ held.
  std::size_t capacity_locked(const std::string& task, const std::string& queue);
  void install(std::vector<WorkerInfo> seen);
  void discover() noexcept;
  void note_error(const std::string& what) noexcept;
  void collect();
  Verdict judge(detail::RemoteCall* call, bool cancel_queued, bool give_up);
  bool on_collector() const noexcept { return std::this_thread::get_id() == collector_id_.load(); }

  App& app_;
  const ClusterOptions options_;

  mutable std::mutex mu_;
  std::condition_variable work_cv_;   // the collector sleeps here: new calls, shutdown, quit
  std::condition_variable done_cv_;   // shutdown waits here for the table to empty
  std::condition_variable space_cv_;  // submitters wait here at max_remote_in_flight (local_tasks = false)
  std::map<std::uint64_t, detail::RemoteCall> calls_;  // guarded by mu_; ordered by submission
  std::uint64_t next_seq_ = 0;
  std::size_t remote_in_flight_ = 0;  // calls not yet settled
  std::vector<WorkerInfo> workers_;   // the last discovery
  std::unordered_map<std::string, std::size_t> capacity_;  // by "queue\ntask", cleared at each discovery
  Steady::time_point next_discovery_{};
  Steady::duration discovery_period_{};
  bool cancel_remote_ = false;  // shutdown(cancel_pending) was called
  bool quit_ = false;           // the destructor asks the collector to end once the table is empty
  std::optional<Steady::time_point> drain_deadline_;
  ClusterStats stats_;  // the remote and discovery counters; guarded by mu_

  std::atomic<bool> stopping_{false};
  std::atomic<std::ptrdiff_t> local_in_flight_{0};
  std::atomic<std::uint64_t> local_calls_{0};
  std::atomic<std::thread::id> collector_id_{};

  ThreadPool pool_;  // after the counters its tasks use: destroyed (joined) before them
  std::thread collector_;
};

static_assert(Executor<ClusterExecutor>);

}  // namespace weft::tasks
