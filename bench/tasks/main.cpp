// bench/tasks/main.cpp — the driver of the task-throughput benchmark: runs every contender of every
// workload in one process, in alternation, and prints a table (and, with --json FILE, the raw samples).
//
// Method: `warmup` unrecorded rounds, then `repetitions` recorded rounds; each round runs every contender
// once, in a fixed order (A B C D A B C D ...), so slow drifts of the machine spread over all of them.
// Between runs the driver sleeps `settle_ms` so the previous contender's idle threads are asleep. Reported
// per contender: median tasks/s with min and max, median process CPU time; ratios are weft's median over
// the competitor's, both from this run. A run whose task count (or future sum) is wrong aborts the program
// with exit status 1.
//
//   bench_tasks [--tasks N] [--threads N] [--reps N] [--warmup N] [--settle-ms N] [--idle-seconds S]
//               [--only SUBSTRING] [--json FILE]
#include <sys/resource.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <deque>
#include <fstream>
#include <iostream>
#include <mutex>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "common.hpp"

namespace bench {

// --- shared pieces declared in common.hpp ------------------------------------------------------------
namespace {
std::mutex counters_mutex;
std::deque<TaskCounter> counters;  // a deque never moves its elements; never shrinks (threads may be gone)

double now_seconds() {
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

rusage self_usage() {
  rusage u{};
  getrusage(RUSAGE_SELF, &u);
  return u;
}

double cpu_of(const rusage& u) {
  return static_cast<double>(u.ru_utime.tv_sec + u.ru_stime.tv_sec) +
         static_cast<double>(u.ru_utime.tv_usec + u.ru_stime.tv_usec) * 1e-6;
}
}  // namespace

TaskCounter* register_task_counter() {
  std::lock_guard lock(counters_mutex);
  return &counters.emplace_back();
}

std::uint64_t tasks_run_total() {
  std::lock_guard lock(counters_mutex);
  std::uint64_t sum = 0;
  for (const auto& c : counters) sum += c.count.load(std::memory_order_relaxed);
  return sum;
}

std::int64_t expected_result_sum(std::size_t tasks) {
  std::int64_t sum = 0;
  for (std::size_t i = 0; i < tasks; ++i) sum += task_result(i);
  return sum;
}

double process_cpu_seconds() { return cpu_of(self_usage()); }

Meter::Meter() {
  const rusage u = self_usage();
  cpu0_ = cpu_of(u);
  vcsw0_ = u.ru_nvcsw;
  ivcsw0_ = u.ru_nivcsw;
  wall0_ = now_seconds();
}

Sample Meter::stop() const {
  const double wall = now_seconds();
  const rusage u = self_usage();
  Sample s;
  s.wall_s = wall - wall0_;
  s.cpu_s = cpu_of(u) - cpu0_;
  s.vcsw = u.ru_nvcsw - vcsw0_;
  s.ivcsw = u.ru_nivcsw - ivcsw0_;
  return s;
}

namespace {

// --- statistics and output ---------------------------------------------------------------------------
struct Summary {
  double median_rate = 0, min_rate = 0, max_rate = 0, median_cpu = 0, median_wall = 0;
};

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  const std::size_t n = v.size();
  return n % 2 == 1 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

Summary summarize(const std::vector<Sample>& samples, std::size_t tasks) {
  std::vector<double> rates, cpus, walls;
  for (const auto& s : samples) {
    rates.push_back(static_cast<double>(tasks) / s.wall_s);
    cpus.push_back(s.cpu_s);
    walls.push_back(s.wall_s);
  }
  Summary r;
  r.median_rate = median(rates);
  r.min_rate = *std::min_element(rates.begin(), rates.end());
  r.max_rate = *std::max_element(rates.begin(), rates.end());
  r.median_cpu = median(cpus);
  r.median_wall = median(walls);
  return r;
}

std::string json_string(const std::string& s) {
  std::string out = "\"";
  for (const char ch : s) {
    switch (ch) {
      case '"': out += "\\\""; break;
      case '\\': out += "\\\\"; break;
      case '\n': out += "\\n"; break;
      case '\t': out += "\\t"; break;
      default:
        if (static_cast<unsigned char>(ch) < 0x20) {
          char buf[8];
          std::snprintf(buf, sizeof buf, "\\u%04x", ch);
          out += buf;
        } else {
          out += ch;
        }
    }
  }
  return out + "\"";
}

std::string num(double v) {
  char buf[64];
  std::snprintf(buf, sizeof buf, "%.9g", v);
  return buf;
}

std::string millions(double rate) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.2fM", rate / 1e6);
  return buf;
}

const char* workload_id(Workload w) { return w == Workload::detached ? "detached" : "futures"; }

const char* workload_title(Workload w) {
  return w == Workload::detached ? "detached tiny tasks (no result), then wait for all"
                                 : "tiny tasks with a future each; keep all, then get() them all";
}

struct Results {
  Workload workload;
  std::vector<const Contender*> contenders;
  std::vector<std::vector<Sample>> samples;  // per contender, recorded repetitions only
};

[[noreturn]] void fail(const std::string& what) {
  std::cerr << "bench_tasks: FAILED: " << what << "\n";
  std::exit(1);
}

Sample run_checked(const Contender& c, const Config& cfg) {
  const std::uint64_t before = tasks_run_total();
  Sample s = c.run(cfg);
  const std::uint64_t ran = tasks_run_total() - before;
  if (ran != cfg.tasks) {
    fail(c.name + " (" + workload_id(c.workload) + ") ran " + std::to_string(ran) + " tasks, expected " +
         std::to_string(cfg.tasks));
  }
  if (c.workload == Workload::futures && s.result_sum != expected_result_sum(cfg.tasks)) {
    fail(c.name + " (futures) got a result sum of " + std::to_string(s.result_sum) + ", expected " +
         std::to_string(expected_result_sum(cfg.tasks)));
  }
  if (s.wall_s <= 0) fail(c.name + " measured a non-positive time");
  return s;
}

Results run_workload(Workload w, const std::vector<Contender>& all, const Config& cfg) {
  Results r{w, {}, {}};
  for (const auto& c : all) {
    if (c.workload == w && (cfg.only.empty() || c.name.find(cfg.only) != std::string::npos)) {
      r.contenders.push_back(&c);
    }
  }
  r.samples.resize(r.contenders.size());
  const auto settle = std::chrono::milliseconds(cfg.settle_ms);
  for (int round = 0; round < cfg.warmup + cfg.repetitions; ++round) {
    const bool recorded = round >= cfg.warmup;
    std::cerr << workload_id(w) << (recorded ? " repetition " : " warm-up ")
              << (recorded ? round - cfg.warmup + 1 : round + 1) << ":";
    for (std::size_t i = 0; i < r.contenders.size(); ++i) {
      std::this_thread::sleep_for(settle);
      const Sample s = run_checked(*r.contenders[i], cfg);
      std::cerr << " " << r.contenders[i]->name << " " << millions(static_cast<double>(cfg.tasks) / s.wall_s)
                << "/s";
      if (recorded) r.samples[i].push_back(s);
    }
    std::cerr << "\n";
  }
  return r;
}

void print_table(const Results& r, const Config& cfg) {
  std::printf("\n== %s: %zu tasks, %zu workers, %d repetitions (median, min-max) ==\n", workload_title(r.workload),
              cfg.tasks, cfg.threads, cfg.repetitions);
  std::printf("%-34s %12s %21s %9s %11s %10s\n", "contender", "tasks/s", "min - max", "CPU s", "weft/this",
              "vol. csw");
  double headline = 0;
  for (std::size_t i = 0; i < r.contenders.size(); ++i) {
    if (r.contenders[i]->headline) headline = summarize(r.samples[i], cfg.tasks).median_rate;
  }
  for (std::size_t i = 0; i < r.contenders.size(); ++i) {
    const Summary s = summarize(r.samples[i], cfg.tasks);
    std::vector<double> csw;
    for (const auto& x : r.samples[i]) csw.push_back(static_cast<double>(x.vcsw));
    char ratio[32] = "-";
    if (headline > 0) std::snprintf(ratio, sizeof ratio, "%.2fx", headline / s.median_rate);
    const std::string range = millions(s.min_rate) + " - " + millions(s.max_rate);
    std::printf("%-34s %12s %21s %9.3f %11s %10.0f\n", r.contenders[i]->name.c_str(), millions(s.median_rate).c_str(),
                range.c_str(), s.median_cpu, ratio, median(csw));
  }
  for (const auto* c : r.contenders) std::printf("  %s: %s\n", c->name.c_str(), c->config.c_str());
}

std::string compiler() {
#if defined(__clang__)
  return std::string("clang++ ") + __clang_version__;
#elif defined(__GNUC__)
  return std::string("g++ ") + __VERSION__;
#else
  return "unknown";
#endif
}

void write_json(const std::string& path, const Config& cfg, const std::vector<Results>& all,
                const std::vector<IdleSample>& idle) {
  std::ostringstream o;
  o << "{\n  \"benchmark\": \"tasks\",\n";
  o << "  \"tasks\": " << cfg.tasks << ",\n  \"threads\": " << cfg.threads << ",\n";
  o << "  \"repetitions\": " << cfg.repetitions << ",\n  \"warmup\": " << cfg.warmup << ",\n";
  o << "  \"settle_ms\": " << cfg.settle_ms << ",\n";
  o << "  \"hardware_concurrency\": " << std::thread::hardware_concurrency() << ",\n";
  o << "  \"compiler\": " << json_string(compiler()) << ",\n";
  o << "  \"libraries\": {\"weft\": " << json_string(weft_version()) << ", \"tbb\": " << json_string(tbb_version())
    << ", \"asio\": " << json_string(asio_version()) << "},\n";
  o << "  \"workloads\": [\n";
  for (std::size_t w = 0; w < all.size(); ++w) {
    const Results& r = all[w];
    o << "    {\"id\": " << json_string(workload_id(r.workload)) << ", \"title\": "
      << json_string(workload_title(r.workload)) << ", \"contenders\": [\n";
    for (std::size_t i = 0; i < r.contenders.size(); ++i) {
      const Contender& c = *r.contenders[i];
      o << "      {\"name\": " << json_string(c.name) << ", \"config\": " << json_string(c.config)
        << ", \"headline\": " << (c.headline ? "true" : "false") << ", \"samples\": [";
      for (std::size_t k = 0; k < r.samples[i].size(); ++k) {
        const Sample& s = r.samples[i][k];
        o << (k ? ", " : "") << "{\"wall_s\": " << num(s.wall_s) << ", \"cpu_s\": " << num(s.cpu_s)
          << ", \"vcsw\": " << s.vcsw << ", \"ivcsw\": " << s.ivcsw << "}";
      }
      o << "]}" << (i + 1 < r.contenders.size() ? "," : "") << "\n";
    }
    o << "    ]}" << (w + 1 < all.size() ? "," : "") << "\n";
  }
  o << "  ],\n  \"idle\": [\n";
  for (std::size_t i = 0; i < idle.size(); ++i) {
    o << "    {\"name\": " << json_string(idle[i].name) << ", \"config\": " << json_string(idle[i].config)
      << ", \"seconds\": " << num(idle[i].seconds) << ", \"cpu_s\": " << num(idle[i].cpu_s)
      << ", \"vcsw\": " << idle[i].vcsw << "}" << (i + 1 < idle.size() ? "," : "") << "\n";
  }
  o << "  ]\n}\n";
  std::ofstream f(path);
  f << o.str();
  f.close();
  if (!f) fail("cannot write " + path);
}

std::size_t parse_size(const char* flag, const char* v) {
  char* end = nullptr;
  const unsigned long long n = std::strtoull(v, &end, 10);
  if (end == v || *end != '\0') fail(std::string(flag) + " expects a number, got '" + v + "'");
  return static_cast<std::size_t>(n);
}

Config parse(int argc, char** argv) {
  Config cfg;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    auto value = [&]() -> const char* {
      if (i + 1 >= argc) fail(a + " needs a value");
      return argv[++i];
    };
    if (a == "--tasks") cfg.tasks = parse_size("--tasks", value());
    else if (a == "--threads") cfg.threads = parse_size("--threads", value());
    else if (a == "--reps") cfg.repetitions = static_cast<int>(parse_size("--reps", value()));
    else if (a == "--warmup") cfg.warmup = static_cast<int>(parse_size("--warmup", value()));
    else if (a == "--settle-ms") cfg.settle_ms = static_cast<int>(parse_size("--settle-ms", value()));
    else if (a == "--idle-seconds") cfg.idle_seconds = std::atof(value());
    else if (a == "--only") cfg.only = value();
    else if (a == "--json") cfg.json_path = value();
    else if (a == "--help" || a == "-h") {
      std::puts(
          "bench_tasks [--tasks N] [--threads N] [--reps N] [--warmup N] [--settle-ms N] [--idle-seconds S]\n"
          "            [--only SUBSTRING] [--json FILE]");
      std::exit(0);
    } else {
      fail("unknown argument '" + a + "' (try --help)");
    }
  }
  if (cfg.tasks == 0 || cfg.threads == 0 || cfg.repetitions == 0) fail("--tasks, --threads, --reps must be > 0");
  if (cfg.tasks > 0x7fffffff) fail("--tasks must fit in an int");
  return cfg;
}

}  // namespace
}  // namespace bench

int main(int argc, char** argv) {
  using namespace bench;
  const Config cfg = parse(argc, argv);

  std::vector<Contender> contenders;
  add_weft_contenders(cfg, contenders);
  add_tbb_contenders(cfg, contenders);
  add_asio_contenders(cfg, contenders);
  add_textbook_contenders(cfg, contenders);

  std::printf("task throughput: %zu tasks per run, %zu workers, %d warm-up + %d repetitions, %u hardware threads\n",
              cfg.tasks, cfg.threads, cfg.warmup, cfg.repetitions, std::thread::hardware_concurrency());
  std::printf("%s; %s; %s; %s\n", compiler().c_str(), weft_version().c_str(), tbb_version().c_str(),
              asio_version().c_str());

  std::vector<Results> results;
  for (const Workload w : {Workload::detached, Workload::futures}) {
    results.push_back(run_workload(w, contenders, cfg));
    print_table(results.back(), cfg);
  }

  std::vector<IdleSample> idle;
  if (cfg.idle_seconds > 0) {
    idle = measure_weft_idle(cfg);
    std::printf("\n== idle CPU: %zu-worker weft::ThreadPool, no work, main thread asleep ==\n", cfg.threads);
    for (const auto& s : idle) {
      std::printf("%-34s %6.2f s window  CPU %.4f s (%.3f%% of one core)  %lld voluntary context switches\n",
                  s.name.c_str(), s.seconds, s.cpu_s, 100.0 * s.cpu_s / s.seconds, static_cast<long long>(s.vcsw));
    }
  }
  std::fflush(stdout);
  if (!cfg.json_path.empty()) write_json(cfg.json_path, cfg, results, idle);
  return 0;
}
