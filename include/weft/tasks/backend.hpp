// weft/tasks/backend.hpp — where task states and results are kept: chosen by URL like brokers (memory://name,
// sqlite:///path). A result is stored as Celery's result meta JSON (../shared/celery/SPEC.md §5):
//   {"status": "SUCCESS", "result": 5, "traceback": null, "children": [], "date_done": "...", "task_id": "..."}
//   failure: "result": {"exc_type": "ValueError", "exc_message": ["..."], "exc_module": "builtins"}
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

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
  /// store() of each of `ms`, element i telling store()'s answer for ms[i]. sqlite://: one transaction and
  /// one durable commit for all of them (all or none: on an exception nothing was stored — except when the
  /// commit was made and only its sync failed: then weft::Error says so, and the results are stored but may
  /// not survive a power loss). The default calls
  /// store() for each, in order.
  virtual std::vector<bool> store_many(std::span<const ResultMeta> ms);
  /// True when store_many of many results costs about what one store() does (a durable commit), so that a
  /// worker should gather the results of its tasks and store them together. The default: false.
  virtual bool prefers_batches() const noexcept { return false; }
  /// The task's meta; nullopt when nothing was stored (PENDING to the caller).
  virtual std::optional<ResultMeta> get(std::string_view task_id) = 0;
  /// Waits until the task is ready or `deadline` passes (none: forever); returns the meta then (possibly not
  /// ready, possibly nullopt). Never busy-polls.
  virtual std::optional<ResultMeta> wait(std::string_view task_id,
                                         std::optional<std::chrono::steady_clock::time_point> deadline) = 0;
  /// Deletes what is stored for the task.
  virtual void forget(std::string_view task_id) = 0;
  /// Deletes at most `limit` stored results whose date_done is before `done_before` (Celery's
  /// result_expires: workers call it; see AppOptions::result_expires), and returns how many it deleted.
  /// Results without a date_done (STARTED) stay. Throws std::invalid_argument (limit 0), weft::Error.
  virtual std::size_t expire_results(SysTime done_before, std::size_t limit) = 0;

  // Small shared entries beside the results, for coordination between clients, workers and beats (worker
  // heartbeats "worker:<hostname>", revocations "revoked:<task id>", periodic-task claims "beat:...", chord
  // counters "chord:<group id>"). Keys and values are text; an entry with a time to live disappears that long
  // after it was written (wall clock, so that several processes agree). Keys are at most kMaxKey bytes, values
  // at most kMaxValue bytes (std::invalid_argument above, or for an empty key); a ttl must be above 0.

  static constexpr std::size_t kMaxKey = 512;
  static constexpr std::size_t kMaxValue = std::size_t{1} << 20;

  /// Sets `key` to `value` (replacing it), living `ttl` (none: until erased).
  virtual void put(std::string_view key, std::string_view value, std::optional<std::chrono::milliseconds> ttl) = 0;
  /// Sets `key` only when it is absent (or expired): true if this call set it. Atomic across processes: of
  /// several callers at once exactly one gets true (a lock, a once-per-period claim).
  virtual bool put_if_absent(std::string_view key, std::string_view value,
                             std::optional<std::chrono::milliseconds> ttl) = 0;
  /// The value of `key`, nullopt when absent or expired.
  virtual std::optional<std::string> read(std::string_view key) = 0;
  /// The live entries whose key starts with `prefix`, in key order, at most `limit` of them.
  virtual std::vector<std::pair<std::string, std::string>> scan(std::string_view prefix, std::size_t limit = 10'000) = 0;
  /// Adds `by` to the integer at `key` (absent or expired: 0) and returns the new value; `ttl` (if given)
  /// restarts its time to live. Atomic across processes. Throws ProtocolError when the value is not an integer.
  virtual std::int64_t incr(std::string_view key, std::int64_t by,
                            std::optional<std::chrono::milliseconds> ttl = std::nullopt) = 0;
  /// Removes `key`; false when it was absent (or expired).
  virtual bool erase(std::string_view key) = 0;

 protected:
  /// For implementations: throws std::invalid_argument for a key/value/ttl outside the limits above.
  static void check_entry(std::string_view key, std::string_view value, std::optional<std::chrono::milliseconds> ttl);
  /// For implementations: the integer an incr() finds (empty: 0). Throws ProtocolError for other text.
  static std::int64_t parse_counter(std::string_view key, std::string_view value);
};

/// Connects to the backend named by `url`. Throws std::invalid_argument, weft::Error.
std::shared_ptr<ResultBackend> connect_backend(std::string_view url);

}  // namespace weft::tasks
