// ProcessPool's parent side: starting and replacing workers, taking tasks, handling results and dead
// workers. The protocol is described in pool_core.hpp; collecting and waiting are in pool_collect.cpp.
#include "pool_core.hpp"

namespace weft::process {
namespace detail {

PoolCore::PoolCore(ProcessPoolOptions o)
    : o_(std::move(o)), n_(o_.workers == 0 ? std::min<std::size_t>(available_cpus(), ControlBlock::kMaxWorkers) : o_.workers) {
  if (n_ > ControlBlock::kMaxWorkers) {
    throw std::invalid_argument("weft: a ProcessPool has at most " + std::to_string(ControlBlock::kMaxWorkers) +
                                " workers");
  }
  if (o_.max_pending == 0) throw std::invalid_argument("weft: ProcessPoolOptions::max_pending must be above 0");
  if (o_.max_message < 64 || o_.max_message > (std::size_t{1} << 31)) {
    throw std::invalid_argument("weft: ProcessPoolOptions::max_message must be between 64 bytes and 2 GiB");
  }
  start_fork_server();
  wake_fd_ = ::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
  epoll_fd_ = ::epoll_create1(EPOLL_CLOEXEC);
  control_fd_ = ::memfd_create("weft-pool-control", MFD_CLOEXEC);
  if (wake_fd_ < 0 || epoll_fd_ < 0 || control_fd_ < 0 || ::ftruncate(control_fd_, sizeof(ControlBlock)) != 0) {
    int e = errno;
    if (wake_fd_ >= 0) ::close(wake_fd_);
    if (epoll_fd_ >= 0) ::close(epoll_fd_);
    if (control_fd_ >= 0) ::close(control_fd_);
    throw_errno(e, "setting up a ProcessPool");
  }
  void* mem = ::mmap(nullptr, sizeof(ControlBlock), PROT_READ | PROT_WRITE, MAP_SHARED, control_fd_, 0);
  if (mem == MAP_FAILED) {
    int e = errno;
    ::close(wake_fd_);
    ::close(epoll_fd_);
    ::close(control_fd_);
    throw_errno(e, "mapping a ProcessPool's control block");
  }
  cb_ = static_cast<ControlBlock*>(mem);  // zero-filled by ftruncate: every atomic starts at 0
  epoll_event ev{};
  ev.events = EPOLLIN;
  ev.data.u32 = UINT32_MAX;
  ::epoll_ctl(epoll_fd_, EPOLL_CTL_ADD, wake_fd_, &ev);
  if (trace::enabled()) trace_executor_ = trace::register_executor(o_.name);
  workers_.resize(n_);
  try {
    std::lock_guard lock(mu_);
    for (std::uint32_t i = 0; i < n_; ++i) spawn(i);
  } catch (...) {
    for (auto& w : workers_) {
      if (w.proc) {
        w.proc->kill();
        w.proc->join();
      }
    }
    ::munmap(cb_, sizeof(ControlBlock));
    ::close(wake_fd_);
    ::close(epoll_fd_);
    ::close(control_fd_);
    throw;
  }
  collector_ = std::thread([this] { run(); });
}

void PoolCore::attach_waiter() { waiter_ = PoolWaiter::acquire(weak_from_this()); }

PoolCore::~PoolCore() {
  shutdown(Shutdown::drain);
  if (waiter_ != nullptr) PoolWaiter::release(waiter_);
  ::munmap(cb_, sizeof(ControlBlock));
  ::close(wake_fd_);
  ::close(epoll_fd_);
  ::close(control_fd_);
}

void PoolCore::spawn(std::uint32_t index) {
  Worker& w = workers_[index];
  if (w.proc) {
    ::epoll_ctl(epoll_fd_, EPOLL_CTL_DEL, w.proc->sentinel(), nullptr);
  }
  const std::size_t ring = std::max<std::size_t>(std::size_t{1} << 20, o_.max_message + 64);
  auto inbox = std::make_unique<Queue>(QueueOptions{.capacity_bytes = ring, .max_message = o_.max_message + 64});
  auto outbox = std::make_unique<Queue>(QueueOptions{.capacity_bytes = ring, .max_message = o_.max_message + 64});
  cb_->slots[index].current.store(0, std::memory_order_relaxed);
  cb_->slots[index].ready.store(0, std::memory_order_relaxed);
  WorkerConfig cfg;
  cfg.index = index;
  cfg.max_tasks = o_.max_tasks_per_child;
  cfg.trace = trace::enabled();
  cfg.init_trampoline = o_.initializer.trampoline;
  cfg.init_fn = o_.initializer.fn;
  cfg.init_args = o_.initializer.args;
  cfg.pool_name = o_.name;
  Fd control(control_fd_), wake(wake_fd_);
  static const std::vector<Fd> kNoFds;
  std::unique_ptr<Process> p;
  try {
    p = std::make_unique<Process>(
        ProcessOptions{.name = o_.name + "-worker-" + std::to_string(index), .daemon = true}, &pool_worker_main,
        *inbox, *outbox, control, wake, cfg, o_.initializer.fds ? *o_.initializer.fds : kNoFds);
  } catch (...) {
    control.release();
    wake.release();
    throw;
  }
  control.release();  // borrowed: the pool keeps owning them
  wake.release();
  epoll_event ev{};
  ev.events = EPOLLIN;
  ev.data.u32 = index;
  ::epoll_ctl(epoll_fd_, EPOLL_CTL_ADD, p->sentinel(), &ev);
  w.proc = std::move(p);
  w.inbox = std::move(inbox);
  w.outbox = std::move(outbox);
  w.held.clear();
  w.timed_out = 0;
  w.alive = true;
  ++stats_.workers_started;
}

const char* PoolCore::name_of(void* fn) {
  auto it = names_.find(fn);
  if (it != names_.end()) return it->second;
  Dl_info info{};
  std::string name = o_.name + " task";  // a function without a dynamic symbol (static, or not exported)
  if (::dladdr(fn, &info) != 0 && info.dli_sname != nullptr) {
    name = info.dli_sname;
    name = demangle(info.dli_sname);
  }
  const char* interned = trace::intern(name);
  names_.emplace(fn, interned);
  return interned;
}

std::size_t PoolCore::cap_locked() const {
  const std::int64_t per = std::max<std::int64_t>(ewma_run_ns_, 1);
  return std::clamp<std::size_t>(static_cast<std::size_t>(kTargetQueueNs / per), 1, kMaxCap);
}

bool PoolCore::dispatch_locked(std::uint64_t id, Task& t, std::vector<Done>& done) {
  const std::size_t cap = cap_locked();
  Worker* best = nullptr;
  std::uint32_t best_index = 0;
  for (std::uint32_t i = 0; i < n_; ++i) {
    Worker& w = workers_[i];
    if (!w.alive || w.held.size() >= cap) continue;
    if (best == nullptr || w.held.size() < best->held.size()) {
      best = &w;
      best_index = i;
    }
  }
  if (best == nullptr) return false;
  if (!t.started && !t.result->start()) {  // cancelled while it waited: never sent
    ++stats_.cancelled;
    done.push_back(Done{std::move(t.result), nullptr, {}, false});
    done.back().error = nullptr;  // the future already reports the cancellation
    tasks_.erase(id);
    return true;
  }
  t.started = true;
  if (!best->inbox->try_put_bytes(t.message)) return false;  // ring full by bytes: stays pending
  best->held.insert(id);
  t.worker = static_cast<int>(best_index);
  std::string().swap(t.message);
  return true;
}

void PoolCore::pump_pending_locked(std::vector<Done>& done) {
  const std::size_t before = pending_.size();
  while (!pending_.empty()) {
    const std::uint64_t id = pending_.front();
    auto it = tasks_.find(id);
    if (it == tasks_.end()) {
      pending_.pop_front();
      continue;
    }
    if (!dispatch_locked(id, it->second, done)) break;
    pending_.pop_front();
  }
  if (pending_.size() < before) space_cv_.notify_all();
}

void PoolCore::wake() noexcept {
  const std::uint64_t one = 1;
  [[maybe_unused]] ssize_t k = ::write(wake_fd_, &one, sizeof one);
}

void PoolCore::enqueue(std::string message, std::unique_ptr<PendingResult> result, const SubmitOptions& options,
                       void* fn, std::string_view name) {
  if (message.size() > o_.max_message + sizeof(TaskHeader)) {
    throw MessageTooLarge(message.size() - sizeof(TaskHeader), o_.max_message);
  }
  std::vector<Done> done;
  {
    bool kill_now = false;
    std::unique_lock lock(mu_);
    for (;;) {
      if (broken_) throw weft::BrokenExecutor("weft: " + o_.name + " is broken: " + broken_why_);
      if (stop_) throw weft::BrokenExecutor("weft: " + o_.name + " is shut down");
      if (pending_.size() < o_.max_pending) break;
      if (o_.overflow == PoolOverflow::reject) {
        throw weft::QueueFull("weft: " + o_.name + " has " + std::to_string(pending_.size()) +
                              " tasks waiting for a worker (max_pending)");
      }
      space_cv_.wait(lock);
    }
    const std::uint64_t id = ++next_id_;
    std::memcpy(message.data(), &id, sizeof id);  // TaskHeader::id comes first
    Task t;
    t.message = std::move(message);
    t.result = std::move(result);
    t.result->set_helper(waiter_);
    t.timeout = options.timeout ? options.timeout : o_.task_timeout;
    if (t.timeout) has_timeouts_ = true;
    if (trace_executor_ != 0 && trace::enabled()) {
      t.submit_ticks = weft::detail::ticks();
      t.trace_name = name.empty() ? name_of(fn) : trace::intern(name);
    }
    ++stats_.submitted;
    auto [it, inserted] = tasks_.emplace(id, std::move(t));
    if (options.kill_switch) {
      std::lock_guard ks(options.kill_switch->mu_);
      options.kill_switch->core_ = weak_from_this();
      options.kill_switch->task_ = id;
      kill_now = options.kill_switch->killed_;
    }
    if (kill_now) {
      cancel_unstarted_locked(it, done);  // killed before it was submitted: it never runs
    } else if (!pending_.empty() || !dispatch_locked(id, it->second, done)) {
      pending_.push_back(id);
      lock.unlock();
      wake();
    } else if (it->second.timeout && cb_->collector_sleeping.load(std::memory_order_relaxed) != 0) {
      // Handed straight to a worker: the collector, asleep with no deadline or a later one, must learn of
      // this task's deadline. (It sets collector_sleeping before it takes mu_ to compute its sleep, so under
      // mu_ here either it already counted this task or we see the flag.)
      lock.unlock();
      wake();
    }
  }
  complete(done);
}

void PoolCore::complete(std::vector<Done>& done) {
  if (done.empty()) return;
  for (auto& d : done) {
    if (d.name != nullptr) {
      trace::record(trace::Span{d.name, d.id, d.submit, d.start, d.end, trace_executor_, d.worker, !d.ok});
    }
    if (!d.result) continue;
    if (d.ok) {
      d.result->value(d.payload);
    } else if (d.error) {
      d.result->fail(std::move(d.error));  // no reference left here once the future is ready
    }
  }
  done.clear();
  // A waiter asleep on `results` may have had its future completed here: wake it to see (Dekker pair with
  // its seq_cst increment of waiters_sleeping before its last look at its future).
  std::atomic_thread_fence(std::memory_order_seq_cst);
  if (cb_->waiters_sleeping.load(std::memory_order_relaxed) != 0) {
    cb_->results.fetch_add(1, std::memory_order_release);
    weft::detail::futex_wake_shared(cb_->results, INT32_MAX);
  }
}

void PoolCore::handle_result(std::uint32_t wi, std::string_view msg, std::vector<Done>& done) {
  Worker& w = workers_[wi];
  if (msg.size() < sizeof(ResultHeader)) return;  // a worker's answer that cannot name its task
  ResultHeader h;
  std::memcpy(&h, msg.data(), sizeof h);
  msg.remove_prefix(sizeof h);
  std::string_view spans = msg.substr(0, std::min<std::size_t>(h.spans_length, msg.size()));
  msg.remove_prefix(spans.size());
  if (h.status == ResultStatus::initializer_failed) {
    std::string why = "the initializer failed";
    try {
      auto [type, what] = unpack<std::tuple<std::string, std::string>>(msg);
      why = "the initializer raised " + type + ": " + what;
    } catch (const SerializationError&) {
    }
    break_pool_locked(why, done);
    return;
  }
  auto it = tasks_.find(h.id);
  if (it == tasks_.end()) return;  // already failed (timed out, say) before its result came
  Task& t = it->second;
  w.held.erase(h.id);
  if (h.end_ticks > h.start_ticks) {
    const auto run_ns = static_cast<std::int64_t>(static_cast<double>(h.end_ticks - h.start_ticks) *
                                                  weft::detail::ns_per_tick());
    ewma_run_ns_ += (run_ns - ewma_run_ns_) / 8;
  }
  Done d;
  d.result = std::move(t.result);
  if (h.status == ResultStatus::ok) {
    d.ok = true;
    d.payload.assign(msg);
    ++stats_.completed;
  } else {
    std::string type = "unknown", what = "the task failed";
    try {
      std::tie(type, what) = unpack<std::tuple<std::string, std::string>>(msg);
    } catch (const SerializationError&) {
    }
    d.error = std::make_exception_ptr(weft::RemoteError(type, what, ""));
    ++stats_.failed;
  }
  if (t.trace_name != nullptr) {
    d.name = t.trace_name;
    d.id = h.id;
    d.submit = t.submit_ticks;
    d.start = h.start_ticks;
    d.end = h.end_ticks;
    d.worker = wi;
  }
  if (!spans.empty() && trace_executor_ != 0) {
    try {
      auto rows = unpack<std::vector<std::tuple<std::string, std::uint64_t, std::uint64_t, std::uint64_t,
                                                std::uint32_t, bool>>>(spans);
      for (auto& [name, submit, start, end, worker, failed] : rows) {
        trace::record(trace::Span{trace::intern(name), 0, submit, start, end, trace_executor_, wi, failed});
      }
    } catch (const SerializationError&) {
    }
  }
  tasks_.erase(it);
  done.push_back(std::move(d));
}

void PoolCore::break_pool_locked(const std::string& why, std::vector<Done>& done) {
  broken_ = true;
  broken_why_ = why;
  for (auto& [id, t] : tasks_) {
    Done d;
    d.result = std::move(t.result);
    d.error = std::make_exception_ptr(weft::BrokenExecutor("weft: " + o_.name + " is broken: " + why));
    ++stats_.failed;
    done.push_back(std::move(d));
  }
  tasks_.clear();
  pending_.clear();
  for (auto& w : workers_) {
    w.held.clear();
    if (w.alive && w.inbox) w.inbox->close();
  }
  space_cv_.notify_all();
  idle_cv_.notify_all();
}

// A worker's exit-status descriptor became readable: it has ended (and been reaped).
//  1. Its outbox still holds the results it finished before it ended: handle them.
//  2. Tasks still in its inbox never started: back to the front of pending_, in order.
//  3. What it still holds was running (or taken from the inbox and not yet marked): those fail, with
//     Timeout for the task it was killed for, WorkerLost otherwise.
//  4. Unless the pool is broken or stopping with nothing left, a new worker takes its slot (new rings: the
//     old ones may hold a slot the dead process left half-written).
void PoolCore::on_worker_exit(std::uint32_t wi, std::vector<Done>& done) {
  Worker& w = workers_[wi];
  // Only a worker that has really ended (a stale event cannot make us wait for a live one).
  if (!w.alive || !w.proc->join(std::chrono::nanoseconds(0))) return;
  ::epoll_ctl(epoll_fd_, EPOLL_CTL_DEL, w.proc->sentinel(), nullptr);
  const int sig = w.proc->signal();
  const int code = sig == 0 ? w.proc->exitcode().value_or(0) : 0;
  const int pid = w.proc->pid();
  const bool was_ready = cb_->slots[wi].ready.load(std::memory_order_acquire) != 0;
  std::string msg;
  while (w.outbox->try_get_bytes_into(msg)) handle_result(wi, msg, done);  // 1
  if (broken_) {
    w.alive = false;
    return;
  }
  w.alive = false;
  std::vector<std::uint64_t> back;  // 2
  while (w.inbox->try_get_bytes_into(msg)) {
    if (msg.size() < sizeof(TaskHeader)) continue;
    TaskHeader h;
    std::memcpy(&h, msg.data(), sizeof h);
    auto it = tasks_.find(h.id);
    if (it == tasks_.end()) continue;
    w.held.erase(h.id);
    if (it->second.killed) {  // its KillSwitch was used while it waited in this inbox: it does not run
      cancel_unstarted_locked(it, done);
      continue;
    }
    it->second.message = msg;
    it->second.worker = -1;
    back.push_back(h.id);
  }
  pending_.insert(pending_.begin(), back.begin(), back.end());
  const bool lost = !w.held.empty();
  for (std::uint64_t id : w.held) {  // 3
    auto it = tasks_.find(id);
    if (it == tasks_.end()) continue;
    Done d;
    d.result = std::move(it->second.result);
    if (id == w.timed_out && it->second.killed) {
      d.error = std::make_exception_ptr(weft::Cancelled("weft: the task was ended by its KillSwitch; its worker was "
                                                        "killed and replaced"));
      ++stats_.cancelled;
    } else if (id == w.timed_out) {
      d.error = std::make_exception_ptr(weft::Timeout("weft: the task ran past its timeout of " +
                                                      std::to_string(it->second.timeout.value_or(std::chrono::nanoseconds(0)).count() / 1'000'000) +
                                                      " ms; its worker was killed and replaced"));
      ++stats_.timeouts;
      ++stats_.failed;
    } else {
      d.error = std::make_exception_ptr(WorkerLost(pid, sig, code));
      ++stats_.failed;
    }
    tasks_.erase(it);
    done.push_back(std::move(d));
  }
  w.held.clear();
  if (lost || sig != 0) ++stats_.workers_lost;
  if (!was_ready) {
    if (o_.initializer.trampoline != 0 || ++early_deaths_ >= kMaxEarlyDeaths) {
      break_pool_locked(o_.initializer.trampoline != 0
                            ? "a worker ended (" + std::string(sig != 0 ? "signal " + std::to_string(sig)
                                                                        : "status " + std::to_string(code)) +
                                  ") before its initializer finished"
                            : "workers keep ending before they start",
                        done);
      return;
    }
  } else {
    early_deaths_ = 0;
  }
  if (stop_ && tasks_.empty()) return;  // 4
  try {
    spawn(wi);
  } catch (const std::exception& e) {
    break_pool_locked(std::string("a worker could not be replaced: ") + e.what(), done);
    return;
  }
  pump_pending_locked(done);
  if (tasks_.empty()) idle_cv_.notify_all();
}

void PoolCore::cancel_unstarted_locked(std::unordered_map<std::uint64_t, Task>::iterator it, std::vector<Done>& done) {
  Done d;
  d.result = std::move(it->second.result);
  d.error = std::make_exception_ptr(weft::Cancelled("weft: the task was ended by its KillSwitch before it ran"));
  ++stats_.cancelled;
  tasks_.erase(it);
  done.push_back(std::move(d));
}

void PoolCore::kill_task(std::uint64_t id) {
  std::vector<Done> done;
  bool wake_collector = false;
  {
    std::lock_guard lock(mu_);
    auto it = tasks_.find(id);
    if (it == tasks_.end() || it->second.killed) return;  // finished, or killed already
    Task& t = it->second;
    t.killed = true;
    if (t.worker < 0) {
      // Waiting in this process: it never runs.
      pending_.erase(std::remove(pending_.begin(), pending_.end(), id), pending_.end());
      cancel_unstarted_locked(it, done);
      space_cv_.notify_all();  // room in pending_ for a blocked submit
    } else {
      Worker& w = workers_[static_cast<std::uint32_t>(t.worker)];
      if (w.alive && w.timed_out == 0 &&
          cb_->slots[static_cast<std::uint32_t>(t.worker)].current.load(std::memory_order_acquire) == id) {
        w.timed_out = id;
        w.proc->kill();  // its exit is handled by on_worker_exit when the fork server has reaped it
      } else {
        // In a worker's inbox (the ring cannot take it back): the worker is killed as soon as it starts it
        // (a deadline of zero), or it fails with Cancelled if that worker dies before.
        t.timeout = std::chrono::nanoseconds(0);
        has_timeouts_ = true;
        wake_collector = true;
      }
    }
  }
  if (wake_collector) wake();
  complete(done);
}

void PoolCore::check_timeouts_locked(std::int64_t now, std::int64_t& next_ns) {
  for (std::uint32_t i = 0; i < n_; ++i) {
    Worker& w = workers_[i];
    if (!w.alive || w.timed_out != 0) continue;
    const std::uint64_t id = cb_->slots[i].current.load(std::memory_order_acquire);
    if (id == 0) continue;
    auto it = tasks_.find(id);
    if (it == tasks_.end() || !it->second.timeout) continue;
    const std::int64_t deadline = cb_->slots[i].started_ns.load(std::memory_order_relaxed) + it->second.timeout->count();
    if (now >= deadline) {
      w.timed_out = id;
      w.proc->kill();  // its exit is handled by on_worker_exit when the fork server has reaped it
    } else {
      next_ns = std::min(next_ns, deadline);
    }
  }
}

}  // namespace detail

void KillSwitch::kill() {
  std::shared_ptr<detail::PoolCore> core;
  std::uint64_t task = 0;
  {
    std::lock_guard lock(mu_);
    killed_ = true;
    core = core_.lock();
    task = task_;
  }
  if (core) core->kill_task(task);
}

bool KillSwitch::killed() const {
  std::lock_guard lock(mu_);
  return killed_;
}

ProcessPool::ProcessPool(ProcessPoolOptions options) : core_(std::make_shared<detail::PoolCore>(std::move(options))) {
  core_->attach_waiter();
}
ProcessPool::~ProcessPool() { core_->shutdown(Shutdown::drain); }
void ProcessPool::enqueue(std::string message, std::unique_ptr<detail::PendingResult> result,
                          const SubmitOptions& options, void* fn, std::string_view name) {
  core_->enqueue(std::move(message), std::move(result), options, fn, name);
}
void ProcessPool::shutdown(Shutdown mode) { core_->shutdown(mode); }
std::size_t ProcessPool::workers() const noexcept { return core_->workers(); }
std::vector<int> ProcessPool::worker_pids() const { return core_->pids(); }
ProcessPoolStats ProcessPool::stats() const { return core_->stats(); }

}  // namespace weft::process

