// bench/idle/main.cpp — bench_idle: the CPU time an idle pool uses after a burst of work; weft::ForkJoinPool
// against a oneTBB task_arena and an OpenMP team, each in a child process of its own (see common.hpp), in
// alternation (method: bench/harness/harness.hpp).
//
//   bench_idle [--seconds 5] [--threads 2] [--reps N] [--warmup N] [--only TEXT] [--json FILE]
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <thread>
#include <vector>

#include "common.hpp"

namespace bench {

long fib_serial(int n) { return n < 2 ? n : fib_serial(n - 1) + fib_serial(n - 2); }

Sample measure_in_child(const IdleParams& p, const std::function<void()>& setup_and_burst) {
  int fds[2];
  if (pipe(fds) != 0) fail("pipe() failed");
  std::fflush(nullptr);
  const pid_t pid = fork();
  if (pid < 0) fail("fork() failed");
  if (pid == 0) {
    close(fds[0]);
    setup_and_burst();
    Meter meter;
    std::this_thread::sleep_for(std::chrono::duration<double>(p.seconds));  // the thing measured: no work
    const Sample s = meter.stop();
    const bool ok = write(fds[1], &s, sizeof s) == static_cast<ssize_t>(sizeof s);
    _exit(ok ? 0 : 3);  // leaves the runtime's threads as they are: only the window is measured
  }
  close(fds[1]);
  Sample s;
  const ssize_t got = read(fds[0], &s, sizeof s);
  close(fds[0]);
  int status = 0;
  waitpid(pid, &status, 0);
  if (got != static_cast<ssize_t>(sizeof s) || !WIFEXITED(status) || WEXITSTATUS(status) != 0) {
    fail("the measuring child process failed (status " + std::to_string(status) + ")");
  }
  return s;
}

}  // namespace bench

int main(int argc, char** argv) {
  using namespace bench;
  Cli cli(argc, argv, "bench_idle", "CPU used by an idle pool after a burst: weft, oneTBB, OpenMP");
  IdleParams p;
  p.seconds = cli.real("--seconds", 5.0, "the idle window");
  Settings defaults;
  defaults.reps = 3;
  defaults.warmup = 0;
  defaults.settle_ms = 0;
  const Settings s = cli.settings(defaults);
  cli.finish();
  if (!(p.seconds > 0)) fail("--seconds must be > 0");
  p.threads = s.threads;

  char window[32];
  std::snprintf(window, sizeof window, "%.1f", p.seconds);
  std::vector<Case> cases = {
      {"idle", "CPU used over " + std::string(window) + " s with no work, right after a burst", 0, "", CaseKind::idle},
  };
  add_weft(cases, p);
  add_tbb(cases, p);
  add_omp(cases, p);
  run_cases("idle", s, cases, {{"seconds", window}},
            {{"weft", weft_version()}, {"tbb", tbb_version()}, {"openmp", omp_version()}});
  return 0;
}
