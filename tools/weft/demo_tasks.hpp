// tools/weft/demo_tasks.hpp — the task-queue part of `weft demo`: an App on a fresh sqlite database (broker and
// result backend in one file, in a temporary directory), a thread-pool Worker in the demo's own process, a batch
// of prime-counting tasks with a progress display, a task that fails once and succeeds on its retry, and a
// periodic task sent by a Beat. No server is needed.
#pragma once

#include <cstddef>
#include <cstdint>

namespace weft::cli {

struct TaskQueueDemoOptions {
  std::uint64_t limit = 2'000'000;  ///< the batch counts the primes below this (2 to 2^32)
  std::size_t tasks = 100;          ///< the batch cuts the limit into about this many chunks, one task each
};

struct TaskQueueDemoResult {
  std::uint64_t limit = 0;
  std::uint64_t primes = 0;         ///< counted by the batch's tasks
  double seconds = 0;               ///< the batch: first send to last result
  double sequential_seconds = 0;    ///< the same count on the calling thread
  std::size_t tasks = 0;            ///< tasks in the batch
  std::size_t workers = 0;          ///< the worker's threads
  std::uint64_t ticks = 0;          ///< runs of the periodic task seen before the beat was stopped
  bool ok = false;                  ///< the count, the retry and the periodic task all checked out
  double speedup() const { return seconds > 0 ? sequential_seconds / seconds : 0; }
};

/// Runs the section with a Worker of `workers` threads (at least 1) in this process. Creates a temporary
/// directory (under std::filesystem::temp_directory_path(), normally /tmp) for the database and removes it
/// before returning or throwing. Prints its lines to stdout and, unless `quiet`, the batch's progress to stderr.
///
/// A check that does not pass (a wrong count, a task that fails or does not finish within its time limit, a
/// retry or a periodic task that does not happen) is printed and reported through `ok`. Throws
/// std::invalid_argument (options.tasks is 0, options.limit outside 2..2^32, workers is 0), std::system_error
/// (the temporary directory cannot be created), weft::Error (the database cannot be opened or written).
///
/// Hazards: one call at a time per process (the demo's task functions share state the call sets up). It starts
/// threads (the worker's, the beat's): in a program that forks worker processes from a fork server, the server
/// must exist before this is called.
TaskQueueDemoResult task_queue_demo(const TaskQueueDemoOptions& options, std::size_t workers, bool quiet);

}  // namespace weft::cli
