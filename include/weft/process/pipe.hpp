// weft/process/pipe.hpp — message pipes between processes (multiprocessing.Pipe and its Connection).
//
//   auto [parent, child] = weft::process::Pipe();          // duplex: both ends send and receive
//   weft::process::Process p(&worker, std::move(child));   // the child's end travels by descriptor
//   parent.send(std::vector<int>{1, 2, 3});
//   auto reply = parent.recv<std::string>(std::chrono::seconds(5));
//
// A Connection carries whole messages — serialized values (send/recv) or raw bytes (send_bytes/recv_bytes) —
// over a Unix stream socket (duplex) or a pipe (one-way: the first end receives, the second sends), framed
// as described in detail/framing.hpp. Every receive may have a timeout (weft::Timeout; nothing consumed).
//
// Errors: the other end closed → weft::ChannelClosed (from recv once everything sent before the close was
// received, and from send); a message above max_message → MessageTooLarge (a send sends nothing; a receive
// drops that message and the connection goes on); bytes that are not weft's framing → ProtocolError, and the
// connection refuses further receives (the stream cannot be trusted any more); a message that is not a T →
// SerializationError (the message is consumed).
//
// Thread safety: sends are serialised among themselves and receives among themselves (each under a lock of
// its own), so several threads may use one Connection; a send and a receive run concurrently. Move-only;
// the destructor closes the descriptor.
#pragma once

#include <chrono>
#include <cstddef>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <utility>

#include "weft/process/detail/fd_passing.hpp"
#include "weft/process/errors.hpp"
#include "weft/process/serialize.hpp"

namespace weft::process {

struct PipeOptions {
  bool duplex = true;                          ///< false: the first end only receives, the second only sends
  std::size_t max_message = std::size_t{64} << 20;  ///< bytes; larger messages are refused
};

class Connection {
 public:
  Connection() = default;
  Connection(Connection&& other) noexcept;
  Connection& operator=(Connection&& other) noexcept;
  Connection(const Connection&) = delete;
  Connection& operator=(const Connection&) = delete;
  ~Connection();

  /// Sends `v`. Waits while the other end's buffer is full, until `timeout` (Timeout: nothing was sent).
  /// Throws ChannelClosed, MessageTooLarge, SerializationError, std::logic_error on a receive-only end.
  template <class T>
  void send(const T& v, std::optional<std::chrono::nanoseconds> timeout = std::nullopt) {
    thread_local std::string buffer;
    buffer.clear();
    pack_into(buffer, v);
    send_frame(buffer, kValue, timeout);
  }

  /// Receives the next message as a T. Throws Timeout, ChannelClosed, SerializationError (also when the
  /// message was sent with send_bytes), MessageTooLarge, ProtocolError.
  template <class T>
  T recv(std::optional<std::chrono::nanoseconds> timeout = std::nullopt) {
    std::string payload;
    recv_frame(payload, timeout);
    return unpack<T>(payload);
  }

  /// Raw bytes.
  void send_bytes(std::string_view bytes, std::optional<std::chrono::nanoseconds> timeout = std::nullopt) {
    send_frame(bytes, kBytes, timeout);
  }
  std::string recv_bytes(std::optional<std::chrono::nanoseconds> timeout = std::nullopt) {
    std::string payload;
    recv_frame(payload, timeout);
    return payload;
  }

  /// True when a message (or the end of the stream) can be received without waiting; waits up to `timeout`
  /// (default: not at all). Throws std::logic_error on a send-only end.
  bool poll(std::chrono::nanoseconds timeout = std::chrono::nanoseconds(0));

  /// Closes this end; the other end's receives report ChannelClosed once they have drained. Idempotent.
  void close() noexcept;
  bool closed() const noexcept { return fd_ < 0; }
  bool readable() const noexcept { return readable_; }
  bool writable() const noexcept { return writable_; }
  std::size_t max_message() const noexcept { return max_message_; }
  int fd() const noexcept { return fd_; }

  /// Wraps an open descriptor (taking ownership). For the serialization adaptor and for descriptors made
  /// elsewhere (a socketpair, a pipe end).
  static Connection adopt(int fd, bool readable, bool writable, std::size_t max_message);

 private:
  static constexpr std::uint32_t kValue = 1;
  static constexpr std::uint32_t kBytes = 0;
  void send_frame(std::string_view payload, std::uint32_t flags, std::optional<std::chrono::nanoseconds> timeout);
  void recv_frame(std::string& payload, std::optional<std::chrono::nanoseconds> timeout);

  int fd_ = -1;
  bool readable_ = false;
  bool writable_ = false;
  bool broken_ = false;  // a ProtocolError was seen: receives refuse
  std::size_t max_message_ = 0;
  std::unique_ptr<std::mutex> send_mu_ = std::make_unique<std::mutex>();
  std::unique_ptr<std::mutex> recv_mu_ = std::make_unique<std::mutex>();
};

/// Makes a connected pair of ends (see PipeOptions). Throws std::system_error when descriptors run out.
std::pair<Connection, Connection> Pipe(PipeOptions options = {});

template <>
struct serializable<Connection> : std::true_type {};

namespace detail {
template <class T>
struct HandedOver;
/// A Connection moved into a Process argument is closed here once the child has its own copy.
template <>
struct HandedOver<Connection> {
  static void release(Connection& c) noexcept { c.close(); }
};
}  // namespace detail

}  // namespace weft::process

namespace msgpack {
MSGPACK_API_VERSION_NAMESPACE(MSGPACK_DEFAULT_API_NS) {
namespace adaptor {
template <>
struct pack<weft::process::Connection> {
  template <class Stream>
  packer<Stream>& operator()(packer<Stream>& o, const weft::process::Connection& c) const {
    o.pack_array(5);
    o.pack(std::string_view("weft.Connection"));
    o.pack(weft::process::detail::export_fd(c.fd(), "Connection"));
    o.pack(c.readable());
    o.pack(c.writable());
    o.pack(static_cast<std::uint64_t>(c.max_message()));
    return o;
  }
};
template <>
struct as<weft::process::Connection> {
  weft::process::Connection operator()(const msgpack::object& o) const {
    if (o.type != msgpack::type::ARRAY || o.via.array.size != 5 ||
        o.via.array.ptr[0].as<std::string>() != "weft.Connection") {
      throw msgpack::type_error();
    }
    const auto* a = o.via.array.ptr;
    int fd = weft::process::detail::import_fd(a[1].as<std::uint32_t>(), "Connection");
    return weft::process::Connection::adopt(fd, a[2].as<bool>(), a[3].as<bool>(),
                                            static_cast<std::size_t>(a[4].as<std::uint64_t>()));
  }
};
}  // namespace adaptor
}  // MSGPACK_API_VERSION_NAMESPACE(MSGPACK_DEFAULT_API_NS)
}  // namespace msgpack
