#include "weft/process/detail/framing.hpp"

#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <climits>

#include "weft/core/errors.hpp"
#include "weft/process/errors.hpp"

namespace weft::process::detail {

namespace {
using Clock = std::chrono::steady_clock;

// The header is little-endian whatever the host's byte order.
void put_le(unsigned char* p, std::uint64_t v, int bytes) {
  for (int i = 0; i < bytes; ++i) p[i] = static_cast<unsigned char>(v >> (8 * i));
}
std::uint64_t get_le(const unsigned char* p, int bytes) {
  std::uint64_t v = 0;
  for (int i = 0; i < bytes; ++i) v |= std::uint64_t{p[i]} << (8 * i);
  return v;
}

int poll_ms(const Clock::time_point* deadline) {
  if (deadline == nullptr) return -1;
  const auto left = std::chrono::ceil<std::chrono::milliseconds>(*deadline - Clock::now()).count();
  return static_cast<int>(std::clamp<long long>(left, 0, INT_MAX));
}

bool wait_for(int fd, short events, const Clock::time_point* deadline) {
  for (;;) {
    pollfd p{fd, events, 0};
    const int rc = ::poll(&p, 1, poll_ms(deadline));
    if (rc > 0) return true;
    if (rc == 0) {
      if (deadline == nullptr || Clock::now() >= *deadline) return false;
      continue;
    }
    if (errno != EINTR) throw_errno(errno, "poll");
  }
}

bool is_socket(int fd) {
  struct stat st{};
  return ::fstat(fd, &st) == 0 && S_ISSOCK(st.st_mode);
}

// SIGPIPE blocked on this thread for the scope (pipes and FIFOs have no MSG_NOSIGNAL). A SIGPIPE raised
// meanwhile stays pending for this thread: it is taken with sigtimedwait before the old mask comes back,
// unless one was pending already (then it is the program's and is left alone).
class NoSigpipe {
 public:
  NoSigpipe() {
    sigset_t pipe_set;
    sigemptyset(&pipe_set);
    sigaddset(&pipe_set, SIGPIPE);
    sigset_t pending;
    sigpending(&pending);
    was_pending_ = sigismember(&pending, SIGPIPE) == 1;
    pthread_sigmask(SIG_BLOCK, &pipe_set, &old_);
  }
  ~NoSigpipe() {
    if (!was_pending_) {
      sigset_t pipe_set;
      sigemptyset(&pipe_set);
      sigaddset(&pipe_set, SIGPIPE);
      const timespec zero{0, 0};
      while (sigtimedwait(&pipe_set, nullptr, &zero) > 0) {
      }
    }
    pthread_sigmask(SIG_SETMASK, &old_, nullptr);
  }

 private:
  sigset_t old_;
  bool was_pending_ = false;
};

// Writes iov[0..n) completely. `started` says whether any byte went out (the deadline then no longer applies).
void write_all(int fd, bool socket, iovec* iov, int n, const Clock::time_point* deadline) {
  bool started = false;
  while (n > 0) {
    ssize_t k;
    if (socket) {
      msghdr msg{};
      msg.msg_iov = iov;
      msg.msg_iovlen = static_cast<std::size_t>(n);
      k = ::sendmsg(fd, &msg, MSG_NOSIGNAL);
    } else {
      k = ::writev(fd, iov, n);
    }
    if (k < 0) {
      if (errno == EINTR) continue;
      if (errno == EAGAIN || errno == EWOULDBLOCK) {
        if (!wait_for(fd, POLLOUT, started ? nullptr : deadline)) {
          throw weft::Timeout("weft: sending a message timed out: the reader did not make room");
        }
        continue;
      }
      if (errno == EPIPE || errno == ECONNRESET) throw weft::ChannelClosed("weft: the other end is closed");
      throw_errno(errno, "write of a message");
    }
    started = true;
    auto done = static_cast<std::size_t>(k);
    while (n > 0 && done >= iov->iov_len) {
      done -= iov->iov_len;
      ++iov;
      --n;
    }
    if (n > 0) {
      iov->iov_base = static_cast<char*>(iov->iov_base) + done;
      iov->iov_len -= done;
    }
  }
}

// Reads exactly `n` bytes. Returns the count read before EOF (n when complete). The deadline applies only
// while nothing has been read (`*started` false); afterwards it waits as long as the peer takes.
std::size_t read_all(int fd, char* p, std::size_t n, const Clock::time_point* deadline, bool* started) {
  std::size_t got = 0;
  while (got < n) {
    // Before the first byte, wait with the deadline (a blocking descriptor would otherwise wait in read).
    if (!*started && deadline != nullptr && !wait_for(fd, POLLIN, deadline)) {
      throw weft::Timeout("weft: receiving a message timed out: nothing arrived");
    }
    const ssize_t k = ::read(fd, p + got, n - got);
    if (k > 0) {
      got += static_cast<std::size_t>(k);
      *started = true;
      continue;
    }
    if (k == 0) return got;
    if (errno == EINTR) continue;
    if (errno == EAGAIN || errno == EWOULDBLOCK) {
      if (!wait_for(fd, POLLIN, *started ? nullptr : deadline)) {
        throw weft::Timeout("weft: receiving a message timed out: nothing arrived");
      }
      continue;
    }
    if (errno == ECONNRESET) return got;
    throw_errno(errno, "read of a message");
  }
  return got;
}
}  // namespace

bool wait_readable(int fd, const Clock::time_point* deadline) { return wait_for(fd, POLLIN, deadline); }
bool wait_writable(int fd, const Clock::time_point* deadline) { return wait_for(fd, POLLOUT, deadline); }

void send_frame(int fd, std::uint32_t flags, std::string_view payload, std::size_t limit,
                const Clock::time_point* deadline) {
  if (payload.size() > limit) throw MessageTooLarge(payload.size(), limit);
  unsigned char header[kFrameHeader];
  put_le(header, kFrameMagic, 4);
  put_le(header + 4, flags, 4);
  put_le(header + 8, payload.size(), 8);
  iovec iov[2] = {{header, kFrameHeader}, {const_cast<char*>(payload.data()), payload.size()}};
  // A deadline that has already passed is a timeout only if the descriptor cannot take the frame now.
  if (deadline != nullptr && !wait_for(fd, POLLOUT, deadline)) {
    throw weft::Timeout("weft: sending a message timed out: the reader did not make room");
  }
  const bool socket = is_socket(fd);
  if (socket) {
    write_all(fd, true, iov, payload.empty() ? 1 : 2, deadline);
  } else {
    NoSigpipe guard;
    write_all(fd, false, iov, payload.empty() ? 1 : 2, deadline);
  }
}

bool recv_frame(int fd, std::size_t limit, const Clock::time_point* deadline, Frame& out) {
  unsigned char header[kFrameHeader];
  bool started = false;
  const std::size_t got = read_all(fd, reinterpret_cast<char*>(header), kFrameHeader, deadline, &started);
  if (got == 0) return false;
  if (got < kFrameHeader) throw ProtocolError("weft: truncated message: the stream ended inside its header");
  const auto magic = static_cast<std::uint32_t>(get_le(header, 4));
  const auto flags = static_cast<std::uint32_t>(get_le(header + 4, 4));
  const std::uint64_t length = get_le(header + 8, 8);
  if (magic != kFrameMagic) throw ProtocolError("weft: the stream does not carry weft messages (bad header)");
  if (length > limit) {
    // Drop the payload in bounded pieces so the stream stays in step.
    char sink[65536];
    std::uint64_t left = length;
    while (left > 0) {
      const std::size_t piece = static_cast<std::size_t>(std::min<std::uint64_t>(left, sizeof sink));
      if (read_all(fd, sink, piece, nullptr, &started) != piece) {
        throw ProtocolError("weft: truncated message: the stream ended inside an oversized message");
      }
      left -= piece;
    }
    throw MessageTooLarge(static_cast<std::size_t>(std::min<std::uint64_t>(length, SIZE_MAX)), limit);
  }
  out.flags = flags;
  out.payload.resize(static_cast<std::size_t>(length));
  if (read_all(fd, out.payload.data(), out.payload.size(), nullptr, &started) != out.payload.size()) {
    throw ProtocolError("weft: truncated message: the stream ended inside its payload");
  }
  return true;
}

std::optional<Frame> recv_frame(int fd, std::size_t limit, const Clock::time_point* deadline) {
  Frame f;
  if (!recv_frame(fd, limit, deadline, f)) return std::nullopt;
  return f;
}

}  // namespace weft::process::detail
