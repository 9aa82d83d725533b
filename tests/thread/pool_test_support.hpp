// Helpers shared by the ThreadPool tests: holding workers still with a latch, sanitizer-aware sizes, a
// capturing unhandled-exception handler.
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstddef>
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <latch>
#include <mutex>
#include <string>
#include <string_view>
#include <thread>
#include <utility>
#include <vector>

#include "weft/core/errors.hpp"
#include "weft/core/future.hpp"
#include "weft/thread/thread_pool.hpp"

namespace weft::test {

#if defined(__SANITIZE_THREAD__)
#define WEFT_TEST_TSAN 1
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define WEFT_TEST_TSAN 1
#endif
#endif
#if defined(WEFT_TEST_TSAN) || defined(__SANITIZE_ADDRESS__)
inline constexpr bool kSanitized = true;
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
inline constexpr bool kSanitized = true;
#else
inline constexpr bool kSanitized = false;
#endif
#else
inline constexpr bool kSanitized = false;
#endif

/// `normal` in plain builds, `sanitized` under ThreadSanitizer or AddressSanitizer (they run ~5-20× slower).
constexpr std::size_t scaled(std::size_t normal, std::size_t sanitized) noexcept {
  return kSanitized ? sanitized : normal;
}

/// A safety net for waits that must succeed: reaching it is a failure (Future::get_for throws Timeout).
inline constexpr std::chrono::seconds kSafetyNet{120};

/// Aborts the test binary with a message naming `what` unless destroyed within `limit`, so that a deadlock
/// (a producer or worker that is never woken) fails clearly instead of hanging. A safety net: nothing waits
/// on it, and it does not slow the test down.
class Watchdog {
 public:
  explicit Watchdog(std::string what, std::chrono::seconds limit = kSafetyNet)
      : thread_([this, what = std::move(what), limit] {
          std::unique_lock lock(mutex_);
          if (!cv_.wait_for(lock, limit, [this] { return done_; })) {
            std::fprintf(stderr, "watchdog: %s did not finish within %lld s (deadlock?)\n", what.c_str(),
                         static_cast<long long>(limit.count()));
            std::abort();
          }
        }) {}
  Watchdog(const Watchdog&) = delete;
  Watchdog& operator=(const Watchdog&) = delete;
  ~Watchdog() {
    {
      std::lock_guard lock(mutex_);
      done_ = true;
    }
    cv_.notify_one();
    thread_.join();
  }

 private:
  std::mutex mutex_;
  std::condition_variable cv_;
  bool done_ = false;
  std::thread thread_;  // last: starts after the members it uses
};

/// Occupies `workers` workers of a pool with tasks that wait on a std::latch (which, unlike a weft::Future,
/// does not make the worker help), until release() or destruction. The constructor returns once all of them
/// run, so whatever is submitted afterwards stays queued.
class Blocker {
 public:
  explicit Blocker(ThreadPool& pool, std::size_t workers = 1, TaskOptions options = {})
      : started_(static_cast<std::ptrdiff_t>(workers)) {
    done_.reserve(workers);
    for (std::size_t i = 0; i < workers; ++i) {
      done_.push_back(pool.submit(options, [this] {
        started_.count_down();
        gate_.wait();
      }));
    }
    started_.wait();
  }
  Blocker(const Blocker&) = delete;
  Blocker& operator=(const Blocker&) = delete;
  ~Blocker() {
    release();
    for (auto& f : done_) f.wait();
  }

  /// Lets the held tasks return. Idempotent.
  void release() {
    if (!released_.exchange(true)) gate_.count_down();
  }

 private:
  std::latch started_;
  std::latch gate_{1};
  std::atomic<bool> released_{false};
  std::vector<Future<void>> done_;
};

/// Installs an unhandled-exception handler that records (what, context) and counts down an optional latch;
/// restores the previous handler on destruction.
class CapturingHandler {
 public:
  struct Report {
    std::string what;
    std::string context;
  };

  explicit CapturingHandler(std::latch* each = nullptr)
      : each_(each),
        previous_(set_unhandled_exception_handler([this](std::exception_ptr e, std::string_view context) {
          {
            std::lock_guard lock(mutex_);
            reports_.push_back({describe_exception(e), std::string(context)});
          }
          if (each_ != nullptr) each_->count_down();
        })) {}
  CapturingHandler(const CapturingHandler&) = delete;
  CapturingHandler& operator=(const CapturingHandler&) = delete;
  ~CapturingHandler() { set_unhandled_exception_handler(std::move(previous_)); }

  std::vector<Report> reports() const {
    std::lock_guard lock(mutex_);
    return reports_;
  }

 private:
  std::latch* each_;
  mutable std::mutex mutex_;
  std::vector<Report> reports_;
  UnhandledExceptionHandler previous_;
};

}  // namespace weft::test
