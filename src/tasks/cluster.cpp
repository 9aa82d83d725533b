// ClusterExecutor: placement, the collector of remote results, discovery and shutdown. The protocol (placement
// steps 1-4, collection 5-7, shutdown 8-9) is written at the top of weft/tasks/cluster.hpp.
//
// Locks: mu_ is never held while another lock is taken (App::find, which takes the App's mutex, runs before
// placement takes mu_), nor while user code runs (future callbacks) or the broker or backend is called: those
// happen with mu_ released.
//
// Ownership of a RemoteCall in calls_: its submitter fills it in before `sent` (under mu_); from then on only
// the collector changes or removes it, so the collector may keep pointers to sent calls across an unlock.
// A call whose send fails is removed by its submitter (abort_remote) and was never seen by the collector.
#include "weft/tasks/cluster.hpp"

#include <algorithm>
#include <stdexcept>

namespace weft::tasks {

namespace {

using Steady = std::chrono::steady_clock;

// The Worker's default heartbeat period: how often discovery runs when no worker says otherwise.
constexpr auto kDefaultDiscovery = std::chrono::milliseconds(2000);

ClusterOptions checked(ClusterOptions o) {
  if (o.discovery_interval.count() < 0) throw std::invalid_argument("weft: ClusterOptions::discovery_interval < 0");
  if (o.result_poll.count() <= 0) throw std::invalid_argument("weft: ClusterOptions::result_poll must be above 0");
  if (o.max_remote_in_flight == 0) throw std::invalid_argument("weft: ClusterOptions::max_remote_in_flight is 0");
  if (o.drain_timeout && o.drain_timeout->count() < 0) {
    throw std::invalid_argument("weft: ClusterOptions::drain_timeout < 0");
  }
  return o;
}

bool contains(const std::vector<std::string>& v, const std::string& s) {
  return std::find(v.begin(), v.end(), s) != v.end();
}

}  // namespace

ClusterExecutor::ClusterExecutor(App& app, ClusterOptions options)
    : app_(app),
      options_(checked(std::move(options))),
      pool_(ThreadPoolOptions{.threads = options_.local_threads, .name = options_.name}) {
  refresh();  // the first view of the cluster, before any call is placed
  collector_ = std::thread([this] { collect(); });
}

ClusterExecutor::~ClusterExecutor() {
  shutdown(Shutdown::drain);
  {
    std::lock_guard lock(mu_);
    quit_ = true;
  }
  work_cv_.notify_all();
  collector_.join();
}

// ---- placement ----

detail::RemoteCall* ClusterExecutor::place(const std::string& task) {
  const detail::TaskEntry* entry = app_.find(task);  // the App's mutex, never under mu_
  const bool ignore_result = entry != nullptr && entry->options.ignore_result;
  const std::string queue = entry != nullptr ? entry->options.queue : "celery";

  std::unique_lock lock(mu_);
  if (stopping_.load(std::memory_order_relaxed)) throw BrokenExecutor();  // written under mu_
  bool remote = false;
  if (!ignore_result) {
    if (!options_.local_tasks) {
      space_cv_.wait(lock, [&] {
        return stopping_.load(std::memory_order_relaxed) || remote_in_flight_ < options_.max_remote_in_flight;
      });
      if (stopping_.load(std::memory_order_relaxed)) throw BrokenExecutor();
      remote = true;
    } else if (remote_in_flight_ < options_.max_remote_in_flight) {
      const std::size_t capacity = capacity_locked(task, queue);
      if (capacity > 0) {
        const auto free_local = static_cast<std::ptrdiff_t>(pool_.threads()) -
                                local_in_flight_.load(std::memory_order_relaxed);
        if (free_local <= 0) {
          const auto free_remote =
              static_cast<std::ptrdiff_t>(capacity) - static_cast<std::ptrdiff_t>(remote_in_flight_);
          remote = free_remote > free_local;
        }
      }
    }
  }
  if (!remote) {
    local_in_flight_.fetch_add(1, std::memory_order_relaxed);  // adopted by the caller's LocalSlot
    local_calls_.fetch_add(1, std::memory_order_relaxed);
    return nullptr;
  }
  ++remote_in_flight_;
  const std::uint64_t seq = next_seq_++;
  detail::RemoteCall& call = calls_.try_emplace(seq).first->second;
  call.seq = seq;
  return &call;
}

std::size_t ClusterExecutor::capacity_locked(const std::string& task, const std::string& queue) {
  std::string key = queue + '\n' + task;
  if (auto it = capacity_.find(key); it != capacity_.end()) return it->second;
  std::size_t sum = 0;
  for (const WorkerInfo& w : workers_) {
    if (contains(w.queues, queue) && contains(w.registered, task)) sum += w.concurrency;
  }
  capacity_.emplace(std::move(key), sum);
  return sum;
}

void ClusterExecutor::send_remote(detail::RemoteCall* call, const std::string& task, Json args) {
  AsyncResult r = app_.send_task(task, std::move(args));  // throws: the caller's guard calls abort_remote
  {
    std::lock_guard lock(mu_);
    call->id = r.id();
    call->sent = true;
    ++stats_.remote_calls;
  }
  work_cv_.notify_one();
}

void ClusterExecutor::abort_remote(detail::RemoteCall* call) noexcept {
  decltype(calls_)::node_type node;
  {
    std::lock_guard lock(mu_);
    node = calls_.extract(call->seq);
    --remote_in_flight_;
  }
  space_cv_.notify_one();
  done_cv_.notify_all();
  // `node` goes here, outside the lock: its future gets BrokenPromise (nobody holds it any more).
}

// ---- discovery ----

void ClusterExecutor::refresh() { install(app_.workers()); }

void ClusterExecutor::install(std::vector<WorkerInfo> seen) {
  Steady::duration period = options_.discovery_interval;
  if (period == Steady::duration::zero()) {
    double shortest = 0;
    for (const WorkerInfo& w : seen) {
      if (w.freq > 0 && (shortest == 0 || w.freq < shortest)) shortest = w.freq;
    }
    period = shortest > 0 ? std::chrono::duration_cast<Steady::duration>(std::chrono::duration<double>(shortest))
                          : Steady::duration(kDefaultDiscovery);
    period = std::max<Steady::duration>(period, std::chrono::milliseconds(1));
  }
  std::lock_guard lock(mu_);
  workers_ = std::move(seen);
  capacity_.clear();
  discovery_period_ = period;
  next_discovery_ = Steady::now() + period;
  ++stats_.discoveries;
}

void ClusterExecutor::discover() noexcept {
  try {
    refresh();
  } catch (const std::exception& e) {
    std::lock_guard lock(mu_);
    workers_.clear();  // unknown: place every Task call locally until a read succeeds
    capacity_.clear();
    next_discovery_ = Steady::now() + (discovery_period_ > Steady::duration::zero()
                                           ? discovery_period_
                                           : Steady::duration(kDefaultDiscovery));
    ++stats_.errors;
    try {
      stats_.last_error = std::string("discovery: ") + e.what();
    } catch (...) {
      // no memory for the text: the count above still records the failure
    }
  }
}

void ClusterExecutor::note_error(const std::string& what) noexcept {
  std::lock_guard lock(mu_);
  ++stats_.errors;
  try {
    stats_.last_error = what;
  } catch (...) {
    // no memory for the text: the count above still records the failure
  }
}

// ---- collection ----

ClusterExecutor::Verdict ClusterExecutor::judge(detail::RemoteCall* call, bool cancel_queued, bool give_up) {
  if (call->state->cancelled()) return {call, Outcome::cancelled, nullptr};  // Future::cancel (step 7)
  if (give_up) {
    return {call, Outcome::failed,
            std::make_exception_ptr(BrokenPromise("weft: the ClusterExecutor stopped waiting for task " + call->id +
                                                  " at shutdown (drain_timeout); it may still run on a worker"))};
  }
  std::optional<ResultMeta> meta;
  try {
    meta = app_.backend().get(call->id);
  } catch (...) {
    return {call, Outcome::failed, std::current_exception()};
  }
  if (meta && is_ready(meta->state)) {
    return {call, meta->state == State::success ? Outcome::succeeded : Outcome::ready, nullptr};
  }
  if (cancel_queued && !(meta && meta->state == State::started)) return {call, Outcome::cancelled, nullptr};
  return {call, Outcome::pending, nullptr};
}

void ClusterExecutor::collect() {
  collector_id_.store(std::this_thread::get_id());
  std::vector<detail::RemoteCall*> batch;
  std::vector<Verdict> verdicts;
  std::unique_lock lock(mu_);
  for (;;) {
    if (quit_ && calls_.empty()) return;
    const bool stopping = stopping_.load(std::memory_order_relaxed);  // written under mu_
    const auto now = Steady::now();
    if (!stopping && now >= next_discovery_) {  // step 6; after shutdown nothing is placed any more
      lock.unlock();
      discover();
      lock.lock();
      continue;
    }
    batch.clear();
    for (auto& [seq, call] : calls_) {
      if (!call.sent || call.settled) continue;
      batch.push_back(&call);
      if (batch.size() == kSweep) break;
    }
    if (batch.empty()) {
      if (stopping) {
        work_cv_.wait(lock);  // a call being sent, its abort, or quit_ wakes it
      } else {
        work_cv_.wait_until(lock, next_discovery_);
      }
      continue;
    }
    const bool cancel_queued = cancel_remote_;
    const bool give_up = drain_deadline_ && now >= *drain_deadline_;
    auto wake = now + options_.result_poll;
    if (!stopping) wake = std::min(wake, next_discovery_);
    if (drain_deadline_) wake = std::min(wake, *drain_deadline_);
    const std::string oldest = batch.front()->id;
    lock.unlock();

    // Step 5: the backend reads, with mu_ released.
    verdicts.clear();
    for (detail::RemoteCall* call : batch) {
      Verdict v = judge(call, cancel_queued, give_up);
      if (v.outcome != Outcome::pending) verdicts.push_back(std::move(v));
    }
    if (verdicts.empty()) {
      try {
        (void)app_.backend().wait(oldest, wake);
      } catch (const std::exception& e) {
        note_error(std::string("waiting for task ") + oldest + ": " + e.what());  // the next get() reports it
      }
      lock.lock();
      continue;
    }

    // Settle and count first, so that a submitter woken by one of these results already sees the capacity
    // it frees and the counters that include it.
    lock.lock();
    for (const Verdict& v : verdicts) {
      v.call->settled = true;
      if (v.outcome == Outcome::succeeded) ++stats_.remote_succeeded;
      if (v.outcome == Outcome::ready || v.outcome == Outcome::failed) ++stats_.remote_failed;
      if (v.outcome == Outcome::cancelled) ++stats_.remote_cancelled;
    }
    remote_in_flight_ -= verdicts.size();
    lock.unlock();
    space_cv_.notify_all();

    for (Verdict& v : verdicts) {
      detail::RemoteCall& call = *v.call;
      switch (v.outcome) {
        case Outcome::succeeded:
        case Outcome::ready:
          call.complete(call.state, AsyncResult(app_.backend_ptr(), call.id));  // runs the future's callbacks
          if (!options_.keep_results) {
            try {
              app_.backend().forget(call.id);
            } catch (const std::exception& e) {
              note_error(std::string("forgetting the result of task ") + call.id + ": " + e.what());
            }
          }
          break;
        case Outcome::cancelled:
          try {
            app_.revoke(call.id);  // before the future is cancelled: once it is, the revocation is in place
          } catch (const std::exception& e) {
            note_error(std::string("revoking task ") + call.id + ": " + e.what());
          }
          (void)call.state->cancel();  // false when Future::cancel did it already
          break;
        case Outcome::failed:
          (void)call.state->set_exception(v.error);  // false when cancelled meanwhile: nobody wants it
          break;
        case Outcome::pending:
          break;
      }
    }

    std::vector<decltype(calls_)::node_type> done;
    done.reserve(verdicts.size());
    lock.lock();
    for (const Verdict& v : verdicts) done.push_back(calls_.extract(v.call->seq));
    const bool empty = calls_.empty();
    lock.unlock();
    done.clear();  // releases the states, with mu_ released
    if (empty) done_cv_.notify_all();
    lock.lock();
  }
}

// ---- shutdown and queries ----

void ClusterExecutor::shutdown(Shutdown mode) {
  {
    std::lock_guard lock(mu_);
    stopping_.store(true, std::memory_order_release);
    if (mode == Shutdown::cancel_pending) cancel_remote_ = true;
    if (options_.drain_timeout && !drain_deadline_) drain_deadline_ = Steady::now() + *options_.drain_timeout;
  }
  work_cv_.notify_all();
  space_cv_.notify_all();
  pool_.shutdown(mode);
  if (pool_.in_pool() || on_collector()) return;  // the destructor waits
  std::unique_lock lock(mu_);
  done_cv_.wait(lock, [&] { return calls_.empty(); });
}

std::vector<WorkerInfo> ClusterExecutor::workers() const {
  std::lock_guard lock(mu_);
  return workers_;
}

std::size_t ClusterExecutor::remote_cpus() const {
  std::lock_guard lock(mu_);
  std::size_t sum = 0;
  for (const WorkerInfo& w : workers_) sum += static_cast<std::size_t>(std::max(w.cpus, 0));
  return sum;
}

std::size_t ClusterExecutor::remote_concurrency() const {
  std::lock_guard lock(mu_);
  std::size_t sum = 0;
  for (const WorkerInfo& w : workers_) sum += w.concurrency;
  return sum;
}

ClusterStats ClusterExecutor::stats() const {
  ClusterStats s;
  {
    std::lock_guard lock(mu_);
    s = stats_;
    s.remote_in_flight = remote_in_flight_;
  }
  s.local_calls = local_calls_.load(std::memory_order_relaxed);
  const std::ptrdiff_t local = local_in_flight_.load(std::memory_order_relaxed);
  s.local_in_flight = static_cast<std::size_t>(std::max<std::ptrdiff_t>(0, local));
  return s;
}

}  // namespace weft::tasks
