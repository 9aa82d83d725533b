// weft/tasks/app.hpp — the task queue's client side: an App (broker + result backend + registry), typed tasks,
// calls (in place, delay, apply_async, send_task) and AsyncResult.
//
//   int add(int a, int b) { return a + b; }
//   weft::tasks::App app({.broker = "sqlite:///var/tmp/q.db", .backend = "sqlite:///var/tmp/q.db"});
//   auto add_task = app.task<&add>("demo.add", {.max_retries = 5});
//   int now = add_task(2, 3);                       // runs here
//   weft::tasks::AsyncResult r = add_task.delay(2, 3);  // a worker runs it
//   int five = r.get<int>(std::chrono::seconds(10));
//
// Arguments travel as JSON (Celery's default serializer; msgpack with AppOptions/TaskOptions/CallOptions
// ::serializer) and are converted to the parameter types by the
// worker; a mismatch fails the task with a TypeError-like RemoteError instead of crashing the worker. Any type
// with nlohmann::json's to_json/from_json (NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE) can be an argument or result.
#pragma once

#include <array>
#include <chrono>
#include <cstddef>
#include <exception>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <tuple>
#include <type_traits>
#include <unordered_map>
#include <utility>
#include <vector>

#include "weft/core/errors.hpp"
#include "weft/io/loop.hpp"
#include "weft/io/task.hpp"
#include "weft/tasks/backend.hpp"
#include "weft/tasks/broker.hpp"
#include "weft/tasks/message.hpp"

namespace weft::tasks {

/// Thrown inside a task to ask for it to run again later (Celery's self.retry()). With no delay, the
/// task's retry policy decides. Counts against max_retries; past it the task fails with `reason`.
class Retry : public weft::Error {
 public:
  explicit Retry(std::string reason = "retry requested", std::optional<std::chrono::milliseconds> delay = {})
      : weft::Error("weft: " + reason), delay_(delay) {}
  std::optional<std::chrono::milliseconds> delay() const noexcept { return delay_; }

 private:
  std::optional<std::chrono::milliseconds> delay_;
};

/// Arguments that do not fit the task's parameters (count or types). The task fails with it (type
/// "TypeError"); it is never retried.
class ArgumentError : public weft::Error {
 public:
  using weft::Error::Error;
};

/// Per-task options (Celery's task options).
struct TaskOptions {
  int max_retries = 3;                                  ///< retries after the first run; -1: no limit
  std::chrono::milliseconds retry_delay{1000};          ///< the first retry's delay
  double retry_backoff = 2.0;                           ///< each retry waits this many times longer (1: fixed)
  std::chrono::milliseconds retry_backoff_max{600'000}; ///< the longest delay
  bool retry_jitter = true;                             ///< a random delay in [delay/2, delay] instead of delay
  /// Exceptions that retry the task automatically (others fail it). Null: none (only Retry retries).
  std::function<bool(const std::exception&)> autoretry_for{};
  bool acks_late = true;                          ///< acknowledge after the task ran (at-least-once)
  std::optional<std::chrono::milliseconds> time_limit{};     ///< hard: the task's result is abandoned, FAILURE
  std::optional<std::chrono::milliseconds> soft_time_limit{};  ///< recorded; the task can poll soft_time_limit_exceeded()
  std::optional<double> rate_limit{};             ///< tasks per second per worker
  bool ignore_result = false;                     ///< store no result (SUCCESS/FAILURE) for it
  std::string queue = "celery";
  int priority = 0;                               ///< 0-9, higher first
  std::optional<Serializer> serializer{};         ///< the body's encoding (default: the App's)
};

/// retry_on<A, B>(): an autoretry_for that matches exceptions of those types (or derived from them).
template <class... E>
std::function<bool(const std::exception&)> retry_on() {
  return [](const std::exception& e) { return ((dynamic_cast<const E*>(&e) != nullptr) || ...); };
}

/// Options of one call (Celery's apply_async).
struct CallOptions {
  std::optional<std::chrono::milliseconds> countdown{};
  std::optional<SysTime> eta{};
  std::optional<std::chrono::milliseconds> expires_in{};
  std::optional<SysTime> expires{};
  std::optional<int> priority{};
  std::optional<std::string> queue{};
  std::optional<std::string> task_id{};
  Json headers = Json::object();  ///< extra headers
  std::optional<Serializer> serializer{};  ///< the body's encoding (default: the task's, else the App's)
};

class App;

/// How a revocation acts (AsyncResult::revoke).
struct RevokeOptions {
  /// Also end the task if it is running: its worker stores REVOKED at once, acknowledges it and discards the
  /// task's own result. How the task itself stops depends on the pool: Pool::processes kills its process
  /// (SIGKILL; the pool replaces it); Pool::async_ cancels its coroutine (weft::Cancelled at its current
  /// await); Pool::threads cannot stop a thread safely: the function runs on until it returns, and
  /// TaskContext::cancelled() tells it to stop.
  bool terminate = false;
  /// How long workers remember the revocation: a message of the task that reaches a worker later than this
  /// runs. Covers the time the task may wait in a queue (countdown, eta, backlog).
  std::chrono::milliseconds remember{std::chrono::hours(24)};
};

/// A live worker, as its latest heartbeat describes it (weft/tasks/worker.hpp).
struct WorkerInfo {
  std::string hostname;
  long pid = 0;
  int cpus = 0;
  std::string pool;                     ///< "threads", "processes" or "async"
  std::size_t concurrency = 0;
  std::vector<std::string> queues;
  Json active = Json::array();          ///< running: [{"id", "name", "retries", "runtime" (s), "delivery_count"}]
  std::size_t reserved = 0;             ///< prefetched, waiting for a thread
  std::size_t prefetch = 0;             ///< its prefetch limit
  Json stats = Json::object();          ///< the worker's counters (WorkerStats)
  std::vector<std::string> registered;  ///< its task names
  std::array<double, 3> loadavg{};      ///< the machine's 1, 5, 15 minute load
  SysTime timestamp{};                  ///< when the heartbeat was written
  double freq = 0;                      ///< seconds between heartbeats
  Json raw = Json::object();            ///< the whole heartbeat
};

/// A task call that is not sent yet (Celery's signature): used by the canvas (chain, group, chord;
/// weft/tasks/canvas.hpp) and as link / link_error callbacks. Travels inside messages as Celery's JSON
/// signature {"task", "args", "kwargs", "options", "subtask_type", "immutable"} (canvas.hpp converts).
struct Signature {
  std::string task;                ///< the registered task name
  Json args = Json::array();
  Json kwargs = Json::object();
  CallOptions options{};
  bool immutable = false;          ///< true: a parent's result is not prepended to args (Celery's .si())
  std::vector<Signature> link{};       ///< called with this task's result when it succeeds
  std::vector<Signature> link_error{};  ///< called with this task's id when it fails
};

/// A handle on a task's state and result in the backend. Copyable; thread-safe (it holds only ids).
class AsyncResult {
 public:
  AsyncResult(std::shared_ptr<ResultBackend> backend, std::string id) : backend_(std::move(backend)), id_(std::move(id)) {}

  const std::string& id() const noexcept { return id_; }
  /// The current state (PENDING when nothing is stored). Throws weft::Error (backend failure).
  State state() const;
  /// True once SUCCESS, FAILURE or REVOKED.
  bool ready() const { return is_ready(state()); }
  bool successful() const { return state() == State::success; }
  bool failed() const { return state() == State::failure; }
  /// The stored meta (nullopt: PENDING).
  std::optional<ResultMeta> meta() const { return backend_->get(id_); }

  /// Waits for the result (none: forever) and returns it as JSON. Throws weft::Timeout (not ready in time),
  /// weft::RemoteError (FAILURE: the task's exception type, message and traceback), weft::Cancelled
  /// (REVOKED).
  Json get_json(std::optional<std::chrono::nanoseconds> timeout = std::nullopt) const;
  /// The same, converted to T (nlohmann from_json). Throws ArgumentError if the result is not a T.
  template <class T>
  T get(std::optional<std::chrono::nanoseconds> timeout = std::nullopt) const {
    Json j = get_json(timeout);
    if constexpr (std::is_void_v<T>) {
      return;
    } else {
      try {
        return j.get<T>();
      } catch (const Json::exception& e) {
        throw ArgumentError("weft: the result of task " + id_ + " is not of the type asked for: " + e.what());
      }
    }
  }
  /// Deletes the stored result.
  void forget() const { backend_->forget(id_); }
  /// Revokes the task: a worker that receives it later stores REVOKED instead of running it; with
  /// options.terminate a running one is ended too (RevokeOptions). Throws std::invalid_argument (remember not
  /// above 0), weft::Error (backend failure).
  void revoke(const RevokeOptions& options = {}) const;

  /// A weft::Future of the result: get() runs as a task of `executor` (any weft executor, e.g. a ThreadPool
  /// kept for waiting), which it occupies while it waits. Throws what executor.submit throws.
  template <class T, class Executor>
  auto to_future(Executor& executor, std::optional<std::chrono::nanoseconds> timeout = std::nullopt) const {
    return executor.submit([self = *this, timeout] { return self.get<T>(timeout); });
  }

 private:
  std::shared_ptr<ResultBackend> backend_;
  std::string id_;
};

namespace detail {
// A registered task: converts JSON arguments to the parameters, calls, converts the result to JSON.
struct TaskEntry {
  std::string name;
  TaskOptions options;
  // Runs it on the calling thread (an async task on an event loop of its own, until it finishes).
  std::function<Json(const Json& args, const Json& kwargs)> invoke;
  // Async tasks only (null otherwise): the coroutine, for a running event loop (Pool::async_). Converts the
  // arguments when it starts (ArgumentError at its co_await).
  std::function<io::Task<Json>(const Json& args, const Json& kwargs)> invoke_async;
};

template <class T>
using Decay = std::remove_cvref_t<T>;

template <class T>
Decay<T> convert_arg(const Json& args, std::size_t i, std::string_view task) {
  try {
    return args.at(i).get<Decay<T>>();
  } catch (const Json::exception& e) {
    throw ArgumentError(std::string(task) + "() argument " + std::to_string(i + 1) + ": cannot take " +
                        args.at(i).dump().substr(0, 100) + " (" + e.what() + ")");
  }
}

// Throws ArgumentError unless `args` are n positional arguments and there are no keyword arguments.
inline void check_arity(const Json& args, const Json& kwargs, std::size_t n, std::string_view name) {
  if (!args.is_array() || args.size() != n) {
    throw ArgumentError(std::string(name) + "() takes " + std::to_string(n) + " positional arguments but " +
                        std::to_string(args.is_array() ? args.size() : 0) + " were given");
  }
  if (kwargs.is_object() && !kwargs.empty()) {
    throw ArgumentError(std::string(name) + "() got keyword arguments (" + kwargs.dump().substr(0, 100) +
                        "); C++ tasks take positional arguments only");
  }
}

template <class T>
struct IoTaskValue {
  static constexpr bool is_async = false;
};
template <class T>
struct IoTaskValue<io::Task<T>> {
  static constexpr bool is_async = true;
  using type = T;
};

template <auto F, class R, class... A, std::size_t... I>
Json invoke_json(const Json& args, const Json& kwargs, std::string_view name, std::index_sequence<I...>) {
  check_arity(args, kwargs, sizeof...(A), name);
  if constexpr (std::is_void_v<R>) {
    F(convert_arg<A>(args, I, name)...);
    return nullptr;
  } else {
    return Json(F(convert_arg<A>(args, I, name)...));
  }
}

// An async task's call: the converted arguments live in this coroutine's frame, so a task taking references
// (const std::string&) reads them safely across its suspensions.
template <auto F, class V, class... A, std::size_t... I>
io::Task<Json> invoke_async_json(Json args, Json kwargs, std::string name, std::index_sequence<I...>) {
  check_arity(args, kwargs, sizeof...(A), name);
  std::tuple<Decay<A>...> values{convert_arg<A>(args, I, name)...};
  io::Task<V> call = F(std::get<I>(values)...);
  if constexpr (std::is_void_v<V>) {
    co_await std::move(call);
    co_return Json(nullptr);
  } else {
    V v = co_await std::move(call);
    co_return Json(std::move(v));
  }
}

template <auto F>
struct FnTraits;
template <class R, class... A, R (*F)(A...)>
struct FnTraits<F> {
  using Result = R;
  /// True for a coroutine task (returning io::Task<V>); its Value is V.
  static constexpr bool is_async = IoTaskValue<R>::is_async;
  using Value = typename std::conditional_t<is_async, IoTaskValue<R>, std::type_identity<R>>::type;
  using Args = std::tuple<Decay<A>...>;
  static Json invoke(const Json& args, const Json& kwargs, std::string_view name) {
    if constexpr (is_async) {
      return io::run(invoke_async(args, kwargs, std::string(name)));
    } else {
      return invoke_json<F, R, A...>(args, kwargs, name, std::index_sequence_for<A...>{});
    }
  }
  static io::Task<Json> invoke_async(const Json& args, const Json& kwargs, std::string name)
    requires is_async
  {
    return invoke_async_json<F, Value, A...>(args, kwargs, std::move(name), std::index_sequence_for<A...>{});
  }
};
}  // namespace detail

/// Where an App's broker and results live.
struct AppOptions {
  std::string broker = "memory://";
  std::string backend = "memory://";
  std::string name = "weft";
  Serializer serializer = Serializer::json;  ///< how calls' arguments travel (JSON, or msgpack)
  /// How long results are kept (Celery's result_expires): the App's workers delete the results stored longer
  /// ago than this (ResultBackend::expire_results) when they start and then every tenth of it (at least every
  /// second, at most every hour). A result of a task that expired reads as PENDING. Nullopt: kept until
  /// forgotten. Above 0, at most kMaxResultExpires.
  std::optional<std::chrono::milliseconds> result_expires = std::chrono::hours(24);
};

/// The longest AppOptions::result_expires: 100 years.
inline constexpr std::chrono::milliseconds kMaxResultExpires = std::chrono::hours(24 * 365 * 100);

/// A typed task handle returned by App::task. Copyable; thread-safe.
template <auto F>
class Task {
 public:
  /// What the function returns: for an async task, its io::Task<Value>.
  using Result = typename detail::FnTraits<F>::Result;
  /// The result's value: Result, or V for an async task returning io::Task<V>.
  using Value = typename detail::FnTraits<F>::Value;
  /// True for an async task (a coroutine returning io::Task<V>).
  static constexpr bool is_async = detail::FnTraits<F>::is_async;

  /// Runs the function here, now (no broker, no result stored). An async task's coroutine is returned, not
  /// started: co_await it on an event loop.
  template <class... A>
  Result operator()(A&&... a) const {
    return F(std::forward<A>(a)...);
  }
  /// Runs the function here and returns its value: an async task runs to completion on an event loop of its
  /// own on this thread (io::run). Throws what the task throws; weft::Error when this thread already runs
  /// an event loop (co_await operator()'s coroutine there instead).
  template <class... A>
  Value run_here(A&&... a) const {
    if constexpr (is_async) {
      return io::run(F(std::forward<A>(a)...));
    } else {
      return F(std::forward<A>(a)...);
    }
  }
  /// Sends a call with default options.
  template <class... A>
  AsyncResult delay(A&&... a) const;
  /// Sends a call with options.
  template <class... A>
  AsyncResult apply_async(const CallOptions& options, A&&... a) const;
  /// A signature of a call (Celery's .s()): in a chain, the previous task's result is prepended to `a`.
  template <class... A>
  Signature s(A&&... a) const {
    return Signature{name_, Json::array({Json(std::forward<A>(a))...}), Json::object(), defaults(), false};
  }
  /// An immutable signature (Celery's .si()): the arguments stay exactly `a`.
  template <class... A>
  Signature si(A&&... a) const {
    return Signature{name_, Json::array({Json(std::forward<A>(a))...}), Json::object(), defaults(), true};
  }
  const std::string& name() const noexcept { return name_; }

 private:
  friend class App;
  CallOptions defaults() const;
  Task(App* app, std::string name) : app_(app), name_(std::move(name)) {}
  App* app_;
  std::string name_;
};

/// The task queue's entry point: broker, backend and the registry of tasks.
/// Thread safety: register tasks before workers start; everything else may be called from any thread.
class App {
 public:
  /// Connects to the broker and backend. Throws std::invalid_argument (bad URL), weft::Error.
  explicit App(AppOptions options = {});

  /// Registers F under `name`. Throws std::invalid_argument (empty name, or registered already).
  /// F is a function, or a coroutine returning io::Task<V> (an async task, for I/O-bound work): a worker
  /// with Pool::async_ runs many of those at once on one event loop thread; the other pools run each on an
  /// event loop of its own for the call. An async task's parameters may be references: the converted
  /// arguments outlive its coroutine.
  template <auto F>
  Task<F> task(std::string name, TaskOptions options = {}) {
    detail::TaskEntry e{name, std::move(options), [n = name](const Json& args, const Json& kwargs) {
                          return detail::FnTraits<F>::invoke(args, kwargs, n);
                        }, {}};
    if constexpr (detail::FnTraits<F>::is_async) {
      e.invoke_async = [n = name](const Json& args, const Json& kwargs) {
        return detail::FnTraits<F>::invoke_async(args, kwargs, n);
      };
    }
    add_entry(std::move(e));
    return Task<F>(this, std::move(name));
  }

  /// Sends a call of the task registered (anywhere) under `name`, with JSON arguments. Throws
  /// MessageTooLarge, weft::Error (broker failure).
  AsyncResult send_task(const std::string& name, Json args = Json::array(), Json kwargs = Json::object(),
                        const CallOptions& options = {});

  /// The message send_task would publish for this call (id, eta/expires from the options, the registered
  /// task's queue, priority, limits, ignore_result and serializer unless the options say otherwise). Throws
  /// std::invalid_argument (no name).
  TaskMessage make_message(const std::string& name, Json args, Json kwargs, const CallOptions& options) const;

  /// Publishes a message built by the caller (canvas and tools use this; send_task builds one). Fills an empty
  /// id (a new UUID), root_id (the id) and origin. Throws MessageTooLarge, weft::Error (broker failure).
  AsyncResult send_message(TaskMessage m);

  /// Revokes task `id` (AsyncResult::revoke).
  void revoke(const std::string& id, const RevokeOptions& options = {}) const { result(id).revoke(options); }
  /// The live workers, from their heartbeats in the backend (those heard from within three heartbeats), by
  /// hostname. Throws weft::Error (backend failure); skips a heartbeat that cannot be read.
  std::vector<WorkerInfo> workers() const;

  /// Publishes several messages at once, all or none (Broker::publish_many: on sqlite:// one durable commit
  /// instead of one per message); fills each as send_message does. Throws std::invalid_argument (above
  /// kMaxPublishBatch messages, or one without a task name), MessageTooLarge, weft::Error; nothing is sent
  /// then.
  std::vector<AsyncResult> send_many(std::vector<TaskMessage> messages);

  /// The registered task `name`, or null.
  const detail::TaskEntry* find(std::string_view name) const;
  std::vector<std::string> registered() const;

  Broker& broker() const noexcept { return *broker_; }
  ResultBackend& backend() const noexcept { return *backend_; }
  const std::shared_ptr<ResultBackend>& backend_ptr() const noexcept { return backend_; }
  const AppOptions& options() const noexcept { return options_; }
  /// A handle on any task id.
  AsyncResult result(std::string id) const { return AsyncResult(backend_, std::move(id)); }

 private:
  void add_entry(detail::TaskEntry e);
  AppOptions options_;
  std::string origin_;  // "<pid>@<host>"
  std::shared_ptr<Broker> broker_;
  std::shared_ptr<ResultBackend> backend_;
  mutable std::mutex mu_;
  std::unordered_map<std::string, std::shared_ptr<const detail::TaskEntry>> tasks_;
};

template <auto F>
CallOptions Task<F>::defaults() const {
  CallOptions o;
  if (const auto* e = app_->find(name_)) {
    o.queue = e->options.queue;
    o.priority = e->options.priority;
  }
  return o;
}

template <auto F>
template <class... A>
AsyncResult Task<F>::delay(A&&... a) const {
  return apply_async(CallOptions{}, std::forward<A>(a)...);
}

template <auto F>
template <class... A>
AsyncResult Task<F>::apply_async(const CallOptions& options, A&&... a) const {
  static_assert(std::is_invocable_v<decltype(F), A...>, "the arguments do not fit the task's parameters");
  CallOptions o = options;
  if (const auto* e = app_->find(name_)) {
    if (!o.queue) o.queue = e->options.queue;
    if (!o.priority) o.priority = e->options.priority;
  }
  return app_->send_task(name_, Json::array({Json(std::forward<A>(a))...}), Json::object(), o);
}

}  // namespace weft::tasks
