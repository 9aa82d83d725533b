// weft/process/errors.hpp — what the process module reports besides the core errors (Timeout, ChannelClosed,
// BrokenExecutor, ...).
#pragma once

#include <cstddef>
#include <string>
#include <system_error>

#include "weft/core/errors.hpp"

namespace weft::process {

/// A value could not be serialized or deserialized (a type mismatch, a truncated or corrupt buffer, a
/// handle that cannot travel this way). The message says which.
class SerializationError : public weft::Error {
 public:
  using weft::Error::Error;
};

/// A message larger than the limit of the channel it was sent on (or announced as larger by its header).
/// The channel stays usable: a refused send sends nothing, a refused receive has skipped the message.
class MessageTooLarge : public weft::Error {
 public:
  MessageTooLarge(std::size_t size, std::size_t limit);
  std::size_t size() const noexcept { return size_; }
  std::size_t limit() const noexcept { return limit_; }

 private:
  std::size_t size_;
  std::size_t limit_;
};

/// The bytes on a channel are not weft's framing (wrong magic, impossible length): the stream cannot be
/// resynchronised, so the channel is closed for further receives.
class ProtocolError : public weft::Error {
 public:
  using weft::Error::Error;
};

/// A worker process died (killed by a signal, or exited) while it held a task. Only the futures of the
/// tasks it held fail with this error; the pool replaces the worker and goes on.
class WorkerLost : public weft::Error {
 public:
  /// `signal` is the signal that ended the worker (0 if it exited), `exit_code` its exit status otherwise.
  WorkerLost(int pid, int signal, int exit_code);
  int pid() const noexcept { return pid_; }
  int signal() const noexcept { return signal_; }
  int exit_code() const noexcept { return exit_code_; }

 private:
  int pid_;
  int signal_;
  int exit_code_;
};

/// Throws std::system_error for `errno_value` with "weft: <what>" as its message.
[[noreturn]] void throw_errno(int errno_value, const std::string& what);

}  // namespace weft::process
