// weft/tasks/worker.hpp — runs an App's tasks from its broker on a pool: threads, processes, or an event loop.
//
// Each of `concurrency` threads loops:
//  1. takes the next prefetched message; when there is none, one thread at a time reserves more from the
//     worker's queues with reserve_many(), each under its own lease, up to the prefetch limit (the messages
//     the worker holds waiting to run or running);
//  2. decode it; a message that cannot be decoded, names no registered task, or carries arguments that do not
//     fit is poison: its task (when it names an id) gets FAILURE with a clear error, and it is acknowledged,
//     never retried; an expired one (expires passed) or a revoked one (App::revoke) gets REVOKED;
//  3. run the task (acks_late: acknowledge after; otherwise before), store SUCCESS or FAILURE unless
//     ignore_result, or — on Retry, or an exception its autoretry_for accepts, while retries are left —
//     publish it again with retries + 1 at now + its backoff delay, store RETRY, and acknowledge this delivery;
//     then send what the message's canvas asks for (callbacks, the rest of a chain, a chord's body).
//     With a backend that prefers batches (sqlite://), the thread hands the result and the acknowledgement to
//     the worker's completer thread and takes its next task at once: the completer stores every result
//     handed to it meanwhile with one durable commit (store_many), then sends their canvas, then
//     acknowledges them (ack_many). A result is visible, and its message acknowledged, only after that
//     commit; with acks_late, a worker that dies before leaves the message unacknowledged, so it runs again
//     (at-least-once).
// One housekeeping thread, while tasks run:
//  4. extends their leases every lease/3, so that a slow task is not delivered to another worker; a renewal
//     that fails is counted (lease_lost): another worker may run it as well;
//  5. every `control_interval` looks for revocations of the running tasks: the task's context reports
//     cancelled() (a task polls it to stop early; in a process pool it reports only the hard limit); with
//     terminate, the worker also stores REVOKED at once and acknowledges the delivery, and the task's own
//     result is discarded when it returns; a process pool then kills the task's process (it is replaced), an
//     async pool cancels its coroutine;
//  6. at a task's hard time limit stores FAILURE (TimeLimitExceeded) and acknowledges it; a thread cannot be
//     killed safely, so the function runs on until it returns (its result is discarded) and keeps its thread
//     busy meanwhile: tasks that may hang belong in a process pool, or should poll cancelled(). The soft limit
//     is reported by soft_time_limit_exceeded() for the task to act on;
//  7. every `heartbeat` writes the worker's description to the backend ("worker:<hostname>", living three
//     heartbeats): hostname, pid, CPUs, pool, concurrency, queues, the active tasks, counters, load average
//     and registered tasks. App::workers() and `weft inspect` read them; stop() removes it.
// stop(): no new reservations; the running tasks finish and their results are stored, the prefetched ones
// that did not start are handed back to the broker (ready at once for another worker) (a warm shutdown). A program that must stop at once
// (a cold shutdown) exits without stop(): the deliveries it held are not acknowledged, so the broker delivers
// them again once their leases end.
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <deque>
#include <exception>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <unordered_map>
#include <vector>

#include "weft/tasks/app.hpp"
#include "weft/tasks/beat.hpp"

namespace weft::process {
class ProcessPool;
}
namespace weft {
class ThreadPool;
}
namespace weft::io {
class Loop;
}

namespace weft::tasks {

/// Where a worker runs its tasks.
enum class Pool {
  threads,    ///< in this process, one thread per concurrency slot
  processes,  ///< in worker processes (crash isolation; a hard time limit kills the process): see WorkerOptions
  /// On one event loop thread (weft/io), for I/O-bound tasks: up to `concurrency` async tasks (coroutines
  /// returning io::Task<V>, App::task) run at once, interleaved at their awaits. A revocation with
  /// terminate, or the hard time limit, cancels the task's coroutine: weft::Cancelled at its current await,
  /// and the pending I/O is cancelled in the kernel. Plain (blocking) tasks sent to this pool run on a
  /// pool of one thread per CPU instead, so they never block the loop (their limits act as in Pool::threads).
  /// One thread reserves messages and prepares the tasks, another stores results. current_task() is null
  /// inside async tasks here (one thread interleaves many): they learn of cancellation as weft::Cancelled.
  /// Hazard: an async task that blocks (a blocking call, a long computation between awaits) stalls every
  /// task on the loop; hand such work to io::run_in_executor.
  async_,
};

/// "threads", "processes" or "async".
const char* to_string(Pool pool) noexcept;

/// A pool that grows and shrinks with the load (Celery's --autoscale max,min): it starts with `min` threads;
/// when a task starts and every thread is busy, one more thread (up to `max`) starts waiting for the next
/// message; a thread that found no message for `idle` ends while more than `min` run. Growing costs nothing
/// while the queue is empty: a waiting thread sleeps in the broker. With Pool::processes, `max` processes
/// are made at start (idle ones sleep) and the threads that feed them scale.
struct Autoscale {
  std::size_t max = 0;  ///< 1..4096
  std::size_t min = 1;  ///< 1..max
  std::chrono::milliseconds idle{5000};
};

struct WorkerOptions {
  /// Tasks at once; 0: the CPUs this process may use (Pool::async_: 100).
  std::size_t concurrency = 0;
  std::vector<std::string> queues = {"celery"};  ///< consumed together: higher priority first, then older
  std::chrono::milliseconds lease{30'000};       ///< how long a reserved task stays ours without renewal
  bool track_started = false;                    ///< store STARTED when a task begins (one more write per task)
  std::string hostname{};                        ///< default "weft@<host>"; unique per live worker
  std::chrono::milliseconds heartbeat{2000};     ///< how often the worker describes itself in the backend
  std::chrono::milliseconds control_interval{500};  ///< how often running tasks are checked for revocation
  Pool pool = Pool::threads;
  /// Pool::processes: the worker processes are forked from the fork server (weft/process/process.hpp: call
  /// start_fork_server() at the top of main), a copy of the program from before its tasks were registered,
  /// so each registers them again on a registry of its own: `setup(app)` is called there, and each task
  /// module in `modules` (WEFT_TASK_MODULE) is loaded there. At least one of the two is needed. Only the
  /// task's name, arguments and result cross between the processes (JSON text).
  void (*setup)(App&) = nullptr;
  std::vector<std::string> modules{};
  /// Pool::processes: a worker process is replaced after this many tasks (0: never), for leaky task code.
  std::uint64_t max_tasks_per_child = 0;
  /// Pool::processes: the largest arguments or result (JSON text) that cross to and from a worker process;
  /// a larger result fails its task. Each process has two shared-memory rings of this size. 1 KiB to
  /// kMaxEnvelope.
  std::size_t process_max_message = std::size_t{1} << 20;
  /// Grow and shrink between autoscale->min and max threads instead of a fixed `concurrency` (not with
  /// Pool::async_, whose tasks cost no thread each).
  std::optional<Autoscale> autoscale{};
  /// The most messages the worker holds at once under its leases waiting to run (prefetched) or running.
  /// 0: 4 × concurrency (autoscale: × max). At least concurrency (one per thread), at most kMaxPrefetch.
  /// (Finished tasks whose results wait for the completer are held as well: the 64 it may be storing,
  /// 64 more waiting, and one per thread waiting for room.) A larger prefetch saves broker round trips when tasks are short; a
  /// smaller one spreads long tasks better over several workers (a prefetched task waits for this worker
  /// even when another is idle). Prefetched leases are renewed like running ones; a killed worker's are
  /// delivered again when they end, and stop() hands them back at once.
  std::size_t prefetch = 0;
  static constexpr std::size_t kMaxPrefetch = 65'536;
};

struct WorkerStats {
  std::uint64_t received = 0;   ///< deliveries taken from the broker
  std::uint64_t succeeded = 0;
  std::uint64_t failed = 0;     ///< FAILURE stored (task raised, or poison)
  std::uint64_t retried = 0;
  std::uint64_t revoked = 0;    ///< expired before they ran
  std::uint64_t poison = 0;     ///< undecodable, unknown task, bad arguments
  std::uint64_t redelivered = 0;///< deliveries with delivery_count > 1 (a previous worker died or lost the lease)
  std::uint64_t lease_lost = 0; ///< renewals that found the lease gone
  std::uint64_t time_limited = 0;  ///< tasks failed at their hard time limit
  std::uint64_t processes_lost = 0;  ///< Pool::processes: tasks whose process died under them (WorkerLostError)
  std::uint64_t errors = 0;     ///< housekeeping or follow-up failures (heartbeat, canvas send); see last_error
  std::string last_error;       ///< the latest of those, for the operator
};

/// What the task running on the calling thread can ask about itself. Valid inside a task function only.
/// Thread-safe.
class TaskContext {
 public:
  virtual ~TaskContext() = default;
  virtual const std::string& id() const noexcept = 0;
  virtual const std::string& name() const noexcept = 0;
  virtual int retries() const noexcept = 0;
  /// The worker's hostname.
  virtual const std::string& hostname() const noexcept = 0;
  /// True once the task's soft time limit has passed.
  virtual bool soft_time_limit_exceeded() const noexcept = 0;
  /// True once the task should give up: it was revoked, or its hard time limit passed (its result will be
  /// discarded either way). Cheap: poll it in loops.
  virtual bool cancelled() const noexcept = 0;
};

/// The context of the task running on this thread, or null outside a task.
const TaskContext* current_task() noexcept;

/// How run_worker reports.
struct RunWorkerOptions {
  std::FILE* log = stderr;  ///< the banner, shutdown and final counters; null: silent
  std::string broker_url{};  ///< shown in the banner (default: the App's)
  std::optional<BeatOptions> beat{};  ///< also run a Beat with these entries (Celery's worker -B)
};

/// Runs a Worker in the calling thread until SIGTERM or SIGINT: the first signal stops it warm (the running
/// tasks finish, then it returns 0); a second signal during that wait ends the process at once with status
/// 128 + the signal (a cold shutdown: the tasks it held are delivered again when their leases end). The
/// previous handlers of both signals are restored before it returns. One at a time per process (throws
/// std::logic_error otherwise); throws what Worker throws.
int run_worker(App& app, WorkerOptions options, const RunWorkerOptions& run = {});

/// The worker's command line, for programs that register their own tasks and run as workers:
///   int main(int argc, char** argv) { App app({...}); app.task<&add>("add"); return worker_main(app, argc, argv); }
/// Flags: -c/--concurrency N, --prefetch N, -Q/--queues a,b, -n/--hostname NAME, --lease SECONDS, --heartbeat SECONDS,
/// -q/--quiet, -h/--help. Returns run_worker's status, or 2 after printing what is wrong with the flags.
int worker_main(App& app, int argc, char** argv);

}  // namespace weft::tasks

/// Defines the entry point of a task module: a shared library that `weft worker --load lib.so` (and `weft call
/// --load`) opens and asks to register its tasks:
///   WEFT_TASK_MODULE(app) { app.task<&add>("demo.add"); }
/// The module is built without linking weft (`add_library(mytasks MODULE ...)` with weft's include
/// directories): its calls into weft resolve to the loading weft command's own code, so module and command
/// must come from the same weft version. Code outside weft's task API that a module uses it links itself.
#define WEFT_TASK_MODULE(app) extern "C" void weft_register_tasks(::weft::tasks::App& app)

namespace weft::tasks {

/// A worker. start() launches its threads; the destructor stops it warm and joins. Thread-safe.
class Worker {
 public:
  /// Throws std::invalid_argument (no queues, lease, heartbeat or control interval not above 0; a process
  /// pool without setup or modules; autoscale limits out of range, or autoscale with Pool::async_); what
  /// ProcessPool's constructor throws (Pool::processes), or io::Loop's (Pool::async_: weft::Error).
  Worker(App& app, WorkerOptions options = {});
  ~Worker();
  Worker(const Worker&) = delete;
  Worker& operator=(const Worker&) = delete;

  /// Deletes the expired results (AppOptions::result_expires), writes the first heartbeat (App::workers()
  /// lists this worker once start() returns), then starts the threads (once). Throws std::logic_error when called twice, std::system_error.
  void start();
  /// Writes the heartbeat now (the housekeeper writes one every options.heartbeat), e.g. for a description
  /// of the tasks running at this moment. Errors are counted (stats().errors), not thrown.
  void heartbeat_now();
  /// Stops taking tasks and waits for the running ones (warm shutdown); removes its heartbeat before it
  /// returns. Idempotent; joins the threads. Counters are updated before a task's result is stored.
  void stop();
  WorkerStats stats() const;
  /// True once stop() has begun: the worker takes no new task (a long task may poll it to wind down early).
  bool stopping() const noexcept { return stopping_.load(std::memory_order_acquire); }
  const std::string& hostname() const noexcept { return hostname_; }
  /// The threads taking tasks now (fixed, or between the autoscale limits).
  std::size_t concurrency() const;

 private:
  struct Running;
  struct Completion;
  struct Prepared;
  struct Ran;
  struct Async;
  void consume(std::size_t slot);
  // Pool::async_: the thread that reserves and prepares tasks for the event loop.
  void feed();
  // Pool::async_: runs a prepared task on the loop thread (or a plain task on the blocking pool), then hands
  // its outcome to the concluding thread.
  io::Task<void> run_async(std::shared_ptr<Running> r, std::shared_ptr<const Prepared> p);
  void conclude_async(const std::shared_ptr<Running>& r, const Prepared& p, Ran x);
  // Pool::async_: a task slot is free again; `taken`: it held a message from next() (active_).
  void release_slot(bool taken);
  // The next prefetched message for a consume thread (reserving more when there are none); null at the
  // deadline, on stop, or after a broker error (counted).
  std::shared_ptr<Running> next(std::optional<std::chrono::steady_clock::time_point> deadline);
  void complete(Completion c);
  void finish(std::vector<Completion>& batch);
  void forget_all(const std::vector<Completion>& batch);
  void run_completer();
  void unregister(const std::string& tag);
  void grow_locked();
  void housekeep();
  void handle(const std::shared_ptr<Running>& r);
  // The steps of handle(): decode and check a delivery (null: it ended already — poison, expired, revoked);
  // run the task here (threads) or in a process; store its outcome, retry it, or discard it.
  // defer_rate_limit: a rate limit's wait is left to the caller (Prepared::start_at) instead of done here.
  std::shared_ptr<const Prepared> prepare(const std::shared_ptr<Running>& r, bool defer_rate_limit = false);
  Ran run_here(const std::shared_ptr<Running>& r, const Prepared& p);
  Ran run_in_process(const Prepared& p);
  void conclude(const std::shared_ptr<Running>& r, const Prepared& p, Ran x);
  // What an exception from a task (or from its arguments' conversion) means for it.
  static void classify(std::exception_ptr error, const TaskOptions& o, int retries, Ran& x);
  // A delivery ends: `state` with `result` is stored under `id` (unless ignored or there is no id), the
  // message acknowledged (unless it was before it ran), then the canvas of `after` sent.
  void end(const std::shared_ptr<Running>& r, const std::string& id, State state, const Json& result,
           const std::string& name, int retries, bool ignore, const std::shared_ptr<const TaskMessage>* after);
  void count(std::uint64_t WorkerStats::*field);
  // A consume thread's handling failed (storing, acknowledging or publishing a retry): the message goes back.
  void recover(const std::shared_ptr<Running>& r, const std::exception& e);
  bool store(const ResultMeta& m);
  void heartbeat(bool online);
  // Deletes the results older than the App's result_expires (errors are counted, not thrown).
  void expire_results();
  void note_error(const std::string& what);
  // Ends a running task early (hard time limit, revoked with terminate): stores `state` with `result`, acks.
  // False when the task had been settled already (by its own thread).
  bool abandon(const std::shared_ptr<Running>& r, State state, const Json& result);
  void after_task(const TaskMessage& m, State state, const Json& result);

  App& app_;
  WorkerOptions options_;
  std::string hostname_;
  std::shared_ptr<Broker> broker_;  // this worker's own connection (interrupting it stops only this worker)
  std::unique_ptr<process::ProcessPool> processes_;  // Pool::processes
  std::unique_ptr<Async> async_;                    // Pool::async_
  std::vector<std::thread> threads_;  // one slot per thread there may be; a slot is reused once its thread ended
  std::vector<char> alive_;           // per slot, guarded by mu_
  std::size_t live_ = 0;              // threads taking tasks, guarded by mu_
  std::thread housekeeper_;
  std::atomic<bool> stopping_{false};
  bool consumers_done_ = false;  // guarded by mu_: every consume thread has ended; the housekeeper may end
  bool started_ = false;
  mutable std::mutex mu_;
  std::mutex join_mu_;  // serialises the joins of concurrent stop() calls
  std::condition_variable cv_;  // the housekeeper sleeps here; stop() and task starts that need it wake it
  std::chrono::steady_clock::time_point hk_wake_ = std::chrono::steady_clock::time_point::max();  // guarded by mu_
  std::condition_variable take_cv_;  // consume threads wait here for a prefetched message or room to fetch
  std::size_t takers_ = 0;           // guarded by mu_: threads waiting on take_cv_
  // Every message the worker holds (prefetched, running, completing), by delivery tag, guarded by mu_.
  std::unordered_map<std::string, std::shared_ptr<Running>> running_;
  std::deque<std::shared_ptr<Running>> waiting_;  // prefetched, not started; guarded by mu_
  bool fetching_ = false;  // guarded by mu_: a consume thread is in reserve_many
  std::size_t active_ = 0;  // guarded by mu_: consume threads handling a task (autoscale grows when all are)
  std::size_t in_flight_ = 0;  // guarded by mu_: Pool::async_: tasks handed to the loop and not concluded
  bool loop_ended_ = false;    // guarded by mu_: Pool::async_: the loop thread has ended
  std::condition_variable slot_cv_;  // Pool::async_: the feeder waits here for in_flight_ below concurrency
  std::size_t prefetch_ = 0;
  // The completer (backends that prefer batches): completions_ guarded by done_mu_.
  static constexpr std::size_t kMaxPendingResults = 64;
  bool batch_results_ = false;
  std::size_t completing_ = 0;  // guarded by mu_: handed to the completer, still in running_
  std::mutex done_mu_;
  std::condition_variable done_cv_;   // the completer waits for completions
  std::condition_variable room_cv_;   // consume threads wait for room below kMaxPendingResults
  std::vector<Completion> completions_;
  bool completer_stop_ = false;
  std::thread completer_;
  WorkerStats stats_;  // guarded by mu_
  std::unordered_map<std::string, std::chrono::steady_clock::time_point> next_slot_;  // rate limits, by task
};

}  // namespace weft::tasks
