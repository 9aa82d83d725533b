// The fork server: one single-threaded process, forked from the program before it has threads, that forks
// every child a Process asks for. See weft/process/process.hpp for why.
//
// Protocol (the program's side holds `g_server.sock`; one request at a time, under `g_server.mu`):
//  1. The program sends a SPAWN request on a SOCK_STREAM Unix socket: a 16-byte header {magic, op, payload
//     length} whose first byte carries the descriptors to pass (SCM_RIGHTS), then the payload: the msgpack
//     array [trampoline, function, arguments, daemon, name].
//  2. The server checks the trampoline against its registry, makes a status pipe, forks. The child closes
//     the server's descriptors (socket, signalfd, the status pipes of its siblings), takes its argument
//     descriptors, and runs the trampoline; then _exit.
//  3. The server replies {magic, errno, pid} with two descriptors: a pidfd of the child (signals without a
//     pid-reuse race) and the read end of its status pipe.
//  4. SIGCHLD (through a signalfd) makes the server reap every ended child with waitpid(WNOHANG) and write
//     its 4-byte wait status into that child's status pipe, then close it: the program's join() polls the
//     read end. So children are reaped at once, whether or not the program ever joins them.
//  5. EOF on the socket (the program exited or died), or the server's own parent-death signal, ends the
//     server: it SIGKILLs its daemon children and exits. Non-daemon children run on (re-parented to init).
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/pidfd.h>
#include <sys/prctl.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <dirent.h>
#include <dlfcn.h>
#include <exception>
#include <map>
#include <mutex>
#include <set>
#include <string>
#include <vector>

#include "weft/process/process.hpp"

namespace weft::process {
namespace detail {
namespace {

constexpr std::uint32_t kMagic = 0x57465353;  // "WFSS"
constexpr std::uint32_t kOpSpawn = 1;
constexpr std::size_t kMaxFds = 250;                       // SCM_MAX_FD is 253
constexpr std::uint64_t kMaxPayload = std::uint64_t{1} << 30;  // arguments of one Process: 1 GiB

struct Header {
  std::uint32_t magic;
  std::uint32_t op;
  std::uint64_t length;
};
struct Reply {
  std::uint32_t magic;
  std::int32_t error;
  std::int32_t pid;
  std::int32_t pad;
};

struct Server {
  std::mutex mu;
  int sock = -1;
  std::atomic<int> pid{0};
};
Server g_server;

std::mutex& trampoline_mu() {
  static std::mutex m;
  return m;
}
std::set<Trampoline>& trampolines() {
  static std::set<Trampoline> s;
  return s;
}

// Sends all of `data`, with `fds` attached to the first byte. Returns 0 or an errno.
int send_all(int fd, const char* data, std::size_t n, const std::vector<int>& fds) {
  bool first = true;
  while (n > 0) {
    iovec iov{const_cast<char*>(data), n};
    msghdr msg{};
    msg.msg_iov = &iov;
    msg.msg_iovlen = 1;
    std::vector<char> control;
    if (first && !fds.empty()) {
      control.assign(CMSG_SPACE(sizeof(int) * fds.size()), 0);
      msg.msg_control = control.data();
      msg.msg_controllen = control.size();
      cmsghdr* c = CMSG_FIRSTHDR(&msg);
      c->cmsg_level = SOL_SOCKET;
      c->cmsg_type = SCM_RIGHTS;
      c->cmsg_len = CMSG_LEN(sizeof(int) * fds.size());
      std::memcpy(CMSG_DATA(c), fds.data(), sizeof(int) * fds.size());
    }
    ssize_t k = ::sendmsg(fd, &msg, MSG_NOSIGNAL);
    if (k < 0) {
      if (errno == EINTR) continue;
      return errno;
    }
    first = false;
    data += k;
    n -= static_cast<std::size_t>(k);
  }
  return 0;
}

// Receives exactly `n` bytes; descriptors that arrive are appended to `fds` (with O_CLOEXEC).
// Returns 0, an errno, or -1 for EOF.
int recv_all(int fd, char* data, std::size_t n, std::vector<int>* fds) {
  while (n > 0) {
    iovec iov{data, n};
    msghdr msg{};
    msg.msg_iov = &iov;
    msg.msg_iovlen = 1;
    alignas(cmsghdr) char control[CMSG_SPACE(sizeof(int) * 253)];
    if (fds != nullptr) {
      msg.msg_control = control;
      msg.msg_controllen = sizeof(control);
    }
    ssize_t k = ::recvmsg(fd, &msg, MSG_CMSG_CLOEXEC);
    if (k < 0) {
      if (errno == EINTR) continue;
      return errno;
    }
    if (k == 0) return -1;
    if (fds != nullptr) {
      for (cmsghdr* c = CMSG_FIRSTHDR(&msg); c != nullptr; c = CMSG_NXTHDR(&msg, c)) {
        if (c->cmsg_level == SOL_SOCKET && c->cmsg_type == SCM_RIGHTS) {
          std::size_t count = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
          const auto* p = reinterpret_cast<const int*>(CMSG_DATA(c));
          for (std::size_t i = 0; i < count; ++i) fds->push_back(p[i]);
        }
      }
    }
    data += k;
    n -= static_cast<std::size_t>(k);
  }
  return 0;
}

void close_all(std::vector<int>& fds) noexcept {
  for (int fd : fds) {
    if (fd >= 0) ::close(fd);
  }
  fds.clear();
}

// ---- the server process -------------------------------------------------------------------------------

struct Child {
  int status_fd;  // write end of its status pipe
  bool daemon;
};

[[noreturn]] void run_child(Trampoline t, void* fn, std::string_view args, std::vector<int>& fds,
                            const std::string& name) {
  int code = 0;
  try {
    FdImport scope(fds);
    Dl_info info{};
    if (::dladdr(fn, &info) == 0) {
      throw weft::Error("weft: the function of " + name +
                        " is not in this process image (was its library loaded after the fork server started?)");
    }
    t(fn, args);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "weft: %s (pid %d) raised %s: %s\n", name.c_str(), static_cast<int>(::getpid()),
                 type_name(typeid(e)).c_str(), e.what());
    code = 1;
  } catch (...) {
    std::fprintf(stderr, "weft: %s (pid %d) raised an exception that is not a std::exception\n", name.c_str(),
                 static_cast<int>(::getpid()));
    code = 1;
  }
  std::fflush(nullptr);
  ::_exit(code);
}

void reap(std::map<int, Child>& children) {
  for (;;) {
    int status = 0;
    pid_t pid = ::waitpid(-1, &status, WNOHANG);
    if (pid <= 0) return;
    auto it = children.find(pid);
    if (it == children.end()) continue;
    // The pipe was empty (one write per child) and 4 bytes < PIPE_BUF: the write cannot block or split.
    [[maybe_unused]] ssize_t k = ::write(it->second.status_fd, &status, sizeof status);
    ::close(it->second.status_fd);
    children.erase(it);
  }
}

void reply(int sock, int error, int pid, const std::vector<int>& fds) {
  Reply r{kMagic, error, pid, 0};
  (void)send_all(sock, reinterpret_cast<const char*>(&r), sizeof r, fds);
}

void handle_spawn(int sock, int sigfd, std::map<int, Child>& children, std::string& payload, std::vector<int>& fds) {
  Trampoline t = nullptr;
  void* fn = nullptr;
  std::string args;
  bool daemon = false;
  std::string name;
  try {
    auto [tr, f, a, d, n] = unpack<std::tuple<std::uint64_t, std::uint64_t, std::string, bool, std::string>>(payload);
    t = reinterpret_cast<Trampoline>(tr);
    fn = reinterpret_cast<void*>(f);
    args = std::move(a);
    daemon = d;
    name = std::move(n);
  } catch (const std::exception&) {
    close_all(fds);
    reply(sock, EPROTO, 0, {});
    return;
  }
  {
    std::lock_guard lock(trampoline_mu());
    if (trampolines().count(t) == 0) {
      close_all(fds);
      reply(sock, ENOEXEC, 0, {});
      return;
    }
  }
  int status_pipe[2];
  if (::pipe2(status_pipe, O_CLOEXEC) != 0) {
    int e = errno;
    close_all(fds);
    reply(sock, e, 0, {});
    return;
  }
  std::fflush(nullptr);
  const pid_t server = ::getpid();
  pid_t pid = ::fork();
  if (pid < 0) {
    int e = errno;
    ::close(status_pipe[0]);
    ::close(status_pipe[1]);
    close_all(fds);
    reply(sock, e, 0, {});
    return;
  }
  if (pid == 0) {
    ::close(sock);
    ::close(sigfd);
    ::close(status_pipe[0]);
    ::close(status_pipe[1]);
    for (auto& [p, c] : children) ::close(c.status_fd);
    sigset_t all;
    sigemptyset(&all);
    ::sigprocmask(SIG_SETMASK, &all, nullptr);
    ::signal(SIGCHLD, SIG_DFL);
    // A daemon dies with the server, which dies with the program. The server may have died already, before
    // the death signal was asked for: then the parent is no longer the server, and the daemon ends now.
    if (daemon) {
      ::prctl(PR_SET_PDEATHSIG, SIGKILL);
      if (::getppid() != server) ::_exit(0);
    }
    run_child(t, fn, args, fds, name);
  }
  close_all(fds);
  int pidfd = static_cast<int>(::syscall(SYS_pidfd_open, pid, 0));
  children[pid] = Child{status_pipe[1], daemon};
  std::vector<int> out;
  if (pidfd >= 0) out.push_back(pidfd);
  out.push_back(status_pipe[0]);
  reply(sock, pidfd >= 0 ? 0 : errno, pid, out);
  if (pidfd >= 0) ::close(pidfd);
  ::close(status_pipe[0]);
}

[[noreturn]] void serve(int sock) {
  sigset_t chld;
  sigemptyset(&chld);
  sigaddset(&chld, SIGCHLD);
  // Ctrl-C, and a service manager's SIGTERM, reach every process of the group: the program decides what they
  // mean (a warm shutdown may still need children), and the server ends when the program does (EOF on sock).
  // Blocked rather than ignored: a child gets an empty mask and the program's dispositions, so a SIGTERM sent
  // to it before it unblocked is delivered then, not lost.
  sigset_t blocked = chld;
  sigaddset(&blocked, SIGINT);
  sigaddset(&blocked, SIGTERM);
  ::sigprocmask(SIG_BLOCK, &blocked, nullptr);
  int sigfd = ::signalfd(-1, &chld, SFD_CLOEXEC | SFD_NONBLOCK);
  if (sigfd < 0) ::_exit(3);
  std::map<int, Child> children;
  for (;;) {
    pollfd p[2] = {{sock, POLLIN, 0}, {sigfd, POLLIN, 0}};
    if (::poll(p, 2, -1) < 0) {
      if (errno == EINTR) continue;
      break;
    }
    if (p[1].revents != 0) {
      signalfd_siginfo info;
      while (::read(sigfd, &info, sizeof info) == static_cast<ssize_t>(sizeof info)) {
      }
      reap(children);
    }
    if (p[0].revents == 0) continue;
    Header h{};
    std::vector<int> fds;
    int rc = recv_all(sock, reinterpret_cast<char*>(&h), sizeof h, &fds);
    if (rc != 0 || h.magic != kMagic || h.op != kOpSpawn || h.length > kMaxPayload) {
      close_all(fds);
      break;  // the program is gone (EOF) or speaks nonsense: end
    }
    std::string payload(h.length, '\0');
    if (recv_all(sock, payload.data(), payload.size(), &fds) != 0) {
      close_all(fds);
      break;
    }
    handle_spawn(sock, sigfd, children, payload, fds);
  }
  for (auto& [pid, c] : children) {
    if (c.daemon) ::kill(pid, SIGKILL);
  }
  ::_exit(0);
}

std::size_t thread_count() {
  std::size_t n = 0;
  if (DIR* d = ::opendir("/proc/self/task")) {
    while (dirent* e = ::readdir(d)) {
      if (e->d_name[0] != '.') ++n;
    }
    ::closedir(d);
  }
  return n;
}

// Caller holds g_server.mu.
void start_locked() {
  if (g_server.sock >= 0) return;
  std::size_t threads = thread_count();
  if (threads > 1) {
    std::fprintf(stderr,
                 "weft: warning: the fork server is being started from a process with %zu threads; call "
                 "weft::process::start_fork_server() at the top of main(), before any thread exists\n",
                 threads);
  }
  int sv[2];
  if (::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) != 0) throw_errno(errno, "socketpair for the fork server");
  const bool main_thread = ::gettid() == ::getpid();
  const pid_t parent = ::getpid();
  std::fflush(nullptr);
  // The server blocks SIGINT and SIGTERM (serve); blocked from before the fork, so that none reaches it in
  // between. This thread gets its mask back at once (a signal meanwhile waits, pending, and is not lost).
  sigset_t blocked, mask;
  sigemptyset(&blocked);
  sigaddset(&blocked, SIGINT);
  sigaddset(&blocked, SIGTERM);
  ::pthread_sigmask(SIG_BLOCK, &blocked, &mask);
  pid_t pid = ::fork();
  if (pid != 0) ::pthread_sigmask(SIG_SETMASK, &mask, nullptr);
  if (pid < 0) {
    int e = errno;
    ::close(sv[0]);
    ::close(sv[1]);
    throw_errno(e, "fork of the fork server");
  }
  if (pid == 0) {
    ::close(sv[0]);
    // Dies with the program: by the parent-death signal when the program's main thread started it (the
    // signal follows the thread, not the process), and in every case by EOF on the socket.
    if (main_thread) {
      ::prctl(PR_SET_PDEATHSIG, SIGKILL);
      if (::getppid() != parent) ::_exit(0);
    }
    ::prctl(PR_SET_NAME, "weft-forkserver");
    serve(sv[1]);
  }
  ::close(sv[1]);
  g_server.sock = sv[0];
  g_server.pid.store(pid, std::memory_order_release);
}

}  // namespace

bool register_trampoline(Trampoline t) noexcept {
  std::lock_guard lock(trampoline_mu());
  trampolines().insert(t);
  return true;
}

ChildHandle spawn(Trampoline trampoline, void* fn, std::string_view args, const std::vector<int>& fds,
                  const ProcessOptions& options) {
  if (fds.size() > kMaxFds) {
    throw weft::Error("weft: a Process takes at most " + std::to_string(kMaxFds) + " descriptor arguments, not " +
                      std::to_string(fds.size()));
  }
  std::string payload = pack(std::make_tuple(static_cast<std::uint64_t>(reinterpret_cast<std::uintptr_t>(trampoline)),
                                             static_cast<std::uint64_t>(reinterpret_cast<std::uintptr_t>(fn)),
                                             std::string(args), options.daemon, options.name));
  if (payload.size() > kMaxPayload) throw MessageTooLarge(payload.size(), kMaxPayload);
  std::lock_guard lock(g_server.mu);
  start_locked();
  Header h{kMagic, kOpSpawn, payload.size()};
  std::string message(reinterpret_cast<const char*>(&h), sizeof h);
  message += payload;
  if (int e = send_all(g_server.sock, message.data(), message.size(), fds); e != 0) {
    throw weft::Error(std::string("weft: the fork server is gone (sending a request failed: ") + std::strerror(e) +
                      ")");
  }
  Reply r{};
  std::vector<int> got;
  int rc = recv_all(g_server.sock, reinterpret_cast<char*>(&r), sizeof r, &got);
  if (rc != 0 || r.magic != kMagic) {
    close_all(got);
    throw weft::Error("weft: the fork server is gone (no reply to a request)");
  }
  if (r.error != 0) {
    close_all(got);
    if (r.error == ENOEXEC) {
      throw weft::Error("weft: the fork server does not know this function signature (the program was built so "
                        "that it is registered only after the server started)");
    }
    throw_errno(r.error, "fork of " + options.name);
  }
  if (got.size() != 2) {
    close_all(got);
    throw weft::Error("weft: the fork server's reply lacks the child's descriptors");
  }
  return ChildHandle{r.pid, got[0], got[1], false};
}

ChildHandle fork_direct(std::function<void()>& body, const ProcessOptions& options) {
  std::fflush(nullptr);
  const pid_t parent = ::getpid();
  pid_t pid = ::fork();
  if (pid < 0) throw_errno(errno, "fork of " + options.name);
  if (pid == 0) {
    if (options.daemon) {
      ::prctl(PR_SET_PDEATHSIG, SIGKILL);
      if (::getppid() != parent) ::_exit(0);
    }
    // The copy shares the program's fork-server socket: forget it (without closing the program's end of
    // the conversation, which is the same socket), so a Process started here gets a server of its own.
    ::close(g_server.sock);
    g_server.sock = -1;
    g_server.pid.store(0, std::memory_order_relaxed);
    int code = 0;
    try {
      body();
    } catch (const std::exception& e) {
      std::fprintf(stderr, "weft: %s (pid %d) raised %s: %s\n", options.name.c_str(), static_cast<int>(::getpid()),
                   type_name(typeid(e)).c_str(), e.what());
      code = 1;
    } catch (...) {
      code = 1;
    }
    std::fflush(nullptr);
    ::_exit(code);
  }
  int pidfd = static_cast<int>(::syscall(SYS_pidfd_open, pid, 0));
  if (pidfd < 0) {
    int e = errno;
    ::kill(pid, SIGKILL);
    ::waitpid(pid, nullptr, 0);
    throw_errno(e, "pidfd_open");
  }
  return ChildHandle{pid, pidfd, -1, true};
}

}  // namespace detail

void start_fork_server() {
  std::lock_guard lock(detail::g_server.mu);
  detail::start_locked();
}

int fork_server_pid() noexcept { return detail::g_server.pid.load(std::memory_order_acquire); }

}  // namespace weft::process
