// io::Queue<T> (io/sync.hpp) on both backends: FIFO order of items and waiters, direct hand-off, capacity and
// back-pressure, many producers and consumers, close, cancellation of gets and puts, and that an item or a slot
// granted before a stop is never lost (protocol step 5).
#include "sync_test_support.hpp"

namespace {

using namespace weft::test::iosync;

class IoQueue : public BackendTest {};
WEFT_IO_INSTANTIATE(IoQueue);

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
