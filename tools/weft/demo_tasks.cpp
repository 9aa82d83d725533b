// tools/weft/demo_tasks.cpp — the task-queue section of `weft demo` (see demo_tasks.hpp).
//
// The section, in order:
//  1. count the primes below the limit on this thread: the value the batch must reproduce;
//  2. create a temporary directory, an App whose broker and backend are one sqlite file in it, register the
//     demo's tasks and start a Worker in this process;
//  3. the batch: one demo.count_primes task per chunk, all sent with delay(), then their results gathered in
//     the order sent (each one advances the progress display), summed and checked; then a few single tasks,
//     each sent only after the previous result came back, for the round trip of one task;
//  4. the retry: demo.flaky raises std::runtime_error on its first attempt, which its autoretry_for accepts;
//     its second attempt reads the state stored for it meanwhile and succeeds;
//  5. the periodic task: a Beat sends demo.tick at every multiple of 100 ms; each run records its time and
//     wakes the section, which waits (bounded) for three runs, then stops the beat;
//  6. stop the worker (warm: the running tasks finish), check its counters, remove the directory.
#include "demo_tasks.hpp"

#include <stdlib.h>  // mkdtemp

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <filesystem>
#include <mutex>
#include <stdexcept>
#include <string>
#include <system_error>
#include <vector>

#include <fmt/core.h>

#include "primes.hpp"
#include "progress.hpp"
#include "weft/core/errors.hpp"
#include "weft/tasks/app.hpp"
#include "weft/tasks/beat.hpp"
#include "weft/tasks/worker.hpp"

namespace weft::cli {
namespace {

using Clock = std::chrono::steady_clock;
using namespace std::chrono_literals;

constexpr std::size_t kMaxTasks = 100'000;        // one AsyncResult and a few database rows each
constexpr std::uint64_t kMaxLimit = std::uint64_t{1} << 32;  // what base_primes accepts
constexpr auto kResultTimeout = 60s;              // a safety net per result, not a measurement
constexpr std::size_t kRoundTrips = 10;           // single tasks sent one after another
constexpr std::uint64_t kRoundTripHi = 100;       // each counts the primes below this (25)
constexpr auto kRetryDelay = 50ms;                // demo.flaky's, without jitter
constexpr auto kTickInterval = 100ms;
constexpr std::size_t kTicksWanted = 3;
constexpr auto kTicksTimeout = 10s;               // a safety net: three ticks take about 0.3 s

double ms_between(Clock::time_point a, Clock::time_point b) {
  return std::chrono::duration<double, std::milli>(b - a).count();
}

// The nearest-rank quantile q of `v` (not empty).
double quantile(std::vector<double> v, double q) {
  std::sort(v.begin(), v.end());
  const auto at = static_cast<std::size_t>(q * static_cast<double>(v.size() - 1) + 0.5);
  return v[std::min(at, v.size() - 1)];
}

// What the demo's tasks share with the section. `base`, `limit` and `app` are set before the worker starts and
// reset after it stopped: Worker::start() and stop() (thread creation and join) order those plain writes with
// the tasks' reads. `ticks` is written by tasks while the section waits for it: guarded by `mu`.
struct Shared {
  const std::vector<std::uint32_t>* base = nullptr;
  std::uint64_t limit = 0;
  const tasks::App* app = nullptr;
  std::mutex mu;
  std::condition_variable cv;  // notified after each tick
  std::vector<Clock::time_point> ticks;
};
Shared g_shared;

// Sets g_shared for one run of the section and resets it afterwards (declared before the Worker, so it is
// destroyed after the worker's threads were joined).
class SharedScope {
 public:
  SharedScope(const std::vector<std::uint32_t>& base, std::uint64_t limit, const tasks::App& app) {
    g_shared.base = &base;
    g_shared.limit = limit;
    g_shared.app = &app;
    std::lock_guard lock(g_shared.mu);
    g_shared.ticks.clear();
  }
  ~SharedScope() {
    g_shared.base = nullptr;
    g_shared.limit = 0;
    g_shared.app = nullptr;
  }
  SharedScope(const SharedScope&) = delete;
  SharedScope& operator=(const SharedScope&) = delete;
};

// demo.count_primes: the primes in [lo, hi). A range beyond the section's limit (the base primes do not cover
// it) fails the task instead of counting wrongly.
std::uint64_t count_chunk(std::uint64_t lo, std::uint64_t hi) {
  if (lo > hi || hi > g_shared.limit) {
    throw std::invalid_argument(fmt::format("demo.count_primes: [{}, {}) is not within [0, {})", lo, hi,
                                            g_shared.limit));
  }
  return count_primes(lo, hi, *g_shared.base);
}

// demo.flaky: its first attempt fails with an exception its autoretry_for accepts. The retry returns the state
// the backend held for the task when the retry began (RETRY: the worker stores it right after publishing the
// retry, and the retry waits for its retry_delay).
std::string flaky() {
  const tasks::TaskContext* task = tasks::current_task();
  if (task == nullptr) throw std::logic_error("demo.flaky runs only as a task on a worker");
  if (task->retries() == 0) throw std::runtime_error("demo.flaky: the first attempt fails");
  return std::string(tasks::state_name(g_shared.app->result(task->id()).state()));
}

// demo.tick: the periodic task. Records when it ran and wakes the section.
void tick() {
  {
    std::lock_guard lock(g_shared.mu);
    g_shared.ticks.push_back(Clock::now());
  }
  g_shared.cv.notify_all();
}

// A new directory under the system's temporary directory, removed with its contents on destruction.
class TempDir {
 public:
  TempDir() {
    std::string pattern = (std::filesystem::temp_directory_path() / "weft-demo-XXXXXX").string();
    if (::mkdtemp(pattern.data()) == nullptr) {
      throw std::system_error(errno, std::generic_category(), "weft demo: cannot create a directory " + pattern);
    }
    path_ = std::move(pattern);
  }
  ~TempDir() {
    std::error_code ec;
    std::filesystem::remove_all(path_, ec);
    if (ec) std::fprintf(stderr, "weft demo: could not remove %s: %s\n", path_.c_str(), ec.message().c_str());
  }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  const std::string& path() const noexcept { return path_; }

 private:
  std::string path_;
};

std::string join(const std::vector<std::string>& items) {
  std::string s;
  for (const auto& item : items) s += (s.empty() ? "" : ", ") + item;
  return s;
}

// The failures of a task's result that the section reports as a failed check (the others — the database —
// propagate): it failed (RemoteError), did not finish in time (Timeout), or was revoked (Cancelled).
template <class F>
bool checked(const char* what, F&& f) {
  try {
    f();
    return true;
  } catch (const weft::RemoteError& e) {
    fmt::print("  FAILED: {}: the task raised {}: {}\n", what, e.type(), e.message());
  } catch (const weft::Timeout&) {
    fmt::print("  FAILED: {}: no result within {} s\n", what, kResultTimeout.count());
  } catch (const weft::Cancelled& e) {
    fmt::print("  FAILED: {}: {}\n", what, e.what());
  }
  return false;
}

}  // namespace

TaskQueueDemoResult task_queue_demo(const TaskQueueDemoOptions& options, std::size_t workers, bool quiet) {
  if (options.tasks == 0 || options.tasks > kMaxTasks) {
    throw std::invalid_argument(fmt::format("weft demo: the task batch must have 1 to {} tasks", kMaxTasks));
  }
  if (options.limit < 2 || options.limit > kMaxLimit) {
    throw std::invalid_argument("weft demo: the task batch's limit must be 2 to 2^32");
  }
  if (workers == 0) throw std::invalid_argument("weft demo: the task queue's worker needs a thread");

  TaskQueueDemoResult r;
  r.limit = options.limit;
  r.workers = workers;
  const std::uint64_t chunk = (options.limit + options.tasks - 1) / options.tasks;
  const std::vector<std::uint32_t> base = base_primes(options.limit);

  // 1. The value to reproduce.
  const auto seq_start = Clock::now();
  const std::uint64_t expected = count_primes(0, options.limit, base);
  r.sequential_seconds = ms_between(seq_start, Clock::now()) / 1000;

  // 2. Broker and backend in one fresh database; the worker in this process.
  const TempDir dir;
  const std::string url = "sqlite://" + dir.path() + "/tasks.db";
  tasks::App app({.broker = url, .backend = url, .name = "weft-demo"});
  const auto count_task = app.task<&count_chunk>("demo.count_primes");
  const auto flaky_task =
      app.task<&flaky>("demo.flaky", {.max_retries = 3,
                                      .retry_delay = kRetryDelay,
                                      .retry_jitter = false,
                                      .autoretry_for = tasks::retry_on<std::runtime_error>()});
  app.task<&tick>("demo.tick", {.ignore_result = true});
  const SharedScope shared(base, options.limit, app);
  tasks::Worker worker(app, {.concurrency = workers});
  worker.start();
  fmt::print("  broker and backend: {} (removed afterwards)\n", url);
  fmt::print("  worker {} in this process, {} thread{}; tasks: {}\n", worker.hostname(), workers,
             workers == 1 ? "" : "s", join(app.registered()));

  // 3. The batch.
  const std::size_t n = static_cast<std::size_t>((options.limit + chunk - 1) / chunk);
  fmt::print("  batch: {} tasks sent with delay(), one per chunk of {} numbers, results read in the order sent\n", n,
             chunk);
  std::fflush(stdout);  // the report so far, before progress appears on stderr
  std::vector<tasks::AsyncResult> results;
  std::vector<tasks::SysTime> sent;
  results.reserve(n);
  sent.reserve(n);
  bool batch_ok = true;
  {
    Progress progress(stderr, Progress::style_for(stderr, quiet), "task queue", n);
    const auto batch_start = Clock::now();
    for (std::size_t i = 0; i < n; ++i) {
      const std::uint64_t lo = i * chunk;
      sent.push_back(std::chrono::system_clock::now());
      results.push_back(count_task.delay(lo, std::min(options.limit, lo + chunk)));
    }
    for (std::size_t i = 0; i < n && batch_ok; ++i) {
      batch_ok = checked("demo.count_primes", [&] { r.primes += results[i].get<std::uint64_t>(kResultTimeout); });
      progress.advance();
    }
    r.seconds = ms_between(batch_start, Clock::now()) / 1000;
  }
  r.tasks = n;
  if (batch_ok) {
    std::vector<double> latency_ms;
    for (std::size_t i = 0; i < results.size(); ++i) {
      const auto meta = results[i].meta();
      if (meta && meta->date_done) {
        const std::chrono::duration<double, std::milli> latency = *meta->date_done - sent[i];
        latency_ms.push_back(std::max(0.0, latency.count()));
      }
    }
    const bool same = r.primes == expected;
    fmt::print("  primes below {}: {}  ({:.3f} s, {:.0f} tasks/s)  the same as counted on one thread: {}\n",
               options.limit, r.primes, r.seconds, r.seconds > 0 ? static_cast<double>(r.tasks) / r.seconds : 0,
               same ? "ok" : fmt::format("WRONG, expected {}", expected));
    batch_ok = same;
    if (const auto known = known_prime_count(options.limit)) {
      fmt::print("  published value pi({}) = {}: {}\n", options.limit, *known, r.primes == *known ? "ok" : "WRONG");
      batch_ok = batch_ok && r.primes == *known;
    }
    if (!latency_ms.empty()) {
      fmt::print("  send -> result stored: p50 {:.1f} ms, max {:.1f} ms (a task waits behind those sent before it)\n",
                 quantile(latency_ms, 0.5), quantile(latency_ms, 1.0));
    }
  }
  // One task at a time: the round trip through the database and the worker, with nothing queued.
  const std::uint64_t tiny_hi = std::min(options.limit, kRoundTripHi);
  const std::uint64_t tiny_expected = count_primes(0, tiny_hi, base);
  std::vector<double> round_trip_ms;
  bool round_trips_ok = true;
  for (std::size_t i = 0; i < kRoundTrips && round_trips_ok; ++i) {
    const auto t0 = Clock::now();
    std::uint64_t got = 0;
    round_trips_ok = checked("demo.count_primes",
                             [&] { got = count_task.delay(0, tiny_hi).get<std::uint64_t>(kResultTimeout); });
    round_trip_ms.push_back(ms_between(t0, Clock::now()));
    round_trips_ok = round_trips_ok && got == tiny_expected;
  }
  fmt::print("  one task at a time: round trip p50 {:.1f} ms over {} tasks  {}\n", quantile(round_trip_ms, 0.5),
             round_trip_ms.size(), round_trips_ok ? "ok" : "WRONG");

  // 4. The retry.
  bool retry_ok = false;
  {
    const auto t0 = Clock::now();
    const tasks::AsyncResult f = flaky_task.delay();
    std::string seen;
    if (checked("demo.flaky", [&] { seen = f.get<std::string>(kResultTimeout); })) {
      const auto meta = f.meta();
      const int retries = meta ? meta->retries : -1;
      retry_ok = meta && meta->state == tasks::State::success && retries == 1;
      fmt::print("  retry: demo.flaky raised std::runtime_error on its first attempt "
                 "(autoretry_for, retry_delay {} ms)\n", kRetryDelay.count());
      fmt::print("         its retry found the task in state {}, then ended {} after {} {}  ({:.3f} s)  {}\n", seen,
                 meta ? tasks::state_name(meta->state) : "PENDING", retries, retries == 1 ? "retry" : "retries",
                 ms_between(t0, Clock::now()) / 1000, retry_ok ? "ok" : "WRONG");
    }
  }

  // 5. The periodic task.
  bool ticks_ok = false;
  {
    tasks::Beat beat(app, {.entries = {{.name = "demo-tick",
                                        .task = "demo.tick",
                                        .schedule = tasks::Schedule::every(kTickInterval)}}});
    const auto t0 = Clock::now();
    beat.start();
    std::vector<Clock::time_point> ticks;
    {
      std::unique_lock lock(g_shared.mu);
      g_shared.cv.wait_until(lock, t0 + kTicksTimeout, [] { return g_shared.ticks.size() >= kTicksWanted; });
      ticks = g_shared.ticks;
    }
    beat.stop();
    const tasks::BeatStats stats = beat.stats();
    r.ticks = ticks.size();
    ticks_ok = ticks.size() >= kTicksWanted;
    ticks.resize(std::min(ticks.size(), kTicksWanted));  // the ones waited for; a later one may have run too
    std::string at;
    for (const auto& t : ticks) at += fmt::format("{}+{:.3f}", at.empty() ? "" : ", ", ms_between(t0, t) / 1000);
    fmt::print("  periodic: a Beat sends demo.tick {}; waited for {} ticks: {} ran (at {} s), the beat fired {}  {}\n",
               tasks::Schedule::every(kTickInterval).describe(), kTicksWanted, ticks.size(), at.empty() ? "-" : at,
               stats.fired, ticks_ok ? "ok" : "WRONG");
    if (!ticks_ok && !stats.last_error.empty()) fmt::print("  beat error: {}\n", stats.last_error);
  }

  // 6. A warm stop: the tasks it holds finish; its counters are final after it.
  worker.stop();
  const tasks::WorkerStats stats = worker.stats();
  const bool counters_ok = stats.failed == 0 && stats.retried == 1;
  fmt::print("  worker counters: received {}, succeeded {}, retried {}, failed {}  {}\n", stats.received,
             stats.succeeded, stats.retried, stats.failed, counters_ok ? "ok" : "WRONG");
  if (stats.errors != 0) fmt::print("  worker errors: {} (last: {})\n", stats.errors, stats.last_error);
  r.ok = batch_ok && round_trips_ok && retry_ok && ticks_ok && counters_ok;
  return r;
}

}  // namespace weft::cli
