// weft/thread/thread.hpp — a named thread with cooperative stop, never silently detached.
#pragma once

#include <exception>
#include <functional>

#include "weft/core/function.hpp"
#include <memory>
#include <stop_token>
#include <string>
#include <thread>
#include <type_traits>
#include <utility>

namespace weft {

/// A std::jthread with a name and an exception channel.
///
/// - The name is set as the OS thread name (first 15 bytes, visible in top/gdb/perf) and is returned by
///   weft::this_thread::name() inside the thread.
/// - If the function's first parameter is a std::stop_token, it receives one; request_stop() asks the
///   function to return (cooperative: nothing is interrupted).
/// - An exception that escapes the function is kept and rethrown by join(). If the Thread is destroyed
///   without join() having collected it, it goes to the unhandled-exception handler (stderr by default):
///   an exception is never lost and never calls std::terminate.
/// - The destructor requests stop and joins. There is no detach().
///
/// Thread safety: like std::jthread — one owner; request_stop() may be called from any thread.
class Thread {
 public:
  Thread() noexcept = default;

  /// Starts `f(args...)` (or `f(stop_token, args...)`) on a new thread named `name`. The arguments are
  /// decay-copied. Throws std::system_error if the thread cannot be started.
  template <class F, class... Args>
  explicit Thread(std::string name, F&& f, Args&&... args) : ctx_(std::make_shared<Ctx>()) {
    ctx_->name = std::move(name);
    start(make_body(std::forward<F>(f), std::forward<Args>(args)...));
  }

  Thread(Thread&&) noexcept = default;
  /// Joins the current thread (as the destructor does), then takes over `other`.
  Thread& operator=(Thread&& other) noexcept;
  Thread(const Thread&) = delete;
  Thread& operator=(const Thread&) = delete;

  /// request_stop(), then join; an exception the function threw and nobody collected is reported.
  ~Thread();

  /// Waits for the function to return, then rethrows its exception if it threw one (once).
  /// Throws std::system_error when not joinable or when called from the thread itself.
  void join();

  bool joinable() const noexcept { return thread_.joinable(); }
  /// Asks the function to stop; true if this call made the request. Thread-safe.
  bool request_stop() noexcept { return thread_.request_stop(); }
  std::stop_token get_stop_token() const noexcept { return thread_.get_stop_token(); }
  std::thread::id get_id() const noexcept { return thread_.get_id(); }
  std::thread::native_handle_type native_handle() { return thread_.native_handle(); }
  /// The name given at construction (empty for a default-constructed Thread).
  const std::string& name() const noexcept;

 private:
  struct Ctx {
    std::string name;
    std::exception_ptr error;  // written by the thread before it ends; read after join
  };

  template <class F, class... Args>
  static auto make_body(F&& f, Args&&... args) {
    return [f = std::forward<F>(f), ... args = std::forward<Args>(args)](std::stop_token st) mutable {
      if constexpr (std::is_invocable_v<std::decay_t<F>, std::stop_token, std::decay_t<Args>...>) {
        std::invoke(std::move(f), std::move(st), std::move(args)...);
      } else {
        std::invoke(std::move(f), std::move(args)...);
      }
    };
  }

  void start(UniqueFunction<void(std::stop_token)> body);
  void finish() noexcept;

  std::shared_ptr<Ctx> ctx_;
  std::jthread thread_;
};

namespace this_thread {
/// The calling thread's weft name: set by weft::Thread and by executors for their workers ("pool-0", ...),
/// or by set_name(); empty otherwise.
const std::string& name() noexcept;
/// Names the calling thread (also the OS thread name, truncated to 15 bytes).
void set_name(std::string name);
}  // namespace this_thread

}  // namespace weft
