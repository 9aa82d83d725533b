// src/tasks/sqlite_db.hpp — what the SQLite broker and result backend share: one connection with its settings,
// prepared statements, short write transactions, and the watch that wakes waiters when the database changes.
//
// Durability and sharing. Every connection runs the database in WAL mode (readers never block the one writer).
// A commit of Durability::full returns once the WAL is synced, so a publish, store or put that returned
// survives a power loss, not only a crash of the process. The sync is a group commit shared by the
// connections of this process on the file: SQLite commits without syncing (synchronous=NORMAL), then the
// committer waits until a sync that began after its commit has finished; one committer syncs the WAL for all
// that wait meanwhile (the leader), the others wait for it — so many writers share one sync instead of
// queueing for one each, and nobody holds the write lock while the disk syncs. What a commit wrote is visible
// to readers just before it is durable: only a power loss in that window undoes it, and it takes those
// readers with it (processes of this machine). The broker's lease bookkeeping (reserve, renew, release, ack)
// commits lazily (Durability::lazy, no sync of its own): a power loss may undo it, which only delivers a
// message again; the next full commit syncs it as well. Every operation is one short transaction; writers
// start it with BEGIN IMMEDIATE so that two processes never both hold a read snapshot they then fail to
// upgrade. Write transactions of one process on one file take turns on a mutex of the process before BEGIN
// IMMEDIATE, so a thread never sleeps in SQLite's busy handler (which sleeps in steps of milliseconds) for
// another thread of its process; writers of different processes meet in that busy handler
// (SqliteOptions::busy_timeout), and BEGIN IMMEDIATE is retried kBeginAttempts times after it before the
// operation fails. Switching a new file to WAL is the one step SQLite refuses at once instead of waiting when
// another process does the same; Database retries it for up to busy_timeout.
//
// Waking without polling (ChangeWatch), one watch per database file per process:
//  1. A waiter takes snapshot() of the change generation. The first snapshot adds an inotify watch on the
//     database's directory and starts the watch thread, before it returns, so a change made after the
//     snapshot is always seen.
//  2. The waiter then looks at the database; if there is nothing for it, it calls wait_changed(snapshot, until).
//  3. The watch thread reads inotify events (writes, creations, renames, closes after writing) and, for the
//     database file or its -wal, -journal and -shm files, bumps the generation: a commit by any process
//     writes the WAL, so every waiter wakes and looks again. Writers of this process also poke() the watch
//     directly, which wakes local waiters without the round trip through the kernel.
//  4. `until` bounds the wait by the time something becomes ready by itself (a not_before or lease end), the
//     caller's deadline, and a safety-net re-check (SqliteOptions::recheck) in case an event was lost (an
//     inotify queue overflow is treated as a change).
// Objects that hold a connection or a watch do not survive fork(): open them in the child after forking.
#pragma once

#include <sqlite3.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <exception>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <thread>
#include <unordered_map>

namespace weft::tasks::detail {

/// Settings of a SQLite broker or backend; the defaults are what connect_broker/connect_backend use.
struct SqliteOptions {
  /// How long one statement waits for another connection's lock before SQLITE_BUSY.
  std::chrono::milliseconds busy_timeout{5000};
  /// The longest a waiter sleeps without looking at the database again, in case a change notification was
  /// lost. Tests raise it to prove that notifications alone wake waiters.
  std::chrono::milliseconds recheck{1000};
};

/// BEGIN IMMEDIATE attempts (each waiting up to busy_timeout) before an operation fails with "database is
/// locked".
inline constexpr int kBeginAttempts = 6;

/// Microseconds since the Unix epoch on the system clock, the time unit stored in the database.
std::int64_t now_us();
std::int64_t to_us(std::chrono::system_clock::time_point t);
std::chrono::system_clock::time_point from_us(std::int64_t us);
/// a + b, saturated at the int64 limits.
std::int64_t add_saturated(std::int64_t a, std::int64_t b);

class Database;

/// How a commit reaches the disk. `full`: commit() returns once the WAL is synced (survives a power loss).
/// `lazy`: written to the WAL without a sync (survives a crash of the process; a power loss may undo it, and
/// the next full commit of any connection syncs it too). Lazy is for writes whose loss only delays a
/// message: a lease taken, renewed or given back, an acknowledgement (lost, the task runs once more —
/// at-least-once; for a task acknowledged before it ran, acks_late off, a power loss may run it twice).
enum class Durability { full, lazy };

/// A prepared statement, reset and unbound when a use ends (Statement::Use). Not thread-safe: used under
/// the owner's connection mutex.
class Statement {
 public:
  Statement(Database& db, std::string_view sql);
  ~Statement();
  Statement(const Statement&) = delete;
  Statement& operator=(const Statement&) = delete;

  /// One execution: bind, step, read columns; the destructor resets the statement.
  class Use {
   public:
    Use(Statement& s, std::string_view operation) : s_(s), operation_(operation) {}
    ~Use();
    Use(const Use&) = delete;
    Use& operator=(const Use&) = delete;

    Use& bind(int index, std::int64_t value);
    Use& bind(int index, std::string_view text);
    Use& bind_blob(int index, std::string_view bytes);
    Use& bind_null(int index);
    /// True when a row is ready to read, false when the statement is done. Throws weft::Error.
    bool step();
    /// step() on a statement that must finish without rows.
    void run();

    bool is_null(int col) const;
    std::int64_t int64(int col) const;
    std::string text(int col) const;

   private:
    void check_bind(int rc);
    Statement& s_;
    std::string_view operation_;
  };

  Use use(std::string_view operation) { return Use(*this, operation); }

 private:
  friend class Use;
  Database& db_;
  sqlite3_stmt* stmt_ = nullptr;
};

/// One connection with the settings above and the weft schema. Not thread-safe: its owner serialises every
/// use with a mutex of its own.
class Database {
 public:
  /// Opens (creates) the database at `path`, whose directory must exist. Throws std::invalid_argument (empty
  /// path), weft::Error ("weft: sqlite open '<path>': ...").
  Database(std::string path, const SqliteOptions& options);
  ~Database();
  Database(const Database&) = delete;
  Database& operator=(const Database&) = delete;

  const std::string& path() const noexcept { return path_; }
  /// The path with its directory resolved (symbolic links, "..") — the key of the process's ChangeWatch.
  const std::string& canonical_path() const noexcept { return canonical_path_; }
  sqlite3* handle() noexcept { return db_; }

  /// A statement prepared once per connection and reused. For a fixed set of SQL texts only (at most
  /// kMaxCachedStatements; more throws std::logic_error): SQL built at run time beyond a small bounded set
  /// uses a Statement of its own.
  Statement& cached(std::string_view sql);
  /// Runs SQL without results (schema, BEGIN, COMMIT). Throws weft::Error.
  void exec(std::string_view sql, std::string_view operation);
  /// Rows changed by the last statement.
  std::int64_t changes() const;

  /// Throws "weft: sqlite <operation> '<path>': <sqlite3_errmsg>" (or `rc`'s text when no message is set).
  [[noreturn]] void fail(std::string_view operation, int rc) const;
  /// Throws if an earlier ROLLBACK failed and the connection's state is unknown.
  void check_usable() const;
  void mark_unusable(std::string why) { unusable_ = std::move(why); }
  /// Returns once everything this process committed on the file up to its commit number `seq` (from
  /// Transaction::commit; 0: nothing to wait for) is synced (the group commit above). Thread-safe: call it
  /// without the owner's mutex, so that other operations proceed during the sync. Throws weft::Error when
  /// the sync fails: what was committed stays committed (and visible) and may not survive a power loss. A
  /// failed sync is final for the file in this process: every later durable commit throws too (the kernel
  /// reports a write-back error once, so a second sync could claim durability it does not have).
  void sync_through(std::uint64_t seq);

  static constexpr std::size_t kMaxCachedStatements = 64;

  /// What this process's connections to one file share: the writers' mutex and the group commit (defined in
  /// sqlite_db.cpp).
  struct Shared;

 private:
  void set_wal_mode(std::chrono::milliseconds patience);
  void closed();

  std::string path_;
  std::string canonical_path_;
  std::string wal_path_;  // where SQLite keeps this connection's WAL (next to the file a symbolic link names)
  std::chrono::milliseconds writer_patience_{0};  // the longest a write transaction waits for this process's others
  sqlite3* db_ = nullptr;
  std::unordered_map<std::string, std::unique_ptr<Statement>> cache_;
  std::string unusable_;
  std::shared_ptr<Shared> shared_;
  friend class Transaction;
};

/// A write transaction: BEGIN IMMEDIATE (retried while busy), then commit(); a transaction that was not
/// committed is rolled back by the destructor.
class Transaction {
 public:
  Transaction(Database& db, std::string_view operation, Durability durability = Durability::full);
  ~Transaction();
  Transaction(const Transaction&) = delete;
  Transaction& operator=(const Transaction&) = delete;
  /// COMMIT. Returns the commit's number for Database::sync_through (Durability::full), 0 for a lazy one;
  /// see commit_durably.
  [[nodiscard]] std::uint64_t commit();
  void end_turn() noexcept;

 private:
  Database& db_;
  std::string_view operation_;
  Durability durability_;
  bool writing_ = false;  // this transaction holds the process's turn to write the file
  bool open_ = false;
};

/// Commits `txn`, releases the owner's `lock` (its connection's mutex), then waits until the commit is
/// durable: the sync happens without the owner's mutex, so that several threads of the owner share it.
template <class Lock>
void commit_durably(Transaction& txn, Database& db, Lock& lock) {
  const std::uint64_t seq = txn.commit();
  lock.unlock();
  db.sync_through(seq);
}

/// The change notification of one database file in this process (protocol at the top of this file).
/// Thread-safe.
class ChangeWatch {
 public:
  /// The process's watch of the database at `canonical_path` (shared by every broker and backend on it).
  static std::shared_ptr<ChangeWatch> of(const std::string& canonical_path);

  explicit ChangeWatch(std::string canonical_path);
  ~ChangeWatch();
  ChangeWatch(const ChangeWatch&) = delete;
  ChangeWatch& operator=(const ChangeWatch&) = delete;

  /// The current generation; starts the watch on first use. Throws weft::Error (inotify failed, or the watch
  /// thread failed earlier).
  std::uint64_t snapshot();
  /// Waits until the generation differs from `seen`, `*stop` is true, or `until`. Throws like snapshot().
  void wait_changed(std::uint64_t seen, std::chrono::steady_clock::time_point until,
                    const std::atomic<bool>* stop);
  /// A change made by this process: wakes every waiter now.
  void poke();

 private:
  void start_locked();
  void run();
  void rethrow_locked() const;

  const std::string canonical_path_;
  std::string dir_;
  std::string file_;

  std::mutex mutex_;
  std::condition_variable changed_;
  std::uint64_t generation_ = 0;    // guarded by mutex_
  std::exception_ptr error_;        // guarded by mutex_: the watch thread's failure, thrown to waiters
  bool started_ = false;            // guarded by mutex_
  int inotify_fd_ = -1;
  int stop_fd_ = -1;                // an eventfd the destructor writes to end run()
  std::thread thread_;
};

}  // namespace weft::tasks::detail
