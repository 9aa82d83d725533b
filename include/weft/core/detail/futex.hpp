// weft/core/detail/futex.hpp — blocking on a 32-bit atomic word (Linux futex; private to the process, or
// shared between processes).
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>

namespace weft::detail {

/// Blocks while `word == expected`, until woken, until `deadline` (steady clock) passes, or spuriously.
/// Returns false only when the deadline passed. Callers re-check their condition in a loop.
bool futex_wait(std::atomic<std::uint32_t>& word, std::uint32_t expected,
                const std::chrono::steady_clock::time_point* deadline = nullptr) noexcept;

/// Wakes up to `count` threads blocked in futex_wait on `word`.
void futex_wake(std::atomic<std::uint32_t>& word, int count) noexcept;

/// As futex_wait/futex_wake, for a word in memory shared between processes (MAP_SHARED): the kernel keys
/// the wait on the page, not on this process's address, so waiters in other processes are found.
bool futex_wait_shared(std::atomic<std::uint32_t>& word, std::uint32_t expected,
                       const std::chrono::steady_clock::time_point* deadline = nullptr) noexcept;
void futex_wake_shared(std::atomic<std::uint32_t>& word, int count) noexcept;

/// One spin-loop pause (x86 `pause`, arm `yield`): lets a sibling hyper-thread run while spinning.
inline void cpu_relax() noexcept {
#if defined(__x86_64__) || defined(__i386__)
  __builtin_ia32_pause();
#elif defined(__aarch64__)
  asm volatile("yield" ::: "memory");
#endif
}

}  // namespace weft::detail
