// Message framing (detail/framing.hpp) over the two kinds of byte stream it serves — a socketpair and a pipe —
// each blocking and non-blocking, with the peer in another process: sizes, oversized, corrupt and truncated
// frames, timeouts that consume nothing, closed peers, and no SIGPIPE death.
#include "weft/process/detail/framing.hpp"

#include "weft/core/errors.hpp"
#include "weft/process/errors.hpp"

#include "support.hpp"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdint>
#include <cstring>
#include <functional>
#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

namespace {

using namespace std::chrono_literals;
using weft::process::MessageTooLarge;
using weft::process::ProtocolError;
using weft::process::detail::Frame;
using weft::process::detail::recv_frame;
using weft::process::detail::send_frame;
using Clock = std::chrono::steady_clock;

constexpr std::size_t kNoLimit = std::size_t{1} << 30;

// Runs `body` in a forked child that exits with its result (3 if it threw). The test binary is single-threaded
// here (the fork server is a process), so a plain fork is safe.
pid_t fork_child(const std::function<int()>& body) {
  const pid_t pid = ::fork();
  if (pid < 0) throw std::runtime_error("fork failed");
  if (pid == 0) {
    int rc = 3;
    try {
      rc = body();
    } catch (...) {
    }
    ::_exit(rc);
  }
  return pid;
}

// The child's exit status, or 128 + the signal that killed it.
int wait_child(pid_t pid) {
  int status = 0;
  while (::waitpid(pid, &status, 0) < 0) {
    if (errno != EINTR) throw std::runtime_error("waitpid failed");
  }
  return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

struct Transport {
  bool socket;
  bool nonblocking;
};

std::string transport_name(const ::testing::TestParamInfo<Transport>& info) {
  return std::string(info.param.socket ? "Socketpair" : "Pipe") + (info.param.nonblocking ? "Nonblocking" : "Blocking");
}

// A one-way stream: bytes written to `w` are read from `r`. Closes what is still open when destroyed.
struct Stream {
  int r = -1;
  int w = -1;
  explicit Stream(Transport t) {
    int fds[2];
    if (t.socket) {
      if (::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, fds) != 0) throw std::runtime_error("socketpair");
    } else if (::pipe2(fds, O_CLOEXEC) != 0) {
      throw std::runtime_error("pipe2");
    }
    r = fds[0];
    w = fds[1];
    if (t.nonblocking) {
      ::fcntl(r, F_SETFL, ::fcntl(r, F_GETFL) | O_NONBLOCK);
      ::fcntl(w, F_SETFL, ::fcntl(w, F_GETFL) | O_NONBLOCK);
    }
  }
  Stream(const Stream&) = delete;
  ~Stream() {
    close_r();
    close_w();
  }
  void close_r() {
    if (r >= 0) ::close(std::exchange(r, -1));
  }
  void close_w() {
    if (w >= 0) ::close(std::exchange(w, -1));
  }
};

std::string pattern(std::size_t n, unsigned seed) {
  std::string s(n, '\0');
  for (std::size_t i = 0; i < n; ++i) s[i] = static_cast<char>((i * 131 + seed) & 0xff);
  return s;
}

// Writes raw bytes completely (for hand-made frames).
void write_raw(int fd, const void* p, std::size_t n) {
  const char* c = static_cast<const char*>(p);
  while (n > 0) {
    const ssize_t k = ::write(fd, c, n);
    if (k < 0) throw std::runtime_error("write");
    c += k;
    n -= static_cast<std::size_t>(k);
  }
}

std::string header(std::uint32_t magic, std::uint32_t flags, std::uint64_t length) {
  std::string h(16, '\0');
  for (int i = 0; i < 4; ++i) h[i] = static_cast<char>(magic >> (8 * i));
  for (int i = 0; i < 4; ++i) h[4 + i] = static_cast<char>(flags >> (8 * i));
  for (int i = 0; i < 8; ++i) h[8 + i] = static_cast<char>(length >> (8 * i));
  return h;
}

Clock::time_point in(std::chrono::milliseconds d) { return Clock::now() + d; }

class Framing : public ::testing::TestWithParam<Transport> {};

TEST_P(Framing, FramesOfEverySizeArriveIntactFromAnotherProcess) {
  Stream s(GetParam());
  const std::vector<std::size_t> sizes = {0, 1, 65536, std::size_t{8} << 20};
  const pid_t child = fork_child([&] {
    s.close_r();
    for (std::size_t i = 0; i < sizes.size(); ++i) {
      send_frame(s.w, static_cast<std::uint32_t>(i), pattern(sizes[i], static_cast<unsigned>(i)), kNoLimit, nullptr);
    }
    return 0;
  });
  s.close_w();
  for (std::size_t i = 0; i < sizes.size(); ++i) {
    const auto deadline = in(std::chrono::duration_cast<std::chrono::milliseconds>(weft::test::kLong));
    std::optional<Frame> f = recv_frame(s.r, kNoLimit, &deadline);
    ASSERT_TRUE(f.has_value()) << "frame " << i;
    EXPECT_EQ(f->flags, i);
    ASSERT_EQ(f->payload.size(), sizes[i]);
    EXPECT_TRUE(f->payload == pattern(sizes[i], static_cast<unsigned>(i))) << "payload of frame " << i;
  }
  EXPECT_EQ(wait_child(child), 0);
  EXPECT_FALSE(recv_frame(s.r, kNoLimit, nullptr).has_value()) << "the writer closed between frames";
}

TEST_P(Framing, AnOversizedFrameIsDroppedAndTheNextStillArrives) {
  Stream s(GetParam());
  const std::string big = pattern(std::size_t{1} << 20, 7);  // more than a pipe holds: dropped while it arrives
  const pid_t child = fork_child([&] {
    s.close_r();
    send_frame(s.w, 0, big, kNoLimit, nullptr);
    send_frame(s.w, 1, "next", kNoLimit, nullptr);
    return 0;
  });
  s.close_w();
  EXPECT_THROW((void)recv_frame(s.r, 1000, nullptr), MessageTooLarge);
  std::optional<Frame> f = recv_frame(s.r, 1000, nullptr);
  ASSERT_TRUE(f.has_value());
  EXPECT_EQ(f->payload, "next");
  EXPECT_EQ(f->flags, 1u);
  EXPECT_EQ(wait_child(child), 0);
}

TEST_P(Framing, ASenderRefusesAnOversizedPayloadAndSendsNothing) {
  Stream s(GetParam());
  EXPECT_THROW(send_frame(s.w, 0, std::string(1001, 'x'), 1000, nullptr), MessageTooLarge);
  send_frame(s.w, 0, std::string(1000, 'y'), 1000, nullptr);  // exactly the limit is allowed
  std::optional<Frame> f = recv_frame(s.r, 1000, nullptr);
  ASSERT_TRUE(f.has_value());
  EXPECT_EQ(f->payload, std::string(1000, 'y'));
}

TEST_P(Framing, AWrongMagicIsAProtocolError) {
  Stream s(GetParam());
  const std::string h = header(0x31544658, 0, 4) + "abcd";
  write_raw(s.w, h.data(), h.size());
  EXPECT_THROW((void)recv_frame(s.r, kNoLimit, nullptr), ProtocolError);
}

TEST_P(Framing, AStreamThatEndsInsideAFrameIsAProtocolError) {
  {
    Stream s(GetParam());
    const std::string h = header(weft::process::detail::kFrameMagic, 0, 100) + "only ten b";
    write_raw(s.w, h.data(), h.size());
    s.close_w();
    EXPECT_THROW((void)recv_frame(s.r, kNoLimit, nullptr), ProtocolError);
  }
  {
    Stream s(GetParam());
    const std::string h = header(weft::process::detail::kFrameMagic, 0, 100).substr(0, 9);
    write_raw(s.w, h.data(), h.size());
    s.close_w();
    EXPECT_THROW((void)recv_frame(s.r, kNoLimit, nullptr), ProtocolError);
  }
}

TEST_P(Framing, AReceiveThatTimesOutConsumesNothing) {
  Stream s(GetParam());
  const auto soon = in(20ms);
  EXPECT_THROW((void)recv_frame(s.r, kNoLimit, &soon), weft::Timeout);
  const auto past = Clock::now() - 1s;
  EXPECT_THROW((void)recv_frame(s.r, kNoLimit, &past), weft::Timeout);
  // A frame written afterwards arrives whole: the timed-out receives took no byte of it.
  const pid_t child = fork_child([&] {
    send_frame(s.w, 5, "after the timeout", kNoLimit, nullptr);
    return 0;
  });
  EXPECT_EQ(wait_child(child), 0);
  std::optional<Frame> f = recv_frame(s.r, kNoLimit, &past);  // a passed deadline still takes what is there
  ASSERT_TRUE(f.has_value());
  EXPECT_EQ(f->flags, 5u);
  EXPECT_EQ(f->payload, "after the timeout");
}

TEST_P(Framing, ASendThatTimesOutOnAFullStreamSendsNothing) {
  Stream s(GetParam());
  int status_pipe[2];
  ASSERT_EQ(::pipe2(status_pipe, O_CLOEXEC), 0);
  // The child fills the stream with numbered 1000-byte frames until a send times out, reports that on the
  // status pipe, then sends "end:<count>". Every frame the reader sees must be whole and numbered in order: a
  // timed-out send that had written part of a frame would break the sequence.
  const pid_t child = fork_child([&] {
    s.close_r();
    ::close(status_pipe[0]);
    int count = 0;
    for (; count < 100000; ++count) {
      std::string p = std::to_string(count);
      p.resize(1000, '.');
      const auto deadline = in(20ms);
      try {
        send_frame(s.w, 0, p, kNoLimit, &deadline);
      } catch (const weft::Timeout&) {
        break;
      }
    }
    if (count == 100000) return 4;  // never full: the test cannot show anything
    const char one = 1;
    write_raw(status_pipe[1], &one, 1);
    send_frame(s.w, 0, "end:" + std::to_string(count), kNoLimit, nullptr);
    return 0;
  });
  ::close(status_pipe[1]);
  char byte = 0;
  ASSERT_EQ(::read(status_pipe[0], &byte, 1), 1) << "the child never saw a timeout";
  ::close(status_pipe[0]);
  s.close_w();
  int seen = 0;
  for (;;) {
    std::optional<Frame> f = recv_frame(s.r, kNoLimit, nullptr);
    ASSERT_TRUE(f.has_value()) << "the stream ended before the end frame";
    if (f->payload.rfind("end:", 0) == 0) {
      EXPECT_EQ(f->payload, "end:" + std::to_string(seen));
      break;
    }
    ASSERT_EQ(f->payload.size(), 1000u);
    ASSERT_EQ(std::stoi(f->payload), seen);
    ++seen;
  }
  EXPECT_GT(seen, 0);
  EXPECT_EQ(wait_child(child), 0);
}

TEST_P(Framing, APeerThatClosedBetweenFramesIsTheEndOfTheStream) {
  Stream s(GetParam());
  const pid_t child = fork_child([&] {
    send_frame(s.w, 0, "last", kNoLimit, nullptr);
    return 0;
  });
  EXPECT_EQ(wait_child(child), 0);
  s.close_w();  // the child's copy closed when it exited
  const auto deadline = in(std::chrono::duration_cast<std::chrono::milliseconds>(weft::test::kLong));
  std::optional<Frame> f = recv_frame(s.r, kNoLimit, &deadline);
  ASSERT_TRUE(f.has_value());
  EXPECT_EQ(f->payload, "last");
  EXPECT_FALSE(recv_frame(s.r, kNoLimit, &deadline).has_value());
  Frame reused;
  EXPECT_FALSE(recv_frame(s.r, kNoLimit, &deadline, reused));
}

TEST_P(Framing, WritingAfterTheReaderLeftIsChannelClosedNotSigpipe) {
  // SIGPIPE keeps its default action (death) in this process: only the framing stands between it and us.
  struct sigaction old{};
  struct sigaction dfl{};
  dfl.sa_handler = SIG_DFL;
  ASSERT_EQ(::sigaction(SIGPIPE, &dfl, &old), 0);
  sigset_t mask_before;
  ASSERT_EQ(::pthread_sigmask(SIG_SETMASK, nullptr, &mask_before), 0);
  {
    Stream s(GetParam());
    s.close_r();
    EXPECT_THROW(send_frame(s.w, 0, "anyone?", kNoLimit, nullptr), weft::ChannelClosed);
  }
  {
    // The reader leaves in the middle of a large frame: the write has started and fails part way.
    Stream s(GetParam());
    const pid_t child = fork_child([&] {
      s.close_w();
      ::fcntl(s.r, F_SETFL, ::fcntl(s.r, F_GETFL) & ~O_NONBLOCK);  // only the child has this end open now
      char h[16];
      std::size_t got = 0;
      while (got < sizeof h) {
        const ssize_t k = ::read(s.r, h + got, sizeof h - got);
        if (k < 0 && errno == EINTR) continue;
        if (k <= 0) return 5;
        got += static_cast<std::size_t>(k);
      }
      return 0;  // exits, closing the read end with most of the payload unread
    });
    s.close_r();
    EXPECT_THROW(send_frame(s.w, 0, pattern(std::size_t{8} << 20, 1), kNoLimit, nullptr), weft::ChannelClosed);
    EXPECT_EQ(wait_child(child), 0);
  }
  sigset_t pending;
  ASSERT_EQ(::sigpending(&pending), 0);
  EXPECT_EQ(::sigismember(&pending, SIGPIPE), 0) << "a SIGPIPE was left pending";
  sigset_t mask_after;
  ASSERT_EQ(::pthread_sigmask(SIG_SETMASK, nullptr, &mask_after), 0);
  EXPECT_EQ(::sigismember(&mask_after, SIGPIPE), ::sigismember(&mask_before, SIGPIPE)) << "the mask changed";
  ::sigaction(SIGPIPE, &old, nullptr);
}

INSTANTIATE_TEST_SUITE_P(Streams, Framing,
                         ::testing::Values(Transport{false, false}, Transport{false, true}, Transport{true, false},
                                           Transport{true, true}),
                         transport_name);

}  // namespace
