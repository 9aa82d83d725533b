// weft/tasks/worker.hpp — runs an App's tasks from its broker with a pool of threads.
//
// Each of `concurrency` threads loops:
//  1. reserve() the next message of the worker's queues under a lease (a prefetch of one per thread);
//  2. decode it; a message that cannot be decoded, names no registered task, or carries arguments that do not
//     fit is poison: its task (when it names an id) gets FAILURE with a clear error, and it is acknowledged,
//     never retried; an expired one (expires passed) gets REVOKED;
//  3. run the task (acks_late: acknowledge after; otherwise before), store SUCCESS or FAILURE unless
//     ignore_result, or — on Retry, or an exception its autoretry_for accepts, while retries are left —
//     publish it again with retries + 1 at now + its backoff delay, store RETRY, and acknowledge this delivery;
//  4. while a task runs, a renewer thread extends its lease every lease/3, so a slow task is not delivered
//     to another worker; a renewal that fails is counted (lease_lost): another worker may run it as well.
// stop(): no new reservations; the running tasks finish (a warm shutdown). A program that must stop at once
// (a cold shutdown) exits without stop(): the deliveries it held are not acknowledged, so the broker delivers
// them again once their leases end.
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <unordered_map>
#include <vector>

#include "weft/tasks/app.hpp"

namespace weft::tasks {

struct WorkerOptions {
  std::size_t concurrency = 0;                   ///< threads; 0: the CPUs this process may use
  std::vector<std::string> queues = {"celery"};  ///< consumed in this order of preference at equal priority
  std::chrono::milliseconds lease{30'000};       ///< how long a reserved task stays ours without renewal
  bool track_started = false;                    ///< store STARTED when a task begins (one more write per task)
  std::string hostname{};                        ///< default "weft@<host>"
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
};

/// A worker. start() launches its threads; the destructor stops it warm and joins. Thread-safe.
class Worker {
 public:
  /// Throws std::invalid_argument (no queues, lease not above 0).
  Worker(App& app, WorkerOptions options = {});
  ~Worker();
  Worker(const Worker&) = delete;
  Worker& operator=(const Worker&) = delete;

  /// Starts the threads (once). Throws std::logic_error when called twice, std::system_error.
  void start();
  /// Stops taking tasks and waits for the running ones (warm shutdown). Idempotent; joins the threads.
  void stop();
  WorkerStats stats() const;
  const std::string& hostname() const noexcept { return hostname_; }
  std::size_t concurrency() const noexcept { return options_.concurrency; }

 private:
  void consume();
  void renew_leases();
  void handle(const Delivery& d);
  bool store(const ResultMeta& m);

  App& app_;
  WorkerOptions options_;
  std::string hostname_;
  std::shared_ptr<Broker> broker_;  // this worker's own connection (interrupting it stops only this worker)
  std::vector<std::thread> threads_;
  std::thread renewer_;
  std::atomic<bool> stopping_{false};
  bool started_ = false;
  mutable std::mutex mu_;
  std::mutex join_mu_;  // serialises the joins of concurrent stop() calls
  std::condition_variable cv_;  // the renewer sleeps here; stop() wakes it
  std::unordered_map<std::string, Delivery> running_;  // by delivery tag, guarded by mu_
  WorkerStats stats_;  // guarded by mu_
  std::unordered_map<std::string, std::chrono::steady_clock::time_point> next_slot_;  // rate limits, by task
};

}  // namespace weft::tasks
