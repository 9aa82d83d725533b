// Signals as loop events. The handler is async-signal-safe: it sets the signal's bit in g_pending and writes
// to the watching set's eventfd (both lock-free); the set's wait() reads the eventfd through the loop and takes
// its bits with fetch_and. A signal that arrives between wait() calls stays pending in g_pending.
#include "weft/io/signal.hpp"

#include <sys/eventfd.h>
#include <unistd.h>

#include <atomic>
#include <csignal>
#include <cstring>
#include <mutex>
#include <string>

namespace weft::io {
namespace {

constexpr int kMaxSignal = 64;
std::atomic<std::uint64_t> g_pending{0};
std::atomic<int> g_fd[kMaxSignal];
struct sigaction g_previous[kMaxSignal];
std::mutex g_registry;  // guards installing/removing handlers (not touched by the handler)

void on_signal(int sig) {
  int saved = errno;
  g_pending.fetch_or(std::uint64_t{1} << sig, std::memory_order_acq_rel);
  int fd = g_fd[sig].load(std::memory_order_acquire);
  if (fd >= 0) {
    std::uint64_t one = 1;
    [[maybe_unused]] ssize_t n = ::write(fd, &one, sizeof one);
  }
  errno = saved;
}

}  // namespace

SignalSet::SignalSet(std::initializer_list<int> signals) {
  raw_fd_ = ::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
  if (raw_fd_ < 0) throw IoError(errno, "weft::io::SignalSet: eventfd");
  event_ = detail::FdHandle(raw_fd_);
  std::lock_guard lock(g_registry);
  for (int sig : signals) {
    if (sig <= 0 || sig >= kMaxSignal || sig == SIGKILL || sig == SIGSTOP)
      throw Error("weft::io::SignalSet: cannot watch signal " + std::to_string(sig));
    if ((mask_ & (std::uint64_t{1} << sig)) != 0) continue;
    int expected = -1;
    static std::once_flag init;
    std::call_once(init, [] {
      for (auto& f : g_fd) f.store(-1);
    });
    if (!g_fd[sig].compare_exchange_strong(expected, raw_fd_))
      throw Error("weft::io::SignalSet: signal " + std::to_string(sig) + " is already watched by another SignalSet");
    g_pending.fetch_and(~(std::uint64_t{1} << sig));
    struct sigaction sa{};
    sa.sa_handler = on_signal;
    sigemptyset(&sa.sa_mask);
    sa.sa_flags = SA_RESTART;
    if (::sigaction(sig, &sa, &g_previous[sig]) != 0) {
      g_fd[sig].store(-1);
      throw IoError(errno, "weft::io::SignalSet: sigaction(" + std::to_string(sig) + ")");
    }
    mask_ |= std::uint64_t{1} << sig;
  }
}

SignalSet::~SignalSet() {
  std::lock_guard lock(g_registry);
  for (int sig = 1; sig < kMaxSignal; ++sig) {
    if ((mask_ & (std::uint64_t{1} << sig)) == 0) continue;
    ::sigaction(sig, &g_previous[sig], nullptr);
    g_fd[sig].store(-1, std::memory_order_release);
  }
}

int SignalSet::poll() noexcept {
  pending_ |= g_pending.fetch_and(~mask_, std::memory_order_acq_rel) & mask_;
  if (pending_ == 0) return 0;
  int sig = __builtin_ctzll(pending_);
  pending_ &= pending_ - 1;
  return sig;
}

Task<int> SignalSet::wait() {
  for (;;) {
    if (int sig = poll(); sig != 0) co_return sig;
    std::uint64_t value = 0;
    detail::SocketAwaiter<std::size_t, &detail::bytes_or_throw> a(event_.core(), 0);
    a.op.kind = detail::OpKind::read;
    a.op.fd = event_.get();
    a.op.buf = &value;
    a.op.len = sizeof value;
    co_await a;
  }
}

}  // namespace weft::io
