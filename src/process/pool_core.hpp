// src/process/pool_core.hpp — the parent side of a ProcessPool (private to src/process): pool.cpp starts,
// feeds and repairs it, pool_collect.cpp collects results (the collector thread, and threads that wait on the
// pool's futures) and shuts it down. The protocol with the workers is in weft/process/detail/pool_protocol.hpp.
//
// Who does what:
//  - Submitting threads (enqueue): under mu_, record the task, and put it straight into the inbox of the
//    least busy live worker that is under its cap; otherwise append it to pending_ (bounded: block or reject)
//    and wake the collector.
//  - The collector thread (run): takes results from every outbox (it is the only consumer of outboxes),
//    completes the futures outside mu_, moves pending tasks into inboxes as workers get room, kills workers
//    whose task ran past its timeout, and handles dead workers (step list in on_worker_exit). It spins
//    ~50 µs when there is nothing to do, then sleeps in epoll on: the wake eventfd (workers write it after a
//    result when collector_sleeping is set; submitters when they queue to pending_ or shut down) and each
//    worker's exit-status descriptor (readable when the fork server reaped it).
//  - shutdown: stop_ makes enqueue refuse; drain waits (idle_cv_) until no task is left; cancel_pending
//    first fails the tasks that have not started with Cancelled. The collector then closes the inboxes (the
//    workers drain them and exit), joins the workers, and returns.
// Lock order: mu_ only; futures are completed with mu_ released (their callbacks may submit again).
#pragma once

#include <signal.h>
#include <sched.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <unistd.h>
#include <dlfcn.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <climits>
#include <condition_variable>
#include <cstring>
#include <deque>
#include <mutex>
#include <thread>
#include <unordered_map>
#include <unordered_set>

#include "weft/core/detail/clock.hpp"
#include "weft/core/detail/futex.hpp"
#include "weft/process/pool.hpp"
#include "weft/process/queue.hpp"
#include "weft/trace/trace.hpp"

namespace weft::process {
namespace detail {

namespace pool {
using Clock = std::chrono::steady_clock;
constexpr auto kSpinFor = std::chrono::microseconds(50);
constexpr std::int64_t kTargetQueueNs = 2'000'000;  // a worker's queue holds about this much work
constexpr std::size_t kMaxCap = 256;
constexpr int kMaxEarlyDeaths = 8;  // workers in a row that die before they are ready: the pool breaks

inline std::size_t available_cpus() {
  cpu_set_t set;
  CPU_ZERO(&set);
  if (sched_getaffinity(0, sizeof(set), &set) == 0) return std::max(1, CPU_COUNT(&set));
  return std::max(1u, std::thread::hardware_concurrency());
}

inline std::int64_t now_ns() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(Clock::now().time_since_epoch()).count();
}
}  // namespace pool
using pool::available_cpus;
using pool::Clock;
using pool::kMaxCap;
using pool::kMaxEarlyDeaths;
using pool::kSpinFor;
using pool::kTargetQueueNs;
using pool::now_ns;

class PoolWaiter;

class PoolCore : public std::enable_shared_from_this<PoolCore> {
 public:
  explicit PoolCore(ProcessPoolOptions o);
  ~PoolCore();
  /// Gives the pool its wait helper (after construction: it needs weak_from_this()).
  void attach_waiter();
  /// A thread waiting on one of the pool's futures collects results until it is ready (see help's steps).
  bool help(weft::detail::StateBase& s, const Clock::time_point* deadline);
  void enqueue(std::string message, std::unique_ptr<PendingResult> result, const SubmitOptions& options, void* fn,
               std::string_view name);
  void shutdown(Shutdown mode);
  std::size_t workers() const noexcept { return n_; }
  std::vector<int> pids() const;
  ProcessPoolStats stats() const;
  /// KillSwitch::kill of task `id` (see pool.hpp).
  void kill_task(std::uint64_t id);

 private:
  struct Task {
    std::string message;  // kept while pending; dropped once in an inbox
    std::unique_ptr<PendingResult> result;
    std::optional<std::chrono::nanoseconds> timeout;
    std::uint64_t submit_ticks = 0;
    const char* trace_name = nullptr;
    int worker = -1;
    bool started = false;  // result->start() succeeded (it was sent once; it may be sent again after a death)
    bool killed = false;   // its KillSwitch was used: its worker is killed as soon as it runs it
  };
  struct Worker {
    std::unique_ptr<Process> proc;
    std::unique_ptr<Queue> inbox;
    std::unique_ptr<Queue> outbox;
    std::unordered_set<std::uint64_t> held;  // tasks put in its inbox and not finished
    std::uint64_t timed_out = 0;             // the task it was killed for, if any
    bool alive = false;
  };
  struct Done {
    std::unique_ptr<PendingResult> result;
    std::exception_ptr error;
    std::string payload;
    bool ok = false;
    // tracing
    const char* name = nullptr;
    std::uint64_t id = 0, submit = 0, start = 0, end = 0;
    std::uint32_t worker = 0;
  };

  void spawn(std::uint32_t index);  // mu_ held
  bool dispatch_locked(std::uint64_t id, Task& t, std::vector<Done>& done);
  void pump_pending_locked(std::vector<Done>& done);
  std::size_t cap_locked() const;
  void complete(std::vector<Done>& done);
  void handle_result(std::uint32_t w, std::string_view msg, std::vector<Done>& done);  // mu_ held
  void on_worker_exit(std::uint32_t w, std::vector<Done>& done);                      // mu_ held
  void break_pool_locked(const std::string& why, std::vector<Done>& done);
  void check_timeouts_locked(std::int64_t now, std::int64_t& next_ns);
  // A killed task that did not start: its future fails with Cancelled, and the pool forgets it.
  void cancel_unstarted_locked(std::unordered_map<std::uint64_t, Task>::iterator it, std::vector<Done>& done);
  bool drain_outboxes(std::vector<Done>& done, bool collector);
  bool outboxes_nonempty_locked() const;
  void wake() noexcept;
  void run();
  const char* name_of(void* fn);

  const ProcessPoolOptions o_;
  const std::size_t n_;
  int wake_fd_ = -1;
  int epoll_fd_ = -1;
  int control_fd_ = -1;
  ControlBlock* cb_ = nullptr;
  std::uint32_t trace_executor_ = 0;

  mutable std::mutex mu_;
  std::condition_variable space_cv_;  // pending_ has room
  std::condition_variable idle_cv_;   // tasks_ became empty
  std::unordered_map<std::uint64_t, Task> tasks_;
  std::deque<std::uint64_t> pending_;
  std::vector<Worker> workers_;
  std::uint64_t next_id_ = 0;
  std::int64_t ewma_run_ns_ = kTargetQueueNs;  // pessimistic: one task per worker until results say more
  bool stop_ = false;
  bool broken_ = false;
  std::string broken_why_;
  int early_deaths_ = 0;
  bool has_timeouts_ = false;
  ProcessPoolStats stats_;
  std::unordered_map<void*, const char*> names_;
  std::thread collector_;
  std::once_flag joined_;
  PoolWaiter* waiter_ = nullptr;
};

// The WaitHelper the pool's futures name. Never destroyed (a future may be waited on at any time): when its
// pool ends it goes back to a free list and may serve a later pool. A waiter that reaches a recycled helper
// finds its own future ready (a pool completes every task before it ends), and help() returns at once.
class PoolWaiter final : public weft::detail::WaitHelper {
 public:
  bool help(weft::detail::StateBase& s, const Clock::time_point* deadline) override {
    if (s.ready()) return true;
    std::shared_ptr<PoolCore> core;
    {
      std::lock_guard lock(mu_);
      core = core_.lock();
    }
    if (!core) return s.block_until(deadline);
    return core->help(s, deadline);
  }
  static PoolWaiter* acquire(std::weak_ptr<PoolCore> core) {
    std::lock_guard lock(free_mu());
    PoolWaiter* w;
    if (free_list().empty()) {
      w = new PoolWaiter();  // never deleted: see above
    } else {
      w = free_list().back();
      free_list().pop_back();
    }
    std::lock_guard inner(w->mu_);
    w->core_ = std::move(core);
    return w;
  }
  static void release(PoolWaiter* w) {
    {
      std::lock_guard inner(w->mu_);
      w->core_.reset();
    }
    std::lock_guard lock(free_mu());
    free_list().push_back(w);
  }

 private:
  static std::mutex& free_mu() {
    static std::mutex m;
    return m;
  }
  static std::vector<PoolWaiter*>& free_list() {
    static auto* v = new std::vector<PoolWaiter*>();  // outlives every static destructor
    return *v;
  }
  std::mutex mu_;
  std::weak_ptr<PoolCore> core_;
};

}  // namespace detail
}  // namespace weft::process
