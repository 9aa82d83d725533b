// Sockets on the loop: addresses, descriptor ownership, streams, listeners and datagrams.
#include "weft/io/socket.hpp"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/tcp.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "loop_core.hpp"

namespace weft::io {

IoError::IoError(int err, const std::string& what)
    : Error(what + ": " + std::strerror(err)), code_(err, std::system_category()) {}

namespace {

[[noreturn]] void throw_errno(int err, const char* what) { throw IoError(err, std::string("weft::io: ") + what); }

int make_socket(int family, int type) {
  int fd = ::socket(family, type | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) throw_errno(errno, "socket");
  return fd;
}

void set_int_option(int fd, int level, int name, int value, const char* what) {
  if (::setsockopt(fd, level, name, &value, sizeof value) != 0) throw_errno(errno, what);
}

}  // namespace

// ---- Address ----

Address::Address() noexcept : storage_{}, len_(0) {}

std::optional<Address> Address::try_ip(std::string_view literal, std::uint16_t port) {
  Address a;
  if (literal.size() >= 2 && literal.front() == '[' && literal.back() == ']')
    literal = literal.substr(1, literal.size() - 2);
  const std::string s(literal);  // inet_pton wants a terminated string
  auto* v4 = reinterpret_cast<sockaddr_in*>(&a.storage_);
  if (::inet_pton(AF_INET, s.c_str(), &v4->sin_addr) == 1) {
    v4->sin_family = AF_INET;
    v4->sin_port = htons(port);
    a.len_ = sizeof(sockaddr_in);
    return a;
  }
  a.storage_ = {};
  auto* v6 = reinterpret_cast<sockaddr_in6*>(&a.storage_);
  if (::inet_pton(AF_INET6, s.c_str(), &v6->sin6_addr) == 1) {
    v6->sin6_family = AF_INET6;
    v6->sin6_port = htons(port);
    a.len_ = sizeof(sockaddr_in6);
    return a;
  }
  return std::nullopt;
}

Address Address::ip(std::string_view literal, std::uint16_t port) {
  if (std::optional<Address> a = try_ip(literal, port)) return *a;
  throw Error("weft::io::Address::ip: not a numeric IPv4 or IPv6 address: '" + std::string(literal) + "'");
}

Address Address::loopback(std::uint16_t port) { return ip("127.0.0.1", port); }

Address Address::unix_path(std::string_view path) {
  Address a;
  auto* un = reinterpret_cast<sockaddr_un*>(&a.storage_);
  if (path.empty() || path.size() >= sizeof(un->sun_path))
    throw Error("weft::io::Address::unix_path: the path must have 1.." + std::to_string(sizeof(un->sun_path) - 1) +
                " bytes");
  un->sun_family = AF_UNIX;
  std::memcpy(un->sun_path, path.data(), path.size());
  if (path.front() == '@') un->sun_path[0] = '\0';  // abstract namespace
  a.len_ = static_cast<socklen_t>(offsetof(sockaddr_un, sun_path) + path.size() + (path.front() == '@' ? 0 : 1));
  return a;
}

Address Address::from_native(const sockaddr* sa, socklen_t len) {
  Address a;
  if (len > sizeof(a.storage_)) len = sizeof(a.storage_);
  std::memcpy(&a.storage_, sa, len);
  a.len_ = len;
  return a;
}

std::uint16_t Address::port() const noexcept {
  if (family() == AF_INET) return ntohs(reinterpret_cast<const sockaddr_in*>(&storage_)->sin_port);
  if (family() == AF_INET6) return ntohs(reinterpret_cast<const sockaddr_in6*>(&storage_)->sin6_port);
  return 0;
}

std::string Address::to_string() const {
  char buf[INET6_ADDRSTRLEN] = {};
  if (family() == AF_INET) {
    ::inet_ntop(AF_INET, &reinterpret_cast<const sockaddr_in*>(&storage_)->sin_addr, buf, sizeof buf);
    return std::string(buf) + ":" + std::to_string(port());
  }
  if (family() == AF_INET6) {
    ::inet_ntop(AF_INET6, &reinterpret_cast<const sockaddr_in6*>(&storage_)->sin6_addr, buf, sizeof buf);
    std::string out = "[";
    out.append(buf).append("]:").append(std::to_string(port()));
    return out;
  }
  if (family() == AF_UNIX) {
    const auto* un = reinterpret_cast<const sockaddr_un*>(&storage_);
    std::size_t n = len_ > offsetof(sockaddr_un, sun_path) ? len_ - offsetof(sockaddr_un, sun_path) : 0;
    if (n == 0) return "unix:";
    if (un->sun_path[0] == '\0') return "unix:@" + std::string(un->sun_path + 1, n - 1);
    return "unix:" + std::string(un->sun_path);
  }
  return "(unspecified)";
}

namespace {
Address local_of(int fd) {
  Address a;
  a.size_ref() = sizeof(sockaddr_storage);
  if (::getsockname(fd, a.native(), &a.size_ref()) != 0) throw_errno(errno, "getsockname");
  return a;
}
}  // namespace

// ---- descriptors and buffers ----

namespace detail {

FdHandle::FdHandle(int fd) : fd_(fd), core_(&current_core()) {
  try {
    core_->attach_fd(fd);
  } catch (...) {
    ::close(fd);
    fd_ = -1;
    throw;
  }
}

void FdHandle::close() noexcept {
  if (fd_ < 0) return;
  core_->detach_fd(fd_);
  ::close(fd_);
  fd_ = -1;
}

std::size_t bytes_or_throw(OpAwaiter&, std::int32_t r) {
  if (r < 0) throw_errno(-r, "socket I/O");
  return static_cast<std::size_t>(r);
}

Buffer buffer_or_throw(OpAwaiter& a, std::int32_t r) {
  IoOp& op = a.op;
  if (r <= 0) {
    if (op.buffer_id == kHeapBuffer && op.buf != nullptr) delete[] static_cast<char*>(op.buf);
    if (r < 0) throw_errno(-r, "read");
    return Buffer();
  }
  if (op.buffer_id == kHeapBuffer)
    return Buffer(std::unique_ptr<char[]>(static_cast<char*>(op.buf)), static_cast<std::size_t>(r));
  LoopCore& core = current_core();
  return Buffer(&core, op.buffer_id, core.buffer_data(op.buffer_id), static_cast<std::size_t>(r));
}

}  // namespace detail

void Buffer::reset() noexcept {
  if (core_ != nullptr) core_->release_buffer(id_);
  core_ = nullptr;
  heap_.reset();
  data_ = nullptr;
  size_ = 0;
}

// ---- Stream ----

Stream::Stream(int fd) : fd_(fd) {}

namespace {
void check_open(const detail::FdHandle& fd) {
  if (fd.get() < 0) throw IoError(EBADF, "weft::io: operation on a closed socket");
}
}  // namespace

Stream::ReadAwaiter Stream::read(std::span<std::byte> buf) {
  check_open(fd_);
  ReadAwaiter a(fd_.core(), deadline(read_timeout_ns_));
  a.op.kind = detail::OpKind::recv;
  a.op.fd = fd_.get();
  a.op.buf = buf.data();
  a.op.len = static_cast<std::uint32_t>(std::min<std::size_t>(buf.size(), 1u << 30));
  return a;
}

Stream::PooledReadAwaiter Stream::read_some() {
  check_open(fd_);
  PooledReadAwaiter a(fd_.core(), deadline(read_timeout_ns_));
  a.op.kind = detail::OpKind::recv_pooled;
  a.op.fd = fd_.get();
  a.op.buffer_id = detail::kHeapBuffer;
  a.op.buf = nullptr;
  return a;
}

Task<void> Stream::read_exact(std::span<std::byte> buf) {
  std::size_t got = 0;
  while (got < buf.size()) {
    std::size_t n = co_await read(buf.subspan(got));
    if (n == 0)
      throw EndOfStream("weft::io::Stream::read_exact: the stream ended after " + std::to_string(got) + " of " +
                        std::to_string(buf.size()) + " bytes");
    got += n;
  }
}

Stream::WriteAll Stream::write_all(std::span<const std::byte> data) { return WriteAll(*this, data); }
Stream::WriteAll Stream::write_all(std::string_view data) {
  return WriteAll(*this, std::span(reinterpret_cast<const std::byte*>(data.data()), data.size()));
}

bool Stream::WriteAll::await_ready() {
  check_open(s_->fd_);
  while (n_ > 0) {
    ssize_t k = ::send(s_->fd_.get(), p_, n_, MSG_DONTWAIT | MSG_NOSIGNAL);
    if (k < 0) {
      if (errno == EAGAIN || errno == EWOULDBLOCK) return false;
      if (errno == EINTR) continue;
      throw_errno(errno, "write");
    }
    p_ += k;
    n_ -= static_cast<std::size_t>(k);
  }
  return true;
}

Task<void> Stream::write_rest(const std::byte* p, std::size_t n) {
  while (n > 0) {
    check_open(fd_);
    detail::SocketAwaiter<std::size_t, &detail::bytes_or_throw> a(fd_.core(), deadline(write_timeout_ns_));
    a.op.kind = detail::OpKind::send;
    a.op.fd = fd_.get();
    a.op.buf = const_cast<std::byte*>(p);
    a.op.len = static_cast<std::uint32_t>(std::min<std::size_t>(n, 1u << 30));
    std::size_t k = co_await a;
    p += k;
    n -= k;
  }
}

void Stream::shutdown_write() {
  check_open(fd_);
  if (::shutdown(fd_.get(), SHUT_WR) != 0) throw_errno(errno, "shutdown");
}

void Stream::set_nodelay(bool on) {
  check_open(fd_);
  set_int_option(fd_.get(), IPPROTO_TCP, TCP_NODELAY, on ? 1 : 0, "setsockopt(TCP_NODELAY)");
}

Address Stream::local_address() const {
  check_open(fd_);
  return local_of(fd_.get());
}

Address Stream::peer_address() const {
  check_open(fd_);
  Address a;
  a.size_ref() = sizeof(sockaddr_storage);
  if (::getpeername(fd_.get(), a.native(), &a.size_ref()) != 0) throw_errno(errno, "getpeername");
  return a;
}

Task<Stream> Stream::connect(Address to, std::chrono::nanoseconds timeout) {
  detail::LoopCore& core = detail::current_core();
  Stream s(make_socket(to.family(), SOCK_STREAM));
  {
    detail::OpAwaiter a(core, timeout.count() > 0 ? core.now() + timeout.count() : 0);
    a.op.kind = detail::OpKind::connect;
    a.op.fd = s.fd_.get();
    a.op.addr = to.native();
    a.op.addrlen = to.size();
    std::int32_t r = co_await a;
    if (r < 0) throw IoError(-r, "weft::io: connect to " + to.to_string());
  }
  if (to.family() == AF_INET || to.family() == AF_INET6) s.set_nodelay(true);
  co_return s;
}

Task<Stream> Stream::connect(std::string host, std::uint16_t port, std::chrono::nanoseconds timeout) {
  std::vector<Address> addrs = co_await resolve(host, port);
  std::exception_ptr last;
  for (const Address& a : addrs) {
    try {
      co_return co_await connect(a, timeout);
    } catch (const IoError&) {
      last = std::current_exception();
    }
  }
  if (last) std::rethrow_exception(last);
  throw IoError(EHOSTUNREACH, "weft::io: connect: no address for " + host);
}

// ---- Listener ----

namespace {
// A socket file left by a process that is gone refuses connections: remove it so bind() can take the path.
// A file that is not a socket, or a socket someone listens on, is left alone (bind then fails: EADDRINUSE).
void remove_stale_socket(const Address& at) {
  const auto* un = reinterpret_cast<const sockaddr_un*>(at.native());
  struct stat st{};
  if (::stat(un->sun_path, &st) != 0 || !S_ISSOCK(st.st_mode)) return;
  int probe = ::socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (probe < 0) return;
  const bool stale = ::connect(probe, at.native(), at.size()) != 0 && errno == ECONNREFUSED;
  ::close(probe);
  if (stale) ::unlink(un->sun_path);
}
}  // namespace

Listener Listener::bind(const Address& at, ListenOptions options) {
  Listener l;
  int fd = make_socket(at.family(), SOCK_STREAM);
  l.tcp_ = at.family() != AF_UNIX;
  try {
    if (l.tcp_) {
      if (options.reuse_address) set_int_option(fd, SOL_SOCKET, SO_REUSEADDR, 1, "setsockopt(SO_REUSEADDR)");
      if (options.reuse_port) set_int_option(fd, SOL_SOCKET, SO_REUSEPORT, 1, "setsockopt(SO_REUSEPORT)");
    } else {
      const auto* un = reinterpret_cast<const sockaddr_un*>(at.native());
      if (un->sun_path[0] != '\0') remove_stale_socket(at);
    }
    if (::bind(fd, at.native(), at.size()) != 0) throw IoError(errno, "weft::io: bind to " + at.to_string());
    if (!l.tcp_) {
      const auto* un = reinterpret_cast<const sockaddr_un*>(at.native());
      if (un->sun_path[0] != '\0') l.unix_path_ = un->sun_path;  // ours to unlink on close, once bound
    }
    if (::listen(fd, options.backlog) != 0) throw_errno(errno, "listen");
  } catch (...) {
    ::close(fd);
    throw;
  }
  l.fd_ = detail::FdHandle(fd);
  return l;
}

Listener& Listener::operator=(Listener&& o) noexcept {
  if (this != &o) {
    close();
    fd_ = std::move(o.fd_);
    unix_path_ = std::move(o.unix_path_);
    tcp_ = o.tcp_;
  }
  return *this;
}

void Listener::close() noexcept {
  fd_.close();
  if (!unix_path_.empty()) {
    ::unlink(unix_path_.c_str());
    unix_path_.clear();
  }
}

Address Listener::local_address() const {
  check_open(fd_);
  return local_of(fd_.get());
}

Listener::Accept Listener::accept() {
  check_open(fd_);
  return Accept(*this);
}

Listener::Accept::Accept(Listener& l) : detail::OpAwaiter(l.fd_.core(), 0), tcp_(l.tcp_) {
  op.kind = detail::OpKind::accept;
  op.fd = l.fd_.get();
}

Stream Listener::Accept::await_resume() {
  std::int32_t r = OpAwaiter::await_resume();
  if (r < 0) throw_errno(-r, "accept");
  Stream s(r);
  if (tcp_) {
    int one = 1;
    ::setsockopt(r, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);  // best effort: never fails on a TCP socket
  }
  return s;
}

// ---- UDP ----

UdpSocket UdpSocket::bind(const Address& at) {
  UdpSocket u;
  int fd = make_socket(at.family(), SOCK_DGRAM);
  if (::bind(fd, at.native(), at.size()) != 0) {
    int err = errno;
    ::close(fd);
    throw IoError(err, "weft::io: bind to " + at.to_string());
  }
  u.fd_ = detail::FdHandle(fd);
  return u;
}

Address UdpSocket::local_address() const {
  check_open(fd_);
  return local_of(fd_.get());
}

UdpSocket::SendTo UdpSocket::send_to(std::span<const std::byte> data, const Address& to) {
  check_open(fd_);
  return SendTo(fd_.core(), fd_.get(), data, to);
}

UdpSocket::RecvFrom UdpSocket::recv_from(std::span<std::byte> buf) {
  check_open(fd_);
  return RecvFrom(fd_.core(), fd_.get(), buf);
}

UdpSocket::SendTo::SendTo(detail::LoopCore& core, int fd, std::span<const std::byte> data, const Address& to)
    : OpAwaiter(core, 0), to_(to), iov_{const_cast<std::byte*>(data.data()), data.size()}, msg_{} {
  msg_.msg_name = to_.native();
  msg_.msg_namelen = to_.size();
  msg_.msg_iov = &iov_;
  msg_.msg_iovlen = 1;
  op.kind = detail::OpKind::sendto;
  op.fd = fd;
  op.buf = &msg_;
}

UdpSocket::SendTo::SendTo(SendTo&& o) noexcept : OpAwaiter(std::move(o)), to_(o.to_), iov_(o.iov_), msg_{} {
  msg_.msg_name = to_.native();
  msg_.msg_namelen = to_.size();
  msg_.msg_iov = &iov_;
  msg_.msg_iovlen = 1;
  op.buf = &msg_;
}

std::size_t UdpSocket::SendTo::await_resume() {
  std::int32_t r = OpAwaiter::await_resume();
  if (r < 0) throw IoError(-r, "weft::io: send_to " + to_.to_string());
  return static_cast<std::size_t>(r);
}

UdpSocket::RecvFrom::RecvFrom(detail::LoopCore& core, int fd, std::span<std::byte> buf)
    : OpAwaiter(core, 0), iov_{buf.data(), buf.size()}, msg_{} {
  msg_.msg_name = from_.native();
  msg_.msg_namelen = sizeof(sockaddr_storage);
  msg_.msg_iov = &iov_;
  msg_.msg_iovlen = 1;
  op.kind = detail::OpKind::recvfrom;
  op.fd = fd;
  op.buf = &msg_;
}

UdpSocket::RecvFrom::RecvFrom(RecvFrom&& o) noexcept : OpAwaiter(std::move(o)), iov_(o.iov_), msg_{} {
  msg_.msg_name = from_.native();
  msg_.msg_namelen = sizeof(sockaddr_storage);
  msg_.msg_iov = &iov_;
  msg_.msg_iovlen = 1;
  op.buf = &msg_;
}

std::pair<std::size_t, Address> UdpSocket::RecvFrom::await_resume() {
  std::int32_t r = OpAwaiter::await_resume();
  if (r < 0) throw_errno(-r, "recv_from");
  from_.size_ref() = msg_.msg_namelen;
  std::size_t n = static_cast<std::size_t>(r);
  return {n, from_};
}

}  // namespace weft::io
