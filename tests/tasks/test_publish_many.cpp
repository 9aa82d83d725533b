// Batches: Broker::publish_many stores all of a batch or none, in order, on memory:// and sqlite://, and
// App::send_many sends calls that workers run like any other.
#include "support.hpp"

#include <gtest/gtest.h>
#include <unistd.h>

#include <chrono>
#include <string>
#include <vector>

#include "weft/tasks/app.hpp"
#include "weft/tasks/worker.hpp"

namespace {

using namespace weft::tasks;
using namespace std::chrono_literals;
using weft::test::TempDir;
using Steady = std::chrono::steady_clock;

constexpr auto kLong = std::chrono::seconds(30);  // a safety net, never the thing measured

int twice(int x) { return 2 * x; }

class PublishMany : public ::testing::TestWithParam<const char*> {
 protected:
  std::string url() const { return weft::test::url_for(GetParam(), dir_, "batch"); }
  TempDir dir_;
};

TEST_P(PublishMany, StoresABatchInOrderByPriority) {
  auto b = connect_broker(url());
  const std::vector<std::string> bodies{"a", "b", "c", "d", "e"};
  const std::vector<Outgoing> batch{{"q", bodies[0], 1}, {"q", bodies[1], 5}, {"q", bodies[2], 1},
                                    {"q", bodies[3], 5}, {"q", bodies[4], 0}};
  b->publish_many(batch);
  EXPECT_EQ(b->size("q"), 5u);
  std::string order;
  const std::vector<std::string> queues{"q"};
  for (int i = 0; i < 5; ++i) {
    auto d = b->reserve(queues, 10s, Steady::now() + kLong);
    ASSERT_TRUE(d);
    order += d->envelope;
    EXPECT_TRUE(b->ack(*d));
  }
  EXPECT_EQ(order, "bdace");  // priority 5 first, then 1, then 0; each level in batch order
}

TEST_P(PublishMany, HonoursNotBeforeInABatch) {
  auto b = connect_broker(url());
  const auto later = std::chrono::system_clock::now() + 1h;
  b->publish_many(std::vector<Outgoing>{{"q", "later", 0, later}, {"q", "now", 0, std::nullopt}});
  const std::vector<std::string> queues{"q"};
  auto d = b->reserve(queues, 10s, Steady::now() + kLong);
  ASSERT_TRUE(d);
  EXPECT_EQ(d->envelope, "now");
  EXPECT_FALSE(b->reserve(queues, 10s, Steady::now() + 20ms));  // the other is not due for an hour
  EXPECT_EQ(b->size("q"), 2u);
}

TEST_P(PublishMany, AllOrNothing) {
  auto b = connect_broker(url());
  const std::string big(kMaxEnvelope + 1, 'x');
  EXPECT_THROW(b->publish_many(std::vector<Outgoing>{{"q", "ok"}, {"q", "ok"}, {"q", big}}), MessageTooLarge);
  EXPECT_THROW(b->publish_many(std::vector<Outgoing>{{"q", "ok"}, {"", "no queue"}}), std::invalid_argument);
  const std::vector<Outgoing> too_many(kMaxPublishBatch + 1, Outgoing{"q", "m"});
  EXPECT_THROW(b->publish_many(too_many), std::invalid_argument);
  EXPECT_EQ(b->size("q"), 0u);  // none of those batches stored anything
  b->publish_many({});
  EXPECT_EQ(b->size("q"), 0u);
}

TEST_P(PublishMany, SendManyCallsRunOnAWorker) {
  App app({.broker = url(), .backend = url()});
  app.task<&twice>("b.twice");
  std::vector<TaskMessage> calls;
  for (int i = 0; i < 50; ++i) calls.push_back(app.make_message("b.twice", Json::array({i}), Json::object(), {}));
  calls[7].id = "chosen-id";
  Worker w(app, {.concurrency = 2});
  w.start();
  const std::vector<AsyncResult> rs = app.send_many(std::move(calls));
  ASSERT_EQ(rs.size(), 50u);
  EXPECT_EQ(rs[7].id(), "chosen-id");
  for (int i = 0; i < 50; ++i) EXPECT_EQ(rs[i].get<int>(kLong), 2 * i);
  std::vector<TaskMessage> nameless(1);
  EXPECT_THROW(app.send_many(std::move(nameless)), std::invalid_argument);
}

// publish_messages: memory:// hands the message itself to the worker (nothing encoded), sqlite:// an envelope;
// either way envelope_of gives the envelope, and the batch is all or none.
TEST_P(PublishMany, PublishMessagesKeepsWhatWasSent) {
  auto b = connect_broker(url());
  App app({.broker = url(), .backend = url()});
  TaskMessage m = app.make_message("t.twice", Json::array({21}), Json::object(), {.priority = 3});
  m.id = "id-1";
  m.root_id = "id-1";
  const auto sent = std::make_shared<const TaskMessage>(m);
  b->publish_messages(std::span(&sent, 1));
  const std::vector<std::string> queues{"celery"};
  auto d = b->reserve(queues, 10s, Steady::now() + kLong);
  ASSERT_TRUE(d);
  const bool memory = std::string(GetParam()) == "memory";
  EXPECT_EQ(d->message != nullptr, memory);
  EXPECT_EQ(d->envelope.empty(), memory);
  EXPECT_EQ(d->priority, 3);
  const TaskMessage back = decode_envelope(envelope_of(*d));
  EXPECT_EQ(back.id, "id-1");
  EXPECT_EQ(back.task, "t.twice");
  EXPECT_EQ(back.args, Json::array({21}));
  EXPECT_TRUE(b->ack(*d));

  // All or none: an empty queue name; memory://: arguments too large (estimated; sqlite:// measures the
  // envelope, as encode_envelope's own tests show).
  TaskMessage unrouted = m;
  unrouted.queue.clear();
  EXPECT_THROW(b->publish_messages(std::vector<std::shared_ptr<const TaskMessage>>{
                   sent, std::make_shared<const TaskMessage>(unrouted)}),
               std::invalid_argument);
  if (memory) {
    TaskMessage big = m;
    big.args = Json::array({std::string(kMaxEnvelope, 'x')});
    EXPECT_THROW(b->publish_messages(std::vector<std::shared_ptr<const TaskMessage>>{
                     sent, std::make_shared<const TaskMessage>(big)}),
                 MessageTooLarge);
  }
  EXPECT_EQ(b->size("celery"), 0u);
}

INSTANTIATE_TEST_SUITE_P(Brokers, PublishMany, ::testing::Values("memory", "sqlite"));

}  // namespace
