#include "weft/core/detail/futex.hpp"

#include <linux/futex.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cerrno>
#include <climits>
#include <ctime>

namespace weft::detail {

static_assert(sizeof(std::atomic<std::uint32_t>) == sizeof(std::uint32_t) &&
                  std::atomic<std::uint32_t>::is_always_lock_free,
              "futex needs a plain 32-bit atomic word");

namespace {
bool wait_op(std::atomic<std::uint32_t>& word, std::uint32_t expected,
             const std::chrono::steady_clock::time_point* deadline, int op) noexcept {
  timespec ts{};
  timespec* tsp = nullptr;
  if (deadline != nullptr) {
    // FUTEX_WAIT_BITSET takes an absolute CLOCK_MONOTONIC time, which is what steady_clock reads on Linux.
    auto ns = std::chrono::duration_cast<std::chrono::nanoseconds>(deadline->time_since_epoch()).count();
    if (ns < 0) ns = 0;
    ts.tv_sec = static_cast<time_t>(ns / 1'000'000'000);
    ts.tv_nsec = static_cast<long>(ns % 1'000'000'000);
    tsp = &ts;
    if (std::chrono::steady_clock::now() >= *deadline) return false;
  }
  long rc = syscall(SYS_futex, reinterpret_cast<std::uint32_t*>(&word), op, expected,
                    tsp, nullptr, FUTEX_BITSET_MATCH_ANY);
  if (rc == -1 && errno == ETIMEDOUT) return false;
  return true;  // woken, value changed (EAGAIN) or interrupted (EINTR): the caller re-checks
}

}  // namespace

bool futex_wait(std::atomic<std::uint32_t>& word, std::uint32_t expected,
                const std::chrono::steady_clock::time_point* deadline) noexcept {
  return wait_op(word, expected, deadline, FUTEX_WAIT_BITSET_PRIVATE);
}

bool futex_wait_shared(std::atomic<std::uint32_t>& word, std::uint32_t expected,
                       const std::chrono::steady_clock::time_point* deadline) noexcept {
  return wait_op(word, expected, deadline, FUTEX_WAIT_BITSET);
}

void futex_wake(std::atomic<std::uint32_t>& word, int count) noexcept {
  syscall(SYS_futex, reinterpret_cast<std::uint32_t*>(&word), FUTEX_WAKE_PRIVATE, count, nullptr, nullptr, 0);
}

void futex_wake_shared(std::atomic<std::uint32_t>& word, int count) noexcept {
  syscall(SYS_futex, reinterpret_cast<std::uint32_t*>(&word), FUTEX_WAKE, count, nullptr, nullptr, 0);
}

}  // namespace weft::detail
