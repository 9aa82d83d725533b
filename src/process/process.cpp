#include "weft/process/process.hpp"

#include <poll.h>
#include <signal.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <climits>

namespace weft::process {

namespace {
std::atomic<unsigned> g_process_counter{0};

int pidfd_signal(int pidfd, int sig) {
  return static_cast<int>(::syscall(SYS_pidfd_send_signal, pidfd, sig, nullptr, 0));
}
}  // namespace

void Process::name_default() {
  if (options_.name.empty()) options_.name = "Process-" + std::to_string(g_process_counter.fetch_add(1) + 1);
}

Process::Process(Process&& other) noexcept
    : options_(std::move(other.options_)), child_(other.child_), wait_status_(other.wait_status_) {
  other.child_ = {};
}

Process& Process::operator=(Process&& other) noexcept {
  if (this != &other) {
    close_fds();
    options_ = std::move(other.options_);
    child_ = other.child_;
    wait_status_ = other.wait_status_;
    other.child_ = {};
  }
  return *this;
}

Process::~Process() { close_fds(); }

void Process::close_fds() noexcept {
  if (child_.direct && !wait_status_ && child_.pidfd >= 0) {
    // A directly forked child is this process's to reap: reap it if it has ended (documented: an unjoined
    // one that is still running stays a zombie of this process once it ends).
    siginfo_t info{};
    ::waitid(static_cast<idtype_t>(P_PIDFD), static_cast<id_t>(child_.pidfd), &info, WEXITED | WNOHANG);
  }
  if (child_.pidfd >= 0) ::close(child_.pidfd);
  if (child_.status >= 0) ::close(child_.status);
  child_.pidfd = -1;
  child_.status = -1;
}

// Waits up to `timeout_ms` (-1: forever) for the status; true when it is known.
bool Process::poll_status(int timeout_ms) {
  if (wait_status_) return true;
  if (child_.pid == 0) throw weft::Error("weft: this Process object is empty (moved from)");
  const int fd = child_.direct ? child_.pidfd : child_.status;
  pollfd p{fd, POLLIN, 0};
  int rc;
  do {
    rc = ::poll(&p, 1, timeout_ms);
  } while (rc < 0 && errno == EINTR);
  if (rc < 0) throw_errno(errno, "poll for " + options_.name);
  if (rc == 0) return false;
  if (child_.direct) {
    siginfo_t info{};
    if (::waitid(static_cast<idtype_t>(P_PIDFD), static_cast<id_t>(child_.pidfd), &info, WEXITED) != 0) {
      throw_errno(errno, "waitid for " + options_.name);
    }
    // Rebuild a wait(2)-style status so exitcode()/signal() decode both kinds of child alike.
    wait_status_ = info.si_code == CLD_EXITED ? W_EXITCODE(info.si_status, 0) : info.si_status;  // a bare signal number reads as WIFSIGNALED
    return true;
  }
  int status = 0;
  ssize_t k;
  do {
    k = ::read(child_.status, &status, sizeof status);
  } while (k < 0 && errno == EINTR);
  if (k != static_cast<ssize_t>(sizeof status)) {
    throw weft::Error("weft: the fork server ended before " + options_.name + " (pid " + std::to_string(child_.pid) +
                      ") did; its exit status is unknown");
  }
  wait_status_ = status;
  return true;
}

bool Process::join(std::optional<std::chrono::nanoseconds> timeout) {
  if (!timeout) return poll_status(-1);
  const auto deadline = std::chrono::steady_clock::now() + *timeout;
  for (;;) {
    auto left = std::chrono::ceil<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now()).count();
    if (left < 0) left = 0;
    if (poll_status(static_cast<int>(std::min<long long>(left, INT_MAX)))) return true;
    if (std::chrono::steady_clock::now() >= deadline) return false;
  }
}

bool Process::is_alive() { return !poll_status(0); }

void Process::send_signal(int sig) {
  if (wait_status_) return;
  if (child_.pidfd < 0) throw weft::Error("weft: this Process object is empty (moved from)");
  if (pidfd_signal(child_.pidfd, sig) != 0 && errno != ESRCH) throw_errno(errno, "signal to " + options_.name);
}

void Process::terminate() { send_signal(SIGTERM); }
void Process::kill() { send_signal(SIGKILL); }

std::optional<int> Process::exitcode() {
  if (!poll_status(0)) return std::nullopt;
  const int s = *wait_status_;
  if (WIFSIGNALED(s)) return -WTERMSIG(s);
  return WEXITSTATUS(s);
}

int Process::signal() {
  if (!poll_status(0)) return 0;
  return WIFSIGNALED(*wait_status_) ? WTERMSIG(*wait_status_) : 0;
}

}  // namespace weft::process
