// weft/core/errors.hpp — the error types every weft executor reports.
//
// All derive from weft::Error (a std::runtime_error), so `catch (const weft::Error&)` catches any of them.
// A task's own exception is never wrapped: it reaches Future::get() unchanged. These types are for what
// the machinery itself has to say (the task never ran, the wait gave up, the executor is gone, ...).
#pragma once

#include <stdexcept>
#include <string>

namespace weft {

/// Base of every error weft itself raises.
class Error : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

/// The task was cancelled before it started (Future::cancel, or shutdown(cancel_pending)).
class Cancelled : public Error {
 public:
  Cancelled() : Error("weft: the task was cancelled before it started") {}
  using Error::Error;
};

/// A wait with a deadline ran out (Future::get_for, as_completed with a timeout, a per-task time limit).
class Timeout : public Error {
 public:
  Timeout() : Error("weft: timed out") {}
  using Error::Error;
};

/// A bounded queue was full and the overflow policy is to reject.
class QueueFull : public Error {
 public:
  QueueFull() : Error("weft: the queue is full; the task was rejected") {}
  using Error::Error;
};

/// The executor cannot take or finish work: it was shut down, or a worker it depended on was lost.
class BrokenExecutor : public Error {
 public:
  BrokenExecutor() : Error("weft: the executor has been shut down") {}
  using Error::Error;
};

/// A Promise was destroyed without producing a value (its task was dropped, or its owner gave up).
class BrokenPromise : public Error {
 public:
  BrokenPromise() : Error("weft: the promise was destroyed before it produced a value") {}
  using Error::Error;
};

/// A Channel was closed: sending is no longer possible.
class ChannelClosed : public Error {
 public:
  ChannelClosed() : Error("weft: send on a closed channel") {}
  using Error::Error;
};

/// A Future was used without a shared state (default-constructed, moved from, or already consumed by get()),
/// or a Promise was satisfied twice.
class FutureError : public std::logic_error {
 public:
  using std::logic_error::logic_error;
};

/// A failure that happened on the other side of a process or host boundary. Only data crosses such a
/// boundary, so the original exception object cannot; this carries its type name, message and traceback.
class RemoteError : public Error {
 public:
  RemoteError(std::string type, std::string message, std::string traceback = {});

  /// The remote exception's type name, e.g. "std::out_of_range" or Python's "ValueError".
  const std::string& type() const noexcept { return type_; }
  /// The remote exception's message (what()).
  const std::string& message() const noexcept { return message_; }
  /// The remote traceback as text; empty when the remote side did not provide one.
  const std::string& traceback() const noexcept { return traceback_; }

 private:
  std::string type_;
  std::string message_;
  std::string traceback_;
};

}  // namespace weft

#include <exception>
#include <functional>
#include <string_view>

namespace weft {

/// Receives exceptions that have no future to go to: detached tasks (ThreadPool::post), done-callbacks,
/// a weft::Thread whose exception was never collected by join(). Called on the thread where it happened;
/// `context` says where (e.g. "ThreadPool 'io' post"). Must not throw.
using UnhandledExceptionHandler = std::function<void(std::exception_ptr error, std::string_view context)>;

/// Installs the process-wide handler and returns the previous one. Passing an empty function restores the
/// default, which writes "weft: unhandled exception in <context>: <what>" to stderr. Thread-safe.
UnhandledExceptionHandler set_unhandled_exception_handler(UnhandledExceptionHandler handler);

/// Hands `error` to the current handler. Thread-safe; never throws (a throwing handler is reported to stderr).
void report_unhandled_exception(std::exception_ptr error, std::string_view context) noexcept;

/// Describes an exception for logs: "what()" of a std::exception, or "unknown exception".
std::string describe_exception(const std::exception_ptr& error);

}  // namespace weft
