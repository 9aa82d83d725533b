#pragma once
// io::Loop: weft's single-threaded event loop (asyncio's event loop), on io_uring or epoll.
//
// One thread runs the loop; every Task, socket, timer and primitive of io/ belongs to the loop of the thread
// that created it. `io::run(task)` is the usual entry (asyncio.run): it makes a loop, runs the task to
// completion and returns its value. Other threads talk to a loop only through call_soon_threadsafe() and by
// completing weft::Futures that a task awaits.
//
// Backends: io_uring (liburing) submits every request to the kernel and reaps completions, one system call per
// loop turn for many connections; epoll waits for readiness, edge-triggered, and tries each request at once
// first. `LoopOptions::backend`, or the environment variable WEFT_IO_BACKEND=uring|epoll when the option is
// `automatic`, picks one; `automatic` without the variable takes io_uring when the kernel allows it (it may be
// disabled by sysctl or a seccomp filter) and epoll otherwise. Both give the same behaviour; the test suite
// runs on both.
#include <chrono>
#include <coroutine>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>

#include "weft/core/function.hpp"
#include "weft/io/detail/op.hpp"
#include "weft/io/task.hpp"

namespace weft::io {

enum class Backend : std::uint8_t { automatic, uring, epoll };

/// "automatic", "uring" or "epoll".
std::string_view to_string(Backend b) noexcept;

struct LoopOptions {
  /// Which kernel interface to use (see the top of this file).
  Backend backend = Backend::automatic;
  /// io_uring submission queue entries (completion queue: four times as many) / epoll events reaped per wait.
  unsigned queue_depth = 1024;
  /// Buffers of the loop's read pool (Stream::read_some): a connection holds one only while data is in hand,
  /// so 10,000 idle connections hold none. When all are in use a read gets a one-off buffer instead.
  std::uint32_t buffer_count = 64;
  std::uint32_t buffer_size = 4096;
  /// Bound of the call_soon_threadsafe queue; beyond it call_soon_threadsafe throws weft::QueueFull.
  std::size_t max_pending_calls = 65536;
};

namespace detail {
class LoopCore;
}

class Loop {
 public:
  /// Creates the loop with its backend. Throws weft::Error when neither backend can be set up (or the forced
  /// one cannot), naming the system error.
  explicit Loop(LoopOptions options = {});
  /// Precondition: not running. Tasks spawned with spawn() that never ran are started already cancelled and
  /// run until they finish (each sees weft::Cancelled at its first await).
  ~Loop();
  Loop(const Loop&) = delete;
  Loop& operator=(const Loop&) = delete;

  /// The backend in use (never `automatic`).
  Backend backend() const noexcept;
  const LoopOptions& options() const noexcept;

  /// Runs the loop on this thread until `task` finishes, then cancels the tasks still running from spawn()
  /// and runs until they have finished too. Returns the task's value or rethrows its exception.
  /// Throws weft::Error if this thread is already running a loop, or if another thread ran this loop before
  /// (a loop belongs to the first thread that runs it). Not reentrant.
  template <class T>
  T run(Task<T> task) {
    auto h = task.release();
    struct Destroy {
      typename Task<T>::Handle h;
      ~Destroy() { h.destroy(); }
    } d{h};  // before run_root, which may throw without having started the task
    run_root(h.promise(), h);
    return h.promise().result();
  }

  /// Starts a detached background task (asyncio.create_task without keeping the handle). Its exception goes
  /// to weft's unhandled-exception handler. It is cancelled when run()'s main task finishes. Loop thread only
  /// (or before run()).
  void spawn(Task<void> task);

  /// Queues `fn` to run on the loop thread in a later turn, in call order. Loop thread only.
  void call_soon(UniqueFunction<void()> fn);

  /// Queues `fn` from any thread and wakes the loop. Throws weft::QueueFull when max_pending_calls calls are
  /// already waiting. Hazard: the caller must know the loop is still alive (the loop does not outlive its
  /// destructor); calls still queued when the loop is destroyed are dropped without running.
  void call_soon_threadsafe(UniqueFunction<void()> fn);

  /// The loop running on this thread, or null.
  static Loop* current() noexcept;

  /// Counters, for tests and benchmarks (loop thread only).
  struct Stats {
    std::uint64_t turns = 0;            // loop iterations
    std::uint64_t ops_started = 0;      // I/O requests handed to the backend
    std::uint64_t ops_inline = 0;       // of those, completed at once without waiting
    std::uint64_t waits = 0;            // times the loop blocked in the kernel
    std::uint32_t buffers_in_use = 0;   // pool buffers held by readers now
    std::uint64_t buffer_fallbacks = 0; // reads that found the pool empty
  };
  Stats stats() const noexcept;

  /// Internal interface used by awaiters and sockets.
  detail::LoopCore& core() noexcept { return *core_; }

 private:
  void run_root(detail::PromiseBase& p, std::coroutine_handle<> h);
  std::unique_ptr<detail::LoopCore> core_;
};

/// asyncio.run: makes a Loop with `options`, runs `task` to completion on it and returns its value.
template <class T>
T run(Task<T> task, LoopOptions options = {}) {
  Loop loop(options);
  return loop.run(std::move(task));
}

namespace detail {

/// A wake-up posted to the loop from another thread (intrusive; lives with its poster until it has run).
struct RemoteNode {
  RemoteNode* next = nullptr;
  void (*fn)(RemoteNode*) = nullptr;  // runs on the loop thread
};

/// What awaiters, timers and sockets need from the running loop. Loop thread only.
class LoopCore {
 public:
  virtual ~LoopCore() = default;
  /// Hands `op` to the backend. False when it finished at once (op.result set, nothing pending); true when
  /// op.waiter will be resumed later by the loop.
  virtual bool start(IoOp& op) = 0;
  /// Asks that a pending op finish early with -ECANCELED (a completion that already happened wins). Idempotent.
  virtual void cancel(IoOp& op) = 0;
  /// Resumes `h` in a later turn.
  virtual void schedule(std::coroutine_handle<> h) = 0;
  virtual void add_timer(TimerNode& t) = 0;
  virtual void remove_timer(TimerNode& t) noexcept = 0;
  /// Steady-clock time in ns, cached per loop turn.
  virtual std::int64_t now() noexcept = 0;
  /// A descriptor that will carry requests is opened / is about to be closed (cancels what is pending on it).
  virtual void attach_fd(int fd) = 0;
  virtual void detach_fd(int fd) noexcept = 0;
  /// The read pool: data of buffer `id`, and giving a buffer back.
  virtual char* buffer_data(std::uint16_t id) noexcept = 0;
  virtual std::uint32_t buffer_size() const noexcept = 0;
  virtual void release_buffer(std::uint16_t id) noexcept = 0;
  virtual Loop& loop() noexcept = 0;
  /// Any thread: runs node->fn on the loop thread in a later turn and wakes the loop. Never fails: the node is
  /// the storage, so the number of queued nodes is bounded by the number of waiters that own one.
  virtual void post_remote(RemoteNode* node) noexcept = 0;
};

/// The running loop's core. Throws weft::Error when called outside a running loop.
LoopCore& current_core();

}  // namespace detail
}  // namespace weft::io
