// The epoll backend: readiness, edge-triggered. Each request is first tried at once (a non-blocking system
// call); only if the kernel says EAGAIN is the op parked on its descriptor's slot (one reader and one writer per
// descriptor) until epoll reports the descriptor ready, when the call is tried again. Edge-triggered interest
// (EPOLLIN | EPOLLOUT | EPOLLRDHUP | EPOLLET) is registered once per descriptor, when it is attached: no
// epoll_ctl per request. Because every request is tried before parking, an edge that arrived while no one was
// waiting is never lost.
//
// Slots are indexed by descriptor number and carry a generation, also stored in the epoll event: a descriptor
// closed (and its number reused) by a task resumed earlier in the same batch is recognised and its stale events
// are dropped. Resumed tasks may attach descriptors and so grow the slot table: slots are looked up again after
// every resume, never held across one.
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <memory>
#include <poll.h>
#include <string>
#include <vector>

#include "loop_core.hpp"
#include "weft/core/errors.hpp"

namespace weft::io::detail {
namespace {

constexpr std::uint64_t kWakeTag = ~std::uint64_t{0};

struct Slot {
  IoOp* reader = nullptr;
  IoOp* writer = nullptr;
  std::uint32_t gen = 0;
};

class EpollBackend final : public BackendOps {
 public:
  EpollBackend(LoopImpl& loop, BufferArena& arena, unsigned depth) : loop_(loop), arena_(arena), events_(depth) {
    epfd_ = ::epoll_create1(EPOLL_CLOEXEC);
    if (epfd_ < 0) throw Error(std::string("weft::io: epoll_create1 failed: ") + std::strerror(errno));
    wake_fd_ = ::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    if (wake_fd_ < 0) throw Error(std::string("weft::io: eventfd failed: ") + std::strerror(errno));
    epoll_event ev{};
    ev.events = EPOLLIN;
    ev.data.u64 = kWakeTag;
    ::epoll_ctl(epfd_, EPOLL_CTL_ADD, wake_fd_, &ev);
    free_.reserve(arena.count());
    for (std::uint32_t i = arena.count(); i > 0; --i) free_.push_back(static_cast<std::uint16_t>(i - 1));
  }

  ~EpollBackend() override {
    ::close(wake_fd_);
    ::close(epfd_);
  }

  bool start(IoOp& op) override {
    if (attempt(op)) return false;
    if (op.fd < 0 || static_cast<std::size_t>(op.fd) >= slots_.size()) {
      op.result = -EBADF;
      return false;
    }
    Slot& s = slots_[static_cast<std::size_t>(op.fd)];
    IoOp*& place = is_write(op.kind) ? s.writer : s.reader;
    if (place != nullptr) {  // a second concurrent read (or write) on one descriptor
      op.result = -EBUSY;
      return false;
    }
    place = &op;
    return true;
  }

  void cancel(IoOp& op) override {
    if (op.state != OpState::pending) return;
    if (op.fd >= 0 && static_cast<std::size_t>(op.fd) < slots_.size()) {
      Slot& s = slots_[static_cast<std::size_t>(op.fd)];
      if (s.reader == &op) s.reader = nullptr;
      if (s.writer == &op) s.writer = nullptr;
    }
    op.state = OpState::done;
    op.result = -ECANCELED;
    loop_.schedule(op.waiter);
  }

  void attach_fd(int fd) override {
    if (static_cast<std::size_t>(fd) >= slots_.size()) slots_.resize(static_cast<std::size_t>(fd) + 1);
    Slot& s = slots_[static_cast<std::size_t>(fd)];
    ++s.gen;
    epoll_event ev{};
    ev.events = EPOLLIN | EPOLLOUT | EPOLLRDHUP | EPOLLET;
    ev.data.u64 = (std::uint64_t{s.gen} << 32) | static_cast<std::uint32_t>(fd);
    if (::epoll_ctl(epfd_, EPOLL_CTL_ADD, fd, &ev) != 0)
      throw Error(std::string("weft::io: epoll_ctl(ADD) failed: ") + std::strerror(errno));
  }

  void detach_fd(int fd) noexcept override {
    if (fd < 0 || static_cast<std::size_t>(fd) >= slots_.size()) return;
    Slot& s = slots_[static_cast<std::size_t>(fd)];
    ++s.gen;  // drops events of this batch for the old descriptor
    if (IoOp* r = s.reader) cancel(*r);
    if (IoOp* w = s.writer) cancel(*w);
    ::epoll_ctl(epfd_, EPOLL_CTL_DEL, fd, nullptr);  // a dup of the descriptor must not keep reporting it
  }

  void release_buffer(std::uint16_t id) noexcept override { free_.push_back(id); }

  void wake() noexcept override {
    std::uint64_t one = 1;
    [[maybe_unused]] ssize_t n = ::write(wake_fd_, &one, sizeof one);
  }

  void wait(std::int64_t timeout_ns) override {
    timespec ts{};
    timespec* tsp = nullptr;
    if (timeout_ns >= 0) {
      ts.tv_sec = timeout_ns / 1'000'000'000;
      ts.tv_nsec = timeout_ns % 1'000'000'000;
      tsp = &ts;
    }
    int n = ::epoll_pwait2(epfd_, events_.data(), static_cast<int>(events_.size()), tsp, nullptr);
    for (int i = 0; i < n; ++i) dispatch(events_[static_cast<std::size_t>(i)]);
  }

 private:
  static bool is_write(OpKind k) noexcept { return k == OpKind::send || k == OpKind::sendto || k == OpKind::connect; }

  // Tries op's system call once. True when it finished (result set), false on EAGAIN.
  bool attempt(IoOp& op) {
    ssize_t n = 0;
    switch (op.kind) {
      case OpKind::recv: n = ::recv(op.fd, op.buf, op.len, MSG_DONTWAIT); break;
      case OpKind::recv_pooled: return attempt_pooled(op);
      case OpKind::send: n = ::send(op.fd, op.buf, op.len, MSG_DONTWAIT | MSG_NOSIGNAL); break;
      case OpKind::accept: n = ::accept4(op.fd, op.addr, &op.addrlen, SOCK_NONBLOCK | SOCK_CLOEXEC); break;
      case OpKind::connect: {
        if (op.state == OpState::pending && op.result == 1) {  // woken writable: the connect has finished
          int err = 0;
          socklen_t len = sizeof err;
          if (::getsockopt(op.fd, SOL_SOCKET, SO_ERROR, &err, &len) != 0) err = errno;
          op.result = -err;
          return true;
        }
        n = ::connect(op.fd, op.addr, op.addrlen);
        if (n != 0 && errno == EINPROGRESS) {
          op.result = 1;  // marks "in progress" for the retry above
          return false;
        }
        break;
      }
      case OpKind::recvfrom: n = ::recvmsg(op.fd, static_cast<msghdr*>(op.buf), MSG_DONTWAIT | MSG_TRUNC); break;
      case OpKind::sendto: n = ::sendmsg(op.fd, static_cast<msghdr*>(op.buf), MSG_DONTWAIT | MSG_NOSIGNAL); break;
      case OpKind::read: n = ::read(op.fd, op.buf, op.len); break;
      case OpKind::poll_in: {
        pollfd p{op.fd, POLLIN, 0};
        n = ::poll(&p, 1, 0);
        if (n == 0) return false;
        op.result = 0;
        return n > 0 || errno != EINTR;
      }
    }
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) return false;
    op.result = n >= 0 ? static_cast<std::int32_t>(n) : -errno;
    return true;
  }

  bool attempt_pooled(IoOp& op) {
    char* data;
    std::uint16_t id;
    if (!free_.empty()) {
      id = free_.back();
      data = arena_.data(id);
    } else {
      id = kHeapBuffer;
      data = new char[arena_.size()];
    }
    ssize_t n = ::recv(op.fd, data, arena_.size(), MSG_DONTWAIT);
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
      if (id == kHeapBuffer) delete[] data;
      return false;
    }
    op.result = n >= 0 ? static_cast<std::int32_t>(n) : -errno;
    if (n > 0) {
      op.buffer_id = id;
      if (id == kHeapBuffer) {
        op.buf = data;
        loop_.note_buffer_taken(false);
      } else {
        free_.pop_back();
        loop_.note_buffer_taken(true);
      }
    } else if (id == kHeapBuffer) {
      delete[] data;
    }
    return true;
  }

  void dispatch(const epoll_event& ev) {
    if (ev.data.u64 == kWakeTag) {
      std::uint64_t v;
      [[maybe_unused]] ssize_t n = ::read(wake_fd_, &v, sizeof v);
      return;
    }
    const auto fd = static_cast<std::size_t>(ev.data.u64 & 0xFFFFFFFFu);
    const auto gen = static_cast<std::uint32_t>(ev.data.u64 >> 32);
    if (fd >= slots_.size() || slots_[fd].gen != gen) return;
    if ((ev.events & (EPOLLIN | EPOLLRDHUP | EPOLLHUP | EPOLLERR)) != 0 && slots_[fd].reader != nullptr)
      retry(fd, /*write=*/false);
    if (fd >= slots_.size() || slots_[fd].gen != gen) return;  // the reader closed it
    if ((ev.events & (EPOLLOUT | EPOLLHUP | EPOLLERR)) != 0 && slots_[fd].writer != nullptr) retry(fd, true);
  }

  void retry(std::size_t fd, bool write) {
    IoOp* op = write ? slots_[fd].writer : slots_[fd].reader;
    if (!attempt(*op)) return;
    (write ? slots_[fd].writer : slots_[fd].reader) = nullptr;
    op->state = OpState::done;
    op->waiter.resume();
  }

  LoopImpl& loop_;
  BufferArena& arena_;
  int epfd_ = -1;
  int wake_fd_ = -1;
  std::vector<epoll_event> events_;
  std::vector<Slot> slots_;
  std::vector<std::uint16_t> free_;
};

}  // namespace

std::unique_ptr<BackendOps> make_epoll_backend(LoopImpl& loop, BufferArena& arena, unsigned depth) {
  return std::make_unique<EpollBackend>(loop, arena, depth);
}

}  // namespace weft::io::detail
