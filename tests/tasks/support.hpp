// tests/tasks/support.hpp — what several task-queue tests share.
#pragma once

#include <gtest/gtest.h>
#include <stdlib.h>
#include <unistd.h>

#include <filesystem>
#include <stdexcept>
#include <string>
#include <system_error>

namespace weft::test {

/// A fresh directory under /tmp for one test, removed with everything in it.
class TempDir {
 public:
  TempDir() {
    char tmpl[] = "/tmp/weft-tasks-XXXXXX";
    if (::mkdtemp(tmpl) == nullptr) throw std::runtime_error("mkdtemp failed");
    path_ = tmpl;
  }
  ~TempDir() {
    std::error_code ignored;  // a destructor must not throw; a leftover directory in /tmp is harmless
    std::filesystem::remove_all(path_, ignored);
  }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  /// The database file the test uses.
  std::string db() const { return path_ + "/q.db"; }
  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

/// For tests parameterised by "memory" or "sqlite": a broker/backend URL of the running test's own — a
/// memory:// name unique to this process and test, or the database file in `dir`.
inline std::string url_for(const std::string& kind, const TempDir& dir, const std::string& prefix) {
  if (kind == "memory") {
    return "memory://" + prefix + "-" + std::to_string(::getpid()) + "-" +
           ::testing::UnitTest::GetInstance()->current_test_info()->name();
  }
  return "sqlite://" + dir.db();
}

/// url_for's, with memory:// names numbered per call as well, so that a repeated run (--gtest_repeat) starts
/// on an empty broker too. Call it once per test and keep the URL.
inline std::string fresh_url_for(const std::string& kind, const TempDir& dir, const std::string& prefix) {
  static int calls = 0;  // tests run one at a time
  const std::string url = url_for(kind, dir, prefix);
  return kind == "memory" ? url + "-" + std::to_string(++calls) : url;
}

}  // namespace weft::test
