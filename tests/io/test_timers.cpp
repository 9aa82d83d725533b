// Timers: deadline order across many timers, sleep(0) yielding, minimum durations, cancellation of sleeping
// tasks (the timer leaves the heap), and 10,000 timers armed at once.
#include <gtest/gtest.h>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <numeric>
#include <random>
#include <vector>

#include "io_test_support.hpp"

namespace {

using namespace weft::test::iotest;
using weft::Cancelled;
using Clock = std::chrono::steady_clock;

class IoTimers : public BackendTest {};
WEFT_IO_INSTANTIATE(IoTimers);

io::Task<void> wake_at(Clock::time_point tp, int id, std::vector<int>& order) {
  co_await io::sleep_until(tp);
  order.push_back(id);
}

TEST_P(IoTimers, ManyTimersFireInDeadlineOrder) {
  const int n = static_cast<int>(scaled(500, 200));
  std::vector<int> order;
  run([](int count, std::vector<int>& out) -> io::Task<void> {
    std::vector<int> slot(count);  // slot[i]: the rank of the i-th spawned timer
    std::iota(slot.begin(), slot.end(), 0);
    std::mt19937 rng(12345);
    std::shuffle(slot.begin(), slot.end(), rng);
    const Clock::time_point base = Clock::now() + 5ms;
    co_await io::task_group([&](io::TaskGroup& g) -> io::Task<void> {
      for (int i = 0; i < count; ++i) g.spawn(wake_at(base + slot[i] * 50us, slot[i], out));
      co_return;
    });
  }(n, order));
  ASSERT_EQ(order.size(), static_cast<std::size_t>(n));
  EXPECT_TRUE(std::is_sorted(order.begin(), order.end())) << "timers fired out of deadline order";
}

io::Task<void> yielder(char id, int steps, std::chrono::milliseconds d, std::string& trace) {
  for (int i = 0; i < steps; ++i) {
    trace.push_back(id);
    co_await io::sleep(d);
  }
}

TEST_P(IoTimers, SleepZeroYieldsToOtherReadyTasks) {
  std::string trace;
  run([](std::string& t) -> io::Task<void> {
    co_await io::task_group([&](io::TaskGroup& g) -> io::Task<void> {
      g.spawn(yielder('a', 5, 0ms, t));
      g.spawn(yielder('b', 5, -5ms, t));  // a negative duration yields too
      co_return;
    });
  }(trace));
  EXPECT_EQ(trace, "ababababab") << "sleep(0) did not let the other ready task run";
}

// The loop's clock is read once per turn, so a deadline counts from the start of the turn; allow that slack.
constexpr auto kSlack = 1ms;

TEST_P(IoTimers, SleepLastsAtLeastItsDuration) {
  run([]() -> io::Task<void> {
    for (auto d : {1ms, 20ms}) {
      auto t0 = Clock::now();
      co_await io::sleep(d);
      EXPECT_GE(Clock::now() - t0, d - kSlack);
    }
    auto t0 = Clock::now();
    co_await io::sleep_until(t0 + 15ms);
    EXPECT_GE(Clock::now(), t0 + 15ms - kSlack);
    // A deadline in the past returns promptly.
    co_await io::sleep_until(t0 - 1s);
  }());
}

TEST_P(IoTimers, CancellingASleepingTaskRemovesItsTimer) {
  run([]() -> io::Task<void> {
    bool cancelled = false;
    bool finished = false;
    co_await io::task_group([&](io::TaskGroup& g) -> io::Task<void> {
      g.spawn([](bool& c, bool& f) -> io::Task<void> {
        try {
          co_await io::sleep(200ms);  // long enough to be cancelled first even on a loaded machine
        } catch (const Cancelled&) {
          c = true;
          throw;
        }
        f = true;
      }(cancelled, finished));
      co_await io::sleep(0ms);
      g.cancel();
    });
    EXPECT_TRUE(cancelled);
    EXPECT_FALSE(finished);
    // Live past the cancelled timer's deadline: had it stayed armed, it would now fire into a destroyed frame.
    co_await io::sleep(250ms);
  }());
}

TEST_P(IoTimers, CancellingSomeTimersLeavesTheOthersInOrder) {
  constexpr int kPairs = 300;
  std::vector<int> order;
  int cancelled = 0;
  run([](std::vector<int>& out, int& n_cancelled) -> io::Task<void> {
    const Clock::time_point base = Clock::now() + 200ms;  // far enough to cancel before any fires
    io::TaskGroup* doomed = nullptr;
    co_await io::task_group([&](io::TaskGroup& outer) -> io::Task<void> {
      // Even ranks stay, odd ranks are in a group cancelled before they fire: removals from all over the heap.
      outer.spawn(io::task_group([&](io::TaskGroup& d) -> io::Task<void> {
        doomed = &d;
        for (int i = kPairs - 1; i >= 0; --i) {
          d.spawn([](Clock::time_point tp, int& nc) -> io::Task<void> {
            try {
              co_await io::sleep_until(tp);
            } catch (const Cancelled&) {
              ++nc;
            }
          }(base + (2 * i + 1) * 100us, n_cancelled));
        }
        co_return;
      }));
      for (int i = 0; i < kPairs; ++i) outer.spawn(wake_at(base + (2 * i) * 100us, 2 * i, out));
      co_await yield_until([&] { return doomed != nullptr && doomed->live() == kPairs; });
      doomed->cancel();
    });
  }(order, cancelled));
  EXPECT_EQ(cancelled, kPairs);
  ASSERT_EQ(order.size(), static_cast<std::size_t>(kPairs));
  EXPECT_TRUE(std::is_sorted(order.begin(), order.end()));
}

TEST_P(IoTimers, TenThousandTimers) {
  constexpr int kTimers = 10'000;
  int fired = 0;
  int cancelled = 0;
  run([](int& f, int& c) -> io::Task<void> {
    // All armed at once with deadlines spread over 0-50 ms.
    co_await io::task_group([&](io::TaskGroup& g) -> io::Task<void> {
      for (int i = 0; i < kTimers; ++i) {
        g.spawn([](std::chrono::microseconds d, int& n) -> io::Task<void> {
          co_await io::sleep(d);
          ++n;
        }(std::chrono::microseconds((i * 7919) % 50'000), f));
      }
      co_return;
    });
    // And 10,000 armed far away, all cancelled.
    co_await io::task_group([&](io::TaskGroup& g) -> io::Task<void> {
      for (int i = 0; i < kTimers; ++i) {
        g.spawn([](int i2, int& n) -> io::Task<void> {
          try {
            co_await io::sleep(std::chrono::hours(1) + std::chrono::microseconds(i2));
          } catch (const Cancelled&) {
            ++n;
          }
        }(i, c));
      }
      co_await yield_until([&] { return g.live() == kTimers; });
      co_await io::sleep(0ms);  // one more turn: the loop submits what the waiters asked for
      g.cancel();
    });
  }(fired, cancelled));
  EXPECT_EQ(fired, kTimers);
  EXPECT_EQ(cancelled, kTimers);
}

}  // namespace
