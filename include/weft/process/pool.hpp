// weft/process/pool.hpp — a pool of worker processes (multiprocessing.Pool, ProcessPoolExecutor).
//
//   int square(int x) { return x * x; }
//   weft::process::ProcessPool pool;                       // one worker per CPU
//   weft::Future<int> f = pool.submit(&square, 7);
//   std::vector<int> v = pool.map(&square, inputs);        // ordered, chunked
//   for (int r : pool.imap_unordered(&square, inputs)) ...  // lazy, as they finish
//
// Work is a plain function pointer (or a function registered by name with WEFT_PROCESS_FUNCTION), its
// arguments and result are serialized (serialize.hpp): only data crosses into the workers, never code.
// Handles that are open descriptors (a Queue, a Pipe's Connection, an anonymous SharedMemory) cannot be task
// arguments (tasks travel through shared memory, descriptors cannot): give them to the workers once, as
// arguments of the initializer, or use named shared memory.
// Workers are forked from the fork server (see process.hpp: call start_fork_server() at the top of main).
//
// Failures stay with the task that caused them — unlike ProcessPoolExecutor, whose pool breaks for good when
// one worker dies:
//  - a task that throws: its future throws weft::RemoteError (the exception's type and message);
//  - a worker that dies (segfault, abort, kill -9, the OOM killer): the task it was running fails with
//    WorkerLost naming the signal; tasks queued behind it go to other workers; a new worker replaces it;
//  - a task that runs longer than its timeout (ProcessPoolOptions::task_timeout, or per submit): its worker
//    is killed and replaced, its future throws weft::Timeout;
//  - a task ended with its KillSwitch: its worker is killed and replaced, its future throws weft::Cancelled;
//  - max_tasks_per_child: a worker retires after that many tasks and is replaced (for leaky task code).
//  - the initializer fails (throws, or its worker dies before it finishes): the pool cannot make workers,
//    so it breaks: every task fails with BrokenExecutor carrying the initializer's error.
//
// How it works (the protocol is in detail/pool_protocol.hpp): each worker has an inbox and an outbox ring in
// shared memory (ring.hpp). submit() encodes the call and puts it straight into the inbox of the least busy
// worker when that worker has room (a cap that adapts to how long tasks take: deep queues for tiny tasks,
// shallow ones for long tasks, so a long task does not hold many others behind it), else into a bounded
// queue in this process. One collector thread per pool takes results from the outboxes, completes the
// futures, feeds waiting tasks to workers, enforces timeouts and replaces dead workers. Idle workers and an
// idle collector spin about 50 µs, then sleep (futex, epoll): an idle pool uses no CPU.
//
// Thread safety: every member may be called from any thread at once, except that the destructor must not
// race with other calls. Hazard: a task that waits on another task of the same pool occupies a worker while
// it waits (workers do not help): with every worker waiting, the pool deadlocks — do not nest.
#pragma once

#include <chrono>
#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <deque>
#include <exception>
#include <functional>
#include <iterator>
#include <memory>
#include <mutex>
#include <optional>
#include <ranges>
#include <string>
#include <string_view>
#include <tuple>
#include <type_traits>
#include <utility>
#include <vector>

#include "weft/core/errors.hpp"
#include "weft/core/executor.hpp"
#include "weft/core/future.hpp"
#include "weft/process/detail/pool_protocol.hpp"
#include "weft/process/errors.hpp"
#include "weft/process/process.hpp"
#include "weft/process/serialize.hpp"

namespace weft::process {

/// What submit() does when max_pending tasks already wait in this process for a worker.
enum class PoolOverflow {
  block,   ///< wait for room (back-pressure on the submitter)
  reject,  ///< throw weft::QueueFull
};

/// A function the workers run once at start, with its arguments (set with ProcessPoolOptions::initialize).
struct PoolInitializer {
  std::uint64_t trampoline = 0;
  std::uint64_t fn = 0;
  std::string args = {};
  /// Copies (dup) of the descriptors of handles among the arguments, kept open for the workers to come.
  std::shared_ptr<std::vector<detail::Fd>> fds = {};
};

struct ProcessPoolOptions {
  std::size_t workers = 0;               ///< 0: one per CPU this process may run on; at most 1024
  std::uint64_t max_tasks_per_child = 0; ///< 0: workers never retire
  std::optional<std::chrono::nanoseconds> task_timeout = {};  ///< per task; none: tasks may run forever
  std::size_t max_pending = 1 << 16;     ///< tasks waiting in this process for room in a worker
  PoolOverflow overflow = PoolOverflow::block;
  std::size_t max_message = 1 << 20;     ///< largest encoded arguments or result, bytes (each worker's two rings take twice this)
  std::string name = "ProcessPool";
  PoolInitializer initializer = {};

  /// Workers call fn(args...) once when they start, before any task.
  template <class R, class... P, class... A>
    requires(sizeof...(P) == sizeof...(A))
  ProcessPoolOptions& initialize(R (*fn)(P...), A&&... args) {
    using Inv = detail::CallInvoker<R, P...>;
    (void)Inv::registered;
    initializer.trampoline = reinterpret_cast<std::uintptr_t>(&Inv::run);
    initializer.fn = reinterpret_cast<std::uintptr_t>(fn);
    std::vector<int> raw;
    {
      detail::FdExport scope(raw);
      initializer.args = pack(std::forward_as_tuple(detail::as_parameter<P>(std::forward<A>(args))...));
    }
    initializer.fds = detail::dup_all(raw);
    return *this;
  }
};

/// Per-call options.
namespace detail {
class PoolCore;
}

/// Ends one submitted task at once (Celery's revoke with terminate): pass it to submit in
/// SubmitOptions::kill_switch, then call kill() from any thread, before or after submit.
///  - the task runs: its worker process is killed (SIGKILL) and replaced, as at a timeout;
///  - it waits in this process: it never runs;
///  - it waits in a worker's inbox (which cannot give it back): that worker is killed as soon as it starts
///    it, so it may run for a moment (about a millisecond, until the pool's collector sees it);
///  - it has finished: nothing happens.
/// Its future then throws weft::Cancelled. One switch per task. Thread-safe.
class KillSwitch {
 public:
  void kill();
  /// True once kill() was called.
  bool killed() const;

 private:
  friend class detail::PoolCore;
  mutable std::mutex mu_;
  std::weak_ptr<detail::PoolCore> core_;  // bound by submit
  std::uint64_t task_ = 0;
  bool killed_ = false;
};

struct SubmitOptions {
  std::optional<std::chrono::nanoseconds> timeout = {};  ///< overrides ProcessPoolOptions::task_timeout
  std::shared_ptr<KillSwitch> kill_switch = {};           ///< to end this task early (KillSwitch)
};

/// Counters since the pool started. Read with ProcessPool::stats().
struct ProcessPoolStats {
  std::uint64_t submitted = 0;
  std::uint64_t completed = 0;     ///< returned a value
  std::uint64_t failed = 0;        ///< threw, timed out, or lost with a worker
  std::uint64_t cancelled = 0;
  std::uint64_t timeouts = 0;
  std::uint64_t workers_lost = 0;  ///< died while holding tasks, or killed for a timeout
  std::uint64_t workers_started = 0;
};

namespace detail {

/// The parent-side end of one task: turns the worker's answer into the future's value or exception.
class PendingResult {
 public:
  virtual ~PendingResult() = default;
  /// Marks the task started; false when its future was cancelled (then it is not sent).
  virtual bool start() noexcept = 0;
  virtual void value(std::string_view payload) noexcept = 0;
  virtual void fail(std::exception_ptr e) noexcept = 0;
  /// Names the pool's wait helper on the future (before the future reaches the caller of submit).
  virtual void set_helper(weft::detail::WaitHelper* helper) noexcept = 0;
};

template <class R>
class TypedResult final : public PendingResult {
 public:
  Future<R> future() { return p_.get_future(); }
  bool start() noexcept override { return p_.try_start(); }
  void set_helper(weft::detail::WaitHelper* helper) noexcept override { p_.set_wait_helper(helper); }
  void value(std::string_view payload) noexcept override {
    try {
      if constexpr (std::is_void_v<R>) {
        p_.set_value();
      } else {
        p_.set_value(unpack<R>(payload));
      }
    } catch (...) {
      fail(std::current_exception());
    }
  }
  void fail(std::exception_ptr e) noexcept override {
    try {
      p_.set_exception(std::move(e));
    } catch (...) {  // already satisfied: cannot happen (each task completes once)
    }
  }

 private:
  Promise<R> p_;
};

class PoolCore;

/// Builds a task message: the header, the name (by-name calls), the encoded arguments.
template <class Args>
std::string task_message(TaskKind kind, std::uintptr_t trampoline, std::uintptr_t fn, std::string_view name,
                         const Args& args) {
  std::string m(sizeof(TaskHeader), '\0');
  TaskHeader h{0, trampoline, fn, kind, static_cast<std::uint32_t>(name.size())};
  std::memcpy(m.data(), &h, sizeof h);
  m.append(name);
  pack_into(m, args);
  return m;
}

}  // namespace detail

/// Registers `fn` under `name` so that ProcessPool::submit_named(name, ...) can run it. Call it at static
/// initialisation (WEFT_PROCESS_FUNCTION does): workers come from the fork server, which knows only what was
/// registered before it started. Throws std::invalid_argument for an empty name or one registered already.
template <class R, class... P>
bool register_function(std::string_view name, R (*fn)(P...)) {
  using Inv = detail::CallInvoker<R, P...>;
  (void)Inv::registered;
  detail::register_named(name, detail::NamedFunction{&Inv::run, reinterpret_cast<void*>(fn), &typeid(R)});
  return true;
}

#define WEFT_PROCESS_CONCAT2(a, b) a##b
#define WEFT_PROCESS_CONCAT(a, b) WEFT_PROCESS_CONCAT2(a, b)
/// WEFT_PROCESS_FUNCTION("name", fn); at namespace scope registers fn under "name" before main().
#define WEFT_PROCESS_FUNCTION(name, fn)                                                              \
  [[maybe_unused]] static const bool WEFT_PROCESS_CONCAT(weft_process_function_, __COUNTER__) = \
      ::weft::process::register_function(name, fn)

template <class R>
class MapStream;

/// A pool of worker processes. See the top of this file.
class ProcessPool {
 public:
  /// Starts the workers (through the fork server). Throws std::invalid_argument for bad options,
  /// std::system_error when processes or shared memory cannot be had.
  explicit ProcessPool(ProcessPoolOptions options = {});
  /// shutdown(Shutdown::drain), then waits for the workers to exit.
  ~ProcessPool();
  ProcessPool(const ProcessPool&) = delete;
  ProcessPool& operator=(const ProcessPool&) = delete;

  /// Runs fn(args...) in a worker. The arguments are encoded now. Throws BrokenExecutor after shutdown (or
  /// when the pool broke), QueueFull (PoolOverflow::reject), MessageTooLarge, SerializationError.
  /// The future throws RemoteError (the task threw), WorkerLost, Timeout, Cancelled, BrokenExecutor.
  template <class R, class... P, class... A>
    requires(sizeof...(P) == sizeof...(A))
  Future<R> submit(R (*fn)(P...), A&&... args) {
    return submit(SubmitOptions{}, fn, std::forward<A>(args)...);
  }

  template <class R, class... P, class... A>
    requires(sizeof...(P) == sizeof...(A))
  Future<R> submit(SubmitOptions options, R (*fn)(P...), A&&... args) {
    static_assert(std::is_void_v<R> || Serializable<R>, "weft: a ProcessPool task's result must be Serializable");
    using Inv = detail::CallInvoker<R, P...>;
    (void)Inv::registered;
    std::string m = detail::task_message(
        detail::TaskKind::call, reinterpret_cast<std::uintptr_t>(&Inv::run), reinterpret_cast<std::uintptr_t>(fn),
        {}, std::forward_as_tuple(detail::as_parameter<P>(std::forward<A>(args))...));
    auto r = std::make_unique<detail::TypedResult<R>>();
    Future<R> f = r->future();
    enqueue(std::move(m), std::move(r), options, reinterpret_cast<void*>(fn));
    return f;
  }

  /// Runs the function registered as `name` (register_function, WEFT_PROCESS_FUNCTION) with `args`.
  /// Throws std::invalid_argument when no function has that name, or its result type is not R.
  template <class R, class... A>
  Future<R> submit_named(std::string_view name, A&&... args) {
    const detail::NamedFunction* nf = detail::find_named(name);
    if (nf == nullptr) throw std::invalid_argument("weft: no function is registered as '" + std::string(name) + "'");
    if (*nf->result != typeid(R)) {
      throw std::invalid_argument("weft: '" + std::string(name) + "' returns " + detail::type_name(*nf->result) +
                                  ", not " + detail::type_name(typeid(R)));
    }
    std::string m = detail::task_message(detail::TaskKind::call_by_name, 0, 0, name,
                                         std::forward_as_tuple(std::forward<A>(args)...));
    auto r = std::make_unique<detail::TypedResult<R>>();
    Future<R> f = r->future();
    enqueue(std::move(m), std::move(r), SubmitOptions{}, nf->fn, name);
    return f;
  }

  /// fn over `items`, in input order, in chunks of `chunk` items (0: about four chunks per worker, as
  /// multiprocessing.Pool.map). Throws the first failure in input order (after the other chunks finished or
  /// were cancelled), and what submit throws.
  template <class R, class P, std::ranges::input_range Range>
  std::vector<R> map(R (*fn)(P), const Range& items, std::size_t chunk = 0) {
    return gather(map_chunks<detail::MapInvoker<R, P>, R>(fn, items, chunk, [](const auto& x) -> decltype(auto) {
      return detail::as_parameter<P>(x);
    }));
  }

  /// fn(args...) for each tuple of arguments in `items`, in order (multiprocessing.Pool.starmap).
  template <class R, class... P, std::ranges::input_range Range>
  std::vector<R> starmap(R (*fn)(P...), const Range& items, std::size_t chunk = 0) {
    return gather(map_chunks<detail::StarmapInvoker<R, P...>, R>(fn, items, chunk, [](const auto& t) {
      return std::apply([](const auto&... a) { return std::tuple<std::decay_t<P>...>(a...); }, t);
    }));
  }

  /// Lazy map: takes items from `items` only as results are consumed (at most a window of chunks in flight:
  /// four per worker), and yields results in input order. `chunk` items per task (0: 1, as Pool.imap).
  /// The range must outlive the stream. A failed chunk throws from the stream when its results are reached.
  template <class R, class P, std::ranges::input_range Range>
  MapStream<R> imap(R (*fn)(P), Range& items, std::size_t chunk = 0);

  /// As imap, yielding results as chunks finish (Pool.imap_unordered).
  template <class R, class P, std::ranges::input_range Range>
  MapStream<R> imap_unordered(R (*fn)(P), Range& items, std::size_t chunk = 0);

  /// Stops taking tasks (submit throws BrokenExecutor), then runs the queued ones (drain) or cancels those
  /// that have not started (cancel_pending); waits for the running ones, stops the workers and waits for
  /// them to exit. Idempotent; thread-safe.
  void shutdown(Shutdown mode = Shutdown::drain);

  std::size_t workers() const noexcept;
  /// The pids of the live workers (for monitoring and tests).
  std::vector<int> worker_pids() const;
  ProcessPoolStats stats() const;

 private:
  template <class R>
  friend class MapStream;

  template <class R, class P, class Range>
  MapStream<R> imap_impl(R (*fn)(P), Range& items, std::size_t chunk, bool ordered);

  void enqueue(std::string message, std::unique_ptr<detail::PendingResult> result, const SubmitOptions& options,
               void* fn, std::string_view name = {});

  template <class Inv, class R, class Fn, class Range, class Convert>
  std::vector<Future<std::vector<R>>> map_chunks(Fn fn, const Range& items, std::size_t chunk, Convert convert) {
    (void)Inv::registered;
    std::size_t n = 0;
    if constexpr (std::ranges::sized_range<Range>) n = static_cast<std::size_t>(std::ranges::size(items));
    if (chunk == 0) {
      chunk = 1;
      if (n != 0) {
        const std::size_t parts = 4 * std::max<std::size_t>(workers(), 1);
        chunk = (n + parts - 1) / parts;
      }
    }
    std::vector<Future<std::vector<R>>> parts;
    using Item = decltype(convert(*std::ranges::begin(items)));
    std::vector<std::decay_t<Item>> batch;
    auto flush = [&] {
      std::string m = detail::task_message(detail::TaskKind::call, reinterpret_cast<std::uintptr_t>(&Inv::run),
                                           reinterpret_cast<std::uintptr_t>(fn), {}, batch);
      batch.clear();
      auto r = std::make_unique<detail::TypedResult<std::vector<R>>>();
      parts.push_back(r->future());
      enqueue(std::move(m), std::move(r), SubmitOptions{}, reinterpret_cast<void*>(fn));
    };
    try {
      for (const auto& item : items) {
        batch.push_back(convert(item));
        if (batch.size() == chunk) flush();
      }
      if (!batch.empty()) flush();
    } catch (...) {
      for (auto& p : parts) p.cancel();
      for (auto& p : parts) p.wait();
      throw;
    }
    return parts;
  }

  template <class R>
  static std::vector<R> gather(std::vector<Future<std::vector<R>>> parts) {
    std::vector<R> out;
    for (std::size_t i = 0; i < parts.size(); ++i) {
      try {
        auto part = parts[i].get();
        out.insert(out.end(), std::make_move_iterator(part.begin()), std::make_move_iterator(part.end()));
      } catch (...) {
        for (std::size_t j = i + 1; j < parts.size(); ++j) parts[j].cancel();
        for (std::size_t j = i + 1; j < parts.size(); ++j) parts[j].wait();
        throw;
      }
    }
    return out;
  }

  std::shared_ptr<detail::PoolCore> core_;
};

/// The results of imap/imap_unordered: an input range, consumed once. Move-only. Destroying it before the end
/// cancels the chunks not yet started and waits for the running ones.
template <class R>
class MapStream {
 public:
  /// The next result; nullopt after the last. Throws the failure of the chunk the result belongs to.
  std::optional<R> next() {
    for (;;) {
      if (pos_ < current_.size()) return std::move(current_[pos_++]);
      if (!refill()) return std::nullopt;
    }
  }

  struct iterator {
    using value_type = R;
    using difference_type = std::ptrdiff_t;
    MapStream* s = nullptr;
    std::optional<R> v;
    R& operator*() { return *v; }
    iterator& operator++() {
      v = s->next();
      return *this;
    }
    void operator++(int) { ++*this; }
    bool operator==(std::default_sentinel_t) const { return !v.has_value(); }
  };
  iterator begin() { return iterator{this, next()}; }
  std::default_sentinel_t end() { return {}; }

  MapStream(MapStream&&) noexcept = default;
  MapStream& operator=(MapStream&&) = delete;
  ~MapStream() {
    for (auto& f : inflight_) f.cancel();
    for (auto& f : inflight_) f.wait();
  }

 private:
  friend class ProcessPool;
  struct Done {
    std::mutex mu;
    std::condition_variable cv;
    std::deque<std::size_t> order;  // sequence numbers of finished chunks (unordered mode)
  };

  MapStream(ProcessPool& pool, bool ordered, std::size_t window, std::function<bool(ProcessPool&, std::vector<Future<std::vector<R>>>&)> feed)
      : pool_(&pool), ordered_(ordered), window_(window), feed_(std::move(feed)), done_(std::make_shared<Done>()) {}

  void top_up() {
    while (!exhausted_ && inflight_.size() < window_) {
      std::vector<Future<std::vector<R>>> one;
      if (!feed_(*pool_, one)) {
        exhausted_ = true;
        break;
      }
      std::size_t seq = next_seq_++;
      if (!ordered_) {
        one[0].on_done([d = done_, seq] {
          std::lock_guard lock(d->mu);
          d->order.push_back(seq);
          d->cv.notify_one();
        });
      }
      inflight_.push_back(std::move(one[0]));
      seqs_.push_back(seq);
    }
  }

  bool refill() {
    top_up();
    if (inflight_.empty()) return false;
    std::size_t idx = 0;
    if (!ordered_) {
      std::unique_lock lock(done_->mu);
      done_->cv.wait(lock, [&] { return !done_->order.empty(); });
      std::size_t seq = done_->order.front();
      done_->order.pop_front();
      lock.unlock();
      while (seqs_[idx] != seq) ++idx;
    }
    Future<std::vector<R>> f = std::move(inflight_[idx]);
    inflight_.erase(inflight_.begin() + static_cast<std::ptrdiff_t>(idx));
    seqs_.erase(seqs_.begin() + static_cast<std::ptrdiff_t>(idx));
    current_ = f.get();
    pos_ = 0;
    top_up();
    return true;
  }

  ProcessPool* pool_;
  bool ordered_;
  std::size_t window_;
  std::function<bool(ProcessPool&, std::vector<Future<std::vector<R>>>&)> feed_;
  std::shared_ptr<Done> done_;
  std::deque<Future<std::vector<R>>> inflight_;
  std::deque<std::size_t> seqs_;
  std::size_t next_seq_ = 0;
  bool exhausted_ = false;
  std::vector<R> current_;
  std::size_t pos_ = 0;
};

template <class R, class P, std::ranges::input_range Range>
MapStream<R> ProcessPool::imap(R (*fn)(P), Range& items, std::size_t chunk) {
  return imap_impl<R, P>(fn, items, chunk, true);
}

template <class R, class P, std::ranges::input_range Range>
MapStream<R> ProcessPool::imap_unordered(R (*fn)(P), Range& items, std::size_t chunk) {
  return imap_impl<R, P>(fn, items, chunk, false);
}

template <class R, class P, class Range>
MapStream<R> ProcessPool::imap_impl(R (*fn)(P), Range& items, std::size_t chunk, bool ordered) {
  using Inv = detail::MapInvoker<R, P>;
  (void)Inv::registered;
  if (chunk == 0) chunk = 1;
  struct Cursor {
    std::ranges::iterator_t<Range> it;
    std::ranges::sentinel_t<Range> end;
  };
  auto cursor = std::make_shared<Cursor>(Cursor{std::ranges::begin(items), std::ranges::end(items)});
  auto feed = [fn, chunk, cursor](ProcessPool& pool, std::vector<Future<std::vector<R>>>& out) {
    std::vector<std::decay_t<P>> batch;
    for (; batch.size() < chunk && cursor->it != cursor->end; ++cursor->it) {
      batch.push_back(detail::as_parameter<P>(*cursor->it));
    }
    if (batch.empty()) return false;
    std::string m = detail::task_message(detail::TaskKind::call, reinterpret_cast<std::uintptr_t>(&Inv::run),
                                         reinterpret_cast<std::uintptr_t>(fn), {}, batch);
    auto r = std::make_unique<detail::TypedResult<std::vector<R>>>();
    out.push_back(r->future());
    pool.enqueue(std::move(m), std::move(r), SubmitOptions{}, reinterpret_cast<void*>(fn));
    return true;
  };
  return MapStream<R>(*this, ordered, 4 * std::max<std::size_t>(workers(), 1), std::move(feed));
}

}  // namespace weft::process
