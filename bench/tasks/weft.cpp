// bench/tasks/weft.cpp — weft::ThreadPool: post() + wait_idle(), and submit() + Future<int>::get().
#include <chrono>
#include <string>
#include <thread>
#include <vector>

#include "common.hpp"
#include "weft/thread/thread_pool.hpp"

namespace bench {
namespace {

const std::size_t kDefaultCapacity = weft::ThreadPoolOptions{}.capacity;  // 16384

weft::ThreadPoolOptions pool_options(const Config& cfg, std::size_t capacity) {
  weft::ThreadPoolOptions o;
  o.threads = cfg.threads;
  o.capacity = capacity;
  o.name = "bench";
  return o;
}

Sample run_detached(const Config& cfg, std::size_t capacity) {
  weft::ThreadPool pool(pool_options(cfg, capacity));
  Meter meter;
  for (std::size_t i = 0; i < cfg.tasks; ++i) pool.post([] { tiny_task(); });
  pool.wait_idle();
  return meter.stop();
}

Sample run_futures(const Config& cfg, std::size_t capacity) {
  weft::ThreadPool pool(pool_options(cfg, capacity));
  std::vector<weft::Future<int>> futures(cfg.tasks);  // made (and its pages touched) before the clock starts
  return time_futures(cfg, pool, futures);
}

std::string describe(const Config& cfg, std::size_t capacity) {
  return "weft::ThreadPool, " + std::to_string(cfg.threads) + " workers, capacity " + std::to_string(capacity) +
         (capacity == kDefaultCapacity ? " (default)" : "") + ", Overflow::block, spin 50 us (defaults)";
}

}  // namespace

void add_weft_contenders(const Config& cfg, std::vector<Contender>& out) {
  // A capacity that holds the whole burst: the producer never waits for space.
  std::size_t big = 1;
  while (big < cfg.tasks) big <<= 1;
  const std::string big_name = "weft (capacity " + std::to_string(big) + ")";

  out.push_back({"weft", describe(cfg, kDefaultCapacity) + "; post() then wait_idle()", Workload::detached, true,
                 [](const Config& c) { return run_detached(c, kDefaultCapacity); }});
  out.push_back({big_name, describe(cfg, big) + "; post() then wait_idle()", Workload::detached, false,
                 [big](const Config& c) { return run_detached(c, big); }});
  out.push_back({"weft", describe(cfg, kDefaultCapacity) + "; submit() -> Future<int>, then get() each",
                 Workload::futures, true, [](const Config& c) { return run_futures(c, kDefaultCapacity); }});
  out.push_back({big_name, describe(cfg, big) + "; submit() -> Future<int>, then get() each", Workload::futures,
                 false, [big](const Config& c) { return run_futures(c, big); }});
}

std::vector<IdleSample> measure_weft_idle(const Config& cfg) {
  std::vector<IdleSample> out;
  const auto window = std::chrono::duration<double>(cfg.idle_seconds);
  for (const bool after_burst : {false, true}) {
    weft::ThreadPool pool(pool_options(cfg, kDefaultCapacity));
    if (after_burst) {
      for (int i = 0; i < 100'000; ++i) pool.post([] { tiny_task(); });
    }
    pool.wait_idle();  // every worker has gone to sleep (it returns once all are parked)
    Meter meter;
    std::this_thread::sleep_for(window);  // the main thread sleeps: the process CPU is the workers'
    const Sample s = meter.stop();
    out.push_back({after_burst ? "weft idle after a burst" : "weft idle from start",
                   describe(cfg, kDefaultCapacity) +
                       (after_burst ? "; 100000 posted tasks, wait_idle(), then no work" : "; never given work"),
                   s.wall_s, s.cpu_s, s.vcsw});
  }
  return out;
}

std::string weft_version() { return "weft (this tree)"; }

}  // namespace bench
