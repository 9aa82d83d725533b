// ProcessPool: submit, map, starmap, imap, named functions, initializer, retirement, shutdown, tracing.
#include "weft/process/pool.hpp"
#include "weft/core/detail/clock.hpp"
#include "weft/process/queue.hpp"
#include "weft/trace/trace.hpp"

#include <gtest/gtest.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <numeric>
#include <set>
#include <stdexcept>
#include <string>
#include <vector>

namespace {

using namespace std::chrono_literals;
using weft::process::ProcessPool;
using weft::process::ProcessPoolOptions;

int square(int x) { return x * x; }
long long wide_square(long long x) { return x * x; }
long add(int a, long b) { return a + b; }
std::string greet(std::string name, int times) {
  std::string out;
  for (int i = 0; i < times; ++i) out += "hi " + name + ";";
  return out;
}
void nothing() {}
int fails_on(int x) {
  if (x == 13) throw std::domain_error("thirteen");
  return x;
}
int my_pid() { return static_cast<int>(::getpid()); }
int g_initialized = 0;
void init_worker(int v) { g_initialized = v; }
int initialized_value() { return g_initialized; }
void init_throws() { throw std::runtime_error("no database"); }
// A gate the test opens one task at a time, and a queue where gated tasks report that they started (with
// their pid). The workers get both once, through the initializer.
weft::process::Queue* g_gate = nullptr;
weft::process::Queue* g_started = nullptr;
void adopt_gate(weft::process::Queue gate, weft::process::Queue started) {
  g_gate = new weft::process::Queue(std::move(gate));  // both live as long as the worker
  g_started = new weft::process::Queue(std::move(started));
}
int wait_on_gate() {
  g_started->put(static_cast<int>(::getpid()));
  return g_gate->get<int>(std::chrono::seconds(60));
}
struct Gate {
  weft::process::Queue open;
  weft::process::Queue started;
};
ProcessPoolOptions gated(Gate& gate, ProcessPoolOptions o) {
  o.initialize(&adopt_gate, gate.open, gate.started);
  return o;
}
int record_child_span(int x) {
  auto t = weft::detail::ticks();
  weft::trace::record(weft::trace::Span{"child-span", 0, t, t, t + 1, 0, 0, false});
  return x;
}

WEFT_PROCESS_FUNCTION("test.square", &square);
WEFT_PROCESS_FUNCTION("test.greet", &greet);

TEST(ProcessPool, SubmitReturnsTheResult) {
  for (std::size_t workers : {1u, 2u, 4u}) {
    ProcessPool pool(ProcessPoolOptions{.workers = workers});
    EXPECT_EQ(pool.workers(), workers);
    std::vector<weft::Future<int>> fs;
    for (int i = 0; i < 200; ++i) fs.push_back(pool.submit(&square, i));
    for (int i = 0; i < 200; ++i) EXPECT_EQ(fs[i].get(), i * i);
    EXPECT_EQ(pool.submit(&add, 2, 40L).get(), 42);
    EXPECT_EQ(pool.submit(&greet, "ann", 2).get(), "hi ann;hi ann;");
    pool.submit(&nothing).get();
  }
}

TEST(ProcessPool, TaskExceptionIsARemoteErrorWithTypeAndMessage) {
  ProcessPool pool(ProcessPoolOptions{.workers = 2});
  auto f = pool.submit(&fails_on, 13);
  try {
    f.get();
    FAIL() << "no exception";
  } catch (const weft::RemoteError& e) {
    EXPECT_NE(std::string(e.what()).find("thirteen"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("domain_error"), std::string::npos) << e.what();
  }
  EXPECT_EQ(pool.submit(&fails_on, 12).get(), 12);  // the worker goes on
}

TEST(ProcessPool, MapKeepsInputOrderForEveryChunkSize) {
  ProcessPool pool(ProcessPoolOptions{.workers = 2});
  std::vector<int> in(10'000);
  std::iota(in.begin(), in.end(), 0);
  for (std::size_t chunk : {0u, 1u, 7u, 100'000u}) {
    std::vector<int> out = pool.map(&square, in, chunk);
    ASSERT_EQ(out.size(), in.size());
    for (std::size_t i = 0; i < in.size(); ++i) ASSERT_EQ(out[i], in[i] * in[i]) << "chunk " << chunk;
  }
  EXPECT_TRUE(pool.map(&square, std::vector<int>{}).empty());
}

TEST(ProcessPool, MapThrowsTheFirstFailureInInputOrder) {
  ProcessPool pool(ProcessPoolOptions{.workers = 2});
  std::vector<int> in(100);
  std::iota(in.begin(), in.end(), 0);
  EXPECT_THROW(pool.map(&fails_on, in, 5), weft::RemoteError);
}

TEST(ProcessPool, StarmapSpreadsTuplesOverParameters) {
  ProcessPool pool(ProcessPoolOptions{.workers = 2});
  std::vector<std::tuple<int, long>> in;
  for (int i = 0; i < 500; ++i) in.emplace_back(i, 1000L * i);
  std::vector<long> out = pool.starmap(&add, in);
  for (int i = 0; i < 500; ++i) ASSERT_EQ(out[i], 1001L * i);
}

// An input range that counts how many items were taken from it.
struct Counting {
  int n;
  int* taken;
  struct iterator {
    using value_type = int;
    using difference_type = std::ptrdiff_t;
    int i;
    int* taken;
    int operator*() const {
      ++*taken;
      return i;
    }
    iterator& operator++() {
      ++i;
      return *this;
    }
    void operator++(int) { ++i; }
    bool operator==(const iterator& o) const { return i == o.i; }
  };
  iterator begin() const { return {0, taken}; }
  iterator end() const { return {n, taken}; }
};

TEST(ProcessPool, ImapTakesInputLazilyAndKeepsOrder) {
  ProcessPool pool(ProcessPoolOptions{.workers = 2});
  int taken = 0;
  Counting in{100'000, &taken};
  auto stream = pool.imap(&wide_square, in, 4);
  auto first = stream.next();
  ASSERT_TRUE(first.has_value());
  EXPECT_EQ(*first, 0);
  EXPECT_LE(taken, 4 * 4 * 2 + 4) << "imap read far ahead of what was consumed";
  long long expect = 1;
  for (long long v : stream) {
    ASSERT_EQ(v, expect * expect);
    ++expect;
  }
  EXPECT_EQ(expect, 100'000);
  EXPECT_EQ(taken, 100'000);
}

TEST(ProcessPool, ImapUnorderedYieldsEveryResultOnce) {
  ProcessPool pool(ProcessPoolOptions{.workers = 2});
  std::vector<int> in(5000);
  std::iota(in.begin(), in.end(), 0);
  std::multiset<int> got;
  for (int v : pool.imap_unordered(&square, in, 16)) got.insert(v);
  ASSERT_EQ(got.size(), in.size());
  for (int i : in) EXPECT_EQ(got.count(i * i), 1u);
}

TEST(ProcessPool, ImapStreamDroppedEarlyStopsCleanly) {
  ProcessPool pool(ProcessPoolOptions{.workers = 2});
  std::vector<int> in(100'000, 3);
  {
    auto stream = pool.imap(&square, in);
    EXPECT_EQ(stream.next(), 9);
  }  // the rest is cancelled or finishes; nothing hangs
  EXPECT_EQ(pool.submit(&square, 5).get(), 25);
}

TEST(ProcessPool, NamedFunctionsRunByName) {
  ProcessPool pool(ProcessPoolOptions{.workers = 1});
  EXPECT_EQ(pool.submit_named<int>("test.square", 9).get(), 81);
  EXPECT_EQ(pool.submit_named<std::string>("test.greet", std::string("bo"), 1).get(), "hi bo;");
  EXPECT_THROW(pool.submit_named<int>("test.nope", 1), std::invalid_argument);
  EXPECT_THROW(pool.submit_named<std::string>("test.square", 1), std::invalid_argument);
  // Arguments that do not decode as the function's parameters fail that task only.
  EXPECT_THROW(pool.submit_named<int>("test.square", std::string("x")).get(), weft::RemoteError);
  EXPECT_EQ(pool.submit_named<int>("test.square", 3).get(), 9);
}

TEST(ProcessPool, InitializerRunsInEveryWorker) {
  ProcessPoolOptions o{.workers = 2};
  o.initialize(&init_worker, 77);
  ProcessPool pool(std::move(o));
  std::vector<weft::Future<int>> fs;
  for (int i = 0; i < 20; ++i) fs.push_back(pool.submit(&initialized_value));
  for (auto& f : fs) EXPECT_EQ(f.get(), 77);
}

TEST(ProcessPool, FailingInitializerBreaksThePoolWithItsError) {
  ProcessPoolOptions o{.workers = 1};
  o.initialize(&init_throws);
  ProcessPool pool(std::move(o));
  try {
    pool.submit(&square, 2).get();
    FAIL() << "a task ran without its initializer";
  } catch (const weft::BrokenExecutor& e) {
    EXPECT_NE(std::string(e.what()).find("no database"), std::string::npos) << e.what();
  }
  EXPECT_THROW(pool.submit(&square, 2), weft::BrokenExecutor);
}

TEST(ProcessPool, WorkersRetireAfterMaxTasks) {
  ProcessPool pool(ProcessPoolOptions{.workers = 2, .max_tasks_per_child = 3});
  std::set<int> pids;
  for (int i = 0; i < 30; ++i) pids.insert(pool.submit(&my_pid).get());
  EXPECT_GE(pids.size(), 10u);
  EXPECT_EQ(pool.stats().workers_lost, 0u);
  EXPECT_EQ(pool.stats().completed, 30u);
}

TEST(ProcessPool, ShutdownDrainRunsWhatWasQueued) {
  ProcessPool pool(ProcessPoolOptions{.workers = 2});
  std::vector<weft::Future<int>> fs;
  for (int i = 0; i < 1000; ++i) fs.push_back(pool.submit(&square, i));
  pool.shutdown(weft::Shutdown::drain);
  for (int i = 0; i < 1000; ++i) EXPECT_EQ(fs[i].get(), i * i);
  EXPECT_THROW(pool.submit(&square, 1), weft::BrokenExecutor);
  pool.shutdown();  // idempotent
}

TEST(ProcessPool, ShutdownCancelPendingCancelsWhatHasNotStarted) {
  Gate gate;
  ProcessPool pool(gated(gate, ProcessPoolOptions{.workers = 1}));
  auto blocker = pool.submit(&wait_on_gate);
  (void)gate.started.get<int>(std::chrono::seconds(60));  // it runs: cancel_pending cannot take it back
  std::vector<weft::Future<int>> fs;
  for (int i = 0; i < 100; ++i) fs.push_back(pool.submit(&square, i));
  gate.open.put(5);  // lets the blocker finish once shutdown has taken the rest back
  pool.shutdown(weft::Shutdown::cancel_pending);
  EXPECT_EQ(blocker.get(), 5);
  int cancelled = 0;
  for (auto& f : fs) {
    try {
      f.get();
    } catch (const weft::Cancelled&) {
      ++cancelled;
    }
  }
  EXPECT_GT(cancelled, 0);
}

TEST(ProcessPool, RejectsWhenPendingIsFull) {
  Gate gate;
  ProcessPool pool(
      gated(gate, ProcessPoolOptions{.workers = 1, .max_pending = 2, .overflow = weft::process::PoolOverflow::reject}));
  auto blocker = pool.submit(&wait_on_gate);
  std::vector<weft::Future<int>> fs;
  bool rejected = false;
  for (int i = 0; i < 1000 && !rejected; ++i) {
    try {
      fs.push_back(pool.submit(&square, i));
    } catch (const weft::QueueFull&) {
      rejected = true;
    }
  }
  EXPECT_TRUE(rejected);
  gate.open.put(1);
  EXPECT_EQ(blocker.get(), 1);
  for (auto& f : fs) (void)f.get();
}

TEST(ProcessPool, CancelledBeforeDispatchNeverRuns) {
  Gate gate;
  ProcessPool pool(gated(gate, ProcessPoolOptions{.workers = 1, .max_pending = 1'000'000}));
  auto blocker = pool.submit(&wait_on_gate);
  std::vector<weft::Future<int>> fs;
  for (int i = 0; i < 2000; ++i) fs.push_back(pool.submit(&square, i));
  int cancelled = 0;
  for (auto& f : fs) cancelled += f.cancel() ? 1 : 0;
  gate.open.put(1);
  blocker.get();
  EXPECT_GT(cancelled, 0);  // those still waiting in this process
  for (auto& f : fs) {
    if (f.cancelled()) EXPECT_THROW(f.get(), weft::Cancelled);
    else (void)f.get();
  }
}

TEST(ProcessPool, SpansRecordedInWorkersReachTheParentTrace) {
  weft::trace::clear();
  weft::trace::enable();
  {
    ProcessPool pool(ProcessPoolOptions{.workers = 1, .name = "traced-pool"});
    EXPECT_EQ(pool.submit(&record_child_span, 4).get(), 4);
  }
  weft::trace::disable();
  bool child = false, task = false;
  for (const auto& s : weft::trace::snapshot()) {
    if (s.name != nullptr && std::string(s.name) == "child-span") child = true;
    // The task's own span: named after the function when it has a dynamic symbol, else "<pool> task".
    if (s.name != nullptr && (std::string(s.name).find("record_child_span") != std::string::npos ||
                              std::string(s.name) == "traced-pool task")) {
      task = true;
    }
  }
  EXPECT_TRUE(child) << "the span recorded in the worker did not reach this process";
  EXPECT_TRUE(task) << "no span for the task itself";
  weft::trace::clear();
}

}  // namespace
