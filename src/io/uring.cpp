// The io_uring backend. Every request goes to the kernel as a submission queue entry whose user_data is the
// IoOp's address; the loop submits all entries of a turn and waits for completions in one system call
// (io_uring_submit_and_wait_timeout). Sends are first tried directly (MSG_DONTWAIT): on loopback and on
// uncongested links the kernel takes the bytes at once, and a direct send costs less than an entry and its
// completion. Reads that want a pool buffer use a provided-buffer ring: the kernel picks a buffer only when
// data arrives, so an idle connection holds none.
//
// user_data values: an IoOp*; kIgnore (0) for entries whose completion carries nothing (cancellations);
// kWakeTag (1) for the read on the wake-up eventfd.
//
// Cancellation: cancel() submits IORING_OP_ASYNC_CANCEL for the op; the op itself still completes exactly once
// (with -ECANCELED, or with its real result if it won the race) and only that completion resumes the waiter, so
// the op's memory stays valid until then. Closing a descriptor submits a cancel-by-descriptor for everything
// pending on it *before* close(): once the number is closed the kernel could no longer find those requests, and
// they would keep the socket open. The backend counts the entries in flight per attached descriptor, so closing
// one with nothing pending (the common case) costs no system call.
#include <liburing.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <memory>
#include <vector>
#include <poll.h>

#include "loop_core.hpp"
#include "weft/core/errors.hpp"

namespace weft::io::detail {
namespace {

constexpr std::uint64_t kIgnore = 0;
constexpr std::uint64_t kWakeTag = 1;
constexpr int kBufferGroup = 0;

class UringBackend final : public BackendOps {
 public:
  UringBackend(LoopImpl& loop, BufferArena& arena) : loop_(loop), arena_(arena) {}

  bool init(unsigned depth) {
    // Fastest first: a ring bound to the one thread that runs the loop (SINGLE_ISSUER), completions processed
    // only when that thread asks for them (DEFER_TASKRUN: no interrupting task work). It starts disabled and is
    // bound to the running thread by bind_thread() when run() starts. Older kernels: cooperative task work;
    // oldest: plain.
    const unsigned tries[] = {
        IORING_SETUP_R_DISABLED | IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_DEFER_TASKRUN | IORING_SETUP_TASKRUN_FLAG,
        IORING_SETUP_COOP_TASKRUN | IORING_SETUP_TASKRUN_FLAG,
        0u,
    };
    int rc = -EINVAL;
    io_uring_params params{};
    for (unsigned flags : tries) {
      params = io_uring_params{};
      params.flags = flags | IORING_SETUP_CQSIZE;
      params.cq_entries = depth * 4;
      rc = io_uring_queue_init_params(depth, &ring_, &params);
      if (rc != -EINVAL) {
        disabled_ = (flags & IORING_SETUP_R_DISABLED) != 0;
        break;
      }
    }
    if (rc < 0) return false;
    ring_ok_ = true;
    if ((params.features & IORING_FEAT_EXT_ARG) == 0 || (params.features & IORING_FEAT_NODROP) == 0) return false;
    wake_fd_ = ::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    if (wake_fd_ < 0) return false;
    if (!setup_buffers()) return false;
    in_flight_.reserve(descriptor_table_capacity());
    arm_wake();
    return true;
  }

  // The ring serves the first thread that runs the loop (SINGLE_ISSUER binds it when it is enabled).
  void bind_thread() override {
    if (!disabled_) return;
    // (io_uring_enable_rings is declared by this liburing's header but missing from its library: the system
    // call itself.)
    if (::syscall(__NR_io_uring_register, ring_.ring_fd, IORING_REGISTER_ENABLE_RINGS, nullptr, 0) < 0)
      throw Error(std::string("weft::io: cannot enable the io_uring: ") + std::strerror(errno));
    disabled_ = false;
  }

  ~UringBackend() override {
    if (buf_ring_ != nullptr) {
      io_uring_unregister_buf_ring(&ring_, kBufferGroup);
      ::munmap(buf_ring_, ring_bytes_);
    }
    if (ring_ok_) io_uring_queue_exit(&ring_);
    if (wake_fd_ >= 0) ::close(wake_fd_);
  }

  bool start(IoOp& op) override {
    switch (op.kind) {
      case OpKind::send: {
        ssize_t n = ::send(op.fd, op.buf, op.len, MSG_DONTWAIT | MSG_NOSIGNAL);
        if (n >= 0 || (errno != EAGAIN && errno != EWOULDBLOCK)) return finish_now(op, n);
        io_uring_prep_send(sqe(op), op.fd, op.buf, op.len, MSG_NOSIGNAL);
        return true;
      }
      case OpKind::sendto: {
        ssize_t n = ::sendmsg(op.fd, static_cast<msghdr*>(op.buf), MSG_DONTWAIT | MSG_NOSIGNAL);
        if (n >= 0 || (errno != EAGAIN && errno != EWOULDBLOCK)) return finish_now(op, n);
        io_uring_prep_sendmsg(sqe(op), op.fd, static_cast<msghdr*>(op.buf), MSG_NOSIGNAL);
        return true;
      }
      case OpKind::recv: io_uring_prep_recv(sqe(op), op.fd, op.buf, op.len, 0); return true;
      case OpKind::recv_pooled: {
        io_uring_sqe* e = sqe(op);
        io_uring_prep_recv(e, op.fd, nullptr, arena_.size(), 0);
        e->flags |= IOSQE_BUFFER_SELECT;
        e->buf_group = kBufferGroup;
        return true;
      }
      case OpKind::accept:
        io_uring_prep_accept(sqe(op), op.fd, op.addr, &op.addrlen, SOCK_NONBLOCK | SOCK_CLOEXEC);
        return true;
      case OpKind::connect: io_uring_prep_connect(sqe(op), op.fd, op.addr, op.addrlen); return true;
      case OpKind::recvfrom: io_uring_prep_recvmsg(sqe(op), op.fd, static_cast<msghdr*>(op.buf), MSG_TRUNC); return true;
      case OpKind::read: io_uring_prep_read(sqe(op), op.fd, op.buf, op.len, static_cast<__u64>(-1)); return true;
      case OpKind::poll_in: io_uring_prep_poll_add(sqe(op), op.fd, POLLIN); return true;
    }
    op.result = -EINVAL;
    return false;
  }

  void cancel(IoOp& op) override {
    if (op.state != OpState::pending) return;
    op.state = OpState::cancelling;
    io_uring_sqe* e = get_sqe();
    io_uring_prep_cancel64(e, reinterpret_cast<std::uint64_t>(&op), 0);
    io_uring_sqe_set_data64(e, kIgnore);
  }

  // Every op's descriptor is attached (FdHandle) before its first entry, and the table only grows, so each
  // entry's count and its completion's discount land on the same slot. Not reset here: entries of an earlier
  // descriptor with this number may still be in flight, and they count until their completions arrive.
  void attach_fd(int fd) override {
    if (static_cast<std::size_t>(fd) >= in_flight_.size()) in_flight_.resize(static_cast<std::size_t>(fd) + 1);
  }

  void detach_fd(int fd) noexcept override {
    if (disabled_) return;  // nothing can be pending on a ring that never ran
    if (const std::uint32_t* n = in_flight(fd); n != nullptr && *n == 0) return;  // nothing pending on it
    io_uring_sqe* e = get_sqe();
    io_uring_prep_cancel_fd(e, fd, IORING_ASYNC_CANCEL_ALL);
    io_uring_sqe_set_data64(e, kIgnore);
    io_uring_submit(&ring_);  // before close(): see the top of this file
  }

  void release_buffer(std::uint16_t id) noexcept override {
    io_uring_buf_ring_add(buf_ring_, arena_.data(id), arena_.size(), id, io_uring_buf_ring_mask(arena_.count()), 0);
    io_uring_buf_ring_advance(buf_ring_, 1);
  }

  bool kernel_picks_buffers() const noexcept override { return true; }
  bool try_now(IoOp& op) override {
    op.result = -EOPNOTSUPP;
    return true;
  }

  void wake() noexcept override {
    std::uint64_t one = 1;
    [[maybe_unused]] ssize_t n = ::write(wake_fd_, &one, sizeof one);
  }

  void wait(std::int64_t timeout_ns) override {
    io_uring_cqe* cqe = nullptr;
    if (timeout_ns == 0) {
      if (io_uring_sq_ready(&ring_) > 0 || (*ring_.sq.kflags & IORING_SQ_TASKRUN) != 0) io_uring_submit_and_get_events(&ring_);
    } else {
      __kernel_timespec ts{};
      __kernel_timespec* tsp = nullptr;
      if (timeout_ns > 0) {
        ts.tv_sec = timeout_ns / 1'000'000'000;
        ts.tv_nsec = timeout_ns % 1'000'000'000;
        tsp = &ts;
      }
      int rc = io_uring_submit_and_wait_timeout(&ring_, &cqe, 1, tsp, nullptr);
      (void)rc;  // -ETIME (timer due), -EINTR: the turn goes on; completions are reaped below either way
    }
    reap();
  }

 private:
  bool finish_now(IoOp& op, ssize_t n) {
    op.result = n >= 0 ? static_cast<std::int32_t>(n) : -errno;
    return false;
  }

  io_uring_sqe* get_sqe() noexcept {
    io_uring_sqe* e = io_uring_get_sqe(&ring_);
    while (e == nullptr) {  // the submission queue is full: hand it to the kernel and retry
      io_uring_submit(&ring_);
      e = io_uring_get_sqe(&ring_);
    }
    return e;
  }

  std::uint32_t* in_flight(int fd) noexcept {
    return fd >= 0 && static_cast<std::size_t>(fd) < in_flight_.size() ? &in_flight_[static_cast<std::size_t>(fd)]
                                                                         : nullptr;
  }

  // An entry for op; counted in flight on op's descriptor until its completion arrives.
  io_uring_sqe* sqe(IoOp& op) noexcept {
    io_uring_sqe* e = get_sqe();
    io_uring_sqe_set_data(e, &op);
    if (std::uint32_t* n = in_flight(op.fd)) ++*n;
    return e;
  }

  bool setup_buffers() {
    const std::uint32_t n = arena_.count();
    ring_bytes_ = n * sizeof(io_uring_buf);
    void* mem = ::mmap(nullptr, ring_bytes_, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (mem == MAP_FAILED) return false;
    buf_ring_ = static_cast<io_uring_buf_ring*>(mem);
    io_uring_buf_reg reg{};
    reg.ring_addr = reinterpret_cast<std::uint64_t>(buf_ring_);
    reg.ring_entries = n;
    reg.bgid = kBufferGroup;
    if (io_uring_register_buf_ring(&ring_, &reg, 0) != 0) {
      ::munmap(buf_ring_, ring_bytes_);
      buf_ring_ = nullptr;
      return false;
    }
    io_uring_buf_ring_init(buf_ring_);
    for (std::uint32_t i = 0; i < n; ++i)
      io_uring_buf_ring_add(buf_ring_, arena_.data(static_cast<std::uint16_t>(i)), arena_.size(),
                            static_cast<std::uint16_t>(i), io_uring_buf_ring_mask(n), static_cast<int>(i));
    io_uring_buf_ring_advance(buf_ring_, static_cast<int>(n));
    return true;
  }

  void arm_wake() {
    io_uring_sqe* e = get_sqe();
    io_uring_prep_read(e, wake_fd_, &wake_value_, sizeof wake_value_, static_cast<__u64>(-1));
    io_uring_sqe_set_data64(e, kWakeTag);
  }

  void reap() {
    io_uring_cqe* batch[256];
    for (;;) {
      unsigned n = io_uring_peek_batch_cqe(&ring_, batch, 256);
      if (n == 0) return;
      // Copy out and advance first: resumed tasks may submit (and so touch the rings) before we return.
      struct Done {
        std::uint64_t data;
        std::int32_t res;
        std::uint32_t flags;
      } done[256];
      for (unsigned i = 0; i < n; ++i) done[i] = {batch[i]->user_data, batch[i]->res, batch[i]->flags};
      io_uring_cq_advance(&ring_, n);
      for (unsigned i = 0; i < n; ++i) complete(done[i].data, done[i].res, done[i].flags);
      if (n < 256) return;
    }
  }

  void complete(std::uint64_t data, std::int32_t res, std::uint32_t flags) {
    if (data == kIgnore) return;
    if (data == kWakeTag) {
      arm_wake();  // the loop drains the inbox itself at the start of the next turn
      return;
    }
    IoOp& op = *reinterpret_cast<IoOp*>(data);
    // (The count is by number: an op of a descriptor closed and reused meanwhile still counts under it, which
    // only costs that number's next close a cancel it did not need.)
    if (std::uint32_t* n = in_flight(op.fd); n != nullptr && *n > 0) --*n;
    if (op.kind == OpKind::recv_pooled) {
      if (res == -ENOBUFS && op.state == OpState::pending) {  // pool empty: a one-off buffer for this read
        loop_.note_buffer_taken(false);
        op.buf = new char[arena_.size()];
        op.buffer_id = kHeapBuffer;
        io_uring_prep_recv(sqe(op), op.fd, op.buf, arena_.size(), 0);
        return;
      }
      if ((flags & IORING_CQE_F_BUFFER) != 0) {
        op.buffer_id = static_cast<std::uint16_t>(flags >> IORING_CQE_BUFFER_SHIFT);
        loop_.note_buffer_taken(true);
        if (res <= 0) {  // a buffer picked for an end-of-stream or an error: give it straight back
          loop_.release_buffer(op.buffer_id);
        }
      }
    }
    if (res == -ENOBUFS) res = -ECANCELED;  // cancelled while the pool was empty
    op.result = res;
    op.state = OpState::done;
    complete_op(op);
  }

  LoopImpl& loop_;
  BufferArena& arena_;
  io_uring ring_{};
  bool ring_ok_ = false;
  bool disabled_ = false;  // R_DISABLED until the running thread binds it
  int wake_fd_ = -1;
  std::uint64_t wake_value_ = 0;
  io_uring_buf_ring* buf_ring_ = nullptr;
  std::size_t ring_bytes_ = 0;
  std::vector<std::uint32_t> in_flight_;  // entries in flight per attached descriptor (index: fd)
};

}  // namespace

std::unique_ptr<BackendOps> make_uring_backend(LoopImpl& loop, BufferArena& arena, unsigned depth) {
  auto b = std::make_unique<UringBackend>(loop, arena);
  if (!b->init(depth)) return nullptr;
  return b;
}

}  // namespace weft::io::detail
