// POSIX message queues: between processes, by priority, with timeouts, limits and clean names.
#include "weft/process/message_queue.hpp"
#include "weft/process/process.hpp"

#include "support.hpp"

#include <gtest/gtest.h>
#include <dirent.h>
#include <unistd.h>

#include <chrono>
#include <set>
#include <string>

namespace {

using namespace std::chrono_literals;
using weft::process::MessageQueue;
using weft::process::MessageQueueOptions;
using weft::process::Process;
using weft::test::kLong;

std::string queue_name(const char* tag) { return "weft-test-" + std::string(tag) + "-" + std::to_string(::getpid()); }

std::set<std::string> mqueue_entries() {
  std::set<std::string> out;
  if (DIR* d = ::opendir("/dev/mqueue")) {
    while (dirent* e = ::readdir(d)) out.insert(e->d_name);
    ::closedir(d);
  }
  return out;
}

void send_squares(std::string name, int count) {
  MessageQueue q = MessageQueue::open(name);
  for (int i = 0; i < count; ++i) q.send(i * i, 0, kLong);
}

class MessageQueueTest : public ::testing::Test {
 protected:
  void SetUp() override { before_ = mqueue_entries(); }
  void TearDown() override { EXPECT_EQ(mqueue_entries(), before_) << "a message queue was left behind"; }
  std::set<std::string> before_;
};

TEST_F(MessageQueueTest, AnotherProcessSendsAndThisOneReceives) {
  MessageQueue q = MessageQueue::create(queue_name("cross"));
  Process p(&send_squares, q.name(), 100);  // more than the queue holds: the sender waits for room
  for (int i = 0; i < 100; ++i) ASSERT_EQ(q.recv<int>(kLong), i * i);
  ASSERT_TRUE(p.join(kLong));
  EXPECT_EQ(p.exitcode(), 0);
}

TEST_F(MessageQueueTest, HigherPrioritiesComeFirst) {
  MessageQueue q = MessageQueue::create(queue_name("prio"));
  q.send_bytes("low", 1);
  q.send_bytes("high", 9);
  q.send_bytes("mid", 5);
  EXPECT_EQ(q.size(), 3);
  auto a = q.recv_bytes(), b = q.recv_bytes(), c = q.recv_bytes();
  EXPECT_EQ(a.data, "high");
  EXPECT_EQ(a.priority, 9u);
  EXPECT_EQ(b.data, "mid");
  EXPECT_EQ(c.data, "low");
}

TEST_F(MessageQueueTest, FullQueueAndEmptyQueueTimeOut) {
  MessageQueue q = MessageQueue::create(queue_name("full"), MessageQueueOptions{.max_messages = 2, .max_message_size = 64});
  q.send_bytes("1");
  q.send_bytes("2");
  EXPECT_THROW(q.send_bytes("3", 0, 20ms), weft::Timeout);
  (void)q.recv_bytes();
  (void)q.recv_bytes();
  EXPECT_THROW((void)q.recv_bytes(20ms), weft::Timeout);
}

TEST_F(MessageQueueTest, OversizedMessagesAndImpossibleQueuesAreClearErrors) {
  MessageQueue q = MessageQueue::create(queue_name("size"), MessageQueueOptions{.max_messages = 4, .max_message_size = 16});
  EXPECT_THROW(q.send_bytes(std::string(17, 'x')), weft::process::MessageTooLarge);
  try {
    (void)MessageQueue::create(queue_name("huge"), MessageQueueOptions{.max_messages = 4, .max_message_size = 1L << 40});
    FAIL() << "a queue of terabyte messages was created";
  } catch (const std::system_error& e) {
    EXPECT_NE(std::string(e.what()).find("msgsize_max"), std::string::npos) << e.what();
  }
  EXPECT_THROW((void)MessageQueue::create("a/b"), std::invalid_argument);
  EXPECT_THROW((void)MessageQueue::open(queue_name("missing")), std::system_error);
}

}  // namespace
