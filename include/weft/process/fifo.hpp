// weft/process/fifo.hpp — named pipes (FIFOs): a path in the file system that unrelated processes open to
// exchange framed messages (the same framing as Pipe, detail/framing.hpp).
//
//   weft::process::Fifo fifo = weft::process::Fifo::create("/tmp/jobs.fifo");   // removed when `fifo` goes
//   // one process:                                          // another:
//   auto w = weft::process::FifoWriter::open(path, 1s);      auto r = weft::process::FifoReader::open(path);
//   w.send(job);                                             auto job = r.recv<Job>(5s);
//
// Opening: a reader opens at once; a writer needs a reader to exist (a FIFO has nowhere to put bytes
// otherwise), so FifoWriter::open retries until one appears or its timeout passes (then weft::Timeout), with a
// short pause between tries (there is no event for "a reader opened").
// Hazard: messages larger than PIPE_BUF (4096 bytes) - 16 from several writers at once can interleave; give
// each FIFO one writer unless its messages are small. Thread safety: one thread per reader or writer object.
#pragma once

#include <chrono>
#include <cstddef>
#include <optional>
#include <string>
#include <string_view>

#include "weft/process/errors.hpp"
#include "weft/process/serialize.hpp"

namespace weft::process {

/// Owns a FIFO's path: created by create(), removed by the destructor unless keep() was called. Move-only.
class Fifo {
 public:
  /// mkfifo(path, mode). Throws std::system_error (EEXIST unless exist_ok, ENOENT for a missing directory...).
  static Fifo create(std::string path, unsigned mode = 0600, bool exist_ok = false);
  /// Removes a FIFO's path (ENOENT is not an error). Throws std::system_error.
  static void remove(const std::string& path);

  Fifo(Fifo&& o) noexcept : path_(std::move(o.path_)), owner_(std::exchange(o.owner_, false)) {}
  Fifo& operator=(Fifo&&) = delete;
  Fifo(const Fifo&) = delete;
  ~Fifo();
  const std::string& path() const noexcept { return path_; }
  void keep() noexcept { owner_ = false; }

 private:
  Fifo(std::string path, bool owner) : path_(std::move(path)), owner_(owner) {}
  std::string path_;
  bool owner_;
};

/// The reading end of a FIFO. Move-only; closes on destruction.
class FifoReader {
 public:
  /// Opens `path` for reading (does not wait for a writer). Throws std::system_error.
  static FifoReader open(const std::string& path, std::size_t max_message = std::size_t{64} << 20);
  FifoReader(FifoReader&& o) noexcept : fd_(std::exchange(o.fd_, -1)), max_(o.max_) {}
  FifoReader& operator=(FifoReader&&) = delete;
  FifoReader(const FifoReader&) = delete;
  ~FifoReader();

  /// The next message. With a timeout, waits for a writer and its message until then (Timeout); without one,
  /// waits while a writer has the FIFO open and throws ChannelClosed when none has and nothing is left.
  /// Also throws MessageTooLarge (that message is skipped), ProtocolError, SerializationError.
  template <class T>
  T recv(std::optional<std::chrono::nanoseconds> timeout = std::nullopt) {
    return unpack<T>(recv_bytes(timeout));
  }
  std::string recv_bytes(std::optional<std::chrono::nanoseconds> timeout = std::nullopt);
  int fd() const noexcept { return fd_; }

 private:
  FifoReader(int fd, std::size_t max) : fd_(fd), max_(max) {}
  int fd_;
  std::size_t max_;
};

/// The writing end of a FIFO. Move-only; closes on destruction.
class FifoWriter {
 public:
  /// Opens `path` for writing once a reader has it open, waiting up to `timeout` (Timeout).
  /// Throws std::system_error (ENOENT: no such FIFO).
  static FifoWriter open(const std::string& path, std::chrono::nanoseconds timeout = std::chrono::seconds(10),
                         std::size_t max_message = std::size_t{64} << 20);
  FifoWriter(FifoWriter&& o) noexcept : fd_(std::exchange(o.fd_, -1)), max_(o.max_) {}
  FifoWriter& operator=(FifoWriter&&) = delete;
  FifoWriter(const FifoWriter&) = delete;
  ~FifoWriter();

  /// Sends a message. Throws ChannelClosed (no reader any more), MessageTooLarge, Timeout (the reader did
  /// not make room in time: nothing sent).
  template <class T>
  void send(const T& v, std::optional<std::chrono::nanoseconds> timeout = std::nullopt) {
    send_bytes(pack(v), timeout);
  }
  void send_bytes(std::string_view bytes, std::optional<std::chrono::nanoseconds> timeout = std::nullopt);
  int fd() const noexcept { return fd_; }

 private:
  FifoWriter(int fd, std::size_t max) : fd_(fd), max_(max) {}
  int fd_;
  std::size_t max_;
};

}  // namespace weft::process
