// The thread-pool worker; its protocol is at the top of weft/tasks/worker.hpp.
#include "weft/tasks/worker.hpp"

#include <cxxabi.h>
#include <signal.h>
#include <dlfcn.h>
#include <stdlib.h>
#include <sched.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <random>
#include <stdexcept>
#include <typeinfo>

#include "weft/io/future.hpp"
#include "weft/io/group.hpp"
#include "weft/io/loop.hpp"
#include "weft/io/sync.hpp"
#include "weft/process/errors.hpp"
#include "weft/process/pool.hpp"
#include "weft/thread/thread_pool.hpp"
#include "workflow.hpp"

namespace weft::tasks {

// One task that a consume thread is running.
struct Worker::Running final : TaskContext {
  Delivery delivery;
  std::shared_ptr<const TaskMessage> msg;  // as decoded, for the canvas when the housekeeper ends it
  std::string id_, task;
  int retries_ = 0;
  const std::string* host = nullptr;
  std::chrono::steady_clock::time_point started;
  std::chrono::steady_clock::time_point renewed;  // guarded by mu_: its lease was taken or last extended
  std::optional<std::chrono::steady_clock::time_point> soft_deadline, hard_deadline;
  std::atomic<bool> cancel{false};
  bool identified = false;  // guarded by mu_: id_, task, msg, retries_ and the deadlines are set (decoded)
  bool acked = false;       // guarded by mu_: acknowledged before it ran (acks_late off): no renewals
  bool settled = false;  // guarded by the worker's mu_: its thread or the housekeeper has taken the right to settle it
  bool completing = false;  // guarded by mu_: settled by its thread, its result on the way (leases still renewed)
  bool ending = false;      // guarded by mu_: being acknowledged or handed back (a failed renewal is expected)
  io::TaskGroup* group = nullptr;  // Pool::async_, loop thread only: the scope of its coroutine while it runs
  std::shared_ptr<process::KillSwitch> kill_switch;  // Pool::processes, guarded by mu_: ends its process

  const std::string& id() const noexcept override { return id_; }
  const std::string& name() const noexcept override { return task; }
  int retries() const noexcept override { return retries_; }
  const std::string& hostname() const noexcept override { return *host; }
  bool soft_time_limit_exceeded() const noexcept override {
    return soft_deadline && std::chrono::steady_clock::now() >= *soft_deadline;
  }
  bool cancelled() const noexcept override {
    return cancel.load(std::memory_order_acquire) || (hard_deadline && std::chrono::steady_clock::now() >= *hard_deadline);
  }
};

// How a task's delivery ends: its result to store, its acknowledgement, then its canvas.
struct Worker::Completion {
  std::shared_ptr<Running> r;
  std::optional<ResultMeta> meta;  // none: ignore_result, or no id to store it under
  bool ack = true;                 // false: acknowledged before it ran (acks_late off)
  bool after = false;              // send what the message's canvas asks for, with `state` and `value`
  std::shared_ptr<const TaskMessage> msg;
  State state = State::success;
  Json value;
};

// What prepare() found: the decoded message, its task and the limits that apply.
struct Worker::Prepared {
  std::shared_ptr<const TaskMessage> mp;
  const detail::TaskEntry* entry = nullptr;
  bool ignore = false;
  std::optional<std::chrono::milliseconds> hard, soft;
  std::optional<std::chrono::steady_clock::time_point> start_at;  // Pool::async_: its rate limit's slot
  std::shared_ptr<process::KillSwitch> kill_switch;               // Pool::processes: for a terminate
};

// How a task's run went.
struct Worker::Ran {
  // revoked: Pool::async_, revoked (without terminate) while it waited for its rate limit's slot.
  enum class Outcome { success, failure, bad_arguments, retry, discarded, late, revoked } outcome = Outcome::success;
  Json value;
  std::optional<std::chrono::milliseconds> retry_in;
  std::string retry_reason;
};

// The event loop, its thread, and the two thread pools beside it: one runs plain tasks (so that they never
// block the loop), one thread concludes the tasks (stores, acknowledges, retries: blocking calls).
struct Worker::Async {
  std::unique_ptr<io::Loop> loop;
  std::thread thread;
  io::Event stop;  // loop thread only: set (through call_soon_threadsafe) once no task is in flight
  std::unique_ptr<ThreadPool> blocking;
  std::unique_ptr<ThreadPool> concluder;
};

namespace {

thread_local const TaskContext* t_current = nullptr;

using Steady = std::chrono::steady_clock;

std::string type_name(const std::exception& e) {
  int status = 0;
  const char* mangled = typeid(e).name();
  char* d = abi::__cxa_demangle(mangled, nullptr, nullptr, &status);
  std::string out = status == 0 && d != nullptr ? d : mangled;
  std::free(d);
  return out;
}

Json exc(const std::string& type, const std::string& message) {
  return Json{{"exc_type", type}, {"exc_message", Json::array({message})}, {"exc_module", "weft"}};
}

std::size_t cpus() {
  cpu_set_t set;
  CPU_ZERO(&set);
  if (sched_getaffinity(0, sizeof set, &set) == 0) return std::max(1, CPU_COUNT(&set));
  return std::max(1u, std::thread::hardware_concurrency());
}

std::string default_hostname() {
  char buf[256] = {};
  if (::gethostname(buf, sizeof buf - 1) != 0) return "weft@localhost";
  return std::string("weft@") + buf;
}

// The delay before retry number `retries` + 1 (TaskOptions: exponential backoff, capped, with jitter).
std::chrono::milliseconds backoff(const TaskOptions& o, int retries) {
  double ms = static_cast<double>(o.retry_delay.count()) * std::pow(std::max(1.0, o.retry_backoff), retries);
  ms = std::min(ms, static_cast<double>(o.retry_backoff_max.count()));
  if (o.retry_jitter && ms > 1) {
    thread_local std::mt19937_64 rng(std::random_device{}());
    ms = std::uniform_real_distribution<double>(ms / 2, ms)(rng);
  }
  return std::chrono::milliseconds(static_cast<std::int64_t>(ms));
}

// A time limit from a message, in seconds: clamped to [0, a year] (a larger or not-a-number one is no reason
// for undefined arithmetic).
std::chrono::milliseconds seconds_ms(double s) {
  constexpr double kYear = 365.0 * 24 * 3600;
  if (!(s > 0)) return std::chrono::milliseconds(0);
  return std::chrono::milliseconds(static_cast<std::int64_t>(std::min(s, kYear) * 1000.0));
}

// ---- Pool::processes: what runs in the worker processes ----------------------------------------------------

App* g_child_app = nullptr;  // a worker process's registry (set by child_init; lives as long as the process)

// The context of a task in a worker process: limits on its own clock (the parent kills it at the hard one).
struct ChildContext final : TaskContext {
  std::string id_, name_, host_;
  int retries_ = 0;
  std::optional<Steady::time_point> soft, hard;
  const std::string& id() const noexcept override { return id_; }
  const std::string& name() const noexcept override { return name_; }
  int retries() const noexcept override { return retries_; }
  const std::string& hostname() const noexcept override { return host_; }
  bool soft_time_limit_exceeded() const noexcept override { return soft && Steady::now() >= *soft; }
  bool cancelled() const noexcept override { return hard && Steady::now() >= *hard; }
};

void child_init(std::uintptr_t setup, std::vector<std::string> modules) {
  // Ctrl-C and a service manager's SIGTERM reach the whole process group: the worker's parent turns them into
  // a warm shutdown, in which the running tasks finish; their processes must not die of them meanwhile. The
  // parent ends these processes itself.
  ::signal(SIGINT, SIG_IGN);
  ::signal(SIGTERM, SIG_IGN);
  // A registry only: this App's broker and backend (a process-local memory://) are never used.
  auto* app = new App(AppOptions{.broker = "memory://weft-worker-process", .backend = "memory://weft-worker-process"});
  if (setup != 0) reinterpret_cast<void (*)(App&)>(setup)(*app);
  for (const auto& path : modules) {
    void* handle = ::dlopen(path.c_str(), RTLD_NOW | RTLD_LOCAL);
    if (handle == nullptr) throw std::runtime_error("weft: cannot load task module '" + path + "': " + ::dlerror());
    auto* fn = reinterpret_cast<void (*)(App&)>(::dlsym(handle, "weft_register_tasks"));
    if (fn == nullptr) throw std::runtime_error("weft: '" + path + "' is not a weft task module");
    fn(*app);
  }
  g_child_app = app;
}

// Runs a task in a worker process. Returns JSON text: {"ok": result} | {"retry": reason, "delay_ms": n|null}
// | {"error": {"exc_type", ...}, "kind": "failure" | "bad_arguments" | "autoretry"}.
std::string run_in_child(std::string task, std::string args, std::string kwargs, std::string id, int retries,
                         std::string host, std::int64_t soft_ms, std::int64_t hard_ms) {
  if (g_child_app == nullptr) throw std::logic_error("weft: a worker process without its task registry");
  const detail::TaskEntry* e = g_child_app->find(task);
  if (e == nullptr) {
    return Json{{"error", exc("NotRegistered", "weft: no task '" + task +
                                                   "' is registered in the worker processes (WorkerOptions::setup, "
                                                   "modules)")},
                {"kind", "failure"}}
        .dump();
  }
  ChildContext ctx;
  ctx.id_ = std::move(id);
  ctx.name_ = task;
  ctx.host_ = std::move(host);
  ctx.retries_ = retries;
  const auto start = Steady::now();
  if (soft_ms >= 0) ctx.soft = start + std::chrono::milliseconds(soft_ms);
  if (hard_ms >= 0) ctx.hard = start + std::chrono::milliseconds(hard_ms);
  t_current = &ctx;
  struct Clear {
    ~Clear() { t_current = nullptr; }
  } clear;
  try {
    return Json{{"ok", e->invoke(Json::parse(args), Json::parse(kwargs))}}.dump();
  } catch (const ArgumentError& x) {
    return Json{{"error", exc("TypeError", x.what())}, {"kind", "bad_arguments"}}.dump();
  } catch (const Retry& r) {
    return Json{{"retry", r.what()}, {"delay_ms", r.delay() ? Json(r.delay()->count()) : Json(nullptr)}}.dump();
  } catch (const std::exception& x) {
    const bool again = e->options.autoretry_for && e->options.autoretry_for(x);
    return Json{{"error", exc(type_name(x), x.what())}, {"kind", again ? "autoretry" : "failure"}}.dump();
  } catch (...) {
    return Json{{"error", exc("unknown", "a task threw something that is not a std::exception")}, {"kind", "failure"}}
        .dump();
  }
}

}  // namespace

const TaskContext* current_task() noexcept { return t_current; }

const char* to_string(Pool pool) noexcept {
  switch (pool) {
    case Pool::threads:
      return "threads";
    case Pool::processes:
      return "processes";
    case Pool::async_:
      return "async";
  }
  return "threads";
}

Worker::Worker(App& app, WorkerOptions options) : app_(app), options_(std::move(options)) {
  if (options_.queues.empty()) throw std::invalid_argument("weft: a worker needs at least one queue");
  if (options_.lease.count() <= 0) throw std::invalid_argument("weft: a worker's lease must be above 0");
  if (options_.heartbeat.count() <= 0) throw std::invalid_argument("weft: a worker's heartbeat must be above 0");
  if (options_.control_interval.count() <= 0) {
    throw std::invalid_argument("weft: a worker's control interval must be above 0");
  }
  if (options_.autoscale) {
    const Autoscale& a = *options_.autoscale;
    if (a.max < 1 || a.max > 4096 || a.min < 1 || a.min > a.max || a.idle.count() <= 0) {
      throw std::invalid_argument("weft: autoscale needs 1 <= min <= max <= 4096 and an idle time above 0 (got max " +
                                  std::to_string(a.max) + ", min " + std::to_string(a.min) + ")");
    }
    if (options_.pool == Pool::async_) {
      throw std::invalid_argument("weft: autoscale is for the threads and processes pools (an async pool's tasks "
                                  "cost no thread each: set its concurrency)");
    }
    options_.concurrency = a.max;
  }
  if (options_.concurrency == 0) options_.concurrency = options_.pool == Pool::async_ ? 100 : cpus();
  if (options_.prefetch != 0 &&
      (options_.prefetch < options_.concurrency || options_.prefetch > WorkerOptions::kMaxPrefetch)) {
    throw std::invalid_argument("weft: a worker's prefetch must be from its concurrency (" +
                                std::to_string(options_.concurrency) + ") to " +
                                std::to_string(WorkerOptions::kMaxPrefetch) + ", or 0 (got " +
                                std::to_string(options_.prefetch) + ")");
  }
  prefetch_ = options_.prefetch != 0 ? options_.prefetch
                                     : std::min(options_.concurrency * 4, WorkerOptions::kMaxPrefetch);
  batch_results_ = app_.backend().prefers_batches();
  hostname_ = options_.hostname.empty() ? default_hostname() : options_.hostname;
  broker_ = connect_broker(app_.options().broker);
  if (options_.pool == Pool::processes) {
    if (options_.process_max_message < 1024 || options_.process_max_message > kMaxEnvelope) {
      throw std::invalid_argument("weft: process_max_message must be from 1 KiB to " + std::to_string(kMaxEnvelope));
    }
    if (options_.setup == nullptr && options_.modules.empty()) {
      throw std::invalid_argument(
          "weft: a process pool needs its tasks' registration: WorkerOptions::setup or modules");
    }
    process::ProcessPoolOptions po;
    po.workers = options_.concurrency;
    po.max_tasks_per_child = options_.max_tasks_per_child;
    po.max_message = options_.process_max_message;
    po.name = "weft-tasks";
    po.initialize(&child_init, reinterpret_cast<std::uintptr_t>(options_.setup), options_.modules);
    processes_ = std::make_unique<process::ProcessPool>(std::move(po));
  }
  if (options_.pool == Pool::async_) {
    async_ = std::make_unique<Async>();
    io::LoopOptions lo;
    lo.max_pending_calls = 2 * options_.concurrency + 16;  // a start and a cancel per task in flight, the stop
    async_->loop = std::make_unique<io::Loop>(lo);
    ThreadPoolOptions bo;
    bo.threads = cpus();
    bo.capacity = options_.concurrency + 1;  // never full: a task in flight waits there at most once
    bo.name = "weft-blocking";
    async_->blocking = std::make_unique<ThreadPool>(bo);
    ThreadPoolOptions co;
    co.threads = 1;
    co.capacity = options_.concurrency + 1;
    co.name = "weft-conclude";
    async_->concluder = std::make_unique<ThreadPool>(co);
  }
}

Worker::~Worker() {
  stop();
  processes_.reset();  // after the threads that submit to it have stopped
}

void Worker::start() {
  // Before any task is taken (nothing to renew meanwhile); then every tenth of result_expires (housekeeper).
  expire_results();
  {
    std::lock_guard lock(mu_);
    if (started_) throw std::logic_error("weft: Worker::start called twice");
    started_ = true;
    // Pool::async_: one thread feeds the loop.
    const std::size_t slots = async_ ? 1 : options_.concurrency;
    threads_.resize(slots);
    alive_.assign(slots, 0);
    const std::size_t first = options_.autoscale ? options_.autoscale->min : slots;
    for (std::size_t i = 0; i < first; ++i) grow_locked();
  }
  if (async_) {
    async_->thread = std::thread([this] {
      auto wait_for_stop = [](Async* a) -> io::Task<void> { co_await a->stop.wait(); };
      try {
        async_->loop->run(wait_for_stop(async_.get()));
      } catch (const std::exception& e) {
        note_error(std::string("event loop: ") + e.what());
      }
      // Normally after stop() saw nothing in flight. Otherwise (the loop failed) the tasks handed to it are
      // lost here and delivered again when their leases end; the feeder stops and stop() does not wait.
      std::lock_guard lock(mu_);
      loop_ended_ = true;
      slot_cv_.notify_all();
    });
  }
  if (batch_results_) completer_ = std::thread([this] { run_completer(); });
  // Discoverable (App::workers) as soon as start() returns; stop() removes it before it returns.
  heartbeat(true);
  housekeeper_ = std::thread([this] { housekeep(); });
}

void Worker::heartbeat_now() {
  if (!stopping_.load(std::memory_order_acquire)) heartbeat(true);  // a stopped worker stays removed
}

// Starts a thread in a free slot. Under mu_, not stopping, live_ below the slots.
void Worker::grow_locked() {
  for (std::size_t i = 0; i < threads_.size(); ++i) {
    if (alive_[i]) continue;
    // A thread that ended in this slot takes no lock after it marked itself dead: joining it here is short.
    if (threads_[i].joinable()) threads_[i].join();
    threads_[i] = std::thread([this, i] {
      if (async_) {
        feed();
      } else {
        consume(i);
      }
    });
    alive_[i] = 1;
    ++live_;
    return;
  }
}

std::size_t Worker::concurrency() const {
  std::lock_guard lock(mu_);
  if (async_) return options_.concurrency;
  return started_ ? live_ : (options_.autoscale ? options_.autoscale->min : options_.concurrency);
}

void Worker::stop() {
  {
    std::lock_guard lock(mu_);  // the renewer checks stopping_ under mu_: it cannot miss the notify below
    stopping_.store(true, std::memory_order_release);
  }
  broker_->interrupt();
  cv_.notify_all();
  take_cv_.notify_all();
  slot_cv_.notify_all();
  std::lock_guard join_lock(join_mu_);
  for (auto& t : threads_) {
    if (t.joinable()) t.join();
  }
  // The prefetched messages that did not start go back to the broker, ready at once for another worker.
  std::deque<std::shared_ptr<Running>> waiting;
  {
    std::lock_guard lock(mu_);
    waiting.swap(waiting_);
    for (const auto& r : waiting) r->ending = true;
  }
  for (const auto& r : waiting) {
    try {
      broker_->release(r->delivery);
    } catch (const std::exception& e) {
      note_error("handing back " + r->delivery.tag + ": " + e.what());  // its lease ends it instead
    }
    unregister(r->delivery.tag);
  }
  if (async_) {
    // The tasks on the loop finish (their conclusions stored), then the loop ends.
    {
      std::unique_lock lock(mu_);
      slot_cv_.wait(lock, [&] { return in_flight_ == 0 || loop_ended_; });
    }
    if (async_->thread.joinable()) {
      async_->loop->call_soon_threadsafe([a = async_.get()] { a->stop.set(); });
      async_->thread.join();
    }
    async_->concluder->shutdown();
    async_->blocking->shutdown();
  }
  // The results of the tasks that ran are stored and their messages acknowledged.
  if (completer_.joinable()) {
    {
      std::lock_guard lock(done_mu_);
      completer_stop_ = true;
    }
    done_cv_.notify_all();
    completer_.join();
  }
  // Only now that no task can start or complete does the housekeeper end (it renewed their leases until here).
  {
    std::lock_guard lock(mu_);
    consumers_done_ = true;
  }
  cv_.notify_all();
  if (housekeeper_.joinable()) housekeeper_.join();
}

WorkerStats Worker::stats() const {
  std::lock_guard lock(mu_);
  return stats_;
}

void Worker::consume(std::size_t slot) {
  while (!stopping_.load(std::memory_order_acquire)) {
    std::optional<Steady::time_point> deadline;
    if (options_.autoscale) deadline = Steady::now() + options_.autoscale->idle;
    std::shared_ptr<Running> r = next(deadline);
    if (!r) {
      if (!options_.autoscale) continue;  // interrupted (stopping_ is set), or a broker error a second ago
      std::lock_guard lock(mu_);
      if (!stopping_.load(std::memory_order_acquire) && live_ > options_.autoscale->min) {
        alive_[slot] = 0;  // idle for `idle`: this thread ends (its slot is joined when reused, or by stop())
        --live_;
        return;
      }
      continue;
    }
    try {
      handle(r);
    } catch (const std::exception& e) {
      recover(r, e);
    }
    {
      std::lock_guard lock(mu_);
      --active_;
    }
  }
}

std::shared_ptr<Worker::Running> Worker::next(std::optional<Steady::time_point> deadline) {
  std::unique_lock lock(mu_);
  for (;;) {
    if (stopping_.load(std::memory_order_acquire)) return nullptr;
    if (!waiting_.empty()) {
      std::shared_ptr<Running> r = std::move(waiting_.front());
      waiting_.pop_front();
      ++active_;
      // Autoscale: every thread busy → one more waits for the next message (it ends again if none comes).
      if (options_.autoscale && active_ >= live_ && live_ < options_.autoscale->max) grow_locked();
      return r;
    }
    if (!fetching_ && running_.size() - completing_ < prefetch_) {
      const std::size_t room = prefetch_ - (running_.size() - completing_);
      fetching_ = true;
      lock.unlock();
      std::vector<Delivery> ds;
      std::string error;
      try {
        ds = broker_->reserve_many(options_.queues, options_.lease, room, deadline);
      } catch (const std::exception& e) {
        error = e.what();
      }
      lock.lock();
      fetching_ = false;
      const auto now = Steady::now();
      for (Delivery& d : ds) {
        // Registered at once, so that its lease is renewed from now on (waiting, decoding, a rate-limit wait,
        // a slow backend) and the housekeeper, which runs until the completions have ended, sees it.
        auto r = std::make_shared<Running>();
        r->delivery = std::move(d);
        r->host = &hostname_;
        r->started = now;
        r->renewed = now;  // the housekeeper renews it lease/3 from now (it wakes at least that often)
        ++stats_.received;
        if (r->delivery.delivery_count > 1) ++stats_.redelivered;
        running_.emplace(r->delivery.tag, r);
        waiting_.push_back(std::move(r));
      }
      if (takers_ > 0) take_cv_.notify_all();  // the others take the rest, or one of them fetches now
      if (!ds.empty()) continue;
      if (!error.empty()) {
        // The broker failed (a locked or broken database): counted, and tried again a second later.
        ++stats_.errors;
        stats_.last_error = "reserve: " + error;
        take_cv_.wait_for(lock, std::chrono::seconds(1), [&] { return stopping_.load(std::memory_order_acquire); });
      }
      return nullptr;  // the deadline passed, or interrupted
    }
    // Another thread is reserving, or the worker holds all it may: wait for either to change.
    ++takers_;
    bool timed_out = false;
    if (deadline) {
      timed_out = take_cv_.wait_until(lock, *deadline) == std::cv_status::timeout;
    } else {
      take_cv_.wait(lock);
    }
    --takers_;
    if (timed_out && waiting_.empty()) return nullptr;
  }
}

void Worker::unregister(const std::string& tag) {
  std::lock_guard lock(mu_);
  running_.erase(tag);
  if (takers_ > 0) take_cv_.notify_all();  // room under the prefetch limit
}

// The batch's messages are no longer held. Those the completer had count as completing until now: both
// change together, so the prefetch count (held minus completing) never sees one without the other.
void Worker::forget_all(const std::vector<Completion>& batch) {
  std::lock_guard lock(mu_);
  for (const Completion& c : batch) running_.erase(c.r->delivery.tag);
  if (batch_results_) completing_ -= batch.size();
  if (takers_ > 0) take_cv_.notify_all();  // room under the prefetch limit
}

void Worker::complete(Completion c) {
  if (!batch_results_) {
    std::vector<Completion> one;
    one.push_back(std::move(c));
    finish(one);
    return;
  }
  {
    // Counted before the completer can see it (its forget_all subtracts it again).
    std::lock_guard lock(mu_);
    ++completing_;  // no longer counted against the prefetch: the thread takes its next task
    if (takers_ > 0) take_cv_.notify_all();
  }
  try {
    // Back-pressure: a thread waits while kMaxPendingResults wait for the completer (a slow disk).
    std::unique_lock lock(done_mu_);
    room_cv_.wait(lock, [&] { return completions_.size() < kMaxPendingResults; });
    completions_.push_back(std::move(c));
  } catch (...) {
    std::lock_guard lock(mu_);
    --completing_;  // not handed over: the caller's error path releases and unregisters it
    throw;
  }
  done_cv_.notify_one();
}

void Worker::run_completer() {
  std::unique_lock lock(done_mu_);
  for (;;) {
    done_cv_.wait(lock, [&] { return !completions_.empty() || completer_stop_; });
    if (completions_.empty()) return;  // stopping, and every completion is done
    std::vector<Completion> batch;
    batch.swap(completions_);
    lock.unlock();
    room_cv_.notify_all();
    finish(batch);
    lock.lock();
  }
}

// Stores the batch's results in one go, then acknowledges their messages, then sends their canvas. A batch
// that cannot be stored goes back to the broker (each message runs again a second later).
void Worker::finish(std::vector<Completion>& batch) {
  std::vector<ResultMeta> metas;
  for (Completion& c : batch) {
    if (c.meta) metas.push_back(*c.meta);
  }
  std::string error;
  try {
    try {
      if (!metas.empty()) app_.backend().store_many(metas);
    } catch (const Json::exception&) {
      // A result JSON cannot hold (a string that is not UTF-8): that task fails instead; the others stand.
      for (ResultMeta& m : metas) {
        try {
          (void)m.result.dump();
        } catch (const Json::exception& e) {
          m.state = State::failure;
          m.result = exc("EncodeError", std::string("weft: the task's result cannot be stored: ") + e.what());
          for (Completion& c : batch) {
            if (c.meta && c.meta->task_id == m.task_id && c.after) {
              c.state = State::failure;
              c.value = m.result;
            }
          }
        }
      }
      app_.backend().store_many(metas);
    }
  } catch (const std::exception& e) {
    error = e.what();
  }
  if (!error.empty()) {
    note_error("storing " + std::to_string(metas.size()) + " results: " + error);
    for (const Completion& c : batch) {
      if (c.ack) {
        try {
          broker_->release(c.r->delivery, std::chrono::system_clock::now() + std::chrono::seconds(1));
        } catch (const std::exception& again) {
          note_error("release after an error: " + std::string(again.what()));  // its lease ends it instead
        }
      }
    }
    forget_all(batch);
    return;
  }
  // The canvas before the acknowledgements: a worker that dies in between runs those tasks again (their
  // results stand, and a chain's next step keeps its id), where the other order would lose the next steps.
  for (const Completion& c : batch) {
    if (c.after) after_task(*c.msg, c.state, c.value);
  }
  std::vector<Delivery> acks;
  {
    std::lock_guard lock(mu_);
    for (const Completion& c : batch) {
      if (!c.ack) continue;
      acks.push_back(c.r->delivery);
      c.r->ending = true;  // a renewal that finds it acknowledged is no lost lease
    }
  }
  try {
    if (!acks.empty()) broker_->ack_many(acks);
  } catch (const std::exception& e) {
    // The results stand (final); the messages run again when their leases end, and find them stored.
    note_error("acknowledging " + std::to_string(acks.size()) + " messages: " + e.what());
  }
  forget_all(batch);
}

void Worker::note_error(const std::string& what) {
  std::lock_guard lock(mu_);
  ++stats_.errors;
  stats_.last_error = what;
}

// The housekeeper sleeps until the earliest of: the next lease renewal (while tasks run), the next revocation
// check (while tasks run), the earliest hard time limit, the next heartbeat; task starts and stop() wake it.
void Worker::housekeep() {
  using Clock = Steady;
  auto next_control = Clock::now() + options_.control_interval;
  auto next_beat = Clock::now() + options_.heartbeat;  // start() wrote the first
  // Expired results: every tenth of result_expires, from 1 s to 1 h (start() made the first sweep).
  const auto keep = app_.options().result_expires;
  const Clock::duration expire_every =
      keep ? std::clamp<Clock::duration>(*keep / 10, std::chrono::seconds(1), std::chrono::hours(1))
           : Clock::duration::max();
  auto next_expire = keep ? Clock::now() + expire_every : Clock::time_point::max();
  std::unique_lock lock(mu_);
  for (;;) {
    const bool stopping = stopping_.load(std::memory_order_acquire);
    if (consumers_done_) break;
    auto now = Clock::now();
    if (now >= next_beat && !stopping) {
      lock.unlock();
      heartbeat(true);
      lock.lock();
      next_beat = Clock::now() + options_.heartbeat;
      continue;
    }
    if (now >= next_expire && !stopping) {
      lock.unlock();
      expire_results();
      lock.lock();
      next_expire = Clock::now() + expire_every;
      continue;
    }
    // Leases are renewed when a third of the lease has passed since they were taken or last renewed.
    const auto period = std::max<Clock::duration>(options_.lease / 3, std::chrono::milliseconds(1));
    std::vector<std::shared_ptr<Running>> due;
    std::optional<Clock::time_point> next_renew;
    std::vector<std::pair<std::shared_ptr<Running>, std::string>> started;  // identified: their ids
    for (const auto& [tag, r] : running_) {
      // Revocation and hard limits watch every started task, acknowledged early or not.
      if (r->identified && !r->settled) started.emplace_back(r, r->id_);
      if (r->acked || r->ending || (r->settled && !r->completing)) continue;  // no lease to renew
      if (r->renewed + period <= now) {
        due.push_back(r);
      } else if (!next_renew || r->renewed + period < *next_renew) {
        next_renew = r->renewed + period;
      }
    }
    if (!due.empty()) {
      lock.unlock();
      std::vector<std::shared_ptr<Running>> refused;
      for (const auto& r : due) {
        try {
          if (!broker_->renew(r->delivery, options_.lease)) refused.push_back(r);
        } catch (const std::exception& e) {
          note_error(std::string("lease renewal: ") + e.what());  // tried again at the next renewal
        }
      }
      lock.lock();
      for (const auto& r : refused) {
        if (!r->ending && !r->acked) ++stats_.lease_lost;  // not ended by this worker meanwhile: really lost
      }
      const auto at = Clock::now();
      for (const auto& r : due) r->renewed = at;  // a lost or failed one is tried again a period later
      continue;
    }
    if (!started.empty() && now >= next_control) {
      lock.unlock();
      for (const auto& [r, id] : started) {
        std::optional<std::string> v;
        try {
          v = app_.backend().read("revoked:" + id);
        } catch (const std::exception& e) {
          note_error(std::string("revocation check: ") + e.what());
          break;
        }
        if (!v) continue;
        if (*v == "terminate") {
          // abandon() settles it before it reports cancelled(): a task that returns as soon as it sees that
          // cannot have its own result stored first.
          abandon(r, State::revoked, exc("TaskRevokedError", "revoked (terminate) while running"));
        } else {
          r->cancel.store(true, std::memory_order_release);
        }
      }
      lock.lock();
      next_control = Clock::now() + options_.control_interval;
      continue;
    }
    // Hard time limits.
    std::shared_ptr<Running> late;
    std::optional<Clock::time_point> earliest;
    for (const auto& [r, id] : started) {
      if (!r->hard_deadline) continue;
      if (*r->hard_deadline <= now) {
        late = r;
        break;
      }
      if (!earliest || *r->hard_deadline < *earliest) earliest = r->hard_deadline;
    }
    if (late) {
      const std::string name = late->task;
      lock.unlock();
      const bool ended =
          abandon(late, State::failure, exc("TimeLimitExceeded", "weft: task " + name + " exceeded its hard time limit"));
      lock.lock();
      if (ended) ++stats_.time_limited;
      continue;
    }
    // (+ period: leases taken meanwhile)
    auto wake = stopping ? Clock::time_point::max() : std::min({next_beat, now + period, next_expire});
    if (next_renew) wake = std::min(wake, *next_renew);
    if (!started.empty()) wake = std::min(wake, next_control);
    if (earliest) wake = std::min(wake, *earliest);
    hk_wake_ = wake;  // a task that starts and needs the housekeeper sooner wakes it (handle)
    if (wake == Clock::time_point::max()) {
      cv_.wait(lock);
    } else {
      cv_.wait_until(lock, wake);
    }
  }
  lock.unlock();
  heartbeat(false);
}

bool Worker::abandon(const std::shared_ptr<Running>& r, State state, const Json& result) {
  bool acked = false;
  std::string cancel_error;
  std::shared_ptr<process::KillSwitch> kill_switch;
  {
    std::lock_guard lock(mu_);
    if (r->settled) return false;
    r->settled = true;
    acked = r->acked;
    kill_switch = r->kill_switch;
    r->cancel.store(true, std::memory_order_release);  // before the post: a coroutine not started yet sees it
    if (async_) {
      // Its coroutine is cancelled at its current await. Posted under mu_, with settled: its conclusion, and
      // so the end of the loop (no task in flight), comes after this call.
      try {
        async_->loop->call_soon_threadsafe([r] {
          if (r->group != nullptr) r->group->cancel();
        });
      } catch (const std::exception& e) {
        cancel_error = e.what();
      }
    }
  }
  if (!cancel_error.empty()) note_error("cancelling task " + r->id_ + ": " + cancel_error);
  try {
    ResultMeta meta;
    meta.task_id = r->id_;
    meta.state = state;
    meta.result = result;
    meta.date_done = std::chrono::system_clock::now();
    meta.name = r->task;
    meta.retries = r->retries_;
    store(meta);
    if (!acked) broker_->ack(r->delivery);
    std::lock_guard lock(mu_);
    r->acked = true;  // no more renewals while its thread runs on
  } catch (const std::exception& e) {
    note_error("ending task " + r->id_ + " early: " + e.what());
  }
  if (kill_switch) kill_switch->kill();  // Pool::processes: its process is killed (and replaced)
  {
    std::lock_guard lock(mu_);
    if (state == State::failure) ++stats_.failed;
    if (state == State::revoked) ++stats_.revoked;
  }
  after_task(*r->msg, state, result);
  return true;
}

void Worker::expire_results() {
  const std::optional<std::chrono::milliseconds> keep = app_.options().result_expires;
  if (!keep) return;
  constexpr std::size_t kBatch = 10'000;  // one transaction each, so that other writers get their turns
  // A bound per sweep (the next sweep goes on): the housekeeper's renewals, every lease/3, must not wait long.
  const auto until = Steady::now() + std::min<Steady::duration>(options_.lease / 6, std::chrono::seconds(1));
  const SysTime before = std::chrono::system_clock::now() - *keep;
  try {
    while (!stopping_.load(std::memory_order_acquire)) {
      if (app_.backend().expire_results(before, kBatch) < kBatch || Steady::now() >= until) break;
    }
  } catch (const std::exception& e) {
    note_error(std::string("expiring results: ") + e.what());  // tried again at the next sweep
  }
}

void Worker::heartbeat(bool online) {
  const std::string key = "worker:" + hostname_;
  try {
    if (!online) {
      app_.backend().erase(key);
      return;
    }
    Json active = Json::array();
    WorkerStats st;
    std::size_t concurrency = 0;
    std::size_t reserved = 0;
    {
      std::lock_guard lock(mu_);
      st = stats_;
      concurrency = live_;
      reserved = waiting_.size();
      const auto now = Steady::now();
      for (const auto& [tag, r] : running_) {
        if (!r->identified || r->settled) continue;  // prefetched and not started, or finished
        active.push_back({{"id", r->id_},
                          {"name", r->task},
                          {"retries", r->retries_},
                          {"runtime", std::chrono::duration<double>(std::max(now - r->started, Steady::duration::zero())).count()},
                          {"delivery_count", r->delivery.delivery_count}});
      }
    }
    double load[3] = {0, 0, 0};
    if (::getloadavg(load, 3) != 3) load[0] = load[1] = load[2] = -1;
    Json info = {{"hostname", hostname_},
                 {"pid", ::getpid()},
                 {"cpus", cpus()},
                 {"pool", to_string(options_.pool)},
                 {"concurrency", async_ ? options_.concurrency : concurrency},
                 {"autoscale", options_.autoscale ? Json::array({options_.autoscale->max, options_.autoscale->min})
                                                  : Json(nullptr)},
                 {"queues", options_.queues},
                 {"active", std::move(active)},
                 {"reserved", reserved},
                 {"prefetch", prefetch_},
                 {"stats",
                  {{"received", st.received},
                   {"succeeded", st.succeeded},
                   {"failed", st.failed},
                   {"retried", st.retried},
                   {"revoked", st.revoked},
                   {"poison", st.poison},
                   {"redelivered", st.redelivered},
                   {"lease_lost", st.lease_lost},
                   {"time_limited", st.time_limited},
                   {"errors", st.errors}}},
                 {"loadavg", {load[0], load[1], load[2]}},
                 {"registered", app_.registered()},
                 {"timestamp", format_time(std::chrono::system_clock::now())},
                 {"freq", std::chrono::duration<double>(options_.heartbeat).count()}};
    app_.backend().put(key, info.dump(), options_.heartbeat * 3);
  } catch (const std::exception& e) {
    note_error(std::string("heartbeat: ") + e.what());
  }
}

void Worker::after_task(const TaskMessage& m, State state, const Json& result) {
  try {
    detail::after_task(app_, m, state, result);
  } catch (const std::exception& e) {
    note_error("after task " + m.id + " (" + m.task + "): " + e.what());
  }
}

bool Worker::store(const ResultMeta& m) { return app_.backend().store(m); }

void Worker::count(std::uint64_t WorkerStats::*field) {
  std::lock_guard lock(mu_);
  ++(stats_.*field);
}

void Worker::end(const std::shared_ptr<Running>& r, const std::string& id, State state, const Json& result,
                 const std::string& name, int retries, bool ignore, const std::shared_ptr<const TaskMessage>* after) {
  Completion c;
  c.r = r;
  if (!ignore && !id.empty()) {
    ResultMeta m;
    m.task_id = id;
    m.state = state;
    m.result = result;
    m.date_done = std::chrono::system_clock::now();
    m.name = name;
    m.retries = retries;
    c.meta = std::move(m);
  }
  {
    std::lock_guard lock(mu_);
    c.ack = !r->acked;
    r->completing = true;
  }
  if (after != nullptr) {
    c.after = true;
    c.msg = *after;
    c.state = state;
    c.value = result;
  }
  complete(std::move(c));
}

void Worker::recover(const std::shared_ptr<Running>& r, const std::exception& e) {
  // Storing a result, acknowledging or publishing a retry failed (the broker or backend is in trouble): the
  // message goes back to the broker to run again in a second (unless it was acknowledged already).
  note_error("task delivery " + r->delivery.tag + ": " + e.what());
  try {
    broker_->release(r->delivery, std::chrono::system_clock::now() + std::chrono::seconds(1));
  } catch (const std::exception& again) {
    note_error("release after an error: " + std::string(again.what()));  // its lease ends it instead
  }
  unregister(r->delivery.tag);
}

void Worker::handle(const std::shared_ptr<Running>& r) {
  const std::shared_ptr<const Prepared> p = prepare(r);
  if (!p) return;
  conclude(r, *p, processes_ ? run_in_process(*p) : run_here(r, *p));
}

std::shared_ptr<const Worker::Prepared> Worker::prepare(const std::shared_ptr<Running>& r, bool defer_rate_limit) {
  const Delivery& d = r->delivery;
  std::shared_ptr<const TaskMessage> mp = d.message;  // memory://: as sent, nothing to decode
  try {
    if (!mp) mp = std::make_shared<const TaskMessage>(decode_envelope(d.envelope));
  } catch (const ProtocolError& e) {
    // Poison: record it under its id if one can be read, then drop it.
    std::string id;
    try {
      const Json env = Json::parse(d.envelope);
      id = env.at("headers").at("id").get<std::string>();
    } catch (const std::exception&) {
    }
    count(&WorkerStats::poison);
    count(&WorkerStats::failed);
    end(r, id, State::failure, exc("ProtocolError", e.what()), "", 0, false, nullptr);
    return nullptr;
  }
  const TaskMessage& m = *mp;
  auto revoke = [&](const std::string& why) {
    const Json e = exc("TaskRevokedError", why);
    count(&WorkerStats::revoked);
    end(r, m.id, State::revoked, e, m.task, m.retries, false, &mp);
    return nullptr;
  };
  if (m.expires && *m.expires <= std::chrono::system_clock::now()) return revoke("expired");
  const detail::TaskEntry* entry = app_.find(m.task);
  if (entry == nullptr) {
    const Json e = exc("NotRegistered", "weft: no task '" + m.task + "' is registered on " + hostname_);
    count(&WorkerStats::poison);
    count(&WorkerStats::failed);
    end(r, m.id, State::failure, e, m.task, m.retries, false, &mp);
    return nullptr;
  }
  const TaskOptions& o = entry->options;
  std::optional<Steady::time_point> start_at;
  if (o.rate_limit && *o.rate_limit > 0) {
    // At most rate_limit starts per second on this worker: each start takes the next slot.
    Steady::time_point slot;
    {
      std::lock_guard lock(mu_);
      auto& next = next_slot_[m.task];
      slot = std::max(next, Steady::now());
      next = slot + std::chrono::duration_cast<Steady::duration>(std::chrono::duration<double>(1.0 / *o.rate_limit));
    }
    if (defer_rate_limit) {
      start_at = slot;  // the task's coroutine sleeps until then, instead of this thread
    } else {
      std::unique_lock lock(mu_);
      cv_.wait_until(lock, slot, [&] { return Steady::now() >= slot; });
    }
  }
  // Revoked (checked after a rate-limit wait, which may be long): not run.
  if (app_.backend().read("revoked:" + m.id)) return revoke("revoked");
  auto p = std::make_shared<Prepared>();
  p->mp = mp;
  p->entry = entry;
  p->ignore = o.ignore_result || m.ignore_result;
  // The message's limits (its sender's task options), else this worker's options for the task.
  p->hard = m.timelimit[0] ? std::optional(seconds_ms(*m.timelimit[0])) : o.time_limit;
  p->soft = m.timelimit[1] ? std::optional(seconds_ms(*m.timelimit[1])) : o.soft_time_limit;
  p->start_at = start_at;
  bool wake_housekeeper = false;
  {
    std::lock_guard lock(mu_);
    r->msg = mp;
    r->id_ = m.id;
    r->task = m.task;
    r->retries_ = m.retries;
    r->started = start_at.value_or(Steady::now());  // a deferred rate-limit wait does not count against its limits
    if (p->hard && !processes_) r->hard_deadline = r->started + *p->hard;  // a process pool kills at the limit itself
    if (p->soft) r->soft_deadline = r->started + *p->soft;
    if (processes_) {
      p->kill_switch = std::make_shared<process::KillSwitch>();
      r->kill_switch = p->kill_switch;
    }
    r->identified = true;
    // The housekeeper looks for its revocation within control_interval and ends it at its hard limit: woken
    // only when it would sleep past either.
    auto need = r->started + options_.control_interval;
    if (r->hard_deadline) need = std::min(need, *r->hard_deadline);
    wake_housekeeper = need < hk_wake_;
  }
  if (wake_housekeeper) cv_.notify_all();
  if (!o.acks_late) {
    broker_->ack(d);
    std::lock_guard lock(mu_);
    r->acked = true;
  }
  if (options_.track_started && !p->ignore) {
    ResultMeta started;
    started.task_id = m.id;
    started.state = State::started;
    started.result = Json{{"pid", ::getpid()}, {"hostname", hostname_}};
    started.name = m.task;
    started.retries = m.retries;
    store(started);
  }
  return p;
}

void Worker::classify(std::exception_ptr error, const TaskOptions& o, int retries, Ran& x) {
  using Outcome = Ran::Outcome;
  try {
    std::rethrow_exception(std::move(error));
  } catch (const ArgumentError& e) {
    x.outcome = Outcome::bad_arguments;
    x.value = exc("TypeError", e.what());
  } catch (const Retry& e) {
    x.outcome = Outcome::retry;
    x.retry_in = e.delay().value_or(backoff(o, retries));
    x.retry_reason = e.what();
  } catch (const std::exception& e) {
    if (o.autoretry_for && o.autoretry_for(e)) {
      x.outcome = Outcome::retry;
      x.retry_in = backoff(o, retries);
      x.retry_reason = type_name(e) + ": " + e.what();
    } else {
      x.outcome = Outcome::failure;
      x.value = exc(type_name(e), e.what());
    }
  } catch (...) {
    x.outcome = Outcome::failure;
    x.value = exc("unknown", "a task threw something that is not a std::exception");
  }
}

Worker::Ran Worker::run_here(const std::shared_ptr<Running>& r, const Prepared& p) {
  Ran x;
  t_current = r.get();
  try {
    x.value = p.entry->invoke(p.mp->args, p.mp->kwargs);
  } catch (...) {
    classify(std::current_exception(), p.entry->options, p.mp->retries, x);
  }
  t_current = nullptr;
  return x;
}

Worker::Ran Worker::run_in_process(const Prepared& p) {
  // The task runs in a worker process; its answer comes back as JSON text (run_in_child). The pool kills
  // the process at the hard limit (weft::Timeout here) and reports one that died (WorkerLost).
  using Outcome = Ran::Outcome;
  const TaskMessage& m = *p.mp;
  const TaskOptions& o = p.entry->options;
  Ran x;
  process::SubmitOptions so;
  if (p.hard) so.timeout = *p.hard;
  so.kill_switch = p.kill_switch;  // a terminate kills its process
  try {
    const std::string text =
        processes_
            ->submit(so, &run_in_child, m.task, m.args.dump(), m.kwargs.dump(), m.id, m.retries, hostname_,
                     static_cast<std::int64_t>(p.soft ? p.soft->count() : -1),
                     static_cast<std::int64_t>(p.hard ? p.hard->count() : -1))
            .get();
    const Json j = Json::parse(text);
    if (j.contains("ok")) {
      x.value = j.at("ok");
    } else if (j.contains("retry")) {
      x.outcome = Outcome::retry;
      const Json& delay = j.at("delay_ms");
      x.retry_in = delay.is_null() ? backoff(o, m.retries) : std::chrono::milliseconds(delay.get<std::int64_t>());
      x.retry_reason = j.at("retry").get<std::string>();
    } else {
      x.value = j.at("error");
      const std::string kind = j.at("kind").get<std::string>();
      if (kind == "bad_arguments") {
        x.outcome = Outcome::bad_arguments;
      } else if (kind == "autoretry") {
        x.outcome = Outcome::retry;
        x.retry_in = backoff(o, m.retries);
        x.retry_reason =
            x.value.value("exc_type", std::string("error")) + ": " + x.value.at("exc_message").at(0).get<std::string>();
      } else {
        x.outcome = Outcome::failure;
      }
    }
  } catch (const weft::Timeout&) {
    x.outcome = Outcome::failure;
    x.value = exc("TimeLimitExceeded", "weft: task " + m.task + " exceeded its hard time limit; its process was killed");
    count(&WorkerStats::time_limited);
  } catch (const process::WorkerLost& e) {
    count(&WorkerStats::processes_lost);
    if (o.autoretry_for && o.autoretry_for(e)) {
      x.outcome = Outcome::retry;
      x.retry_in = backoff(o, m.retries);
      x.retry_reason = std::string("WorkerLostError: ") + e.what();
    } else {
      x.outcome = Outcome::failure;
      x.value = exc("WorkerLostError", e.what());
    }
  } catch (const std::exception& e) {  // the result could not come back (too large, not JSON), the pool broke
    x.outcome = Outcome::failure;
    x.value = exc(type_name(e), e.what());
  }
  return x;
}

void Worker::conclude(const std::shared_ptr<Running>& r, const Prepared& p, Ran x) {
  using Outcome = Ran::Outcome;
  const TaskMessage& m = *p.mp;
  const TaskOptions& o = p.entry->options;
  {
    std::lock_guard lock(mu_);
    if (r->settled) {
      x.outcome = Outcome::discarded;  // the housekeeper ended it (time limit, terminate)
    } else {
      r->settled = true;
      // Returned after its hard limit (it saw cancelled(), say) before the housekeeper got to it: the limit
      // holds all the same, whichever thread noticed first.
      if (r->hard_deadline && Steady::now() >= *r->hard_deadline) x.outcome = Outcome::late;
    }
  }
  if (x.outcome == Outcome::discarded) {
    unregister(r->delivery.tag);
    return;
  }
  if (x.outcome == Outcome::late) {
    x.outcome = Outcome::failure;
    x.value = exc("TimeLimitExceeded", "weft: task " + m.task + " exceeded its hard time limit");
    count(&WorkerStats::time_limited);
  }
  if (x.outcome == Outcome::retry && o.max_retries >= 0 && m.retries >= o.max_retries) {
    x.outcome = Outcome::failure;
    x.value = exc("MaxRetriesExceededError", "weft: task " + m.task + " failed after " + std::to_string(m.retries) +
                                                 " retries: " + x.retry_reason);
  }
  switch (x.outcome) {
    case Outcome::success:
      count(&WorkerStats::succeeded);  // counted before the result is visible, so a caller sees both
      end(r, m.id, State::success, x.value, m.task, m.retries, p.ignore, &p.mp);
      break;
    case Outcome::bad_arguments:
      count(&WorkerStats::poison);
      count(&WorkerStats::failed);
      end(r, m.id, State::failure, x.value, m.task, m.retries, false, &p.mp);
      break;
    case Outcome::failure:
      count(&WorkerStats::failed);
      end(r, m.id, State::failure, x.value, m.task, m.retries, p.ignore, &p.mp);
      break;
    case Outcome::revoked:
      count(&WorkerStats::revoked);
      end(r, m.id, State::revoked, exc("TaskRevokedError", "revoked"), m.task, m.retries, false, &p.mp);
      break;
    case Outcome::discarded:
    case Outcome::late:
      break;
    case Outcome::retry: {
      TaskMessage again = m;
      again.retries = m.retries + 1;
      again.eta = std::chrono::system_clock::now() + *x.retry_in;
      // Publish the retry before acknowledging this delivery: a crash in between runs the task once more
      // rather than never.
      const auto retry = std::make_shared<const TaskMessage>(std::move(again));
      broker_->publish_messages(std::span(&retry, 1));
      count(&WorkerStats::retried);
      end(r, m.id, State::retry, exc("Retry", x.retry_reason), m.task, retry->retries, p.ignore, nullptr);
      break;
    }
  }
}

// ---- Pool::async_ ------------------------------------------------------------------------------------------

void Worker::feed() {
  for (;;) {
    {
      std::unique_lock lock(mu_);
      slot_cv_.wait(lock, [&] {
        return in_flight_ < options_.concurrency || stopping_.load(std::memory_order_acquire) || loop_ended_;
      });
      if (stopping_.load(std::memory_order_acquire) || loop_ended_) return;
      ++in_flight_;
    }
    bool dispatched = false;
    std::shared_ptr<Running> r = next(std::nullopt);  // null: interrupted, or a broker error a second ago
    if (r) {
      try {
        if (std::shared_ptr<const Prepared> p = prepare(r, true)) {
          async_->loop->call_soon_threadsafe([this, r, p]() mutable {
            async_->loop->spawn(run_async(std::move(r), std::move(p)));
          });
          dispatched = true;
        }
      } catch (const std::exception& e) {
        recover(r, e);
      }
    }
    if (!dispatched) release_slot(r != nullptr);
  }
}

io::Task<void> Worker::run_async(std::shared_ptr<Running> r, std::shared_ptr<const Prepared> p) {
  Ran x;
  // Revoked (terminate or not) or past its hard limit before it started: it does not run. abandon() sets
  // `cancel` before it asks the loop to cancel the group, so a task whose group did not exist yet sees it here.
  auto stopped = [&] { return r->cancel.load(std::memory_order_acquire); };
  // A group of its own, so that a terminate or the hard limit cancels this task only (abandon()). A rate
  // limit's wait happens inside it, so that those cancel the wait too.
  auto body = [&](io::TaskGroup& group) -> io::Task<void> {
    r->group = &group;
    try {
      if (!stopped() && p->start_at) co_await io::sleep_until(*p->start_at);  // its rate limit's slot
      if (stopped()) {
        x.outcome = Ran::Outcome::revoked;
      } else if (p->entry->invoke_async) {
        x.value = co_await p->entry->invoke_async(p->mp->args, p->mp->kwargs);
      } else {
        // A plain task blocks: it runs on the blocking pool (as in Pool::threads), never on the loop. A
        // cancel stops only the wait: its thread runs the function to the end (its result is discarded).
        auto call = [this, r, p] { return run_here(r, *p); };
        Future<Ran> ran = async_->blocking->submit(call);
        x = co_await std::move(ran);
      }
    } catch (...) {
      classify(std::current_exception(), p->entry->options, p->mp->retries, x);
    }
    r->group = nullptr;
  };
  try {
    co_await io::task_group(body);
  } catch (...) {
    classify(std::current_exception(), p->entry->options, p->mp->retries, x);  // the loop is ending
  }
  auto ran = std::make_shared<Ran>(std::move(x));
  auto conclusion = [this, r, p, ran] { conclude_async(r, *p, std::move(*ran)); };
  try {
    async_->concluder->post(conclusion);
  } catch (...) {
    conclusion();  // the concluding thread refused it: here, then (blocking the loop for this once)
  }
}

void Worker::conclude_async(const std::shared_ptr<Running>& r, const Prepared& p, Ran x) {
  try {
    conclude(r, p, std::move(x));
  } catch (const std::exception& e) {
    recover(r, e);
  } catch (...) {
    recover(r, std::runtime_error("a conclusion threw something that is not a std::exception"));
  }
  release_slot(true);
}

void Worker::release_slot(bool taken) {
  std::lock_guard lock(mu_);
  if (taken) --active_;  // next() counted the message it returned
  --in_flight_;
  slot_cv_.notify_all();  // the feeder waits for a slot; stop() for none in flight
}

}  // namespace weft::tasks
