// The robust lock of Value/Array: a holder that dies leaves the lock to the next locker, who is told.
#include "weft/process/pipe.hpp"
#include "weft/process/process.hpp"
#include "weft/process/value.hpp"

#include "support.hpp"

#include <gtest/gtest.h>
#include <signal.h>
#include <unistd.h>

#include <chrono>
#include <cstdint>

namespace {

using namespace std::chrono_literals;
using weft::process::Connection;
using weft::process::Process;
using weft::process::Value;

using weft::test::kLong;

// Takes the lock, half-updates the value, tells the parent, then waits to be killed (or exits holding it).
void die_holding(Value<std::int64_t> v, Connection tell, bool exit_instead) {
  auto g = v.lock();
  (*g)[0] = -1;  // "half-updated"
  tell.send(1);
  if (exit_instead) ::_exit(0);
  for (;;) ::pause();
}

// Holds the lock until told to let go.
void hold_until_told(Value<std::int64_t> v, Connection c) {
  auto g = v.lock();
  c.send(1);
  (void)c.recv<int>(kLong);
}

TEST(RobustMutex, AHolderKilledOrExitingLeavesTheLockToTheNextLockerWhoIsTold) {
  for (bool exit_instead : {false, true}) {
    Value<std::int64_t> v(10);
    auto [here, there] = weft::process::Pipe();
    Process p(&die_holding, v, std::move(there), exit_instead);
    ASSERT_EQ(here.recv<int>(kLong), 1);  // it holds the lock now
    if (!exit_instead) p.kill();
    ASSERT_TRUE(p.join(kLong));
    {
      auto g = v.lock();
      EXPECT_TRUE(g.owner_died());
      EXPECT_EQ((*g)[0], -1);
      (*g)[0] = 10;  // repaired
    }
    auto g = v.lock();  // consistent again: an ordinary lock
    EXPECT_FALSE(g.owner_died());
    EXPECT_EQ((*g)[0], 10);
  }
}

TEST(RobustMutex, TryLockForTimesOutWhileAnotherProcessHoldsIt) {
  Value<std::int64_t> v(0);
  auto [here, there] = weft::process::Pipe();
  Process p(&hold_until_told, v, std::move(there));
  ASSERT_EQ(here.recv<int>(kLong), 1);
  // The lock lives in the shared segment; reach it through a RobustMutex view of the same memory.
  auto* m = reinterpret_cast<weft::process::RobustMutex*>(static_cast<char*>(v.memory().data()) +
                                                          weft::process::detail::kLockOffset);
  EXPECT_FALSE(m->try_lock_for(20ms));
  EXPECT_FALSE(m->try_lock());
  here.send(0);
  ASSERT_TRUE(p.join(kLong));
  EXPECT_TRUE(m->try_lock_for(kLong));
  m->unlock();
}

}  // namespace
