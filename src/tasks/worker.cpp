// The thread-pool worker; its protocol is at the top of weft/tasks/worker.hpp.
#include "weft/tasks/worker.hpp"

#include <cxxabi.h>
#include <sched.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <random>
#include <stdexcept>
#include <typeinfo>

namespace weft::tasks {
namespace {

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

}  // namespace

Worker::Worker(App& app, WorkerOptions options) : app_(app), options_(std::move(options)) {
  if (options_.queues.empty()) throw std::invalid_argument("weft: a worker needs at least one queue");
  if (options_.lease.count() <= 0) throw std::invalid_argument("weft: a worker's lease must be above 0");
  if (options_.concurrency == 0) options_.concurrency = cpus();
  hostname_ = options_.hostname.empty() ? default_hostname() : options_.hostname;
  broker_ = connect_broker(app_.options().broker);
}

Worker::~Worker() { stop(); }

void Worker::start() {
  std::lock_guard lock(mu_);
  if (started_) throw std::logic_error("weft: Worker::start called twice");
  started_ = true;
  for (std::size_t i = 0; i < options_.concurrency; ++i) threads_.emplace_back([this] { consume(); });
  renewer_ = std::thread([this] { renew_leases(); });
}

void Worker::stop() {
  {
    std::lock_guard lock(mu_);  // the renewer checks stopping_ under mu_: it cannot miss the notify below
    stopping_.store(true, std::memory_order_release);
  }
  broker_->interrupt();
  cv_.notify_all();
  std::lock_guard join_lock(join_mu_);
  for (auto& t : threads_) {
    if (t.joinable()) t.join();
  }
  if (renewer_.joinable()) renewer_.join();
}

WorkerStats Worker::stats() const {
  std::lock_guard lock(mu_);
  return stats_;
}

void Worker::consume() {
  while (!stopping_.load(std::memory_order_acquire)) {
    std::optional<Delivery> d = broker_->reserve(options_.queues, options_.lease, std::nullopt);
    if (!d) continue;  // interrupted: stopping_ is set
    {
      std::lock_guard lock(mu_);
      ++stats_.received;
      if (d->delivery_count > 1) ++stats_.redelivered;
      running_.emplace(d->tag, *d);
    }
    handle(*d);
    std::lock_guard lock(mu_);
    running_.erase(d->tag);
    // The renewer, once stopping, ends when nothing runs: tell it (it may be asleep for lease/3).
    if (running_.empty() && stopping_.load(std::memory_order_acquire)) cv_.notify_all();
  }
}

void Worker::renew_leases() {
  std::unique_lock lock(mu_);
  while (!stopping_.load(std::memory_order_acquire) || !running_.empty()) {
    cv_.wait_for(lock, options_.lease / 3);
    std::vector<Delivery> now;
    for (const auto& [tag, d] : running_) now.push_back(d);
    lock.unlock();
    std::uint64_t lost = 0;
    for (const auto& d : now) lost += broker_->renew(d, options_.lease) ? 0 : 1;
    lock.lock();
    stats_.lease_lost += lost;
    if (stopping_.load(std::memory_order_acquire) && running_.empty()) break;
  }
}

bool Worker::store(const ResultMeta& m) { return app_.backend().store(m); }

void Worker::handle(const Delivery& d) {
  auto count = [this](std::uint64_t WorkerStats::*field) {
    std::lock_guard lock(mu_);
    ++(stats_.*field);
  };
  auto finish = [&](const std::string& id, State state, Json result, const std::string& name, int retries,
                    bool ignore) {
    if (!ignore && !id.empty()) {
      ResultMeta m;
      m.task_id = id;
      m.state = state;
      m.result = std::move(result);
      m.date_done = std::chrono::system_clock::now();
      m.name = name;
      m.retries = retries;
      store(m);
    }
  };
  TaskMessage m;
  try {
    m = decode_envelope(d.envelope);
  } catch (const ProtocolError& e) {
    // Poison: record it under its id if one can be read, then drop it.
    std::string id;
    try {
      const Json env = Json::parse(d.envelope);
      id = env.at("headers").at("id").get<std::string>();
    } catch (const std::exception&) {
    }
    finish(id, State::failure, exc("ProtocolError", e.what()), "", 0, false);
    count(&WorkerStats::poison);
    count(&WorkerStats::failed);
    broker_->ack(d);
    return;
  }
  if (m.expires && *m.expires <= std::chrono::system_clock::now()) {
    finish(m.id, State::revoked, exc("TaskRevokedError", "expired"), m.task, m.retries, false);
    count(&WorkerStats::revoked);
    broker_->ack(d);
    return;
  }
  const detail::TaskEntry* entry = app_.find(m.task);
  if (entry == nullptr) {
    finish(m.id, State::failure, exc("NotRegistered", "weft: no task '" + m.task + "' is registered on " + hostname_),
           m.task, m.retries, false);
    count(&WorkerStats::poison);
    count(&WorkerStats::failed);
    broker_->ack(d);
    return;
  }
  const TaskOptions& o = entry->options;
  const bool ignore = o.ignore_result || m.ignore_result;
  if (o.rate_limit && *o.rate_limit > 0) {
    // At most rate_limit starts per second on this worker: each start takes the next slot.
    Steady::time_point slot;
    {
      std::lock_guard lock(mu_);
      auto& next = next_slot_[m.task];
      slot = std::max(next, Steady::now());
      next = slot + std::chrono::duration_cast<Steady::duration>(std::chrono::duration<double>(1.0 / *o.rate_limit));
    }
    std::unique_lock lock(mu_);
    cv_.wait_until(lock, slot, [&] { return Steady::now() >= slot; });
  }
  if (!o.acks_late) broker_->ack(d);
  if (options_.track_started && !ignore) {
    finish(m.id, State::started, Json{{"pid", ::getpid()}, {"hostname", hostname_}}, m.task, m.retries, false);
  }
  std::optional<std::chrono::milliseconds> retry_in;
  std::string retry_reason;
  try {
    Json result = entry->invoke(m.args, m.kwargs);
    finish(m.id, State::success, std::move(result), m.task, m.retries, ignore);
    count(&WorkerStats::succeeded);
  } catch (const ArgumentError& e) {
    finish(m.id, State::failure, exc("TypeError", e.what()), m.task, m.retries, false);
    count(&WorkerStats::poison);
    count(&WorkerStats::failed);
  } catch (const Retry& e) {
    retry_in = e.delay().value_or(backoff(o, m.retries));
    retry_reason = e.what();
  } catch (const std::exception& e) {
    if (o.autoretry_for && o.autoretry_for(e)) {
      retry_in = backoff(o, m.retries);
      retry_reason = type_name(e) + ": " + e.what();
    } else {
      finish(m.id, State::failure, exc(type_name(e), e.what()), m.task, m.retries, ignore);
      count(&WorkerStats::failed);
    }
  } catch (...) {
    finish(m.id, State::failure, exc("unknown", "a task threw something that is not a std::exception"), m.task,
           m.retries, ignore);
    count(&WorkerStats::failed);
  }
  if (retry_in) {
    if (o.max_retries >= 0 && m.retries >= o.max_retries) {
      finish(m.id, State::failure,
             exc("MaxRetriesExceededError", "weft: task " + m.task + " failed after " + std::to_string(m.retries) +
                                                " retries: " + retry_reason),
             m.task, m.retries, ignore);
      count(&WorkerStats::failed);
    } else {
      TaskMessage again = m;
      again.retries = m.retries + 1;
      again.eta = std::chrono::system_clock::now() + *retry_in;
      // Publish the retry before acknowledging this delivery: a crash in between runs the task once more
      // rather than never.
      broker_->publish(again.queue, encode_envelope(again), again.priority, again.eta);
      finish(m.id, State::retry, exc("Retry", retry_reason), m.task, again.retries, ignore);
      count(&WorkerStats::retried);
    }
  }
  if (o.acks_late) broker_->ack(d);
}

}  // namespace weft::tasks
