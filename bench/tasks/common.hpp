// bench/tasks/common.hpp — what every contender of the task-throughput benchmark shares: the run
// configuration, the tiny task, the wall/CPU meter and the contender registry.
//
// Workloads (the same for every contender; each contender file implements them with its own library):
//  - detached: `tasks` tiny tasks with no result, then wait until all have run.
//  - futures:  `tasks` tiny tasks that each return an int through a future; keep every future, then get()
//              them all and check the sum.
// The timed region starts after the pool (or arena) exists and ends when the last task is known to be done;
// making and destroying the pool is outside it. Each run counts the tasks that actually ran (see tiny_task)
// and the driver fails when the count is wrong, so a contender cannot win by dropping work.
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

namespace bench {

struct Config {
  std::size_t tasks = 1'000'000;
  std::size_t threads = 2;  // workers per pool
  int repetitions = 7;
  int warmup = 1;
  int settle_ms = 50;  // pause between runs, so one contender's idle threads go to sleep before the next
  double idle_seconds = 2.0;
  std::string json_path;
  std::string only;  // run only contenders whose name contains this (empty: all)
};

// --- the tiny task ------------------------------------------------------------------------------------
// A relaxed load + store on a counter owned by the running thread, on its own cache line: a few ns that the
// compiler cannot remove (it is an atomic store), with no sharing between workers. The counters live in a
// registry that outlives the threads, so the driver can sum them before and after a run.
struct alignas(64) TaskCounter {
  std::atomic<std::uint64_t> count{0};
};

TaskCounter* register_task_counter();  // the calling thread's counter, made on first use
std::uint64_t tasks_run_total();       // sum over every thread that ever ran a tiny task

inline thread_local TaskCounter* tl_task_counter = nullptr;

inline void tiny_task() noexcept {
  TaskCounter* c = tl_task_counter;
  if (c == nullptr) [[unlikely]] {
    c = register_task_counter();
    tl_task_counter = c;
  }
  c->count.store(c->count.load(std::memory_order_relaxed) + 1, std::memory_order_relaxed);
}

// The value the i-th future-returning task produces, and the sum the driver expects over all of them.
inline int task_result(std::size_t i) noexcept { return static_cast<int>(i & 0xffff); }
std::int64_t expected_result_sum(std::size_t tasks);

// --- measuring ----------------------------------------------------------------------------------------
struct Sample {
  double wall_s = 0;    // steady_clock
  double cpu_s = 0;     // process user + system time (getrusage RUSAGE_SELF), every thread
  std::int64_t vcsw = 0;   // voluntary context switches of the process (mostly futex/condvar sleeps)
  std::int64_t ivcsw = 0;  // involuntary context switches (preemptions)
  std::int64_t result_sum = -1;  // futures workload: the sum of the values got; -1 when not applicable
};

double process_cpu_seconds();

/// Starts at construction; stop() returns wall and CPU time since then.
class Meter {
 public:
  Meter();
  Sample stop() const;

 private:
  double wall0_;
  double cpu0_;
  std::int64_t vcsw0_;
  std::int64_t ivcsw0_;
};

// --- contenders ---------------------------------------------------------------------------------------
enum class Workload { detached, futures };

struct Contender {
  std::string name;    // short, unique within a workload: "weft", "oneTBB", ...
  std::string config;  // how it was configured, printed with the results
  Workload workload;
  bool headline = false;  // the row ratios are computed against (weft with default options)
  std::function<Sample(const Config&)> run;
};

// The futures workload for any pool whose submit(f) returns a future with get(): submit cfg.tasks tiny tasks,
// then get() each in order. `futures` is made (and its pages touched) by the caller before the clock starts.
template <class Pool, class FutureVector>
Sample time_futures(const Config& cfg, Pool& pool, FutureVector& futures) {
  Meter meter;
  for (std::size_t i = 0; i < cfg.tasks; ++i) {
    futures[i] = pool.submit([i] {
      tiny_task();
      return task_result(i);
    });
  }
  std::int64_t sum = 0;
  for (auto& f : futures) sum += f.get();
  Sample s = meter.stop();
  s.result_sum = sum;
  return s;
}

void add_weft_contenders(const Config& cfg, std::vector<Contender>& out);
void add_tbb_contenders(const Config& cfg, std::vector<Contender>& out);
void add_asio_contenders(const Config& cfg, std::vector<Contender>& out);
void add_textbook_contenders(const Config& cfg, std::vector<Contender>& out);

// The idle-CPU figure: a pool with no work, watched for cfg.idle_seconds.
struct IdleSample {
  std::string name;
  std::string config;
  double seconds = 0;
  double cpu_s = 0;
  std::int64_t vcsw = 0;
};
std::vector<IdleSample> measure_weft_idle(const Config& cfg);

std::string weft_version();
std::string tbb_version();
std::string asio_version();

}  // namespace bench
