// Starting processes while the program's threads hold locks and allocate: the children come from the fork
// server, so no lock of a running thread is ever copied into a child.
#include "weft/process/process.hpp"
#include "weft/thread/thread_pool.hpp"

#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <map>
#include <mutex>
#include <sstream>
#include <string>
#include <vector>

namespace {

std::mutex g_mu;  // held by pool threads most of the time
std::map<int, std::string> g_table;

void child_uses_locks_and_heap(int n) {
  // Deadlocks here if the child were forked while a pool thread held g_mu or an allocator lock.
  std::lock_guard lock(g_mu);
  std::ostringstream os;
  for (int i = 0; i < n; ++i) {
    g_table[i] = std::string(100 + i, 'x');
    os << g_table[i].size();
  }
  std::fprintf(stderr, "%s", "");
  ::_exit(os.str().empty() ? 1 : 0);
}

TEST(ProcessWithThreads, ChildrenStartWhileThreadsHoldLocksAndAllocate) {
  std::atomic<bool> stop{false};
  weft::ThreadPool pool(4);
  std::vector<weft::Future<void>> busy;
  for (int t = 0; t < 4; ++t) {
    busy.push_back(pool.submit([&stop, t] {
      std::vector<std::string> junk;
      // Bounded: runs until the test sets stop, at most 10^9 rounds.
      for (long i = 0; i < 1'000'000'000L && !stop.load(std::memory_order_relaxed); ++i) {
        std::lock_guard lock(g_mu);
        junk.emplace_back(64 + (i % 512), static_cast<char>('a' + t));
        if (junk.size() > 256) junk.clear();
      }
    }));
  }
  int failures = 0;
  for (int i = 0; i < 40; ++i) {
    weft::process::Process p(&child_uses_locks_and_heap, 50);
    if (!p.join(std::chrono::seconds(60))) {
      p.kill();
      p.join();
      ++failures;
    } else if (p.exitcode() != 0) {
      ++failures;
    }
  }
  stop.store(true);
  for (auto& f : busy) f.get();
  EXPECT_EQ(failures, 0);
}

}  // namespace
