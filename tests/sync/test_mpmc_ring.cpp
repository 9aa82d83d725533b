// Tests for weft::detail::MpmcRing<T>: full/empty/closed/drained states, exact capacities (1, odd, powers of
// two) over several laps, stamps, leftover values at destruction, and a multi-threaded stress.
#include "weft/sync/detail/mpmc_ring.hpp"

#include <gtest/gtest.h>

#include <atomic>
#include <cstdint>
#include <future>
#include <latch>
#include <memory>
#include <stdexcept>
#include <thread>
#include <utility>
#include <vector>

namespace {

using weft::detail::MpmcRing;
using weft::detail::PushResult;

TEST(MpmcRing, FullEmptyClosedDrained) {
  MpmcRing<int> ring(3);
  EXPECT_EQ(ring.capacity(), 3u);
  int out = -1;
  EXPECT_FALSE(ring.try_pop(out));
  EXPECT_FALSE(ring.has_ready());
  EXPECT_EQ(ring.try_emplace(0, 1), PushResult::ok);
  EXPECT_EQ(ring.try_emplace(0, 2), PushResult::ok);
  EXPECT_EQ(ring.try_emplace(0, 3), PushResult::ok);
  EXPECT_EQ(ring.try_emplace(0, 4), PushResult::full);
  EXPECT_EQ(ring.size(), 3u);
  EXPECT_TRUE(ring.has_ready());
  ASSERT_TRUE(ring.try_pop(out));
  EXPECT_EQ(out, 1);
  EXPECT_FALSE(ring.closed());
  EXPECT_FALSE(ring.drained());
  EXPECT_TRUE(ring.close());
  EXPECT_FALSE(ring.close());  // idempotent: only the first call reports the transition
  EXPECT_TRUE(ring.closed());
  EXPECT_EQ(ring.try_emplace(0, 5), PushResult::closed);
  EXPECT_FALSE(ring.drained());  // values pushed before the close are still there
  ASSERT_TRUE(ring.try_pop(out));
  EXPECT_EQ(out, 2);
  ASSERT_TRUE(ring.try_pop(out));
  EXPECT_EQ(out, 3);
  EXPECT_TRUE(ring.drained());
  EXPECT_FALSE(ring.try_pop(out));
  EXPECT_EQ(ring.size(), 0u);
}

// Regression: with capacity 1 the original sequence numbers made "slot full for p" equal to "slot free for
// p + 1", so a second push overwrote the first value and the next pop spun forever.
TEST(MpmcRing, CapacityOneSecondPushIsFullBug) {
  MpmcRing<int> ring(1);
  EXPECT_EQ(ring.try_emplace(0, 1), PushResult::ok);
  EXPECT_EQ(ring.try_emplace(0, 2), PushResult::full);
  int out = 0;
  ASSERT_TRUE(ring.try_pop(out));
  EXPECT_EQ(out, 1);
  EXPECT_FALSE(ring.try_pop(out));
  for (int i = 0; i < 10; ++i) {
    EXPECT_EQ(ring.try_emplace(0, 10 + i), PushResult::ok);
    EXPECT_EQ(ring.try_emplace(0, -1), PushResult::full);
    ASSERT_TRUE(ring.try_pop(out));
    EXPECT_EQ(out, 10 + i);
  }
}

TEST(MpmcRing, ExactCapacityOverManyLaps) {
  for (const std::size_t capacity : {std::size_t{1}, std::size_t{2}, std::size_t{3}, std::size_t{6},
                                     std::size_t{8}, std::size_t{13}, std::size_t{64}}) {
    SCOPED_TRACE(capacity);
    MpmcRing<std::uint64_t> ring(capacity);
    std::uint64_t next_in = 0;
    std::uint64_t next_out = 0;
    for (int lap = 0; lap < 5; ++lap) {
      for (std::size_t i = 0; i < capacity; ++i) ASSERT_EQ(ring.try_emplace(0, next_in++), PushResult::ok);
      ASSERT_EQ(ring.try_emplace(0, std::uint64_t{999}), PushResult::full);
      // Pop half, push half again: the head and tail sit at different slots of different laps.
      for (std::size_t i = 0; i < capacity / 2; ++i) {
        std::uint64_t v = 0;
        ASSERT_TRUE(ring.try_pop(v));
        ASSERT_EQ(v, next_out++);
      }
      for (std::size_t i = 0; i < capacity / 2; ++i) ASSERT_EQ(ring.try_emplace(0, next_in++), PushResult::ok);
      ASSERT_EQ(ring.try_emplace(0, std::uint64_t{999}), PushResult::full);
      std::uint64_t v = 0;
      while (ring.try_pop(v)) ASSERT_EQ(v, next_out++);
      ASSERT_EQ(next_out, next_in);
    }
  }
}

TEST(MpmcRing, StampsTravelWithValues) {
  MpmcRing<int> ring(4);
  EXPECT_EQ(ring.peek_stamp(), std::nullopt);
  ASSERT_EQ(ring.try_emplace(111, 1), PushResult::ok);
  ASSERT_EQ(ring.try_emplace(222, 2), PushResult::ok);
  EXPECT_EQ(ring.peek_stamp(), 111u);
  int out = 0;
  std::uint64_t stamp = 0;
  ASSERT_TRUE(ring.try_pop(out, &stamp));
  EXPECT_EQ(out, 1);
  EXPECT_EQ(stamp, 111u);
  EXPECT_EQ(ring.peek_stamp(), 222u);
}

TEST(MpmcRing, ArgumentsAreConsumedOnlyOnSuccess) {
  MpmcRing<std::unique_ptr<int>> ring(1);
  auto a = std::make_unique<int>(1);
  auto b = std::make_unique<int>(2);
  EXPECT_EQ(ring.try_emplace(0, std::move(a)), PushResult::ok);
  EXPECT_EQ(a, nullptr);
  EXPECT_EQ(ring.try_emplace(0, std::move(b)), PushResult::full);
  EXPECT_NE(b, nullptr);
  ring.close();
  EXPECT_EQ(ring.try_emplace(0, std::move(b)), PushResult::closed);
  EXPECT_NE(b, nullptr);
}

TEST(MpmcRing, ZeroCapacityThrows) {
  EXPECT_THROW(MpmcRing<int>(0), std::invalid_argument);
}

struct Tracked {
  static std::atomic<int> live;
  int value = 0;
  explicit Tracked(int v) noexcept : value(v) { live.fetch_add(1, std::memory_order_relaxed); }
  Tracked(Tracked&& o) noexcept : value(o.value) { live.fetch_add(1, std::memory_order_relaxed); }
  Tracked& operator=(Tracked&& o) noexcept {
    value = o.value;
    return *this;
  }
  ~Tracked() { live.fetch_sub(1, std::memory_order_relaxed); }
};
std::atomic<int> Tracked::live{0};

TEST(MpmcRing, DestructorDestroysLeftoverValues) {
  Tracked::live = 0;
  {
    MpmcRing<Tracked> ring(5);
    for (int i = 0; i < 7; ++i) {  // wraps: the leftovers straddle the end of the slot array
      if (i >= 4) {
        Tracked out(0);
        ASSERT_TRUE(ring.try_pop(out));
      }
      ASSERT_EQ(ring.try_emplace(0, i), PushResult::ok);
    }
    EXPECT_EQ(Tracked::live.load(), 4);  // 7 pushed, 3 popped
  }
  EXPECT_EQ(Tracked::live.load(), 0);
  {
    MpmcRing<Tracked> ring(3);
    ASSERT_EQ(ring.try_emplace(0, 1), PushResult::ok);
    ring.close();
  }
  EXPECT_EQ(Tracked::live.load(), 0);
}

// P producers and C consumers using only the non-blocking calls (retrying with yield); every value arrives
// exactly once, and each consumer sees each producer's values in push order.
TEST(MpmcRing, StressEveryValueOnce) {
  constexpr int kProducers = 4;
  constexpr int kConsumers = 3;
  constexpr std::uint32_t kPerProducer = 20'000;
  for (const std::size_t capacity : {std::size_t{1}, std::size_t{7}, std::size_t{64}}) {
    SCOPED_TRACE(capacity);
    MpmcRing<std::uint64_t> ring(capacity);
    std::latch start(kProducers + kConsumers);
    std::atomic<int> producers_left{kProducers};
    std::vector<std::future<void>> producers;
    for (int p = 0; p < kProducers; ++p) {
      producers.push_back(std::async(std::launch::async, [&, p] {
        start.arrive_and_wait();
        for (std::uint32_t i = 0; i < kPerProducer; ++i) {
          const std::uint64_t v = std::uint64_t{static_cast<std::uint32_t>(p)} << 32 | i;
          while (ring.try_emplace(0, v) != PushResult::ok) std::this_thread::yield();
        }
        if (producers_left.fetch_sub(1) == 1) ring.close();
      }));
    }
    std::vector<std::future<std::vector<std::uint64_t>>> consumers;
    for (int c = 0; c < kConsumers; ++c) {
      consumers.push_back(std::async(std::launch::async, [&] {
        std::vector<std::uint64_t> got;
        start.arrive_and_wait();
        std::uint64_t v = 0;
        for (;;) {
          if (ring.try_pop(v)) {
            got.push_back(v);
          } else if (ring.drained()) {
            break;
          } else {
            std::this_thread::yield();
          }
        }
        return got;
      }));
    }
    for (auto& p : producers) p.get();
    std::vector<std::uint8_t> seen(kProducers * kPerProducer, 0);
    for (auto& c : consumers) {
      std::vector<std::int64_t> last(kProducers, -1);
      for (const std::uint64_t v : c.get()) {
        const auto p = static_cast<std::size_t>(v >> 32);
        const auto i = static_cast<std::int64_t>(v & 0xffffffffu);
        ASSERT_LT(p, static_cast<std::size_t>(kProducers));
        ASSERT_GT(i, last[p]);
        last[p] = i;
        ++seen[p * kPerProducer + static_cast<std::size_t>(i)];
      }
    }
    for (std::size_t k = 0; k < seen.size(); ++k) ASSERT_EQ(seen[k], 1) << "value " << k;
    EXPECT_TRUE(ring.drained());
  }
}

}  // namespace
