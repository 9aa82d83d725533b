// Shared pieces of the network benchmarks' servers and load clients (see scripts/bench.py, part `net`).
//
// The protocol every server follows, whatever its framework or language:
//   1. `--port N` (default 0: an ephemeral port); it listens on 127.0.0.1 with a backlog of 4096.
//   2. Once listening it prints exactly `port <N>` on stdout and flushes.
//   3. One thread. It runs until SIGTERM or SIGINT, then exits 0 promptly.
//   4. At start it raises its RLIMIT_NOFILE soft limit to the hard limit (the idle test holds 10,000
//      connections).
// The HTTP servers answer every complete request in what one read brought (pipelining) with the same 13-byte
// "Hello, world!" response, all of them in one write; the echo servers write back what they read.
#pragma once

#include <sys/resource.h>

#include <charconv>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <initializer_list>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace weft::bench::net {

inline constexpr int kBacklog = 4096;
inline constexpr std::string_view kHttpResponse =
    "HTTP/1.1 200 OK\r\nContent-Length: 13\r\nContent-Type: text/plain\r\n\r\nHello, world!";
inline constexpr std::string_view kRequestEnd = "\r\n\r\n";

[[noreturn]] inline void die(const char* program, const std::string& message) {
  std::fprintf(stderr, "%s: %s\n", program, message.c_str());
  std::exit(2);
}

// `--name value` pairs. Every flag the program accepts must be named with its default; an unknown flag, a
// missing value or a value that is not a whole number ends the program with a usage message.
class Args {
 public:
  Args(int argc, char** argv, std::initializer_list<std::pair<std::string_view, long>> defaults)
      : program_(argv[0]), values_(defaults.begin(), defaults.end()) {
    for (int i = 1; i < argc; i += 2) {
      std::string_view flag = argv[i];
      auto* slot = find(flag.substr(flag.starts_with("--") ? 2 : flag.size()));
      if (slot == nullptr || i + 1 >= argc) die(program_, "usage: " + usage());
      std::string_view text = argv[i + 1];
      auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), slot->second);
      if (ec != std::errc{} || end != text.data() + text.size()) {
        die(program_, "not a whole number for " + std::string(flag) + ": " + std::string(text));
      }
    }
  }

  long operator[](std::string_view name) const {
    for (const auto& [key, value] : values_) {
      if (key == name) return value;
    }
    die(program_, "internal error: no flag --" + std::string(name));
  }

  const char* program() const { return program_; }

 private:
  std::pair<std::string_view, long>* find(std::string_view name) {
    if (name.empty()) return nullptr;
    for (auto& entry : values_) {
      if (entry.first == name) return &entry;
    }
    return nullptr;
  }

  std::string usage() const {
    std::string text = program_;
    for (const auto& [key, value] : values_) text += " [--" + std::string(key) + " " + std::to_string(value) + "]";
    return text;
  }

  const char* program_;
  std::vector<std::pair<std::string_view, long>> values_;
};

// Raises the soft limit on open files to the hard limit; returns the new soft limit.
inline rlim_t raise_open_file_limit() {
  rlimit limit{};
  if (getrlimit(RLIMIT_NOFILE, &limit) != 0) return 0;
  if (limit.rlim_cur < limit.rlim_max) {
    limit.rlim_cur = limit.rlim_max;
    setrlimit(RLIMIT_NOFILE, &limit);
  }
  return limit.rlim_cur;
}

// The line scripts/bench.py waits for: the server is listening from now on.
inline void announce_port(unsigned port) {
  std::printf("port %u\n", port);
  std::fflush(stdout);
}

// For the clients: SIGTERM and SIGINT set a flag and interrupt the blocking call in progress (no SA_RESTART,
// so epoll_wait returns EINTR and the loop sees the flag).
inline volatile std::sig_atomic_t stop_requested = 0;

inline void install_stop_handler() {
  struct sigaction action {};
  action.sa_handler = [](int) { stop_requested = 1; };
  sigemptyset(&action.sa_mask);
  action.sa_flags = 0;
  sigaction(SIGTERM, &action, nullptr);
  sigaction(SIGINT, &action, nullptr);
  std::signal(SIGPIPE, SIG_IGN);
}

// How many complete requests (each ending in an empty line) `data` holds, and where the last one ends.
struct RequestScan {
  std::size_t count = 0;
  std::size_t consumed = 0;
};

inline RequestScan scan_requests(std::string_view data) {
  RequestScan scan;
  for (std::size_t at = data.find(kRequestEnd); at != std::string_view::npos;
       at = data.find(kRequestEnd, scan.consumed)) {
    ++scan.count;
    scan.consumed = at + kRequestEnd.size();
  }
  return scan;
}

}  // namespace weft::bench::net
