#include "weft/process/pipe.hpp"

#include <fcntl.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <climits>
#include <stdexcept>

#include "weft/core/errors.hpp"
#include "weft/process/detail/framing.hpp"

namespace weft::process {

namespace {
using Clock = std::chrono::steady_clock;
}

Connection::Connection(Connection&& other) noexcept
    : fd_(std::exchange(other.fd_, -1)),
      readable_(other.readable_),
      writable_(other.writable_),
      broken_(other.broken_),
      max_message_(other.max_message_),
      send_mu_(std::move(other.send_mu_)),
      recv_mu_(std::move(other.recv_mu_)) {
  other.send_mu_ = std::make_unique<std::mutex>();
  other.recv_mu_ = std::make_unique<std::mutex>();
}

Connection& Connection::operator=(Connection&& other) noexcept {
  if (this != &other) {
    close();
    fd_ = std::exchange(other.fd_, -1);
    readable_ = other.readable_;
    writable_ = other.writable_;
    broken_ = other.broken_;
    max_message_ = other.max_message_;
  }
  return *this;
}

Connection::~Connection() { close(); }

void Connection::close() noexcept {
  if (fd_ >= 0) ::close(fd_);
  fd_ = -1;
}

Connection Connection::adopt(int fd, bool readable, bool writable, std::size_t max_message) {
  Connection c;
  c.fd_ = fd;
  c.readable_ = readable;
  c.writable_ = writable;
  c.max_message_ = max_message;
  return c;
}

void Connection::send_frame(std::string_view payload, std::uint32_t flags,
                            std::optional<std::chrono::nanoseconds> timeout) {
  if (!writable_) throw std::logic_error("weft: send on the receiving end of a one-way Pipe");
  if (fd_ < 0) throw weft::ChannelClosed("weft: send on a closed Connection");
  Clock::time_point at{};
  if (timeout) at = Clock::now() + std::chrono::duration_cast<Clock::duration>(*timeout);
  std::lock_guard lock(*send_mu_);
  detail::send_frame(fd_, flags, payload, max_message_, timeout ? &at : nullptr);
}

void Connection::recv_frame(std::string& payload, std::optional<std::chrono::nanoseconds> timeout) {
  if (!readable_) throw std::logic_error("weft: recv on the sending end of a one-way Pipe");
  if (fd_ < 0) throw weft::ChannelClosed("weft: recv on a closed Connection");
  Clock::time_point at{};
  if (timeout) at = Clock::now() + std::chrono::duration_cast<Clock::duration>(*timeout);
  std::lock_guard lock(*recv_mu_);
  if (broken_) throw ProtocolError("weft: this Connection received bytes that were not a message; it is unusable");
  detail::Frame f;
  try {
    if (!detail::recv_frame(fd_, max_message_, timeout ? &at : nullptr, f)) {
      throw weft::ChannelClosed("weft: the other end of the Connection is closed");
    }
  } catch (const ProtocolError&) {
    broken_ = true;
    throw;
  }
  payload = std::move(f.payload);
}

bool Connection::poll(std::chrono::nanoseconds timeout) {
  if (!readable_) throw std::logic_error("weft: poll on the sending end of a one-way Pipe");
  if (fd_ < 0) throw weft::ChannelClosed("weft: poll on a closed Connection");
  const Clock::time_point at = Clock::now() + std::chrono::duration_cast<Clock::duration>(timeout);
  return detail::wait_readable(fd_, &at);
}

std::pair<Connection, Connection> Pipe(PipeOptions options) {
  if (options.max_message == 0) throw std::invalid_argument("weft: PipeOptions::max_message must be above 0");
  int fds[2];
  if (options.duplex) {
    if (::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, fds) != 0) throw_errno(errno, "socketpair for a Pipe");
    return {Connection::adopt(fds[0], true, true, options.max_message),
            Connection::adopt(fds[1], true, true, options.max_message)};
  }
  if (::pipe2(fds, O_CLOEXEC) != 0) throw_errno(errno, "pipe for a Pipe");
  return {Connection::adopt(fds[0], true, false, options.max_message),
          Connection::adopt(fds[1], false, true, options.max_message)};
}

}  // namespace weft::process
