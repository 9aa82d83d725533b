// weft/process/fifo.hpp — named pipes (FIFOs): a path in the file system that unrelated processes open to
// exchange framed messages (the same framing as Pipe, detail/framing.hpp).
//
//   weft::process::Fifo fifo = weft::process::Fifo::create("/tmp/jobs.fifo");  // removed when `fifo` goes
//   // one process:                                             // another:
//   auto w = weft::process::open_writer(path, 1s);              auto r = weft::process::open_reader(path);
//   w.send(job);                                                auto job = r.recv<Job>(5s);
//
// Opening. Both ends are opened with O_NONBLOCK and stay non-blocking (sends and receives wait in poll(), which
// is what lets them honour timeouts).
//   - A reader opens at once, writer or not.
//   - A writer needs a reader (a FIFO has nowhere to keep bytes without one: open() fails with ENXIO), so
//     open_writer retries until one appears or its timeout passes (then weft::Timeout). The kernel has no
//     event for "a reader opened", so it backs off between tries: 1 ms, doubling up to 50 ms, never past the
//     deadline. A writer therefore connects up to 50 ms after the reader appears.
// End of stream. A reader waits for a first writer. Once a writer has had the FIFO open, a receive made while no
// writer has it open and nothing is left throws weft::ChannelClosed (a later writer may still connect; its
// messages are received as usual).
// Hazard: a frame is written atomically only when it fits in PIPE_BUF (4096 bytes), i.e. payloads up to 4080
// bytes. Larger messages from several writers at once can interleave and corrupt the stream (ProtocolError):
// give each FIFO one writer unless every message is small.
// Thread safety: a reader or writer object is used by one thread at a time.
#pragma once

#include <chrono>
#include <cstddef>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <utility>

#include "weft/process/errors.hpp"
#include "weft/process/serialize.hpp"

namespace weft::process {

/// The default bound on one FIFO message (either end refuses larger ones with MessageTooLarge).
inline constexpr std::size_t kFifoMaxMessage = std::size_t{64} << 20;

/// Owns a FIFO's path: created by create(), removed by the destructor unless keep() was called. Move-only.
class Fifo {
 public:
  /// mkfifo(path, mode). With exist_ok, an existing FIFO at `path` is accepted (and not owned: this object
  /// will not remove it). Throws std::system_error (EEXIST — also for a non-FIFO file even with exist_ok —,
  /// ENOENT for a missing directory, EACCES...).
  static Fifo create(std::string path, unsigned mode = 0600, bool exist_ok = false);
  /// Removes a FIFO's path (ENOENT is not an error). Open readers and writers keep working. Throws
  /// std::system_error.
  static void remove(const std::string& path);

  Fifo(Fifo&& o) noexcept : path_(std::move(o.path_)), owner_(std::exchange(o.owner_, false)) {}
  Fifo& operator=(Fifo&& o) noexcept;
  Fifo(const Fifo&) = delete;
  Fifo& operator=(const Fifo&) = delete;
  /// Removes the path if this object created it and keep() was not called (errors are ignored: a destructor
  /// cannot report them; call remove() to see them).
  ~Fifo();

  const std::string& path() const noexcept { return path_; }
  /// Leaves the path in place when this object is destroyed.
  void keep() noexcept { owner_ = false; }

 private:
  Fifo(std::string path, bool owner) : path_(std::move(path)), owner_(owner) {}
  std::string path_;
  bool owner_;
};

/// The reading end of a FIFO. Move-only; closes its descriptor on destruction.
class FifoReader {
 public:
  /// Opens `path` for reading without waiting for a writer. Messages above `max_message` bytes are skipped
  /// with MessageTooLarge. Throws std::system_error (ENOENT...), std::invalid_argument (max_message 0).
  static FifoReader open(const std::string& path, std::size_t max_message = kFifoMaxMessage);

  FifoReader(FifoReader&& o) noexcept : fd_(std::exchange(o.fd_, -1)), max_(o.max_) {}
  FifoReader& operator=(FifoReader&& o) noexcept;
  FifoReader(const FifoReader&) = delete;
  FifoReader& operator=(const FifoReader&) = delete;
  ~FifoReader() { close(); }

  /// The next message, decoded. Waits until `timeout` (none: forever) for it. Throws weft::Timeout (nothing
  /// came: nothing consumed), weft::ChannelClosed (every writer has gone and nothing is left, or close() was
  /// called), MessageTooLarge (that message was skipped; the next can be received), ProtocolError (the stream
  /// is corrupt, e.g. interleaved large messages), SerializationError, std::system_error.
  template <class T>
  T recv(std::optional<std::chrono::nanoseconds> timeout = std::nullopt) {
    return unpack<T>(recv_bytes(timeout));
  }
  /// The next message's bytes; as recv() without decoding.
  std::string recv_bytes(std::optional<std::chrono::nanoseconds> timeout = std::nullopt);

  /// Closes the descriptor (idempotent). Writers that send afterwards get ChannelClosed once no reader is left.
  void close() noexcept;
  /// The descriptor (-1 once closed), e.g. to wait on it in poll(). Still owned by this object.
  int fd() const noexcept { return fd_; }

 private:
  FifoReader(int fd, std::size_t max) : fd_(fd), max_(max) {}
  int fd_;
  std::size_t max_;
};

/// The writing end of a FIFO. Move-only; closes its descriptor on destruction.
class FifoWriter {
 public:
  /// Opens `path` for writing once a reader has it open, trying until `timeout` (see the file comment for the
  /// backoff). Throws weft::Timeout (no reader came), std::system_error (ENOENT: no such FIFO...),
  /// std::invalid_argument (max_message 0).
  static FifoWriter open(const std::string& path, std::chrono::nanoseconds timeout = std::chrono::seconds(10),
                         std::size_t max_message = kFifoMaxMessage);

  FifoWriter(FifoWriter&& o) noexcept : fd_(std::exchange(o.fd_, -1)), max_(o.max_) {}
  FifoWriter& operator=(FifoWriter&& o) noexcept;
  FifoWriter(const FifoWriter&) = delete;
  FifoWriter& operator=(const FifoWriter&) = delete;
  ~FifoWriter() { close(); }

  /// Sends a value (pack()ed). `timeout` bounds the wait for room before the first byte; a message that has
  /// started is finished however long the reader takes (detail/framing.hpp). Throws weft::ChannelClosed (no
  /// reader any more, or close() was called; no SIGPIPE), MessageTooLarge (nothing sent), weft::Timeout
  /// (nothing sent), SerializationError, std::system_error.
  template <class T>
  void send(const T& v, std::optional<std::chrono::nanoseconds> timeout = std::nullopt) {
    send_frame(pack(v), 1, timeout);
  }
  /// Sends raw bytes; as send().
  void send_bytes(std::string_view bytes, std::optional<std::chrono::nanoseconds> timeout = std::nullopt) {
    send_frame(bytes, 0, timeout);
  }
  void send_bytes(std::span<const std::byte> bytes, std::optional<std::chrono::nanoseconds> timeout = std::nullopt) {
    send_frame(std::string_view(reinterpret_cast<const char*>(bytes.data()), bytes.size()), 0, timeout);
  }

  /// Closes the descriptor (idempotent); the reader sees the end of the stream once no writer is left.
  void close() noexcept;
  /// The descriptor (-1 once closed). Still owned by this object.
  int fd() const noexcept { return fd_; }

 private:
  FifoWriter(int fd, std::size_t max) : fd_(fd), max_(max) {}
  void send_frame(std::string_view payload, std::uint32_t flags, std::optional<std::chrono::nanoseconds> timeout);
  int fd_;
  std::size_t max_;
};

/// FifoReader::open.
inline FifoReader open_reader(const std::string& path, std::size_t max_message = kFifoMaxMessage) {
  return FifoReader::open(path, max_message);
}
/// FifoWriter::open.
inline FifoWriter open_writer(const std::string& path, std::chrono::nanoseconds timeout = std::chrono::seconds(10),
                              std::size_t max_message = kFifoMaxMessage) {
  return FifoWriter::open(path, timeout, max_message);
}

}  // namespace weft::process
