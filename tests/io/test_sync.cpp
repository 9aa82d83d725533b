// io::Event, io::Semaphore, io::Lock and io::Queue<T> (io/sync.hpp) on both backends: FIFO order of waiters,
// wake-ups through the loop rather than inline, the bounds (permits, mutual exclusion across awaits, queue
// capacity and back-pressure), close, cancellation of every kind of wait by a timeout (io::wait_for) and by a
// cancelled task group, and the property that a grant made before a stop is never lost (protocol step 5).
//
// Tasks learn that others are suspended through Arrivals (below), never by sleeping; io::sleep appears only as
// the work done while holding a lock or a permit, and the short timeouts are the thing under test.
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

namespace {

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

std::vector<int> iota_vector(int n) {
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

class IoEvent : public BackendTest {};
class IoSemaphore : public BackendTest {};
class IoLock : public BackendTest {};
class IoQueue : public BackendTest {};
WEFT_IO_INSTANTIATE(IoEvent);
WEFT_IO_INSTANTIATE(IoSemaphore);
WEFT_IO_INSTANTIATE(IoLock);
WEFT_IO_INSTANTIATE(IoQueue);

// ---- Event ----

TEST_P(IoEvent, WaitReturnsAtOnceWhileSet) {
  run([]() -> Task<void> {
    io::Event ev;
    EXPECT_FALSE(ev.is_set());
    ev.set();
    ev.set();
    EXPECT_TRUE(ev.is_set());
    co_await ev.wait();
    co_await ev.wait();
    ev.clear();
    EXPECT_FALSE(ev.is_set());
    EXPECT_TRUE(is_error<Timeout>(co_await error_of(io::wait_for(ev.wait(), kShortTimeout))));
  }());
}

TEST_P(IoEvent, SetWakesEveryWaiterInFifoOrderThroughTheLoop) {
  constexpr int kWaiters = 50;
  std::vector<int> order = run([]() -> Task<std::vector<int>> {
    io::Event ev;
    co_return co_await pass_order(
        kWaiters, [&]() -> Task<void> { co_await ev.wait(); },
        [&] {
          ev.set();
          ev.clear();  // too late to hold back the woken waiters
        });
  }());
  EXPECT_EQ(order, iota_vector(kWaiters));
}

TEST_P(IoEvent, WaitIsCancellable) {
  run([]() -> Task<void> {
    io::Event ev;
    co_await check_cancellation([&](Arrivals& a) -> Task<void> {
      a.arrive();
      co_await ev.wait();
    });
    // A stopping scope throws even when the event is set.
    ev.set();
    std::exception_ptr e;
    co_await io::task_group([&](TaskGroup& g) -> Task<void> {
      g.cancel();
      e = co_await error_of(as_task(ev.wait()));
    });
    EXPECT_TRUE(is_error<Cancelled>(e));
  }());
}

TEST_P(IoEvent, WakeBeforeStopIsKept) {
  std::exception_ptr outcome = run([]() -> Task<std::exception_ptr> {
    io::Event ev;
    co_return co_await grant_then_stop(
        [&](Arrivals& a) -> Task<void> {
          a.arrive();
          co_await ev.wait();
        },
        [&] { ev.set(); });
  }());
  EXPECT_FALSE(outcome) << weft::describe_exception(outcome);
}

// ---- Semaphore ----

TEST_P(IoSemaphore, CountsWithinItsBounds) {
  EXPECT_THROW((void)io::Semaphore(3, 2), std::invalid_argument);
  run([]() -> Task<void> {
    io::Semaphore sem(2, 3);
    EXPECT_EQ(sem.available(), 2u);
    EXPECT_TRUE(sem.try_acquire());
    co_await sem.acquire();
    EXPECT_FALSE(sem.try_acquire());
    EXPECT_EQ(sem.available(), 0u);
    sem.release();
    sem.release();
    sem.release();
    EXPECT_EQ(sem.available(), 3u);
    EXPECT_THROW(sem.release(), weft::Error);
    {
      io::SemaphoreGuard g = co_await sem.guard();
      EXPECT_TRUE(g.owns_permit());
      EXPECT_EQ(sem.available(), 2u);
      io::SemaphoreGuard moved = std::move(g);
      EXPECT_FALSE(g.owns_permit());
    }
    EXPECT_EQ(sem.available(), 3u);
  }());
}

TEST_P(IoSemaphore, BoundsConcurrentTasks) {
  constexpr int kTasks = 24;
  constexpr std::size_t kLimit = 3;
  int in_flight = 0;
  int max_in_flight = 0;
  int done = 0;
  run([&]() -> Task<void> {
    io::Semaphore sem(kLimit);
    auto work = [&]() -> Task<void> {
      max_in_flight = std::max(max_in_flight, ++in_flight);
      co_await io::sleep(200us);
      --in_flight;
      ++done;
    };
    auto with_guard = [&]() -> Task<void> {
      io::SemaphoreGuard g = co_await sem.guard();
      co_await work();
    };
    auto by_hand = [&]() -> Task<void> {
      co_await sem.acquire();
      co_await work();
      sem.release();
    };
    std::vector<Task<void>> tasks;
    for (int i = 0; i < kTasks; ++i) tasks.push_back(i % 2 == 0 ? with_guard() : by_hand());
    co_await io::gather(std::move(tasks));
    EXPECT_EQ(sem.available(), kLimit);
  }());
  EXPECT_EQ(max_in_flight, static_cast<int>(kLimit));
  EXPECT_EQ(done, kTasks);
}

TEST_P(IoSemaphore, ServesWaitersInFifoOrderWithoutOvertaking) {
  constexpr int kWaiters = 20;
  std::vector<int> order;
  bool overtook = true;
  run([&]() -> Task<void> {
    io::Semaphore sem(0);
    order = co_await pass_order(
        kWaiters, [&]() -> Task<void> { co_await sem.acquire(); },
        [&] {
          sem.release();  // handed to waiter 0 at once
          overtook = sem.try_acquire();
          for (int i = 1; i < kWaiters; ++i) sem.release();
        });
    EXPECT_EQ(sem.available(), 0u);
  }());
  EXPECT_FALSE(overtook) << "a newcomer took a permit released for a queued waiter";
  EXPECT_EQ(order, iota_vector(kWaiters));
}

TEST_P(IoSemaphore, AcquireIsCancellable) {
  run([]() -> Task<void> {
    io::Semaphore sem(0);
    co_await check_cancellation([&](Arrivals& a) -> Task<void> {
      a.arrive();
      co_await sem.acquire();
    });
    co_await check_cancellation([&](Arrivals& a) -> Task<void> {
      a.arrive();
      io::SemaphoreGuard g = co_await sem.guard();
    });
    sem.release();
    EXPECT_EQ(sem.available(), 1u) << "a cancelled acquirer must not stay queued and take the permit";
  }());
}

TEST_P(IoSemaphore, PermitHandedToAStoppedWaiterIsKept) {
  run([]() -> Task<void> {
    io::Semaphore sem(0, 1);
    std::exception_ptr outcome = co_await grant_then_stop(
        [&](Arrivals& a) -> Task<void> {
          a.arrive();
          io::SemaphoreGuard g = co_await sem.guard();
        },
        [&] { sem.release(); });
    EXPECT_FALSE(outcome) << "documented choice: the granted waiter acquires";
    EXPECT_EQ(sem.available(), 1u) << "the permit was lost";
  }());
}

// ---- Lock ----

TEST_P(IoLock, TryLockAndGuards) {
  run([]() -> Task<void> {
    io::Lock lock;
    EXPECT_THROW(lock.unlock(), weft::Error);
    EXPECT_TRUE(lock.try_lock());
    EXPECT_TRUE(lock.locked());
    EXPECT_FALSE(lock.try_lock());
    lock.unlock();
    EXPECT_FALSE(lock.locked());
    {
      io::LockGuard g = co_await lock.lock();
      EXPECT_TRUE(g.owns_lock());
      EXPECT_TRUE(lock.locked());
      io::LockGuard moved = std::move(g);
      EXPECT_FALSE(g.owns_lock());
      EXPECT_TRUE(lock.locked());
    }
    EXPECT_FALSE(lock.locked());
    io::LockGuard g = co_await lock.lock();
    g.release()->unlock();  // release() gives up the guard's ownership without unlocking
    EXPECT_FALSE(g.owns_lock());
    EXPECT_FALSE(lock.locked());
  }());
}

TEST_P(IoLock, ExcludesAcrossSuspensions) {
  constexpr int kTasks = 8;
  constexpr int kRounds = 5;
  int holders = 0;
  int max_holders = 0;
  int counter = 0;
  run([&]() -> Task<void> {
    io::Lock lock;
    auto worker = [&]() -> Task<void> {
      for (int r = 0; r < kRounds; ++r) {
        io::LockGuard g = co_await lock.lock();
        max_holders = std::max(max_holders, ++holders);
        int seen = counter;
        co_await io::sleep(100us);  // suspended while holding the lock
        counter = seen + 1;
        --holders;
      }
    };
    std::vector<Task<void>> tasks;
    for (int i = 0; i < kTasks; ++i) tasks.push_back(worker());
    co_await io::gather(std::move(tasks));
    EXPECT_FALSE(lock.locked());
  }());
  EXPECT_EQ(max_holders, 1);
  EXPECT_EQ(counter, kTasks * kRounds);
}

TEST_P(IoLock, HandsOverInFifoOrderWithoutBarging) {
  constexpr int kWaiters = 20;
  std::vector<int> order;
  bool barged = true;
  run([&]() -> Task<void> {
    io::Lock lock;
    io::LockGuard held = co_await lock.lock();
    order = co_await pass_order(
        kWaiters, [&]() -> Task<void> { io::LockGuard g = co_await lock.lock(); },  // unlocks on return
        [&] {
          held.unlock();  // handed to waiter 0: stays locked
          barged = lock.try_lock();
          EXPECT_TRUE(lock.locked());
        });
    EXPECT_FALSE(lock.locked());
  }());
  EXPECT_FALSE(barged) << "try_lock() took a lock handed to a queued waiter";
  EXPECT_EQ(order, iota_vector(kWaiters));
}

TEST_P(IoLock, LockIsCancellable) {
  run([]() -> Task<void> {
    io::Lock lock;
    io::LockGuard held = co_await lock.lock();
    co_await check_cancellation([&](Arrivals& a) -> Task<void> {
      a.arrive();
      io::LockGuard g = co_await lock.lock();
    });
    held.unlock();
    EXPECT_FALSE(lock.locked()) << "unlock() handed the lock to a cancelled waiter";
  }());
}

TEST_P(IoLock, LockHandedToAStoppedWaiterIsKept) {
  run([]() -> Task<void> {
    io::Lock lock;
    io::LockGuard held = co_await lock.lock();
    std::exception_ptr outcome = co_await grant_then_stop(
        [&](Arrivals& a) -> Task<void> {
          a.arrive();
          io::LockGuard g = co_await lock.lock();
        },
        [&] { held.unlock(); });
    EXPECT_FALSE(outcome) << "documented choice: the granted waiter owns the lock";
    EXPECT_FALSE(lock.locked()) << "the lock was handed to a waiter that dropped it";
  }());
}

// ---- Queue ----

TEST_P(IoQueue, TryPutAndTryGetKeepFifoOrder) {
  EXPECT_THROW((void)io::Queue<int>(0), std::invalid_argument);
  run([]() -> Task<void> {
    io::Queue<int> q(3);
    EXPECT_TRUE(q.empty());
    EXPECT_EQ(q.capacity(), 3u);
    EXPECT_EQ(q.try_get(), std::nullopt);
    for (int i = 1; i <= 3; ++i) EXPECT_TRUE(q.try_put(i));
    EXPECT_TRUE(q.full());
    EXPECT_FALSE(q.try_put(4));
    EXPECT_EQ(q.size(), 3u);
    EXPECT_EQ(q.try_get(), 1);
    co_await q.put(4);
    EXPECT_EQ(co_await q.get(), 2);
    EXPECT_EQ(q.try_get(), 3);
    EXPECT_EQ(co_await q.get(), 4);
    EXPECT_TRUE(q.empty());
  }());
}

TEST_P(IoQueue, PutWaitsWhileFullUntilAGet) {
  constexpr int kItems = 6;
  std::vector<int> got;
  run([&]() -> Task<void> {
    io::Queue<int> q(2);
    Arrivals arrived;
    int puts_done = 0;
    auto producer = [&]() -> Task<void> {
      for (int i = 0; i < kItems; ++i) {
        if (i == 2) arrived.arrive();  // this put finds the queue full
        co_await q.put(i);
        ++puts_done;
      }
    };
    co_await io::task_group([&](TaskGroup& g) -> Task<void> {
      g.spawn(producer());
      co_await arrived.reached(1);
      EXPECT_EQ(puts_done, 2);
      EXPECT_TRUE(q.full());
      got.push_back(co_await q.get());
      EXPECT_EQ(q.size(), 2u) << "the waiting putter's item takes the freed place";
      EXPECT_EQ(puts_done, 2) << "get() must not resume the putter inline";
      for (int i = 1; i < kItems; ++i) {
        got.push_back(co_await q.get());
        EXPECT_LE(q.size(), q.capacity());
      }
    });
    EXPECT_EQ(puts_done, kItems);
  }());
  EXPECT_EQ(got, iota_vector(kItems));
}

TEST_P(IoQueue, WaitingGettersReceiveItemsDirectlyInFifoOrder) {
  constexpr int kGetters = 5;
  std::vector<int> order;
  std::vector<int> items;
  run([&]() -> Task<void> {
    io::Queue<int> q(1);
    order = co_await pass_order(
        kGetters, [&]() -> Task<void> { items.push_back(co_await q.get()); },
        [&] {
          // Capacity 1, yet every put succeeds at once: each item goes straight to a waiting getter.
          for (int i = 0; i < kGetters; ++i) EXPECT_TRUE(q.try_put(i));
          EXPECT_TRUE(q.empty());
        });
  }());
  EXPECT_EQ(order, iota_vector(kGetters));
  EXPECT_EQ(items, iota_vector(kGetters));
}

TEST_P(IoQueue, ManyProducersAndConsumers) {
  constexpr int kProducers = 4;
  constexpr int kConsumers = 3;
  constexpr int kPerProducer = 300;
  constexpr std::size_t kCapacity = 5;
  std::vector<std::vector<int>> received(kConsumers);  // per consumer, in the order it got them
  std::size_t max_size = 0;
  int consumers_done = 0;
  run([&]() -> Task<void> {
    io::Queue<int> q(kCapacity);
    auto producer = [&](int p) -> Task<void> {
      for (int i = 0; i < kPerProducer; ++i) {
        co_await q.put(p * kPerProducer + i);
        max_size = std::max(max_size, q.size());
      }
    };
    auto consumer = [&](std::vector<int>& out) -> Task<void> {
      for (;;) {
        try {
          out.push_back(co_await q.get());
        } catch (const ChannelClosed&) {
          ++consumers_done;
          co_return;
        }
        max_size = std::max(max_size, q.size());
      }
    };
    co_await io::task_group([&](TaskGroup& g) -> Task<void> {
      for (auto& out : received) g.spawn(consumer(out));
      std::vector<Task<void>> producers;
      for (int p = 0; p < kProducers; ++p) producers.push_back(producer(p));
      co_await io::gather(std::move(producers));
      q.close();
    });
  }());
  constexpr int kTotal = kProducers * kPerProducer;
  std::size_t count = 0;
  long long sum = 0;
  for (const auto& out : received) {
    EXPECT_FALSE(out.empty()) << "every consumer got work";
    count += out.size();
    sum = std::accumulate(out.begin(), out.end(), sum);
    // FIFO: the items one consumer got from one producer come in the order that producer put them.
    std::vector<int> last(kProducers, -1);
    for (int v : out) {
      auto p = static_cast<std::size_t>(v / kPerProducer);
      EXPECT_GT(v, last[p]);
      last[p] = v;
    }
  }
  EXPECT_EQ(count, static_cast<std::size_t>(kTotal));
  EXPECT_EQ(sum, 1LL * kTotal * (kTotal - 1) / 2);
  EXPECT_LE(max_size, kCapacity);
  EXPECT_EQ(consumers_done, kConsumers);
}

TEST_P(IoQueue, CloseWakesEveryoneAndDrains) {
  run([]() -> Task<void> {
    io::Queue<int> q(2);
    Arrivals arrived;
    int closed_puts = 0;
    int closed_gets = 0;
    auto putter = [&](int v) -> Task<void> {
      arrived.arrive();
      closed_puts += is_error<ChannelClosed>(co_await error_of(as_task(q.put(v)))) ? 1 : 0;
    };
    EXPECT_TRUE(q.try_put(1));
    EXPECT_TRUE(q.try_put(2));
    co_await io::task_group([&](TaskGroup& g) -> Task<void> {
      g.spawn(putter(3));
      g.spawn(putter(4));
      co_await arrived.reached(2);
      q.close();
      q.close();
    });
    EXPECT_EQ(closed_puts, 2);
    EXPECT_TRUE(q.closed());
    EXPECT_THROW((void)q.try_put(5), ChannelClosed);
    EXPECT_TRUE(is_error<ChannelClosed>(co_await error_of(as_task(q.put(6)))));
    EXPECT_EQ(co_await q.get(), 1);  // the items queued before the close are still delivered
    EXPECT_EQ(q.try_get(), 2);
    EXPECT_TRUE(is_error<ChannelClosed>(co_await error_of(as_task(q.get()))));
    EXPECT_EQ(q.try_get(), std::nullopt);

    io::Queue<int> empty(1);
    auto getter = [&]() -> Task<void> {
      arrived.arrive();
      closed_gets += is_error<ChannelClosed>(co_await error_of(as_task(empty.get()))) ? 1 : 0;
    };
    co_await io::task_group([&](TaskGroup& g) -> Task<void> {
      g.spawn(getter());
      g.spawn(getter());
      co_await arrived.reached(4);
      empty.close();
    });
    EXPECT_EQ(closed_gets, 2);
  }());
}

TEST_P(IoQueue, GetAndPutAreCancellable) {
  run([]() -> Task<void> {
    io::Queue<int> q(1);
    co_await check_cancellation([&](Arrivals& a) -> Task<void> {
      a.arrive();
      (void)co_await q.get();
    });
    EXPECT_TRUE(q.try_put(1));
    EXPECT_EQ(q.size(), 1u) << "a cancelled getter must not stay queued and take the item";
    co_await check_cancellation([&](Arrivals& a) -> Task<void> {
      a.arrive();
      co_await q.put(2);
    });
    EXPECT_EQ(q.try_get(), 1);
    EXPECT_EQ(q.try_get(), std::nullopt) << "a cancelled put must not have queued its item";
  }());
}

TEST_P(IoQueue, StoppedGetterInTheMiddleLeavesTheLine) {
  std::vector<int> got(3, -1);
  bool middle_cancelled = false;
  run([&]() -> Task<void> {
    io::Queue<int> q(1);
    Arrivals arrived;
    TaskGroup* middle = nullptr;
    auto getter = [&](int id) -> Task<void> {
      arrived.arrive();
      try {
        got[static_cast<std::size_t>(id)] = co_await q.get();
      } catch (const Cancelled&) {
        middle_cancelled = id == 1;
      }
    };
    co_await io::task_group([&](TaskGroup& g) -> Task<void> {
      g.spawn(getter(0));
      co_await arrived.reached(1);
      g.spawn(io::task_group([&](TaskGroup& inner) -> Task<void> {
        middle = &inner;
        inner.spawn(getter(1));
        co_return;
      }));
      co_await arrived.reached(2);
      g.spawn(getter(2));
      co_await arrived.reached(3);
      middle->cancel();
      EXPECT_TRUE(q.try_put(10));
      EXPECT_TRUE(q.try_put(20));
    });
  }());
  EXPECT_TRUE(middle_cancelled);
  EXPECT_EQ(got, (std::vector<int>{10, -1, 20}));
}

TEST_P(IoQueue, ItemHandedToAStoppedGetterIsNotLost) {
  std::optional<int> got;
  std::optional<int> left_in_queue;
  std::exception_ptr outcome;
  run([&]() -> Task<void> {
    io::Queue<int> q(1);
    outcome = co_await grant_then_stop(
        [&](Arrivals& a) -> Task<void> {
          a.arrive();
          got = co_await q.get();
        },
        [&] { EXPECT_TRUE(q.try_put(7)); });
    left_in_queue = q.try_get();
  }());
  EXPECT_TRUE(got == 7 || left_in_queue == 7) << "the item was lost";
  EXPECT_EQ(got, 7) << "documented choice: the granted getter returns the item";
  EXPECT_FALSE(outcome) << weft::describe_exception(outcome);
}

TEST_P(IoQueue, SlotGrantedToAStoppedPutterKeepsItsItem) {
  std::vector<int> drained;
  std::exception_ptr outcome;
  run([&]() -> Task<void> {
    io::Queue<int> q(1);
    EXPECT_TRUE(q.try_put(1));
    outcome = co_await grant_then_stop(
        [&](Arrivals& a) -> Task<void> {
          a.arrive();
          co_await q.put(2);
        },
        [&] { drained.push_back(*q.try_get()); });
    while (auto v = q.try_get()) drained.push_back(*v);
  }());
  EXPECT_FALSE(outcome) << "documented choice: the put whose item went in returns normally";
  EXPECT_EQ(drained, (std::vector<int>{1, 2}));
}

TEST_P(IoQueue, MoveOnlyItems) {
  run([]() -> Task<void> {
    io::Queue<std::unique_ptr<int>> q(1);
    Arrivals arrived;
    std::unique_ptr<int> handed;
    auto getter = [&]() -> Task<void> {
      arrived.arrive();
      handed = co_await q.get();
    };
    co_await io::task_group([&](TaskGroup& g) -> Task<void> {
      g.spawn(getter());
      co_await arrived.reached(1);
      co_await q.put(std::make_unique<int>(1));  // straight to the getter
    });
    EXPECT_EQ(handed != nullptr ? *handed : -1, 1);

    co_await q.put(std::make_unique<int>(2));
    auto keep = std::make_unique<int>(3);
    EXPECT_FALSE(q.try_put(keep));
    EXPECT_EQ(keep != nullptr ? *keep : -1, 3) << "a failed try_put must leave its argument alone";
    auto blocked_putter = [&]() -> Task<void> {
      arrived.arrive();
      co_await q.put(std::move(keep));
    };
    std::vector<int> out;
    co_await io::task_group([&](TaskGroup& g) -> Task<void> {
      g.spawn(blocked_putter());
      co_await arrived.reached(2);
      for (int i = 0; i < 2; ++i) out.push_back(*co_await q.get());
    });
    EXPECT_EQ(out, (std::vector<int>{2, 3}));
    EXPECT_TRUE(q.empty());
  }());
}

}  // namespace
