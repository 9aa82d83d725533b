#include "weft/process/queue.hpp"

#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <bit>
#include <cerrno>
#include <limits>
#include <stdexcept>

namespace weft::process {

namespace {
using Clock = std::chrono::steady_clock;

struct Deadline {
  explicit Deadline(std::optional<std::chrono::nanoseconds> timeout) {
    if (timeout) {
      at = Clock::now() + std::chrono::duration_cast<Clock::duration>(*timeout);
      ptr = &at;
    }
  }
  Clock::time_point at{};
  const Clock::time_point* ptr = nullptr;
};
}  // namespace

Queue::Queue(QueueOptions options) {
  if (options.capacity_bytes == 0) throw std::invalid_argument("weft: a Queue needs a capacity above 0 bytes");
  if (options.capacity_bytes > (std::size_t{1} << 40)) {
    throw std::invalid_argument("weft: a Queue's capacity is at most 1 TiB");
  }
  const std::size_t slots =
      std::bit_ceil((options.capacity_bytes + detail::kRingSlotBytes - 1) / detail::kRingSlotBytes);
  std::size_t max = options.max_message == 0 ? slots * detail::kRingSlotBytes : options.max_message;
  if (max > slots * detail::kRingSlotBytes || max > std::numeric_limits<std::uint32_t>::max()) {
    throw std::invalid_argument("weft: a Queue's max_message must be at most its capacity and below 4 GiB");
  }
  bytes_ = detail::Ring::bytes_for(slots);
  fd_ = ::memfd_create("weft-queue", MFD_CLOEXEC);
  if (fd_ < 0) throw_errno(errno, "memfd_create for a Queue");
  if (::ftruncate(fd_, static_cast<off_t>(bytes_)) != 0) {
    int e = errno;
    ::close(fd_);
    throw_errno(e, "sizing a Queue's shared memory to " + std::to_string(bytes_) + " bytes");
  }
  memory_ = ::mmap(nullptr, bytes_, PROT_READ | PROT_WRITE, MAP_SHARED, fd_, 0);
  if (memory_ == MAP_FAILED) {
    int e = errno;
    ::close(fd_);
    memory_ = nullptr;
    throw_errno(e, "mapping a Queue's shared memory");
  }
  ring_ = detail::Ring::create(memory_, slots, max);
}

Queue Queue::adopt(int fd) {
  Queue q{Empty{}};
  q.fd_ = fd;
  struct stat st{};
  if (::fstat(fd, &st) != 0) throw_errno(errno, "fstat of a Queue's shared memory");
  q.bytes_ = static_cast<std::size_t>(st.st_size);
  q.memory_ = ::mmap(nullptr, q.bytes_, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
  if (q.memory_ == MAP_FAILED) {
    q.memory_ = nullptr;
    throw_errno(errno, "mapping a Queue's shared memory");
  }
  q.ring_ = detail::Ring::attach(q.memory_, q.bytes_);
  return q;
}

Queue::Queue(Queue&& other) noexcept
    : fd_(other.fd_), memory_(other.memory_), bytes_(other.bytes_), ring_(other.ring_) {
  other.fd_ = -1;
  other.memory_ = nullptr;
}

Queue& Queue::operator=(Queue&& other) noexcept {
  if (this != &other) {
    unmap();
    fd_ = other.fd_;
    memory_ = other.memory_;
    bytes_ = other.bytes_;
    ring_ = other.ring_;
    other.fd_ = -1;
    other.memory_ = nullptr;
  }
  return *this;
}

Queue::~Queue() { unmap(); }

void Queue::unmap() noexcept {
  if (memory_ != nullptr) ::munmap(memory_, bytes_);
  if (fd_ >= 0) ::close(fd_);
  memory_ = nullptr;
  fd_ = -1;
}

void Queue::put_bytes(std::string_view bytes, std::optional<std::chrono::nanoseconds> timeout) {
  Deadline d(timeout);
  if (!ring_.put(bytes, d.ptr)) throw weft::Timeout("weft: Queue.put timed out: the queue stayed full");
}

void Queue::get_bytes_into(std::string& out, std::optional<std::chrono::nanoseconds> timeout) {
  Deadline d(timeout);
  if (!ring_.get(out, d.ptr)) throw weft::Timeout("weft: Queue.get timed out: the queue stayed empty");
}

std::string Queue::get_bytes(std::optional<std::chrono::nanoseconds> timeout) {
  std::string out;
  get_bytes_into(out, timeout);
  return out;
}

bool Queue::try_put_bytes(std::string_view bytes) { return ring_.try_put(bytes); }

std::optional<std::string> Queue::try_get_bytes() {
  std::string out;
  if (!ring_.try_get(out)) return std::nullopt;
  return out;
}

bool Queue::try_get_bytes_into(std::string& out) { return ring_.try_get(out); }

void Queue::close() noexcept { ring_.close(); }
bool Queue::closed() const noexcept { return ring_.closed(); }
std::size_t Queue::capacity_bytes() const noexcept { return ring_.capacity_bytes(); }
std::size_t Queue::max_message() const noexcept { return ring_.max_message(); }
bool Queue::empty() const noexcept { return ring_.used_slots() == 0; }

}  // namespace weft::process
