// weft/process/process.hpp — run a function in a child process (multiprocessing.Process).
//
//   int work(std::string name, int n) { ... }
//   weft::process::Process p(&work, std::string("job"), 42);   // starts the child
//   p.join();                                                   // waits for it
//   if (p.exitcode() != 0) ...                                  // 0, 1 (it threw) or -signal
//
// How children are made (the fork server). Forking a process that runs threads is hazardous: the child is a
// copy in which only the forking thread exists, so a lock another thread held at that moment (in the
// allocator, a logger, any library) stays locked forever. weft therefore forks children from a *fork server*:
// a small single-threaded process forked from the program once, before it starts threads, that forks one
// child per Process on request. Every child is a copy of that clean single-threaded image; the program's
// own threads never exist in it. Call start_fork_server() at the top of main(), before any thread (a
// ThreadPool, ...) exists. If a Process is started without it, the server is started on first use; when the
// program already has other threads at that point a warning is printed once to stderr, because the server
// itself would then be forked from a threaded process.
//
// Only data crosses into the child: the function is a plain function pointer (it exists in the child's
// image, which is a copy of the program's) and the arguments are serialized with msgpack (see serialize.hpp)
// and decoded in the child. Handles such as a Pipe's Connection, a Queue or an anonymous SharedMemory are
// passed as arguments by their descriptors; a Connection passed as an rvalue (std::move(end)) is closed in
// this process once the child has it, the usual way to hand one end of a pipe to a child. A function whose code was loaded (dlopen) after the fork server
// started does not exist in the child: the child reports it and exits with code 1.
//
// The child has the program's stdin/stdout/stderr and the descriptors passed as arguments. It ends with
// _exit(): the function's return is exit code 0; an exception that escapes it is printed to stderr and is
// exit code 1; std::exit(n) inside it ends the child with n. Static destructors of the copied image do not
// run (they belong to the program, not the child).
//
// Signals: the fork server blocks SIGINT and SIGTERM, which Ctrl-C and a service manager send to the whole
// process group: the program decides what they mean (a warm shutdown may still start children), and the server
// ends when the program does. Children start with the program's dispositions and no blocked signal.
//
// Zombies: children are reaped by the fork server as they end, so the program never accumulates zombies,
// whether or not it joins its Process objects. Daemon children (Options::daemon) are killed when the fork
// server ends, which it does when the program exits or dies.
//
// Process::fork(f) instead forks the calling process directly, so `f` may be any callable with any captures
// (the child is a copy of the caller). Use it only while the program has one thread, or with the hazard
// above in mind.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <tuple>
#include <type_traits>
#include <utility>
#include <vector>

#include "weft/process/detail/fd_passing.hpp"
#include "weft/process/errors.hpp"
#include "weft/process/serialize.hpp"

namespace weft::process {

/// Starts the fork server now, unless it runs already. Call it at the top of main(), before any thread is
/// created. Thread-safe; idempotent. Throws std::system_error when the server cannot be started.
void start_fork_server();

/// The fork server's pid, or 0 when it has not been started. Thread-safe; never throws.
int fork_server_pid() noexcept;

/// Options for a Process.
struct ProcessOptions {
  std::string name;     ///< For messages; default "Process-<n>".
  bool daemon = false;  ///< Killed when the program (its fork server) ends; a plain child outlives it.
};

namespace detail {

/// What the child runs: decodes the arguments and calls the function. One instantiation per signature;
/// only registered trampolines are ever called (an address that arrives is checked against the registry).
using Trampoline = void (*)(void* fn, std::string_view args);

/// Records `t` as a trampoline a child may run. Called from static initialisers. Never throws (aborts on OOM).
bool register_trampoline(Trampoline t) noexcept;

template <class R, class... P>
struct Invoker {
  using Fn = R (*)(P...);
  static void run(void* fn, std::string_view args) {
    auto decoded = unpack<std::tuple<std::decay_t<P>...>>(args);
    std::apply([fn](auto&&... a) { reinterpret_cast<Fn>(fn)(std::move(a)...); }, std::move(decoded));
  }
  static inline const bool registered = register_trampoline(&run);
};

/// An argument as fn's parameter type P is encoded: the argument itself when it already is a P (no copy: a
/// move-only handle such as a Queue is packed in place), otherwise converted to P first (so "text" is sent
/// as the std::string the function takes).
template <class P, class A>
decltype(auto) as_parameter(A&& a) {
  using V = std::decay_t<P>;
  if constexpr (std::is_same_v<std::decay_t<A>, V>) {
    return static_cast<const V&>(a);
  } else {
    return V(std::forward<A>(a));
  }
}

/// What becomes of a handle argument passed to a Process as an rvalue once the child has it. Specialised for
/// handles whose copy in this process would otherwise keep something open (a Connection's end: while this
/// process holds it, the child never sees the end of the stream).
template <class T>
struct HandedOver {
  static void release(T&) noexcept {}
};

/// A started child: what the fork server handed back.
struct ChildHandle {
  int pid = 0;
  int pidfd = -1;   ///< Signals go through it (no pid-reuse race).
  int status = -1;  ///< Readable once the child ended: 4 bytes of wait status, written by the fork server.
  bool direct = false;  ///< Forked by Process::fork: the caller itself reaps it (waitid on the pidfd).
};

/// Asks the fork server to fork a child that runs trampoline(fn, args) with descriptors `fds`.
ChildHandle spawn(Trampoline trampoline, void* fn, std::string_view args, const std::vector<int>& fds,
                  const ProcessOptions& options);

/// Forks the caller directly; the child runs `body` (then _exit as described above).
ChildHandle fork_direct(std::function<void()>& body, const ProcessOptions& options);

}  // namespace detail

/// A child process running one function. Move-only.
///
/// Thread safety: one Process object is used by one thread at a time (as a std::thread is); different
/// Process objects may be used concurrently. Its destructor neither waits for nor kills the child (a
/// started child runs on; the fork server reaps it): join() first if you need it finished.
class Process {
 public:
  /// Starts a child running `fn(args...)`. The arguments are encoded now (so later changes to the
  /// caller's objects do not reach the child) and must be Serializable for fn's parameter types.
  /// Throws SerializationError for an argument that cannot travel, std::system_error when the fork fails
  /// (EAGAIN: the process limit RLIMIT_NPROC was reached), weft::Error when the fork server has died.
  template <class R, class... P, class... A>
    requires(sizeof...(P) == sizeof...(A))
  explicit Process(R (*fn)(P...), A&&... args) : Process(ProcessOptions{}, fn, std::forward<A>(args)...) {}

  template <class R, class... P, class... A>
    requires(sizeof...(P) == sizeof...(A))
  Process(ProcessOptions options, R (*fn)(P...), A&&... args) : options_(std::move(options)) {
    static_assert((Serializable<std::decay_t<P>> && ...),
                  "weft: every parameter of a Process function must be Serializable (serialize.hpp)");
    using Inv = detail::Invoker<R, P...>;
    (void)Inv::registered;
    std::vector<int> fds;
    std::string blob;
    {
      detail::FdExport scope(fds);
      blob = pack(std::forward_as_tuple(detail::as_parameter<P>(std::forward<A>(args))...));
    }
    name_default();
    child_ = detail::spawn(&Inv::run, reinterpret_cast<void*>(fn), blob, fds, options_);
    (release_if_moved<A>(args), ...);
  }

  /// Forks the calling process directly and runs `f()` in the child; `f` may capture anything.
  /// Hazard: see the top of this file — use only while the program has one thread. Such a child is the
  /// caller's own: join() it, or it stays a zombie from when it ends until the program exits.
  /// Throws std::system_error when fork fails.
  template <class F>
  static Process fork(F&& f, ProcessOptions options = {}) {
    Process p;
    p.options_ = std::move(options);
    p.name_default();
    std::function<void()> body(std::forward<F>(f));
    p.child_ = detail::fork_direct(body, p.options_);
    return p;
  }

  Process(Process&& other) noexcept;
  Process& operator=(Process&& other) noexcept;
  Process(const Process&) = delete;
  Process& operator=(const Process&) = delete;
  ~Process();

  /// Waits until the child ends. Returns true when it has ended, false when `timeout` passed first.
  /// Thread-safe with respect to other Process objects. Throws std::system_error on a system failure.
  bool join(std::optional<std::chrono::nanoseconds> timeout = std::nullopt);

  /// True while the child runs. Never blocks.
  bool is_alive();

  /// Sends SIGTERM / SIGKILL / `sig` to the child; nothing if it has already ended. Race-free (pidfd).
  /// Throws std::system_error on failure other than "already ended".
  void terminate();
  void kill();
  void send_signal(int sig);

  /// How the child ended, multiprocessing's convention: nullopt while it runs, its exit status when it
  /// exited (0: returned, 1: threw), -N when signal N ended it.
  std::optional<int> exitcode();

  /// The signal that ended the child, 0 if it exited or still runs.
  int signal();

  int pid() const noexcept { return child_.pid; }
  /// A descriptor that becomes readable (poll, epoll) once the child has ended and been reaped
  /// (multiprocessing's Process.sentinel). Owned by this object; -1 when empty.
  int sentinel() const noexcept { return child_.direct ? child_.pidfd : child_.status; }
  const std::string& name() const noexcept { return options_.name; }
  bool daemon() const noexcept { return options_.daemon; }

 private:
  template <class A, class V>
  static void release_if_moved(V& v) noexcept {
    if constexpr (!std::is_lvalue_reference_v<A>) detail::HandedOver<std::decay_t<A>>::release(v);
  }

  Process() = default;
  void name_default();
  bool poll_status(int timeout_ms);
  void close_fds() noexcept;

  ProcessOptions options_;
  detail::ChildHandle child_;
  std::optional<int> wait_status_;  // raw wait status once known
};

}  // namespace weft::process
