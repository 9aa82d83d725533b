// tools/weft/demo.hpp — `weft demo`: a real workload through each implemented part of weft, no server.
//
// It counts the primes below a limit in chunks on a ThreadPool (with a live progress display driven by
// futures completing), repeats the count on one thread for the speedup, chains futures with then() and
// when_all, streams results through a Channel, sorts and recurses on a work-stealing ForkJoinPool (with
// speedups over the sequential versions), fetches slow pages from a local HTTP server on one thread's event
// loop (one at a time, then many at once), runs a task queue on an embedded sqlite broker (a batch, a retry, a
// periodic task), records a trace of the pool run (Chrome/Perfetto JSON plus a per-task summary) and ends with
// a summary table. Every result is checked; a wrong count is a non-zero exit.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>

#include <CLI/CLI.hpp>

#include "command.hpp"

namespace weft::cli {

struct DemoOptions {
  std::uint64_t limit = 10'000'000;                  ///< count the primes below this (at most 2^32)
  std::uint64_t chunk = 100'000;                     ///< numbers per task
  std::size_t threads = 0;                           ///< pool workers; 0: every available core
  std::string trace_path = "weft-demo.trace.json";  ///< where the Chrome trace goes
  bool quiet = false;                                ///< no progress display
  std::size_t sort_size = 5'000'000;                 ///< keys sorted by the fork/join section
  int fib = 36;                                      ///< fib(n) computed by the fork/join section
  std::size_t pages = 60;                            ///< pages fetched by the async I/O section
  int page_latency_ms = 20;                          ///< how long each page takes to answer
  std::size_t concurrency = 20;                      ///< async I/O section: requests in flight at most
  std::uint64_t tasks_limit = 2'000'000;             ///< task-queue section: its batch counts the primes below this
  std::size_t tasks = 100;                           ///< task-queue section: tasks in the batch
};

/// Runs the demo: the report goes to stdout, progress to stderr. Returns 0 when every check passed, 1
/// otherwise. Throws what weft throws (for instance std::system_error when the trace file cannot be written).
int run_demo(const DemoOptions& options);

/// Adds the `demo` subcommand to `app`.
Command add_demo_command(CLI::App& app);

}  // namespace weft::cli
