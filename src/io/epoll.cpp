// The epoll backend: readiness, edge-triggered. Each request is first tried at once (a non-blocking system
// call); only if the kernel says EAGAIN is the op parked on its descriptor's slot (one reader and one writer per
// descriptor) until epoll reports the descriptor ready, when the call is tried again. Edge-triggered interest
// (EPOLLIN | EPOLLOUT | EPOLLRDHUP | EPOLLET) is registered once per descriptor, when it is attached: no
// epoll_ctl per request. Because every request is tried before parking, an edge that arrived while no one was
// waiting is never lost.
//
// Slots are indexed by descriptor number (16 bytes each; the table's capacity is reserved up to the descriptor
// limit, so it never moves and only the slots in use are touched). A descriptor closed by a task resumed earlier
// in the same batch of events has its remaining events in that batch blanked out by detach_fd, so a reused
// number never receives a stale event. Resumed tasks may attach descriptors and so grow the table: slots are
// looked up again after every resume, never held across one.
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
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
constexpr std::uint64_t kBlank = kWakeTag - 1;  // an event of this batch whose descriptor was closed

struct Slot {
  IoOp* reader = nullptr;
  IoOp* writer = nullptr;
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
    slots_.reserve(descriptor_table_capacity());
    drained_.reserve(slots_.capacity());
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
    if (op.on_complete == nullptr) {
      loop_.schedule(op.waiter);
    } else {
      IoOp* p = &op;
      loop_.call_soon([p] { p->on_complete(p); });  // never inline: the canceller may be mid-way through a hook
    }
  }

  void attach_fd(int fd) override {
    if (static_cast<std::size_t>(fd) >= slots_.size()) {
      slots_.resize(static_cast<std::size_t>(fd) + 1);
      drained_.resize(static_cast<std::size_t>(fd) + 1);
    }
    drained_[static_cast<std::size_t>(fd)] = 0;
    epoll_event ev{};
    ev.events = EPOLLIN | EPOLLOUT | EPOLLRDHUP | EPOLLET;
    ev.data.u64 = static_cast<std::uint32_t>(fd);
    if (::epoll_ctl(epfd_, EPOLL_CTL_ADD, fd, &ev) != 0)
      throw Error(std::string("weft::io: epoll_ctl(ADD) failed: ") + std::strerror(errno));
  }

  void detach_fd(int fd) noexcept override {
    if (fd < 0 || static_cast<std::size_t>(fd) >= slots_.size()) return;
    Slot& s = slots_[static_cast<std::size_t>(fd)];
    for (int i = batch_next_; i < batch_size_; ++i)  // the rest of this batch must not reach a reused number
      if (events_[static_cast<std::size_t>(i)].data.u64 == static_cast<std::uint64_t>(fd))
        events_[static_cast<std::size_t>(i)].data.u64 = kBlank;
    if (IoOp* r = s.reader) cancel(*r);
    if (IoOp* w = s.writer) cancel(*w);
    ::epoll_ctl(epfd_, EPOLL_CTL_DEL, fd, nullptr);  // a dup of the descriptor must not keep reporting it
  }

  void release_buffer(std::uint16_t id) noexcept override { free_.push_back(id); }
  bool kernel_picks_buffers() const noexcept override { return false; }
  bool try_now(IoOp& op) override { return attempt(op); }

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
    int n = -1;
    if (have_pwait2_) {
      n = ::epoll_pwait2(epfd_, events_.data(), static_cast<int>(events_.size()), tsp, nullptr);
      if (n < 0 && errno == ENOSYS) have_pwait2_ = false;  // kernels before 5.11, or filtered: milliseconds
    }
    if (!have_pwait2_) {
      // Rounded up, so a timer is never found early and re-waited for in a tight loop.
      const int ms = timeout_ns < 0 ? -1 : static_cast<int>(std::min<std::int64_t>((timeout_ns + 999'999) / 1'000'000, 1 << 30));
      n = ::epoll_wait(epfd_, events_.data(), static_cast<int>(events_.size()), ms);
    }
    batch_size_ = n > 0 ? n : 0;
    for (batch_next_ = 0; batch_next_ < batch_size_;) {
      const epoll_event ev = events_[static_cast<std::size_t>(batch_next_++)];
      dispatch(ev);
    }
    batch_size_ = batch_next_ = 0;
  }

 private:
  static bool is_write(OpKind k) noexcept { return k == OpKind::send || k == OpKind::sendto || k == OpKind::connect; }

  bool is_drained(int fd) const noexcept {
    return fd >= 0 && static_cast<std::size_t>(fd) < drained_.size() && drained_[static_cast<std::size_t>(fd)] == kDrained;
  }
  void mark_drained(int fd) noexcept {
    if (fd >= 0 && static_cast<std::size_t>(fd) < drained_.size() && drained_[static_cast<std::size_t>(fd)] != kHup)
      drained_[static_cast<std::size_t>(fd)] = kDrained;
  }

  // Tries op's system call once. True when it finished (result set), false on EAGAIN (or known drained).
  bool attempt(IoOp& op) {
    switch (op.kind) {
      case OpKind::recv: case OpKind::recv_pooled: case OpKind::accept: case OpKind::recvfrom:
      case OpKind::read: case OpKind::poll_in:
        if (is_drained(op.fd)) return false;
        break;
      default: break;
    }
    const bool done = attempt_call(op);
    if (!done) {
      if (op.kind != OpKind::send && op.kind != OpKind::sendto && op.kind != OpKind::connect) mark_drained(op.fd);
    } else if ((op.kind == OpKind::recv || op.kind == OpKind::read) && op.result > 0 &&
               static_cast<std::uint32_t>(op.result) < op.len) {
      mark_drained(op.fd);  // a short stream read: what was there has been taken
    } else if (op.kind == OpKind::recv_pooled && op.result > 0 &&
               static_cast<std::uint32_t>(op.result) < arena_.size()) {
      mark_drained(op.fd);
    }
    return done;
  }

  bool attempt_call(IoOp& op) {
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
    if (ev.data.u64 == kBlank) return;
    const auto fd = static_cast<std::size_t>(ev.data.u64);
    if ((ev.events & (EPOLLRDHUP | EPOLLHUP | EPOLLERR)) != 0) drained_[fd] = kHup;  // sticky
    else if ((ev.events & EPOLLIN) != 0) drained_[fd] = 0;                             // a new edge
    if ((ev.events & (EPOLLIN | EPOLLRDHUP | EPOLLHUP | EPOLLERR)) != 0 && slots_[fd].reader != nullptr) {
      // The reader may close the descriptor (and a new one may take its number): the writer part below then
      // finds no writer, or the new descriptor's writer, whose attempt is harmless (it retries on EAGAIN).
      retry(fd, /*write=*/false);
    }
    if ((ev.events & (EPOLLOUT | EPOLLHUP | EPOLLERR)) != 0 && slots_[fd].writer != nullptr) retry(fd, true);
  }

  void retry(std::size_t fd, bool write) {
    IoOp* op = write ? slots_[fd].writer : slots_[fd].reader;
    if (!attempt(*op)) return;
    (write ? slots_[fd].writer : slots_[fd].reader) = nullptr;
    op->state = OpState::done;
    complete_op(*op);
  }

  LoopImpl& loop_;
  BufferArena& arena_;
  int epfd_ = -1;
  int wake_fd_ = -1;
  std::vector<epoll_event> events_;
  std::vector<Slot> slots_;
  // Per descriptor: 0, kDrained (a read would say EAGAIN until the next edge) or kHup (the peer shut down or
  // the socket failed: never drained again).
  static constexpr std::uint8_t kDrained = 1;
  static constexpr std::uint8_t kHup = 2;
  std::vector<std::uint8_t> drained_;
  std::vector<std::uint16_t> free_;
  bool have_pwait2_ = true;  // epoll_pwait2 (ns timeouts); epoll_wait (ms) where the kernel lacks it
  int batch_next_ = 0;  // dispatch position in events_ (detach_fd blanks the rest of the batch)
  int batch_size_ = 0;
};

}  // namespace

std::unique_ptr<BackendOps> make_epoll_backend(LoopImpl& loop, BufferArena& arena, unsigned depth) {
  return std::make_unique<EpollBackend>(loop, arena, depth);
}

}  // namespace weft::io::detail
