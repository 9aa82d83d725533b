// Named pipes. The protocol for opening and end of stream is in weft/process/fifo.hpp; the one fact it leans on:
// on Linux, poll() on a FIFO's read end reports POLLHUP only once a writer that opened after this descriptor
// was opened has closed again (pipe_poll compares the descriptor's writer count snapshot with the pipe's),
// so a fresh reader's poll waits for the first writer instead of reporting end-of-file at once.
#include "weft/process/fifo.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <stdexcept>

#include "weft/core/errors.hpp"
#include "weft/process/detail/framing.hpp"

namespace weft::process {

namespace {
using Clock = std::chrono::steady_clock;

// The first and the largest pause between tries to open a writer while no reader exists.
constexpr std::chrono::milliseconds kOpenBackoffFirst{1};
constexpr std::chrono::milliseconds kOpenBackoffMax{50};

void check_max(std::size_t max_message) {
  if (max_message == 0) throw std::invalid_argument("weft: a FIFO's max_message must be above 0");
}
}  // namespace

Fifo Fifo::create(std::string path, unsigned mode, bool exist_ok) {
  if (::mkfifo(path.c_str(), static_cast<mode_t>(mode)) != 0) {
    const int e = errno;
    struct stat st{};
    if (e == EEXIST && exist_ok && ::stat(path.c_str(), &st) == 0 && S_ISFIFO(st.st_mode)) {
      return Fifo(std::move(path), false);
    }
    throw_errno(e, "mkfifo '" + path + "'");
  }
  return Fifo(std::move(path), true);
}

void Fifo::remove(const std::string& path) {
  if (::unlink(path.c_str()) != 0 && errno != ENOENT) throw_errno(errno, "removing FIFO '" + path + "'");
}

Fifo& Fifo::operator=(Fifo&& o) noexcept {
  if (this != &o) {
    if (owner_) ::unlink(path_.c_str());
    path_ = std::move(o.path_);
    owner_ = std::exchange(o.owner_, false);
  }
  return *this;
}

Fifo::~Fifo() {
  if (owner_) ::unlink(path_.c_str());
}

FifoReader FifoReader::open(const std::string& path, std::size_t max_message) {
  check_max(max_message);
  const int fd = ::open(path.c_str(), O_RDONLY | O_NONBLOCK | O_CLOEXEC);
  if (fd < 0) throw_errno(errno, "opening FIFO '" + path + "' for reading");
  struct stat st{};
  if (::fstat(fd, &st) != 0 || !S_ISFIFO(st.st_mode)) {
    ::close(fd);
    throw std::invalid_argument("weft: '" + path + "' is not a FIFO");
  }
  return FifoReader(fd, max_message);
}

FifoReader& FifoReader::operator=(FifoReader&& o) noexcept {
  if (this != &o) {
    close();
    fd_ = std::exchange(o.fd_, -1);
    max_ = o.max_;
  }
  return *this;
}

void FifoReader::close() noexcept {
  if (fd_ >= 0) ::close(std::exchange(fd_, -1));
}

std::string FifoReader::recv_bytes(std::optional<std::chrono::nanoseconds> timeout) {
  if (fd_ < 0) throw weft::ChannelClosed("weft: recv on a closed FifoReader");
  const Clock::time_point at = timeout ? detail::deadline_after(*timeout) : Clock::time_point{};
  const Clock::time_point* deadline = timeout ? &at : nullptr;
  // Wait here rather than read at once: a read with no writer returns end-of-file even before the first writer
  // came, while poll waits for it (see the top of this file).
  if (!detail::wait_readable(fd_, deadline)) {
    throw weft::Timeout("weft: no message arrived on the FIFO in time");
  }
  detail::Frame f;
  if (!detail::recv_frame(fd_, max_, deadline, f)) {
    throw weft::ChannelClosed("weft: every writer of the FIFO has closed it and no message is left");
  }
  return std::move(f.payload);
}

FifoWriter FifoWriter::open(const std::string& path, std::chrono::nanoseconds timeout, std::size_t max_message) {
  check_max(max_message);
  const Clock::time_point at = detail::deadline_after(timeout);
  auto pause = std::chrono::duration_cast<Clock::duration>(kOpenBackoffFirst);
  for (;;) {
    const int fd = ::open(path.c_str(), O_WRONLY | O_NONBLOCK | O_CLOEXEC);
    if (fd >= 0) {
      struct stat st{};
      if (::fstat(fd, &st) != 0 || !S_ISFIFO(st.st_mode)) {
        ::close(fd);
        throw std::invalid_argument("weft: '" + path + "' is not a FIFO");
      }
      return FifoWriter(fd, max_message);
    }
    if (errno == EINTR) continue;
    if (errno != ENXIO) throw_errno(errno, "opening FIFO '" + path + "' for writing");
    // ENXIO: no reader yet, and no event announces one: try again after a pause that grows to kOpenBackoffMax.
    const auto now = Clock::now();
    if (now >= at) throw weft::Timeout("weft: no reader opened FIFO '" + path + "' in time");
    const auto nap = std::min<Clock::duration>(pause, at - now);
    const auto ns = std::chrono::duration_cast<std::chrono::nanoseconds>(nap).count();
    timespec ts{static_cast<time_t>(ns / 1'000'000'000), static_cast<long>(ns % 1'000'000'000)};
    while (::nanosleep(&ts, &ts) != 0 && errno == EINTR) {
    }
    pause = std::min<Clock::duration>(pause * 2, kOpenBackoffMax);
  }
}

FifoWriter& FifoWriter::operator=(FifoWriter&& o) noexcept {
  if (this != &o) {
    close();
    fd_ = std::exchange(o.fd_, -1);
    max_ = o.max_;
  }
  return *this;
}

void FifoWriter::close() noexcept {
  if (fd_ >= 0) ::close(std::exchange(fd_, -1));
}

void FifoWriter::send_frame(std::string_view payload, std::uint32_t flags,
                            std::optional<std::chrono::nanoseconds> timeout) {
  if (fd_ < 0) throw weft::ChannelClosed("weft: send on a closed FifoWriter");
  const Clock::time_point at = timeout ? detail::deadline_after(*timeout) : Clock::time_point{};
  detail::send_frame(fd_, flags, payload, max_, timeout ? &at : nullptr);
}

}  // namespace weft::process
