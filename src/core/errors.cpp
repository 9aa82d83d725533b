#include "weft/core/errors.hpp"

#include <cstdio>
#include <mutex>
#include <typeinfo>
#include <utility>

namespace weft {

RemoteError::RemoteError(std::string type, std::string message, std::string traceback)
    : Error(type + ": " + message),
      type_(std::move(type)),
      message_(std::move(message)),
      traceback_(std::move(traceback)) {}

namespace {

std::mutex handler_mutex;
UnhandledExceptionHandler& handler_slot() {
  static UnhandledExceptionHandler handler;
  return handler;
}

void default_handler(const std::exception_ptr& error, std::string_view context) {
  const std::string what = describe_exception(error);
  std::fprintf(stderr, "weft: unhandled exception in %.*s: %s\n", static_cast<int>(context.size()),
               context.data(), what.c_str());
}

}  // namespace

std::string describe_exception(const std::exception_ptr& error) {
  if (!error) return "no exception";
  try {
    std::rethrow_exception(error);
  } catch (const std::exception& e) {
    return e.what();
  } catch (...) {
    return "unknown exception (not derived from std::exception)";
  }
}

UnhandledExceptionHandler set_unhandled_exception_handler(UnhandledExceptionHandler handler) {
  std::lock_guard lock(handler_mutex);
  return std::exchange(handler_slot(), std::move(handler));
}

void report_unhandled_exception(std::exception_ptr error, std::string_view context) noexcept {
  UnhandledExceptionHandler handler;
  try {
    {
      std::lock_guard lock(handler_mutex);
      handler = handler_slot();
    }
    if (handler) {
      handler(error, context);
    } else {
      default_handler(error, context);
    }
  } catch (...) {
    std::fprintf(stderr, "weft: the unhandled-exception handler threw while reporting an error in %.*s\n",
                 static_cast<int>(context.size()), context.data());
  }
}

}  // namespace weft
