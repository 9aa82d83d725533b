// weft/process/queue.hpp — a bounded multi-producer multi-consumer queue between processes
// (multiprocessing.Queue), in shared memory.
//
//   weft::process::Queue q;                           // 1 MiB of slots by default
//   weft::process::Process p(&producer, q);           // passed to the child by its descriptor
//   auto v = q.get<std::vector<int>>(std::chrono::seconds(1));
//
// Messages are serialized values (put/get) or raw bytes (put_bytes/get_bytes), kept in a ring in an anonymous
// shared-memory segment (memfd): a put is one copy into shared memory, a get one copy out; no pipe, no lock,
// no system call while neither side has to sleep. A side that must wait spins for about 50 µs, longer for large
// messages (up to 1 ms for a peer copying megabytes; waking a sleeping process on another CPU costs tens of
// µs), then sleeps on a futex until woken or its timeout. The
// protocol is in weft/process/detail/ring.hpp.
//
// Limits: the queue holds capacity_bytes of messages, counted in 64-byte slots (a message of L bytes takes
// max(1, ceil(L/64)) slots); put blocks while it is full (back-pressure) until its timeout, then throws
// Timeout. A message larger than max_message is refused with MessageTooLarge and nothing is put.
//
// Hazard: a process killed in the middle of a put or get (between two instructions of it) leaves the slot it
// was writing or reading stuck; operations that reach that slot later wait until their timeout. Kill
// processes that use a queue only when the queue is to be discarded (ProcessPool does not share one Queue
// between workers it may kill).
#pragma once

#include <chrono>
#include <cstddef>
#include <optional>
#include <string>
#include <string_view>

#include "weft/core/errors.hpp"
#include "weft/process/detail/fd_passing.hpp"
#include "weft/process/detail/ring.hpp"
#include "weft/process/errors.hpp"
#include "weft/process/serialize.hpp"

namespace weft::process {

struct QueueOptions {
  std::size_t capacity_bytes = std::size_t{1} << 20;  ///< rounded up to a power of two number of 64-byte slots
  std::size_t max_message = 0;                         ///< 0: capacity_bytes; at most capacity_bytes and 4 GiB - 1
};

/// A queue between processes. Thread-safe: any number of threads and processes may put and get at once.
/// Move-only; each copy that reaches another process (as a Process argument) maps the same segment.
class Queue {
 public:
  /// Makes an empty queue. Throws std::invalid_argument for a zero or oversized capacity, std::system_error
  /// when the shared memory cannot be had.
  Queue() : Queue(QueueOptions{}) {}
  explicit Queue(QueueOptions options);
  Queue(Queue&& other) noexcept;
  Queue& operator=(Queue&& other) noexcept;
  Queue(const Queue&) = delete;
  Queue& operator=(const Queue&) = delete;
  ~Queue();

  /// Puts `v`, waiting while the queue is full until `timeout` (none: forever). Throws Timeout when the
  /// timeout passed (nothing was put), ChannelClosed after close(), MessageTooLarge, SerializationError.
  template <class T>
  void put(const T& v, std::optional<std::chrono::nanoseconds> timeout = std::nullopt) {
    thread_local std::string buffer;
    buffer.clear();
    pack_into(buffer, v);
    put_bytes(buffer, timeout);
  }

  /// Takes the oldest message and decodes it as a T, waiting while empty until `timeout`. Throws Timeout,
  /// ChannelClosed (closed and empty), SerializationError (the message is not a T: it is consumed).
  template <class T>
  T get(std::optional<std::chrono::nanoseconds> timeout = std::nullopt) {
    thread_local std::string buffer;
    get_bytes_into(buffer, timeout);
    return unpack<T>(buffer);
  }

  /// Raw bytes, as put/get.
  void put_bytes(std::string_view bytes, std::optional<std::chrono::nanoseconds> timeout = std::nullopt);
  std::string get_bytes(std::optional<std::chrono::nanoseconds> timeout = std::nullopt);
  /// As get_bytes, into `out` (reusing its capacity: no allocation once it is large enough).
  void get_bytes_into(std::string& out, std::optional<std::chrono::nanoseconds> timeout = std::nullopt);

  /// Non-blocking forms. try_put_bytes returns false when full; try_get_bytes nullopt when empty.
  /// Both throw as above (ChannelClosed, MessageTooLarge).
  bool try_put_bytes(std::string_view bytes);
  std::optional<std::string> try_get_bytes();
  /// As try_get_bytes, into `out` (reusing its capacity); false when empty.
  bool try_get_bytes_into(std::string& out);

  /// Closes the queue for every process: puts throw ChannelClosed, gets drain what is left and then throw
  /// ChannelClosed; blocked callers wake. Idempotent.
  void close() noexcept;
  bool closed() const noexcept;

  std::size_t capacity_bytes() const noexcept;
  std::size_t max_message() const noexcept;
  /// True when no message is queued right now (approximate while others put or get).
  bool empty() const noexcept;

  /// The memfd descriptor of the segment (for passing it on; the Queue keeps ownership).
  int fd() const noexcept { return fd_; }
  /// Maps the queue whose segment descriptor is `fd`, taking ownership of it. Throws ProtocolError when the
  /// segment is not a queue, std::system_error when it cannot be mapped.
  static Queue adopt(int fd);

 private:
  struct Empty {};
  explicit Queue(Empty) noexcept {}
  void unmap() noexcept;

  int fd_ = -1;
  void* memory_ = nullptr;
  std::size_t bytes_ = 0;
  detail::Ring ring_;
};

template <>
struct serializable<Queue> : std::true_type {};

}  // namespace weft::process

namespace msgpack {
MSGPACK_API_VERSION_NAMESPACE(MSGPACK_DEFAULT_API_NS) {
namespace adaptor {
template <>
struct pack<weft::process::Queue> {
  template <class Stream>
  packer<Stream>& operator()(packer<Stream>& o, const weft::process::Queue& q) const {
    o.pack_array(2);
    o.pack(std::string_view("weft.Queue"));
    o.pack(weft::process::detail::export_fd(q.fd(), "Queue"));
    return o;
  }
};
// Decoded with `as` (no default-constructed Queue, which would map a segment only to drop it).
template <>
struct as<weft::process::Queue> {
  weft::process::Queue operator()(const msgpack::object& o) const {
    if (o.type != msgpack::type::ARRAY || o.via.array.size != 2 || o.via.array.ptr[0].as<std::string>() != "weft.Queue") {
      throw msgpack::type_error();
    }
    return weft::process::Queue::adopt(
        weft::process::detail::import_fd(o.via.array.ptr[1].as<std::uint32_t>(), "Queue"));
  }
};
}  // namespace adaptor
}  // MSGPACK_API_VERSION_NAMESPACE(MSGPACK_DEFAULT_API_NS)
}  // namespace msgpack
