// io::Event, io::Semaphore and io::Lock (io/sync.hpp) on both backends: FIFO order of waiters, wake-ups
// through the loop rather than inline, the bounds (permits, mutual exclusion across awaits), cancellation of
// every kind of wait by a timeout (io::wait_for) and by a cancelled task group, and the property that a grant
// made before a stop is never lost (protocol step 5).
//
// Tasks learn that others are suspended through Arrivals, never by sleeping; io::sleep appears only as the work
// done while holding a lock or a permit, and the short timeouts are the thing under test.
#include "sync_test_support.hpp"

namespace {

using namespace weft::test::iosync;

class IoEvent : public BackendTest {};
class IoSemaphore : public BackendTest {};
class IoLock : public BackendTest {};
WEFT_IO_INSTANTIATE(IoEvent);
WEFT_IO_INSTANTIATE(IoSemaphore);
WEFT_IO_INSTANTIATE(IoLock);

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

}  // namespace
