#pragma once
// io::SignalSet: POSIX signals (SIGINT, SIGTERM, SIGHUP, ...) as awaitable events on the loop
// (asyncio's loop.add_signal_handler).
//
// While a SignalSet exists, its signals no longer run their previous disposition (for SIGINT/SIGTERM: ending
// the process); they are recorded and `co_await set.wait()` returns them, one per call, in signal-number order
// when several are pending. The handler only sets a bit and writes to an eventfd (async-signal-safe), so
// signals may arrive on any thread of the process. The previous dispositions come back when the set is
// destroyed.
#include <cstdint>
#include <initializer_list>

#include "weft/io/detail/awaiters.hpp"
#include "weft/io/socket.hpp"
#include "weft/io/task.hpp"

namespace weft::io {

class SignalSet {
 public:
  /// Starts watching `signals` (1..63; SIGKILL/SIGSTOP cannot be caught). Throws weft::Error when a signal is
  /// invalid or already watched by another SignalSet (one set per signal at a time). Loop thread only.
  SignalSet(std::initializer_list<int> signals);
  ~SignalSet();
  SignalSet(const SignalSet&) = delete;
  SignalSet& operator=(const SignalSet&) = delete;

  /// Waits for the next signal of the set and returns its number. Cancellable (weft::Cancelled).
  Task<int> wait();

  /// A pending signal of the set without waiting, or 0.
  int poll() noexcept;

 private:
  std::uint64_t mask_ = 0;
  std::uint64_t pending_ = 0;
  detail::FdHandle event_;
  int raw_fd_ = -1;
};

}  // namespace weft::io
