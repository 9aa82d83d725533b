// Shared by the ForkJoinPool test files: a task error type, held workers, and small helpers.
#pragma once

#include <pthread.h>
#include <sched.h>

#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <cstddef>
#include <latch>
#include <set>
#include <stdexcept>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "../thread/pool_test_support.hpp"
#include "weft/core/errors.hpp"
#include "weft/core/future.hpp"
#include "weft/parallel/fork_join_pool.hpp"
#include "weft/parallel/task_group.hpp"

namespace weft::test::forkjoin {

// The names the ForkJoinPool test files use; each brings them in with `using namespace weft::test::forkjoin;`.
using namespace std::chrono_literals;
using weft::BrokenExecutor;
using weft::Cancelled;
using weft::ForkJoinPool;
using weft::ForkJoinPoolOptions;
using weft::Future;
using weft::JobOptions;
using weft::Promise;
using weft::Shutdown;
using weft::TaskGroup;
using weft::Timeout;
using weft::test::CapturingHandler;
using weft::test::kSafetyNet;
using weft::test::scaled;
using weft::test::Watchdog;

// Worker counts the tests sweep: one, two, and many more than the machine's cores.
inline constexpr std::size_t kSweep[] = {1, 2, 4, 16};

// A task's own error type, to check that the very same type and payload come back.
struct TaskError : std::runtime_error {
  TaskError(const char* what, int c) : std::runtime_error(what), code(c) {}
  int code;
};

inline std::size_t cpus_in_affinity_mask() {
  cpu_set_t set;
  CPU_ZERO(&set);
  EXPECT_EQ(sched_getaffinity(0, sizeof(set), &set), 0);
  return static_cast<std::size_t>(CPU_COUNT(&set));
}

inline std::string os_thread_name() {
  char buf[64] = {};
  pthread_getname_np(pthread_self(), buf, sizeof(buf));
  return buf;
}

// Polls `done` (a condition another thread makes true) until it holds or the safety net runs out. For
// conditions that have no event to wait on (a counter the pool updates); never the thing measured.
template <class Pred>
bool eventually(Pred done) {
  const auto limit = std::chrono::steady_clock::now() + kSafetyNet;
  while (!done()) {
    if (std::chrono::steady_clock::now() > limit) return false;
    std::this_thread::yield();
  }
  return true;
}

// Runs `call` and checks that it throws a TaskError with `code` (the failure a join or a group's wait must
// rethrow).
template <class F>
void expect_task_error(int code, F&& call) {
  try {
    std::forward<F>(call)();
    ADD_FAILURE() << "must rethrow the task's TaskError";
  } catch (const TaskError& e) {
    EXPECT_EQ(e.code, code);
  }
}

// Holds `n` workers of a pool inside tasks blocked on a std::latch (which, unlike a weft wait, does not
// make the worker run other jobs) until release() or destruction. The constructor returns once all of them
// run, so whatever is queued afterwards stays queued.
class HeldWorkers {
 public:
  HeldWorkers(ForkJoinPool& pool, std::size_t n) : started_(static_cast<std::ptrdiff_t>(n)) {
    futures_.reserve(n);
    for (std::size_t i = 0; i < n; ++i) {
      futures_.push_back(pool.submit([this] {
        indices_[static_cast<std::size_t>(started_count_.fetch_add(1))] = ForkJoinPool::current_worker_index();
        started_.count_down();
        gate_.wait();
      }));
    }
    started_.wait();
  }
  HeldWorkers(const HeldWorkers&) = delete;
  HeldWorkers& operator=(const HeldWorkers&) = delete;
  ~HeldWorkers() {
    release();
    for (auto& f : futures_) f.wait();
  }

  void release() {
    if (!released_.exchange(true)) gate_.count_down();
  }

  /// The worker indices the held tasks run on (valid once constructed).
  std::set<int> indices() const {
    std::set<int> s;
    for (int i = 0; i < started_count_.load(); ++i) s.insert(indices_[static_cast<std::size_t>(i)]);
    return s;
  }

 private:
  std::latch started_;
  std::latch gate_{1};
  std::atomic<bool> released_{false};
  std::atomic<int> started_count_{0};
  int indices_[64] = {};
  std::vector<Future<void>> futures_;
};

inline long fib(ForkJoinPool& pool, int n) {
  if (n < 2) return n;
  auto [a, b] = pool.join([&] { return fib(pool, n - 1); }, [&] { return fib(pool, n - 2); });
  return a + b;
}

inline long fib_seq(int n) { return n < 2 ? n : fib_seq(n - 1) + fib_seq(n - 2); }

struct NoDefault {  // a result type without a default constructor
  explicit NoDefault(int v) : value(v) {}
  int value;
};

}  // namespace weft::test::forkjoin
