// Named pipes: a writer process and a reader process that share only a path.
#include "weft/process/fifo.hpp"
#include "weft/process/process.hpp"

#include "support.hpp"

#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <fcntl.h>

#include <chrono>
#include <map>
#include <memory>
#include <string>
#include <vector>

namespace {

using namespace std::chrono_literals;
using weft::process::Fifo;
using weft::process::FifoReader;
using weft::process::FifoWriter;
using weft::process::Process;
using weft::test::kLong;

std::string fifo_path(const char* tag) {
  return "/tmp/weft-test-" + std::string(tag) + "-" + std::to_string(::getpid()) + ".fifo";
}
bool path_exists(const std::string& p) {
  struct stat st{};
  return ::stat(p.c_str(), &st) == 0;
}

void write_hello(std::string path) {
  FifoWriter w = weft::process::open_writer(path, kLong);
  w.send(std::string("hello"));
}

// Sends `count` messages of the largest size written atomically (PIPE_BUF - 16), tagged with `id` and a number.
void write_tagged(std::string path, int id, int count) {
  FifoWriter w = FifoWriter::open(path, kLong);
  for (int i = 0; i < count; ++i) {
    std::string m = std::to_string(id) + ":" + std::to_string(i) + ":";
    m.resize(4096 - 16, static_cast<char>('a' + id));
    w.send_bytes(m);
  }
}

void write_numbers(std::string path, int count) {
  FifoWriter w = FifoWriter::open(path, kLong);
  for (int i = 0; i < count; ++i) w.send(i);
}

TEST(Fifo, AWriterProcessSendsInOrderToAReader) {
  Fifo fifo = Fifo::create(fifo_path("order"));
  FifoReader r = FifoReader::open(fifo.path());
  Process p(&write_numbers, fifo.path(), 500);
  for (int i = 0; i < 500; ++i) ASSERT_EQ(r.recv<int>(kLong), i);
  ASSERT_TRUE(p.join(kLong));
  EXPECT_THROW((void)r.recv<int>(), weft::ChannelClosed);  // the writer closed and nothing is left
}

TEST(Fifo, AReaderWithoutATimeoutWaitsForTheFirstWriter) {
  Fifo fifo = Fifo::create(fifo_path("first"));
  FifoReader r = weft::process::open_reader(fifo.path());
  Process p(&write_hello, fifo.path());  // may open the FIFO after recv starts waiting: recv must not see EOF
  EXPECT_EQ(r.recv<std::string>(), "hello");
  ASSERT_TRUE(p.join(kLong));
  EXPECT_EQ(p.exitcode(), 0);
  EXPECT_THROW((void)r.recv_bytes(kLong), weft::ChannelClosed);  // that writer has gone: the end, not a wait
}

TEST(Fifo, SmallMessagesFromSeveralWritersDoNotInterleave) {
  Fifo fifo = Fifo::create(fifo_path("many"));
  FifoReader r = FifoReader::open(fifo.path());
  constexpr int kWriters = 3, kEach = 200;
  std::vector<std::unique_ptr<Process>> writers;
  for (int id = 0; id < kWriters; ++id) writers.push_back(std::make_unique<Process>(&write_tagged, fifo.path(), id, kEach));
  std::map<int, int> next;  // writer -> the number its next message must carry
  for (int k = 0; k < kWriters * kEach; ++k) {
    const std::string m = r.recv_bytes(kLong);
    ASSERT_EQ(m.size(), 4096u - 16);
    const int id = std::stoi(m);
    const std::size_t colon = m.find(':');
    ASSERT_EQ(std::stoi(m.substr(colon + 1)), next[id]) << "writer " << id << " out of order";
    ++next[id];
    const std::size_t body = m.find(':', colon + 1) + 1;
    ASSERT_EQ(m.find_first_not_of(static_cast<char>('a' + id), body), std::string::npos) << "interleaved bytes";
  }
  for (auto& w : writers) {
    ASSERT_TRUE(w->join(kLong));
    EXPECT_EQ(w->exitcode(), 0);
  }
}

TEST(Fifo, ClosedEndsReportChannelClosedAndMovesKeepTheDescriptor) {
  Fifo fifo = Fifo::create(fifo_path("close"));
  FifoReader r = FifoReader::open(fifo.path());
  FifoWriter w = FifoWriter::open(fifo.path(), kLong);
  FifoWriter w2 = std::move(w);
  EXPECT_EQ(w.fd(), -1);
  std::vector<std::byte> bytes = {std::byte{1}, std::byte{2}};
  w2.send_bytes(std::span<const std::byte>(bytes));
  FifoReader r2 = std::move(r);
  EXPECT_EQ(r2.recv_bytes(kLong), std::string("\x01\x02"));
  w2.close();
  w2.close();  // idempotent
  EXPECT_EQ(w2.fd(), -1);
  EXPECT_THROW(w2.send_bytes("late"), weft::ChannelClosed);
  EXPECT_THROW((void)r2.recv_bytes(kLong), weft::ChannelClosed);  // the only writer closed
  r2.close();
  EXPECT_THROW((void)r2.recv_bytes(kLong), weft::ChannelClosed);
}

TEST(Fifo, OpeningSomethingThatIsNotAFifoFails) {
  const std::string path = fifo_path("plain");
  const int fd = ::open(path.c_str(), O_CREAT | O_WRONLY | O_CLOEXEC, 0600);
  ASSERT_GE(fd, 0);
  ::close(fd);
  EXPECT_THROW((void)FifoReader::open(path), std::invalid_argument);
  EXPECT_THROW((void)Fifo::create(path, 0600, /*exist_ok=*/true), std::system_error);  // exists, not a FIFO
  Fifo::remove(path);
  EXPECT_FALSE(path_exists(path));
  Fifo::remove(path);  // already gone: not an error
}

TEST(Fifo, OpeningForWritingWithoutAReaderTimesOut) {
  Fifo fifo = Fifo::create(fifo_path("noreader"));
  const auto start = std::chrono::steady_clock::now();
  EXPECT_THROW((void)weft::process::open_writer(fifo.path(), 100ms), weft::Timeout);
  EXPECT_GE(std::chrono::steady_clock::now() - start, 100ms) << "gave up before the timeout";
  EXPECT_THROW((void)FifoWriter::open(fifo_path("missing"), 20ms), std::system_error);
}

TEST(Fifo, ReceiveTimesOutWhenNothingComes) {
  Fifo fifo = Fifo::create(fifo_path("quiet"));
  FifoReader r = FifoReader::open(fifo.path());
  EXPECT_THROW((void)r.recv_bytes(20ms), weft::Timeout);
  FifoWriter w = FifoWriter::open(fifo.path(), kLong);
  EXPECT_THROW((void)r.recv_bytes(20ms), weft::Timeout);
  w.send_bytes("now");
  EXPECT_EQ(r.recv_bytes(kLong), "now");
}

TEST(Fifo, OversizedMessagesAreSkippedAndTheStreamGoesOn) {
  Fifo fifo = Fifo::create(fifo_path("big"));
  FifoReader r = FifoReader::open(fifo.path(), 100);
  FifoWriter w = FifoWriter::open(fifo.path(), kLong, 1000);
  EXPECT_THROW(w.send_bytes(std::string(1001, 'x')), weft::process::MessageTooLarge);
  w.send_bytes(std::string(500, 'y'));
  w.send_bytes("small");
  EXPECT_THROW((void)r.recv_bytes(kLong), weft::process::MessageTooLarge);
  EXPECT_EQ(r.recv_bytes(kLong), "small");
}

TEST(Fifo, TheOwnerRemovesThePathAndCreateRefusesAnExistingOne) {
  const std::string path = fifo_path("owner");
  {
    Fifo fifo = Fifo::create(path);
    EXPECT_TRUE(path_exists(path));
    EXPECT_THROW((void)Fifo::create(path), std::system_error);
    Fifo again = Fifo::create(path, 0600, /*exist_ok=*/true);  // not the owner
  }
  EXPECT_FALSE(path_exists(path));
  {
    Fifo fifo = Fifo::create(path);
    fifo.keep();
  }
  EXPECT_TRUE(path_exists(path));
  Fifo::remove(path);
}

TEST(Fifo, WritingAfterTheReaderLeftIsChannelClosed) {
  Fifo fifo = Fifo::create(fifo_path("gone"));
  auto r = std::make_unique<FifoReader>(FifoReader::open(fifo.path()));
  FifoWriter w = FifoWriter::open(fifo.path(), kLong);
  r.reset();
  EXPECT_THROW(w.send_bytes("anyone?"), weft::ChannelClosed);  // EPIPE, and this process lives on
}

}  // namespace
