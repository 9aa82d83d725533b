// The result backends' key-value entries (memory:// and sqlite:///): values, time to live, scans, counters
// and set-if-absent claims that exactly one of several racing threads or processes wins.
#include "support.hpp"

#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <latch>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "weft/tasks/backend.hpp"

namespace {

using namespace weft::tasks;
using namespace std::chrono_literals;
using weft::test::TempDir;

class BackendKv : public ::testing::TestWithParam<const char*> {
 protected:
  std::string url() const { return weft::test::url_for(GetParam(), dir_, "kv"); }
  TempDir dir_;
};

TEST_P(BackendKv, PutReadEraseAndReplace) {
  auto b = connect_backend(url());
  EXPECT_FALSE(b->read("a"));
  b->put("a", "1", std::nullopt);
  EXPECT_EQ(b->read("a"), "1");
  b->put("a", "two", std::nullopt);
  EXPECT_EQ(b->read("a"), "two");
  b->put("empty", "", std::nullopt);
  EXPECT_EQ(b->read("empty"), "");
  EXPECT_TRUE(b->erase("a"));
  EXPECT_FALSE(b->erase("a"));
  EXPECT_FALSE(b->read("a"));
  // A second connection sees the same entries.
  auto other = connect_backend(url());
  EXPECT_EQ(other->read("empty"), "");
}

TEST_P(BackendKv, LimitsAreClearErrors) {
  auto b = connect_backend(url());
  EXPECT_THROW(b->put("", "v", std::nullopt), std::invalid_argument);
  EXPECT_THROW(b->put(std::string(ResultBackend::kMaxKey + 1, 'k'), "v", std::nullopt), std::invalid_argument);
  EXPECT_THROW(b->put("k", std::string(ResultBackend::kMaxValue + 1, 'v'), std::nullopt), std::invalid_argument);
  EXPECT_THROW(b->put("k", "v", 0ms), std::invalid_argument);
  EXPECT_THROW(b->put_if_absent("k", "v", -1ms), std::invalid_argument);
  EXPECT_FALSE(b->read("k"));
  b->put(std::string(ResultBackend::kMaxKey, 'k'), std::string(ResultBackend::kMaxValue, 'v'), std::nullopt);
  EXPECT_EQ(b->read(std::string(ResultBackend::kMaxKey, 'k'))->size(), ResultBackend::kMaxValue);
}

TEST_P(BackendKv, EntriesExpire) {
  auto b = connect_backend(url());
  b->put("short", "x", 1ms);
  b->put("long", "y", 1h);
  ASSERT_FALSE(b->put_if_absent("long", "z", 1h));
  // Expiry is a matter of the clock: wait for the wall clock to pass the 1 ms (bounded).
  const auto until = std::chrono::system_clock::now() + 2ms;
  for (int i = 0; i < 1000 && std::chrono::system_clock::now() <= until; ++i) std::this_thread::sleep_for(1ms);
  EXPECT_FALSE(b->read("short"));
  EXPECT_EQ(b->read("long"), "y");
  EXPECT_FALSE(b->erase("short"));  // expired counts as absent
  EXPECT_TRUE(b->put_if_absent("short", "again", std::nullopt));  // an expired entry can be claimed again
  EXPECT_EQ(b->read("short"), "again");
}

TEST_P(BackendKv, ScanListsLiveEntriesOfAPrefixInOrder) {
  auto b = connect_backend(url());
  b->put("worker:b", "2", std::nullopt);
  b->put("worker:a", "1", std::nullopt);
  b->put("worker:c", "3", 1ms);
  b->put("workers", "not me", std::nullopt);
  b->put("worker_", "nor me", std::nullopt);  // '_' and '%' are no wildcards
  b->put("w%rker:x", "nor me", std::nullopt);
  const auto until = std::chrono::system_clock::now() + 2ms;
  for (int i = 0; i < 1000 && std::chrono::system_clock::now() <= until; ++i) std::this_thread::sleep_for(1ms);
  const auto got = b->scan("worker:");
  ASSERT_EQ(got.size(), 2u);
  EXPECT_EQ(got[0], (std::pair<std::string, std::string>{"worker:a", "1"}));
  EXPECT_EQ(got[1], (std::pair<std::string, std::string>{"worker:b", "2"}));
  EXPECT_EQ(b->scan("worker:", 1).size(), 1u);
  EXPECT_TRUE(b->scan("nothing:").empty());
}

TEST_P(BackendKv, CountersIncrementAtomicallyAndRefuseText) {
  auto b = connect_backend(url());
  EXPECT_EQ(b->incr("n", 1), 1);
  EXPECT_EQ(b->incr("n", 5), 6);
  EXPECT_EQ(b->incr("n", -7), -1);
  b->put("text", "abc", std::nullopt);
  EXPECT_THROW(b->incr("text", 1), ProtocolError);
  EXPECT_EQ(b->read("text"), "abc");
  constexpr int kThreads = 4, kEach = 200;
  std::latch go(kThreads);
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&] {
      auto mine = connect_backend(url());
      go.arrive_and_wait();
      for (int i = 0; i < kEach; ++i) mine->incr("shared", 1, 1h);
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(b->read("shared"), std::to_string(kThreads * kEach));
}

TEST_P(BackendKv, ExactlyOneOfRacingThreadsClaimsEachKey) {
  constexpr int kThreads = 4, kKeys = 100;
  std::latch go(kThreads);
  std::atomic<int> wins[kKeys] = {};
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      auto mine = connect_backend(url());
      go.arrive_and_wait();
      for (int k = 0; k < kKeys; ++k) {
        if (mine->put_if_absent("claim:" + std::to_string(k), std::to_string(t), 1h)) wins[k].fetch_add(1);
      }
    });
  }
  for (auto& t : threads) t.join();
  for (int k = 0; k < kKeys; ++k) EXPECT_EQ(wins[k].load(), 1) << "key " << k;
  EXPECT_EQ(connect_backend(url())->scan("claim:").size(), static_cast<std::size_t>(kKeys));
}

INSTANTIATE_TEST_SUITE_P(Backends, BackendKv, ::testing::Values("memory", "sqlite"));

// Processes on one sqlite file: each key is claimed by exactly one, and counters add up.
TEST(SqliteKv, ExactlyOneOfRacingProcessesClaimsEachKey) {
  TempDir dir;
  const std::string url = "sqlite://" + dir.db();
  connect_backend(url);  // creates the file and schema before the race
  constexpr int kProcs = 3, kKeys = 60;
  int ready[2];
  ASSERT_EQ(::pipe(ready), 0);
  std::vector<pid_t> kids;
  for (int p = 0; p < kProcs; ++p) {
    const pid_t pid = ::fork();
    ASSERT_GE(pid, 0);
    if (pid == 0) {
      ::close(ready[1]);
      char c;
      if (::read(ready[0], &c, 1) != 0) ::_exit(3);  // wait for the start (the parent closes the pipe)
      try {
        auto b = connect_backend(url);
        for (int k = 0; k < kKeys; ++k) {
          if (b->put_if_absent("claim:" + std::to_string(k), std::to_string(::getpid()), std::nullopt)) {
            b->incr("wins", 1);
          }
          b->incr("tries", 1);
        }
      } catch (...) {
        ::_exit(2);
      }
      ::_exit(0);
    }
    kids.push_back(pid);
  }
  ::close(ready[0]);
  ::close(ready[1]);
  for (pid_t pid : kids) {
    int status = 0;
    ASSERT_EQ(::waitpid(pid, &status, 0), pid);
    EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << status;
  }
  auto b = connect_backend(url);
  EXPECT_EQ(b->read("wins"), std::to_string(kKeys));
  EXPECT_EQ(b->read("tries"), std::to_string(kProcs * kKeys));
  std::set<std::string> owners;
  for (const auto& [k, v] : b->scan("claim:")) owners.insert(v);
  EXPECT_EQ(b->scan("claim:").size(), static_cast<std::size_t>(kKeys));
  EXPECT_GE(owners.size(), 1u);
}

}  // namespace
