// ThreadPool: queues, the worker loop, sleep/wake, shutdown and resize.
//
// Queues. One bounded lock-free ring (MpmcRing, Vyukov) per priority level, made on first use. Each slot
// stores the task and a stamp (ticks at submit). A worker picks, among the heads of the non-empty levels, the
// one with the highest level·aging + waited (aging: "a task that waited `aging` counts one level higher");
// with one level in use it just pops that ring. Within a level the ring is FIFO.
// Stamps are taken only once two levels are in use (levels_mask_ has two bits); tasks pushed before that
// carry stamp 0, which pop() reads as multi_level_since_ (ticks() when the second level appeared, stored
// before the mask bit is published), so they neither jump ahead as if they had waited since the clock's
// epoch nor stop aging.
//
// Sleep/wake protocol (no lost wake-ups; a producer pays one fence and two loads when nobody sleeps, and
// at most one futex wake is in flight at a time, so a burst of pushes does not become a burst of syscalls):
//  1. A worker with nothing to do spins for `spin` (spinning_ counts such workers), polling the rings.
//  2. Giving up, it leaves spinning_ (seq_cst RMW), registers in work_ec_ (prepare_wait: RMW + seq_cst
//     fence), then clears wake_pending_ (release), issues a seq_cst fence and re-checks the rings. Work
//     found: cancel_wait, run it. Otherwise it futex-sleeps. Woken, it clears wake_pending_, issues a seq_cst
//     fence and looks again.
//  3. A producer pushes (the ring's release store), issues a seq_cst fence, and reads spinning_: a spinning
//     worker will find the task, so it wakes nobody. Otherwise, if work_ec_ has waiters and no wake-up is
//     already on its way (wake_pending_ false → true), it wakes one.
//     Why nothing is lost: the fences in 2 and 3 are Dekker's. If the producer read spinning_ (or
//     wake_pending_) before the worker's change of it, the worker's fence comes after the producer's in
//     the single order of seq_cst fences, so the worker's re-check sees the task. Otherwise the producer sees
//     the worker registered, with wake_pending_ cleared, and wakes it: its exchange read the worker's
//     release store, so its notify counts the worker among the waiters and bumps the epoch past its key.
//     Why the worker clears wake_pending_ only once registered: the flag can be left set by a notify that
//     found no registered waiter (the one it was meant for saw the task and cancelled — and that worker may
//     then block inside its task for as long as it likes, e.g. until other queued tasks run). Were the flag
//     cleared before registering, a producer could set it in between, and every later push would skip the
//     wake-up of the worker that then went to sleep: a pool with idle workers and queued tasks.
//  4. A worker that finds a task right after park() — woken, or having cancelled its sleep because the
//     re-check found work — or as the last spinner, wakes one more worker if work is still queued, so a
//     burst fans out to sleeping workers one wake-up at a time. The cancelled case matters: producers that
//     saw this worker spinning woke nobody for any of their tasks, and it takes only one of them. (Without
//     it, a worker that took the first of a burst and then blocked in it left the rest of the burst queued
//     beside sleeping workers.)
//  5. A producer blocked by a full ring (Overflow::block) sleeps on space_ec_ the same way: a consumer
//     notifies space_ec_ after every pop (fence + load when nobody is blocked), at most one notify_all in
//     flight (space_wake_pending_), and the producer registers (prepare_wait) before it clears the flag,
//     then fences and re-checks for room. A notifier that sets the flag after the clear sees the producer
//     registered and wakes it; one that saw the flag still set popped before the fence, so the re-check
//     sees that room — or, if another producer took it, the ring is full again and the next pop finds the
//     flag clear and notifies. (A producer that finds room leaves for good, so here the flag left set by a
//     notify that found no waiter was never cleared at all when producers cleared it before registering.)
//  6. wait_idle(): a worker about to sleep with nothing queued increments parked_; when parked_ reaches
//     live_, it notifies idle_ec_. wait_idle() re-checks, after its own prepare_wait on idle_ec_, that the
//     rings are empty and then (after a seq_cst fence) that parked_ == live_. The order matters: a woken
//     worker decrements parked_, fences, then pops, so if wait_idle() finds a ring emptied by such a pop, it
//     also finds that worker no longer parked. (Read the other way round, it could count as asleep a worker
//     that then woke and popped the last task, and return while that task ran.) live_ is incremented by the
//     thread that starts a worker, before the thread exists (and decremented by the worker as it exits), so
//     a worker that has not reached worker_main yet already counts as busy: wait_idle() cannot return
//     before every started worker has come to rest.
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
// not take the task passes the wake-up on, so no task is left behind by a helper. A helper registers and
// re-checks exactly as park() does (steps 2-3), and fans out after its first pop following a sleep (step 4).
//
// Running the awaited sub-task first. Helping in queue order alone makes recursive work explode: a task that
// waits on its own sub-task runs the oldest queued task instead, which waits on its own sub-task, and so on —
// the nesting grows with the number of queued tasks, not with the depth of the recursion (fib(15) on one
// worker would need ~1000 levels). So:
//  1. A task submitted from a worker of this same pool (in_pool(), submit only: post has no future) is
//     wrapped in a Child shared by its queue entry (ChildEntry) and the worker's `children` list; both hold
//     a reference.
//  2. Whoever claims the Child first (an exchange on `claimed`) runs it: a worker that pops the entry, or
//     the submitting worker when it waits on that future (Helper::run_child, before any other helping; it
//     adds to help_depth but is not refused at kMaxHelpDepth, since it nests exactly as a function call
//     would). The loser does nothing; a popped entry whose Child was already claimed reports
//     TaskOutcome::skipped and is not counted.
//  3. ran_early_ counts entries whose Child was claimed by a waiter while the entry is still queued, so
//     stats().queued leaves them out; the entry is discarded (and ran_early_ decremented) when popped.
//  4. A Child's state pointer is compared, never dereferenced: an unclaimed Child still owns a reference to
//     its state (inside its FutureTask), so a match on an unclaimed Child is the awaited state itself.
//  5. The list is emptied when the worker's top-level task returns, and holds at most kMaxChildren (claimed
//     entries are pruned first; past that, new children are simply not listed).
// Overflow::block from inside the pool: a worker whose submit finds its own pool's level full runs the new
// task at once, itself, as a function call (what Overflow::caller_runs does), instead of sleeping on a queue
// only the workers can drain. Helping with queued tasks there instead would nest without bound: each helped
// task submits into the same full queue.
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
constexpr std::size_t kMaxChildren = 256;

thread_local const ThreadPool* current_pool = nullptr;
thread_local std::size_t current_worker_index = 0;  // meaningful while current_pool is set

// A task submitted by a worker of its own pool ("Helping", steps 1-4): shared by the queue entry and the
// submitting worker's children list. Whoever claims it first runs `fn`; only the claimer touches `fn`.
struct Child {
  std::atomic<int> refs{2};  // the queue entry's and the children list's
  std::atomic<bool> claimed{false};
  const detail::StateBase* state;  // compared, never dereferenced (step 4)
  const char* name;
  UniqueFunction<detail::TaskOutcome(detail::TaskMode), 32> fn;

  Child(const detail::StateBase* s, detail::PoolTask&& task) noexcept
      : state(s), name(task.name), fn(std::move(task.fn)) {}

  // acq_rel: the claimer's exchange acquires what the submitter wrote (fn), through the ring's release/acquire
  // or program order; the loser learns only that it lost.
  [[nodiscard]] bool claim() noexcept { return !claimed.exchange(true, std::memory_order_acq_rel); }

  void release() noexcept {
    // acq_rel: the deleting side sees the claimer's last use of fn.
    if (refs.fetch_sub(1, std::memory_order_acq_rel) == 1) delete this;
  }
};

// The queue entry of a Child.
class ChildEntry {
 public:
  explicit ChildEntry(Child* c) noexcept : child_(c) {}
  ChildEntry(ChildEntry&& o) noexcept : child_(std::exchange(o.child_, nullptr)) {}
  ChildEntry(const ChildEntry&) = delete;
  ChildEntry& operator=(const ChildEntry&) = delete;
  ~ChildEntry() {
    if (child_ != nullptr) child_->release();
  }

  detail::TaskOutcome operator()(detail::TaskMode mode) {
    if (!child_->claim()) return detail::TaskOutcome::skipped;  // the waiting worker ran it already
    const detail::TaskOutcome outcome = child_->fn(mode);
    child_->fn = nullptr;
    return outcome;
  }

 private:
  Child* child_;
};

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
  std::uint64_t traced = 0;               // worker thread only: tasks it recorded trace spans for
  std::vector<Child*> children;           // worker thread only: tasks its own tasks submitted ("Helping")

  void release_children() noexcept {
    for (Child* c : children) c->release();
    children.clear();
  }

  static void bump(std::atomic<std::uint64_t>& c) noexcept {
    c.store(c.load(std::memory_order_relaxed) + 1, std::memory_order_relaxed);
  }
};

class ThreadPool::Helper final : public detail::WaitHook {
 public:
  Helper(ThreadPool& pool, Worker& worker) : pool_(pool), worker_(worker) {}

  bool wait(detail::StateBase& state, const detail::Deadline* deadline) override {
    run_child(state);  // "Helping", step 2: the awaited sub-task first, at any depth
    if (state.ready()) return true;
    if (worker_.help_depth >= kMaxHelpDepth) return state.block_until(deadline);
    bool registered = false;
    bool after_sleep = false;  // back from a sleep, woken or cancelled: fan out like worker_main (step 4)
    detail::PoolTask task;
    std::uint64_t stamp = 0;
    for (;;) {
      if (state.ready()) return true;
      if (deadline != nullptr && std::chrono::steady_clock::now() >= *deadline) return state.ready();
      if (pool_.pop(task, stamp)) {
        if (std::exchange(after_sleep, false) && pool_.any_ready()) pool_.wake_worker();
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
      // Protocol step 2, as in park(): register, clear wake_pending_, fence, re-check.
      const EventCount::Key key = pool_.work_ec_->prepare_wait();
      pool_.wake_pending_.store(false, std::memory_order_release);
      std::atomic_thread_fence(std::memory_order_seq_cst);
      if (state.ready() || pool_.any_ready()) {
        pool_.work_ec_->cancel_wait();
      } else {
        pool_.work_ec_->wait(key, deadline);
        pool_.wake_pending_.store(false, std::memory_order_relaxed);
        std::atomic_thread_fence(std::memory_order_seq_cst);  // protocol step 2 (woken)
      }
      after_sleep = true;
      // A producer's wake-up may have been meant for this waiter; if it returns without taking the task, it
      // passes the wake-up on.
      if (state.ready() && pool_.any_ready()) pool_.wake_worker();
    }
  }

  /// Runs the task behind `state` here, if this worker submitted it and nobody has claimed it yet.
  void run_child(const detail::StateBase& state) {
    auto& children = worker_.children;
    for (std::size_t i = children.size(); i-- > 0;) {
      Child* c = children[i];
      if (c->state != &state) continue;
      // The newest match is the only one that can be unclaimed (step 4); older ones are stale.
      children.erase(children.begin() + static_cast<std::ptrdiff_t>(i));
      // Step 3: counted before the claim, so the discarding side (whose failed claim comes after this
      // claim, and so after this increment) never takes ran_early_ below zero.
      pool_.ran_early_.fetch_add(1, std::memory_order_relaxed);
      if (!c->claim()) {
        pool_.ran_early_.fetch_sub(1, std::memory_order_relaxed);  // a worker popped it and runs it
      } else {
        detail::PoolTask task{std::move(c->fn), c->name};
        c->fn = nullptr;
        ++worker_.help_depth;
        pool_.run_task(&worker_, task, 0);
        --worker_.help_depth;
      }
      c->release();
      return;
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
      start_worker(workers_[i]);
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

void ThreadPool::start_worker(Worker& w) {
  // Protocol step 6: the worker counts as live (and busy) from before its thread exists.
  live_.fetch_add(1, std::memory_order_seq_cst);
  try {
    w.thread = std::thread([this, &w] { worker_main(w); });
  } catch (...) {
    live_.fetch_sub(1, std::memory_order_seq_cst);
    throw;
  }
}

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
  // The mask changes only under levels_mutex_. When a second level appears, record when: the stand-in stamp
  // of the tasks pushed unstamped until now. The release below publishes it to pop(), which loads the mask
  // with acquire before it reads any stamp.
  const std::uint32_t before = levels_mask_.load(std::memory_order_relaxed);
  if (before != 0 && (before & (before - 1)) == 0) {
    multi_level_since_.store(detail::ticks(), std::memory_order_relaxed);
  }
  levels_mask_.fetch_or(1u << level, std::memory_order_release);
  return ring_owner_[level].get();
}

bool ThreadPool::make_room_for_child(Worker& w) {
  auto& children = w.children;
  if (children.size() >= kMaxChildren) {
    std::size_t kept = 0;
    for (Child* c : children) {
      if (c->claimed.load(std::memory_order_acquire)) {
        c->release();  // run already (by anyone): nothing left to do early
      } else {
        children[kept++] = c;
      }
    }
    children.resize(kept);
    if (kept >= kMaxChildren) return false;
  }
  children.reserve(kMaxChildren);  // once per worker: push_back below then never allocates
  return true;
}

void ThreadPool::enqueue(const TaskOptions& options, detail::PoolTask&& task, bool detached,
                         const detail::StateBase* awaited) {
  Ring* ring = ring_for(options.priority);
  Worker* const self = current_pool == this ? &workers_[current_worker_index] : nullptr;
  // "Helping", step 1: a sub-task submitted by one of this pool's tasks may be run early by its waiter.
  Child* child = nullptr;
  if (awaited != nullptr && self != nullptr && make_room_for_child(*self)) {
    child = new Child(awaited, std::move(task));
    task.fn = ChildEntry(child);
  }
  struct ListRef {  // the children list's reference, dropped unless the task is queued and listed
    Child* c;
    ~ListRef() {
      if (c != nullptr) c->release();
    }
  } list_ref{child};
  // Stamps cost ~10 ns; they matter only for aging between levels and for traces.
  const std::uint32_t mask = levels_mask_.load(std::memory_order_relaxed);
  const std::uint64_t stamp = ((mask & (mask - 1)) != 0 || trace::enabled()) ? detail::ticks() : 0;
  for (;;) {
    switch (ring->try_emplace(stamp, std::move(task))) {
      case detail::PushResult::ok:
        if (child != nullptr) self->children.push_back(std::exchange(list_ref.c, nullptr));
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
    // Overflow::block on one of this pool's own workers: only the workers make room, so waiting could
    // deadlock the pool. Run the task here instead, as a function call (as Overflow::caller_runs would).
    if (self != nullptr) {
      ++self->help_depth;
      run_task(self, task, stamp);
      --self->help_depth;
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
    // Protocol step 5: register first, then clear the flag, then re-check after a fence.
    const EventCount::Key key = space_ec_.prepare_wait();
    // release: pairs with notify_space()'s exchange, so a notifier that sets the flag after this store also
    // sees this waiter registered, and its epoch bump comes after `key`: it wakes us.
    space_wake_pending_.store(false, std::memory_order_release);
    // A notifier that still saw the flag set (and so did not notify) read it before the store above: its pop
    // is ordered before this fence, and the re-check below sees the room it made.
    std::atomic_thread_fence(std::memory_order_seq_cst);
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
    const std::uint64_t unstamped = multi_level_since_.load(std::memory_order_relaxed);  // see ring_for()
    int best = -1;
    std::uint64_t best_score = 0;
    for (std::uint32_t m = mask; m != 0; m &= m - 1) {
      const int level = std::countr_zero(m);
      if (auto s = rings_[level].load(std::memory_order_relaxed)->peek_stamp()) {
        const std::uint64_t submitted = *s != 0 ? *s : unstamped;
        const std::uint64_t waited = now > submitted ? now - submitted : 0;
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
    if (outcome != detail::TaskOutcome::skipped) {  // a skipped entry's task was traced where it ran
      // Span ids: the worker's index in the top 16 bits, then the worker's own count of traced tasks.
      const std::uint64_t id = w != nullptr ? (static_cast<std::uint64_t>(w->index) << 48) | ++w->traced
                                            : caller_traced_.fetch_add(1, std::memory_order_relaxed) + 1;
      trace::record(trace::Span{task.name != nullptr ? task.name : "task", id, stamp != 0 ? stamp : start, start,
                                end, trace_id_,
                                w != nullptr ? static_cast<std::uint32_t>(w->index) : trace::kCallerWorker,
                                outcome == detail::TaskOutcome::failed});
    }
  } else {
    outcome = task.fn(mode);
  }
  task.fn = nullptr;  // release what the task captured now, not when the slot variable is reused
  if (outcome == detail::TaskOutcome::skipped) {
    ran_early_.fetch_sub(1, std::memory_order_relaxed);  // "Helping", step 3: the entry is gone now
    if (w != nullptr) w->running.fetch_sub(1, std::memory_order_relaxed);
    return;
  }
  if (w != nullptr) {
    w->running.fetch_sub(1, std::memory_order_relaxed);
    switch (outcome) {
      case detail::TaskOutcome::completed: Worker::bump(w->completed); break;
      case detail::TaskOutcome::failed: Worker::bump(w->failed); break;
      case detail::TaskOutcome::cancelled: Worker::bump(w->cancelled); break;
      case detail::TaskOutcome::skipped: break;
    }
  } else {
    switch (outcome) {
      case detail::TaskOutcome::completed: caller_completed_.fetch_add(1, std::memory_order_relaxed); break;
      case detail::TaskOutcome::failed: caller_failed_.fetch_add(1, std::memory_order_relaxed); break;
      case detail::TaskOutcome::cancelled: shutdown_cancelled_.fetch_add(1, std::memory_order_relaxed); break;
      case detail::TaskOutcome::skipped: break;
    }
  }
}

void ThreadPool::worker_main(Worker& w) {
  this_thread::set_name(name_ + "-" + std::to_string(w.index));
  current_pool = this;
  current_worker_index = w.index;
  Helper helper(*this, w);
  detail::WaitHook* previous = detail::exchange_wait_hook(&helper);
  // live_ was incremented by start_worker() (protocol step 6).

  detail::PoolTask task;
  std::uint64_t stamp = 0;
  bool woken = false;  // back from park(), woken or not: fan out if more work is queued (protocol step 4)
  for (;;) {
    if (w.retire.load(std::memory_order_acquire)) break;  // shrinking: leave even while work is queued
    if (pop(task, stamp)) {
      if (std::exchange(woken, false) && any_ready()) wake_worker();
      run_task(&w, task, stamp);
      if (!w.children.empty()) w.release_children();  // "Helping", step 5
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
      if (last_spinner) {
        // Protocol step 4. The fence orders the fetch_sub above before the re-check of the rings (Dekker's
        // pattern again, against a producer that saw this worker spinning and so woke nobody).
        std::atomic_thread_fence(std::memory_order_seq_cst);
        if (any_ready()) wake_worker();
      }
      run_task(&w, task, stamp);
      if (!w.children.empty()) w.release_children();  // "Helping", step 5
      continue;
    }
    park(w);
    woken = true;
  }

  w.release_children();
  live_.fetch_sub(1, std::memory_order_seq_cst);
  idle_ec_.notify_all();
  if (any_ready()) wake_worker();  // a retiring worker may have taken a wake-up meant for the others
  detail::exchange_wait_hook(previous);
  current_pool = nullptr;
}

void ThreadPool::park(Worker& w) {
  // Protocol step 2: register, then clear wake_pending_, then fence and re-check (see step 3 for why).
  const EventCount::Key key = work_ec_->prepare_wait();
  // release: pairs with wake_worker()'s exchange, so a producer that sets the flag after this store sees
  // this worker registered, and its epoch bump comes after `key`.
  wake_pending_.store(false, std::memory_order_release);
  // A producer that still saw the flag set (and did not notify) read it before the store above: its push
  // precedes this fence, so the re-check below sees it.
  std::atomic_thread_fence(std::memory_order_seq_cst);
  if (any_ready() || w.retire.load(std::memory_order_acquire) || stopping_.load(std::memory_order_acquire)) {
    work_ec_->cancel_wait();
    return;
  }
  // Protocol step 6.
  if (parked_.fetch_add(1, std::memory_order_seq_cst) + 1 == live_.load(std::memory_order_seq_cst)) {
    idle_ec_.notify_all();
  }
  work_ec_->wait(key);
  parked_.fetch_sub(1, std::memory_order_seq_cst);
  wake_pending_.store(false, std::memory_order_relaxed);
  // The woken worker's re-check follows this fence; so does its next pop, which wait_idle() relies on: a
  // pop it can see comes after this worker left parked_ (protocol step 6).
  std::atomic_thread_fence(std::memory_order_seq_cst);
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
      const detail::TaskOutcome outcome = task.fn(detail::TaskMode::cancel);
      task.fn = nullptr;
      if (outcome == detail::TaskOutcome::skipped) {
        ran_early_.fetch_sub(1, std::memory_order_relaxed);
      } else {
        shutdown_cancelled_.fetch_add(1, std::memory_order_relaxed);
      }
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
      start_worker(workers_[i]);
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
    // Protocol step 6: the queues first, then parked_. A woken worker leaves parked_ before it pops (with a
    // fence between, in park()), so if a task is already gone from the queue, the fence below makes the read
    // of parked_ see that worker as busy. Read the other way round, parked_ could still count a worker that
    // then woke, popped the last task and was running it when the queues were found empty.
    const bool empty = !queued();
    std::atomic_thread_fence(std::memory_order_seq_cst);  // pairs with the fence in park() after waking
    if (empty && parked_.load(std::memory_order_seq_cst) == live_.load(std::memory_order_seq_cst)) {
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
  const std::uint64_t early = ran_early_.load(std::memory_order_relaxed);  // "Helping", step 3
  s.queued = s.queued > early ? s.queued - early : 0;
  return s;
}

}  // namespace weft
