// Shared by the io/ test files: a fixture run once per backend (io_uring and epoll), a runner that puts a
// safety net around every scenario, and small socket helpers (a loopback listener, a connected pair).
//
// Every test of io/ is a TEST_P of a fixture derived from BackendTest and instantiated with
// WEFT_IO_INSTANTIATE(Fixture): it runs as Backends/Fixture.Scenario/uring and .../epoll.
//
// Coroutine hazards the tests keep in mind:
//  - gtest's ASSERT_* and GTEST_SKIP `return`, which a coroutine cannot: coroutines use EXPECT_* only.
//  - A lambda coroutine reads its captures through the closure object. A task started later (spawned into a
//    group) must not be a capturing lambda temporary: such tasks are capture-less lambdas or functions that
//    take what they need as parameters (parameters are copied into the coroutine frame).
#pragma once

#include <dirent.h>
#include <linux/io_uring.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <algorithm>
#include <exception>
#include <initializer_list>
#include <optional>
#include <ostream>
#include <span>
#include <stdexcept>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "../thread/pool_test_support.hpp"
#include "weft/core/errors.hpp"
#include "weft/io/group.hpp"
#include "weft/io/loop.hpp"
#include "weft/io/socket.hpp"
#include "weft/io/task.hpp"
#include "weft/io/time.hpp"

namespace weft::io {
/// Test failure messages name the backend ("uring") instead of printing its bytes.
inline void PrintTo(Backend b, std::ostream* os) { *os << to_string(b); }
}  // namespace weft::io

namespace weft::test::iotest {

namespace io = weft::io;
using namespace std::chrono_literals;
using weft::test::scaled;
using weft::test::Watchdog;

/// The limit put around a whole scenario with io::wait_for: reaching it fails the test with weft::Timeout.
inline constexpr std::chrono::seconds kScenarioLimit{30};
/// Aborts the binary if a test is still running after this (a loop that ignores cancellation would make the
/// scenario limit itself hang).
inline constexpr std::chrono::seconds kWatchdogLimit{120};

/// An exception type of the tests' own, to check that exceptions pass through unchanged.
struct TestError : std::runtime_error {
  explicit TestError(int c) : std::runtime_error("test error " + std::to_string(c)), code(c) {}
  int code;
};

/// True when this kernel lets the process set up an io_uring (it can be disabled by sysctl or seccomp).
inline bool kernel_has_io_uring() {
  io_uring_params params;
  std::memset(&params, 0, sizeof params);
  long fd = ::syscall(__NR_io_uring_setup, 4, &params);
  if (fd < 0) return false;
  ::close(static_cast<int>(fd));
  return true;
}

/// The fixture of every io/ test: parameterized by the backend. A uring test is skipped (with a message) only
/// when the kernel itself refuses io_uring; otherwise a loop that cannot use it fails the test.
class BackendTest : public testing::TestWithParam<io::Backend> {
 protected:
  void SetUp() override {
    if (GetParam() == io::Backend::uring && !kernel_has_io_uring())
      GTEST_SKIP() << "io_uring is not available to this process (io_uring_setup failed); uring tests skipped";
  }

  /// `base` with the backend under test.
  io::LoopOptions options(io::LoopOptions base = {}) const {
    base.backend = GetParam();
    return base;
  }

  /// Asserts that `loop` really runs on the backend under test.
  void expect_backend(const io::Loop& loop) const {
    EXPECT_EQ(loop.backend(), GetParam()) << "asked for " << io::to_string(GetParam()) << ", got "
                                          << io::to_string(loop.backend());
  }

  /// Runs `task` on a new loop of the backend under test, inside io::wait_for(limit) so that a hang fails with
  /// weft::Timeout. Returns its value or rethrows its exception.
  template <class T>
  T run(io::Task<T> task, io::LoopOptions base = {}, std::chrono::seconds limit = kScenarioLimit) {
    io::Loop loop(options(base));
    expect_backend(loop);
    return loop.run(io::wait_for(std::move(task), limit));
  }

 private:
  Watchdog watchdog_{"an io test", kWatchdogLimit};
};

inline std::string backend_name(const testing::TestParamInfo<io::Backend>& info) {
  return std::string(io::to_string(info.param));
}

#define WEFT_IO_INSTANTIATE(Fixture)                                                                          \
  INSTANTIATE_TEST_SUITE_P(Backends, Fixture,                                                                 \
                           testing::Values(::weft::io::Backend::uring, ::weft::io::Backend::epoll),           \
                           ::weft::test::iotest::backend_name)

// ---- awaiting helpers ----

/// Turns any awaitable (a socket read, an accept...) into a Task of its result.
template <class A>
auto as_task(A a) -> io::Task<decltype(a.await_resume())> {
  co_return co_await std::move(a);
}

/// Runs `t` and returns the exception it ended with (null when it succeeded).
template <class T>
io::Task<std::exception_ptr> error_of(io::Task<T> t) {
  try {
    co_await std::move(t);
  } catch (...) {
    co_return std::current_exception();
  }
  co_return nullptr;
}

/// Checks that `e` holds an exception of type E.
template <class E>
testing::AssertionResult is_error(const std::exception_ptr& e) {
  if (!e) return testing::AssertionFailure() << "no exception was thrown";
  try {
    std::rethrow_exception(e);
  } catch (const E&) {
    return testing::AssertionSuccess();
  } catch (...) {
    return testing::AssertionFailure() << "another exception was thrown: " << describe_exception(e);
  }
}

/// Checks that `e` is an io::IoError carrying one of the `codes`.
inline testing::AssertionResult is_io_error(const std::exception_ptr& e, std::initializer_list<int> codes) {
  if (!e) return testing::AssertionFailure() << "no exception was thrown";
  try {
    std::rethrow_exception(e);
  } catch (const io::IoError& err) {
    for (int c : codes)
      if (err.code().value() == c) return testing::AssertionSuccess();
    return testing::AssertionFailure() << "IoError with errno " << err.code().value() << ": " << err.what();
  } catch (...) {
    return testing::AssertionFailure() << "not an IoError: " << describe_exception(e);
  }
}

/// Yields to the loop (sleep(0)) until `pred()` holds, at most `max_turns` times; returns pred(). For waiting
/// until other tasks have reached their first await (they do within a turn or two).
template <class Pred>
io::Task<bool> yield_until(Pred pred, int max_turns = 1000) {
  for (int i = 0; i < max_turns && !pred(); ++i) co_await io::sleep(0ms);
  co_return pred();
}

// ---- sockets ----

struct StreamPair {
  io::Stream client;
  io::Stream server;
};

/// A listener on 127.0.0.1 with a free port.
inline io::Listener loopback_listener(io::ListenOptions options = {}) {
  return io::Listener::bind(io::Address::loopback(0), options);
}

/// A connected TCP pair over loopback.
inline io::Task<StreamPair> tcp_pair() {
  io::Listener listener = loopback_listener();
  io::Stream client = co_await io::Stream::connect(listener.local_address());
  io::Stream server = co_await listener.accept();
  co_return StreamPair{std::move(client), std::move(server)};
}

/// A connected pair over a listener bound at `at` (Unix-domain or TCP).
inline io::Task<StreamPair> pair_at(io::Address at) {
  io::Listener listener = io::Listener::bind(at);
  io::Stream client = co_await io::Stream::connect(listener.local_address());
  io::Stream server = co_await listener.accept();
  co_return StreamPair{std::move(client), std::move(server)};
}

/// Sets SO_SNDBUF and SO_RCVBUF (the kernel doubles them and applies its minimum).
inline void set_socket_buffers(int fd, int bytes) {
  ::setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &bytes, sizeof bytes);
  ::setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &bytes, sizeof bytes);
}

/// Makes the next close() of `fd` send a reset (RST) instead of a FIN.
inline void set_linger_zero(int fd) {
  linger l{1, 0};
  ::setsockopt(fd, SOL_SOCKET, SO_LINGER, &l, sizeof l);
}

inline std::span<const std::byte> bytes_of(std::string_view s) {
  return {reinterpret_cast<const std::byte*>(s.data()), s.size()};
}

/// Reads until `n` bytes or the end of the stream; returns what was read.
inline io::Task<std::string> read_up_to(io::Stream& s, std::size_t n) {
  std::string out;
  char buf[4096];
  while (out.size() < n) {
    std::size_t got = co_await s.read(buf, std::min(sizeof buf, n - out.size()));
    if (got == 0) break;
    out.append(buf, got);
  }
  co_return out;
}

/// Reads until the end of the stream (bounded by `limit` bytes).
inline io::Task<std::string> read_to_end(io::Stream& s, std::size_t limit = 1 << 20) {
  co_return co_await read_up_to(s, limit);
}

// ---- process state ----

/// Open descriptors of this process (entries of /proc/self/fd, not counting the directory's own).
inline int open_fd_count() {
  DIR* d = ::opendir("/proc/self/fd");
  if (d == nullptr) return -1;
  int n = 0;
  while (dirent* e = ::readdir(d)) {
    if (e->d_name[0] != '.') ++n;
  }
  ::closedir(d);
  return n - 1;
}

/// Sets the environment variable `name` for the scope and restores the previous value (or absence) after.
class ScopedEnv {
 public:
  ScopedEnv(const char* name, const char* value) : name_(name) {
    if (const char* old = std::getenv(name)) old_ = old;
    ::setenv(name, value, 1);
  }
  ScopedEnv(const ScopedEnv&) = delete;
  ScopedEnv& operator=(const ScopedEnv&) = delete;
  ~ScopedEnv() {
    if (old_) ::setenv(name_.c_str(), old_->c_str(), 1);
    else ::unsetenv(name_.c_str());
  }

 private:
  std::string name_;
  std::optional<std::string> old_;
};

/// Raises RLIMIT_NOFILE's soft limit to at least `need` for the scope. ok() is false when the hard limit is
/// lower (the caller skips).
class ScopedFdLimit {
 public:
  explicit ScopedFdLimit(rlim_t need) {
    ::getrlimit(RLIMIT_NOFILE, &old_);
    if (old_.rlim_cur >= need) {
      ok_ = true;
      return;
    }
    if (old_.rlim_max != RLIM_INFINITY && old_.rlim_max < need) return;
    rlimit raised = old_;
    raised.rlim_cur = need;
    ok_ = ::setrlimit(RLIMIT_NOFILE, &raised) == 0;
    changed_ = ok_;
  }
  ScopedFdLimit(const ScopedFdLimit&) = delete;
  ScopedFdLimit& operator=(const ScopedFdLimit&) = delete;
  ~ScopedFdLimit() {
    if (changed_) ::setrlimit(RLIMIT_NOFILE, &old_);
  }
  bool ok() const noexcept { return ok_; }
  rlim_t hard() const noexcept { return old_.rlim_max; }

 private:
  rlimit old_{};
  bool ok_ = false;
  bool changed_ = false;
};

/// FNV-1a over bytes, to compare large transfers.
inline std::uint64_t fnv1a(const void* data, std::size_t n, std::uint64_t h = 1469598103934665603ull) {
  const auto* p = static_cast<const unsigned char*>(data);
  for (std::size_t i = 0; i < n; ++i) h = (h ^ p[i]) * 1099511628211ull;
  return h;
}

}  // namespace weft::test::iotest
