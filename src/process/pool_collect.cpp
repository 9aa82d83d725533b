// ProcessPool's collector thread, the threads that wait on its futures and collect results themselves, and
// shutdown. The protocol is described in pool_core.hpp.
#include "pool_core.hpp"

namespace weft::process {
namespace detail {

bool PoolCore::drain_outboxes(std::vector<Done>& done, bool collector) {
  std::unique_lock lock(mu_, std::defer_lock);
  if (collector) {
    // Look without the lock first: workers_ changes only on the collector thread (spawn), so reading it
    // there is safe, and an idle spin then costs no lock traffic with submitters.
    bool any = false;
    for (std::uint32_t i = 0; i < n_ && !any; ++i) any = workers_[i].alive && !workers_[i].outbox->empty();
    if (!any) return false;
    lock.lock();
  } else if (!lock.try_lock()) {
    return false;  // someone else holds it (and may be collecting): look again shortly
  }
  thread_local std::string msg;
  bool any = false;
  for (std::uint32_t i = 0; i < n_; ++i) {
    Worker& w = workers_[i];
    if (!w.alive) continue;
    for (int k = 0; k < 256 && w.outbox->try_get_bytes_into(msg); ++k) {
      handle_result(i, msg, done);
      any = true;
    }
  }
  if (!any) return false;
  pump_pending_locked(done);
  if (tasks_.empty()) idle_cv_.notify_all();
  return true;
}

bool PoolCore::outboxes_nonempty_locked() const {
  for (std::uint32_t i = 0; i < n_; ++i) {
    if (workers_[i].alive && !workers_[i].outbox->empty()) return true;
  }
  return false;
}

// help(): a thread waiting on one of the pool's futures.
//  1. While its future is not ready it takes results from the outboxes itself (under mu_, as the collector
//     does) and completes every future they answer, spinning about 50 µs between looks.
//  2. Then it sleeps on the control block's `results` futex, announced in waiters_sleeping (workers wake it
//     after each result; so does any thread that completes futures, in case it completed this one), and
//     goes back to 1. Each sleep is capped at 10 ms as a safety net, so a cancellation by another thread
//     (which does not bump `results`) is seen within that time.
//  3. While helpers_active is nonzero the collector thread neither spins nor collects: it sleeps in epoll
//     (collector_sleeping set; exits, submitters and timeouts still wake it), and workers do not wake it
//     for results. The last helper to leave looks at the outboxes after its decrement and wakes the
//     collector if a result is waiting there: a worker that published a result while it still saw a
//     helper (and so did not wake the collector) is seen by that look (a Dekker pair: the worker's fence
//     between its publish and its read of helpers_active, the helper's seq_cst decrement before its look).
bool PoolCore::help(weft::detail::StateBase& s, const Clock::time_point* deadline) {
  cb_->helpers_active.fetch_add(1, std::memory_order_seq_cst);
  struct Leave {
    PoolCore* c;
    ~Leave() {
      if (c->cb_->helpers_active.fetch_sub(1, std::memory_order_seq_cst) == 1) {
        bool waiting;
        {
          std::lock_guard lock(c->mu_);
          waiting = c->outboxes_nonempty_locked();
        }
        if (waiting) c->wake();
      }
    }
  } leave{this};
  std::vector<Done> done;
  auto spin_until = Clock::now() + kSpinFor;
  std::uint32_t spins = 0;
  for (;;) {
    if (s.ready()) return true;
    if (drain_outboxes(done, false)) {
      complete(done);
      spin_until = Clock::now() + kSpinFor;
      continue;
    }
    const auto now = Clock::now();
    if (deadline != nullptr && now >= *deadline) return s.ready();
    if (now < spin_until) {
      if ((++spins & 15) == 0) {
        ::sched_yield();
      } else {
        weft::detail::cpu_relax();
      }
      continue;
    }
    const std::uint32_t seen = cb_->results.load(std::memory_order_acquire);
    cb_->waiters_sleeping.fetch_add(1, std::memory_order_seq_cst);
    bool look;
    {
      std::lock_guard lock(mu_);
      look = s.ready() || outboxes_nonempty_locked();
    }
    if (!look) {
      auto until = Clock::now() + std::chrono::milliseconds(10);
      if (deadline != nullptr && *deadline < until) until = *deadline;
      weft::detail::futex_wait_shared(cb_->results, seen, &until);
    }
    cb_->waiters_sleeping.fetch_sub(1, std::memory_order_relaxed);
    spin_until = Clock::now() + kSpinFor;
  }
}

void PoolCore::run() {
  std::vector<Done> done;
  auto last_progress = Clock::now();
  auto last_poll = last_progress;
  epoll_event events[64];
  std::uint32_t spins = 0;
  for (;;) {
    const bool helped = cb_->helpers_active.load(std::memory_order_relaxed) != 0;
    bool progress = !helped && drain_outboxes(done, true);
    complete(done);
    const auto now = Clock::now();
    // Exits, timeouts and work queued here for lack of room: every 100 µs while spinning, every millisecond
    // while results flow, and always before sleeping (below).
    if (now - last_poll > (progress ? std::chrono::microseconds(1000) : std::chrono::microseconds(100)) ||
        (!progress && now - last_progress >= kSpinFor)) {
      last_poll = now;
      int n = ::epoll_wait(epoll_fd_, events, 64, 0);
      std::unique_lock lock(mu_);
      for (int i = 0; i < n; ++i) {
        if (events[i].data.u32 != UINT32_MAX) on_worker_exit(events[i].data.u32, done);
      }
      std::int64_t next = INT64_MAX;
      if (has_timeouts_) check_timeouts_locked(now_ns(), next);
      pump_pending_locked(done);
      if (tasks_.empty()) idle_cv_.notify_all();
      const bool finished = stop_ && tasks_.empty();
      lock.unlock();
      if (n > 0) progress = true;
      complete(done);
      if (finished) break;
    }
    if (progress) {
      last_progress = Clock::now();
      continue;
    }
    if (!helped && Clock::now() - last_progress < kSpinFor) {
      // Spin (yielding now and then: with more runnable threads than CPUs a worker may need this one).
      if ((++spins & 15) == 0) {
        ::sched_yield();
      } else {
        weft::detail::cpu_relax();
      }
      continue;
    }
    // Sleep: announce it, look once more (Dekker pair with the workers' notify), then epoll.
    cb_->collector_sleeping.store(1, std::memory_order_seq_cst);
    bool any = false;
    if (cb_->helpers_active.load(std::memory_order_seq_cst) == 0) {
      std::lock_guard lock(mu_);
      any = outboxes_nonempty_locked();
    }  // else helpers collect (help's step 3), and the last one to leave wakes us if it leaves results
    int timeout_ms = -1;
    if (!any) {
      {
        std::lock_guard lock(mu_);
        if (has_timeouts_) {
          std::int64_t next = INT64_MAX;
          check_timeouts_locked(now_ns(), next);
          for (auto& [id, t] : tasks_) {
            if (t.timeout) next = std::min(next, now_ns() + static_cast<std::int64_t>(t.timeout->count()));
          }
          if (next != INT64_MAX) timeout_ms = static_cast<int>(std::max<std::int64_t>(1, (next - now_ns()) / 1'000'000 + 1));
        }
        if (stop_ && tasks_.empty()) timeout_ms = 0;
      }
      int n = ::epoll_wait(epoll_fd_, events, 64, timeout_ms);
      std::unique_lock lock(mu_);
      for (int i = 0; i < n; ++i) {
        if (events[i].data.u32 == UINT32_MAX) {
          std::uint64_t count;
          [[maybe_unused]] ssize_t k = ::read(wake_fd_, &count, sizeof count);
        } else {
          on_worker_exit(events[i].data.u32, done);
        }
      }
    }
    cb_->collector_sleeping.store(0, std::memory_order_relaxed);
    last_progress = Clock::now();
  }
  // Shut down: the workers drain their (empty) inboxes and exit; wait for them.
  std::lock_guard lock(mu_);
  for (auto& w : workers_) {
    if (w.inbox) w.inbox->close();
  }
  for (auto& w : workers_) {
    if (!w.proc) continue;
    if (!w.proc->join(std::chrono::seconds(30))) {
      w.proc->kill();
      w.proc->join();
    }
    w.alive = false;
  }
}

void PoolCore::shutdown(Shutdown mode) {
  std::vector<Done> done;
  {
    std::unique_lock lock(mu_);
    stop_ = true;
    if (mode == Shutdown::cancel_pending) {
      // Tasks not started: those waiting here, and those still in an inbox (taken back from it).
      std::string msg;
      for (auto& w : workers_) {
        if (!w.alive) continue;
        while (w.inbox->try_get_bytes_into(msg)) {
          if (msg.size() < sizeof(TaskHeader)) continue;
          TaskHeader h;
          std::memcpy(&h, msg.data(), sizeof h);
          w.held.erase(h.id);
          pending_.push_back(h.id);
        }
      }
      for (std::uint64_t id : pending_) {
        auto it = tasks_.find(id);
        if (it == tasks_.end()) continue;
        Done d;
        d.result = std::move(it->second.result);
        d.error = std::make_exception_ptr(weft::Cancelled());
        ++stats_.cancelled;
        tasks_.erase(it);
        done.push_back(std::move(d));
      }
      pending_.clear();
      space_cv_.notify_all();
    }
  }
  complete(done);
  wake();
  std::call_once(joined_, [this] {
    if (collector_.joinable()) collector_.join();
  });
}

std::vector<int> PoolCore::pids() const {
  std::lock_guard lock(mu_);
  std::vector<int> out;
  for (const auto& w : workers_) {
    if (w.alive) out.push_back(w.proc->pid());
  }
  return out;
}

ProcessPoolStats PoolCore::stats() const {
  std::lock_guard lock(mu_);
  return stats_;
}

}  // namespace detail
}  // namespace weft::process
