// The shared SQLite machinery; the settings and the wake-up protocol are described in sqlite_db.hpp.
#include "sqlite_db.hpp"

#include <fcntl.h>
#include <poll.h>
#include <sys/eventfd.h>
#include <sys/inotify.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <climits>
#include <cstdlib>
#include <cstring>
#include <limits>
#include <stdexcept>
#include <system_error>

#include "weft/core/errors.hpp"

namespace weft::tasks::detail {

namespace {

// The schema. weft_meta holds the schema version; a database written by a weft with another layout is refused
// rather than misread. Times are microseconds since the Unix epoch (system clock).
//   weft_messages: one row per message; lease_until/tag are set while a delivery holds it (tag stays after the
//     lease ends until the message is delivered again, so that a late ack still finds it).
//   weft_results: one row per task; status is Celery's state name, result/children JSON text.
//   weft_kv: the backend's key-value entries (expires: null for none); expired rows are dead to readers and
//     deleted by later writes.
constexpr int kSchemaVersion = 1;
constexpr const char* kSchema = R"sql(
CREATE TABLE IF NOT EXISTS weft_meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS weft_messages (
  id INTEGER PRIMARY KEY,
  queue TEXT NOT NULL,
  priority INTEGER NOT NULL,
  not_before INTEGER NOT NULL,
  lease_until INTEGER,
  tag TEXT,
  delivery_count INTEGER NOT NULL DEFAULT 0,
  envelope BLOB NOT NULL);
CREATE INDEX IF NOT EXISTS weft_messages_order ON weft_messages (queue, priority DESC, id);
CREATE TABLE IF NOT EXISTS weft_results (
  task_id TEXT PRIMARY KEY,
  status TEXT NOT NULL,
  result TEXT NOT NULL,
  traceback TEXT NOT NULL,
  children TEXT NOT NULL,
  date_done INTEGER,
  name TEXT NOT NULL,
  retries INTEGER NOT NULL);
CREATE INDEX IF NOT EXISTS weft_results_done ON weft_results (date_done);
CREATE TABLE IF NOT EXISTS weft_kv (
  key TEXT PRIMARY KEY,
  value TEXT NOT NULL,
  expires INTEGER);
)sql";

[[noreturn]] void fail_errno(std::string_view what, const std::string& path, int err) {
  throw weft::Error("weft: sqlite " + std::string(what) + " '" + path + "': " + std::strerror(err));
}

std::pair<std::string, std::string> split_path(const std::string& path) {
  const auto slash = path.rfind('/');
  if (slash == std::string::npos) return {".", path};
  return {slash == 0 ? "/" : path.substr(0, slash), path.substr(slash + 1)};
}

}  // namespace

std::int64_t now_us() { return to_us(std::chrono::system_clock::now()); }

std::int64_t to_us(std::chrono::system_clock::time_point t) {
  return std::chrono::duration_cast<std::chrono::microseconds>(t.time_since_epoch()).count();
}

std::chrono::system_clock::time_point from_us(std::int64_t us) {
  using Sys = std::chrono::system_clock;
  const auto max_us = std::chrono::duration_cast<std::chrono::microseconds>(Sys::duration::max()).count();
  const auto min_us = std::chrono::duration_cast<std::chrono::microseconds>(Sys::duration::min()).count();
  if (us >= max_us) return Sys::time_point::max();
  if (us <= min_us) return Sys::time_point::min();
  return Sys::time_point(std::chrono::duration_cast<Sys::duration>(std::chrono::microseconds(us)));
}

std::int64_t add_saturated(std::int64_t a, std::int64_t b) {
  std::int64_t out = 0;
  if (__builtin_add_overflow(a, b, &out)) {
    return b > 0 ? std::numeric_limits<std::int64_t>::max() : std::numeric_limits<std::int64_t>::min();
  }
  return out;
}

// ---- Statement -------------------------------------------------------------------------------------------

Statement::Statement(Database& db, std::string_view sql) : db_(db) {
  const int rc = sqlite3_prepare_v3(db.handle(), sql.data(), static_cast<int>(sql.size()),
                                    SQLITE_PREPARE_PERSISTENT, &stmt_, nullptr);
  if (rc != SQLITE_OK) db.fail("prepare", rc);
}

Statement::~Statement() { sqlite3_finalize(stmt_); }

Statement::Use::~Use() {
  // reset() repeats the error of the last step(), which step() has already thrown; its result says nothing new.
  sqlite3_reset(s_.stmt_);
  sqlite3_clear_bindings(s_.stmt_);
}

void Statement::Use::check_bind(int rc) {
  if (rc != SQLITE_OK) s_.db_.fail(operation_, rc);
}

Statement::Use& Statement::Use::bind(int index, std::int64_t value) {
  check_bind(sqlite3_bind_int64(s_.stmt_, index, value));
  return *this;
}

Statement::Use& Statement::Use::bind(int index, std::string_view text) {
  check_bind(sqlite3_bind_text64(s_.stmt_, index, text.data(), text.size(), SQLITE_TRANSIENT, SQLITE_UTF8));
  return *this;
}

Statement::Use& Statement::Use::bind_blob(int index, std::string_view bytes) {
  // A zero-length blob must not be bound as NULL (a null data pointer would do that).
  check_bind(sqlite3_bind_blob64(s_.stmt_, index, bytes.empty() ? "" : bytes.data(), bytes.size(),
                                 SQLITE_TRANSIENT));
  return *this;
}

Statement::Use& Statement::Use::bind_null(int index) {
  check_bind(sqlite3_bind_null(s_.stmt_, index));
  return *this;
}

bool Statement::Use::step() {
  const int rc = sqlite3_step(s_.stmt_);
  if (rc == SQLITE_ROW) return true;
  if (rc == SQLITE_DONE) return false;
  s_.db_.fail(operation_, rc);
}

void Statement::Use::run() {
  if (step()) throw weft::Error("weft: sqlite " + std::string(operation_) + " '" + s_.db_.path() +
                                "': a statement returned rows where none were expected");
}

bool Statement::Use::is_null(int col) const { return sqlite3_column_type(s_.stmt_, col) == SQLITE_NULL; }

std::int64_t Statement::Use::int64(int col) const { return sqlite3_column_int64(s_.stmt_, col); }

std::string Statement::Use::text(int col) const {
  // column_blob gives the bytes of TEXT and BLOB values alike, without a conversion; bytes() after it.
  const void* p = sqlite3_column_blob(s_.stmt_, col);
  const int n = sqlite3_column_bytes(s_.stmt_, col);
  if (p == nullptr) {
    if (n == 0 && sqlite3_errcode(s_.db_.handle()) == SQLITE_NOMEM) s_.db_.fail(operation_, SQLITE_NOMEM);
    return {};
  }
  return std::string(static_cast<const char*>(p), static_cast<std::size_t>(n));
}

// ---- Database --------------------------------------------------------------------------------------------

struct Database::Shared {
  // The turn to write: held by a write transaction from BEGIN IMMEDIATE to COMMIT or ROLLBACK. A mutex and a
  // condition variable rather than std::timed_mutex, for a bounded wait that ThreadSanitizer follows.
  std::mutex turn_mutex;
  std::condition_variable turn_cv;
  bool writing = false;  // guarded by turn_mutex
  std::mutex sync_mutex;
  std::condition_variable synced_cv;
  std::uint64_t committed = 0;  // full commits made (numbered in WAL order: counted under `writer`)
  std::uint64_t synced = 0;     // full commits known durable
  bool syncing = false;         // a leader is syncing the WAL
  std::string failed;           // why a sync failed: from then on no commit is reported durable
  std::size_t connections = 0;  // open connections of this process to the file
  bool reopen_wal = false;      // connections dropped to 0 since wal_fd was opened: the WAL may be another file
  int wal_fd = -1;              // the WAL file, opened by a leader (it exists after a commit); reopened when
                                // the file at its path is another one (removed by a last close, made anew)
  ~Shared() {
    if (wal_fd >= 0) ::close(wal_fd);
  }
};

namespace {

// One per database file per process, by canonical path. The process id is part of the key: a child forked
// while the parent held connections makes its own (the parent's mutexes may have been held at the fork).
std::shared_ptr<Database::Shared> shared_of(const std::string& canonical_path) {
  static std::mutex registry_mutex;
  static std::unordered_map<std::string, std::weak_ptr<Database::Shared>> registry;
  std::lock_guard lock(registry_mutex);
  auto& slot = registry[std::to_string(::getpid()) + ":" + canonical_path];
  if (auto m = slot.lock()) return m;
  auto m = std::make_shared<Database::Shared>();
  slot = m;
  // Drop the entries of files no connection holds any more, so the registry stays as small as what is open.
  std::erase_if(registry, [](const auto& e) { return e.second.expired(); });
  return m;
}

}  // namespace

Database::Database(std::string path, const SqliteOptions& options) : path_(std::move(path)) {
  if (path_.empty()) throw std::invalid_argument("weft: sqlite: the database path is empty");
  if (path_ == ":memory:" || path_.starts_with("file:")) {
    throw std::invalid_argument("weft: sqlite: '" + path_ +
                                "' is not a file path (for one process, use memory:// instead)");
  }
  if (options.busy_timeout.count() < 0 || options.busy_timeout.count() > INT_MAX ||
      options.recheck.count() <= 0) {
    throw std::invalid_argument("weft: sqlite: busy_timeout must be 0..INT_MAX ms and recheck above 0");
  }
  const auto [dir, file] = split_path(path_);
  if (file.empty()) throw std::invalid_argument("weft: sqlite: '" + path_ + "' names a directory, not a file");
  struct stat st{};
  if (::stat(dir.c_str(), &st) != 0) {
    const int e = errno;
    throw weft::Error("weft: sqlite open '" + path_ + "': directory '" + dir + "': " + std::strerror(e));
  }
  if (!S_ISDIR(st.st_mode)) {
    throw weft::Error("weft: sqlite open '" + path_ + "': '" + dir + "' is not a directory");
  }
  char resolved[PATH_MAX];
  if (::realpath(dir.c_str(), resolved) == nullptr) fail_errno("open", path_, errno);
  canonical_path_ = std::string(resolved) + (std::string_view(resolved) == "/" ? "" : "/") + file;
  shared_ = shared_of(canonical_path_);

  const int rc = sqlite3_open_v2(path_.c_str(), &db_, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE |
                                 SQLITE_OPEN_NOMUTEX, nullptr);
  if (rc != SQLITE_OK) {
    if (db_ == nullptr) fail("open", rc);  // no memory for a handle: fail() uses rc's text
    const std::string msg = "weft: sqlite open '" + path_ + "': " + sqlite3_errmsg(db_);
    sqlite3_close_v2(db_);
    db_ = nullptr;
    throw weft::Error(msg);
  }
  {
    std::lock_guard lock(shared_->sync_mutex);
    ++shared_->connections;
  }
  try {
    if (const int brc = sqlite3_busy_timeout(db_, static_cast<int>(options.busy_timeout.count()));
        brc != SQLITE_OK) {
      fail("open", brc);
    }
    set_wal_mode(options.busy_timeout);
    // SQLite names the WAL after the file it opened (a symbolic link resolved): ask it rather than guess.
    if (const char* wal = sqlite3_filename_wal(sqlite3_db_filename(db_, "main")); wal != nullptr && *wal != '\0') {
      wal_path_ = wal;
    } else {
      wal_path_ = path_ + "-wal";
    }
    // A writer of this process waits for another at most as long as that one may wait for other processes.
    writer_patience_ = std::max(options.busy_timeout, std::chrono::milliseconds(1000)) * (kBeginAttempts + 1);
    // Commits do not sync by themselves; Transaction::commit syncs (a group commit) where it must.
    exec("PRAGMA synchronous=NORMAL", "open (synchronous=NORMAL)");
    Transaction txn(*this, "open (schema)");
    exec(kSchema, "open (schema)");
    exec("INSERT OR IGNORE INTO weft_meta (key, value) VALUES ('schema_version', '" +
             std::to_string(kSchemaVersion) + "')",
         "open (schema)");
    {
      Statement version(*this, "SELECT value FROM weft_meta WHERE key = 'schema_version'");
      auto u = version.use("open (schema)");
      const std::string found = u.step() ? u.text(0) : std::string();
      if (found != std::to_string(kSchemaVersion)) {
        throw weft::Error("weft: sqlite open '" + path_ + "': schema version '" + found + "', this weft reads " +
                          std::to_string(kSchemaVersion));
      }
    }
    sync_through(txn.commit());
  } catch (...) {
    cache_.clear();
    closed();
    sqlite3_close_v2(db_);
    db_ = nullptr;
    throw;
  }
}

// Counted out before SQLite closes: a close that removes the WAL comes after the count reached 0.
void Database::closed() {
  std::lock_guard lock(shared_->sync_mutex);
  if (--shared_->connections == 0) shared_->reopen_wal = true;
}

void Database::set_wal_mode(std::chrono::milliseconds patience) {
  // Two processes opening a new file at once: while one converts it to WAL (a rollback-journal transaction
  // that rewrites the header), the other's conversion fails with SQLITE_BUSY at once, without its busy
  // handler (SQLite does not wait where waiting could deadlock). So this retries, with a doubling pause,
  // until `patience` has passed.
  constexpr std::chrono::milliseconds kFirstPause{1};
  constexpr std::chrono::milliseconds kLongestPause{50};
  const auto give_up = std::chrono::steady_clock::now() + patience;
  auto pause = kFirstPause;
  for (;;) {
    sqlite3_stmt* stmt = nullptr;
    int rc = sqlite3_prepare_v2(db_, "PRAGMA journal_mode=WAL", -1, &stmt, nullptr);
    std::string mode;
    if (rc == SQLITE_OK) {
      rc = sqlite3_step(stmt);
      if (rc == SQLITE_ROW) {
        const auto* text = sqlite3_column_text(stmt, 0);
        mode = text != nullptr ? reinterpret_cast<const char*>(text) : "";
        rc = SQLITE_OK;
      }
    }
    sqlite3_finalize(stmt);
    if (rc == SQLITE_OK) {
      // The answer is the mode now in force; a file system without shared memory support answers "delete",
      // which would lose concurrent readers: refuse it.
      if (mode != "wal") {
        throw weft::Error("weft: sqlite open '" + path_ + "': the database cannot use WAL mode (it stays in '" +
                          mode + "' mode)");
      }
      return;
    }
    const int primary = rc & 0xff;
    if ((primary != SQLITE_BUSY && primary != SQLITE_LOCKED) || std::chrono::steady_clock::now() >= give_up) {
      fail("open (journal_mode=WAL)", rc);
    }
    std::this_thread::sleep_for(pause);
    pause = std::min(pause * 2, kLongestPause);
  }
}

Database::~Database() {
  cache_.clear();  // statements first: close_v2 would otherwise leave the connection open as a zombie
  closed();
  sqlite3_close_v2(db_);
}

Statement& Database::cached(std::string_view sql) {
  const std::string key(sql);
  if (auto it = cache_.find(key); it != cache_.end()) return *it->second;
  if (cache_.size() >= kMaxCachedStatements) {
    // Callers pass a fixed set of statements; dropping cached ones here could leave a caller holding a
    // dangling reference, so this is a bug in the caller, not a state to recover from.
    throw std::logic_error("weft: sqlite '" + path_ + "': more than " + std::to_string(kMaxCachedStatements) +
                           " distinct cached statements");
  }
  auto stmt = std::make_unique<Statement>(*this, sql);
  return *cache_.emplace(key, std::move(stmt)).first->second;
}

void Database::exec(std::string_view sql, std::string_view operation) {
  const std::string s(sql);
  const int rc = sqlite3_exec(db_, s.c_str(), nullptr, nullptr, nullptr);
  if (rc != SQLITE_OK) fail(operation, rc);
}

std::int64_t Database::changes() const { return sqlite3_changes64(db_); }

void Database::fail(std::string_view operation, int rc) const {
  const bool has_message = db_ != nullptr && sqlite3_errcode(db_) != SQLITE_OK;
  const char* msg = has_message ? sqlite3_errmsg(db_) : sqlite3_errstr(rc);
  const int code = has_message ? sqlite3_extended_errcode(db_) : rc;
  throw weft::Error("weft: sqlite " + std::string(operation) + " '" + path_ + "': " + msg + " (code " +
                    std::to_string(code) + ")");
}

void Database::check_usable() const {
  if (!unusable_.empty()) throw weft::Error("weft: sqlite '" + path_ + "': " + unusable_);
}

void Database::sync_through(std::uint64_t seq) {
  Shared& sh = *shared_;
  std::unique_lock lock(sh.sync_mutex);
  while (sh.synced < seq) {
    if (!sh.failed.empty()) {
      throw weft::Error("weft: sqlite commit '" + path_ + "': an earlier sync of the WAL failed (" + sh.failed +
                        "); the commit was made and may not survive a power loss");
    }
    if (sh.syncing) {
      sh.synced_cv.wait(lock);
      continue;
    }
    // The leader: one sync covers every commit numbered so far (the WAL is one file, written in order).
    sh.syncing = true;
    const std::uint64_t target = sh.committed;
    int fd = sh.wal_fd;
    const bool reopen = sh.reopen_wal;
    sh.reopen_wal = false;
    lock.unlock();
    std::string error;
    // After this process had no connection left, SQLite may have removed the WAL and a new connection made
    // another: the descriptor is opened again. (While a connection of the process is open — the leader's is —
    // no process removes it.)
    if (reopen && fd >= 0) {
      ::close(fd);
      fd = -1;
    }
    if (fd < 0) {
      // Its directory entry is synced once per descriptor, as SQLite does for a journal it creates.
      fd = ::open(wal_path_.c_str(), O_RDONLY | O_CLOEXEC);
      if (fd < 0) {
        const int e = errno;
        error = "open '" + wal_path_ + "': " + std::strerror(e);
      } else {
        const auto [dir, file] = split_path(wal_path_);
        const int dfd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (dfd < 0 || ::fsync(dfd) != 0) {
          const int e = errno;
          error = "sync of the directory '" + dir + "': " + std::strerror(e);
        }
        if (dfd >= 0) ::close(dfd);
      }
    }
    if (error.empty() && ::fdatasync(fd) != 0) {
      const int e = errno;
      error = std::string("fdatasync of the WAL: ") + std::strerror(e);
    }
    lock.lock();
    sh.wal_fd = fd;
    sh.syncing = false;
    if (error.empty()) {
      sh.synced = std::max(sh.synced, target);
    } else {
      sh.failed = error;  // final: see sync_through's documentation
    }
    sh.synced_cv.notify_all();
  }
}

// ---- Transaction -----------------------------------------------------------------------------------------

Transaction::Transaction(Database& db, std::string_view operation, Durability durability)
    : db_(db), operation_(operation), durability_(durability) {
  db.check_usable();
  {
    Database::Shared& sh = *db.shared_;
    std::unique_lock lock(sh.turn_mutex);
    writing_ = sh.turn_cv.wait_for(lock, db.writer_patience_, [&] { return !sh.writing; });
    if (writing_) sh.writing = true;
  }
  if (!writing_) {
    throw weft::Error("weft: sqlite " + std::string(operation) + " '" + db.path() + "': another thread of this " +
                      "process has held the database for writing longer than " +
                      std::to_string(db.writer_patience_.count()) + " ms");
  }
  int rc = SQLITE_BUSY;
  for (int attempt = 0; attempt < kBeginAttempts; ++attempt) {
    rc = sqlite3_exec(db.handle(), "BEGIN IMMEDIATE", nullptr, nullptr, nullptr);
    if (rc == SQLITE_OK) {
      open_ = true;
      return;
    }
    if ((rc & 0xff) != SQLITE_BUSY) break;  // the busy handler already waited busy_timeout: try again
  }
  end_turn();  // the destructor does not run for a constructor that throws
  db.fail(std::string(operation) + " (begin)", rc);
}

Transaction::~Transaction() {
  // Not committed, and not rolled back by SQLite itself: roll back.
  if (open_ && sqlite3_get_autocommit(db_.handle()) == 0 &&
      sqlite3_exec(db_.handle(), "ROLLBACK", nullptr, nullptr, nullptr) != SQLITE_OK) {
    // A destructor cannot throw (it may run while the operation's error is thrown); the next operation will.
    db_.mark_unusable(std::string("a rollback failed: ") + sqlite3_errmsg(db_.handle()));
  }
  end_turn();
}

std::uint64_t Transaction::commit() {
  const int rc = sqlite3_exec(db_.handle(), "COMMIT", nullptr, nullptr, nullptr);
  if (rc != SQLITE_OK) db_.fail(std::string(operation_) + " (commit)", rc);
  open_ = false;
  std::uint64_t seq = 0;
  if (durability_ == Durability::full) {
    std::lock_guard lock(db_.shared_->sync_mutex);
    seq = ++db_.shared_->committed;  // under the writers' mutex: numbers follow the WAL's order
  }
  end_turn();
  return seq;
}

void Transaction::end_turn() noexcept {
  if (!writing_) return;
  writing_ = false;
  Database::Shared& sh = *db_.shared_;
  {
    std::lock_guard lock(sh.turn_mutex);
    sh.writing = false;
  }
  sh.turn_cv.notify_one();
}

// ---- ChangeWatch -----------------------------------------------------------------------------------------

std::shared_ptr<ChangeWatch> ChangeWatch::of(const std::string& canonical_path) {
  static std::mutex registry_mutex;
  static std::unordered_map<std::string, std::weak_ptr<ChangeWatch>> registry;
  std::scoped_lock lock(registry_mutex);
  std::erase_if(registry, [](const auto& entry) { return entry.second.expired(); });
  if (auto it = registry.find(canonical_path); it != registry.end()) {
    if (auto watch = it->second.lock()) return watch;
  }
  auto watch = std::make_shared<ChangeWatch>(canonical_path);
  registry[canonical_path] = watch;
  return watch;
}

ChangeWatch::ChangeWatch(std::string canonical_path) : canonical_path_(std::move(canonical_path)) {
  auto [dir, file] = split_path(canonical_path_);
  dir_ = std::move(dir);
  file_ = std::move(file);
}

ChangeWatch::~ChangeWatch() {
  if (!started_) return;
  const std::uint64_t one = 1;
  // Cannot fail: the eventfd's counter is far below its limit. Without it run() would never end.
  if (::write(stop_fd_, &one, sizeof one) != static_cast<ssize_t>(sizeof one)) std::abort();
  thread_.join();
  ::close(inotify_fd_);
  ::close(stop_fd_);
}

void ChangeWatch::start_locked() {
  const int in = ::inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
  if (in < 0) fail_errno("watch (inotify_init1)", canonical_path_, errno);
  if (::inotify_add_watch(in, dir_.c_str(), IN_MODIFY | IN_CREATE | IN_MOVED_TO | IN_CLOSE_WRITE) < 0) {
    const int e = errno;
    ::close(in);
    fail_errno("watch (inotify_add_watch on '" + dir_ + "')", canonical_path_, e);
  }
  const int stop = ::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
  if (stop < 0) {
    const int e = errno;
    ::close(in);
    fail_errno("watch (eventfd)", canonical_path_, e);
  }
  inotify_fd_ = in;
  stop_fd_ = stop;
  try {
    thread_ = std::thread([this] { run(); });
  } catch (...) {
    ::close(in);
    ::close(stop);
    inotify_fd_ = stop_fd_ = -1;
    throw;
  }
  started_ = true;
}

std::uint64_t ChangeWatch::snapshot() {
  std::scoped_lock lock(mutex_);
  if (!started_) start_locked();
  rethrow_locked();
  return generation_;
}

void ChangeWatch::wait_changed(std::uint64_t seen, std::chrono::steady_clock::time_point until,
                               const std::atomic<bool>* stop) {
  std::unique_lock lock(mutex_);
  if (!started_) start_locked();
  // stop is set before the poke() that follows it takes mutex_, so the predicate cannot miss it.
  changed_.wait_until(lock, until, [&] {
    return generation_ != seen || error_ || (stop != nullptr && stop->load(std::memory_order_acquire));
  });
  rethrow_locked();
}

void ChangeWatch::poke() {
  {
    std::scoped_lock lock(mutex_);
    ++generation_;
  }
  changed_.notify_all();
}

void ChangeWatch::rethrow_locked() const {
  if (error_) std::rethrow_exception(error_);
}

void ChangeWatch::run() {
  const std::string wal = file_ + "-wal";
  const std::string journal = file_ + "-journal";
  const std::string shm = file_ + "-shm";
  auto fail = [this](std::exception_ptr e) {
    {
      std::scoped_lock lock(mutex_);
      error_ = std::move(e);
    }
    changed_.notify_all();
  };
  auto errno_error = [this](const char* what, int e) {
    return std::make_exception_ptr(weft::Error("weft: sqlite watch '" + canonical_path_ + "': " + what + ": " +
                                               std::strerror(e)));
  };
  alignas(inotify_event) char buf[16 * 1024];
  for (;;) {
    pollfd fds[2] = {{inotify_fd_, POLLIN, 0}, {stop_fd_, POLLIN, 0}};
    if (::poll(fds, 2, -1) < 0) {
      if (errno == EINTR) continue;
      return fail(errno_error("poll", errno));
    }
    if (fds[1].revents != 0) return;
    bool changed = false;
    bool removed = false;
    for (;;) {  // drain: the descriptor is non-blocking, EAGAIN ends the batch
      const ssize_t n = ::read(inotify_fd_, buf, sizeof buf);
      if (n < 0) {
        if (errno == EINTR) continue;
        if (errno == EAGAIN) break;
        return fail(errno_error("read", errno));
      }
      for (ssize_t off = 0; off < n;) {
        const auto* ev = reinterpret_cast<const inotify_event*>(buf + off);
        off += static_cast<ssize_t>(sizeof(inotify_event) + ev->len);
        if (ev->mask & IN_Q_OVERFLOW) changed = true;  // events were lost: assume ours were among them
        if (ev->mask & IN_IGNORED) removed = true;
        if (ev->len == 0) continue;
        const std::string_view name(ev->name);
        if (name == file_ || name == wal || name == journal || name == shm) changed = true;
      }
    }
    if (removed) {
      return fail(std::make_exception_ptr(weft::Error(
          "weft: sqlite watch '" + canonical_path_ + "': the directory '" + dir_ +
          "' was removed or unmounted; changes to the database can no longer be seen")));
    }
    if (changed) poke();
  }
}

}  // namespace weft::tasks::detail
