#include "weft/process/shared_memory.hpp"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <random>
#include <stdexcept>
#include <utility>

namespace weft::process {

namespace {
constexpr std::size_t kMaxName = 200;

std::string checked_name(std::string_view name) {
  if (!name.empty() && name.front() == '/') name.remove_prefix(1);
  if (name.empty() || name.size() > kMaxName || name.find('/') != std::string_view::npos || name == "." ||
      name == "..") {
    throw std::invalid_argument("weft: a shared memory name has 1 to 200 characters and no '/' (after an optional "
                                "leading one), not '" + std::string(name) + "'");
  }
  return std::string(name);
}

void* map(int fd, std::size_t size, const std::string& what) {
  void* p = ::mmap(nullptr, size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
  if (p == MAP_FAILED) throw_errno(errno, "mapping " + what);
  return p;
}
}  // namespace

SharedMemory SharedMemory::create(std::string_view name, std::size_t size) {
  std::string n = checked_name(name);
  if (size == 0) throw std::invalid_argument("weft: a shared memory segment needs a size above 0");
  const int fd = ::shm_open(("/" + n).c_str(), O_CREAT | O_EXCL | O_RDWR | O_CLOEXEC, 0600);
  if (fd < 0) throw_errno(errno, "creating shared memory '" + n + "'");
  SharedMemory m;
  m.name_ = n;
  m.owner_ = true;  // from here on the destructor unlinks it, also when sizing or mapping fails below
  if (::ftruncate(fd, static_cast<off_t>(size)) != 0) {
    int e = errno;
    ::close(fd);
    throw_errno(e, "sizing shared memory '" + n + "' to " + std::to_string(size) + " bytes");
  }
  try {
    m.data_ = map(fd, size, "shared memory '" + n + "'");
  } catch (...) {
    ::close(fd);
    throw;
  }
  ::close(fd);  // the mapping keeps the segment; attachers open it by name
  m.size_ = size;
  return m;
}

SharedMemory SharedMemory::create(std::size_t size) {
  static std::atomic<unsigned> counter{0};
  std::random_device rd;
  char suffix[17];
  std::snprintf(suffix, sizeof suffix, "%08x", rd());
  return create("weft-" + std::to_string(::getpid()) + "-" + std::to_string(counter.fetch_add(1)) + "-" + suffix,
                size);
}

SharedMemory SharedMemory::attach(std::string_view name) {
  std::string n = checked_name(name);
  const int fd = ::shm_open(("/" + n).c_str(), O_RDWR | O_CLOEXEC, 0);
  if (fd < 0) throw_errno(errno, "attaching shared memory '" + n + "'");
  struct stat st{};
  if (::fstat(fd, &st) != 0 || st.st_size <= 0) {
    int e = st.st_size <= 0 ? EINVAL : errno;
    ::close(fd);
    throw_errno(e, "shared memory '" + n + "' has no size");
  }
  SharedMemory m;
  m.name_ = n;
  m.size_ = static_cast<std::size_t>(st.st_size);
  try {
    m.data_ = map(fd, m.size_, "shared memory '" + n + "'");
  } catch (...) {
    ::close(fd);
    throw;
  }
  ::close(fd);
  return m;
}

SharedMemory SharedMemory::anonymous(std::size_t size) {
  if (size == 0) throw std::invalid_argument("weft: a shared memory segment needs a size above 0");
  const int fd = ::memfd_create("weft-shm", MFD_CLOEXEC);
  if (fd < 0) throw_errno(errno, "memfd_create for shared memory");
  if (::ftruncate(fd, static_cast<off_t>(size)) != 0) {
    int e = errno;
    ::close(fd);
    throw_errno(e, "sizing anonymous shared memory to " + std::to_string(size) + " bytes");
  }
  return adopt_fd(fd);
}

SharedMemory SharedMemory::adopt_fd(int fd) {
  SharedMemory m;
  m.fd_ = fd;  // owned from here: the destructor closes it
  struct stat st{};
  if (::fstat(fd, &st) != 0) throw_errno(errno, "fstat of anonymous shared memory");
  m.size_ = static_cast<std::size_t>(st.st_size);
  if (m.size_ == 0) throw std::invalid_argument("weft: the anonymous shared memory has size 0");
  m.data_ = map(fd, m.size_, "anonymous shared memory");
  return m;
}

SharedMemory::SharedMemory(SharedMemory&& o) noexcept
    : data_(std::exchange(o.data_, nullptr)),
      size_(std::exchange(o.size_, 0)),
      name_(std::move(o.name_)),
      fd_(std::exchange(o.fd_, -1)),
      owner_(std::exchange(o.owner_, false)) {
  o.name_.clear();
}

SharedMemory& SharedMemory::operator=(SharedMemory&& o) noexcept {
  if (this != &o) {
    this->~SharedMemory();
    new (this) SharedMemory(std::move(o));
  }
  return *this;
}

SharedMemory::~SharedMemory() {
  if (data_ != nullptr) ::munmap(data_, size_);
  if (fd_ >= 0) ::close(fd_);
  if (owner_ && !name_.empty()) ::shm_unlink(("/" + name_).c_str());
}

void SharedMemory::unlink() {
  if (name_.empty()) return;
  if (::shm_unlink(("/" + name_).c_str()) != 0 && errno != ENOENT) throw_errno(errno, "unlinking '" + name_ + "'");
  owner_ = false;
}

}  // namespace weft::process
