// run_worker and worker_main: a worker as a process's main job, stopped by signals.
//
// Signals: a handler (async-signal-safe: an atomic counter, a write to an eventfd, and on the second signal a
// write to stderr and _exit) wakes the thread in run_worker, which then stops the worker warm. A handler
// rather than sigwait because threads started before run_worker (the App's database watch) do not block the
// signals, and any of them may receive one.
#include <signal.h>
#include <poll.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <charconv>
#include <cstring>
#include <stdexcept>
#include <string>
#include <system_error>
#include <optional>

#include "weft/tasks/beat.hpp"

#include "weft/tasks/worker.hpp"

namespace weft::tasks {
namespace {

std::atomic<int> g_event_fd{-1};
std::atomic<int> g_signals{0};
std::atomic<bool> g_running{false};

extern "C" void on_stop_signal(int signo) {
  const int saved = errno;
  if (g_signals.fetch_add(1) >= 1) {
    static const char msg[] = "weft worker: cold shutdown (second signal): exiting now\n";
    [[maybe_unused]] ssize_t n = ::write(2, msg, sizeof msg - 1);
    ::_exit(128 + signo);
  }
  const std::uint64_t one = 1;
  [[maybe_unused]] ssize_t n = ::write(g_event_fd.load(), &one, sizeof one);
  errno = saved;
}

std::string join(const std::vector<std::string>& v) {
  std::string out;
  for (const auto& s : v) out += (out.empty() ? "" : ",") + s;
  return out;
}

// Installs the stop handlers for SIGINT and SIGTERM (restoring the previous ones when destroyed); wait()
// returns after the first signal. One at a time per process.
class StopSignals {
 public:
  StopSignals() {
    if (g_running.exchange(true)) {
      throw std::logic_error("weft: run_worker or run_beat is running already in this process");
    }
    // One eventfd for the life of the process: a handler running on another thread as a run ends may still
    // write to it, so it is never closed (and its number never reused for something else).
    static const int fd = ::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    if (fd < 0) {
      g_running = false;
      throw std::system_error(errno, std::generic_category(), "weft: eventfd");
    }
    fd_ = fd;
    std::uint64_t stale = 0;
    while (::read(fd_, &stale, sizeof stale) > 0) {
    }  // a signal counted after the previous run ended
    g_event_fd = fd_;
    g_signals = 0;
    struct sigaction sa {};
    sa.sa_handler = on_stop_signal;
    sigemptyset(&sa.sa_mask);
    ::sigaction(SIGINT, &sa, &old_int_);
    ::sigaction(SIGTERM, &sa, &old_term_);
  }
  ~StopSignals() {
    ::sigaction(SIGINT, &old_int_, nullptr);
    ::sigaction(SIGTERM, &old_term_, nullptr);
    g_running = false;
  }
  StopSignals(const StopSignals&) = delete;
  StopSignals& operator=(const StopSignals&) = delete;
  void wait() {
    std::uint64_t value = 0;
    for (;;) {
      if (::read(fd_, &value, sizeof value) == sizeof value) return;
      if (errno != EINTR && errno != EAGAIN) {
        throw std::system_error(errno, std::generic_category(), "weft: wait for a stop signal");
      }
      pollfd p{fd_, POLLIN, 0};
      ::poll(&p, 1, -1);  // EINTR: read again
    }
  }

 private:
  int fd_ = -1;
  struct sigaction old_int_ {}, old_term_{};
};

}  // namespace

int run_worker(App& app, WorkerOptions options, const RunWorkerOptions& run) {
  StopSignals signals;
  const std::vector<std::string> queues = options.queues;
  const Pool pool = options.pool;
  Worker worker(app, std::move(options));
  worker.start();
  if (run.log != nullptr) {
    std::fprintf(run.log, "weft worker %s ready: pid %d, pool %s, concurrency %zu, queues %s, broker %s\n  tasks: %s\n",
                 worker.hostname().c_str(), static_cast<int>(::getpid()), to_string(pool), worker.concurrency(),
                 join(queues).c_str(),
                 (run.broker_url.empty() ? app.options().broker : run.broker_url).c_str(),
                 join(app.registered()).c_str());
    std::fflush(run.log);
  }
  std::optional<Beat> beat;
  if (run.beat) {
    beat.emplace(app, *run.beat);
    beat->start();
    if (run.log != nullptr) {
      std::fprintf(run.log, "  beat %s: %zu periodic tasks\n", beat->hostname().c_str(), run.beat->entries.size());
    }
  }
  signals.wait();
  if (beat) beat->stop();
  if (run.log != nullptr) {
    std::fprintf(run.log, "weft worker %s: warm shutdown: finishing the running tasks (signal again to exit now)\n",
                 worker.hostname().c_str());
    std::fflush(run.log);
  }
  worker.stop();
  if (run.log != nullptr) {
    const WorkerStats st = worker.stats();
    std::fprintf(run.log,
                 "weft worker %s stopped: received %llu, succeeded %llu, failed %llu, retried %llu, revoked %llu\n",
                 worker.hostname().c_str(), static_cast<unsigned long long>(st.received),
                 static_cast<unsigned long long>(st.succeeded), static_cast<unsigned long long>(st.failed),
                 static_cast<unsigned long long>(st.retried), static_cast<unsigned long long>(st.revoked));
    if (st.errors > 0) std::fprintf(run.log, "  %llu errors, the last: %s\n", static_cast<unsigned long long>(st.errors),
                                    st.last_error.c_str());
    std::fflush(run.log);
  }
  return 0;
}

int run_beat(App& app, BeatOptions options, std::FILE* log) {
  StopSignals signals;
  Beat beat(app, std::move(options));
  beat.start();
  if (log != nullptr) {
    std::fprintf(log, "weft beat %s ready: pid %d, broker %s\n", beat.hostname().c_str(), static_cast<int>(::getpid()),
                 app.options().broker.c_str());
    for (const auto& e : beat.entries()) std::fprintf(log, "  %s\n", e.name.c_str());
    std::fflush(log);
  }
  signals.wait();
  beat.stop();
  if (log != nullptr) {
    const BeatStats st = beat.stats();
    std::fprintf(log, "weft beat %s stopped: sent %llu, skipped %llu (sent by another beat), errors %llu%s%s\n",
                 beat.hostname().c_str(), static_cast<unsigned long long>(st.fired),
                 static_cast<unsigned long long>(st.skipped), static_cast<unsigned long long>(st.errors),
                 st.last_error.empty() ? "" : "; the last: ", st.last_error.c_str());
    std::fflush(log);
  }
  return 0;
}

int worker_main(App& app, int argc, char** argv) {
  WorkerOptions o;
  RunWorkerOptions run;
  const std::string prog = argc > 0 ? argv[0] : "worker";
  auto usage = [&](std::FILE* out) {
    std::fprintf(out,
                 "usage: %s [-P threads|async] [-c N] [--prefetch N] [-Q queue,...] [-n hostname] [--lease S] [--heartbeat S] [-q]\n"
                 "  -P, --pool P          threads (default), or async: async tasks on one event loop\n"
                 "  -c, --concurrency N   tasks at once (default: the CPUs this process may use; async: 100)\n"
                 "  --prefetch N          most tasks held waiting to run or running (default 4 x concurrency)\n"
                 "  -Q, --queues a,b      queues to consume (default: celery)\n"
                 "  -n, --hostname NAME   this worker's name (default: weft@<host>)\n"
                 "  --lease S             seconds a task stays reserved without renewal (default 30)\n"
                 "  --heartbeat S         seconds between heartbeats (default 2)\n"
                 "  -q, --quiet           no banner\n"
                 "SIGTERM or SIGINT: warm shutdown; a second one: exit at once.\n",
                 prog.c_str());
  };
  auto bad = [&](const std::string& why) {
    std::fprintf(stderr, "%s: %s\n", prog.c_str(), why.c_str());
    usage(stderr);
    return 2;
  };
  auto number = [](const std::string& text, double& out) {
    const char* b = text.data();
    const auto [end, ec] = std::from_chars(b, b + text.size(), out);
    return ec == std::errc() && end == b + text.size() && out > 0;
  };
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    auto value = [&](std::string& out) {
      if (i + 1 >= argc) return false;
      out = argv[++i];
      return true;
    };
    std::string v;
    if (a == "-h" || a == "--help") {
      usage(stdout);
      return 0;
    } else if (a == "-q" || a == "--quiet") {
      run.log = nullptr;
    } else if (a == "-P" || a == "--pool") {
      if (!value(v) || (v != "threads" && v != "async")) return bad("--pool needs threads or async");
      o.pool = v == "async" ? Pool::async_ : Pool::threads;
    } else if (a == "-c" || a == "--concurrency") {
      double n = 0;
      if (!value(v) || !number(v, n) || n != static_cast<double>(static_cast<std::size_t>(n)) || n > 4096) {
        return bad("--concurrency needs a whole number from 1 to 4096");
      }
      o.concurrency = static_cast<std::size_t>(n);
    } else if (a == "--prefetch") {
      double n = 0;
      if (!value(v) || !number(v, n) || n != static_cast<double>(static_cast<std::size_t>(n)) ||
          n > static_cast<double>(WorkerOptions::kMaxPrefetch)) {
        return bad("--prefetch needs a whole number from 1 to " + std::to_string(WorkerOptions::kMaxPrefetch));
      }
      o.prefetch = static_cast<std::size_t>(n);
    } else if (a == "-Q" || a == "--queues") {
      if (!value(v) || v.empty()) return bad("--queues needs a comma-separated list");
      o.queues.clear();
      std::size_t start = 0;
      for (std::size_t comma; (comma = v.find(',', start)) != std::string::npos; start = comma + 1) {
        o.queues.push_back(v.substr(start, comma - start));
      }
      o.queues.push_back(v.substr(start));
      for (const auto& q : o.queues) {
        if (q.empty()) return bad("--queues '" + v + "' has an empty queue name");
      }
    } else if (a == "-n" || a == "--hostname") {
      if (!value(v) || v.empty()) return bad("--hostname needs a name");
      o.hostname = v;
    } else if (a == "--lease" || a == "--heartbeat") {
      double s = 0;
      if (!value(v) || !number(v, s) || s > 86400) return bad(a + " needs seconds above 0 (at most a day)");
      const auto ms = std::chrono::milliseconds(static_cast<std::int64_t>(s * 1000));
      if (ms.count() <= 0) return bad(a + " needs at least a millisecond");
      (a == "--lease" ? o.lease : o.heartbeat) = ms;
    } else {
      return bad("unknown argument '" + a + "'");
    }
  }
  return run_worker(app, std::move(o), run);
}

}  // namespace weft::tasks
