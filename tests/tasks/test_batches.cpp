// Batched operations on memory:// and sqlite://: Broker::reserve_many and ack_many, ResultBackend::store_many
// and prefers_batches; and sqlite://'s group commit, shared by the connections of one process on one file.
#include "support.hpp"

#include <gtest/gtest.h>

#include <algorithm>
#include <chrono>
#include <cstddef>
#include <future>
#include <latch>
#include <limits>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

#include "weft/tasks/backend.hpp"
#include "weft/tasks/broker.hpp"

namespace {

using namespace weft::tasks;
using namespace std::chrono_literals;
using weft::test::TempDir;
using Steady = std::chrono::steady_clock;

constexpr auto kLong = std::chrono::seconds(30);  // a safety net, never the thing measured
constexpr auto kLease = std::chrono::seconds(60);  // longer than any test: no lease here ends by itself

// The envelopes of `ds`, concatenated in order.
std::string bodies(const std::vector<Delivery>& ds) {
  std::string out;
  for (const Delivery& d : ds) out += d.envelope;
  return out;
}

ResultMeta meta(const std::string& id, State state, Json result = nullptr) {
  ResultMeta m;
  m.task_id = id;
  m.state = state;
  m.result = std::move(result);
  if (is_ready(state)) m.date_done = std::chrono::system_clock::now();
  m.name = "b.task";
  return m;
}

class Batches : public ::testing::TestWithParam<const char*> {
 protected:
  const std::string& url() const { return url_; }
  bool sqlite() const { return std::string(GetParam()) == "sqlite"; }
  TempDir dir_;
  const std::string url_ = weft::test::fresh_url_for(GetParam(), dir_, "batches");
  const std::vector<std::string> q_{"q"};
};

// ---- reserve_many ------------------------------------------------------------------------------------------

TEST_P(Batches, ReserveManyTakesUpToMaxByPriorityThenPublishOrder) {
  auto b = connect_broker(url());
  b->publish_many(std::vector<Outgoing>{
      {"q", "a", 1}, {"q", "b", 5}, {"q", "c", 1}, {"q", "d", 5}, {"q", "e", 0}, {"q", "f", 9}, {"q", "g", 5}});
  const std::vector<Delivery> first = b->reserve_many(q_, kLease, 4, Steady::now() + kLong);
  ASSERT_EQ(first.size(), 4u);
  EXPECT_EQ(bodies(first), "fbdg");  // 9, then the three of priority 5 in publish order
  for (const Delivery& d : first) {
    EXPECT_EQ(d.queue, "q");
    EXPECT_EQ(d.delivery_count, 1);
  }
  EXPECT_EQ(first[0].priority, 9);
  EXPECT_EQ(first[3].priority, 5);
  // The second gets the rest, fewer than it asked for: it does not wait for more once it has one.
  const std::vector<Delivery> rest = b->reserve_many(q_, kLease, 10, Steady::now() + kLong);
  EXPECT_EQ(bodies(rest), "ace");
  // Every one is leased now: nothing more until the deadline.
  EXPECT_TRUE(b->reserve_many(q_, kLease, 10, Steady::now() + 20ms).empty());
  EXPECT_EQ(b->size("q"), 7u);  // reserved messages stay in the broker until acknowledged
  std::set<std::string> tags;
  for (const auto* batch : {&first, &rest}) {
    for (const Delivery& d : *batch) tags.insert(d.tag);
  }
  EXPECT_EQ(tags.size(), 7u);  // distinct tags
}

// Whatever order reserve() hands messages out in (over several queues too), reserve_many hands them out in
// the same one.
TEST_P(Batches, ReserveManyHandsOutWhatReserveWouldInTheSameOrder) {
  auto b = connect_broker(url());
  const std::vector<std::string> queues{"q2", "q1"};
  b->publish_many(std::vector<Outgoing>{{"q1", "a", 0}, {"q2", "b", 0}, {"q1", "c", 3}, {"q2", "d", 3},
                                        {"q2", "e", 0}, {"q1", "f", 0}, {"q2", "g", 9}, {"q3", "x", 9}});
  std::string one_by_one;
  std::vector<Delivery> singles;
  for (int i = 0; i < 7; ++i) {
    auto d = b->reserve(queues, kLease, Steady::now() + kLong);
    ASSERT_TRUE(d);
    one_by_one += d->envelope;
    singles.push_back(std::move(*d));
  }
  EXPECT_EQ(one_by_one, "gcdabef");  // priority, then publish order across the queues; q3 is not asked for
  // Given back (ready at once, in their old places), then taken in one batch.
  for (const Delivery& d : singles) ASSERT_TRUE(b->release(d));
  const std::vector<Delivery> batch = b->reserve_many(queues, kLease, 100, Steady::now() + kLong);
  EXPECT_EQ(bodies(batch), one_by_one);
  for (const Delivery& d : batch) EXPECT_EQ(d.delivery_count, 2);  // each was delivered once before
}

TEST_P(Batches, ReserveManyGivesEachMessageALeaseOfItsOwn) {
  auto b = connect_broker(url());
  b->publish_many(std::vector<Outgoing>{{"q", "a"}, {"q", "b"}, {"q", "c"}, {"q", "d"}});
  const std::vector<Delivery> ds = b->reserve_many(q_, kLease, 4, Steady::now() + kLong);
  ASSERT_EQ(bodies(ds), "abcd");
  EXPECT_TRUE(b->ack(ds[0]));
  EXPECT_TRUE(b->release(ds[1]));
  EXPECT_TRUE(b->renew(ds[2], kLease));
  EXPECT_EQ(b->size("q"), 3u);
  // Only the released one is ready again; the renewed one and the untouched one are still leased.
  const std::vector<Delivery> again = b->reserve_many(q_, kLease, 4, Steady::now() + kLong);
  ASSERT_EQ(bodies(again), "b");
  EXPECT_EQ(again[0].delivery_count, 2);
  EXPECT_NE(again[0].tag, ds[1].tag);
  EXPECT_FALSE(b->ack(ds[1]));     // the released delivery is over
  EXPECT_FALSE(b->renew(ds[1], kLease));
  EXPECT_FALSE(b->ack(ds[0]));     // acknowledged already
  EXPECT_TRUE(b->ack(ds[2]));
  EXPECT_TRUE(b->ack(ds[3]));
  EXPECT_TRUE(b->ack(again[0]));
  EXPECT_EQ(b->size("q"), 0u);
}

TEST_P(Batches, ReserveManyRefusesBadArgumentsAndLeasesNothingThen) {
  auto b = connect_broker(url());
  b->publish_many(std::vector<Outgoing>{{"q", "a"}, {"q", "b"}});
  const std::vector<std::string> none;
  const std::vector<std::string> empty_name{"q", ""};
  EXPECT_THROW(b->reserve_many(q_, kLease, 0, Steady::now() + kLong), std::invalid_argument);
  EXPECT_THROW(b->reserve_many(none, kLease, 2, Steady::now() + kLong), std::invalid_argument);
  EXPECT_THROW(b->reserve_many(empty_name, kLease, 2, Steady::now() + kLong), std::invalid_argument);
  EXPECT_THROW(b->reserve_many(q_, 0ms, 2, Steady::now() + kLong), std::invalid_argument);
  EXPECT_EQ(bodies(b->reserve_many(q_, kLease, 2, Steady::now() + kLong)), "ab");  // both still ready
}

TEST_P(Batches, ReserveManyReturnsEmptyAtItsDeadlineWhenNothingIsReady) {
  auto b = connect_broker(url());
  EXPECT_TRUE(b->reserve_many(q_, kLease, 5, Steady::now() + 20ms).empty());  // an empty queue
  b->publish("q", "later", 0, std::chrono::system_clock::now() + 1h);
  EXPECT_TRUE(b->reserve_many(q_, kLease, 5, Steady::now() + 20ms).empty());  // not due for an hour
  EXPECT_TRUE(b->reserve_many(q_, kLease, 5, Steady::now()).empty());         // a deadline that has passed
  EXPECT_EQ(b->size("q"), 1u);
}

TEST_P(Batches, ReserveManyReturnsEmptyWhenInterrupted) {
  auto b = connect_broker(url());
  b->publish("q", "a", 0, std::nullopt);
  b->interrupt();
  EXPECT_TRUE(b->reserve_many(q_, kLease, 5, Steady::now() + kLong).empty());  // at once, though one is ready
  b->resume();
  EXPECT_EQ(bodies(b->reserve_many(q_, kLease, 5, Steady::now() + kLong)), "a");
  // A waiting one returns empty on interrupt() as well.
  auto waiting = std::async(std::launch::async, [&] { return b->reserve_many(q_, kLease, 5, std::nullopt); });
  b->interrupt();
  EXPECT_TRUE(waiting.get().empty());
  b->resume();
}

// A publish wakes a waiting reserve_many, which then takes the whole batch (stored in one go).
TEST_P(Batches, ReserveManyWakesForAPublishedBatch) {
  auto b = connect_broker(url());
  auto waiting = std::async(std::launch::async, [&] { return b->reserve_many(q_, kLease, 10, Steady::now() + kLong); });
  auto other = connect_broker(url());  // another connection of the same broker
  other->publish_many(std::vector<Outgoing>{{"q", "a"}, {"q", "b"}, {"q", "c"}});
  EXPECT_EQ(bodies(waiting.get()), "abc");
}

TEST_P(Batches, ReserveManyTakesAtMostKMaxReserveBatch) {
  auto b = connect_broker(url());
  const std::vector<Outgoing> many(kMaxReserveBatch + 5, Outgoing{"q", "m"});
  b->publish_many(many);
  const auto ds = b->reserve_many(q_, kLease, std::numeric_limits<std::size_t>::max(), Steady::now() + kLong);
  EXPECT_EQ(ds.size(), kMaxReserveBatch);
  EXPECT_EQ(b->reserve_many(q_, kLease, kMaxReserveBatch + 1, Steady::now() + kLong).size(), 5u);
  EXPECT_EQ(b->size("q"), kMaxReserveBatch + 5);
}

// ---- ack_many ----------------------------------------------------------------------------------------------

TEST_P(Batches, AckManyAnswersForEachDelivery) {
  auto b = connect_broker(url());
  b->publish_many(std::vector<Outgoing>{{"q", "a"}, {"q", "b"}, {"q", "c"}, {"q", "d"}, {"q", "e"}});
  const std::vector<Delivery> ds = b->reserve_many(q_, kLease, 4, Steady::now() + kLong);
  ASSERT_EQ(bodies(ds), "abcd");
  ASSERT_TRUE(b->ack(ds[1]));      // acknowledged already
  ASSERT_TRUE(b->release(ds[2]));  // handed back: ready again, this delivery is over
  // The same delivery twice in one batch: the second finds it gone.
  const std::vector<Delivery> batch{ds[0], ds[1], ds[2], ds[3], ds[0]};
  EXPECT_EQ(b->ack_many(batch), (std::vector<bool>{true, false, false, true, false}));
  EXPECT_EQ(b->size("q"), 2u);  // "c" (released) and "e" (never reserved)
  EXPECT_EQ(bodies(b->reserve_many(q_, kLease, 10, Steady::now() + kLong)), "ce");
  EXPECT_TRUE(b->ack_many(std::vector<Delivery>{}).empty());
}

// A delivery whose lease ended and that went to someone else cannot be acknowledged; the new one can.
TEST_P(Batches, AckManyRefusesADeliveryWhoseLeaseEndedAndWentToAnother) {
  auto b = connect_broker(url());
  b->publish_many(std::vector<Outgoing>{{"q", "a"}, {"q", "b"}});
  const std::vector<Delivery> ds = b->reserve_many(q_, 30ms, 2, Steady::now() + kLong);
  ASSERT_EQ(ds.size(), 2u);
  // The broker hands them out again once the short lease ends (reserve_many waits for that itself).
  std::vector<Delivery> again;
  const auto until = Steady::now() + kLong;
  while (again.size() < 2 && Steady::now() < until) {
    for (Delivery& d : b->reserve_many(q_, kLease, 2, until)) again.push_back(std::move(d));
  }
  ASSERT_EQ(bodies(again), "ab");
  for (const Delivery& d : again) EXPECT_EQ(d.delivery_count, 2);
  EXPECT_EQ(b->ack_many(std::vector<Delivery>{ds[0], again[0], ds[1]}), (std::vector<bool>{false, true, false}));
  EXPECT_EQ(b->size("q"), 1u);
  EXPECT_EQ(b->ack_many(std::vector<Delivery>{again[1]}), std::vector<bool>{true});
  EXPECT_EQ(b->size("q"), 0u);
}

// ---- store_many --------------------------------------------------------------------------------------------

TEST_P(Batches, StoreManyStoresEachAndAReadyStateStaysFinal) {
  auto r = connect_backend(url());
  const std::vector<ResultMeta> first{meta("t1", State::success, 1), meta("t2", State::failure, "boom"),
                                      meta("t3", State::success, Json::array({3, 3}))};
  EXPECT_EQ(r->store_many(first), (std::vector<bool>{true, true, true}));
  ASSERT_TRUE(r->get("t1"));
  EXPECT_EQ(r->get("t1")->state, State::success);
  EXPECT_EQ(r->get("t1")->result, 1);
  EXPECT_EQ(r->get("t2")->state, State::failure);
  EXPECT_EQ(r->get("t3")->result, Json::array({3, 3}));
  EXPECT_EQ(r->get("t3")->name, "b.task");
  // Over ready states: refused, the first values stay; a new id in the same batch is stored.
  const std::vector<ResultMeta> second{meta("t1", State::success, 100), meta("t4", State::success, 4),
                                       meta("t2", State::success, 2), meta("t3", State::started)};
  EXPECT_EQ(r->store_many(second), (std::vector<bool>{false, true, false, false}));
  EXPECT_EQ(r->get("t1")->result, 1);
  EXPECT_EQ(r->get("t2")->state, State::failure);
  EXPECT_EQ(r->get("t2")->result, "boom");
  EXPECT_EQ(r->get("t3")->state, State::success);
  EXPECT_EQ(r->get("t4")->result, 4);
  EXPECT_TRUE(r->store_many(std::vector<ResultMeta>{}).empty());
}

TEST_P(Batches, StoreManyMovesATaskThroughItsStatesWithinAndAcrossBatches) {
  auto r = connect_backend(url());
  // Within one batch, in order: each meta sees the ones before it.
  EXPECT_EQ(r->store_many(std::vector<ResultMeta>{meta("a", State::started), meta("a", State::success, 7),
                                                  meta("a", State::success, 8)}),
            (std::vector<bool>{true, true, false}));
  EXPECT_EQ(r->get("a")->result, 7);
  // Across batches.
  EXPECT_EQ(r->store_many(std::vector<ResultMeta>{meta("b", State::pending)}), std::vector<bool>{true});
  EXPECT_EQ(r->get("b")->state, State::pending);
  EXPECT_EQ(r->store_many(std::vector<ResultMeta>{meta("b", State::started, Json{{"pid", 1}})}),
            std::vector<bool>{true});
  EXPECT_EQ(r->get("b")->state, State::started);
  EXPECT_EQ(r->store_many(std::vector<ResultMeta>{meta("b", State::retry, "again")}), std::vector<bool>{true});
  EXPECT_EQ(r->store_many(std::vector<ResultMeta>{meta("b", State::success, "done")}), std::vector<bool>{true});
  EXPECT_EQ(r->get("b")->state, State::success);
  EXPECT_EQ(r->get("b")->result, "done");
  EXPECT_EQ(r->store_many(std::vector<ResultMeta>{meta("b", State::retry, "late")}), std::vector<bool>{false});
  EXPECT_EQ(r->get("b")->state, State::success);
}

TEST_P(Batches, StoreManyWakesWaiters) {
  auto r = connect_backend(url());
  auto waiter = connect_backend(url());
  auto waiting = std::async(std::launch::async, [&] { return waiter->wait("w2", Steady::now() + kLong); });
  r->store_many(std::vector<ResultMeta>{meta("w1", State::success, 1), meta("w2", State::success, 2)});
  const std::optional<ResultMeta> m = waiting.get();
  ASSERT_TRUE(m);
  EXPECT_EQ(m->state, State::success);
  EXPECT_EQ(m->result, 2);
}

TEST_P(Batches, OnlySqlitePrefersBatches) {
  EXPECT_EQ(connect_backend(url())->prefers_batches(), sqlite());
}

INSTANTIATE_TEST_SUITE_P(Brokers, Batches, ::testing::Values("memory", "sqlite"));

// sqlite://: a batch that cannot be stored whole stores nothing.
TEST(SqliteStoreMany, IsAllOrNone) {
  TempDir dir;
  auto r = connect_backend("sqlite://" + dir.db());
  EXPECT_THROW(r->store_many(std::vector<ResultMeta>{meta("x1", State::success, 1), meta("", State::success, 2)}),
               std::invalid_argument);
  // A result JSON text cannot hold (not UTF-8), after one that could be stored.
  EXPECT_THROW(r->store_many(
      std::vector<ResultMeta>{meta("x2", State::success, 1), meta("x3", State::success, std::string("\xff\xfe"))}),
               Json::exception);
  EXPECT_FALSE(r->get("x1"));
  EXPECT_FALSE(r->get("x2"));
  EXPECT_FALSE(r->get("x3"));
}

// ---- sqlite://: the group commit shared by the connections of one process --------------------------------

// Every message of `b`'s queue "q", each reserved once (a new connection's view), in reserve order.
std::vector<Delivery> reserve_all(Broker& b, std::size_t expected) {
  const std::vector<std::string> q{"q"};
  std::vector<Delivery> all;
  for (std::size_t round = 0; round <= expected / kMaxReserveBatch && all.size() < expected; ++round) {
    for (Delivery& d : b.reserve_many(q, kLease, kMaxReserveBatch, Steady::now() + kLong)) all.push_back(std::move(d));
  }
  return all;
}

// Each thread publishes and stores with connections of its own, one full commit per call, all at once:
// every message and result is there exactly once, for a connection opened afterwards too.
TEST(SqliteGroupCommit, ConcurrentConnectionsOfOneProcessLoseNothing) {
  TempDir dir;
  const std::string url = "sqlite://" + dir.db();
  constexpr int kThreads = 4;
  constexpr int kEach = 300;
  constexpr std::size_t kTotal = kThreads * kEach;
  // Opened here, so that a failure to open cannot leave the other threads waiting at the latch.
  std::vector<std::shared_ptr<Broker>> brokers;
  std::vector<std::shared_ptr<ResultBackend>> backends;
  for (int t = 0; t < kThreads; ++t) {
    brokers.push_back(connect_broker(url));
    backends.push_back(connect_backend(url));
  }
  std::latch go(kThreads);
  std::vector<std::future<void>> writers;
  for (int t = 0; t < kThreads; ++t) {
    writers.push_back(std::async(std::launch::async, [&, t, b = brokers[t], r = backends[t]] {
      go.arrive_and_wait();  // the threads start together: their commits overlap
      for (int i = 0; i < kEach; ++i) {
        const std::string id = std::to_string(t) + "-" + std::to_string(i);
        b->publish("q", id, 0, std::nullopt);
        if (!r->store(meta(id, State::success, t * kEach + i))) throw std::logic_error("store refused " + id);
      }
    }));
  }
  for (auto& w : writers) w.wait();
  for (auto& w : writers) w.get();  // rethrows a writer's failure

  auto b = connect_broker(url);
  auto r = connect_backend(url);
  EXPECT_EQ(b->size("q"), kTotal);
  const std::vector<Delivery> all = reserve_all(*b, kTotal);
  ASSERT_EQ(all.size(), kTotal);
  EXPECT_TRUE(b->reserve_many(std::vector<std::string>{"q"}, kLease, 1, Steady::now()).empty());
  std::set<std::string> seen;
  for (const Delivery& d : all) seen.insert(d.envelope);
  EXPECT_EQ(seen.size(), kTotal);  // nothing twice
  for (int t = 0; t < kThreads; ++t) {
    for (int i = 0; i < kEach; ++i) {
      const std::string id = std::to_string(t) + "-" + std::to_string(i);
      EXPECT_EQ(seen.count(id), 1u) << id;
      const std::optional<ResultMeta> m = r->get(id);
      ASSERT_TRUE(m) << id;
      EXPECT_EQ(m->state, State::success);
      EXPECT_EQ(m->result, t * kEach + i);
    }
  }
  for (const bool done : b->ack_many(all)) EXPECT_TRUE(done);
  EXPECT_EQ(b->size("q"), 0u);
}

// Producers commit fully (publish, store) while consumers commit lazily (reserve, renew, release, ack), each on
// connections of its own: afterwards every message published was acknowledged once or is still there, never
// both, and every result is stored. The consumers take two thirds of the messages, so both kinds are left.
TEST(SqliteGroupCommit, FullAndLazyCommitsInterleaveConsistently) {
  TempDir dir;
  const std::string url = "sqlite://" + dir.db();
  constexpr int kProducers = 2;
  constexpr int kConsumers = 2;
  constexpr int kEach = 300;
  constexpr std::size_t kTotal = kProducers * kEach;
  constexpr std::size_t kQuota = kTotal / 3;  // what each consumer acknowledges
  // Opened here, so that a failure to open cannot leave the other threads waiting at the latch.
  std::vector<std::shared_ptr<Broker>> brokers;
  std::vector<std::shared_ptr<ResultBackend>> backends;
  for (int t = 0; t < kProducers + kConsumers; ++t) {
    brokers.push_back(connect_broker(url));
    backends.push_back(connect_backend(url));
  }
  std::latch go(kProducers + kConsumers);
  std::vector<std::future<void>> producers;
  for (int p = 0; p < kProducers; ++p) {
    producers.push_back(std::async(std::launch::async, [&, p, b = brokers[p], r = backends[p]] {
      go.arrive_and_wait();
      for (int i = 0; i < kEach; ++i) {
        const std::string id = "p" + std::to_string(p) + "-" + std::to_string(i);
        b->publish("q", id, i % 3, std::nullopt);
        if (!r->store(meta(id, State::success, i))) throw std::logic_error("store refused " + id);
      }
    }));
  }
  // A consumer acknowledges what it reserves, except that every fourth batch gives its last message back
  // (another consumer may take it) and every third renews its first lease first.
  std::vector<std::future<std::vector<std::string>>> consumers;
  for (int c = 0; c < kConsumers; ++c) {
    consumers.push_back(std::async(std::launch::async, [&, b = brokers[kProducers + c]] {
      const std::vector<std::string> q{"q"};
      std::vector<std::string> acked;
      go.arrive_and_wait();
      const auto until = Steady::now() + kLong;
      for (int round = 1; acked.size() < kQuota; ++round) {
        std::vector<Delivery> ds = b->reserve_many(q, kLease, std::min<std::size_t>(16, kQuota - acked.size()), until);
        if (ds.empty()) throw std::logic_error("nothing to reserve before the deadline");
        if (round % 3 == 0 && !b->renew(ds.front(), kLease)) throw std::logic_error("renew refused");
        if (round % 4 == 0 && ds.size() > 1) {
          if (!b->release(ds.back())) throw std::logic_error("release refused");
          ds.pop_back();
        }
        const std::vector<bool> done = b->ack_many(ds);
        if (done.size() != ds.size()) throw std::logic_error("ack_many answered for another number of deliveries");
        for (std::size_t i = 0; i < ds.size(); ++i) {
          if (!done[i]) throw std::logic_error("ack refused for " + ds[i].envelope + " under a live lease");
          acked.push_back(ds[i].envelope);
        }
      }
      return acked;
    }));
  }
  for (auto& p : producers) p.get();
  std::map<std::string, int> acked;  // envelope -> acknowledgements
  std::size_t acks = 0;
  for (auto& c : consumers) {
    for (const std::string& e : c.get()) {
      ++acked[e];
      ++acks;
    }
  }
  EXPECT_EQ(acks, kConsumers * kQuota);
  EXPECT_EQ(acked.size(), acks);  // none acknowledged twice

  auto b = connect_broker(url);
  auto r = connect_backend(url);
  EXPECT_EQ(b->size("q"), kTotal - acks);
  const std::vector<Delivery> left = reserve_all(*b, kTotal - acks);
  ASSERT_EQ(left.size(), kTotal - acks);
  std::set<std::string> there;
  for (const Delivery& d : left) there.insert(d.envelope);
  EXPECT_EQ(there.size(), left.size());  // nothing twice
  for (int p = 0; p < kProducers; ++p) {
    for (int i = 0; i < kEach; ++i) {
      const std::string id = "p" + std::to_string(p) + "-" + std::to_string(i);
      EXPECT_EQ(acked.count(id) + there.count(id), 1u) << id << ": acknowledged or still there, once";
      const std::optional<ResultMeta> m = r->get(id);
      ASSERT_TRUE(m) << id;
      EXPECT_EQ(m->result, i);
    }
  }
}

}  // namespace
