// The task queue's subcommands (tasks_cmd.hpp).
#include "tasks_cmd.hpp"

#include <dlfcn.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <iostream>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

#include <fmt/core.h>

#include "progress.hpp"
#include "weft/core/errors.hpp"
#include "weft/process/process.hpp"
#include "weft/tasks/app.hpp"
#include "weft/tasks/beat.hpp"
#include "weft/tasks/worker.hpp"

namespace weft::cli {
namespace {

using weft::tasks::App;
using weft::tasks::AppOptions;
using weft::tasks::Json;

struct Connection {
  std::string broker;
  std::string backend;
};

std::string env_or(const char* name, std::string fallback) {
  const char* v = std::getenv(name);
  return v != nullptr && *v != '\0' ? std::string(v) : std::move(fallback);
}

void add_connection(CLI::App* sub, Connection& c) {
  sub->add_option("--broker,-b", c.broker,
                  "Broker URL: sqlite:///path/q.db or memory://name (default: $WEFT_BROKER, else "
                  "sqlite://weft-tasks.db)");
  sub->add_option("--backend", c.backend, "Result backend URL (default: $WEFT_BACKEND, else the broker's URL)");
}

AppOptions app_options(const Connection& c) {
  AppOptions o;
  o.broker = c.broker.empty() ? env_or("WEFT_BROKER", "sqlite://weft-tasks.db") : c.broker;
  o.backend = c.backend.empty() ? env_or("WEFT_BACKEND", o.broker) : c.backend;
  return o;
}

std::chrono::milliseconds seconds(double s) {
  return std::chrono::milliseconds(static_cast<std::int64_t>(std::llround(s * 1000.0)));
}

// A command-line argument as JSON: valid JSON text as such (5, 2.5, true, null, "x", [1,2], {"a":1}), anything
// else as a string.
Json parse_arg(const std::string& text) {
  Json j = Json::parse(text, nullptr, /*allow_exceptions=*/false);
  return j.is_discarded() ? Json(text) : j;
}

// The error of a failed task, for the terminal.
std::string describe(const weft::RemoteError& e) { return e.what(); }

// ---- worker -----------------------------------------------------------------------------------------------

// The entries of a schedule file (weft/tasks/beat.hpp: beat_entries_from_json).
std::vector<weft::tasks::BeatEntry> read_schedule(const std::string& path) {
  std::ifstream in(path);
  if (!in) throw std::runtime_error("cannot read the schedule '" + path + "'");
  Json j = Json::parse(in, nullptr, false);
  if (j.is_discarded()) throw std::runtime_error("the schedule '" + path + "' is not JSON");
  try {
    return weft::tasks::beat_entries_from_json(j);
  } catch (const std::invalid_argument& e) {
    throw std::runtime_error(path + ": " + e.what());
  }
}

struct WorkerCli {
  Connection conn;
  std::string pool = "threads";
  std::vector<std::size_t> autoscale;
  bool beat = false;
  std::string schedule;
  std::vector<std::string> load;
  std::size_t concurrency = 0;
  std::size_t prefetch = 0;
  std::vector<std::string> queues{"celery"};
  std::string hostname;
  double lease = 30;
  double heartbeat = 2;
  bool quiet = false;
};

void load_module(App& app, const std::string& path) {
  // RTLD_NOW: a module whose symbols do not resolve fails here, with dlerror's reason, not at its first call.
  void* handle = ::dlopen(path.c_str(), RTLD_NOW | RTLD_LOCAL);
  if (handle == nullptr) throw std::runtime_error("cannot load task module '" + path + "': " + ::dlerror());
  using Register = void (*)(App&);
  auto* fn = reinterpret_cast<Register>(::dlsym(handle, "weft_register_tasks"));
  if (fn == nullptr) {
    throw std::runtime_error("'" + path + "' is not a weft task module (no WEFT_TASK_MODULE entry point)");
  }
  fn(app);  // the module stays loaded until the process exits: its functions are the registered tasks
}

int run_worker_cli(const WorkerCli& w) {
  // Worker processes are forked from the fork server: start it while this process has one thread.
  if (w.pool == "processes") weft::process::start_fork_server();
  App app(app_options(w.conn));
  for (const auto& path : w.load) load_module(app, path);
  if (app.registered().empty()) {
    fmt::print(stderr, "weft worker: warning: no tasks are registered (load a task module with --load)\n");
  }
  weft::tasks::WorkerOptions o;
  o.concurrency = w.concurrency;
  o.prefetch = w.prefetch;
  o.queues = w.queues;
  o.hostname = w.hostname;
  o.lease = seconds(w.lease);
  o.heartbeat = seconds(w.heartbeat);
  if (!w.autoscale.empty()) {
    if (w.autoscale.size() != 2) throw std::runtime_error("--autoscale takes max,min (two numbers)");
    o.autoscale = weft::tasks::Autoscale{.max = w.autoscale[0], .min = w.autoscale[1]};
  }
  if (w.pool == "processes") {
    if (w.load.empty()) throw std::runtime_error("--pool processes needs the tasks as modules (--load)");
    o.pool = weft::tasks::Pool::processes;
    o.modules = w.load;
  }
  if (w.pool == "async") o.pool = weft::tasks::Pool::async_;
  weft::tasks::RunWorkerOptions run;
  if (w.quiet) run.log = nullptr;
  if (w.beat != !w.schedule.empty()) throw std::runtime_error("-B and --schedule go together");
  if (w.beat) run.beat = weft::tasks::BeatOptions{.entries = read_schedule(w.schedule)};
  return weft::tasks::run_worker(app, std::move(o), run);
}

// ---- call -------------------------------------------------------------------------------------------------

struct CallCli {
  Connection conn;
  std::string task;
  std::vector<std::string> args;
  std::string kwargs;
  std::optional<double> countdown;
  std::string eta;
  std::optional<double> expires;
  std::string queue;
  std::optional<int> priority;
  std::string id;
  bool wait = false;
  std::optional<double> timeout;
  std::string map;
  bool quiet = false;
  std::string serializer = "json";
};

weft::tasks::CallOptions call_options(const CallCli& c) {
  weft::tasks::CallOptions o;
  if (c.countdown) o.countdown = seconds(*c.countdown);
  if (!c.eta.empty()) o.eta = weft::tasks::parse_time(c.eta);
  if (c.expires) o.expires_in = seconds(*c.expires);
  if (!c.queue.empty()) o.queue = c.queue;
  if (c.priority) o.priority = *c.priority;
  o.serializer = c.serializer == "msgpack" ? weft::tasks::Serializer::msgpack : weft::tasks::Serializer::json;
  return o;
}

std::optional<std::chrono::nanoseconds> timeout_of(const std::optional<double>& s) {
  if (!s) return std::nullopt;
  return std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::duration<double>(*s));
}

int run_map(App& app, const CallCli& c) {
  std::ifstream file;
  std::istream* in = &std::cin;
  if (c.map != "-") {
    file.open(c.map);
    if (!file) throw std::runtime_error("cannot read '" + c.map + "'");
    in = &file;
  }
  // Each line is one call: a JSON array is its arguments, any other value its one argument.
  std::vector<Json> calls;
  std::string line;
  constexpr std::size_t kMaxCalls = 1'000'000;  // held in memory with their results: a bound, with a clear error
  for (std::size_t n = 1; std::getline(*in, line); ++n) {
    if (calls.size() == kMaxCalls) {
      throw std::runtime_error("--map takes at most " + std::to_string(kMaxCalls) + " calls; split the input");
    }
    if (line.find_first_not_of(" \t\r") == std::string::npos) continue;
    Json j = Json::parse(line, nullptr, false);
    if (j.is_discarded()) throw std::runtime_error(c.map + ":" + std::to_string(n) + ": not JSON: " + line.substr(0, 80));
    calls.push_back(j.is_array() ? std::move(j) : Json::array({std::move(j)}));
  }
  const auto options = call_options(c);
  std::vector<weft::tasks::AsyncResult> results;
  results.reserve(calls.size());
  // Sent in batches (sqlite://: one durable commit per batch rather than per call).
  for (std::size_t at = 0; at < calls.size(); at += weft::tasks::kMaxPublishBatch) {
    std::vector<weft::tasks::TaskMessage> batch;
    for (std::size_t i = at; i < std::min(calls.size(), at + weft::tasks::kMaxPublishBatch); ++i) {
      batch.push_back(app.make_message(c.task, std::move(calls[i]), Json::object(), options));
    }
    for (auto& r : app.send_many(std::move(batch))) results.push_back(std::move(r));
  }
  Progress progress(stderr, Progress::style_for(stderr, c.quiet), c.task, results.size());
  std::size_t failed = 0;
  const auto timeout = timeout_of(c.timeout);
  for (const auto& r : results) {
    try {
      fmt::print("{}\n", r.get_json(timeout).dump());
    } catch (const weft::RemoteError& e) {
      ++failed;
      fmt::print("{{\"error\": {}}}\n", Json(describe(e)).dump());
    } catch (const weft::Cancelled& e) {
      ++failed;
      fmt::print("{{\"error\": {}}}\n", Json(e.what()).dump());
    } catch (const weft::Timeout& e) {
      ++failed;
      fmt::print("{{\"error\": {}}}\n", Json(e.what()).dump());
    }
    std::fflush(stdout);
    progress.advance();
  }
  progress.finish();
  if (failed > 0) fmt::print(stderr, "weft call: {} of {} calls failed\n", failed, results.size());
  return failed > 0 ? 1 : 0;
}

int run_call(const CallCli& c) {
  App app(app_options(c.conn));
  if (!c.map.empty()) {
    if (!c.args.empty()) throw std::runtime_error("--map takes the arguments from its input, not the command line");
    return run_map(app, c);
  }
  Json args = Json::array();
  for (const auto& a : c.args) args.push_back(parse_arg(a));
  Json kwargs = Json::object();
  if (!c.kwargs.empty()) {
    kwargs = Json::parse(c.kwargs, nullptr, false);
    if (kwargs.is_discarded() || !kwargs.is_object()) throw std::runtime_error("--kwargs needs a JSON object");
  }
  auto options = call_options(c);
  if (!c.id.empty()) options.task_id = c.id;
  auto r = app.send_task(c.task, std::move(args), std::move(kwargs), options);
  if (!c.wait) {
    fmt::print("{}\n", r.id());
    return 0;
  }
  try {
    fmt::print("{}\n", r.get_json(timeout_of(c.timeout)).dump());
    return 0;
  } catch (const weft::RemoteError& e) {
    fmt::print(stderr, "weft call: task {} failed: {}\n", r.id(), describe(e));
    if (!e.traceback().empty()) fmt::print(stderr, "{}\n", e.traceback());
    return 1;
  }
}

// ---- result -----------------------------------------------------------------------------------------------

struct ResultCli {
  Connection conn;
  std::string id;
  bool no_wait = false;
  std::optional<double> timeout;
};

int run_result(const ResultCli& c) {
  App app(app_options(c.conn));
  auto r = app.result(c.id);
  if (c.no_wait) {
    auto meta = r.meta();
    if (!meta) {
      fmt::print("PENDING\n");
      return 0;
    }
    fmt::print("{}\n", weft::tasks::encode_meta(*meta));
    return 0;
  }
  try {
    fmt::print("{}\n", r.get_json(timeout_of(c.timeout)).dump());
    return 0;
  } catch (const weft::RemoteError& e) {
    fmt::print(stderr, "weft result: task {} failed: {}\n", c.id, describe(e));
    return 1;
  }
}

// ---- inspect ----------------------------------------------------------------------------------------------

struct InspectCli {
  Connection conn;
  std::string what = "workers";
  bool json = false;
};

int run_inspect(const InspectCli& c) {
  App app(app_options(c.conn));
  const auto workers = app.workers();
  if (c.json) {
    Json out = Json::object();
    for (const auto& w : workers) {
      if (c.what == "workers" || c.what == "stats") {
        out[w.hostname] = w.raw;
      } else if (c.what == "ping") {
        out[w.hostname] = {{"ok", "pong"}};
      } else if (c.what == "active") {
        out[w.hostname] = w.active;
      } else {
        out[w.hostname] = w.registered;
      }
    }
    fmt::print("{}\n", out.dump(2));
    return workers.empty() ? 1 : 0;
  }
  if (workers.empty()) {
    fmt::print(stderr, "weft inspect: no worker answered (no heartbeat in the backend {})\n", app.options().backend);
    return 1;
  }
  const auto now = std::chrono::system_clock::now();
  for (const auto& w : workers) {
    const double age = std::chrono::duration<double>(now - w.timestamp).count();
    if (c.what == "ping") {
      fmt::print("{}: pong (heartbeat {:.1f} s ago)\n", w.hostname, age);
    } else if (c.what == "workers") {
      fmt::print("{}: pid {}, {} CPUs, pool {} x{}, queues {}, {} active, {} reserved (prefetch {}), load {:.2f} "
                 "{:.2f} {:.2f}, heartbeat {:.1f} s ago\n",
                 w.hostname, w.pid, w.cpus, w.pool, w.concurrency, Json(w.queues).dump(), w.active.size(), w.reserved,
                 w.prefetch, w.loadavg[0], w.loadavg[1], w.loadavg[2], age);
    } else if (c.what == "active") {
      fmt::print("{}: {} active\n", w.hostname, w.active.size());
      for (const auto& a : w.active) {
        fmt::print("  {} {} ({:.1f} s)\n", a.value("id", ""), a.value("name", ""), a.value("runtime", 0.0));
      }
    } else if (c.what == "registered") {
      fmt::print("{}:\n", w.hostname);
      for (const auto& n : w.registered) fmt::print("  {}\n", n);
    } else {  // stats
      fmt::print("{}: {}\n", w.hostname, w.stats.dump());
    }
  }
  return 0;
}

// ---- beat -------------------------------------------------------------------------------------------------

struct BeatCli {
  Connection conn;
  std::string schedule;
  bool quiet = false;
};

int run_beat_cli(const BeatCli& c) {
  App app(app_options(c.conn));
  weft::tasks::BeatOptions o{.entries = read_schedule(c.schedule)};
  return weft::tasks::run_beat(app, std::move(o), c.quiet ? nullptr : stderr);
}

// ---- purge, revoke ----------------------------------------------------------------------------------------

struct PurgeCli {
  Connection conn;
  std::vector<std::string> queues{"celery"};
  bool force = false;
};

int run_purge(const PurgeCli& c) {
  App app(app_options(c.conn));
  if (!c.force) {
    if (::isatty(0) == 0) throw std::runtime_error("refusing to purge without --force when not asked on a terminal");
    std::size_t waiting = 0;
    for (const auto& q : c.queues) waiting += app.broker().size(q);
    fmt::print(stderr, "Purge the waiting messages of {} ({} messages, reserved ones included in the count)? [y/N] ",
               Json(c.queues).dump(), waiting);
    std::string answer;
    std::getline(std::cin, answer);
    if (answer != "y" && answer != "Y" && answer != "yes") {
      fmt::print(stderr, "weft purge: nothing purged\n");
      return 1;
    }
  }
  std::size_t total = 0;
  for (const auto& q : c.queues) total += app.broker().purge(q);
  fmt::print("purged {} messages from {}\n", total, Json(c.queues).dump());
  return 0;
}

struct RevokeCli {
  Connection conn;
  std::vector<std::string> ids;
  bool terminate = false;
};

int run_revoke(const RevokeCli& c) {
  App app(app_options(c.conn));
  for (const auto& id : c.ids) {
    app.revoke(id, {.terminate = c.terminate});
    fmt::print("revoked {}{}\n", id, c.terminate ? " (terminate)" : "");
  }
  return 0;
}

}  // namespace

Command add_worker_command(CLI::App& app) {
  auto o = std::make_shared<WorkerCli>();
  CLI::App* sub = app.add_subcommand("worker", "Run tasks from the broker until SIGTERM/SIGINT (warm shutdown; a "
                                               "second signal exits at once)");
  add_connection(sub, o->conn);
  sub->add_option("--load,-l", o->load, "A task module (shared library with WEFT_TASK_MODULE) to load; repeatable");
  sub->add_option("--pool,-P", o->pool,
                  "threads, processes (crash isolation; a hard time limit kills), or async (async tasks on one event "
                  "loop, for I/O-bound work)")
      ->capture_default_str()
      ->check(CLI::IsMember({"threads", "processes", "async"}));
  sub->add_option("--concurrency,-c", o->concurrency, "Tasks at once (0: the CPUs this process may use; async: 100)")
      ->capture_default_str()
      ->check(CLI::Range(std::size_t{0}, std::size_t{4096}));
  sub->add_option("--autoscale", o->autoscale,
                  "max,min: grow to max threads under load, shrink to min when idle (instead of --concurrency)")
      ->delimiter(',')
      ->expected(2);
  sub->add_option("--prefetch", o->prefetch,
                  "Most tasks held waiting to run or running (0: 4 x concurrency; at least the concurrency)")
      ->capture_default_str()
      ->check(CLI::Range(std::size_t{0}, weft::tasks::WorkerOptions::kMaxPrefetch));
  sub->add_option("--queues,-Q", o->queues, "Queues to consume, in order of preference")->delimiter(',')->capture_default_str();
  sub->add_option("--hostname,-n", o->hostname, "This worker's name (default weft@<host>)");
  sub->add_option("--lease", o->lease, "Seconds a reserved task stays this worker's without renewal")
      ->capture_default_str()
      ->check(CLI::Range(0.01, 86400.0));
  sub->add_option("--heartbeat", o->heartbeat, "Seconds between heartbeats")
      ->capture_default_str()
      ->check(CLI::Range(0.01, 3600.0));
  sub->add_flag("--quiet,-q", o->quiet, "No banner");
  sub->add_flag("-B,--beat", o->beat, "Also send periodic tasks (with --schedule)");
  sub->add_option("--schedule", o->schedule, "The periodic tasks' JSON schedule file (see weft beat --help)");
  return {sub, [o] { return run_worker_cli(*o); }};
}

Command add_beat_command(CLI::App& app) {
  auto o = std::make_shared<BeatCli>();
  CLI::App* sub = app.add_subcommand(
      "beat", "Send periodic tasks until SIGTERM/SIGINT; several beats may run: each period is sent once");
  add_connection(sub, o->conn);
  sub->add_option("--schedule,-s", o->schedule,
                  "JSON file: {\"entries\": [{\"name\": \"n\", \"task\": \"t\", \"every\": 5 | \"crontab\": "
                  "\"*/5 * * * *\", \"args\": [], \"kwargs\": {}, \"queue\", \"priority\", \"expires\", "
                  "\"zone\": \"utc\"|\"local\"}]}")
      ->required();
  sub->add_flag("--quiet,-q", o->quiet, "No banner");
  return {sub, [o] { return run_beat_cli(*o); }};
}

Command add_call_command(CLI::App& app) {
  auto o = std::make_shared<CallCli>();
  CLI::App* sub = app.add_subcommand("call", "Send a task call; print its id (or, with --wait, its result)");
  add_connection(sub, o->conn);
  sub->add_option("task", o->task, "The task's registered name")->required();
  sub->add_option("args", o->args, "Arguments: JSON values (5, \"x\", [1,2]); other text is a string");
  sub->add_option("--kwargs", o->kwargs, "Keyword arguments as a JSON object");
  sub->add_option("--countdown", o->countdown, "Run no sooner than this many seconds from now")->check(CLI::Range(0.0, 1e9));
  sub->add_option("--eta", o->eta, "Run no sooner than this time (ISO 8601, UTC)");
  sub->add_option("--expires", o->expires, "Revoke the call if it has not started within this many seconds")
      ->check(CLI::Range(0.001, 1e9));
  sub->add_option("--queue,-Q", o->queue, "The queue (default: celery)");
  sub->add_option("--priority", o->priority, "0-9, higher first")->check(CLI::Range(0, 9));
  sub->add_option("--id", o->id, "The task id to use (default: a new UUID)");
  sub->add_option("--serializer", o->serializer, "How the arguments travel: json or msgpack")
      ->capture_default_str()
      ->check(CLI::IsMember({"json", "msgpack"}));
  sub->add_flag("--wait,-w", o->wait, "Wait for the result and print it (exit 1 if the task failed)");
  sub->add_option("--timeout", o->timeout, "Seconds to wait for a result (default: no limit)")->check(CLI::Range(0.0, 1e9));
  sub->add_option("--map", o->map,
                  "Call the task once per line of this file ('-': standard input; a JSON array per line is the "
                  "arguments, another JSON value the one argument), print each result in order, with progress");
  sub->add_flag("--quiet,-q", o->quiet, "No progress display (--map)");
  return {sub, [o] { return run_call(*o); }};
}

Command add_result_command(CLI::App& app) {
  auto o = std::make_shared<ResultCli>();
  CLI::App* sub = app.add_subcommand("result", "Wait for a task's result and print it (exit 1 if it failed)");
  add_connection(sub, o->conn);
  sub->add_option("id", o->id, "The task id")->required();
  sub->add_flag("--no-wait", o->no_wait, "Print the stored state and result as they are now");
  sub->add_option("--timeout", o->timeout, "Seconds to wait (default: no limit)")->check(CLI::Range(0.0, 1e9));
  return {sub, [o] { return run_result(*o); }};
}

Command add_inspect_command(CLI::App& app) {
  auto o = std::make_shared<InspectCli>();
  CLI::App* sub = app.add_subcommand("inspect", "Show the live workers from their heartbeats (exit 1 if none)");
  add_connection(sub, o->conn);
  sub->add_option("what", o->what, "workers, ping, active, registered or stats")
      ->capture_default_str()
      ->check(CLI::IsMember({"workers", "ping", "active", "registered", "stats"}));
  sub->add_flag("--json", o->json, "Print JSON");
  return {sub, [o] { return run_inspect(*o); }};
}

Command add_purge_command(CLI::App& app) {
  auto o = std::make_shared<PurgeCli>();
  CLI::App* sub = app.add_subcommand("purge", "Remove the waiting (not reserved) messages of queues");
  add_connection(sub, o->conn);
  sub->add_option("--queues,-Q", o->queues, "Queues to purge")->delimiter(',')->capture_default_str();
  sub->add_flag("--force,-f", o->force, "Do not ask");
  return {sub, [o] { return run_purge(*o); }};
}

Command add_revoke_command(CLI::App& app) {
  auto o = std::make_shared<RevokeCli>();
  CLI::App* sub = app.add_subcommand("revoke", "Revoke tasks: workers will not run them");
  add_connection(sub, o->conn);
  sub->add_option("ids", o->ids, "Task ids")->required();
  sub->add_flag("--terminate", o->terminate, "Also end them if they are running");
  return {sub, [o] { return run_revoke(*o); }};
}

}  // namespace weft::cli
