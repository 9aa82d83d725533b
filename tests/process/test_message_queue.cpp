// POSIX message queues: between processes, by priority, with timeouts, limits and clean names.
#include "weft/process/message_queue.hpp"
#include "weft/process/process.hpp"

#include "support.hpp"

#include <gtest/gtest.h>
#include <dirent.h>
#include <fcntl.h>
#include <mqueue.h>
#include <unistd.h>

#include <chrono>
#include <set>
#include <span>
#include <vector>
#include <string>

namespace {

using namespace std::chrono_literals;
using weft::process::MessageQueue;
using weft::process::MessageQueueOptions;
using weft::process::Process;
using weft::test::kLong;

// Every queue name of this test binary starts with this prefix, so TearDown can look for leftovers.
std::string name_prefix() { return "weft-test-mq-" + std::to_string(::getpid()) + "-"; }
std::string queue_name(const char* tag) { return name_prefix() + tag; }

std::set<std::string> mqueue_entries() {
  std::set<std::string> out;
  if (DIR* d = ::opendir("/dev/mqueue")) {
    while (dirent* e = ::readdir(d)) out.insert(e->d_name);
    ::closedir(d);
  }
  return out;
}

bool queue_exists(const std::string& name) {
  const mqd_t q = ::mq_open(("/" + name).c_str(), O_RDONLY);
  if (q == static_cast<mqd_t>(-1)) return errno != ENOENT;
  ::mq_close(q);
  return true;
}

void send_with_priorities(std::string name) {
  MessageQueue q = MessageQueue::open(name);
  q.send_bytes("low", 1, kLong);
  q.send_bytes("high", 9, kLong);
  q.send_bytes("mid", 5, kLong);
  q.send_bytes("mid again", 5, kLong);
}

void send_squares(std::string name, int count) {
  MessageQueue q = MessageQueue::open(name);
  for (int i = 0; i < count; ++i) q.send(i * i, 0, kLong);
}

// Asserts that no queue of this binary outlives a test: by the names /dev/mqueue lists when it is mounted, and
// by asking mq_open for each name a test used (which works without the mount).
class MessageQueueTest : public ::testing::Test {
 protected:
  void TearDown() override {
    for (const std::string& e : mqueue_entries()) {
      EXPECT_NE(e.rfind(name_prefix(), 0), 0u) << "message queue " << e << " was left behind";
    }
    for (const char* tag : {"cross", "prio", "full", "size", "huge", "many", "attrs", "keep", "missing"}) {
      EXPECT_FALSE(queue_exists(queue_name(tag))) << "message queue " << queue_name(tag) << " was left behind";
    }
  }
};

TEST_F(MessageQueueTest, AnotherProcessSendsAndThisOneReceives) {
  MessageQueue q = MessageQueue::create(queue_name("cross"));
  Process p(&send_squares, q.name(), 100);  // more than the queue holds: the sender waits for room
  for (int i = 0; i < 100; ++i) ASSERT_EQ(q.recv<int>(kLong), i * i);
  ASSERT_TRUE(p.join(kLong));
  EXPECT_EQ(p.exitcode(), 0);
}

TEST_F(MessageQueueTest, HigherPrioritiesComeFirstAndEqualOnesInOrder) {
  MessageQueue q = MessageQueue::create(queue_name("prio"));
  Process p(&send_with_priorities, q.name());
  ASSERT_TRUE(p.join(kLong));  // all four are queued before the first is received
  ASSERT_EQ(p.exitcode(), 0);
  EXPECT_EQ(q.size(), 4);
  auto a = q.recv_bytes(), b = q.recv_bytes(), c = q.recv_bytes(), d = q.recv_bytes();
  EXPECT_EQ(a.data, "high");
  EXPECT_EQ(a.priority, 9u);
  EXPECT_EQ(b.data, "mid");
  EXPECT_EQ(c.data, "mid again");
  EXPECT_EQ(c.priority, 5u);
  EXPECT_EQ(d.data, "low");
  EXPECT_EQ(d.priority, 1u);
}

TEST_F(MessageQueueTest, AttributesReportTheLimitsAndTheCount) {
  MessageQueue q = MessageQueue::create(queue_name("attrs"), MessageQueueOptions{.max_messages = 3, .max_message_size = 100});
  q.send(std::string("x"), 0, kLong);
  const auto a = q.attributes();
  EXPECT_EQ(a.max_messages, 3);
  EXPECT_EQ(a.max_message_size, 100);
  EXPECT_EQ(a.current_messages, 1);
  MessageQueue other = MessageQueue::open(q.name());  // not the owner: its end leaves the name alone
  EXPECT_EQ(other.max_message_size(), 100);
  EXPECT_EQ(other.recv<std::string>(kLong), "x");
  std::vector<std::byte> bytes = {std::byte{'o'}, std::byte{'k'}};
  other.send_bytes(std::span<const std::byte>(bytes), 3, kLong);
  { MessageQueue gone = std::move(other); }
  EXPECT_EQ(q.recv_bytes(kLong).data, "ok");
}

TEST_F(MessageQueueTest, KeepLeavesTheNameForOthersAndUnlinkRemovesIt) {
  {
    MessageQueue q = MessageQueue::create(queue_name("keep"));
    q.keep();
    q.send_bytes("kept");
  }
  ASSERT_TRUE(queue_exists(queue_name("keep")));
  {
    MessageQueue q = MessageQueue::open(queue_name("keep"));
    EXPECT_EQ(q.recv_bytes(kLong).data, "kept");
  }
  MessageQueue::unlink(queue_name("keep"));
  EXPECT_FALSE(queue_exists(queue_name("keep")));
  MessageQueue::unlink(queue_name("keep"));  // already gone: not an error
}

TEST_F(MessageQueueTest, FullQueueAndEmptyQueueTimeOut) {
  MessageQueue q = MessageQueue::create(queue_name("full"), MessageQueueOptions{.max_messages = 2, .max_message_size = 64});
  q.send_bytes("1");
  q.send_bytes("2");
  const auto start = std::chrono::steady_clock::now();
  EXPECT_THROW(q.send_bytes("3", 0, 50ms), weft::Timeout);
  EXPECT_GE(std::chrono::steady_clock::now() - start, 50ms) << "gave up before the timeout";
  EXPECT_THROW(q.send_bytes("3", 0, -1s), weft::Timeout);
  EXPECT_EQ(q.size(), 2) << "a timed-out send queued its message";
  EXPECT_EQ(q.recv_bytes(0ms).data, "1");  // a message that is there is taken even with no time left
  EXPECT_EQ(q.recv_bytes().data, "2");
  EXPECT_THROW((void)q.recv_bytes(20ms), weft::Timeout);
  EXPECT_THROW((void)q.recv_bytes(0ms), weft::Timeout);
}

TEST_F(MessageQueueTest, OversizedMessagesAndImpossibleQueuesAreClearErrors) {
  MessageQueue q = MessageQueue::create(queue_name("size"), MessageQueueOptions{.max_messages = 4, .max_message_size = 16});
  EXPECT_THROW(q.send_bytes(std::string(17, 'x')), weft::process::MessageTooLarge);
  try {
    (void)MessageQueue::create(queue_name("huge"), MessageQueueOptions{.max_messages = 4, .max_message_size = 1L << 40});
    FAIL() << "a queue of terabyte messages was created";
  } catch (const std::system_error& e) {
    const std::string what = e.what();
    EXPECT_NE(what.find("/proc/sys/fs/mqueue/msgsize_max"), std::string::npos) << what;
    EXPECT_NE(what.find(std::to_string(1L << 40)), std::string::npos) << "the size asked for is missing: " << what;
  }
  try {
    // Above HARD_MSGMAX (65536): refused even with CAP_SYS_RESOURCE.
    (void)MessageQueue::create(queue_name("many"), MessageQueueOptions{.max_messages = 1L << 20, .max_message_size = 16});
    FAIL() << "a queue of a million messages was created";
  } catch (const std::system_error& e) {
    const std::string what = e.what();
    EXPECT_NE(what.find("/proc/sys/fs/mqueue/msg_max"), std::string::npos) << what;
    EXPECT_NE(what.find(std::to_string(1L << 20)), std::string::npos) << "the count asked for is missing: " << what;
  }
  EXPECT_THROW((void)MessageQueue::create(queue_name("size"), MessageQueueOptions{.max_messages = 0}), std::invalid_argument);
  EXPECT_THROW((void)MessageQueue::create(queue_name("size")), std::system_error);  // exists already
  EXPECT_THROW((void)MessageQueue::create(std::string(201, 'n')), std::invalid_argument);
  EXPECT_THROW((void)MessageQueue::create(""), std::invalid_argument);
  EXPECT_THROW((void)MessageQueue::create("a/b"), std::invalid_argument);
  EXPECT_THROW((void)MessageQueue::open(queue_name("missing")), std::system_error);
}

}  // namespace
