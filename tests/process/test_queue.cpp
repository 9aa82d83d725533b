// Queue: a shared-memory ring between processes — order, back-pressure, timeouts, close, bad messages, and
// producers and consumers in several processes at once.
#include "weft/process/queue.hpp"
#include "weft/process/process.hpp"

#include "support.hpp"

#include <gtest/gtest.h>

#include <chrono>
#include <cstdint>
#include <numeric>
#include <random>
#include <string>
#include <vector>

namespace {

using namespace std::chrono_literals;
using weft::process::Process;
using weft::process::Queue;
using weft::process::QueueOptions;

using weft::test::kLong;

std::string payload(std::uint32_t seed, std::size_t size) {
  std::string s(size, '\0');
  std::uint32_t x = seed * 2654435761u + 1;
  for (auto& c : s) {
    x = x * 1664525u + 1013904223u;
    c = static_cast<char>(x >> 24);
  }
  return s;
}

void produce_ints(Queue q, int from, int count) {
  for (int i = 0; i < count; ++i) q.put(from + i);
}

void produce_sized(Queue q, int count) {
  std::mt19937 rng(7);
  for (int i = 0; i < count; ++i) {
    std::size_t size = rng() % 3000;
    q.put_bytes(payload(static_cast<std::uint32_t>(i), size));
  }
}

// Takes ints until it sees -1; reports {count, sum} on `out`.
void consume_until_sentinel(Queue in, Queue out) {
  std::int64_t count = 0, sum = 0;
  for (;;) {
    int v = in.get<int>(kLong);
    if (v == -1) break;
    ++count;
    sum += v;
  }
  out.put(std::vector<std::int64_t>{count, sum});
}

void get_until_closed(Queue q) {
  try {
    (void)q.get_bytes();  // no timeout: only close() can end this
  } catch (const weft::ChannelClosed&) {
    ::_exit(0);
  }
  ::_exit(1);
}

TEST(Queue, ValuesComeOutInOrderInOneProcess) {
  Queue q;
  q.put(std::string("one"));
  q.put(std::vector<int>{2, 2});
  q.put(3.5);
  EXPECT_EQ(q.get<std::string>(), "one");
  EXPECT_EQ((q.get<std::vector<int>>()), (std::vector<int>{2, 2}));
  EXPECT_EQ(q.get<double>(), 3.5);
  EXPECT_TRUE(q.empty());
}

TEST(Queue, OneProducerProcessKeepsOrder) {
  Queue q(QueueOptions{.capacity_bytes = 4096});  // small: the producer must wait for the consumer
  Process p(&produce_ints, q, 1000, 20000);
  for (int i = 0; i < 20000; ++i) ASSERT_EQ(q.get<int>(kLong), 1000 + i);
  ASSERT_TRUE(p.join(kLong));
  EXPECT_EQ(p.exitcode(), 0);
}

TEST(Queue, MessagesOfManySizesSpanSlotsAndWrapIntact) {
  Queue q(QueueOptions{.capacity_bytes = 4096});
  Process p(&produce_sized, q, 3000);
  std::mt19937 rng(7);
  for (int i = 0; i < 3000; ++i) {
    std::size_t size = rng() % 3000;
    ASSERT_EQ(q.get_bytes(kLong), payload(static_cast<std::uint32_t>(i), size)) << "message " << i;
  }
  ASSERT_TRUE(p.join(kLong));
}

TEST(Queue, ManyProducersManyConsumersLoseAndDuplicateNothing) {
  struct Shape {
    int producers, consumers;
  };
  for (Shape s : {Shape{1, 1}, Shape{2, 2}, Shape{4, 3}}) {
    Queue work(QueueOptions{.capacity_bytes = 2048});
    Queue results;
    const int per = 5000;
    std::vector<Process> ps;
    for (int c = 0; c < s.consumers; ++c) ps.emplace_back(&consume_until_sentinel, work, results);
    std::vector<Process> prod;
    for (int p = 0; p < s.producers; ++p) prod.emplace_back(&produce_ints, work, p * per, per);
    for (auto& p : prod) ASSERT_TRUE(p.join(kLong));
    for (int c = 0; c < s.consumers; ++c) work.put(-1);
    std::int64_t count = 0, sum = 0;
    for (int c = 0; c < s.consumers; ++c) {
      auto r = results.get<std::vector<std::int64_t>>(kLong);
      count += r[0];
      sum += r[1];
    }
    for (auto& p : ps) ASSERT_TRUE(p.join(kLong));
    const std::int64_t n = static_cast<std::int64_t>(s.producers) * per;
    EXPECT_EQ(count, n) << s.producers << " producers, " << s.consumers << " consumers";
    EXPECT_EQ(sum, n * (n - 1) / 2);
  }
}

TEST(Queue, FullQueueTimesOutThenAcceptsAfterAGet) {
  Queue q(QueueOptions{.capacity_bytes = 256});  // 4 slots
  for (int i = 0; i < 4; ++i) q.put_bytes(std::string(10, 'x'));
  EXPECT_FALSE(q.try_put_bytes("y"));
  EXPECT_THROW(q.put_bytes("y", 5ms), weft::Timeout);
  EXPECT_EQ(q.get_bytes(), std::string(10, 'x'));
  q.put_bytes("y", 5ms);
}

TEST(Queue, EmptyQueueGetTimesOut) {
  Queue q;
  EXPECT_THROW((void)q.get_bytes(5ms), weft::Timeout);
  EXPECT_EQ(q.try_get_bytes(), std::nullopt);
}

TEST(Queue, OversizedMessageIsRefusedAndTheQueueGoesOn) {
  Queue q(QueueOptions{.capacity_bytes = 4096, .max_message = 100});
  EXPECT_THROW(q.put_bytes(std::string(101, 'a')), weft::process::MessageTooLarge);
  q.put_bytes(std::string(100, 'b'));
  EXPECT_EQ(q.get_bytes(), std::string(100, 'b'));
  EXPECT_THROW(Queue(QueueOptions{.capacity_bytes = 64, .max_message = 65}), std::invalid_argument);
}

TEST(Queue, WrongTypeIsASerializationErrorAndConsumesOnlyThatMessage) {
  Queue q;
  q.put_bytes("not msgpack at all \xc1");
  q.put(7);
  EXPECT_THROW((void)q.get<int>(), weft::process::SerializationError);
  EXPECT_EQ(q.get<int>(), 7);
}

TEST(Queue, CloseDrainsThenReportsClosed) {
  Queue q;
  q.put(1);
  q.close();
  EXPECT_THROW(q.put(2), weft::ChannelClosed);
  EXPECT_EQ(q.get<int>(), 1);
  EXPECT_THROW((void)q.get<int>(), weft::ChannelClosed);
  EXPECT_TRUE(q.closed());
}

TEST(Queue, CloseWakesAGetterBlockedInAnotherProcess) {
  Queue q;
  Process p(&get_until_closed, q);
  EXPECT_FALSE(p.join(1ms));  // it is waiting (spinning or asleep): only close() can end it
  q.close();
  ASSERT_TRUE(p.join(kLong));
  EXPECT_EQ(p.exitcode(), 0);
}

TEST(Queue, ThreadsOfOneProcessShareIt) {
  for (int threads : {2, 8}) {
    Queue q(QueueOptions{.capacity_bytes = 1024});
    std::vector<std::thread> ts;
    std::atomic<std::int64_t> sum{0};
    for (int t = 0; t < threads; ++t) {
      ts.emplace_back([&q, t] {
        for (int i = 0; i < 2000; ++i) q.put(t * 2000 + i);
      });
      ts.emplace_back([&q, &sum] {
        for (int i = 0; i < 2000; ++i) sum += q.get<int>(kLong);
      });
    }
    for (auto& th : ts) th.join();
    const std::int64_t n = threads * 2000;
    EXPECT_EQ(sum.load(), n * (n - 1) / 2);
  }
}

}  // namespace
