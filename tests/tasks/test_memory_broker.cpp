// The memory:// broker and result backend: the broker protocol of weft/tasks/broker.hpp in one process.
#include "weft/tasks/backend.hpp"
#include "weft/tasks/broker.hpp"

#include <gtest/gtest.h>

#include <future>
#include <set>
#include <thread>
#include <vector>

namespace {
using namespace weft::tasks;
using namespace std::chrono_literals;
using Steady = std::chrono::steady_clock;

std::shared_ptr<Broker> fresh() {
  return connect_broker("memory://" + std::string(::testing::UnitTest::GetInstance()->current_test_info()->name()));
}
const std::vector<std::string> kQ{"q"};
auto soon(std::chrono::milliseconds d = 10s) { return std::optional(Steady::now() + d); }

TEST(MemoryBroker, PublishReserveAck) {
  auto b = fresh();
  b->publish("q", "m1", 0, std::nullopt);
  EXPECT_EQ(b->size("q"), 1u);
  auto d = b->reserve(kQ, 10s, soon());
  ASSERT_TRUE(d);
  EXPECT_EQ(d->envelope, "m1");
  EXPECT_EQ(d->delivery_count, 1);
  EXPECT_EQ(b->size("q"), 1u);  // reserved, still there
  EXPECT_TRUE(b->ack(*d));
  EXPECT_EQ(b->size("q"), 0u);
  EXPECT_FALSE(b->ack(*d));
}

TEST(MemoryBroker, HigherPriorityFirstThenPublishOrder) {
  auto b = fresh();
  b->publish("q", "low1", 1, std::nullopt);
  b->publish("q", "high", 9, std::nullopt);
  b->publish("q", "low2", 1, std::nullopt);
  b->publish("q", "clamped", 42, std::nullopt);
  std::vector<std::string> got;
  for (int i = 0; i < 4; ++i) got.push_back(b->reserve(kQ, 10s, soon())->envelope);
  EXPECT_EQ(got, (std::vector<std::string>{"high", "clamped", "low1", "low2"}));
}

TEST(MemoryBroker, NotBeforeIsHonoured) {
  auto b = fresh();
  const auto at = std::chrono::system_clock::now() + 150ms;
  b->publish("q", "later", 0, at);
  EXPECT_FALSE(b->reserve(kQ, 10s, soon(20ms)));
  auto d = b->reserve(kQ, 10s, soon());
  ASSERT_TRUE(d);
  EXPECT_GE(std::chrono::system_clock::now(), at);
}

TEST(MemoryBroker, AnExpiredLeaseRedeliversWithANewTag) {
  auto b = fresh();
  b->publish("q", "m", 0, std::nullopt);
  auto first = b->reserve(kQ, 30ms, soon());
  ASSERT_TRUE(first);
  auto second = b->reserve(kQ, 10s, soon());  // waits for the lease to end
  ASSERT_TRUE(second);
  EXPECT_EQ(second->delivery_count, 2);
  EXPECT_NE(second->tag, first->tag);
  EXPECT_FALSE(b->ack(*first));  // the first holder lost it
  EXPECT_TRUE(b->ack(*second));
}

TEST(MemoryBroker, RenewKeepsTheLease) {
  auto b = fresh();
  b->publish("q", "m", 0, std::nullopt);
  auto d = b->reserve(kQ, 50ms, soon());
  ASSERT_TRUE(d);
  for (int i = 0; i < 5; ++i) {
    EXPECT_FALSE(b->reserve(kQ, 10s, soon(20ms)));
    EXPECT_TRUE(b->renew(*d, 50ms));
  }
  EXPECT_TRUE(b->ack(*d));
}

TEST(MemoryBroker, ReleaseMakesItReadyAgainNowOrLater) {
  auto b = fresh();
  b->publish("q", "m", 0, std::nullopt);
  auto d = b->reserve(kQ, 10s, soon());
  EXPECT_TRUE(b->release(*d));
  auto again = b->reserve(kQ, 10s, soon());
  ASSERT_TRUE(again);
  EXPECT_EQ(again->delivery_count, 2);
  EXPECT_TRUE(b->release(*again, std::chrono::system_clock::now() + 1h));
  EXPECT_FALSE(b->reserve(kQ, 10s, soon(20ms)));
  EXPECT_EQ(b->size("q"), 1u);
  EXPECT_EQ(b->purge("q"), 1u);
  EXPECT_EQ(b->size("q"), 0u);
}

TEST(MemoryBroker, ABlockedReserveWakesForAPublishFromAnotherThread) {
  auto b = fresh();
  auto got = std::async(std::launch::async, [&] { return b->reserve(kQ, 10s, soon(30s)); });
  b->publish("q", "hello", 0, std::nullopt);
  auto d = got.get();
  ASSERT_TRUE(d);
  EXPECT_EQ(d->envelope, "hello");
}

TEST(MemoryBroker, InterruptReturnsABlockedReserveAndOnlyThisConnections) {
  auto b = fresh();
  auto other = fresh();  // same broker, another connection
  auto blocked = std::async(std::launch::async, [&] { return b->reserve(kQ, 10s, std::nullopt); });
  b->interrupt();
  EXPECT_FALSE(blocked.get());
  EXPECT_FALSE(b->reserve(kQ, 10s, std::nullopt));  // stays interrupted
  other->publish("q", "m", 0, std::nullopt);
  EXPECT_TRUE(other->reserve(kQ, 10s, soon()));
  b->resume();
}

TEST(MemoryBroker, BadArgumentsAreRefused) {
  auto b = fresh();
  EXPECT_THROW(b->publish("", "m", 0, std::nullopt), std::invalid_argument);
  EXPECT_THROW(b->publish("q", std::string(kMaxEnvelope + 1, 'x'), 0, std::nullopt), MessageTooLarge);
  EXPECT_THROW((void)b->reserve({}, 10s, soon()), std::invalid_argument);
  EXPECT_THROW((void)b->reserve(kQ, 0ms, soon()), std::invalid_argument);
  EXPECT_THROW((void)connect_broker("nosuch://x"), std::invalid_argument);
  EXPECT_THROW((void)connect_broker("memory"), std::invalid_argument);
}

// Several reservers on one broker: every message goes to exactly one of them. All messages are published
// first, so a reserver that finds nothing ready knows the queue is drained.
TEST(MemoryBroker, ConcurrentReserversEachMessageOnce) {
  auto b = fresh();
  constexpr int kMessages = 4000;
  for (int t : {1, 2, 8}) {
    for (int i = 0; i < kMessages; ++i) b->publish("q", std::to_string(i), i % 10, std::nullopt);
    std::vector<std::future<std::vector<std::string>>> fs;
    for (int i = 0; i < t; ++i) {
      fs.push_back(std::async(std::launch::async, [&] {
        std::vector<std::string> mine;
        auto conn = fresh();
        while (auto d = conn->reserve(kQ, 60s, Steady::now())) {
          mine.push_back(d->envelope);
          EXPECT_TRUE(conn->ack(*d));
        }
        return mine;
      }));
    }
    std::multiset<std::string> all;
    for (auto& f : fs) {
      for (auto& m : f.get()) all.insert(m);
    }
    EXPECT_EQ(all.size(), static_cast<std::size_t>(kMessages)) << t << " reservers";
    EXPECT_EQ(std::set<std::string>(all.begin(), all.end()).size(), all.size()) << "a message delivered twice";
    EXPECT_EQ(b->size("q"), 0u);
  }
}

TEST(MemoryBroker, AFullBrokerRefusesPublishesUntilMessagesAreAcknowledged) {
  const std::string url = "memory://full-broker?max_messages=3";
  auto b = connect_broker(url);
  b->publish("q", "m1", 0, std::nullopt);
  b->publish("q", "m2", 0, std::nullopt);
  // A batch that does not fit is refused whole.
  EXPECT_THROW(b->publish_many(std::vector<Outgoing>{{"q", "m3"}, {"q", "m4"}}), BrokerFull);
  EXPECT_EQ(b->size("q"), 2u);
  b->publish("q", "m3", 0, std::nullopt);
  try {
    b->publish("q", "m4", 0, std::nullopt);
    ADD_FAILURE() << "a fourth message was taken";
  } catch (const BrokerFull& e) {
    EXPECT_NE(std::string(e.what()).find("limit of 3 messages"), std::string::npos) << e.what();
  }
  // A reserved message still counts; an acknowledged one makes room.
  auto d = b->reserve(kQ, 10s, soon());
  ASSERT_TRUE(d);
  EXPECT_THROW(b->publish("q", "m4", 0, std::nullopt), BrokerFull);
  ASSERT_TRUE(b->ack(*d));
  b->publish("q", "m4", 0, std::nullopt);
  EXPECT_EQ(b->size("q"), 3u);
  // Another connection shares the broker and its limit; naming another limit for it is an error.
  EXPECT_EQ(connect_broker("memory://full-broker")->size("q"), 3u);
  EXPECT_THROW(connect_broker("memory://full-broker?max_messages=4"), std::invalid_argument);
  // The result backend of the same URL is the one named full-broker.
  connect_backend(url)->put("k", "v", std::nullopt);
  EXPECT_EQ(connect_backend("memory://full-broker")->read("k"), "v");
}

TEST(MemoryBroker, BadOptionsAreRefused) {
  for (const char* url : {"memory://x?max_messages=0", "memory://x?max_messages=", "memory://x?size=3",
                          "memory://x?max_messages=12abc", "memory://x?max_messages=1000001"}) {
    EXPECT_THROW(connect_broker(url), std::invalid_argument) << url;
  }
}

TEST(MemoryBackend, StoreGetWaitForgetAndTheFirstFinalStateWins) {
  auto r = connect_backend("memory://backend-test");
  EXPECT_FALSE(r->get("t1"));
  ResultMeta m;
  m.task_id = "t1";
  m.state = State::started;
  EXPECT_TRUE(r->store(m));
  auto waiter = std::async(std::launch::async, [&] { return r->wait("t1", soon(30s)); });
  m.state = State::success;
  m.result = 42;
  EXPECT_TRUE(r->store(m));
  auto got = waiter.get();
  ASSERT_TRUE(got);
  EXPECT_EQ(got->state, State::success);
  EXPECT_EQ(got->result, 42);
  m.state = State::failure;
  EXPECT_FALSE(r->store(m));  // a duplicate delivery cannot overwrite the first result
  EXPECT_EQ(r->get("t1")->state, State::success);
  r->forget("t1");
  EXPECT_FALSE(r->get("t1"));
  const auto t0 = Steady::now();
  EXPECT_FALSE(r->wait("t2", soon(30ms)));
  EXPECT_GE(Steady::now() - t0, 30ms);
}

}  // namespace
