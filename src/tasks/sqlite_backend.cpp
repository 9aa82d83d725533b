// The SQLite result backend: one row of weft_results per task (status name, result and children as JSON text,
// traceback, date_done in microseconds since the epoch, task name, retries).
//  1. store() reads the row and writes the new one in one BEGIN IMMEDIATE transaction, so that of two
//     processes storing at once the first ready state (SUCCESS, FAILURE, REVOKED) wins and the second store
//     returns false; then it wakes this process's waiters (other processes see the WAL change).
//  2. wait() takes a ChangeWatch snapshot (sqlite_db.hpp), reads the row, and if it is not ready sleeps until
//     the database changes, its deadline, or the safety-net recheck, then reads again.
// Thread safety: any member from any thread; one connection per object used under mutex_.
#include "sqlite_backend.hpp"

#include <array>
#include <mutex>
#include <stdexcept>
#include <utility>

namespace weft::tasks::detail {

namespace {

using SteadyClock = std::chrono::steady_clock;

// Celery's state names, in the order of State. Kept here rather than shared with state_name() so that the
// stored form cannot change when the text form for users does.
constexpr std::array<std::pair<State, std::string_view>, 7> kStatus{{
    {State::pending, "PENDING"},
    {State::received, "RECEIVED"},
    {State::started, "STARTED"},
    {State::retry, "RETRY"},
    {State::success, "SUCCESS"},
    {State::failure, "FAILURE"},
    {State::revoked, "REVOKED"},
}};

std::string_view status_text(State s) {
  for (const auto& [state, name] : kStatus) {
    if (state == s) return name;
  }
  throw std::invalid_argument("weft: sqlite backend: a task state out of range");
}

void check_task_id(std::string_view id) {
  if (id.empty()) throw std::invalid_argument("weft: sqlite backend: the task id is empty");
}

class SqliteBackend final : public ResultBackend {
 public:
  SqliteBackend(const std::string& path, const SqliteOptions& options)
      : options_(options), db_(path, options), watch_(ChangeWatch::of(db_.canonical_path())) {}

  bool store(const ResultMeta& m) override {
    check_task_id(m.task_id);
    // Serialised before the transaction: a value that is not valid JSON text (json's type_error) fails here.
    const std::string result = m.result.dump();
    const std::string children = m.children.dump();
    const std::string_view status = status_text(m.state);
    {
      std::scoped_lock lock(mutex_);
      Transaction txn(db_, "store");
      {
        auto u = db_.cached("SELECT status FROM weft_results WHERE task_id = ?1").use("store");
        u.bind(1, m.task_id);
        if (u.step() && is_ready(parse_status(u.text(0), m.task_id))) return false;  // rolled back: read only
      }
      auto u = db_.cached(
                      "INSERT OR REPLACE INTO weft_results (task_id, status, result, traceback, children, "
                      "date_done, name, retries) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)")
                   .use("store");
      u.bind(1, m.task_id).bind(2, status).bind(3, result).bind(4, m.traceback).bind(5, children);
      if (m.date_done) {
        u.bind(6, to_us(*m.date_done));
      } else {
        u.bind_null(6);
      }
      u.bind(7, m.name).bind(8, std::int64_t{m.retries}).run();
      txn.commit();
    }
    watch_->poke();
    return true;
  }

  std::optional<ResultMeta> get(std::string_view task_id) override {
    check_task_id(task_id);
    std::scoped_lock lock(mutex_);
    auto u = db_.cached(
                    "SELECT status, result, traceback, children, date_done, name, retries FROM weft_results "
                    "WHERE task_id = ?1")
                 .use("get");
    u.bind(1, task_id);
    if (!u.step()) return std::nullopt;
    ResultMeta m;
    m.task_id = std::string(task_id);
    m.state = parse_status(u.text(0), m.task_id);
    m.result = parse_json(u.text(1), "result", m.task_id);
    m.traceback = u.text(2);
    m.children = parse_json(u.text(3), "children", m.task_id);
    if (!u.is_null(4)) m.date_done = from_us(u.int64(4));
    m.name = u.text(5);
    m.retries = static_cast<int>(u.int64(6));
    return m;
  }

  std::optional<ResultMeta> wait(std::string_view task_id,
                                 std::optional<SteadyClock::time_point> deadline) override {
    check_task_id(task_id);
    for (;;) {
      // The snapshot comes before the read, so a store made after the read wakes the wait below.
      const std::uint64_t seen = watch_->snapshot();
      auto m = get(task_id);
      if (m && is_ready(m->state)) return m;
      const auto now = SteadyClock::now();
      if (deadline && now >= *deadline) return m;
      auto until = now + options_.recheck;
      if (deadline) until = std::min(until, *deadline);
      watch_->wait_changed(seen, until, nullptr);
    }
  }

  void forget(std::string_view task_id) override {
    check_task_id(task_id);
    std::scoped_lock lock(mutex_);
    Transaction txn(db_, "forget");
    db_.cached("DELETE FROM weft_results WHERE task_id = ?1").use("forget").bind(1, task_id).run();
    txn.commit();
  }

 private:
  State parse_status(const std::string& text, const std::string& task_id) const {
    for (const auto& [state, name] : kStatus) {
      if (name == text) return state;
    }
    throw ProtocolError("weft: sqlite get '" + db_.path() + "': task '" + task_id + "' has the unknown status '" +
                        text + "'");
  }

  Json parse_json(const std::string& text, const char* column, const std::string& task_id) const {
    try {
      return Json::parse(text);
    } catch (const Json::parse_error& e) {
      throw ProtocolError("weft: sqlite get '" + db_.path() + "': the " + column + " of task '" + task_id +
                          "' is not JSON: " + e.what());
    }
  }

  const SqliteOptions options_;
  std::mutex mutex_;  // guards db_
  Database db_;
  const std::shared_ptr<ChangeWatch> watch_;
};

}  // namespace

std::shared_ptr<ResultBackend> make_sqlite_backend(const std::string& path) {
  return make_sqlite_backend(path, {});
}

std::shared_ptr<ResultBackend> make_sqlite_backend(const std::string& path, const SqliteOptions& options) {
  return std::make_shared<SqliteBackend>(path, options);
}

}  // namespace weft::tasks::detail
