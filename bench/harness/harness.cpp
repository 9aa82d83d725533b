// bench/harness/harness.cpp — see harness.hpp.
#include "harness.hpp"

#include <sys/resource.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <iostream>
#include <sstream>
#include <thread>

namespace bench {

namespace {

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

[[noreturn]] void fail(const std::string& what) {
  std::cerr << "bench: FAILED: " << what << "\n";
  std::exit(1);
}

double process_cpu_seconds() { return cpu_of(self_usage()); }

Meter::Meter() {
  const rusage u = self_usage();
  cpu0_ = cpu_of(u);
  vcsw0_ = u.ru_nvcsw;
  wall0_ = now_seconds();
}

Sample Meter::stop() const {
  const double wall = now_seconds();
  const rusage u = self_usage();
  Sample s;
  s.wall_s = wall - wall0_;
  s.cpu_s = cpu_of(u) - cpu0_;
  s.vcsw = u.ru_nvcsw - vcsw0_;
  return s;
}

void add_contender(std::vector<Case>& cases, const std::string& case_id, Contender c) {
  for (auto& k : cases) {
    if (k.id == case_id) {
      k.contenders.push_back(std::move(c));
      return;
    }
  }
  fail("no case '" + case_id + "' for contender " + c.name);
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

// --- command line ---------------------------------------------------------------------------------------
Cli::Cli(int argc, char** argv, std::string program, std::string summary)
    : program_(std::move(program)), summary_(std::move(summary)) {
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    if (a == "--help" || a == "-h") {
      want_help_ = true;
      continue;
    }
    if (a.rfind("--", 0) != 0) fail("unexpected argument '" + a + "' (try --help)");
    if (i + 1 >= argc) fail(a + " needs a value");
    values_[a] = argv[++i];
    used_[a] = false;
  }
}

const std::string* Cli::take(const std::string& flag) {
  const auto it = values_.find(flag);
  if (it == values_.end()) return nullptr;
  used_[flag] = true;
  return &it->second;
}

std::size_t Cli::size(const std::string& flag, std::size_t fallback, const std::string& help) {
  help_.push_back("  " + flag + " N  " + help + " (default " + std::to_string(fallback) + ")");
  const std::string* v = take(flag);
  if (v == nullptr) return fallback;
  char* end = nullptr;
  const unsigned long long n = std::strtoull(v->c_str(), &end, 10);
  if (end == v->c_str() || *end != '\0') fail(flag + " expects a whole number, got '" + *v + "'");
  return static_cast<std::size_t>(n);
}

double Cli::real(const std::string& flag, double fallback, const std::string& help) {
  std::ostringstream d;
  d << fallback;
  help_.push_back("  " + flag + " X  " + help + " (default " + d.str() + ")");
  const std::string* v = take(flag);
  if (v == nullptr) return fallback;
  char* end = nullptr;
  const double x = std::strtod(v->c_str(), &end);
  if (end == v->c_str() || *end != '\0') fail(flag + " expects a number, got '" + *v + "'");
  return x;
}

Settings Cli::settings(const Settings& defaults) {
  Settings s = defaults;
  s.threads = size("--threads", defaults.threads, "threads per pool, arena and team");
  s.reps = static_cast<int>(size("--reps", static_cast<std::size_t>(defaults.reps), "recorded repetitions"));
  s.warmup = static_cast<int>(size("--warmup", static_cast<std::size_t>(defaults.warmup), "unrecorded rounds"));
  s.settle_ms = static_cast<int>(
      size("--settle-ms", static_cast<std::size_t>(defaults.settle_ms), "pause before every run, ms"));
  help_.push_back("  --json FILE  write the samples as JSON");
  if (const std::string* v = take("--json")) s.json_path = *v;
  help_.push_back("  --only TEXT  run only the contenders whose name contains TEXT");
  if (const std::string* v = take("--only")) s.only = *v;
  if (s.threads == 0 || s.reps == 0) fail("--threads and --reps must be > 0");
  return s;
}

void Cli::finish() {
  if (want_help_) {
    std::printf("%s — %s\n", program_.c_str(), summary_.c_str());
    for (const auto& h : help_) std::printf("%s\n", h.c_str());
    std::exit(0);
  }
  for (const auto& [flag, used] : used_) {
    if (!used) fail("unknown argument '" + flag + "' (try --help)");
  }
}

// --- running --------------------------------------------------------------------------------------------
namespace {

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  const std::size_t n = v.size();
  return n % 2 == 1 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
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

struct Recorded {
  const Contender* contender;
  std::vector<Sample> samples;
};

Sample run_once(const Contender& c, const Settings& s, int batch) {
  std::this_thread::sleep_for(std::chrono::milliseconds(s.settle_ms));
  if (c.measure) return c.measure();
  if (c.prepare) c.prepare();
  Meter meter;
  for (int i = 0; i < batch; ++i) c.run();
  Sample sample = meter.stop();
  sample.wall_s /= batch;
  sample.cpu_s /= batch;
  if (c.check) {
    const std::string problem = c.check();
    if (!problem.empty()) fail(c.name + ": wrong result: " + problem);
  }
  if (sample.wall_s <= 0) fail(c.name + " measured a non-positive time");
  return sample;
}

std::vector<Recorded> run_case(const Case& k, const Settings& s) {
  std::vector<Recorded> rec;
  for (const auto& c : k.contenders) {
    if (s.only.empty() || c.name.find(s.only) != std::string::npos) rec.push_back({&c, {}});
  }
  const std::size_t n = rec.size();
  for (int round = 0; round < s.warmup + s.reps; ++round) {
    const bool recorded = round >= s.warmup;
    std::cerr << k.id << (recorded ? " repetition " : " warm-up ")
              << (recorded ? round - s.warmup + 1 : round + 1) << ":";
    for (std::size_t j = 0; j < n; ++j) {
      Recorded& r = rec[(j + static_cast<std::size_t>(round)) % n];
      const Sample sample = run_once(*r.contender, s, std::max(1, k.batch));
      if (k.kind == CaseKind::idle) {
        std::fprintf(stderr, " %s %.3f%%", r.contender->name.c_str(), 100 * sample.cpu_s / sample.wall_s);
      } else {
        std::fprintf(stderr, " %s %.1f ms", r.contender->name.c_str(), sample.wall_s * 1e3);
      }
      if (recorded) r.samples.push_back(sample);
    }
    std::cerr << std::endl;
  }
  return rec;
}

double median_of(const std::vector<Sample>& v, double Sample::*field) {
  std::vector<double> x;
  for (const auto& s : v) x.push_back(s.*field);
  return median(x);
}

void print_time_case(const Case& k, const std::vector<Recorded>& rec, const Settings& s) {
  const std::string batch = k.batch > 1 ? ", each the mean of " + std::to_string(k.batch) + " runs" : "";
  std::printf("\n== %s: %s; %zu threads, median of %d (min - max)%s ==\n", k.id.c_str(), k.title.c_str(),
              s.threads, s.reps, batch.c_str());
  const bool rate = k.work > 0;
  std::printf("%-34s %11s %21s %14s %9s %10s\n", "contender", "median ms", "min - max ms",
              rate ? k.rate_unit.c_str() : "", "CPU s", "weft/this");
  double headline = 0;
  for (const auto& r : rec) {
    if (r.contender->headline) headline = median_of(r.samples, &Sample::wall_s);
  }
  for (const auto& r : rec) {
    std::vector<double> walls;
    for (const auto& x : r.samples) walls.push_back(x.wall_s);
    const double med = median(walls);
    char range[64], rate_text[32] = "", ratio[32] = "-";
    std::snprintf(range, sizeof range, "%.1f - %.1f", *std::min_element(walls.begin(), walls.end()) * 1e3,
                  *std::max_element(walls.begin(), walls.end()) * 1e3);
    if (rate) std::snprintf(rate_text, sizeof rate_text, "%.2f", k.work / med);
    if (headline > 0) std::snprintf(ratio, sizeof ratio, "%.2fx", med / headline);
    std::printf("%-34s %11.2f %21s %14s %9.3f %10s\n", r.contender->name.c_str(), med * 1e3, range, rate_text,
                median_of(r.samples, &Sample::cpu_s), ratio);
  }
  for (const auto& r : rec) std::printf("  %s: %s\n", r.contender->name.c_str(), r.contender->config.c_str());
}

void print_idle_case(const Case& k, const std::vector<Recorded>& rec, const Settings& s) {
  std::printf("\n== %s: %s; median of %d ==\n", k.id.c_str(), k.title.c_str(), s.reps);
  std::printf("%-34s %10s %10s %14s %10s\n", "contender", "window s", "CPU ms", "% of one core", "vol. csw");
  for (const auto& r : rec) {
    std::vector<double> frac, csw;
    for (const auto& x : r.samples) {
      frac.push_back(x.cpu_s / x.wall_s);
      csw.push_back(static_cast<double>(x.vcsw));
    }
    std::printf("%-34s %10.2f %10.2f %13.3f%% %10.0f\n", r.contender->name.c_str(),
                median_of(r.samples, &Sample::wall_s), median_of(r.samples, &Sample::cpu_s) * 1e3,
                100 * median(frac), median(csw));
  }
  for (const auto& r : rec) std::printf("  %s: %s\n", r.contender->name.c_str(), r.contender->config.c_str());
}

void write_json(const std::string& benchmark, const Settings& s, const std::vector<Case>& cases,
                const std::vector<std::vector<Recorded>>& all,
                const std::vector<std::pair<std::string, std::string>>& parameters,
                const std::vector<std::pair<std::string, std::string>>& libraries) {
  std::ostringstream o;
  o << "{\n  \"benchmark\": " << json_string(benchmark) << ",\n";
  o << "  \"threads\": " << s.threads << ",\n  \"repetitions\": " << s.reps << ",\n  \"warmup\": " << s.warmup
    << ",\n  \"settle_ms\": " << s.settle_ms << ",\n";
  o << "  \"hardware_concurrency\": " << std::thread::hardware_concurrency() << ",\n";
  o << "  \"compiler\": " << json_string(compiler()) << ",\n";
  o << "  \"libraries\": {";
  for (std::size_t i = 0; i < libraries.size(); ++i) {
    o << (i ? ", " : "") << json_string(libraries[i].first) << ": " << json_string(libraries[i].second);
  }
  o << "},\n  \"parameters\": {";
  for (std::size_t i = 0; i < parameters.size(); ++i) {
    o << (i ? ", " : "") << json_string(parameters[i].first) << ": " << json_string(parameters[i].second);
  }
  o << "},\n  \"cases\": [\n";
  for (std::size_t k = 0; k < cases.size(); ++k) {
    const Case& c = cases[k];
    o << "    {\"id\": " << json_string(c.id) << ", \"title\": " << json_string(c.title) << ", \"kind\": "
      << (c.kind == CaseKind::idle ? "\"idle\"" : "\"time\"") << ", \"work\": " << num(c.work)
      << ", \"rate_unit\": " << json_string(c.rate_unit) << ", \"batch\": " << std::max(1, c.batch)
      << ", \"contenders\": [\n";
    const auto& rec = all[k];
    for (std::size_t i = 0; i < rec.size(); ++i) {
      const Contender& x = *rec[i].contender;
      o << "      {\"name\": " << json_string(x.name) << ", \"config\": " << json_string(x.config)
        << ", \"headline\": " << (x.headline ? "true" : "false") << ", \"samples\": [";
      for (std::size_t j = 0; j < rec[i].samples.size(); ++j) {
        const Sample& m = rec[i].samples[j];
        o << (j ? ", " : "") << "{\"wall_s\": " << num(m.wall_s) << ", \"cpu_s\": " << num(m.cpu_s)
          << ", \"vcsw\": " << m.vcsw << "}";
      }
      o << "]}" << (i + 1 < rec.size() ? "," : "") << "\n";
    }
    o << "    ]}" << (k + 1 < cases.size() ? "," : "") << "\n";
  }
  o << "  ]\n}\n";
  std::ofstream f(s.json_path);
  f << o.str();
  f.close();
  if (!f) fail("cannot write " + s.json_path);
}

}  // namespace

void run_cases(const std::string& benchmark, const Settings& settings, std::vector<Case>& cases,
               const std::vector<std::pair<std::string, std::string>>& parameters,
               const std::vector<std::pair<std::string, std::string>>& libraries) {
  std::printf("%s: %zu threads per library, %d warm-up + %d repetitions, %u hardware threads\n", benchmark.c_str(),
              settings.threads, settings.warmup, settings.reps, std::thread::hardware_concurrency());
  std::string line = compiler();
  for (const auto& [id, version] : libraries) line += "; " + version;
  std::printf("%s\n", line.c_str());
  line.clear();
  for (const auto& [name, value] : parameters) line += (line.empty() ? "" : ", ") + name + " = " + value;
  if (!line.empty()) std::printf("parameters: %s\n", line.c_str());
  std::fflush(stdout);

  std::vector<std::vector<Recorded>> all;
  for (const auto& k : cases) {
    all.push_back(run_case(k, settings));
    if (k.kind == CaseKind::idle) {
      print_idle_case(k, all.back(), settings);
    } else {
      print_time_case(k, all.back(), settings);
    }
    std::fflush(stdout);
  }
  if (!settings.json_path.empty()) write_json(benchmark, settings, cases, all, parameters, libraries);
}

std::string weft_version() { return "weft (this tree)"; }

}  // namespace bench
