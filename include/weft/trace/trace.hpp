// weft/trace/trace.hpp — per-task spans recorded by executors, exported as a Chrome trace or a summary table.
//
// An executor that sees enabled() reads weft::detail::ticks() when a task is submitted, when it starts and
// when it ends, and hands the three stamps to record() as one Span. Each thread appends to a buffer of its
// own without taking a lock; snapshot(), summarize() and write_chrome_json() read every buffer while
// recording goes on. Tracing costs one relaxed atomic load per task when it is off.
//
//   weft::trace::enable();
//   ... run work on weft executors ...
//   weft::trace::write_chrome_json("run.trace.json");   // open in https://ui.perfetto.dev
//   std::cout << weft::trace::format_summary(weft::trace::summarize());
//
// All state is process-wide: there is one tracer per process.
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <iosfwd>
#include <string>
#include <string_view>
#include <vector>

namespace weft::detail {

/// The switch behind weft::trace::enabled(). Written by enable()/disable() only; use those.
inline std::atomic<bool> trace_on{false};

}  // namespace weft::detail

namespace weft::trace {

/// One task's life: when it was submitted, when it ran, on which executor and worker.
/// Times are weft::detail::ticks() values; convert with weft::detail::ns_per_tick().
/// Span::worker of a task that ran on the thread that submitted it (e.g. Overflow::caller_runs).
inline constexpr std::uint32_t kCallerWorker = 0xffffffffu;

struct Span {
  const char* name = nullptr;   ///< Task name; must outlive the trace (a string literal, or from intern()).
  std::uint64_t id = 0;         ///< Task id within the executor (any unique-ish number; 0 if unknown).
  std::uint64_t submit = 0;     ///< ticks() when the task was submitted.
  std::uint64_t start = 0;      ///< ticks() when the task started running.
  std::uint64_t end = 0;        ///< ticks() when it finished.
  std::uint32_t executor = 0;   ///< From register_executor(); 0 = unnamed.
  std::uint32_t worker = 0;     ///< Worker index inside the executor; kCallerWorker: run by the submitting thread.
  bool failed = false;          ///< The task threw.
};

/// Limits that enable() applies.
struct Config {
  /// Most spans one thread's buffer holds. Further record() calls on that thread are dropped and counted
  /// in dropped() until clear(). Memory is taken 4096 spans (about 224 KiB) at a time, as spans arrive.
  std::size_t max_spans_per_thread = std::size_t{1} << 20;
};

/// True while tracing is on. One relaxed atomic load: executors call it on every task.
/// Thread-safe; never throws. A thread may see a change made by enable()/disable() on another thread a
/// little late, so a few spans around the switch may be recorded or skipped.
inline bool enabled() noexcept { return weft::detail::trace_on.load(std::memory_order_relaxed); }

/// Turns tracing on (calling it again while on is harmless) and sets the limits to `c`, replacing those of
/// an earlier call. Thread-safe; never throws. Spans already recorded are kept.
/// Hazard: lowering max_spans_per_thread does not discard spans a thread already holds; it only stops the
/// thread from adding more until clear().
void enable(Config c = {}) noexcept;

/// Turns tracing off. Spans recorded so far stay until clear(), so they can still be exported.
/// Thread-safe; never throws.
void disable() noexcept;

/// Appends `s` to the calling thread's buffer; does nothing while tracing is off. When the thread already
/// holds max_spans_per_thread spans, or memory for a new chunk cannot be had, the span is dropped and
/// counted in dropped(). Lock-free and allocation-free except: a thread's first span, and its first span
/// after a clear(), take the registry lock (and wait while a snapshot() copies); every 4096th span
/// allocates a chunk; a limit raised by enable() after the thread's first span may take the lock once
/// to grow the thread's chunk table. Thread-safe; never throws.
/// Hazard: `s.name` is stored as a pointer, not copied: pass a string literal or a pointer from intern().
void record(const Span& s) noexcept;

/// Spans dropped since the last clear() because a thread's buffer was full (or out of memory).
/// Thread-safe; never throws.
std::uint64_t dropped() noexcept;

/// Registers an executor name and returns its id (1, 2, ... in order of registration; a new id on every
/// call, even for a name seen before). The id goes in Span::executor; write_chrome_json() shows each id as
/// a "process" named `name`. Names stay registered for the life of the process (clear() keeps them).
/// Thread-safe (takes a lock). Throws std::bad_alloc.
std::uint32_t register_executor(std::string_view name);

/// Returns a pointer to a NUL-terminated copy of `s` that stays valid for the life of the process, the same
/// pointer for equal strings. Use it for Span::name when the name is built at run time. Thread-safe (a
/// shared lock for names seen before, an exclusive one to add a name). Throws std::bad_alloc.
/// Hazard: interned strings are never freed; intern task *kinds*, not per-task unique strings.
const char* intern(std::string_view s);

/// Forgets every recorded span and resets dropped() to 0. Threads may keep recording meanwhile: a span
/// recorded concurrently with clear() may or may not survive it, and spans recorded after clear() returns
/// are kept. Memory of threads that have exited is freed; live threads keep theirs for reuse.
/// Thread-safe (takes the registry lock). Throws std::system_error only if the lock cannot be taken.
void clear();

/// Copies every span recorded since the last clear(), including those of threads that have exited.
/// Spans of one thread come in the order that thread recorded them; threads follow one another in the
/// order they first recorded. Safe to call while other threads record (their newest spans may be missed).
/// Thread-safe (takes the registry lock, so a thread's first record() waits for it). Throws std::bad_alloc.
std::vector<Span> snapshot();

/// Figures for all tasks of one name. Run time is end - start, queue wait is start - submit.
/// Percentiles are nearest-rank on the sorted values.
struct TaskStats {
  std::string name;
  std::uint64_t count = 0;     ///< Spans with this name.
  std::uint64_t failed = 0;    ///< Of which the task threw.
  double total_ms = 0;         ///< Sum of run times, milliseconds.
  double mean_us = 0;          ///< Mean run time, microseconds.
  double p50_us = 0;           ///< Median run time, microseconds.
  double p99_us = 0;           ///< 99th percentile run time, microseconds.
  double wait_p50_us = 0;      ///< Median queue wait, microseconds.
  double wait_p99_us = 0;      ///< 99th percentile queue wait, microseconds.
};

/// Groups snapshot() by name (compared as strings; a null name counts as "(unnamed)") and returns one row
/// per name, by total run time descending (ties by name). A span whose end precedes its start (or start
/// precedes submit) counts as zero time. The first call in a process may take ~10 ms (tick calibration).
/// Thread-safe as snapshot(). Throws std::bad_alloc.
std::vector<TaskStats> summarize();

/// Formats `rows` as a plain-text table: a header row, then one aligned row per entry, '\n' after each.
/// Control characters in names are shown as '?'; alignment counts UTF-8 characters, so names with
/// double-width characters (CJK) push their row to the right. Thread-safe (pure). Throws std::bad_alloc.
std::string format_summary(const std::vector<TaskStats>& rows);

/// Writes every span as Chrome trace-event JSON (the format the Perfetto UI and chrome://tracing open):
/// {"traceEvents":[...],"displayTimeUnit":"ms"}. Each span is a complete event ("ph":"X") with ts and dur
/// in microseconds from the earliest start in the trace, pid = executor id, tid = worker, and args
/// {id, queue_wait_us, failed}; metadata events ("ph":"M") name each executor (process) and each worker
/// ("worker N"). Names are JSON-escaped; bytes that are not valid UTF-8 become U+FFFD.
/// Thread-safe as snapshot(). Throws std::bad_alloc; a failing stream does not throw: check `out`.
void write_chrome_json(std::ostream& out);

/// Writes the same JSON to the file at `path`, replacing it.
/// Throws std::system_error (with `path` in the message) when the file cannot be opened, and
/// std::runtime_error (with `path`) when writing it fails.
void write_chrome_json(const std::string& path);

}  // namespace weft::trace
