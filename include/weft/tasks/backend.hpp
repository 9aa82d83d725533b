// weft/tasks/backend.hpp — where task states and results are kept: chosen by URL like brokers (memory://name,
// sqlite:///path). A result is stored as Celery's result meta JSON (../shared/celery/SPEC.md §5):
//   {"status": "SUCCESS", "result": 5, "traceback": null, "children": [], "date_done": "...", "task_id": "..."}
//   failure: "result": {"exc_type": "ValueError", "exc_message": ["..."], "exc_module": "builtins"}
#pragma once

#include <chrono>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include "weft/tasks/message.hpp"

namespace weft::tasks {

/// A task's states, Celery's names (state_name()).
enum class State { pending, received, started, retry, success, failure, revoked };

/// "PENDING", "RECEIVED", "STARTED", "RETRY", "SUCCESS", "FAILURE", "REVOKED".
std::string_view state_name(State s) noexcept;
/// The inverse of state_name. Throws ProtocolError for another name.
State parse_state(std::string_view name);
/// SUCCESS, FAILURE and REVOKED: the task will not change any more.
inline bool is_ready(State s) noexcept { return s == State::success || s == State::failure || s == State::revoked; }

/// What a backend keeps for one task.
struct ResultMeta {
  std::string task_id;
  State state = State::pending;
  Json result = nullptr;     ///< the value (SUCCESS); {"exc_type", "exc_message", "exc_module"} (FAILURE, RETRY,
                             ///< REVOKED); {"pid", "hostname"} (STARTED)
  std::string traceback;     ///< text; empty for none
  Json children = Json::array();
  std::optional<SysTime> date_done;
  std::string name;          ///< the task name, when known
  int retries = 0;
};

/// Celery's JSON form of a meta, and back (throws ProtocolError).
std::string encode_meta(const ResultMeta& m);
ResultMeta decode_meta(std::string_view json);

/// The result backend interface. Implementations are thread-safe.
class ResultBackend {
 public:
  virtual ~ResultBackend() = default;
  /// Stores (replaces) the task's meta. A ready state is final: storing over SUCCESS/FAILURE/REVOKED is
  /// ignored (returns false), so a duplicate delivery cannot overwrite the first result. Throws weft::Error
  /// for storage failures.
  virtual bool store(const ResultMeta& m) = 0;
  /// The task's meta; nullopt when nothing was stored (PENDING to the caller).
  virtual std::optional<ResultMeta> get(std::string_view task_id) = 0;
  /// Waits until the task is ready or `deadline` passes (none: forever); returns the meta then (possibly not
  /// ready, possibly nullopt). Never busy-polls.
  virtual std::optional<ResultMeta> wait(std::string_view task_id,
                                         std::optional<std::chrono::steady_clock::time_point> deadline) = 0;
  /// Deletes what is stored for the task.
  virtual void forget(std::string_view task_id) = 0;
};

/// Connects to the backend named by `url`. Throws std::invalid_argument, weft::Error.
std::shared_ptr<ResultBackend> connect_backend(std::string_view url);

}  // namespace weft::tasks
