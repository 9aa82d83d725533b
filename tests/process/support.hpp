// tests/process/support.hpp — what several process tests share.
#pragma once

#include <dirent.h>

#include <chrono>
#include <set>
#include <string>

namespace weft::test {

/// A safety net for waits in tests, never the thing measured.
inline constexpr auto kLong = std::chrono::seconds(60);

/// The names in /dev/shm now (to assert that a test left nothing behind).
inline std::set<std::string> shm_entries() {
  std::set<std::string> out;
  if (DIR* d = ::opendir("/dev/shm")) {
    while (dirent* e = ::readdir(d)) out.insert(e->d_name);
    ::closedir(d);
  }
  return out;
}

}  // namespace weft::test
