// bench/queue/bench_queue.cpp — the task queue end to end, printed as one JSON object (the keys
// scripts/bench_queue.py reads). bench/queue/celery_bench.py measures the same workloads on Celery.
//
// For each broker (memory://, and sqlite:// with broker and result backend in one file of a fresh temporary
// directory: a message sent and a result stored are durable commits, synced before the call returns), in this
// one process:
//   an App, the task add(a, b) = a + b registered as "bench.add", and a Worker{concurrency 2, thread pool}
//   started on it; a warm-up batch, then
//   delay       N calls add.delay(i, i), then every result taken with get(), in order: tasks/s =
//               N / (first send -> last result). The median of `rounds` rounds.
//   group       the same N calls sent as group(add.s(i, i), ...) of at most kMaxGroupSize members each (every
//               group built and sent before any result is taken, both timed), then GroupResult::get() of
//               each: tasks/s likewise.
//   senders     the same N calls with delay() from kSenders threads at once (N / kSenders each), then every
//               result: tasks/s likewise. On sqlite:// concurrent senders share durable commits (a group commit);
//               one thread calling delay() waits for one commit per call.
//   roundtrip   one call at a time: add.delay(i, 1).get(), `roundtrips` times after 20 untimed: p50 / p99 µs.
//   idle_cpu    the CPU time of this whole process (getrusage) over `idle_seconds` with the worker started and
//               no task sent: ms per s. The worker's heartbeat (every 2 s) falls inside the window.
//   fsync       the baseline of sqlite://'s durability, on the same file system: 4 KiB appended to a file of the
//               temporary directory and fdatasync()ed (what a WAL commit of one page costs), `fsyncs` times:
//               p50 / p99 µs: what one durable commit costs at least (a thread sending with delay() waits for
//               one per call).
// Every result is checked (a wrong sum exits with status 1); a result not there within the timeout is an
// error (weft::Timeout, exit status 1). Results of a memory:// round are forgotten after its clock stopped, so
// that the process does not grow by a round's results each round.
//
//   bench_queue_weft [--quick] [--cases memory,sqlite] [--memory-tasks N] [--sqlite-tasks N]
//                    [--memory-roundtrips N] [--sqlite-roundtrips N] [--rounds N] [--sqlite-rounds N]
//                    [--idle-seconds S] [--dir DIR]
#include <fcntl.h>
#include <sys/resource.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <exception>
#include <filesystem>
#include <string>
#include <system_error>
#include <thread>
#include <vector>

#include "weft/tasks/app.hpp"
#include "weft/tasks/canvas.hpp"
#include "weft/tasks/worker.hpp"

namespace {

using Clock = std::chrono::steady_clock;
using weft::tasks::App;
using weft::tasks::AsyncResult;
using weft::tasks::Json;

constexpr std::size_t kConcurrency = 2;
constexpr int kSenders = 4;  // the threads of the "senders" workload
constexpr std::chrono::seconds kResultTimeout{120};  // a safety net per result; a healthy run needs far less
constexpr int kWarmupRoundtrips = 20;  // untimed, before the round trips that are (as celery_bench.py does)

int add(int a, int b) { return a + b; }

double seconds_since(Clock::time_point t0) { return std::chrono::duration<double>(Clock::now() - t0).count(); }

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}

double self_cpu_ms() {
  rusage u{};
  getrusage(RUSAGE_SELF, &u);
  return (u.ru_utime.tv_sec + u.ru_stime.tv_sec) * 1e3 + (u.ru_utime.tv_usec + u.ru_stime.tv_usec) / 1e3;
}

struct Config {
  bool quick = false;
  std::vector<std::string> cases{"memory", "sqlite"};
  long memory_tasks = 200'000;
  long sqlite_tasks = 3'000;
  long memory_roundtrips = 2'000;
  long sqlite_roundtrips = 500;
  int rounds = 3;
  int sqlite_rounds = 1;
  double idle_seconds = 2.0;
  int fsyncs = 200;
  std::filesystem::path dir = std::filesystem::temp_directory_path();
};

// `n` appends of 4 KiB to a new file in `dir`, each followed by fdatasync: p50 / p99 µs.
Json fsync_baseline(const std::filesystem::path& dir, int n) {
  const std::filesystem::path path = dir / "fsync-baseline";
  const int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  if (fd < 0) throw std::system_error(errno, std::generic_category(), "open " + path.string());
  const std::string page(4096, 'p');
  std::vector<double> lat;
  for (int i = 0; i < n; ++i) {
    const auto t0 = Clock::now();
    if (::write(fd, page.data(), page.size()) != static_cast<ssize_t>(page.size()) || ::fdatasync(fd) != 0) {
      const int e = errno;
      ::close(fd);
      throw std::system_error(e, std::generic_category(), "write + fdatasync " + path.string());
    }
    lat.push_back(std::chrono::duration<double, std::micro>(Clock::now() - t0).count());
  }
  ::close(fd);
  std::filesystem::remove(path);
  std::sort(lat.begin(), lat.end());
  return {{"samples", n},
          {"bytes", page.size()},
          {"p50_us", lat[lat.size() / 2]},
          {"p99_us", lat[lat.size() * 99 / 100]}};
}

struct Case {
  std::string name;  // "memory" or "sqlite"
  std::string url;
  long tasks;
  long roundtrips;
  int rounds;
  bool forget;  // forget a round's results after its clock stopped
};

void check(long long got, long long want, const char* what) {
  if (got != want) {
    std::fprintf(stderr, "bench_queue_weft: %s: results sum to %lld, expected %lld\n", what, got, want);
    std::exit(1);
  }
}

// N calls with delay(), then every result: tasks/s.
template <class T>
double delay_round(const T& add_task, long n, bool forget) {
  std::vector<AsyncResult> results;
  results.reserve(static_cast<std::size_t>(n));
  const auto t0 = Clock::now();
  for (long i = 0; i < n; ++i) results.push_back(add_task.delay(static_cast<int>(i), static_cast<int>(i)));
  long long sum = 0;
  for (const AsyncResult& r : results) sum += r.get<int>(kResultTimeout);
  const double s = seconds_since(t0);
  check(sum, static_cast<long long>(n) * (n - 1), "delay");
  if (forget) {
    for (const AsyncResult& r : results) r.forget();
  }
  return n / s;
}

// The same N calls with delay() from kSenders threads at once, then every result: tasks/s.
template <class T>
double senders_round(const T& add_task, long n, bool forget) {
  std::vector<std::vector<AsyncResult>> results(kSenders);
  std::vector<std::exception_ptr> errors(kSenders);
  const auto t0 = Clock::now();
  {
    std::vector<std::thread> threads;
    for (int t = 0; t < kSenders; ++t) {
      threads.emplace_back([&, t] {
        try {
          for (long i = t; i < n; i += kSenders) {
            results[static_cast<std::size_t>(t)].push_back(add_task.delay(static_cast<int>(i), static_cast<int>(i)));
          }
        } catch (...) {
          errors[static_cast<std::size_t>(t)] = std::current_exception();
        }
      });
    }
    for (auto& th : threads) th.join();
  }
  for (const auto& e : errors) {
    if (e) std::rethrow_exception(e);
  }
  long long sum = 0;
  for (const auto& rs : results) {
    for (const AsyncResult& r : rs) sum += r.get<int>(kResultTimeout);
  }
  const double s = seconds_since(t0);
  check(sum, static_cast<long long>(n) * (n - 1), "senders");
  if (forget) {
    for (const auto& rs : results) {
      for (const AsyncResult& r : rs) r.forget();
    }
  }
  return n / s;
}

// The same N calls as groups of at most kMaxGroupSize members: tasks/s.
template <class T>
double group_round(App& app, const T& add_task, long n, bool forget) {
  const long size = static_cast<long>(weft::tasks::kMaxGroupSize);
  // Building the signatures is part of sending, as building the arguments is part of delay(): it is timed.
  const auto t0 = Clock::now();
  std::vector<weft::tasks::GroupResult> results;
  for (long lo = 0; lo < n; lo += size) {
    weft::tasks::Group g;
    for (long i = lo; i < std::min(n, lo + size); ++i) {
      g.tasks.push_back(add_task.s(static_cast<int>(i), static_cast<int>(i)));
    }
    results.push_back(g.apply_async(app));
  }
  long long sum = 0;
  for (const auto& r : results) {
    for (int v : r.get<int>(kResultTimeout)) sum += v;
  }
  const double s = seconds_since(t0);
  check(sum, static_cast<long long>(n) * (n - 1), "group");
  if (forget) {
    for (const auto& r : results) r.forget();
  }
  return n / s;
}

Json run_case(const Case& c, const Config& cfg) {
  App app({.broker = c.url, .backend = c.url, .name = "bench"});
  auto add_task = app.task<&add>("bench.add");
  weft::tasks::Worker worker(app, {.concurrency = kConcurrency});
  worker.start();
  Json out = {{"url", c.url}, {"concurrency", kConcurrency}, {"rounds", c.rounds}};

  {  // warm-up: the worker's threads have taken tasks, the broker's structures are grown
    const long n = std::max<long>(1, std::min<long>(c.tasks / 10, 2'000));
    std::fprintf(stderr, "[bench_queue_weft] %s: warm-up, %ld tasks\n", c.name.c_str(), n);
    (void)delay_round(add_task, n, c.forget);
  }
  {
    std::vector<double> rates;
    for (int r = 0; r < c.rounds; ++r) {
      rates.push_back(delay_round(add_task, c.tasks, c.forget));
      std::fprintf(stderr, "[bench_queue_weft] %s: delay, %ld tasks: %.0f tasks/s\n", c.name.c_str(), c.tasks,
                   rates.back());
    }
    out["delay"] = {{"tasks", c.tasks}, {"tasks_per_s", median(rates)}, {"samples", rates}};
  }
  {
    std::vector<double> rates;
    for (int r = 0; r < c.rounds; ++r) {
      rates.push_back(group_round(app, add_task, c.tasks, c.forget));
      std::fprintf(stderr, "[bench_queue_weft] %s: group, %ld tasks: %.0f tasks/s\n", c.name.c_str(), c.tasks,
                   rates.back());
    }
    out["group"] = {{"tasks", c.tasks},
                    {"group_size", std::min<long>(c.tasks, static_cast<long>(weft::tasks::kMaxGroupSize))},
                    {"tasks_per_s", median(rates)},
                    {"samples", rates}};
  }
  {
    std::vector<double> rates;
    for (int r = 0; r < c.rounds; ++r) {
      rates.push_back(senders_round(add_task, c.tasks, c.forget));
      std::fprintf(stderr, "[bench_queue_weft] %s: %d senders, %ld tasks: %.0f tasks/s\n", c.name.c_str(), kSenders,
                   c.tasks, rates.back());
    }
    out["senders"] = {{"tasks", c.tasks}, {"threads", kSenders}, {"tasks_per_s", median(rates)}, {"samples", rates}};
  }
  {
    for (int i = 0; i < kWarmupRoundtrips; ++i) (void)add_task.delay(i, 1).get<int>(kResultTimeout);
    std::vector<double> lat;
    lat.reserve(static_cast<std::size_t>(c.roundtrips));
    for (long i = 0; i < c.roundtrips; ++i) {
      const auto t0 = Clock::now();
      const int v = add_task.delay(static_cast<int>(i), 1).get<int>(kResultTimeout);
      lat.push_back(std::chrono::duration<double, std::micro>(Clock::now() - t0).count());
      check(v, i + 1, "roundtrip");
    }
    std::sort(lat.begin(), lat.end());
    out["roundtrip"] = {{"samples", c.roundtrips},
                        {"p50_us", lat[lat.size() / 2]},
                        {"p99_us", lat[lat.size() * 99 / 100]},
                        {"max_us", lat.back()}};
    std::fprintf(stderr, "[bench_queue_weft] %s: round trip p50 %.0f µs, p99 %.0f µs\n", c.name.c_str(),
                 lat[lat.size() / 2], lat[lat.size() * 99 / 100]);
  }
  if (cfg.idle_seconds > 0) {
    std::this_thread::sleep_for(std::chrono::milliseconds(200));  // past any spinning after the last task
    const double before = self_cpu_ms();
    const auto t0 = Clock::now();
    std::this_thread::sleep_for(std::chrono::duration<double>(cfg.idle_seconds));
    const double ms = self_cpu_ms() - before, s = seconds_since(t0);
    out["idle_cpu"] = {{"seconds", s}, {"cpu_ms", ms}, {"ms_per_s", ms / s}};
  }
  worker.stop();
  const weft::tasks::WorkerStats st = worker.stats();
  out["worker"] = {{"succeeded", st.succeeded}, {"failed", st.failed}, {"redelivered", st.redelivered},
                   {"errors", st.errors}};
  if (st.failed != 0 || st.errors != 0) {
    std::fprintf(stderr, "bench_queue_weft: %s: the worker reports %llu failed tasks, %llu errors (%s)\n",
                 c.name.c_str(), static_cast<unsigned long long>(st.failed),
                 static_cast<unsigned long long>(st.errors), st.last_error.c_str());
    std::exit(1);
  }
  return out;
}

long parse_long(const char* flag, const char* v) {
  char* end = nullptr;
  const long n = std::strtol(v, &end, 10);
  if (end == v || *end != '\0' || n < 1) {
    std::fprintf(stderr, "bench_queue_weft: %s needs a positive integer, not '%s'\n", flag, v);
    std::exit(2);
  }
  return n;
}

Config parse(int argc, char** argv) {
  Config c;
  bool quick_seen = false;
  for (int i = 1; i < argc; ++i) quick_seen = quick_seen || std::strcmp(argv[i], "--quick") == 0;
  if (quick_seen) {  // small counts first, so that explicit flags still win
    c.quick = true;
    c.memory_tasks = 20'000;
    c.sqlite_tasks = 300;
    c.memory_roundtrips = 200;
    c.sqlite_roundtrips = 50;
    c.rounds = 1;
    c.idle_seconds = 0.5;
    c.fsyncs = 20;
  }
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    if (a == "--quick") continue;
    if (i + 1 >= argc) {
      std::fprintf(stderr, "bench_queue_weft: unknown flag or missing value: %s\n", a.c_str());
      std::exit(2);
    }
    const char* v = argv[++i];
    if (a == "--cases") {
      c.cases.clear();
      std::string s = v;
      for (std::size_t at = 0; at <= s.size();) {
        const std::size_t comma = std::min(s.find(',', at), s.size());
        const std::string name = s.substr(at, comma - at);
        if (name != "memory" && name != "sqlite") {
          std::fprintf(stderr, "bench_queue_weft: unknown case '%s' (memory, sqlite)\n", name.c_str());
          std::exit(2);
        }
        c.cases.push_back(name);
        at = comma + 1;
      }
    } else if (a == "--memory-tasks") {
      c.memory_tasks = parse_long(argv[i - 1], v);
    } else if (a == "--sqlite-tasks") {
      c.sqlite_tasks = parse_long(argv[i - 1], v);
    } else if (a == "--memory-roundtrips") {
      c.memory_roundtrips = parse_long(argv[i - 1], v);
    } else if (a == "--sqlite-roundtrips") {
      c.sqlite_roundtrips = parse_long(argv[i - 1], v);
    } else if (a == "--rounds") {
      c.rounds = static_cast<int>(parse_long(argv[i - 1], v));
    } else if (a == "--sqlite-rounds") {
      c.sqlite_rounds = static_cast<int>(parse_long(argv[i - 1], v));
    } else if (a == "--idle-seconds") {
      c.idle_seconds = std::atof(v);
    } else if (a == "--dir") {
      c.dir = v;
    } else {
      std::fprintf(stderr, "bench_queue_weft: unknown flag %s\n", a.c_str());
      std::exit(2);
    }
  }
  return c;
}

}  // namespace

int main(int argc, char** argv) {
  const Config cfg = parse(argc, argv);
  // A fresh directory for the SQLite file (q.db and its -wal and -shm files), removed at the end.
  std::string templ = (cfg.dir / "weft-bench-queue-XXXXXX").string();
  if (mkdtemp(templ.data()) == nullptr) {
    std::perror("bench_queue_weft: mkdtemp");
    return 1;
  }
  const std::filesystem::path tmp = templ;
  Json out = {{"concurrency", kConcurrency},
              {"cpus", std::thread::hardware_concurrency()},
              {"pool", "threads"},
              {"max_group_size", weft::tasks::kMaxGroupSize},
              {"quick", cfg.quick}};
  int status = 0;
  try {
    for (const std::string& name : cfg.cases) {
      const bool memory = name == "memory";
      const Case c{name,
                   memory ? std::string("memory://bench-queue") : "sqlite://" + (tmp / "q.db").string(),
                   memory ? cfg.memory_tasks : cfg.sqlite_tasks,
                   memory ? cfg.memory_roundtrips : cfg.sqlite_roundtrips,
                   memory ? cfg.rounds : cfg.sqlite_rounds,
                   memory};
      if (!memory) out["fsync"] = fsync_baseline(tmp, cfg.fsyncs);
      out[name] = run_case(c, cfg);
    }
  } catch (const std::exception& e) {
    std::fprintf(stderr, "bench_queue_weft: %s\n", e.what());
    status = 1;
  }
  std::error_code ec;
  std::filesystem::remove_all(tmp, ec);
  if (ec) std::fprintf(stderr, "bench_queue_weft: could not remove %s: %s\n", tmp.c_str(), ec.message().c_str());
  if (status != 0) return status;
  std::printf("%s\n", out.dump(2).c_str());
  return 0;
}
