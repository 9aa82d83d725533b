// tests/process/support.hpp — what several process tests share.
#pragma once

#include <dirent.h>
#include <unistd.h>

#include <chrono>
#include <set>
#include <string>
#include <vector>

namespace weft::test {

/// A safety net for waits in tests, never the thing measured.
inline constexpr auto kLong = std::chrono::seconds(60);

/// The segments in /dev/shm that the given processes created under SharedMemory's generated names
/// ("weft-<pid>-..."), by default this process's: to assert that a test left nothing behind without
/// counting the segments of tests that run beside it in other processes.
inline std::set<std::string> shm_entries(const std::vector<int>& creators = {static_cast<int>(::getpid())}) {
  std::set<std::string> out;
  if (DIR* d = ::opendir("/dev/shm")) {
    while (dirent* e = ::readdir(d)) {
      const std::string name = e->d_name;
      for (int pid : creators) {
        if (name.starts_with("weft-" + std::to_string(pid) + "-")) out.insert(name);
      }
    }
    ::closedir(d);
  }
  return out;
}

}  // namespace weft::test
