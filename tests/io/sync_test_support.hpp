// Shared by the io/sync.hpp tests: Arrivals (knowing that tasks are suspended without sleeping) and the
// scenario helpers that check cancellation of every kind of wait and that a grant made before a stop is
// never lost (protocol step 5 of sync.hpp).
#pragma once

#include <gtest/gtest.h>

#include <algorithm>
#include <climits>
#include <cstddef>
#include <exception>
#include <memory>
#include <numeric>
#include <optional>
#include <stdexcept>
#include <vector>

#include "io_test_support.hpp"
#include "weft/io/sync.hpp"


namespace weft::test::iosync {

using namespace weft::test::iotest;
using io::Task;
using io::TaskGroup;
using weft::Cancelled;
using weft::ChannelClosed;
using weft::Timeout;

/// The timeouts under test (io::wait_for around a wait that is never granted).
constexpr auto kShortTimeout = 20ms;

/// Lets a test know that tasks are suspended: a task calls arrive() right before its await, and
/// `co_await reached(n)` returns once n tasks have arrived. The last one suspends in the same turn, and the
/// test is resumed in a later one, so by then all n are suspended.
class Arrivals {
 public:
  void arrive() {
    if (++count_ >= target_) reached_.set();
  }
  Task<void> reached(int n) {
    if (count_ >= n) co_return;
    target_ = n;
    reached_.clear();
    co_await reached_.wait();
  }

 private:
  io::Event reached_;
  int count_ = 0;
  int target_ = INT_MAX;
};

inline std::vector<int> iota_vector(int n) {
  std::vector<int> v(static_cast<std::size_t>(n));
  std::iota(v.begin(), v.end(), 0);
  return v;
}

/// Checks both ways a wait can be cancelled, and a wait started in a stopping scope. `make_wait(arrivals)` is
/// a task that calls arrivals.arrive() and then waits for something it will not get. Leaves nothing queued.
template <class MakeWait>
Task<void> check_cancellation(MakeWait make_wait) {
  Arrivals unused;
  EXPECT_TRUE(is_error<Timeout>(co_await error_of(io::wait_for(make_wait(unused), kShortTimeout))));

  constexpr int kWaiters = 3;
  int cancelled = 0;
  Arrivals arrived;
  auto counted = [&]() -> Task<void> {
    try {
      co_await make_wait(arrived);
    } catch (const Cancelled&) {
      ++cancelled;
    }
  };
  co_await io::task_group([&](TaskGroup& g) -> Task<void> {
    for (int i = 0; i < kWaiters; ++i) g.spawn(counted());
    co_await arrived.reached(kWaiters);
    g.cancel();
  });
  EXPECT_EQ(cancelled, kWaiters) << "every waiter of a cancelled group throws Cancelled";

  std::exception_ptr at_once;
  co_await io::task_group([&](TaskGroup& g) -> Task<void> {
    g.cancel();
    at_once = co_await error_of(make_wait(unused));
  });
  EXPECT_TRUE(is_error<Cancelled>(at_once)) << "a wait in a stopping scope throws at once";
}

/// Runs the task `make_waiter(arrivals)` in a task group of its own; once it is suspended, calls grant() and
/// cancels that group in the same loop turn, so the stop lands after the grant and before the waiter resumes.
/// Returns the exception the waiter ended with (null: it returned normally).
template <class MakeWaiter, class Grant>
Task<std::exception_ptr> grant_then_stop(MakeWaiter make_waiter, Grant grant) {
  Arrivals arrived;
  std::exception_ptr outcome;
  auto record = [&]() -> Task<void> { outcome = co_await error_of(make_waiter(arrived)); };
  co_await io::task_group([&](TaskGroup& g) -> Task<void> {
    g.spawn(record());
    co_await arrived.reached(1);
    grant();
    g.cancel();
  });
  co_return outcome;
}

/// Spawns `n` tasks, numbered in spawn order, that each `co_await pass()` and then record their number; once
/// all are suspended, calls release(), which must let every one through. Returns the numbers in the order
/// the tasks got through.
template <class Pass, class Release>
Task<std::vector<int>> pass_order(int n, Pass pass, Release release) {
  std::vector<int> order;
  Arrivals arrived;
  auto waiter = [&](int id) -> Task<void> {
    arrived.arrive();
    co_await pass();
    order.push_back(id);
  };
  co_await io::task_group([&](TaskGroup& g) -> Task<void> {
    for (int i = 0; i < n; ++i) g.spawn(waiter(i));
    co_await arrived.reached(n);
    release();
    EXPECT_TRUE(order.empty()) << "nobody may be resumed inline by the release";
  });
  co_return order;
}

}  // namespace weft::test::iosync
