#include "weft/process/fifo.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <cerrno>

#include "weft/core/errors.hpp"
#include "weft/process/detail/framing.hpp"

namespace weft::process {

namespace {
using Clock = std::chrono::steady_clock;

Clock::time_point deadline_of(std::chrono::nanoseconds t) {
  return Clock::now() + std::chrono::duration_cast<Clock::duration>(t);
}
}  // namespace

Fifo Fifo::create(std::string path, unsigned mode, bool exist_ok) {
  if (::mkfifo(path.c_str(), static_cast<mode_t>(mode)) != 0) {
    struct stat st{};
    if (errno == EEXIST && exist_ok && ::stat(path.c_str(), &st) == 0 && S_ISFIFO(st.st_mode)) {
      return Fifo(std::move(path), false);
    }
    throw_errno(errno, "mkfifo '" + path + "'");
  }
  return Fifo(std::move(path), true);
}

void Fifo::remove(const std::string& path) {
  if (::unlink(path.c_str()) != 0 && errno != ENOENT) throw_errno(errno, "removing '" + path + "'");
}

Fifo::~Fifo() {
  if (owner_) ::unlink(path_.c_str());
}

FifoReader FifoReader::open(const std::string& path, std::size_t max_message) {
  // O_NONBLOCK: a reader opens at once even with no writer; reads then wait in poll.
  const int fd = ::open(path.c_str(), O_RDONLY | O_NONBLOCK | O_CLOEXEC);
  if (fd < 0) throw_errno(errno, "opening FIFO '" + path + "' for reading");
  return FifoReader(fd, max_message);
}

FifoReader::~FifoReader() {
  if (fd_ >= 0) ::close(fd_);
}

std::string FifoReader::recv_bytes(std::optional<std::chrono::nanoseconds> timeout) {
  // Before any writer has opened the FIFO, a read reports end-of-file at once: wait for data instead, as
  // long as the timeout allows, treating an early EOF as "no writer yet".
  const auto at = timeout ? deadline_of(*timeout) : Clock::time_point{};
  detail::Frame f;
  for (;;) {
    if (detail::recv_frame(fd_, max_, timeout ? &at : nullptr, f)) return std::move(f.payload);
    // EOF: no writer has it open now. Wait for one to write (poll reports POLLHUP until a writer opens, so
    // look again after a short pause), or give up at the deadline.
    if (timeout && Clock::now() >= at) throw weft::Timeout("weft: no message arrived on the FIFO in time");
    if (!timeout) throw weft::ChannelClosed("weft: every writer of the FIFO has closed it");
    timespec pause{0, 1'000'000};
    ::nanosleep(&pause, nullptr);
  }
}

FifoWriter FifoWriter::open(const std::string& path, std::chrono::nanoseconds timeout, std::size_t max_message) {
  const auto at = deadline_of(timeout);
  for (;;) {
    const int fd = ::open(path.c_str(), O_WRONLY | O_NONBLOCK | O_CLOEXEC);
    if (fd >= 0) return FifoWriter(fd, max_message);
    if (errno != ENXIO) throw_errno(errno, "opening FIFO '" + path + "' for writing");
    // ENXIO: no reader yet. There is no event for one arriving; try again shortly.
    if (Clock::now() >= at) throw weft::Timeout("weft: no reader opened FIFO '" + path + "' in time");
    timespec pause{0, 1'000'000};
    ::nanosleep(&pause, nullptr);
  }
}

FifoWriter::~FifoWriter() {
  if (fd_ >= 0) ::close(fd_);
}

void FifoWriter::send_bytes(std::string_view bytes, std::optional<std::chrono::nanoseconds> timeout) {
  const auto at = timeout ? deadline_of(*timeout) : Clock::time_point{};
  detail::send_frame(fd_, 0, bytes, max_, timeout ? &at : nullptr);
}

}  // namespace weft::process
