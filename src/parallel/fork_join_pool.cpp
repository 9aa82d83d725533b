// ForkJoinPool: the worker loop, stealing, helping while waiting, sleep/wake and shutdown.
//
// Queues. Each worker owns a WorkDeque (Chase–Lev; see work_deque.hpp). A job scheduled by a worker of this
// pool goes to the bottom of that worker's deque; a job from any other thread goes to the injection queue,
// a bounded MPMC ring. A worker looks for work in this order: its own deque (newest first), then the
// other workers' deques (oldest first, starting at a random victim, each once), then the injection queue.
//
// Helping. Every wait inside the pool goes through work_until(worker, condition): join's stolen half, a
// TaskGroup, and any weft::Future (each worker installs a WaitHook, so Future::get/wait inside a job lands
// here). The worker runs jobs while the condition is false, in the order above, and sleeps (below) only
// when it finds none; the condition's owner wakes it (JobLatch records the sleeping worker's index; a Future
// gets a done-callback that unparks it). A worker with less than a quarter of its stack left stops taking
// other workers' and outside jobs while it waits — it runs only its own deque, whose jobs are its callees'
// children — so helping cannot overflow the stack.
//
// Sleep/wake protocol (no lost wake-ups; a push pays one fence and one load when nobody sleeps; at most one
// worker is woken per push, and sleeping workers are woken one at a time as work spreads):
//  1. A worker that finds no job becomes *searching* (Sleep::counts() searching += 1) and keeps looking for
//     `spin`. It leaves searching when it finds a job; if it was the last searcher, it wakes one parked
//     worker (wake_one), so that while work keeps coming one worker is always looking for it.
//  2. Giving up, it parks (Sleep::park_begin: under the sleep mutex it joins the sleepers and leaves the
//     searching and awake counts with a seq_cst RMW), issues a seq_cst fence, then re-checks its condition
//     and — if it was the last searcher — every queue. Anything found: park_cancel and go on. Otherwise it
//     futex-waits on its own slot word until a waker clears it.
//  3. A producer publishes the job (deque push: release store of bottom; injection: the ring's release
//     store), issues a seq_cst fence and loads the counts. If nobody is searching and somebody is parked,
//     it wakes one (wake_one re-checks under the mutex, moves one sleeper back to awake+searching and
//     futex-wakes it).
//     Why nothing is lost: the fences of 2 and 3 are Dekker's. If the producer's load came before the last
//     searcher's decrement, it saw a searcher and woke nobody — but then the last searcher's fence follows
//     the producer's, so its re-check of every queue sees the job. Otherwise the producer sees no searcher
//     and the worker parked, and wakes it (or another sleeper).
//  4. A woken worker comes back counted as searching (the waker counted it), looks for work, and leaves
//     searching as in 1. If it leaves without a job (its condition became true) and was the last searcher,
//     it looks at every queue once more and passes the wake-up on if anything is there (a wake_one meant
//     for new work may have reached a waiter whose join just finished).
//  5. Completion wake-ups: a JobLatch's finisher gets the sleeping worker's index from its own decrement and
//     calls Sleep::unpark(index); a Future's done-callback does the same through a shared_ptr<Sleep>, so it
//     is safe even after the pool is gone. A worker re-checks its condition after park_begin (step 2), and
//     unpark runs under the same mutex, so a completion that happens before the worker is in the sleepers
//     list is seen by the re-check, and one after it finds the worker parked and wakes it.
//  6. Threads outside the pool (invoke, join from outside, TaskGroup::wait) wait on external_ec_: they mark
//     the latch (kExternal) and the finisher notifies the event count.
//
// Shutdown protocol:
//  1. `stopping` = true (submit/post then throw BrokenExecutor everywhere; join and TaskGroup keep working
//     inside running jobs), `cancelling` = true for Shutdown::cancel_pending, then the injection ring is closed
//     (outside pushes fail → BrokenExecutor; pushes that claimed a slot first are still delivered).
//  2. cancel_pending: the calling thread pops the injection queue, cancels the cancellable jobs (submit/
//     post) and hands the others (invoke, TaskGroup jobs) to the workers through `leftover`; workers that
//     meet a cancellable job while `cancelling` is set cancel it instead of running it. While jobs are in
//     the caller's hands (`handing_over`), no queue counts as drained, so no worker leaves them behind.
//  3. Wake every worker. A worker leaves its loop when `stopping` is set and every queue is empty, then
//     wakes all the others so that they re-check (the last job may have been theirs to see finish).
//  4. The calling thread joins the workers (not from a worker of this pool: it would join itself; then the
//     destructor joins).
#include "weft/parallel/fork_join_pool.hpp"

#include <pthread.h>
#include <sched.h>

#include <algorithm>
#include <cstring>
#include <mutex>
#include <stdexcept>
#include <string>
#include <system_error>
#include <vector>

#include "sleep.hpp"
#include "weft/core/detail/clock.hpp"
#include "weft/core/detail/futex.hpp"
#include "weft/core/detail/wait_hook.hpp"
#include "weft/parallel/detail/work_deque.hpp"
#include "weft/sync/detail/mpmc_ring.hpp"
#include "weft/sync/event_count.hpp"
#include "weft/thread/thread.hpp"
#include "weft/trace/trace.hpp"

namespace weft {

using detail::Deadline;
using detail::Job;
using detail::JobLatch;
using detail::JobMode;
using detail::JobOutcome;

namespace {

std::size_t available_cpus() noexcept {
  cpu_set_t set;
  CPU_ZERO(&set);
  if (sched_getaffinity(0, sizeof(set), &set) == 0) {
    const int n = CPU_COUNT(&set);
    if (n > 0) return static_cast<std::size_t>(n);
  }
  const unsigned hc = std::thread::hardware_concurrency();
  return hc != 0 ? hc : 1;
}

std::size_t round_up_pow2(std::size_t n) noexcept {
  std::size_t p = 1;
  while (p < n) p <<= 1;
  return p;
}

// A condition a worker waits for while it helps. ready() is polled; arm() registers for a wake-up when it
// becomes true (false: it already is); disarm() undoes arm() after the wait.
struct WaitCondition {
  virtual bool ready() = 0;
  virtual bool arm(std::uint32_t worker) = 0;
  virtual void disarm() {}
  virtual bool top_level() const { return false; }

 protected:
  ~WaitCondition() = default;
};

}  // namespace

struct ForkJoinPool::Core {
  struct Worker final : detail::WaitHook {
    Worker(Core& c, std::uint32_t i, std::size_t deque_capacity)
        : core(c), index(i), deque(std::min<std::size_t>(256, deque_capacity), deque_capacity),
          rng(0x9e3779b97f4a7c15ull * (i + 1)) {}

    bool wait(detail::StateBase& state, const Deadline* deadline) override {
      return core.wait_future(*this, state, deadline);
    }

    std::uint32_t next_random() noexcept {  // xorshift64
      rng ^= rng << 13;
      rng ^= rng >> 7;
      rng ^= rng << 17;
      return static_cast<std::uint32_t>(rng >> 32);
    }

    // Single writer (this worker); relaxed loads elsewhere (stats()).
    static void bump(std::atomic<std::uint64_t>& c) noexcept {
      c.store(c.load(std::memory_order_relaxed) + 1, std::memory_order_relaxed);
    }

    Core& core;
    const std::uint32_t index;
    detail::WorkDeque deque;
    std::uint64_t rng;
    bool searching = false;
    std::uintptr_t stack_top = 0;  // an address near the top of this worker's stack
    std::uint64_t trace_seq = 0;
    pthread_t thread{};
    bool started = false;
    std::atomic<std::uint64_t> executed{0}, failed{0}, cancelled{0}, stolen{0}, parks{0};
  };

  Core(ForkJoinPool& pool, const ForkJoinPoolOptions& o, std::size_t threads)
      : owner(pool),
        n(static_cast<std::uint32_t>(threads)),
        spin_ticks(detail::to_ticks(o.spin)),
        stack_size(std::max<std::size_t>(o.stack_size, std::size_t{256} << 10)),
        trace_id(trace::register_executor(o.name)),
        injection(o.capacity),
        sleep(std::make_shared<detail::Sleep>(static_cast<std::uint32_t>(threads))) {
    const std::size_t dq = round_up_pow2(o.deque_capacity);
    workers.reserve(threads);
    for (std::size_t i = 0; i < threads; ++i) workers.push_back(std::make_unique<Worker>(*this, static_cast<std::uint32_t>(i), dq));
  }

  // ---- running jobs ----

  void execute(Worker& w, Job* job) noexcept {
    JobLatch* latch = job->latch;  // read first: a heap job is gone after entry
    const bool traced = job->traced && trace::enabled();
    const char* name = job->name;
    const std::uint64_t stamp = job->stamp;
    const bool task = job->cancellable;  // a submit/post job (the ones whose cancellation is counted)
    const bool cancel = task && cancelling.load(std::memory_order_acquire);
    const std::uint64_t start = traced ? detail::ticks() : 0;
    const JobOutcome outcome = job->entry(job, cancel ? JobMode::cancel : JobMode::run);
    if (traced) {
      const std::uint64_t end = detail::ticks();
      trace::record(trace::Span{name != nullptr ? name : "job", (std::uint64_t{w.index} << 40) | ++w.trace_seq,
                                stamp != 0 ? stamp : start, start, end, trace_id, w.index,
                                outcome == JobOutcome::failed});
    }
    Worker::bump(w.executed);
    if (outcome == JobOutcome::failed) Worker::bump(w.failed);
    if (outcome == JobOutcome::cancelled && task) Worker::bump(w.cancelled);
    if (latch != nullptr) release(latch->count_down());
  }

  // Wakes whoever a latch's count_down() said sleeps on it.
  void release(std::uint64_t wake) noexcept {
    if (wake == 0) return;
    if ((wake & JobLatch::kWorker) != 0) sleep->unpark(JobLatch::worker_of(wake));
    if ((wake & JobLatch::kExternal) != 0) external_ec.notify_all();
  }

  // ---- finding jobs ----

  bool may_steal(const Worker& w) const noexcept {
    const auto here = reinterpret_cast<std::uintptr_t>(__builtin_frame_address(0));
    const std::uintptr_t used = w.stack_top > here ? w.stack_top - here : 0;
    return used < stack_size - stack_size / 4;
  }

  Job* steal_any(Worker& w) noexcept {
    if (n > 1) {
      const std::uint32_t start = w.next_random() % n;
      for (std::uint32_t k = 0; k < n; ++k) {
        const std::uint32_t v = (start + k) % n;
        if (v == w.index) continue;
        Job* job = workers[v]->deque.steal();
        if (job == nullptr && !workers[v]->deque.empty()) job = workers[v]->deque.steal();  // lost a race: once more
        if (job != nullptr) {
          Worker::bump(w.stolen);
          return job;
        }
      }
    }
    Job* job = nullptr;
    if (injection.try_pop(job)) {
      space_ec.notify_one();  // one slot freed: one waiting outside producer may take it
      return job;
    }
    if (has_leftover.load(std::memory_order_acquire)) {
      std::scoped_lock lock(leftover_mutex);
      if (!leftover.empty()) {
        job = leftover.back();
        leftover.pop_back();
      }
      has_leftover.store(!leftover.empty(), std::memory_order_release);
    }
    return job;
  }

  // Anything queued anywhere (a snapshot).
  bool any_work() const noexcept {
    if (injection.has_ready() || has_leftover.load(std::memory_order_acquire)) return true;
    for (const auto& w : workers) {
      if (!w->deque.empty()) return true;
    }
    return false;
  }

  // Every queue is empty and closed to outside pushes (shutdown).
  bool drained() const noexcept {
    if (handing_over.load(std::memory_order_seq_cst) != 0) return false;  // jobs between injection and leftover
    if (!injection.drained() || has_leftover.load(std::memory_order_acquire)) return false;
    for (const auto& w : workers) {
      if (!w->deque.empty()) return false;
    }
    return true;
  }

  // ---- searching and sleeping ----

  void enter_searching(Worker& w) noexcept {
    if (w.searching) return;
    w.searching = true;
    sleep->counts().fetch_add(detail::Sleep::kSearching, std::memory_order_seq_cst);
  }

  void leave_searching(Worker& w, bool found_job) noexcept {
    if (!w.searching) return;
    w.searching = false;
    const std::uint32_t prev = sleep->counts().fetch_sub(detail::Sleep::kSearching, std::memory_order_seq_cst);
    if (detail::Sleep::searching(prev) != 1) return;
    if (found_job) {
      sleep->wake_one();  // step 1: keep one worker looking while work keeps coming
    } else {
      std::atomic_thread_fence(std::memory_order_seq_cst);  // step 4: pairs with the producers' fence
      if (any_work()) sleep->wake_one();
    }
  }

  // After publishing a job (step 3).
  void notify_work() noexcept {
    std::atomic_thread_fence(std::memory_order_seq_cst);  // pairs with the fence in park() (Dekker)
    if (sleep->should_wake(sleep->counts().load(std::memory_order_relaxed))) sleep->wake_one();
  }

  // Step 2. Returns when woken, when the re-check found something, or at the deadline; the worker is then
  // counted as searching.
  void park(Worker& w, WaitCondition& cond, const Deadline* deadline) {
    if (!cond.arm(w.index)) return;  // the condition already holds: nothing to sleep for
    const std::uint32_t prev = sleep->park_begin(w.index, w.searching);
    const bool last_searcher = w.searching && detail::Sleep::searching(prev) == 1;
    w.searching = true;  // from here on the worker comes back counted as searching, whoever wakes it
    std::atomic_thread_fence(std::memory_order_seq_cst);  // pairs with notify_work()'s fence
    if (cond.ready() || (last_searcher && any_work()) || (cond.top_level() && stopping.load(std::memory_order_acquire) && drained())) {
      sleep->park_cancel(w.index);
    } else {
      Worker::bump(w.parks);
      sleep->park_wait(w.index, deadline);
    }
    cond.disarm();
  }

  // Runs jobs until cond.ready() (true) or the deadline passes (false). See "Helping" above.
  bool work_until(Worker& w, WaitCondition& cond, const Deadline* deadline) {
    std::uint64_t spin_until = 0;
    for (;;) {
      if (cond.ready()) {
        leave_searching(w, false);
        return true;
      }
      Job* job = w.deque.pop();
      const bool steal = cond.top_level() || may_steal(w);
      if (job == nullptr && steal) job = steal_any(w);
      if (job != nullptr) {
        leave_searching(w, true);
        execute(w, job);
        continue;
      }
      if (deadline != nullptr && std::chrono::steady_clock::now() >= *deadline) {
        leave_searching(w, false);
        return cond.ready();
      }
      if (!w.searching) {
        enter_searching(w);
        spin_until = detail::ticks() + spin_ticks;
      }
      if (steal && detail::ticks() < spin_until) {
        for (int i = 0; i < 16; ++i) detail::cpu_relax();
        continue;
      }
      // Short of stack, this worker cannot take the work a producer woke it for: pass that wake-up on
      // (step 4) and sleep without counting as a searcher.
      if (!steal) leave_searching(w, false);
      park(w, cond, deadline);
      spin_until = detail::ticks() + spin_ticks;
    }
  }

  bool wait_future(Worker& w, detail::StateBase& state, const Deadline* deadline) {
    struct FutureCondition final : WaitCondition {
      FutureCondition(detail::StateBase& s, std::shared_ptr<detail::Sleep> sl) : state(s), sleep(std::move(sl)) {}
      bool ready() override { return state.ready(); }
      bool arm(std::uint32_t worker) override {
        if (!callback_added) {
          callback_added = true;
          // Wakes this worker when the future becomes ready, even if that happens after the pool is gone
          // (the Sleep object is shared) or after this wait has ended (a spurious wake-up, harmless).
          state.add_callback([sleep = sleep, worker] { sleep->unpark(worker); });
        }
        return !state.ready();
      }
      detail::StateBase& state;
      std::shared_ptr<detail::Sleep> sleep;
      bool callback_added = false;
    } cond(state, sleep);
    return work_until(w, cond, deadline);
  }

  void wait_latch(Worker& w, JobLatch& latch) {
    struct LatchCondition final : WaitCondition {
      explicit LatchCondition(JobLatch& l) : latch(l) {}
      bool ready() override { return latch.done(); }
      bool arm(std::uint32_t worker) override {
        armed = latch.arm_worker(worker);
        return armed;
      }
      void disarm() override {
        if (armed) latch.disarm_worker();
        armed = false;
      }
      JobLatch& latch;
      bool armed = false;
    } cond(latch);
    (void)work_until(w, cond, nullptr);
  }

  void wait_external(JobLatch& latch) {
    for (int i = 0; i < 1024; ++i) {
      if (latch.done()) return;
      detail::cpu_relax();
    }
    // Leave only through done() (an acquire load): it is what makes the jobs' writes visible here.
    while (!latch.done()) {
      const EventCount::Key key = external_ec.prepare_wait();
      if (!latch.arm_external() || latch.done()) {
        external_ec.cancel_wait();
        continue;
      }
      external_ec.wait(key);
    }
  }

  // ---- scheduling ----

  void inject(Job* job) {
    for (;;) {
      detail::PushResult r = injection.try_emplace(0, job);
      if (r == detail::PushResult::full) {
        const EventCount::Key key = space_ec.prepare_wait();
        r = injection.try_emplace(0, job);
        if (r == detail::PushResult::full) {
          space_ec.wait(key);
          continue;
        }
        space_ec.cancel_wait();
      }
      if (r == detail::PushResult::closed) throw BrokenExecutor("weft: the ForkJoinPool has been shut down");
      notify_work();
      return;
    }
  }

  // ---- workers ----

  void worker_main(Worker& w) {
    int top = 0;
    w.stack_top = reinterpret_cast<std::uintptr_t>(&top);
    current_worker = &w;
    detail::WaitHook* previous = detail::exchange_wait_hook(&w);
    struct StopCondition final : WaitCondition {
      explicit StopCondition(Core& c) : core(c) {}
      bool ready() override { return core.stopping.load(std::memory_order_acquire) && core.drained(); }
      bool arm(std::uint32_t) override { return true; }
      bool top_level() const override { return true; }
      Core& core;
    } stop(*this);
    (void)work_until(w, stop, nullptr);
    detail::exchange_wait_hook(previous);
    current_worker = nullptr;
    sleep->unpark_all();  // shutdown step 3: the others re-check
  }

  static void* thread_entry(void* arg) {
    auto* w = static_cast<Worker*>(arg);
    this_thread::set_name(w->core.owner.name_ + "-" + std::to_string(w->index));
    w->core.worker_main(*w);
    return nullptr;
  }

  void start_workers() {
    pthread_attr_t attr;
    if (int rc = pthread_attr_init(&attr); rc != 0) throw std::system_error(rc, std::generic_category(), "pthread_attr_init");
    if (int rc = pthread_attr_setstacksize(&attr, stack_size); rc != 0) {
      pthread_attr_destroy(&attr);
      throw std::system_error(rc, std::generic_category(), "weft: ForkJoinPool stack_size");
    }
    int rc = 0;
    for (auto& w : workers) {
      rc = pthread_create(&w->thread, &attr, &Core::thread_entry, w.get());
      if (rc != 0) break;
      w->started = true;
    }
    pthread_attr_destroy(&attr);
    if (rc != 0) {
      begin_shutdown(Shutdown::drain);
      join_workers();
      throw std::system_error(rc, std::generic_category(), "weft: cannot start a ForkJoinPool worker");
    }
  }

  void begin_shutdown(Shutdown mode) {
    if (mode == Shutdown::cancel_pending) {
      cancelling.store(true, std::memory_order_release);
      // The jobs popped below are in no queue until they reach leftover: workers must not take the queues
      // for drained (and exit) meanwhile.
      handing_over.fetch_add(1, std::memory_order_seq_cst);
    }
    stopping.store(true, std::memory_order_seq_cst);
    injection.close();
    if (mode == Shutdown::cancel_pending) {
      Job* job = nullptr;
      std::vector<Job*> keep;
      while (injection.try_pop(job)) {
        if (job->cancellable) {
          (void)job->entry(job, JobMode::cancel);
          cancelled_by_caller.fetch_add(1, std::memory_order_relaxed);
        } else {
          keep.push_back(job);
        }
      }
      if (!keep.empty()) {
        std::scoped_lock lock(leftover_mutex);
        leftover.insert(leftover.end(), keep.begin(), keep.end());
        has_leftover.store(true, std::memory_order_release);
      }
      handing_over.fetch_sub(1, std::memory_order_seq_cst);
    }
    space_ec.notify_all();
    sleep->unpark_all();
  }

  void join_workers() {
    std::scoped_lock lock(join_mutex);
    for (auto& w : workers) {
      if (w->started) {
        pthread_join(w->thread, nullptr);
        w->started = false;
      }
    }
  }

  ForkJoinPool& owner;
  const std::uint32_t n;
  const std::uint64_t spin_ticks;
  const std::size_t stack_size;
  const std::uint32_t trace_id;
  detail::MpmcRing<Job*> injection;
  const std::shared_ptr<detail::Sleep> sleep;
  EventCount external_ec;  // outside threads waiting on a latch
  EventCount space_ec;     // outside producers waiting for room in the injection queue
  std::vector<std::unique_ptr<Worker>> workers;
  std::atomic<bool> stopping{false};
  std::atomic<bool> cancelling{false};
  std::atomic<bool> has_leftover{false};
  std::atomic<int> handing_over{0};  // shutdown(cancel_pending) calls moving jobs from injection to leftover
  std::mutex leftover_mutex;
  std::vector<Job*> leftover;  // jobs shutdown(cancel_pending) took from the injection queue but may not cancel
  std::atomic<std::uint64_t> cancelled_by_caller{0};
  std::mutex join_mutex;

  static thread_local Worker* current_worker;
};

thread_local ForkJoinPool::Core::Worker* ForkJoinPool::Core::current_worker = nullptr;

// ---- ForkJoinPool ----

namespace {
ForkJoinPoolOptions validated(ForkJoinPoolOptions o) {
  if (o.capacity == 0) throw std::invalid_argument("weft: ForkJoinPool capacity must be at least 1");
  if (o.deque_capacity < 2) throw std::invalid_argument("weft: ForkJoinPool deque_capacity must be at least 2");
  if (o.threads == 0) o.threads = available_cpus();
  if (o.threads > detail::Sleep::kMaxWorkers) throw std::invalid_argument("weft: ForkJoinPool threads must be at most 32767");
  return o;
}
}  // namespace

ForkJoinPool::ForkJoinPool(ForkJoinPoolOptions options) : ForkJoinPool(validated(std::move(options)), 0) {}

ForkJoinPool::ForkJoinPool(std::size_t threads) : ForkJoinPool(ForkJoinPoolOptions{.threads = threads}) {}

ForkJoinPool::ForkJoinPool(ForkJoinPoolOptions&& o, int)
    : threads_(o.threads),
      name_(o.name),
      on_error_(o.on_error ? std::move(o.on_error)
                           : std::function<void(std::exception_ptr)>([](std::exception_ptr e) {
                               report_unhandled_exception(e, "a task posted to a ForkJoinPool");
                             })),
      core_(std::make_unique<Core>(*this, o, o.threads)) {
  core_->start_workers();
}

ForkJoinPool::~ForkJoinPool() {
  if (in_pool()) std::terminate();  // a worker cannot join itself
  shutdown(Shutdown::drain);
}

void ForkJoinPool::shutdown(Shutdown mode) {
  if (!core_->stopping.load(std::memory_order_acquire) || mode == Shutdown::cancel_pending) {
    core_->begin_shutdown(mode);
  }
  if (!in_pool()) core_->join_workers();
}

bool ForkJoinPool::in_pool() const noexcept {
  Core::Worker* w = Core::current_worker;
  return w != nullptr && &w->core == core_.get();
}

ForkJoinPool* ForkJoinPool::current() noexcept {
  Core::Worker* w = Core::current_worker;
  return w != nullptr ? &w->core.owner : nullptr;
}

int ForkJoinPool::current_worker_index() noexcept {
  Core::Worker* w = Core::current_worker;
  return w != nullptr ? static_cast<int>(w->index) : -1;
}

void ForkJoinPool::schedule(Job* job, bool task) {
  Core& c = *core_;
  if (task && c.stopping.load(std::memory_order_acquire)) {
    throw BrokenExecutor("weft: the ForkJoinPool has been shut down");
  }
  if (job->traced && trace::enabled()) job->stamp = detail::ticks();
  Core::Worker* w = Core::current_worker;
  if (w != nullptr && &w->core == &c) {
    if (!w->deque.push(job)) {
      c.execute(*w, job);  // the deque is at its limit: run it now, as a call
      return;
    }
    c.notify_work();
    return;
  }
  c.inject(job);
}

bool ForkJoinPool::push_local(Job* job) {
  Core::Worker* w = Core::current_worker;
  if (!w->deque.push(job)) return false;
  core_->notify_work();
  return true;
}

bool ForkJoinPool::take_back(Job* job) {
  Core::Worker& w = *Core::current_worker;
  for (;;) {
    Job* j = w.deque.pop();
    if (j == nullptr) return false;
    if (j == job) return true;
    core_->execute(w, j);  // left behind by the first half (e.g. a detached submit): run it now
  }
}

void ForkJoinPool::wait_latch(JobLatch& latch) {
  if (latch.done()) return;
  Core::Worker* w = Core::current_worker;
  if (w != nullptr && &w->core == core_.get()) {
    core_->wait_latch(*w, latch);
  } else {
    core_->wait_external(latch);
  }
}

void ForkJoinPool::wait_external(JobLatch& latch) { core_->wait_external(latch); }

ForkJoinPoolStats ForkJoinPool::stats() const {
  ForkJoinPoolStats s;
  s.threads = threads_;
  s.queued = core_->injection.size();
  for (const auto& w : core_->workers) {
    s.queued += w->deque.size();
    s.executed += w->executed.load(std::memory_order_relaxed);
    s.failed += w->failed.load(std::memory_order_relaxed);
    s.cancelled += w->cancelled.load(std::memory_order_relaxed);
    s.stolen += w->stolen.load(std::memory_order_relaxed);
    s.parks += w->parks.load(std::memory_order_relaxed);
  }
  s.cancelled += core_->cancelled_by_caller.load(std::memory_order_relaxed);
  return s;
}

ForkJoinPool& default_pool() {
  static ForkJoinPool pool(ForkJoinPoolOptions{.name = "weft-default"});
  return pool;
}

}  // namespace weft
