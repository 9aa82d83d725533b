#pragma once
// The records an awaiter hands to the event loop: one IoOp per pending I/O request and one TimerNode per armed
// deadline. Both live inside the awaiter (so inside the suspended coroutine's frame): the loop never allocates
// per operation, and a record's address is its identity (the io_uring user_data, the epoll wait-list link).
#include <sys/socket.h>

#include <coroutine>
#include <cstdint>

namespace weft::io::detail {

enum class OpKind : std::uint8_t {
  recv,         // recv(fd, buf, len) into the caller's buffer
  recv_pooled,  // recv into a buffer of the loop's pool, picked when data arrives (none is held while idle)
  send,         // send(fd, buf, len, MSG_NOSIGNAL)
  accept,       // accept4(fd, addr, &addrlen, NONBLOCK | CLOEXEC)
  connect,      // connect(fd, addr, addrlen) on a non-blocking socket
  recvfrom,     // recvmsg for datagrams: buf/len plus the sender's address
  sendto,       // sendmsg for datagrams to addr
  read,         // read(fd, buf, len): non-socket descriptors (eventfd, pipes)
  poll_in,      // wait until readable; no data is consumed
};

enum class OpState : std::uint8_t { idle, pending, cancelling, done };

struct IoOp {
  std::coroutine_handle<> waiter;
  void* buf = nullptr;
  sockaddr* addr = nullptr;         // connect/sendto: target; accept/recvfrom: filled in
  std::uint32_t len = 0;
  socklen_t addrlen = 0;            // in/out for accept and recvfrom
  std::int32_t result = 0;          // bytes / new fd / 0, or -errno; -ECANCELED when cancelled
  int fd = -1;
  OpKind kind = OpKind::recv;
  OpState state = OpState::idle;
  std::uint16_t buffer_id = 0;      // recv_pooled: the pool buffer that holds the data
  /// When set, the loop calls this on completion instead of resuming `waiter` (operations owned by no
  /// coroutine, such as the reads of parked connections in serve.hpp). Runs on the loop thread.
  void (*on_complete)(IoOp*) = nullptr;
};

/// Finishes a completed op: its callback, or its waiting coroutine.
inline void complete_op(IoOp& op) {
  if (op.on_complete != nullptr) op.on_complete(&op);
  else op.waiter.resume();
}

/// A deadline in the loop's timer heap (ns on the steady clock). `fn` runs on the loop thread when it expires.
struct TimerNode {
  std::int64_t deadline = 0;
  std::uint32_t index = kNotArmed;  // position in the heap
  void (*fn)(TimerNode*) = nullptr;
  void* ctx = nullptr;  // for fn: the object that owns the node
  static constexpr std::uint32_t kNotArmed = ~std::uint32_t{0};
  bool armed() const noexcept { return index != kNotArmed; }
};

}  // namespace weft::io::detail
