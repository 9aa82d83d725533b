// weft/process/detail/pool_protocol.hpp — what a ProcessPool and its worker processes say to each other.
//
// Each worker has two Queues of its own (rings in shared memory, see ring.hpp): its inbox (tasks, from the
// pool) and its outbox (results, to the pool). A task message is a TaskHeader, the function's registered
// name (for kind call_by_name), then the msgpack-encoded arguments. A result message is a ResultHeader, the
// spans the task recorded in the worker (when tracing), then the msgpack-encoded result, or for status
// error the encoded pair [exception type, message].
//
// A shared control block (one per pool) holds, per worker slot, the id of the task it runs now and when it
// started (steady clock ns): the pool reads it to enforce per-task timeouts and to know which task a dead
// worker held. `collector_sleeping` tells workers that the pool's collector thread is blocked in epoll and
// must be woken by a write to the pool's eventfd after a result is put (a Dekker pair, as in ring.hpp).
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <tuple>
#include <type_traits>
#include <typeinfo>
#include <utility>
#include <vector>

#include "weft/process/detail/fd_passing.hpp"
#include "weft/process/serialize.hpp"

namespace weft::process::detail {

/// Runs a task in a worker: decodes `args`, calls `fn`, appends the encoded result to `out`. Throws what the
/// function throws, SerializationError when the arguments do not decode as its parameters.
using PoolTrampoline = void (*)(void* fn, std::string_view args, std::string& out);

/// Records `t` as a trampoline a worker may run (static initialisers). Never throws.
bool register_pool_trampoline(PoolTrampoline t) noexcept;
/// True when `t` was registered in this process image.
bool known_pool_trampoline(PoolTrampoline t) noexcept;

template <class R>
void pack_result(std::string& out, auto&& call) {
  if constexpr (std::is_void_v<R>) {
    call();
    pack_into(out, msgpack::type::nil_t());
  } else {
    pack_into(out, call());
  }
}

/// One call: args is the tuple of parameters.
template <class R, class... P>
struct CallInvoker {
  using Fn = R (*)(P...);
  static void run(void* fn, std::string_view args, std::string& out) {
    auto decoded = unpack<std::tuple<std::decay_t<P>...>>(args);
    pack_result<R>(out, [&] { return std::apply(reinterpret_cast<Fn>(fn), std::move(decoded)); });
  }
  static inline const bool registered = register_pool_trampoline(&run);
};

/// A chunk of map(): args is a vector of single parameters, the result a vector of results.
template <class R, class P>
struct MapInvoker {
  using Fn = R (*)(P);
  static void run(void* fn, std::string_view args, std::string& out) {
    auto items = unpack<std::vector<std::decay_t<P>>>(args);
    std::vector<R> results;
    results.reserve(items.size());
    for (auto& item : items) results.push_back(reinterpret_cast<Fn>(fn)(std::move(item)));
    pack_into(out, results);
  }
  static inline const bool registered = register_pool_trampoline(&run);
};

/// A chunk of starmap(): args is a vector of parameter tuples.
template <class R, class... P>
struct StarmapInvoker {
  using Fn = R (*)(P...);
  static void run(void* fn, std::string_view args, std::string& out) {
    auto items = unpack<std::vector<std::tuple<std::decay_t<P>...>>>(args);
    std::vector<R> results;
    results.reserve(items.size());
    for (auto& item : items) results.push_back(std::apply(reinterpret_cast<Fn>(fn), std::move(item)));
    pack_into(out, results);
  }
  static inline const bool registered = register_pool_trampoline(&run);
};

/// A function registered by name: what a worker needs to call it, and what the pool checks at submit.
struct NamedFunction {
  PoolTrampoline trampoline = nullptr;
  void* fn = nullptr;
  const std::type_info* result = nullptr;
};
void register_named(std::string_view name, NamedFunction f);
/// The registered function `name`, or nullptr.
const NamedFunction* find_named(std::string_view name) noexcept;

enum class TaskKind : std::uint32_t { call = 1, call_by_name = 2 };
enum class ResultStatus : std::uint32_t { ok = 0, error = 1, initializer_failed = 2 };

struct TaskHeader {
  std::uint64_t id;
  std::uint64_t trampoline;
  std::uint64_t fn;
  TaskKind kind;
  std::uint32_t name_length;
};

struct ResultHeader {
  std::uint64_t id;
  std::uint64_t start_ticks;
  std::uint64_t end_ticks;
  ResultStatus status;
  std::uint32_t spans_length;
};

struct alignas(64) WorkerSlot {
  std::atomic<std::uint64_t> current;    // id of the task running now, 0 when none
  std::atomic<std::int64_t> started_ns;  // steady clock, when `current` started
  std::atomic<std::uint32_t> ready;      // set once the initializer has run
};

struct ControlBlock {
  static constexpr std::uint32_t kMaxWorkers = 1024;
  alignas(64) std::atomic<std::uint32_t> collector_sleeping;
  // Threads of the pool's process that wait on a future and collect results themselves, asleep on the
  // `results` futex: a worker bumps it and wakes them after a result (same Dekker pairing as above).
  alignas(64) std::atomic<std::uint32_t> results;
  std::atomic<std::uint32_t> waiters_sleeping;
  // Threads of the pool's process inside help() (collecting results themselves): while there are any, a
  // worker does not wake the sleeping collector thread.
  std::atomic<std::uint32_t> helpers_active;
  WorkerSlot slots[kMaxWorkers];
};

/// How a worker process is set up (sent as a Process argument).
struct WorkerConfig {
  std::uint32_t index = 0;
  std::uint64_t max_tasks = 0;
  bool trace = false;
  std::uint64_t init_trampoline = 0;
  std::uint64_t init_fn = 0;
  std::string init_args;
  std::string pool_name;
  MSGPACK_DEFINE(index, max_tasks, trace, init_trampoline, init_fn, init_args, pool_name)
};

/// An owned descriptor that travels as a Process argument.
class Fd {
 public:
  Fd() = default;
  explicit Fd(int fd) noexcept : fd_(fd) {}
  Fd(Fd&& o) noexcept : fd_(std::exchange(o.fd_, -1)) {}
  Fd& operator=(Fd&& o) noexcept;
  Fd(const Fd&) = delete;
  Fd& operator=(const Fd&) = delete;
  ~Fd();
  int get() const noexcept { return fd_; }
  int release() noexcept { return std::exchange(fd_, -1); }

 private:
  int fd_ = -1;
};

}  // namespace weft::process::detail

namespace weft::process {
class Queue;
namespace detail {
/// The worker process's main loop (pool_worker.cpp). `init_fds` are the descriptors of handles among the
/// initializer's arguments, in the order their indices in cfg.init_args refer to.
void pool_worker_main(Queue inbox, Queue outbox, Fd control, Fd wake, WorkerConfig cfg, std::vector<Fd> init_fds);
/// Duplicates every descriptor of `fds` (close-on-exec). Throws std::system_error.
std::shared_ptr<std::vector<Fd>> dup_all(const std::vector<int>& fds);
}  // namespace detail
}  // namespace weft::process

template <>
struct weft::process::serializable<weft::process::detail::Fd> : std::true_type {};

namespace msgpack {
MSGPACK_API_VERSION_NAMESPACE(MSGPACK_DEFAULT_API_NS) {
namespace adaptor {
template <>
struct pack<weft::process::detail::Fd> {
  template <class Stream>
  packer<Stream>& operator()(packer<Stream>& o, const weft::process::detail::Fd& f) const {
    o.pack(weft::process::detail::export_fd(f.get(), "descriptor"));
    return o;
  }
};
template <>
struct as<weft::process::detail::Fd> {
  weft::process::detail::Fd operator()(const msgpack::object& o) const {
    return weft::process::detail::Fd(weft::process::detail::import_fd(o.as<std::uint32_t>(), "descriptor"));
  }
};
}  // namespace adaptor
}  // MSGPACK_API_VERSION_NAMESPACE(MSGPACK_DEFAULT_API_NS)
}  // namespace msgpack
