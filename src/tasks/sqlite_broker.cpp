// The SQLite broker. One row of weft_messages per message; the lease protocol of weft/tasks/broker.hpp maps
// onto its columns like this (times in microseconds since the epoch, system clock):
//  1. publish() inserts (queue, priority clamped to 0-9, not_before = the given time or now, envelope) with
//     no lease and delivery_count 0, then wakes this process's waiters (other processes see the WAL change).
//  2. reserve() takes, in one BEGIN IMMEDIATE transaction, the first row of the queues by priority descending
//     then id (insertion order) whose not_before has come and whose lease is absent or over, and sets
//     lease_until = now + lease, a fresh random tag "<id>.<128 random bits in hex>", delivery_count + 1.
//     A row whose lease ran out is thus delivered again with a new tag and a higher delivery_count.
//  3. When nothing is ready, the same transaction reads when the first row of those queues becomes ready by
//     itself (the larger of not_before and lease_until), and reserve() sleeps on the database's ChangeWatch
//     (sqlite_db.hpp) until a change, that time, its deadline, interrupt(), or the safety-net recheck.
//  4. ack() deletes the row if it still carries the delivery's tag. The lease need not be current: a tag is
//     replaced only by the next delivery, so an unchanged tag means nobody else has received the message and
//     finishing it is still correct (a worker that ran past its lease does not run the task a second time).
//  5. release() and renew() need the tag and a lease that has not ended: a message whose lease ended may be
//     taken by another reserver at any moment, so extending or rescheduling it would race with that one.
//     release() clears lease and tag (a later ack of the old delivery then fails) and sets not_before.
//  6. purge() deletes the rows of a queue that no lease holds; size() counts every row of a queue.
// Thread safety: any member from any thread. One connection per object, used under mutex_ for one short
// transaction at a time; waits happen outside it. interrupt() affects the reserve() calls of this object only.
#include "sqlite_broker.hpp"

#include <algorithm>
#include <atomic>
#include <charconv>
#include <cstdio>
#include <limits>
#include <mutex>
#include <random>
#include <stdexcept>

namespace weft::tasks::detail {

namespace {

using SteadyClock = std::chrono::steady_clock;

// Queue lists up to this long get cached statements (two per length); longer ones are prepared per call.
constexpr std::size_t kMaxCachedQueueList = 8;

void check_queue(std::string_view queue) {
  if (queue.empty()) throw std::invalid_argument("weft: sqlite broker: the queue name is empty");
}

// "?2, ?3, ..." for `n` queues after the first parameter.
std::string queue_placeholders(std::size_t n) {
  std::string out;
  for (std::size_t i = 0; i < n; ++i) {
    if (i != 0) out += ", ";
    out += '?';
    out += std::to_string(i + 2);
  }
  return out;
}

std::int64_t parse_tag_id(const std::string& tag) {
  const auto dot = tag.find('.');
  std::int64_t id = 0;
  if (dot != std::string::npos && dot != 0) {
    const auto [end, ec] = std::from_chars(tag.data(), tag.data() + dot, id);
    if (ec == std::errc() && end == tag.data() + dot) return id;
  }
  throw std::invalid_argument("weft: sqlite broker: '" + tag + "' is not a delivery tag of a sqlite broker");
}

class SqliteBroker final : public Broker {
 public:
  SqliteBroker(const std::string& path, const SqliteOptions& options)
      : options_(options), db_(path, options), watch_(ChangeWatch::of(db_.canonical_path())) {
    std::random_device rd;
    std::seed_seq seed{rd(), rd(), rd(), rd(), rd(), rd(), rd(), rd()};
    rng_.seed(seed);
  }

  void publish(std::string_view queue, std::string_view envelope, int priority,
               std::optional<SysTime> not_before) override {
    const Outgoing one{queue, envelope, priority, not_before};
    publish_many(std::span(&one, 1));
  }

  // One transaction, one durable commit, for the whole batch.
  void publish_many(std::span<const Outgoing> batch) override {
    check_batch(batch);
    if (batch.empty()) return;
    {
      std::unique_lock lock(mutex_);
      Transaction txn(db_, "publish");
      const std::int64_t now = now_us();
      for (const Outgoing& o : batch) {
        db_.cached("INSERT INTO weft_messages (queue, priority, not_before, envelope) VALUES (?1, ?2, ?3, ?4)")
            .use("publish")
            .bind(1, o.queue)
            .bind(2, std::int64_t{std::clamp(o.priority, 0, 9)})
            .bind(3, o.not_before ? to_us(*o.not_before) : now)
            .bind_blob(4, o.envelope)
            .run();
      }
      commit_durably(txn, db_, lock);
    }
    watch_->poke();
  }

  std::optional<Delivery> reserve(std::span<const std::string> queues, std::chrono::milliseconds lease,
                                  std::optional<SteadyClock::time_point> deadline) override {
    auto ds = reserve_many(queues, lease, 1, deadline);
    if (ds.empty()) return std::nullopt;
    return std::move(ds.front());
  }

  std::vector<Delivery> reserve_many(std::span<const std::string> queues, std::chrono::milliseconds lease,
                                     std::size_t max, std::optional<SteadyClock::time_point> deadline) override {
    if (max == 0) throw std::invalid_argument("weft: sqlite broker: reserve_many of 0 messages");
    max = std::min(max, kMaxReserveBatch);
    if (queues.empty()) throw std::invalid_argument("weft: sqlite broker: reserve from no queues");
    for (const auto& q : queues) check_queue(q);
    if (lease.count() <= 0) throw std::invalid_argument("weft: sqlite broker: the lease must be above 0");
    const std::int64_t lease_us = lease.count() > std::numeric_limits<std::int64_t>::max() / 1000
                                      ? std::numeric_limits<std::int64_t>::max()
                                      : std::int64_t{lease.count()} * 1000;
    for (;;) {
      if (interrupted_.load(std::memory_order_acquire)) return {};
      // The snapshot comes before the look, so a change made after the look wakes the wait below.
      const std::uint64_t seen = watch_->snapshot();
      if (interrupted_.load(std::memory_order_acquire)) return {};
      std::optional<std::int64_t> next_ready_us;
      if (auto ds = try_reserve(queues, lease_us, max, next_ready_us); !ds.empty()) return ds;

      const auto now = SteadyClock::now();
      if (deadline && now >= *deadline) return {};
      auto until = now + options_.recheck;
      if (deadline) until = std::min(until, *deadline);
      if (next_ready_us) {
        const std::int64_t delta = *next_ready_us - now_us();
        const auto recheck_us = std::chrono::duration_cast<std::chrono::microseconds>(options_.recheck).count();
        if (delta < recheck_us) until = std::min(until, now + std::chrono::microseconds(std::max<std::int64_t>(delta, 0)));
      }
      watch_->wait_changed(seen, until, &interrupted_);
    }
  }

  bool ack(const Delivery& d) override { return ack_many(std::span(&d, 1)).front(); }

  // Lazy: the result was stored fully before; an acknowledgement a power loss undoes runs the task again.
  std::vector<bool> ack_many(std::span<const Delivery> ds) override {
    std::vector<std::int64_t> ids;
    ids.reserve(ds.size());
    for (const Delivery& d : ds) ids.push_back(parse_tag_id(d.tag));
    std::vector<bool> done;
    done.reserve(ds.size());
    if (ds.empty()) return done;
    std::scoped_lock lock(mutex_);
    Transaction txn(db_, "ack", Durability::lazy);
    for (std::size_t i = 0; i < ds.size(); ++i) {
      db_.cached("DELETE FROM weft_messages WHERE id = ?1 AND tag = ?2").use("ack").bind(1, ids[i]).bind(2, ds[i].tag).run();
      done.push_back(db_.changes() == 1);
    }
    (void)txn.commit();  // lazy: nothing to wait for
    return done;
  }

  bool release(const Delivery& d, std::optional<SysTime> not_before) override {
    const std::int64_t id = parse_tag_id(d.tag);
    bool done = false;
    {
      std::scoped_lock lock(mutex_);
      Transaction txn(db_, "release", Durability::lazy);
      const std::int64_t now = now_us();
      db_.cached(
             "UPDATE weft_messages SET lease_until = NULL, tag = NULL, not_before = ?1 "
             "WHERE id = ?2 AND tag = ?3 AND lease_until > ?4")
          .use("release")
          .bind(1, not_before ? to_us(*not_before) : now)
          .bind(2, id)
          .bind(3, d.tag)
          .bind(4, now)
          .run();
      done = db_.changes() == 1;
      (void)txn.commit();  // lazy: nothing to wait for
    }
    if (done) watch_->poke();
    return done;
  }

  bool renew(const Delivery& d, std::chrono::milliseconds lease) override {
    if (lease.count() <= 0) throw std::invalid_argument("weft: sqlite broker: the lease must be above 0");
    const std::int64_t id = parse_tag_id(d.tag);
    const std::int64_t lease_us = lease.count() > std::numeric_limits<std::int64_t>::max() / 1000
                                      ? std::numeric_limits<std::int64_t>::max()
                                      : std::int64_t{lease.count()} * 1000;
    std::scoped_lock lock(mutex_);
    Transaction txn(db_, "renew", Durability::lazy);
    const std::int64_t now = now_us();
    db_.cached("UPDATE weft_messages SET lease_until = ?1 WHERE id = ?2 AND tag = ?3 AND lease_until > ?4")
        .use("renew")
        .bind(1, add_saturated(now, lease_us))
        .bind(2, id)
        .bind(3, d.tag)
        .bind(4, now)
        .run();
    const bool done = db_.changes() == 1;
    (void)txn.commit();  // lazy: nothing to wait for
    return done;
  }

  std::size_t purge(std::string_view queue) override {
    check_queue(queue);
    std::unique_lock lock(mutex_);
    Transaction txn(db_, "purge");
    db_.cached("DELETE FROM weft_messages WHERE queue = ?1 AND (lease_until IS NULL OR lease_until <= ?2)")
        .use("purge")
        .bind(1, queue)
        .bind(2, now_us())
        .run();
    const auto n = static_cast<std::size_t>(db_.changes());
    commit_durably(txn, db_, lock);
    return n;
  }

  std::size_t size(std::string_view queue) override {
    check_queue(queue);
    std::scoped_lock lock(mutex_);
    auto u = db_.cached("SELECT COUNT(*) FROM weft_messages WHERE queue = ?1").use("size");
    u.bind(1, queue);
    if (!u.step()) throw weft::Error("weft: sqlite size '" + db_.path() + "': COUNT returned no row");
    return static_cast<std::size_t>(u.int64(0));
  }

  void interrupt() override {
    interrupted_.store(true, std::memory_order_release);  // seen by wait_changed's predicate: poke() locks after
    watch_->poke();
  }

  void resume() override { interrupted_.store(false, std::memory_order_release); }

 private:
  // One look at the database (protocol steps 2 and 3): the delivery, or nullopt and when the first message of
  // `queues` becomes ready by itself (nullopt when they are empty).
  std::vector<Delivery> try_reserve(std::span<const std::string> queues, std::int64_t lease_us, std::size_t max,
                                    std::optional<std::int64_t>& next_ready_us) {
    const std::string in = queue_placeholders(queues.size());
    // The limit is bound after the queues: ?(n + 2).
    const std::string pick_sql =
        "SELECT id, envelope, queue, priority, delivery_count FROM weft_messages WHERE queue IN (" + in +
        ") AND not_before <= ?1 AND (lease_until IS NULL OR lease_until <= ?1) ORDER BY priority DESC, id LIMIT ?" +
        std::to_string(queues.size() + 2);
    const std::string next_sql =
        "SELECT MIN(MAX(not_before, COALESCE(lease_until, not_before))) FROM weft_messages WHERE queue IN (" + in +
        ")";  // ?1 (now) is unused here but bound: the queues keep pick_sql's numbers

    std::scoped_lock lock(mutex_);
    const bool cache = queues.size() <= kMaxCachedQueueList;
    std::optional<Statement> own;
    auto statement = [&](const std::string& sql) -> Statement& {
      if (cache) return db_.cached(sql);
      own.emplace(db_, sql);
      return *own;
    };

    // Lazy: a lease a power loss undoes only makes the message ready again.
    Transaction txn(db_, "reserve", Durability::lazy);
    const std::int64_t now = now_us();
    std::vector<Delivery> ds;
    std::vector<std::int64_t> ids;
    {
      auto u = statement(pick_sql).use("reserve");
      u.bind(1, now);
      for (std::size_t i = 0; i < queues.size(); ++i) u.bind(static_cast<int>(i + 2), queues[i]);
      u.bind(static_cast<int>(queues.size() + 2), static_cast<std::int64_t>(max));
      while (u.step()) {
        ids.push_back(u.int64(0));
        Delivery& d = ds.emplace_back();
        d.envelope = u.text(1);
        d.queue = u.text(2);
        d.priority = static_cast<int>(u.int64(3));
        d.delivery_count = static_cast<int>(u.int64(4) + 1);
      }
    }
    for (std::size_t i = 0; i < ds.size(); ++i) {
      char hex[33];
      std::snprintf(hex, sizeof hex, "%016llx%016llx", static_cast<unsigned long long>(rng_()),
                    static_cast<unsigned long long>(rng_()));
      ds[i].tag = std::to_string(ids[i]) + "." + hex;
      db_.cached(
             "UPDATE weft_messages SET lease_until = ?1, tag = ?2, delivery_count = delivery_count + 1 "
             "WHERE id = ?3")
          .use("reserve")
          .bind(1, add_saturated(now, lease_us))
          .bind(2, ds[i].tag)
          .bind(3, ids[i])
          .run();
    }
    if (ds.empty()) {
      auto u = statement(next_sql).use("reserve");
      u.bind(1, now);
      for (std::size_t i = 0; i < queues.size(); ++i) u.bind(static_cast<int>(i + 2), queues[i]);
      if (u.step() && !u.is_null(0)) next_ready_us = u.int64(0);
    }
    (void)txn.commit();  // lazy: nothing to wait for
    return ds;
  }

  const SqliteOptions options_;
  std::mutex mutex_;  // guards db_ and rng_
  Database db_;
  std::mt19937_64 rng_;
  const std::shared_ptr<ChangeWatch> watch_;
  std::atomic<bool> interrupted_{false};
};

}  // namespace

std::shared_ptr<Broker> make_sqlite_broker(const std::string& path) { return make_sqlite_broker(path, {}); }

std::shared_ptr<Broker> make_sqlite_broker(const std::string& path, const SqliteOptions& options) {
  return std::make_shared<SqliteBroker>(path, options);
}

}  // namespace weft::tasks::detail
