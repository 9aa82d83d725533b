// The executor contract for work that is only data: the same behaviour, checked the same way, on ThreadPool,
// ForkJoinPool and ProcessPool. Tasks are plain functions of serializable arguments (what a ProcessPool can
// run); where a test must hold workers inside a task it uses a gate in shared memory mapped before main(), so
// that the fork server — and every worker process forked from it — shares it with the test.
#include "weft/core/executor.hpp"
#include "weft/core/detail/futex.hpp"
#include "weft/parallel/fork_join_pool.hpp"
#include "weft/process/pool.hpp"
#include "weft/thread/thread_pool.hpp"

#include <gtest/gtest.h>
#include <sys/mman.h>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <memory>
#include <numeric>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

namespace weft::test {
namespace {

using namespace std::chrono_literals;
constexpr auto kLong = std::chrono::seconds(60);  // a safety net, never the thing measured

// --- a gate shared by every process of the test ------------------------------------------------------------
struct Shared {
  std::atomic<std::uint32_t> open;     // futex: 0 closed, 1 open
  std::atomic<std::uint32_t> inside;   // tasks waiting at the gate
  std::atomic<std::uint32_t> ran;      // tasks that counted themselves
};
Shared* const g_shared = [] {
  void* p = ::mmap(nullptr, sizeof(Shared), PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
  if (p == MAP_FAILED) std::abort();
  return new (p) Shared{};
}();

int wait_at_gate(int v) {
  g_shared->inside.fetch_add(1);
  const auto deadline = std::chrono::steady_clock::now() + kLong;
  while (g_shared->open.load() == 0 && std::chrono::steady_clock::now() < deadline) {
    weft::detail::futex_wait_shared(g_shared->open, 0, &deadline);
  }
  return v;
}
void close_gate() {
  g_shared->open.store(0);
  g_shared->inside.store(0);
  g_shared->ran.store(0);
}
void open_gate() {
  g_shared->open.store(1);
  weft::detail::futex_wake_shared(g_shared->open, INT32_MAX);
}
// Waits (bounded) until `n` tasks are at the gate.
bool wait_inside(std::uint32_t n) {
  const auto deadline = std::chrono::steady_clock::now() + kLong;
  while (g_shared->inside.load() < n) {
    if (std::chrono::steady_clock::now() > deadline) return false;
    std::this_thread::yield();
  }
  return true;
}
int count_run(int v) {
  g_shared->ran.fetch_add(1);
  return v;
}

int twice(int x) { return 2 * x; }
int forty_two() { return 42; }
int fails_with(int x) {
  if (x % 7 == 3) throw std::invalid_argument("bad item " + std::to_string(x));
  return x;
}
std::string repeat(std::string s, int n) {
  std::string out;
  for (int i = 0; i < n; ++i) out += s;
  return out;
}

// --- the executors -----------------------------------------------------------------------------------------
template <class E>
struct Make;
template <>
struct Make<ThreadPool> {
  static std::unique_ptr<ThreadPool> make(std::size_t n) {
    return std::make_unique<ThreadPool>(ThreadPoolOptions{.threads = n, .name = "data-contract"});
  }
};
template <>
struct Make<ForkJoinPool> {
  static std::unique_ptr<ForkJoinPool> make(std::size_t n) {
    return std::make_unique<ForkJoinPool>(ForkJoinPoolOptions{.threads = n, .name = "data-contract"});
  }
};
template <>
struct Make<process::ProcessPool> {
  static std::unique_ptr<process::ProcessPool> make(std::size_t n) {
    return std::make_unique<process::ProcessPool>(process::ProcessPoolOptions{.workers = n, .name = "data-contract"});
  }
};

template <class E>
class DataContract : public ::testing::Test {
 protected:
  void SetUp() override { close_gate(); }
  void TearDown() override { open_gate(); }
};
TYPED_TEST_SUITE_P(DataContract);

constexpr std::size_t kSweep[] = {1, 2, 4};

TYPED_TEST_P(DataContract, SatisfiesTheConcept) { static_assert(Executor<TypeParam>); }

TYPED_TEST_P(DataContract, SubmitReturnsValues) {
  for (std::size_t n : kSweep) {
    auto ex = Make<TypeParam>::make(n);
    std::vector<Future<int>> fs;
    for (int i = 0; i < 300; ++i) fs.push_back(ex->submit(&twice, i));
    for (int i = 0; i < 300; ++i) EXPECT_EQ(fs[i].get_for(kLong), 2 * i);
    EXPECT_EQ(ex->submit(&forty_two).get_for(kLong), 42);
    EXPECT_EQ(ex->submit(&repeat, std::string("ab"), 3).get_for(kLong), "ababab");
  }
}

TYPED_TEST_P(DataContract, ExceptionsReachTheFutureWithTheirMessage) {
  auto ex = Make<TypeParam>::make(2);
  try {
    ex->submit(&fails_with, 3).get_for(kLong);
    FAIL() << "no exception";
  } catch (const std::exception& e) {
    EXPECT_NE(std::string(e.what()).find("bad item 3"), std::string::npos) << e.what();
  }
  EXPECT_EQ(ex->submit(&fails_with, 4).get_for(kLong), 4);
}

TYPED_TEST_P(DataContract, MapReturnsResultsInInputOrder) {
  for (std::size_t n : kSweep) {
    auto ex = Make<TypeParam>::make(n);
    std::vector<int> in(2000);
    std::iota(in.begin(), in.end(), 0);
    for (std::size_t chunk : {std::size_t{0}, std::size_t{1}, std::size_t{33}}) {
      std::vector<int> out = ex->map(&twice, in, chunk);
      ASSERT_EQ(out.size(), in.size());
      for (int i = 0; i < 2000; ++i) ASSERT_EQ(out[i], 2 * i);
    }
    EXPECT_TRUE(ex->map(&twice, std::vector<int>{}).empty());
  }
}

TYPED_TEST_P(DataContract, MapRethrowsTheFirstExceptionInInputOrder) {
  auto ex = Make<TypeParam>::make(2);
  std::vector<int> in(100);
  std::iota(in.begin(), in.end(), 0);
  try {
    (void)ex->map(&fails_with, in, 1);
    FAIL() << "no exception";
  } catch (const std::exception& e) {
    EXPECT_NE(std::string(e.what()).find("bad item 3"), std::string::npos) << e.what();
  }
}

TYPED_TEST_P(DataContract, ShutdownDrainRunsEveryQueuedTask) {
  for (std::size_t n : {std::size_t{1}, std::size_t{2}}) {
    close_gate();
    auto ex = Make<TypeParam>::make(n);
    std::vector<Future<int>> blockers, queued;
    for (std::size_t i = 0; i < n; ++i) blockers.push_back(ex->submit(&wait_at_gate, static_cast<int>(i)));
    ASSERT_TRUE(wait_inside(static_cast<std::uint32_t>(n)));
    for (int i = 0; i < 50; ++i) queued.push_back(ex->submit(&twice, i));
    std::thread stopper([&] { ex->shutdown(Shutdown::drain); });
    open_gate();
    stopper.join();
    for (std::size_t i = 0; i < n; ++i) EXPECT_EQ(blockers[i].get_for(kLong), static_cast<int>(i));
    for (int i = 0; i < 50; ++i) EXPECT_EQ(queued[i].get_for(kLong), 2 * i);
  }
}

TYPED_TEST_P(DataContract, ShutdownCancelPendingCancelsQueuedTasks) {
  auto ex = Make<TypeParam>::make(1);
  auto blocker = ex->submit(&wait_at_gate, 7);
  ASSERT_TRUE(wait_inside(1));
  std::vector<Future<int>> queued;
  for (int i = 0; i < 20; ++i) queued.push_back(ex->submit(&count_run, i));
  std::thread stopper([&] { ex->shutdown(Shutdown::cancel_pending); });
  queued.back().wait();  // cancelled by the shutdown (the worker is held at the gate)
  open_gate();
  stopper.join();
  EXPECT_EQ(blocker.get_for(kLong), 7);
  for (auto& f : queued) EXPECT_THROW(f.get(), Cancelled);
  EXPECT_EQ(g_shared->ran.load(), 0u);
}

TYPED_TEST_P(DataContract, SubmitAfterShutdownThrowsBrokenExecutor) {
  auto ex = Make<TypeParam>::make(2);
  ex->shutdown(Shutdown::drain);
  EXPECT_THROW(ex->submit(&twice, 1), BrokenExecutor);
}

TYPED_TEST_P(DataContract, DestructorDrainsAndFuturesOutliveTheExecutor) {
  std::vector<Future<int>> fs;
  {
    auto ex = Make<TypeParam>::make(2);
    for (int i = 0; i < 200; ++i) fs.push_back(ex->submit(&twice, i));
  }
  for (int i = 0; i < 200; ++i) EXPECT_EQ(fs[i].get(), 2 * i);
}

TYPED_TEST_P(DataContract, CancelBeforeStartSkipsTheTask) {
  auto ex = Make<TypeParam>::make(1);
  auto blocker = ex->submit(&wait_at_gate, 1);
  ASSERT_TRUE(wait_inside(1));
  auto victim = ex->submit(&count_run, 5);
  EXPECT_TRUE(victim.cancel());
  open_gate();
  EXPECT_EQ(blocker.get_for(kLong), 1);
  EXPECT_THROW(victim.get(), Cancelled);
  EXPECT_EQ(ex->submit(&twice, 4).get_for(kLong), 8);  // after the skipped task
  EXPECT_EQ(g_shared->ran.load(), 0u);
}

TYPED_TEST_P(DataContract, ManyConcurrentSubmitters) {
  auto ex = Make<TypeParam>::make(2);
  std::vector<std::thread> ts;
  std::vector<long> sums(8, 0);
  for (int t = 0; t < 8; ++t) {
    ts.emplace_back([&, t] {
      std::vector<Future<int>> fs;
      for (int i = 0; i < 250; ++i) fs.push_back(ex->submit(&twice, i));
      for (auto& f : fs) sums[t] += f.get_for(kLong);
    });
  }
  for (auto& th : ts) th.join();
  for (long s : sums) EXPECT_EQ(s, 2L * 249 * 250 / 2);
}

REGISTER_TYPED_TEST_SUITE_P(DataContract, SatisfiesTheConcept, SubmitReturnsValues,
                            ExceptionsReachTheFutureWithTheirMessage, MapReturnsResultsInInputOrder,
                            MapRethrowsTheFirstExceptionInInputOrder, ShutdownDrainRunsEveryQueuedTask,
                            ShutdownCancelPendingCancelsQueuedTasks, SubmitAfterShutdownThrowsBrokenExecutor,
                            DestructorDrainsAndFuturesOutliveTheExecutor, CancelBeforeStartSkipsTheTask,
                            ManyConcurrentSubmitters);

using Executors = ::testing::Types<ThreadPool, ForkJoinPool, process::ProcessPool>;
INSTANTIATE_TYPED_TEST_SUITE_P(Data, DataContract, Executors);

}  // namespace
}  // namespace weft::test
