// Named pipes: a writer process and a reader process that share only a path.
#include "weft/process/fifo.hpp"
#include "weft/process/process.hpp"

#include "support.hpp"

#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <chrono>
#include <string>

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

TEST(Fifo, OpeningForWritingWithoutAReaderTimesOut) {
  Fifo fifo = Fifo::create(fifo_path("noreader"));
  EXPECT_THROW((void)FifoWriter::open(fifo.path(), 20ms), weft::Timeout);
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
}

TEST(Fifo, WritingAfterTheReaderLeftIsChannelClosed) {
  Fifo fifo = Fifo::create(fifo_path("gone"));
  auto r = std::make_unique<FifoReader>(FifoReader::open(fifo.path()));
  FifoWriter w = FifoWriter::open(fifo.path(), kLong);
  r.reset();
  EXPECT_THROW(w.send_bytes("anyone?"), weft::ChannelClosed);  // EPIPE, and this process lives on
}

}  // namespace
