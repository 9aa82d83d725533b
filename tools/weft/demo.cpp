// tools/weft/demo.cpp — `weft demo`.
//
// The sections, in order:
//   1. pool:       the limit split into chunks, one ThreadPool task each (trace name "count_primes"); the
//                  results are gathered with as_completed, which also drives the progress display.
//   2. sequential: the same chunks on the calling thread, for the speedup; both counts must agree with
//                  each other and with the published value when the limit is a known one.
//   3. futures:    π(10^k) for k = 3..6 as tasks, each chained with then() to a check, gathered by when_all.
//   4. channel:    producer tasks send per-block counts through a bounded Channel to a consumer; when_all
//                  over the producers closes the channel, which ends the consumer's loop.
//   5. fork/join sort:      weft::parallel_sort on a ForkJoinPool against std::sort (same result, speedup).
//   6. fork/join recursion: fib(n) with a join per call (above a cutoff) against plain recursion.
//   7. async I/O:  one event loop serves slow pages over HTTP and fetches them, one at a time and then many at
//                  once under a Semaphore (the I/O-bound case: the waits overlap on one thread).
//   8. processes:  the chunks of section 1 as tasks of a ProcessPool (worker processes from the fork server,
//                  base primes computed once per worker by its initializer): same count, speedup against the
//                  ThreadPool and one thread.
//   9. task queue: an App on a fresh sqlite database (broker and backend, removed afterwards) and a Worker of
//                  as many threads as the pool in this process: a batch of prime-counting tasks sent with
//                  delay() (its count checked against one thread's), a task that succeeds on its retry, and a
//                  periodic task sent by a Beat (demo_tasks.cpp).
//  10. trace:      the spans of section 1 written as Chrome trace JSON, and the per-task summary.
//  11. summary:    wall time and speedup of sections 1, 2, 5, 6, 7, 8 and 9, and the thread pool's counters.
#include "demo.hpp"
#include "demo_async.hpp"

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <exception>
#include <filesystem>
#include <memory>
#include <string>
#include <string_view>
#include <thread>
#include <utility>
#include <vector>

#include <fmt/core.h>

#include "weft/core/future.hpp"
#include "weft/core/when.hpp"
#include "weft/process/process.hpp"
#include "weft/sync/channel.hpp"
#include "weft/thread/thread_pool.hpp"
#include "weft/trace/trace.hpp"

#include "demo_fork_join.hpp"
#include "demo_process.hpp"
#include "demo_tasks.hpp"
#include "primes.hpp"
#include "progress.hpp"
#include "table.hpp"

namespace weft::cli {
namespace {

using Clock = std::chrono::steady_clock;

double seconds_since(Clock::time_point start) {
  return std::chrono::duration<double>(Clock::now() - start).count();
}

/// The demo's workload: the numbers below `limit`, cut into chunks of `chunk`.
struct Workload {
  std::uint64_t limit;
  std::uint64_t chunk;
  std::vector<std::uint32_t> base;  // primes up to √limit, shared read-only by every task

  std::size_t chunks() const { return static_cast<std::size_t>((limit + chunk - 1) / chunk); }
  std::uint64_t chunk_begin(std::size_t i) const { return i * chunk; }
  std::uint64_t chunk_end(std::size_t i) const { return std::min(limit, (i + 1) * chunk); }
};

struct RunResult {
  std::uint64_t primes = 0;
  double seconds = 0;
  std::size_t tasks = 0;
};

// Section 1. Every chunk is a task; as_completed hands back the futures in the order they finish, so the
// progress display moves exactly when work completes — no timer, no polling.
RunResult count_on_pool(ThreadPool& pool, const Workload& w, Progress::Style style) {
  RunResult r;
  r.tasks = w.chunks();
  std::fflush(stdout);  // the report so far, before progress appears on stderr
  const auto start = Clock::now();
  Progress progress(stderr, style, "counting", r.tasks);
  std::vector<Future<std::uint64_t>> futures;
  futures.reserve(r.tasks);
  for (std::size_t i = 0; i < r.tasks; ++i) {
    futures.push_back(pool.submit(TaskOptions{.name = "count_primes"},
                                  [base = &w.base, lo = w.chunk_begin(i), hi = w.chunk_end(i)] {
                                    return count_primes(lo, hi, *base);
                                  }));
  }
  for (auto& done : as_completed(std::move(futures))) {
    r.primes += done.future.get();
    progress.advance();
  }
  r.seconds = seconds_since(start);
  progress.finish();
  return r;
}

// Section 2: the same chunks, one after another on this thread.
RunResult count_sequentially(const Workload& w, Progress::Style style) {
  RunResult r;
  r.tasks = w.chunks();
  std::fflush(stdout);
  const auto start = Clock::now();
  Progress progress(stderr, style, "sequential", r.tasks);
  for (std::size_t i = 0; i < r.tasks; ++i) {
    r.primes += count_primes(w.chunk_begin(i), w.chunk_end(i), w.base);
    progress.advance();
  }
  r.seconds = seconds_since(start);
  progress.finish();
  return r;
}

struct PiCheck {
  std::uint64_t x = 0;
  std::uint64_t counted = 0;
  std::uint64_t expected = 0;
  bool ok() const { return counted == expected; }
};

// Section 3: π(10^k) for k = 3..6. Each count is a pool task; then() attaches the check to its future (it
// runs on the worker that finished the count), and when_all turns the four futures into one.
bool futures_section(ThreadPool& pool) {
  constexpr std::uint64_t kLargest = 1'000'000;
  auto base = std::make_shared<const std::vector<std::uint32_t>>(base_primes(kLargest));
  std::vector<Future<PiCheck>> checks;
  for (std::uint64_t x = 1'000; x <= kLargest; x *= 10) {
    checks.push_back(pool.submit(TaskOptions{.name = "pi"}, [base, x] { return count_primes(0, x, *base); })
                         .then([x](std::uint64_t counted) {
                           return PiCheck{x, counted, known_prime_count(x).value_or(0)};
                         }));
  }
  bool ok = true;
  for (auto& f : when_all(std::move(checks)).get()) {
    const PiCheck c = f.get();
    ok = ok && c.ok();
    fmt::print("  pi({:>7}) = {:>5}  {}\n", c.x, c.counted,
               c.ok() ? "ok" : fmt::format("WRONG, expected {}", c.expected));
  }
  return ok;
}

// Section 4: a producer/consumer pipeline. Producer tasks on the pool count the primes of one block each
// and send (block, count) into a small Channel; the consumer — this thread, not a pool task, so blocked
// producers can never starve it — receives until the channel is closed. The channel is closed by a
// continuation of when_all over the producers: once the last one has sent, the stream ends.
bool channel_section(ThreadPool& pool) {
  constexpr std::uint64_t kLimit = 1'000'000;
  constexpr std::uint64_t kBlock = 100'000;
  constexpr std::size_t kCapacity = 4;  // fewer slots than producers: senders feel back-pressure
  struct BlockCount {
    std::uint64_t block;
    std::uint64_t primes;
  };
  auto base = std::make_shared<const std::vector<std::uint32_t>>(base_primes(kLimit));
  Channel<BlockCount> results(kCapacity);

  std::vector<Future<void>> producers;
  for (std::uint64_t lo = 0; lo < kLimit; lo += kBlock) {
    producers.push_back(pool.submit(TaskOptions{.name = "produce"}, [base, lo, &results] {
      results.send(BlockCount{lo / kBlock, count_primes(lo, lo + kBlock, *base)});
    }));
  }
  const std::size_t n = producers.size();
  Future<void> closed = when_all(std::move(producers)).then([&results](std::vector<Future<void>> done) {
    results.close();  // close first, so the consumer below always finishes, even if a producer failed
    for (auto& f : done) f.get();  // then pass a producer's exception on
  });

  std::uint64_t total = 0;
  std::string arrival;
  for (const BlockCount& r : results) {  // recv() until closed and drained
    total += r.primes;
    arrival += fmt::format("{}{}", arrival.empty() ? "" : " ", r.block);
  }
  closed.get();
  const bool ok = total == known_prime_count(kLimit).value_or(0);
  fmt::print("  {} producers -> Channel(capacity {}) -> 1 consumer\n", n, kCapacity);
  fmt::print("  blocks in arrival order: {}\n", arrival);
  fmt::print("  primes below {}: {}  {}\n", kLimit, total, ok ? "ok" : "WRONG");
  return ok;
}

// Section 5.
void trace_section(const std::string& path) {
  const auto spans = trace::snapshot().size();
  trace::write_chrome_json(path);
  std::error_code ec;
  const auto shown = std::filesystem::absolute(path, ec);
  fmt::print("  {} spans written to {}\n", spans, ec ? path : shown.string());
  fmt::print("  open it in the Perfetto UI (https://ui.perfetto.dev) or chrome://tracing\n\n");
  const std::string summary = trace::format_summary(trace::summarize());
  for (std::size_t at = 0; at < summary.size();) {  // indented like the rest of the report
    const std::size_t eol = std::min(summary.find('\n', at), summary.size());
    fmt::print("  {}\n", std::string_view(summary).substr(at, eol - at));
    at = eol + 1;
  }
}

std::string rate(std::size_t tasks, double seconds) {
  return seconds > 0 ? fmt::format("{:.0f}", static_cast<double>(tasks) / seconds) : "-";
}

}  // namespace

int run_demo(const DemoOptions& options) {
  const TaskQueueDemoOptions task_options{.limit = options.tasks_limit, .tasks = options.tasks};
  constexpr std::uint64_t kMaxTasks = 1'000'000;  // one future each: keep the bookkeeping bounded
  constexpr int kFibCutoff = 20;                   // below it fib recurses plainly: a join costs ~10 calls
  if (options.chunk == 0 || (options.limit + options.chunk - 1) / options.chunk > kMaxTasks) {
    fmt::print(stderr, "weft demo: --limit {} with --chunk {} makes more than {} tasks; use a larger chunk\n",
               options.limit, options.chunk, kMaxTasks);
    return 2;
  }
  // Before any thread exists: section 8's worker processes are forked from this clean single-threaded copy.
  process::start_fork_server();
  bool ok = true;
  Workload w{options.limit, options.chunk, base_primes(options.limit)};
  const Progress::Style style = Progress::style_for(stderr, options.quiet);

  ThreadPool pool(ThreadPoolOptions{.threads = options.threads, .name = "demo"});
  const std::size_t threads = pool.threads();
  fmt::print("weft demo: count the primes below {} in {} chunks of {} numbers\n", w.limit, w.chunks(), w.chunk);
  fmt::print("           on a ThreadPool of {} threads ({} CPUs online)\n\n", threads,
             std::thread::hardware_concurrency());

  fmt::print("[1/11] thread pool: one task per chunk, results gathered with as_completed (tracing on)\n");
  trace::clear();
  trace::enable();
  const RunResult parallel = count_on_pool(pool, w, style);
  pool.wait_idle();  // a worker records a task's span just after completing its future
  trace::disable();
  fmt::print("  primes below {}: {}  ({:.3f} s)\n\n", w.limit, parallel.primes, parallel.seconds);

  fmt::print("[2/11] sequential: the same chunks on one thread\n");
  const RunResult sequential = count_sequentially(w, style);
  const double speedup = parallel.seconds > 0 ? sequential.seconds / parallel.seconds : 0;
  fmt::print("  primes below {}: {}  ({:.3f} s)\n", w.limit, sequential.primes, sequential.seconds);
  if (parallel.primes == sequential.primes) {
    fmt::print("  the pool and the sequential count agree\n");
  } else {
    fmt::print("  MISMATCH: the pool counted {}, the sequential run {}\n", parallel.primes, sequential.primes);
    ok = false;
  }
  if (const auto known = known_prime_count(w.limit)) {
    const bool right = parallel.primes == *known && sequential.primes == *known;
    fmt::print("  published value pi({}) = {}: {}\n", w.limit, *known, right ? "ok" : "WRONG");
    ok = ok && right;
  }
  fmt::print("  speedup: {:.2f}x on {} threads\n\n", speedup, threads);

  fmt::print("[3/11] futures: pi(10^k) as tasks, each chained with then() to a check, gathered by when_all\n");
  ok = futures_section(pool) && ok;
  fmt::print("\n");

  fmt::print("[4/11] channel: producer tasks send block counts through a bounded Channel to a consumer\n");
  ok = channel_section(pool) && ok;
  fmt::print("\n");

  fmt::print("[5/11] fork/join: a parallel sort on a work-stealing ForkJoinPool\n");
  const ForkJoinResult sorted = fork_join_sort(options.sort_size, options.threads);
  ok = sorted.ok && ok;
  fmt::print("\n");

  fmt::print("[6/11] fork/join: a recursive computation, one join per call\n");
  const ForkJoinResult fib = fork_join_fib(options.fib, kFibCutoff, options.threads);
  ok = fib.ok && ok;
  fmt::print("\n");

  fmt::print("[7/11] async I/O: fetch slow pages from a local HTTP server on one thread's event loop\n");
  const AsyncFetchResult fetched =
      async_fetch(options.pages, std::chrono::milliseconds(options.page_latency_ms), options.concurrency);
  ok = fetched.ok && ok;
  fmt::print("\n");

  fmt::print("[8/11] multiprocessing: the same chunks on a ProcessPool of worker processes\n");
  const ProcessDemoResult processes =
      process_primes(w.limit, w.chunk, options.threads, sequential.primes, options.quiet);
  ok = processes.ok && ok;
  fmt::print("  speedup: {:.2f}x over one thread, {:.2f}x the thread pool's time\n\n",
             processes.seconds > 0 ? sequential.seconds / processes.seconds : 0,
             processes.seconds > 0 ? parallel.seconds / processes.seconds : 0);

  fmt::print("[9/11] task queue: a worker pool in this process on a sqlite broker and result backend\n");
  const TaskQueueDemoResult queued = task_queue_demo(task_options, threads, options.quiet);
  ok = queued.ok && ok;
  fmt::print("\n");

  fmt::print("[10/11] trace of the thread-pool run\n");
  trace_section(options.trace_path);
  fmt::print("\n");

  pool.shutdown();  // joins the workers, so the counters below are final
  const ThreadPoolStats stats = pool.stats();
  fmt::print("[11/11] summary\n");
  Table table({"workload", "threads", "wall time", "tasks", "tasks/s", "speedup"});
  const std::string workload = fmt::format("primes below {}", w.limit);
  table.add_row({workload + " (pool)", std::to_string(threads), fmt::format("{:.3f} s", parallel.seconds),
                 std::to_string(parallel.tasks), rate(parallel.tasks, parallel.seconds),
                 fmt::format("{:.2f}x", speedup)});
  table.add_row({workload + " (processes)", std::to_string(processes.workers),
                 fmt::format("{:.3f} s", processes.seconds), std::to_string(processes.tasks),
                 rate(processes.tasks, processes.seconds),
                 fmt::format("{:.2f}x", processes.seconds > 0 ? sequential.seconds / processes.seconds : 0)});
  table.add_row({workload + " (sequential)", "1", fmt::format("{:.3f} s", sequential.seconds),
                 std::to_string(sequential.tasks), rate(sequential.tasks, sequential.seconds), "1.00x"});
  for (const ForkJoinResult* f : {&sorted, &fib}) {
    table.add_row({f->workload + " (fork/join)", std::to_string(threads), fmt::format("{:.3f} s", f->parallel_seconds),
                   "-", "-", fmt::format("{:.2f}x", f->speedup())});
    table.add_row({f->workload + " (sequential)", "1", fmt::format("{:.3f} s", f->sequential_seconds), "-", "-",
                   "1.00x"});
  }
  table.add_row({fmt::format("primes below {} (task queue, sqlite)", queued.limit), std::to_string(queued.workers),
                 fmt::format("{:.3f} s", queued.seconds), std::to_string(queued.tasks),
                 rate(queued.tasks, queued.seconds), fmt::format("{:.2f}x", queued.speedup())});
  if (queued.limit != w.limit) {
    table.add_row({fmt::format("primes below {} (sequential)", queued.limit), "1",
                   fmt::format("{:.3f} s", queued.sequential_seconds), "-", "-", "1.00x"});
  }
  const std::string pages = fmt::format("{} slow pages over HTTP", fetched.pages);
  table.add_row({pages + " (async, " + std::to_string(fetched.concurrency) + " at once)", "1",
                 fmt::format("{:.3f} s", fetched.concurrent_seconds), std::to_string(fetched.pages),
                 rate(fetched.pages, fetched.concurrent_seconds), fmt::format("{:.2f}x", fetched.speedup())});
  table.add_row({pages + " (one at a time)", "1", fmt::format("{:.3f} s", fetched.sequential_seconds),
                 std::to_string(fetched.pages), rate(fetched.pages, fetched.sequential_seconds), "1.00x"});
  std::fputs(table.str(2).c_str(), stdout);
  fmt::print("\n  pool '{}' (all sections): completed {}, failed {}, cancelled {}, rejected {}\n", pool.name(),
             stats.completed, stats.failed, stats.cancelled, stats.rejected);
  fmt::print("\n{}\n", ok ? "demo finished: all checks passed" : "demo FAILED: a check did not pass");
  std::fflush(stdout);
  return ok ? 0 : 1;
}


Command add_demo_command(CLI::App& app) {
  auto options = std::make_shared<DemoOptions>();
  CLI::App* sub = app.add_subcommand("demo", "Count primes on a thread pool with futures and tracing, sort and "
                                             "recurse on a fork/join pool, fetch pages, run worker processes "
                                             "and a task queue; report the speedups");
  sub->add_option("--limit", options->limit, "Count the primes below this number")
      ->capture_default_str()
      ->check(CLI::Range(std::uint64_t{2}, std::uint64_t{1} << 32));
  sub->add_option("--chunk", options->chunk, "Numbers per task")
      ->capture_default_str()
      ->check(CLI::Range(std::uint64_t{1}, std::uint64_t{1} << 32));
  sub->add_option("--threads", options->threads, "Pool threads (0: every available core)")
      ->capture_default_str()
      ->check(CLI::Range(std::size_t{0}, std::size_t{256}));
  sub->add_option("--trace", options->trace_path, "Write the Chrome/Perfetto trace of the pool run here")
      ->capture_default_str();
  sub->add_option("--sort-size", options->sort_size, "Keys sorted by the fork/join section")
      ->capture_default_str()
      ->check(CLI::Range(std::size_t{0}, std::size_t{1} << 30));
  sub->add_option("--fib", options->fib, "n of the fork/join section's fib(n)")
      ->capture_default_str()
      ->check(CLI::Range(0, 45));
  sub->add_option("--pages", options->pages, "Pages fetched by the async I/O section")
      ->capture_default_str()
      ->check(CLI::Range(std::size_t{1}, std::size_t{10000}));
  sub->add_option("--page-latency-ms", options->page_latency_ms, "How long each page takes to answer (ms)")
      ->capture_default_str()
      ->check(CLI::Range(0, 10000));
  sub->add_option("--concurrency", options->concurrency, "Async I/O section: requests in flight at most")
      ->capture_default_str()
      ->check(CLI::Range(std::size_t{1}, std::size_t{1000}));
  sub->add_option("--tasks", options->tasks, "Task-queue section: tasks in the batch (chunks of its limit)")
      ->capture_default_str()
      ->check(CLI::Range(std::size_t{1}, std::size_t{10000}));
  sub->add_option("--tasks-limit", options->tasks_limit, "Task-queue section: the batch counts the primes below this")
      ->capture_default_str()
      ->check(CLI::Range(std::uint64_t{2}, std::uint64_t{1} << 32));
  sub->add_flag("--quiet,-q", options->quiet, "No progress display");
  return Command{sub, [options] { return run_demo(*options); }};
}

}  // namespace weft::cli
