#pragma once
// Sockets on the event loop: TCP and Unix-domain streams and listeners, UDP, addresses and name resolution.
//
// Every socket is non-blocking and belongs to the loop of the thread that made it; its operations are
// awaitables for io::Task. A stream allows one read and one write in flight at a time (from two tasks, say);
// two concurrent reads on one stream are a bug (undefined order). Errors come as weft::io::IoError carrying the
// errno (ECONNRESET for a peer reset, ECONNREFUSED, ...); end of stream is not an error (read returns 0).
// Closing a socket (close() or its destructor) cancels what is pending on it: the waiting tasks get
// weft::Cancelled.
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <sys/un.h>

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <system_error>
#include <utility>
#include <vector>

#include "weft/core/errors.hpp"
#include "weft/io/buffer.hpp"
#include "weft/io/detail/awaiters.hpp"
#include "weft/io/loop.hpp"
#include "weft/io/task.hpp"

namespace weft::io {

/// A failed system call on a socket: what() names the operation and the system error; code() has the errno.
class IoError : public Error {
 public:
  IoError(int err, const std::string& what);
  std::error_code code() const noexcept { return code_; }

 private:
  std::error_code code_;
};

/// read_exact met the end of the stream first.
class EndOfStream : public Error {
 public:
  using Error::Error;
};

/// An IPv4, IPv6 or Unix-domain socket address (a value type).
class Address {
 public:
  Address() noexcept;
  /// Parses a numeric IPv4 or IPv6 literal ("127.0.0.1", "::1"). Throws weft::Error on anything else (use
  /// resolve() for names).
  static Address ip(std::string_view literal, std::uint16_t port);
  /// Like ip(), but std::nullopt instead of throwing when `literal` is not a numeric address.
  static std::optional<Address> try_ip(std::string_view literal, std::uint16_t port);
  /// 127.0.0.1:port.
  static Address loopback(std::uint16_t port = 0);
  /// A Unix-domain socket path (throws weft::Error when longer than sun_path allows). A leading '@' means the
  /// Linux abstract namespace.
  static Address unix_path(std::string_view path);
  static Address from_native(const sockaddr* sa, socklen_t len);

  int family() const noexcept { return storage_.ss_family; }
  /// The port (0 for Unix-domain addresses).
  std::uint16_t port() const noexcept;
  /// "127.0.0.1:8080", "[::1]:80", "unix:/path".
  std::string to_string() const;
  const sockaddr* native() const noexcept { return reinterpret_cast<const sockaddr*>(&storage_); }
  sockaddr* native() noexcept { return reinterpret_cast<sockaddr*>(&storage_); }
  socklen_t size() const noexcept { return len_; }
  socklen_t& size_ref() noexcept { return len_; }

 private:
  sockaddr_storage storage_;
  socklen_t len_;
};

/// Resolves `host` (a name or a literal) to addresses for `port` without blocking the loop: getaddrinfo runs
/// on a small shared thread pool (2 threads, 256 queued lookups at most: beyond that, weft::QueueFull).
/// Throws IoError (EAI code in the message) when the name does not resolve. Cancellable.
Task<std::vector<Address>> resolve(std::string host, std::uint16_t port);

namespace detail {
/// Owns a descriptor registered with the current loop.
class FdHandle {
 public:
  FdHandle() noexcept = default;
  explicit FdHandle(int fd);  // attaches to the current loop
  FdHandle(FdHandle&& o) noexcept : fd_(std::exchange(o.fd_, -1)), core_(o.core_) {}
  FdHandle& operator=(FdHandle&& o) noexcept {
    if (this != &o) {
      close();
      fd_ = std::exchange(o.fd_, -1);
      core_ = o.core_;
    }
    return *this;
  }
  ~FdHandle() { close(); }
  int get() const noexcept { return fd_; }
  LoopCore& core() const noexcept { return *core_; }
  void close() noexcept;

 private:
  int fd_ = -1;
  LoopCore* core_ = nullptr;
};

/// An OpAwaiter whose result converts to a value or an IoError.
template <class R, R (*Convert)(OpAwaiter&, std::int32_t)>
class SocketAwaiter : public OpAwaiter {
 public:
  using OpAwaiter::OpAwaiter;
  R await_resume() { return Convert(*this, OpAwaiter::await_resume()); }
};

std::size_t bytes_or_throw(OpAwaiter& a, std::int32_t r);
Buffer buffer_or_throw(OpAwaiter& a, std::int32_t r);
void connected_or_throw(OpAwaiter& a, std::int32_t r);
}  // namespace detail

/// A connected stream socket (TCP or Unix-domain). Move-only.
class Stream {
 public:
  Stream() noexcept = default;
  /// Adopts a connected, non-blocking socket descriptor (attaches it to the current loop).
  explicit Stream(int fd);

  /// Connects to `to`; with a non-zero `timeout`, gives up with weft::Timeout (the attempt is cancelled).
  /// Throws IoError (ECONNREFUSED, ENETUNREACH, ...). Loop thread only.
  static Task<Stream> connect(Address to, std::chrono::nanoseconds timeout = {});
  /// Resolves `host` and tries its addresses in order until one connects (the last error is rethrown).
  static Task<Stream> connect(std::string host, std::uint16_t port, std::chrono::nanoseconds timeout = {});

  using ReadAwaiter = detail::SocketAwaiter<std::size_t, &detail::bytes_or_throw>;
  using PooledReadAwaiter = detail::SocketAwaiter<Buffer, &detail::buffer_or_throw>;

  /// Reads what is available, up to buf.size() bytes (waits until at least one byte or the end). Returns 0 at
  /// the end of the stream (the peer shut down its side or closed). Throws IoError (ECONNRESET...),
  /// weft::Timeout after the read timeout, weft::Cancelled.
  ReadAwaiter read(std::span<std::byte> buf);
  ReadAwaiter read(void* data, std::size_t size) { return read(std::span(static_cast<std::byte*>(data), size)); }
  /// Like read(), into a buffer of the loop's pool taken only when data arrives: an idle connection waiting
  /// here holds no buffer. Returns an empty Buffer at the end of the stream. Hold the Buffer briefly.
  PooledReadAwaiter read_some();
  /// Reads exactly buf.size() bytes. Throws EndOfStream if the stream ends first (the bytes read so far are
  /// in buf; the count is in the message).
  Task<void> read_exact(std::span<std::byte> buf);

  /// Writes all of `data`, waiting while the socket's send buffer is full (the kernel's buffer is the bound:
  /// there is no unbounded user-space queue). Completes without suspending when the kernel takes it all at once.
  /// Throws IoError (EPIPE, ECONNRESET...), weft::Timeout after the write timeout, weft::Cancelled (some bytes
  /// may have been sent).
  class WriteAll;
  WriteAll write_all(std::span<const std::byte> data);
  WriteAll write_all(std::string_view data);

  /// Half-close: no more writes (the peer reads end-of-stream); reads go on. Throws IoError.
  void shutdown_write();
  /// Closes now, cancelling pending operations. Idempotent.
  void close() noexcept { fd_.close(); }
  bool is_open() const noexcept { return fd_.get() >= 0; }
  int native_handle() const noexcept { return fd_.get(); }

  /// Deadlines for each read / write (zero: none). A read that waits longer throws weft::Timeout — the basis
  /// of idle and slow-client timeouts.
  void set_timeouts(std::chrono::nanoseconds read, std::chrono::nanoseconds write) noexcept {
    read_timeout_ns_ = read.count();
    write_timeout_ns_ = write.count();
  }
  /// TCP_NODELAY (TCP only; set by connect() and Listener::accept() by default).
  void set_nodelay(bool on);
  Address local_address() const;
  Address peer_address() const;

 private:
  friend class WriteAll;
  std::int64_t deadline(std::int64_t timeout_ns) const noexcept {
    return timeout_ns > 0 ? fd_.core().now() + timeout_ns : 0;
  }
  Task<void> write_rest(const std::byte* p, std::size_t n);
  detail::FdHandle fd_;
  std::int64_t read_timeout_ns_ = 0;
  std::int64_t write_timeout_ns_ = 0;
};

/// Awaitable of Stream::write_all: tries the send at once and suspends only if the kernel did not take it all.
class Stream::WriteAll {
 public:
  WriteAll(Stream& s, std::span<const std::byte> d) noexcept : s_(&s), p_(d.data()), n_(d.size()) {}
  bool await_ready();
  template <class P>
  std::coroutine_handle<> await_suspend(std::coroutine_handle<P> h) {
    rest_.emplace(s_->write_rest(p_, n_));
    awaiter_.emplace(std::move(*rest_).operator co_await());
    return awaiter_->await_suspend(h);
  }
  void await_resume() {
    if (awaiter_) awaiter_->await_resume();
  }

 private:
  Stream* s_;
  const std::byte* p_;
  std::size_t n_;
  std::optional<Task<void>> rest_;
  std::optional<Task<void>::Awaiter> awaiter_;
};

struct ListenOptions {
  int backlog = 4096;
  bool reuse_address = true;  // SO_REUSEADDR (TCP)
  bool reuse_port = false;    // SO_REUSEPORT: several listeners (loops) on one port
};

/// A listening socket (TCP, or Unix-domain when bound to Address::unix_path — the path is unlinked first if it
/// is a stale socket, and on close).
class Listener {
 public:
  Listener() noexcept = default;
  /// Binds and listens. Port 0 picks a free port (see local_address()). Throws IoError (EADDRINUSE...).
  static Listener bind(const Address& at, ListenOptions options = {});

  class Accept;
  /// Waits for the next connection and returns it as a Stream (TCP_NODELAY set for TCP). Throws IoError on
  /// errors that concern the listener itself (EMFILE: out of descriptors — the caller decides whether to wait
  /// and retry), weft::Cancelled.
  Accept accept();

  Address local_address() const;
  void close() noexcept;
  bool is_open() const noexcept { return fd_.get() >= 0; }
  int native_handle() const noexcept { return fd_.get(); }
  ~Listener() { close(); }
  Listener(Listener&&) noexcept = default;
  Listener& operator=(Listener&&) noexcept;

 private:
  detail::FdHandle fd_;
  std::string unix_path_;
  bool tcp_ = true;
};

class Listener::Accept : public detail::OpAwaiter {
 public:
  Accept(Listener& l);
  Stream await_resume();

 private:
  bool tcp_;
};

/// A UDP socket.
class UdpSocket {
 public:
  UdpSocket() noexcept = default;
  /// A socket bound to `at` (port 0: any free port).
  static UdpSocket bind(const Address& at);

  class SendTo;
  class RecvFrom;
  /// Sends one datagram to `to` (waits while the send buffer is full). Returns the bytes sent. Throws IoError
  /// (EMSGSIZE for a datagram larger than the protocol allows).
  SendTo send_to(std::span<const std::byte> data, const Address& to);
  /// Receives one datagram into `buf` (a longer one is truncated: the returned size is the datagram's full
  /// size, larger than buf.size()) and the sender's address.
  RecvFrom recv_from(std::span<std::byte> buf);

  Address local_address() const;
  void close() noexcept { fd_.close(); }
  int native_handle() const noexcept { return fd_.get(); }

 private:
  detail::FdHandle fd_;
};

class UdpSocket::SendTo : public detail::OpAwaiter {
 public:
  SendTo(detail::LoopCore& core, int fd, std::span<const std::byte> data, const Address& to);
  /// Moves an awaiter not yet awaited (the message header is pointed at the new object's fields).
  SendTo(SendTo&& o) noexcept;
  std::size_t await_resume();

 private:
  Address to_;
  iovec iov_;
  msghdr msg_;
};

class UdpSocket::RecvFrom : public detail::OpAwaiter {
 public:
  RecvFrom(detail::LoopCore& core, int fd, std::span<std::byte> buf);
  /// Moves an awaiter not yet awaited (the message header is pointed at the new object's fields).
  RecvFrom(RecvFrom&& o) noexcept;
  std::pair<std::size_t, Address> await_resume();

 private:
  Address from_;
  iovec iov_;
  msghdr msg_;
};

// Aliases named for the transport; the types are shared.
using TcpStream = Stream;
using TcpListener = Listener;
using UnixStream = Stream;
using UnixListener = Listener;

}  // namespace weft::io
