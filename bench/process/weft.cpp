// bench/process/weft.cpp — weft's process module on the workloads of bench/process/python_mp.py, printed as
// one JSON object (the keys scripts/bench_process.py reads). Two worker processes, as the Python side uses.
//
//   submit      per-task submit of a tiny task (x + 1), all submitted, then all results taken: tasks/s
//   map         ProcessPool::map over 100,000 tiny items, automatic chunk size: items/s
//   primes      primes below --primes-limit in chunks of 50,000, by the same trial division as the Python
//               side: one process (this thread) against a warm 2-worker pool: seconds and speedup
//   roundtrip   submit -> result of one task at a time on a warm pool: p50/p99 µs; and on an idle pool
//               (after 50 ms without work: workers and collector asleep), p50
//   queue_64    Queue, 64-byte messages from a child process: messages/s
//   queue_1mib  Queue, 1 MiB messages from a child process: GB/s
//               Both with this process on the first CPU of its affinity mask and the producer on the second,
//               as bench_process_raw's baselines run ("pinned"); queue_64_unpinned is the 64-byte case with
//               both wherever the scheduler puts them (spinning sides that land on one CPU measure the
//               scheduler, and where a new process lands varies from run to run).
//   idle_cpu    CPU time the pool's processes and this one use over 1 s of an idle pool: ms
#include <sched.h>
#include <sys/resource.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <numeric>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "weft/process/pool.hpp"
#include "weft/process/process.hpp"
#include "weft/process/queue.hpp"

namespace {

using Clock = std::chrono::steady_clock;
using weft::process::ProcessPool;
using weft::process::ProcessPoolOptions;
using weft::process::Queue;

double seconds_since(Clock::time_point t0) { return std::chrono::duration<double>(Clock::now() - t0).count(); }

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}

int tiny(int x) { return x + 1; }

// The Python side's algorithm: trial division by odd d with d*d <= n.
bool is_prime(std::uint64_t n) {
  if (n < 2) return false;
  if (n % 2 == 0) return n == 2;
  for (std::uint64_t d = 3; d * d <= n; d += 2) {
    if (n % d == 0) return false;
  }
  return true;
}
std::uint64_t count_primes(std::uint64_t lo, std::uint64_t hi) {
  std::uint64_t c = 0;
  for (std::uint64_t n = lo; n < hi; ++n) c += is_prime(n) ? 1 : 0;
  return c;
}

// The CPUs of this process's affinity mask, in order.
std::vector<int> allowed_cpus() {
  cpu_set_t set;
  CPU_ZERO(&set);
  std::vector<int> out;
  if (sched_getaffinity(0, sizeof set, &set) != 0) return out;
  for (int c = 0; c < CPU_SETSIZE; ++c) {
    if (CPU_ISSET(c, &set)) out.push_back(c);
  }
  return out;
}

bool pin_to(int cpu) {
  if (cpu < 0) return true;
  cpu_set_t set;
  CPU_ZERO(&set);
  CPU_SET(cpu, &set);
  return sched_setaffinity(0, sizeof set, &set) == 0;
}

void produce(Queue q, std::uint64_t count, std::uint64_t size, int cpu) {
  if (!pin_to(cpu)) std::exit(3);
  std::string m(size, 'm');
  for (std::uint64_t i = 0; i < count; ++i) q.put_bytes(m);
}

double cpu_ms_of(int pid) {
  std::ifstream f("/proc/" + std::to_string(pid) + "/stat");
  std::string s((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
  auto close = s.rfind(')');
  if (close == std::string::npos) return 0;
  std::istringstream in(s.substr(close + 2));
  std::string field;
  unsigned long long utime = 0, stime = 0;
  for (int i = 3; i <= 15 && in >> field; ++i) {
    if (i == 14) utime = std::stoull(field);
    if (i == 15) stime = std::stoull(field);
  }
  return static_cast<double>(utime + stime) * 1000.0 / static_cast<double>(sysconf(_SC_CLK_TCK));
}

double self_cpu_ms() {
  rusage u{};
  getrusage(RUSAGE_SELF, &u);
  return (u.ru_utime.tv_sec + u.ru_stime.tv_sec) * 1e3 + (u.ru_utime.tv_usec + u.ru_stime.tv_usec) / 1e3;
}

}  // namespace

int main(int argc, char** argv) {
  weft::process::start_fork_server();
  bool quick = false;
  std::uint64_t primes_limit = 20'000'000;
  for (int i = 1; i < argc; ++i) {
    if (std::strcmp(argv[i], "--quick") == 0) quick = true;
    if (std::strcmp(argv[i], "--primes-limit") == 0 && i + 1 < argc) primes_limit = std::strtoull(argv[++i], nullptr, 10);
  }
  const int rounds = quick ? 1 : 3;
  ProcessPool pool(ProcessPoolOptions{.workers = 2, .name = "bench"});
  std::printf("{\n  \"workers\": %zu,\n", pool.workers());

  {  // submit
    const int n = quick ? 20'000 : 200'000;
    std::vector<double> rates;
    for (int r = 0; r < rounds; ++r) {
      std::vector<weft::Future<int>> fs;
      fs.reserve(n);
      const auto t0 = Clock::now();
      for (int i = 0; i < n; ++i) fs.push_back(pool.submit(&tiny, i));
      long sum = 0;
      for (auto& f : fs) sum += f.get();
      rates.push_back(n / seconds_since(t0));
      if (sum != static_cast<long>(n) * (n + 1) / 2) return 1;
    }
    std::printf("  \"submit\": {\"tasks\": %d, \"tasks_per_s\": %.0f},\n", n, median(rates));
  }
  {  // map
    std::vector<int> items(100'000);
    std::iota(items.begin(), items.end(), 0);
    std::vector<double> rates;
    for (int r = 0; r < rounds + 2; ++r) {
      const auto t0 = Clock::now();
      auto out = pool.map(&tiny, items);
      rates.push_back(items.size() / seconds_since(t0));
      if (out.back() != 100'000) return 1;
    }
    std::printf("  \"map\": {\"items\": 100000, \"items_per_s\": %.0f},\n", median(rates));
  }
  {  // primes
    const std::uint64_t chunk = 50'000;
    std::vector<double> serial, parallel;
    std::uint64_t a = 0, b = 0;
    for (int r = 0; r < (quick ? 1 : 2); ++r) {
      auto t0 = Clock::now();
      a = 0;
      for (std::uint64_t lo = 0; lo < primes_limit; lo += chunk) a += count_primes(lo, std::min(primes_limit, lo + chunk));
      serial.push_back(seconds_since(t0));
      t0 = Clock::now();
      std::vector<weft::Future<std::uint64_t>> fs;
      for (std::uint64_t lo = 0; lo < primes_limit; lo += chunk) {
        fs.push_back(pool.submit(&count_primes, lo, std::min(primes_limit, lo + chunk)));
      }
      b = 0;
      for (auto& f : fs) b += f.get();
      parallel.push_back(seconds_since(t0));
    }
    if (a != b) return 1;
    const double s = median(serial), p = median(parallel);
    std::printf("  \"primes\": {\"limit\": %llu, \"count\": %llu, \"serial_s\": %.4f, \"parallel_s\": %.4f, "
                "\"speedup\": %.3f},\n",
                static_cast<unsigned long long>(primes_limit), static_cast<unsigned long long>(a), s, p, s / p);
  }
  {  // roundtrip, warm and idle
    std::vector<double> lat;
    const int n = quick ? 2000 : 20'000;
    for (int i = 0; i < n; ++i) {
      const auto t0 = Clock::now();
      if (pool.submit(&tiny, i).get() != i + 1) return 1;
      lat.push_back(std::chrono::duration<double, std::micro>(Clock::now() - t0).count());
    }
    std::sort(lat.begin(), lat.end());
    std::vector<double> idle;
    for (int i = 0; i < (quick ? 5 : 40); ++i) {
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
      const auto t0 = Clock::now();
      (void)pool.submit(&tiny, i).get();
      idle.push_back(std::chrono::duration<double, std::micro>(Clock::now() - t0).count());
    }
    std::printf("  \"roundtrip\": {\"p50_us\": %.2f, \"p99_us\": %.2f, \"idle_p50_us\": %.2f},\n", lat[lat.size() / 2],
                lat[lat.size() * 99 / 100], median(idle));
  }
  {  // idle CPU of the pool
    std::this_thread::sleep_for(std::chrono::milliseconds(100));  // past every spin
    const auto pids = pool.worker_pids();
    double before = self_cpu_ms();
    for (int pid : pids) before += cpu_ms_of(pid);
    std::this_thread::sleep_for(std::chrono::seconds(1));
    double after = self_cpu_ms();
    for (int pid : pids) after += cpu_ms_of(pid);
    std::printf("  \"idle_cpu\": {\"ms_per_s\": %.1f},\n", after - before);
  }
  pool.shutdown();
  const std::uint64_t small_count = quick ? 1'000'000 : 10'000'000, big_count = quick ? 500 : 4000;
  const std::vector<int> cpus = allowed_cpus();
  const bool can_pin = cpus.size() >= 2;
  cpu_set_t all;
  if (sched_getaffinity(0, sizeof all, &all) != 0) return 1;
  // One Queue case: `count` messages of `size` bytes from a producer process; the median rate of `rounds`.
  auto queue_rate = [&](std::uint64_t size, std::uint64_t count, bool pinned) {
    std::vector<double> rates;
    if (pinned && !pin_to(cpus[0])) std::exit(1);
    for (int r = 0; r < rounds; ++r) {
      Queue q(weft::process::QueueOptions{.capacity_bytes = std::max<std::size_t>(1 << 20, 4 * size)});
      std::string m;
      weft::process::Process p(&produce, q, count, size, pinned ? cpus[1] : -1);
      q.get_bytes_into(m);  // the producer runs: start the clock
      const auto t0 = Clock::now();
      for (std::uint64_t i = 1; i < count; ++i) q.get_bytes_into(m);
      const double s = seconds_since(t0);
      p.join();
      if (p.exitcode() != 0) std::exit(1);
      rates.push_back(size == 64 ? (count - 1) / s : (count - 1) * static_cast<double>(size) / s / 1e9);
    }
    if (sched_setaffinity(0, sizeof all, &all) != 0) std::exit(1);
    return median(rates);
  };
  std::printf("  \"queue_pinned\": \"%s\",\n", can_pin ? (std::to_string(cpus[0]) + "," + std::to_string(cpus[1])).c_str() : "no");
  std::printf("  \"queue_64\": {\"messages_per_s\": %.0f},\n", queue_rate(64, small_count, can_pin));
  std::printf("  \"queue_64_unpinned\": {\"messages_per_s\": %.0f},\n", queue_rate(64, small_count, false));
  std::printf("  \"queue_1mib\": {\"gb_per_s\": %.3f}\n", queue_rate(std::uint64_t{1} << 20, big_count, can_pin));
  std::printf("}\n");
  return 0;
}
