// ThreadPool: queues, the worker loop, sleep/wake, shutdown and resize.
//
// Queues. One bounded lock-free ring (MpmcRing, Vyukov) per priority level, made on first use. Each slot
// stores the task and a stamp (ticks at submit). A worker picks, among the heads of the non-empty levels, the
// one with the highest level·aging + waited (aging: "a task that waited `aging` counts one level higher");
// with one level in use it just pops that ring. Within a level the ring is FIFO.
//
// Sleep/wake protocol (no lost wake-ups; a producer pays one fence and two loads when nobody sleeps, and
// at most one futex wake is in flight at a time, so a burst of pushes does not become a burst of syscalls):
//  1. A worker with nothing to do spins for `spin` (spinning_ counts such workers), polling the rings.
//  2. Giving up, it leaves spinning_ (seq_cst RMW), clears wake_pending_, registers in work_ec_
//     (prepare_wait: RMW + seq_cst fence), and re-checks the rings. Work found: cancel_wait, run it.
//     Otherwise it futex-sleeps. Woken, it clears wake_pending_, issues a seq_cst fence and looks again.
//  3. A producer pushes (the ring's release store), issues a seq_cst fence, and reads spinning_: a spinning
//     worker will find the task, so it wakes nobody. Otherwise, if work_ec_ has waiters and no wake-up is
//     already on its way (wake_pending_ false → true), it wakes one.
//     Why nothing is lost: the fences in 2 and 3 are Dekker's. If the producer read spinning_ (or
//     wake_pending_) before the worker's change of it, the worker's fence comes after the producer's in
//     the single order of seq_cst fences, so the worker's re-check sees the task. Otherwise the producer sees
//     the worker registered, with wake_pending_ cleared, and wakes it. A wake_pending_ left set with nobody
//     asleep (the waiter cancelled) is cleared by the next worker that parks, before it registers.
//  4. A worker that finds a task right after waking, or as the last spinner, wakes one more worker if work
//     is still queued, so a burst fans out to sleeping workers one wake-up at a time.
//  5. A producer blocked by a full ring (Overflow::block) follows steps 2-3 on space_ec_ with
//     space_wake_pending_; a consumer notifies space_ec_ after every pop (fence + load when nobody is blocked).
//  6. wait_idle(): a worker about to sleep with nothing queued increments parked_; when parked_ reaches
//     live_, it notifies idle_ec_. wait_idle() re-checks parked_ == live_ and empty rings around its own
//     prepare_wait on idle_ec_.
//
// Shutdown protocol:
//  1. Under levels_mutex_ (so no ring is created afterwards): stopping_ = true, cancel_pending_ for
//     Shutdown::cancel_pending, close every ring. From here every push fails with closed → BrokenExecutor;
//     pushes that claimed a slot before the close are still delivered.
//  2. cancel_pending: the calling thread pops and cancels what is queued; workers that pop concurrently see
//     cancel_pending_ and cancel instead of running, so every task not started before the call is cancelled.
//  3. Wake everyone (workers, blocked producers, wait_idle). A worker exits when stopping_ and every ring
//     is drained (closed, and head caught up with tail), so drain mode runs everything queued.
//  4. Join the workers under control_mutex_ (not from a worker of this pool: it would join itself).
//
// Helping: each worker installs a WaitHook. A task that waits on a future runs other tasks of this pool
// meanwhile (nesting up to kMaxHelpDepth). With nothing to run, the waiter sleeps on work_ec_ after adding
// a done-callback to the future that notifies work_ec_; a waiter woken by a producer's notify_one that does
// not take the task passes the wake-up on, so no task is left behind by a helper.
#include "weft/thread/thread_pool.hpp"

#include <sched.h>

#include <algorithm>
#include <bit>
#include <stdexcept>
#include <string>
#include <thread>

#include "weft/thread/thread.hpp"

namespace weft {

namespace {

constexpr int kMaxHelpDepth = 64;
constexpr int kRelaxPerPoll = 16;

thread_local const ThreadPool* current_pool = nullptr;

std::size_t available_cpus() {
  cpu_set_t set;
  CPU_ZERO(&set);
  if (sched_getaffinity(0, sizeof(set), &set) == 0) {
    const int n = CPU_COUNT(&set);
    if (n > 0) return static_cast<std::size_t>(n);
  }
  return std::max(1u, std::thread::hardware_concurrency());
}

std::size_t resolve_threads(const ThreadPoolOptions& o) { return o.threads == 0 ? available_cpus() : o.threads; }

std::size_t resolve_max(const ThreadPoolOptions& o) {
  const std::size_t threads = resolve_threads(o);
  return o.max_threads == 0 ? std::max(threads, 4 * available_cpus()) : o.max_threads;
}

}  // namespace

struct ThreadPool::Worker {
  std::size_t index = 0;
  std::thread thread;                  // guarded by control_mutex_
  std::atomic<bool> retire{false};     // set by resize() to shrink; the worker exits at its next idle moment
  // Written only by the worker (plain load + store), read by stats().
  alignas(64) std::atomic<std::uint64_t> completed{0};
  std::atomic<std::uint64_t> failed{0};
  std::atomic<std::uint64_t> cancelled{0};
  std::atomic<std::uint32_t> running{0};  // tasks on this worker's stack (more than one while helping)
  int help_depth = 0;                     // worker thread only

  static void bump(std::atomic<std::uint64_t>& c) noexcept {
    c.store(c.load(std::memory_order_relaxed) + 1, std::memory_order_relaxed);
  }
};

class ThreadPool::Helper final : public detail::WaitHook {
 public:
  Helper(ThreadPool& pool, Worker& worker) : pool_(pool), worker_(worker) {}

  bool wait(detail::StateBase& state, const detail::Deadline* deadline) override {
    if (worker_.help_depth >= kMaxHelpDepth) return state.block_until(deadline);
    bool registered = false;
    detail::PoolTask task;
    std::uint64_t stamp = 0;
    for (;;) {
      if (state.ready()) return true;
      if (deadline != nullptr && std::chrono::steady_clock::now() >= *deadline) return state.ready();
      if (pool_.pop(task, stamp)) {
        ++worker_.help_depth;
        pool_.run_task(&worker_, task, stamp);
        --worker_.help_depth;
        continue;
      }
      if (!registered) {
        // Wake the sleeping waiters when the future completes; the EventCount outlives the pool if needed.
        state.add_callback([ec = pool_.work_ec_] { ec->notify_all(); });
        registered = true;
        continue;
      }
      pool_.wake_pending_.store(false, std::memory_order_relaxed);
      const EventCount::Key key = pool_.work_ec_->prepare_wait();
      if (state.ready() || pool_.any_ready()) {
        pool_.work_ec_->cancel_wait();
        continue;
      }
      pool_.work_ec_->wait(key, deadline);
      pool_.wake_pending_.store(false, std::memory_order_relaxed);
      std::atomic_thread_fence(std::memory_order_seq_cst);  // protocol step 2 (woken)
      // A producer's wake-up may have picked this waiter; if it returns without taking the task, pass it on.
      if (state.ready() && pool_.any_ready()) pool_.wake_worker();
    }
  }

 private:
  ThreadPool& pool_;
  Worker& worker_;
};

ThreadPool::ThreadPool(std::size_t threads) : ThreadPool(ThreadPoolOptions{.threads = threads}) {}

ThreadPool::ThreadPool(ThreadPoolOptions options)
    : capacity_(options.capacity),
      max_threads_(resolve_max(options)),
      overflow_(options.overflow),
      aging_ticks_(std::max<std::uint64_t>(1, detail::to_ticks(options.aging))),
      spin_ticks_(detail::to_ticks(options.spin)),
      name_(options.name),
      on_error_(options.on_error ? std::move(options.on_error)
                                 : std::function<void(std::exception_ptr)>(
                                       [ctx = "ThreadPool '" + options.name + "' posted task"](std::exception_ptr e) {
                                         report_unhandled_exception(std::move(e), ctx);
                                       })),
      trace_id_(trace::register_executor(options.name)),
      work_ec_(std::make_shared<EventCount>()) {
  const std::size_t threads = resolve_threads(options);
  if (capacity_ == 0) throw std::invalid_argument("weft::ThreadPool: capacity must be at least 1");
  if (threads > max_threads_) {
    throw std::invalid_argument("weft::ThreadPool: threads (" + std::to_string(threads) + ") exceeds max_threads (" +
                                std::to_string(max_threads_) + ")");
  }
  workers_ = std::make_unique<Worker[]>(max_threads_);
  for (std::size_t i = 0; i < max_threads_; ++i) workers_[i].index = i;
  ring_for(Priority::normal);  // the common level exists up front
  std::lock_guard lock(control_mutex_);
  try {
    for (std::size_t i = 0; i < threads; ++i) {
      workers_[i].thread = std::thread([this, w = &workers_[i]] { worker_main(*w); });
      target_threads_.store(i + 1, std::memory_order_release);
    }
  } catch (...) {
    stopping_.store(true);
    for (auto& r : rings_) {
      if (Ring* ring = r.load()) ring->close();
    }
    work_ec_->notify_all();
    for (std::size_t i = 0; i < max_threads_; ++i) {
      if (workers_[i].thread.joinable()) workers_[i].thread.join();
    }
    throw;
  }
}

ThreadPool::~ThreadPool() {
  if (in_pool()) {
    report_unhandled_exception(
        std::make_exception_ptr(std::logic_error("weft::ThreadPool destroyed from one of its own tasks")),
        "ThreadPool '" + name_ + "'");
    std::terminate();
  }
  shutdown(Shutdown::drain);
}

bool ThreadPool::in_pool() const noexcept { return current_pool == this; }

ThreadPool::Ring* ThreadPool::ring_for(Priority p) {
  const auto level = static_cast<std::size_t>(p);
  if (level >= kPriorityLevels) throw std::invalid_argument("weft::ThreadPool: invalid priority");
  // acquire: pairs with the release store below, so the ring's construction is visible.
  if (Ring* r = rings_[level].load(std::memory_order_acquire)) return r;
  std::lock_guard lock(levels_mutex_);
  if (Ring* r = rings_[level].load(std::memory_order_acquire)) return r;
  if (stopping_.load(std::memory_order_relaxed)) throw BrokenExecutor();
  ring_owner_[level] = std::make_unique<Ring>(capacity_);
  rings_[level].store(ring_owner_[level].get(), std::memory_order_release);
  levels_mask_.fetch_or(1u << level, std::memory_order_release);
  return ring_owner_[level].get();
}

void ThreadPool::enqueue(const TaskOptions& options, detail::PoolTask&& task, bool detached) {
  Ring* ring = ring_for(options.priority);
  // Stamps cost ~10 ns; they matter only for aging between levels and for traces.
  const std::uint32_t mask = levels_mask_.load(std::memory_order_relaxed);
  const std::uint64_t stamp = ((mask & (mask - 1)) != 0 || trace::enabled()) ? detail::ticks() : 0;
  for (;;) {
    switch (ring->try_emplace(stamp, std::move(task))) {
      case detail::PushResult::ok:
        wake_worker();
        return;
      case detail::PushResult::closed:
        throw BrokenExecutor("weft: ThreadPool '" + name_ + "' has been shut down");
      case detail::PushResult::full:
        break;
    }
    if (overflow_ == Overflow::reject) {
      rejected_.fetch_add(1, std::memory_order_relaxed);
      if (detached) throw QueueFull("weft: ThreadPool '" + name_ + "' queue is full; the task was rejected");
      task.fn(detail::TaskMode::reject);
      return;
    }
    if (overflow_ == Overflow::caller_runs) {
      run_task(nullptr, task, stamp);
      return;
    }
    // Overflow::block: spin a little, then sleep until a pop makes room (protocol step 5).
    const std::uint64_t until = detail::ticks() + spin_ticks_;
    bool room = false;
    do {
      for (int i = 0; i < kRelaxPerPoll; ++i) detail::cpu_relax();
      room = ring->size() < ring->capacity() || ring->closed();
    } while (!room && detail::ticks() < until);
    if (room) continue;
    space_wake_pending_.store(false, std::memory_order_relaxed);
    const EventCount::Key key = space_ec_.prepare_wait();
    if (ring->size() < ring->capacity() || ring->closed()) {
      space_ec_.cancel_wait();
      continue;
    }
    space_ec_.wait(key);
  }
}

void ThreadPool::wake_worker() noexcept {
  std::atomic_thread_fence(std::memory_order_seq_cst);  // protocol step 3: pairs with the workers' fences
  if (spinning_.load(std::memory_order_relaxed) != 0 || !work_ec_->has_waiters()) return;
  if (wake_pending_.load(std::memory_order_relaxed) || wake_pending_.exchange(true, std::memory_order_acq_rel)) {
    return;
  }
  work_ec_->notify_one();
}

void ThreadPool::notify_space() noexcept {
  std::atomic_thread_fence(std::memory_order_seq_cst);  // protocol step 5: pairs with prepare_wait's fence
  if (!space_ec_.has_waiters()) return;
  if (space_wake_pending_.load(std::memory_order_relaxed) ||
      space_wake_pending_.exchange(true, std::memory_order_acq_rel)) {
    return;
  }
  space_ec_.notify_all();
}

bool ThreadPool::pop(detail::PoolTask& out, std::uint64_t& stamp) {
  const std::uint32_t mask = levels_mask_.load(std::memory_order_acquire);
  bool got = false;
  if ((mask & (mask - 1)) == 0) {
    // One level in use: plain FIFO.
    if (mask != 0) got = rings_[std::countr_zero(mask)].load(std::memory_order_relaxed)->try_pop(out, &stamp);
  } else {
    // Aging: choose the head with the highest level·aging + waited; fall back to any level if it was taken.
    const std::uint64_t now = detail::ticks();
    int best = -1;
    std::uint64_t best_score = 0;
    for (std::uint32_t m = mask; m != 0; m &= m - 1) {
      const int level = std::countr_zero(m);
      if (auto s = rings_[level].load(std::memory_order_relaxed)->peek_stamp()) {
        const std::uint64_t waited = now > *s ? now - *s : 0;
        const std::uint64_t score = static_cast<std::uint64_t>(level) * aging_ticks_ + waited;
        if (best < 0 || score > best_score) {
          best = level;
          best_score = score;
        }
      }
    }
    if (best >= 0) got = rings_[best].load(std::memory_order_relaxed)->try_pop(out, &stamp);
    for (int level = kPriorityLevels - 1; !got && level >= 0; --level) {
      if ((mask & (1u << level)) != 0) got = rings_[level].load(std::memory_order_relaxed)->try_pop(out, &stamp);
    }
  }
  if (got && overflow_ == Overflow::block) notify_space();  // protocol step 5
  return got;
}

bool ThreadPool::any_ready() const noexcept {
  for (std::uint32_t m = levels_mask_.load(std::memory_order_acquire); m != 0; m &= m - 1) {
    if (rings_[std::countr_zero(m)].load(std::memory_order_relaxed)->has_ready()) return true;
  }
  return false;
}

bool ThreadPool::all_drained() const noexcept {
  for (std::uint32_t m = levels_mask_.load(std::memory_order_acquire); m != 0; m &= m - 1) {
    if (!rings_[std::countr_zero(m)].load(std::memory_order_relaxed)->drained()) return false;
  }
  return true;
}

void ThreadPool::run_task(Worker* w, detail::PoolTask& task, std::uint64_t stamp) {
  const detail::TaskMode mode =
      cancel_pending_.load(std::memory_order_relaxed) ? detail::TaskMode::cancel : detail::TaskMode::run;
  if (w != nullptr) w->running.fetch_add(1, std::memory_order_relaxed);
  detail::TaskOutcome outcome;
  if (trace::enabled() && mode == detail::TaskMode::run) {
    const std::uint64_t start = detail::ticks();
    outcome = task.fn(mode);
    const std::uint64_t end = detail::ticks();
    trace::record(trace::Span{task.name != nullptr ? task.name : "task", stamp, stamp != 0 ? stamp : start, start,
                              end, trace_id_, w != nullptr ? static_cast<std::uint32_t>(w->index) : 0xffffffffu,
                              outcome == detail::TaskOutcome::failed});
  } else {
    outcome = task.fn(mode);
  }
  task.fn = nullptr;  // release what the task captured now, not when the slot variable is reused
  if (w != nullptr) {
    w->running.fetch_sub(1, std::memory_order_relaxed);
    switch (outcome) {
      case detail::TaskOutcome::completed: Worker::bump(w->completed); break;
      case detail::TaskOutcome::failed: Worker::bump(w->failed); break;
      case detail::TaskOutcome::cancelled: Worker::bump(w->cancelled); break;
    }
  } else {
    switch (outcome) {
      case detail::TaskOutcome::completed: caller_completed_.fetch_add(1, std::memory_order_relaxed); break;
      case detail::TaskOutcome::failed: caller_failed_.fetch_add(1, std::memory_order_relaxed); break;
      case detail::TaskOutcome::cancelled: shutdown_cancelled_.fetch_add(1, std::memory_order_relaxed); break;
    }
  }
}

void ThreadPool::worker_main(Worker& w) {
  this_thread::set_name(name_ + "-" + std::to_string(w.index));
  current_pool = this;
  Helper helper(*this, w);
  detail::WaitHook* previous = detail::exchange_wait_hook(&helper);
  live_.fetch_add(1, std::memory_order_seq_cst);

  detail::PoolTask task;
  std::uint64_t stamp = 0;
  bool woken = false;  // just back from park(): fan out if more work is queued (protocol step 4)
  for (;;) {
    if (w.retire.load(std::memory_order_acquire)) break;  // shrinking: leave even while work is queued
    if (pop(task, stamp)) {
      if (std::exchange(woken, false) && any_ready()) wake_worker();
      run_task(&w, task, stamp);
      continue;
    }
    if (stopping_.load(std::memory_order_acquire) && all_drained()) break;

    // Protocol step 1: spin.
    spinning_.fetch_add(1, std::memory_order_seq_cst);
    bool found = false;
    const std::uint64_t until = detail::ticks() + spin_ticks_;
    do {
      for (int i = 0; i < kRelaxPerPoll; ++i) detail::cpu_relax();
      found = pop(task, stamp);
    } while (!found && detail::ticks() < until && !w.retire.load(std::memory_order_relaxed) &&
             !stopping_.load(std::memory_order_relaxed));
    const bool last_spinner = spinning_.fetch_sub(1, std::memory_order_seq_cst) == 1;
    if (found) {
      woken = false;
      if (last_spinner && any_ready()) wake_worker();  // protocol step 4
      run_task(&w, task, stamp);
      continue;
    }
    woken = park(w);
  }

  live_.fetch_sub(1, std::memory_order_seq_cst);
  idle_ec_.notify_all();
  if (any_ready()) wake_worker();  // a retiring worker may have taken a wake-up meant for the others
  detail::exchange_wait_hook(previous);
  current_pool = nullptr;
}

bool ThreadPool::park(Worker& w) {
  // Protocol step 2.
  wake_pending_.store(false, std::memory_order_relaxed);
  const EventCount::Key key = work_ec_->prepare_wait();
  if (any_ready() || w.retire.load(std::memory_order_acquire) || stopping_.load(std::memory_order_acquire)) {
    work_ec_->cancel_wait();
    return false;
  }
  // Protocol step 6.
  if (parked_.fetch_add(1, std::memory_order_seq_cst) + 1 == live_.load(std::memory_order_seq_cst)) {
    idle_ec_.notify_all();
  }
  work_ec_->wait(key);
  parked_.fetch_sub(1, std::memory_order_seq_cst);
  wake_pending_.store(false, std::memory_order_relaxed);
  std::atomic_thread_fence(std::memory_order_seq_cst);  // the woken worker's re-check follows this fence
  return true;
}

void ThreadPool::shutdown(Shutdown mode) {
  {
    std::lock_guard lock(levels_mutex_);  // shutdown step 1
    stopping_.store(true, std::memory_order_seq_cst);
    if (mode == Shutdown::cancel_pending) cancel_pending_.store(true, std::memory_order_seq_cst);
    for (auto& r : rings_) {
      if (Ring* ring = r.load(std::memory_order_acquire)) ring->close();
    }
  }
  if (mode == Shutdown::cancel_pending) {  // shutdown step 2
    detail::PoolTask task;
    std::uint64_t stamp = 0;
    while (pop(task, stamp)) {
      task.fn(detail::TaskMode::cancel);
      task.fn = nullptr;
      shutdown_cancelled_.fetch_add(1, std::memory_order_relaxed);
    }
  }
  work_ec_->notify_all();  // shutdown step 3
  space_ec_.notify_all();
  idle_ec_.notify_all();
  if (in_pool()) return;
  std::lock_guard lock(control_mutex_);  // shutdown step 4
  for (std::size_t i = 0; i < max_threads_; ++i) {
    if (workers_[i].thread.joinable()) workers_[i].thread.join();
  }
}

void ThreadPool::resize(std::size_t threads) {
  if (in_pool()) throw std::logic_error("weft::ThreadPool::resize called from one of the pool's own tasks");
  if (threads == 0 || threads > max_threads_) {
    throw std::invalid_argument("weft::ThreadPool::resize: threads must be in [1, " + std::to_string(max_threads_) +
                                "], got " + std::to_string(threads));
  }
  std::lock_guard lock(control_mutex_);
  if (stopping_.load(std::memory_order_acquire)) throw BrokenExecutor();
  const std::size_t current = target_threads_.load(std::memory_order_relaxed);
  if (threads > current) {
    for (std::size_t i = current; i < threads; ++i) {
      workers_[i].retire.store(false, std::memory_order_relaxed);
      workers_[i].thread = std::thread([this, w = &workers_[i]] { worker_main(*w); });
      target_threads_.store(i + 1, std::memory_order_release);
    }
  } else if (threads < current) {
    for (std::size_t i = threads; i < current; ++i) workers_[i].retire.store(true, std::memory_order_release);
    work_ec_->notify_all();
    for (std::size_t i = threads; i < current; ++i) workers_[i].thread.join();
    target_threads_.store(threads, std::memory_order_release);
    if (any_ready()) wake_worker();  // a retiring worker may have absorbed a wake-up meant for the rest
  }
}

void ThreadPool::wait_idle() {
  if (in_pool()) throw std::logic_error("weft::ThreadPool::wait_idle called from one of the pool's own tasks");
  auto queued = [this] {
    for (std::uint32_t m = levels_mask_.load(std::memory_order_acquire); m != 0; m &= m - 1) {
      if (rings_[std::countr_zero(m)].load(std::memory_order_relaxed)->size() != 0) return true;
    }
    return false;
  };
  for (;;) {
    const EventCount::Key key = idle_ec_.prepare_wait();
    if (parked_.load(std::memory_order_seq_cst) == live_.load(std::memory_order_seq_cst) && !queued()) {
      idle_ec_.cancel_wait();
      return;
    }
    idle_ec_.wait(key);
  }
}

ThreadPoolStats ThreadPool::stats() const {
  ThreadPoolStats s;
  for (std::size_t i = 0; i < max_threads_; ++i) {
    const Worker& w = workers_[i];
    s.completed += w.completed.load(std::memory_order_relaxed);
    s.failed += w.failed.load(std::memory_order_relaxed);
    s.cancelled += w.cancelled.load(std::memory_order_relaxed);
    if (w.running.load(std::memory_order_relaxed) != 0) ++s.running;
  }
  s.completed += caller_completed_.load(std::memory_order_relaxed);
  s.failed += caller_failed_.load(std::memory_order_relaxed);
  s.cancelled += shutdown_cancelled_.load(std::memory_order_relaxed);
  s.rejected = rejected_.load(std::memory_order_relaxed);
  s.threads = live_.load(std::memory_order_relaxed);
  for (std::uint32_t m = levels_mask_.load(std::memory_order_acquire); m != 0; m &= m - 1) {
    s.queued += rings_[std::countr_zero(m)].load(std::memory_order_relaxed)->size();
  }
  return s;
}

}  // namespace weft
