// The SQLite result backend: one row of weft_results per task (status name, result and children as JSON text,
// traceback, date_done in microseconds since the epoch, task name, retries).
//  1. store() reads the row and writes the new one in one BEGIN IMMEDIATE transaction, so that of two
//     processes storing at once the first ready state (SUCCESS, FAILURE, REVOKED) wins and the second store
//     returns false; then it wakes this process's waiters (other processes see the WAL change).
//  2. wait() takes a ChangeWatch snapshot (sqlite_db.hpp), reads the row, and if it is not ready sleeps until
//     the database changes, its deadline, or the safety-net recheck, then reads again.
// Thread safety: any member from any thread; one connection per object used under mutex_.
#include "sqlite_backend.hpp"

#include <algorithm>
#include <array>
#include <cstdint>
#include <vector>
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

  bool store(const ResultMeta& m) override { return store_many(std::span(&m, 1)).front(); }

  std::vector<bool> store_many(std::span<const ResultMeta> ms) override {
    // Serialised before the transaction: a value that is not valid JSON text (json's type_error) fails here.
    std::vector<std::pair<std::string, std::string>> texts;  // result, children
    texts.reserve(ms.size());
    for (const ResultMeta& m : ms) {
      check_task_id(m.task_id);
      texts.emplace_back(m.result.dump(), m.children.dump());
    }
    std::vector<bool> stored(ms.size(), false);
    if (ms.empty()) return stored;
    bool any = false;
    {
      std::unique_lock lock(mutex_);
      Transaction txn(db_, "store");
      for (std::size_t i = 0; i < ms.size(); ++i) {
        const ResultMeta& m = ms[i];
        {
          auto u = db_.cached("SELECT status FROM weft_results WHERE task_id = ?1").use("store");
          u.bind(1, m.task_id);
          if (u.step() && is_ready(parse_status(u.text(0), m.task_id))) continue;  // final already
        }
        auto u = db_.cached(
                        "INSERT OR REPLACE INTO weft_results (task_id, status, result, traceback, children, "
                        "date_done, name, retries) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)")
                     .use("store");
        u.bind(1, m.task_id).bind(2, status_text(m.state)).bind(3, texts[i].first).bind(4, m.traceback);
        u.bind(5, texts[i].second);
        if (m.date_done) {
          u.bind(6, to_us(*m.date_done));
        } else {
          u.bind_null(6);
        }
        u.bind(7, m.name).bind(8, std::int64_t{m.retries}).run();
        stored[i] = true;
        any = true;
      }
      if (any) commit_durably(txn, db_, lock);  // otherwise rolled back: it only read
    }
    if (any) watch_->poke();
    return stored;
  }

  bool prefers_batches() const noexcept override { return true; }

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

  std::size_t expire_results(SysTime done_before, std::size_t limit) override {
    if (limit == 0) throw std::invalid_argument("weft: expire_results with a limit of 0");
    std::scoped_lock lock(mutex_);
    // Lazy: a power loss that undoes it leaves results a while longer, to be deleted by the next call.
    Transaction txn(db_, "expire_results", Durability::lazy);
    db_.cached("DELETE FROM weft_results WHERE rowid IN (SELECT rowid FROM weft_results WHERE date_done < ?1 "
               "LIMIT ?2)")
        .use("expire_results")
        .bind(1, to_us(done_before))
        .bind(2, static_cast<std::int64_t>(std::min<std::size_t>(limit, INT64_MAX)))
        .run();
    const auto n = static_cast<std::size_t>(db_.changes());
    (void)txn.commit();
    return n;
  }

  void forget(std::string_view task_id) override {
    check_task_id(task_id);
    std::unique_lock lock(mutex_);
    Transaction txn(db_, "forget");
    db_.cached("DELETE FROM weft_results WHERE task_id = ?1").use("forget").bind(1, task_id).run();
    commit_durably(txn, db_, lock);
  }

  void put(std::string_view key, std::string_view value, std::optional<std::chrono::milliseconds> ttl) override {
    check_entry(key, value, ttl);
    {
      std::unique_lock lock(mutex_);
      Transaction txn(db_, "put");
      set_locked(key, value, ttl, "put");
      commit_durably(txn, db_, lock);
    }
    watch_->poke();
  }

  bool put_if_absent(std::string_view key, std::string_view value,
                     std::optional<std::chrono::milliseconds> ttl) override {
    check_entry(key, value, ttl);
    {
      std::unique_lock lock(mutex_);
      // BEGIN IMMEDIATE: one writer at a time across processes, so the read and the write below are atomic.
      Transaction txn(db_, "put_if_absent");
      if (live_locked(key, "put_if_absent")) return false;  // rolled back: nothing written
      set_locked(key, value, ttl, "put_if_absent");
      commit_durably(txn, db_, lock);
    }
    watch_->poke();
    return true;
  }

  std::optional<std::string> read(std::string_view key) override {
    std::scoped_lock lock(mutex_);
    return live_locked(key, "read");
  }

  std::vector<std::pair<std::string, std::string>> scan(std::string_view prefix, std::size_t limit) override {
    std::vector<std::pair<std::string, std::string>> out;
    std::scoped_lock lock(mutex_);
    // Keys from `prefix` up to the first key that does not start with it (substr compares as text, so that
    // LIKE's wildcards in the prefix mean nothing).
    auto u = db_.cached(
                    "SELECT key, value FROM weft_kv WHERE key >= ?1 AND substr(key, 1, length(?1)) = ?1 "
                    "AND (expires IS NULL OR expires > ?2) ORDER BY key LIMIT ?3")
                 .use("scan");
    u.bind(1, prefix).bind(2, now_us()).bind(3, static_cast<std::int64_t>(std::min<std::size_t>(limit, INT64_MAX)));
    while (u.step()) out.emplace_back(u.text(0), u.text(1));
    return out;
  }

  std::int64_t incr(std::string_view key, std::int64_t by, std::optional<std::chrono::milliseconds> ttl) override {
    check_entry(key, {}, ttl);
    std::int64_t n = 0;
    {
      std::unique_lock lock(mutex_);
      Transaction txn(db_, "incr");
      bool found = false;
      if (auto v = live_locked(key, "incr")) {
        found = true;
        n = parse_counter(key, *v);
      }
      n += by;
      if (ttl || !found) {
        set_locked(key, std::to_string(n), ttl, "incr");
      } else {
        auto u = db_.cached("UPDATE weft_kv SET value = ?2 WHERE key = ?1").use("incr");
        u.bind(1, key).bind(2, std::to_string(n)).run();
      }
      commit_durably(txn, db_, lock);
    }
    watch_->poke();
    return n;
  }

  bool erase(std::string_view key) override {
    bool live = false;
    {
      std::unique_lock lock(mutex_);
      Transaction txn(db_, "erase");
      live = live_locked(key, "erase").has_value();
      db_.cached("DELETE FROM weft_kv WHERE key = ?1").use("erase").bind(1, key).run();
      commit_durably(txn, db_, lock);
    }
    watch_->poke();
    return live;
  }

 private:
  // The value at `key` unless absent or expired; under mutex_.
  std::optional<std::string> live_locked(std::string_view key, std::string_view operation) {
    auto u = db_.cached("SELECT value FROM weft_kv WHERE key = ?1 AND (expires IS NULL OR expires > ?2)")
                 .use(operation);
    u.bind(1, key).bind(2, now_us());
    if (!u.step()) return std::nullopt;
    return u.text(0);
  }

  // Writes `key` inside the caller's transaction. Every kSweepEvery writes of this connection also delete
  // expired entries, so that entries nobody reads again do not pile up.
  void set_locked(std::string_view key, std::string_view value, std::optional<std::chrono::milliseconds> ttl,
                  std::string_view operation) {
    const std::int64_t now = now_us();
    if (++writes_ % kSweepEvery == 1) {
      db_.cached("DELETE FROM weft_kv WHERE expires IS NOT NULL AND expires <= ?1").use(operation).bind(1, now).run();
    }
    auto u = db_.cached("INSERT OR REPLACE INTO weft_kv (key, value, expires) VALUES (?1, ?2, ?3)").use(operation);
    u.bind(1, key).bind(2, value);
    if (ttl) {
      u.bind(3, add_saturated(now, std::chrono::duration_cast<std::chrono::microseconds>(*ttl).count()));
    } else {
      u.bind_null(3);
    }
    u.run();
  }

  static constexpr std::uint64_t kSweepEvery = 256;
  std::uint64_t writes_ = 0;  // guarded by mutex_

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
