// Tests for weft::Channel<T>: FIFO order, MPMC delivery exactly once, blocking and waking, close semantics,
// the try/timed variants, capacities, move-only values and range-for; and, with a value whose move blocks
// (Gated), the protocol steps that only matter while a slot is half-written or half-read: the chained
// wakes and the wake-up of every receiver after a close (channel.hpp, steps 7 and 8).
//
// Threads synchronise with latches and futures. The only real waits are the timeouts under test and a short
// "is it still blocked?" check (future::wait_for) before the event that should unblock it.
#include "weft/sync/channel.hpp"

#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <future>
#include <iterator>
#include <latch>
#include <memory>
#include <numeric>
#include <ranges>
#include <stdexcept>
#include <thread>
#include <utility>
#include <vector>

namespace {

using namespace std::chrono_literals;
using weft::Channel;
using weft::ChannelClosed;

// Long enough to notice a blocked call is blocked; never relied upon for ordering.
constexpr auto kStillBlocked = 20ms;
// A safety net: a correct run finishes far sooner, a broken one fails instead of hanging the suite.
constexpr auto kSafetyNet = 60s;

template <class F>
bool finishes(F& future) {
  return future.wait_for(kSafetyNet) == std::future_status::ready;
}

// Declared after a test's futures, so it runs before their destructors: when a failed assertion leaves a
// thread blocked on the channel, closing it releases that thread, and the test fails instead of hanging.
template <class T>
struct CloseOnExit {
  Channel<T>& channel;
  ~CloseOnExit() { channel.close(); }
};
template <class T>
CloseOnExit(Channel<T>&) -> CloseOnExit<T>;

static_assert(std::input_iterator<Channel<int>::iterator>);
static_assert(std::ranges::input_range<Channel<int>>);
static_assert(std::input_iterator<Channel<std::unique_ptr<int>>::iterator>);

TEST(Channel, FifoOrderOneToOne) {
  constexpr int kCount = 100'000;
  Channel<int> ch(16);
  auto producer = std::async(std::launch::async, [&] {
    try {
      for (int i = 0; i < kCount; ++i) ch.send(i);
    } catch (const ChannelClosed&) {  // only when the test failed and closed it early
    }
    ch.close();
  });
  CloseOnExit guard{ch};
  for (int i = 0; i < kCount; ++i) {
    const std::optional<int> v = ch.recv();
    ASSERT_TRUE(v.has_value());
    ASSERT_EQ(*v, i);
  }
  EXPECT_EQ(ch.recv(), std::nullopt);
  ASSERT_TRUE(finishes(producer));
  producer.get();
  EXPECT_TRUE(ch.closed());
}

// Each producer sends (producer << 32 | i) for i = 0..count-1; consumers receive until closed and drained.
// Checks: every value arrives exactly once, and each consumer sees each producer's values in send order.
void run_mpmc(int producers, int consumers, std::size_t capacity, std::uint32_t per_producer) {
  SCOPED_TRACE(testing::Message() << producers << " producers, " << consumers << " consumers, capacity "
                                  << capacity);
  Channel<std::uint64_t> ch(capacity);
  std::latch start(producers + consumers);
  std::vector<std::future<void>> senders;
  for (int p = 0; p < producers; ++p) {
    senders.push_back(std::async(std::launch::async, [&, p] {
      start.arrive_and_wait();
      for (std::uint32_t i = 0; i < per_producer; ++i) ch.send(std::uint64_t{static_cast<std::uint32_t>(p)} << 32 | i);
    }));
  }
  std::vector<std::future<std::vector<std::uint64_t>>> receivers;
  for (int c = 0; c < consumers; ++c) {
    receivers.push_back(std::async(std::launch::async, [&] {
      std::vector<std::uint64_t> got;
      start.arrive_and_wait();
      while (std::optional<std::uint64_t> v = ch.recv()) got.push_back(*v);
      return got;
    }));
  }
  CloseOnExit guard{ch};
  for (auto& s : senders) {
    ASSERT_TRUE(finishes(s));
    s.get();
  }
  ch.close();
  std::vector<std::uint32_t> seen(static_cast<std::size_t>(producers) * per_producer, 0);
  for (auto& r : receivers) {
    ASSERT_TRUE(finishes(r));
    const std::vector<std::uint64_t> got = r.get();
    std::vector<std::int64_t> last(producers, -1);
    for (const std::uint64_t v : got) {
      const auto p = static_cast<std::size_t>(v >> 32);
      const auto i = static_cast<std::int64_t>(v & 0xffffffffu);
      ASSERT_LT(p, static_cast<std::size_t>(producers));
      ASSERT_GT(i, last[p]) << "producer " << p << "'s values reached one consumer out of order";
      last[p] = i;
      ++seen[p * per_producer + static_cast<std::size_t>(i)];
    }
  }
  EXPECT_TRUE(std::all_of(seen.begin(), seen.end(), [](std::uint32_t n) { return n == 1; }))
      << "some value was lost or received twice";
  EXPECT_EQ(ch.size(), 0u);
}

TEST(Channel, MpmcEveryValueReceivedOnce) {
  const std::pair<int, int> shapes[] = {{1, 1}, {2, 2}, {4, 4}, {8, 3}};
  for (const auto& [producers, consumers] : shapes) {
    for (const std::size_t capacity : {std::size_t{1}, std::size_t{3}, std::size_t{64}, std::size_t{1024}}) {
      run_mpmc(producers, consumers, capacity, 5'000);
    }
  }
}

TEST(Channel, BlockingSendUnblocksWhenSpaceAppears) {
  Channel<int> ch(2);
  ch.send(1);
  ch.send(2);
  int three = 3;
  EXPECT_FALSE(ch.try_send(three));
  std::latch sending(1);
  auto sender = std::async(std::launch::async, [&] {
    sending.count_down();
    ch.send(3);
  });
  CloseOnExit guard{ch};
  sending.wait();
  EXPECT_EQ(sender.wait_for(kStillBlocked), std::future_status::timeout) << "send did not block while full";
  EXPECT_EQ(ch.recv(), 1);
  ASSERT_TRUE(finishes(sender));
  sender.get();
  EXPECT_EQ(ch.recv(), 2);
  EXPECT_EQ(ch.recv(), 3);
}

TEST(Channel, BlockingRecvUnblocksWhenValueArrives) {
  Channel<int> ch(4);
  std::latch receiving(1);
  auto receiver = std::async(std::launch::async, [&] {
    receiving.count_down();
    return ch.recv();
  });
  CloseOnExit guard{ch};
  receiving.wait();
  EXPECT_EQ(receiver.wait_for(kStillBlocked), std::future_status::timeout) << "recv did not block while empty";
  ch.send(42);
  ASSERT_TRUE(finishes(receiver));
  EXPECT_EQ(receiver.get(), 42);
}

TEST(Channel, CloseWakesBlockedReceivers) {
  constexpr int kReceivers = 4;
  Channel<int> ch(8);
  std::latch receiving(kReceivers);
  std::vector<std::future<std::optional<int>>> receivers;
  for (int i = 0; i < kReceivers; ++i) {
    receivers.push_back(std::async(std::launch::async, [&] {
      receiving.count_down();
      return ch.recv();
    }));
  }
  CloseOnExit guard{ch};
  receiving.wait();
  EXPECT_EQ(receivers[0].wait_for(kStillBlocked), std::future_status::timeout);
  ch.close();
  for (auto& r : receivers) {
    ASSERT_TRUE(finishes(r));
    EXPECT_EQ(r.get(), std::nullopt);
  }
  EXPECT_TRUE(ch.closed());
}

TEST(Channel, CloseWakesBlockedSenders) {
  constexpr int kSenders = 3;
  Channel<int> ch(1);
  ch.send(7);
  std::latch sending(kSenders);
  std::vector<std::future<void>> senders;
  for (int i = 0; i < kSenders; ++i) {
    senders.push_back(std::async(std::launch::async, [&, i] {
      sending.count_down();
      ch.send(100 + i);
    }));
  }
  CloseOnExit guard{ch};
  sending.wait();
  EXPECT_EQ(senders[0].wait_for(kStillBlocked), std::future_status::timeout);
  ch.close();
  for (auto& s : senders) {
    ASSERT_TRUE(finishes(s));
    EXPECT_THROW(s.get(), ChannelClosed);
  }
  EXPECT_EQ(ch.recv(), 7);  // sent before the close: still delivered
  EXPECT_EQ(ch.recv(), std::nullopt);
}

TEST(Channel, ValuesSentBeforeCloseAreReceived) {
  Channel<int> ch(10);
  for (int i = 0; i < 10; ++i) ch.send(i);
  ch.close();
  ch.close();  // idempotent
  EXPECT_TRUE(ch.closed());
  EXPECT_THROW(ch.send(10), ChannelClosed);
  EXPECT_EQ(ch.size(), 10u);
  for (int i = 0; i < 10; ++i) EXPECT_EQ(ch.recv(), i);
  EXPECT_EQ(ch.recv(), std::nullopt);
  EXPECT_EQ(ch.try_recv(), std::nullopt);
  EXPECT_EQ(ch.recv_for(1h), std::nullopt);  // closed and drained: returns at once
}

// Senders race with close(): every send that returned normally must be received, none that threw.
TEST(Channel, CloseRaceLosesNoValue) {
  constexpr int kRounds = 50;
  constexpr int kSenders = 3;
  for (int round = 0; round < kRounds; ++round) {
    Channel<int> ch(4);
    std::latch start(kSenders + 2);
    std::vector<std::future<std::vector<int>>> senders;
    for (int s = 0; s < kSenders; ++s) {
      senders.push_back(std::async(std::launch::async, [&, s] {
        std::vector<int> sent;
        start.arrive_and_wait();
        try {
          for (int i = 0; i < 1'000'000; ++i) {  // bounded; close() ends it much sooner
            ch.send(s * 1'000'000 + i);
            sent.push_back(s * 1'000'000 + i);
          }
        } catch (const ChannelClosed&) {
        }
        return sent;
      }));
    }
    auto receiver = std::async(std::launch::async, [&] {
      std::vector<int> got;
      start.arrive_and_wait();
      while (std::optional<int> v = ch.recv()) got.push_back(*v);
      return got;
    });
    CloseOnExit guard{ch};
    start.arrive_and_wait();
    for (int i = 0; i < 100 && ch.size() < 4; ++i) std::this_thread::yield();  // let some values through
    ch.close();
    std::vector<int> sent;
    for (auto& s : senders) {
      ASSERT_TRUE(finishes(s));
      const std::vector<int> part = s.get();
      sent.insert(sent.end(), part.begin(), part.end());
    }
    ASSERT_TRUE(finishes(receiver));
    std::vector<int> got = receiver.get();
    std::sort(sent.begin(), sent.end());
    std::sort(got.begin(), got.end());
    ASSERT_EQ(got, sent) << "round " << round;
  }
}

// Regression for lost "chained" wakes: many receivers asleep, values arriving from several senders;
// each receiver takes exactly one value and leaves, so a value stranded behind a wake that went to a
// receiver which found the head slot not yet written would leave a receiver blocked forever.
TEST(Channel, EveryBlockedReceiverGetsAValue) {
  constexpr int kRounds = 100;
  constexpr int kReceivers = 6;
  constexpr int kSenders = 3;
  for (int round = 0; round < kRounds; ++round) {
    Channel<int> ch(8);
    std::latch start(kReceivers + kSenders);
    std::vector<std::future<std::optional<int>>> receivers;
    for (int r = 0; r < kReceivers; ++r) {
      receivers.push_back(std::async(std::launch::async, [&] {
        start.count_down();
        return ch.recv();
      }));
    }
    std::vector<std::future<void>> senders;
    for (int s = 0; s < kSenders; ++s) {
      senders.push_back(std::async(std::launch::async, [&, s] {
        start.arrive_and_wait();
        for (int i = 0; i < kReceivers / kSenders; ++i) ch.send(s * 100 + i);
      }));
    }
    CloseOnExit guard{ch};
    int sum = 0;
    for (auto& r : receivers) {
      ASSERT_TRUE(finishes(r)) << "round " << round;
      const std::optional<int> v = r.get();
      ASSERT_TRUE(v.has_value());
      sum += *v;
    }
    for (auto& s : senders) s.get();
    int expected = 0;
    for (int s = 0; s < kSenders; ++s) {
      for (int i = 0; i < kReceivers / kSenders; ++i) expected += s * 100 + i;
    }
    EXPECT_EQ(sum, expected);
  }
}

// The same for senders: capacity 1, many senders asleep on a full channel, receivers taking values.
TEST(Channel, EveryBlockedSenderGetsASlot) {
  constexpr int kRounds = 100;
  constexpr int kSenders = 6;
  constexpr int kReceivers = 3;
  for (int round = 0; round < kRounds; ++round) {
    Channel<int> ch(2);
    std::latch start(kReceivers + kSenders);
    std::vector<std::future<void>> senders;
    for (int s = 0; s < kSenders; ++s) {
      senders.push_back(std::async(std::launch::async, [&, s] {
        start.count_down();
        ch.send(s + 1);
      }));
    }
    std::vector<std::future<int>> receivers;
    for (int r = 0; r < kReceivers; ++r) {
      receivers.push_back(std::async(std::launch::async, [&] {
        start.arrive_and_wait();
        int sum = 0;
        for (int i = 0; i < kSenders / kReceivers; ++i) sum += ch.recv().value_or(-1000);
        return sum;
      }));
    }
    CloseOnExit guard{ch};
    for (auto& s : senders) {
      ASSERT_TRUE(finishes(s)) << "round " << round;
      s.get();
    }
    int sum = 0;
    for (auto& r : receivers) {
      ASSERT_TRUE(finishes(r));
      sum += r.get();
    }
    EXPECT_EQ(sum, kSenders * (kSenders + 1) / 2);
  }
}

// A value whose next move, once its gate is armed, blocks until the gate opens. Moved into the channel it
// holds a ring slot "claimed but not yet written"; moved out, "taken but not yet freed". That stretches
// the few-instruction windows the chained wakes and the drain wake-up exist for (protocol steps 7 and 8).
struct GateControl {
  std::atomic<bool> armed{false};
  std::latch entered{1};
  std::latch released{1};
  std::atomic<bool> opened{false};
  void open() {
    if (!opened.exchange(true)) released.count_down();
  }
};

struct Gated {
  int value = 0;
  GateControl* gate = nullptr;
  explicit Gated(int v, GateControl* g = nullptr) noexcept : value(v), gate(g) {}
  Gated(Gated&& o) noexcept : value(o.value), gate(o.gate) {
    if (gate != nullptr && gate->armed.exchange(false)) {
      gate->entered.count_down();
      gate->released.wait();
    }
  }
  Gated& operator=(Gated&&) = delete;
};

// Declared after a test's futures: opens the gate before their destructors wait for the blocked thread.
struct OpenOnExit {
  GateControl& gate;
  ~OpenOnExit() { gate.open(); }
};

int value_or(const std::optional<Gated>& v, int otherwise) { return v ? v->value : otherwise; }

// Step 8 (receivers): a value published behind a slot whose send is unfinished. The wake for it goes to a
// receiver that finds the head slot unwritten and sleeps again; once the head value arrives, whoever takes
// it must pass the wake on, or the second receiver sleeps forever next to a ready value.
TEST(Channel, ValueBehindAnUnfinishedSendWakesASecondReceiver) {
  Channel<Gated> ch(4);
  GateControl gate;
  gate.armed = true;
  std::latch receiving(2);
  auto receive = [&] {
    receiving.count_down();
    return value_or(ch.recv(), -1);
  };
  auto r1 = std::async(std::launch::async, receive);
  auto r2 = std::async(std::launch::async, receive);
  receiving.wait();
  auto slow = std::async(std::launch::async, [&] { ch.send(Gated(1, &gate)); });  // claims position 0
  CloseOnExit guard{ch};
  OpenOnExit opener{gate};
  gate.entered.wait();
  ch.send(Gated(2));  // position 1: ready at once, but nobody may take it before position 0
  EXPECT_EQ(r1.wait_for(kStillBlocked), std::future_status::timeout);
  EXPECT_EQ(r2.wait_for(std::chrono::milliseconds(0)), std::future_status::timeout);
  gate.open();
  ASSERT_TRUE(finishes(slow));
  ASSERT_TRUE(finishes(r1));
  ASSERT_TRUE(finishes(r2)) << "a value stayed in the channel while a receiver slept";
  const int a = r1.get();
  const int b = r2.get();
  EXPECT_EQ(std::min(a, b), 1);
  EXPECT_EQ(std::max(a, b), 2);
}

// Step 8 (senders): a slot freed behind one whose receive is unfinished. The wake for it goes to a sender
// that finds the tail slot still taken and sleeps again; once that slot is freed, the sender that fills it
// must pass the wake on, or the second sender sleeps forever next to a free slot.
TEST(Channel, SlotBehindAnUnfinishedRecvWakesASecondSender) {
  Channel<Gated> ch(2);
  GateControl gate;
  ch.send(Gated(1, &gate));  // position 0 (the gate is not armed yet: the move in does not block)
  ch.send(Gated(2));         // position 1: full
  gate.armed = true;         // the next move of value 1 is its move out of the ring
  std::latch sending(2);
  auto s1 = std::async(std::launch::async, [&] {
    sending.count_down();
    ch.send(Gated(3));
  });
  auto s2 = std::async(std::launch::async, [&] {
    sending.count_down();
    ch.send(Gated(4));
  });
  sending.wait();
  EXPECT_EQ(s1.wait_for(kStillBlocked), std::future_status::timeout);
  auto slow = std::async(std::launch::async, [&] { return value_or(ch.recv(), -1); });  // takes position 0
  CloseOnExit guard{ch};
  OpenOnExit opener{gate};
  gate.entered.wait();
  EXPECT_EQ(value_or(ch.recv(), -1), 2);  // frees slot 1, but the next send goes to position 2, slot 0
  EXPECT_EQ(s1.wait_for(kStillBlocked), std::future_status::timeout);
  EXPECT_EQ(s2.wait_for(std::chrono::milliseconds(0)), std::future_status::timeout);
  gate.open();
  ASSERT_TRUE(finishes(slow));
  EXPECT_EQ(slow.get(), 1);
  ASSERT_TRUE(finishes(s1));
  ASSERT_TRUE(finishes(s2)) << "a slot stayed free while a sender slept";
  s1.get();
  s2.get();
  const int c = value_or(ch.recv(), -1);
  const int d = value_or(ch.recv(), -1);
  EXPECT_EQ(std::min(c, d), 3);
  EXPECT_EQ(std::max(c, d), 4);
}

// Step 7: close() while a send that claimed its position before the close is still writing it. The
// receivers wake, find the ring not drained, sleep again; the late value must still be delivered, and the
// receiver that takes it must wake the others, which then see the end of the stream.
TEST(Channel, CloseDuringAnUnfinishedSendDeliversItAndWakesEveryReceiver) {
  constexpr int kReceivers = 3;
  Channel<Gated> ch(4);
  GateControl gate;
  gate.armed = true;
  std::latch receiving(kReceivers);
  std::vector<std::future<int>> receivers;
  for (int i = 0; i < kReceivers; ++i) {
    receivers.push_back(std::async(std::launch::async, [&] {
      receiving.count_down();
      return value_or(ch.recv(), -1);
    }));
  }
  receiving.wait();
  auto slow = std::async(std::launch::async, [&] { ch.send(Gated(1, &gate)); });
  CloseOnExit guard{ch};
  OpenOnExit opener{gate};
  gate.entered.wait();  // position 0 is claimed: the send happened before the close
  ch.close();
  EXPECT_EQ(receivers[0].wait_for(kStillBlocked), std::future_status::timeout) << "returned before drained";
  gate.open();
  ASSERT_TRUE(finishes(slow));
  EXPECT_NO_THROW(slow.get());
  int got_value = 0;
  int got_end = 0;
  for (auto& r : receivers) {
    ASSERT_TRUE(finishes(r)) << "a receiver slept through the end of the stream";
    (r.get() == 1 ? got_value : got_end) += 1;
  }
  EXPECT_EQ(got_value, 1);
  EXPECT_EQ(got_end, kReceivers - 1);
}

TEST(Channel, TrySendAndTryRecv) {
  Channel<std::unique_ptr<int>> ch(2);
  EXPECT_FALSE(ch.try_recv().has_value());
  auto a = std::make_unique<int>(1);
  EXPECT_TRUE(ch.try_send(a));
  EXPECT_EQ(a, nullptr);  // moved from on success
  EXPECT_TRUE(ch.try_send(std::make_unique<int>(2)));
  auto c = std::make_unique<int>(3);
  EXPECT_FALSE(ch.try_send(c));
  ASSERT_NE(c, nullptr);  // untouched on failure
  EXPECT_EQ(*c, 3);
  EXPECT_FALSE(ch.try_send(std::move(c)));
  ASSERT_NE(c, nullptr);  // an rvalue argument is untouched on failure too
  EXPECT_EQ(ch.size(), 2u);
  EXPECT_EQ(*ch.try_recv().value(), 1);
  ch.close();
  EXPECT_THROW((void)ch.try_send(c), ChannelClosed);
  EXPECT_NE(c, nullptr);
  EXPECT_EQ(*ch.try_recv().value(), 2);
  EXPECT_FALSE(ch.try_recv().has_value());
  EXPECT_TRUE(ch.closed());
}

TEST(Channel, TimedSendTimesOutWhenFull) {
  Channel<std::unique_ptr<int>> ch(1);
  ch.send(std::make_unique<int>(1));
  auto v = std::make_unique<int>(2);
  auto t0 = std::chrono::steady_clock::now();
  EXPECT_FALSE(ch.send_for(v, 30ms));
  EXPECT_GE(std::chrono::steady_clock::now() - t0, 30ms);
  ASSERT_NE(v, nullptr);
  t0 = std::chrono::steady_clock::now();
  EXPECT_FALSE(ch.send_until(v, std::chrono::steady_clock::now() + 20ms));
  EXPECT_GE(std::chrono::steady_clock::now() - t0, 20ms);
  EXPECT_FALSE(ch.send_until(v, std::chrono::system_clock::now() + 10ms));
  EXPECT_FALSE(ch.send_for(v, -5ms));  // already expired: one attempt, no wait
  EXPECT_FALSE(ch.send_for(std::move(v), 0ms));
  ASSERT_NE(v, nullptr);
  EXPECT_EQ(*v, 2);
  EXPECT_EQ(*ch.recv().value(), 1);
  EXPECT_TRUE(ch.send_for(v, 1h));
  EXPECT_EQ(v, nullptr);
  EXPECT_EQ(*ch.recv().value(), 2);
}

TEST(Channel, TimedRecvTimesOutWhenEmpty) {
  Channel<int> ch(4);
  auto t0 = std::chrono::steady_clock::now();
  EXPECT_EQ(ch.recv_for(30ms), std::nullopt);
  EXPECT_GE(std::chrono::steady_clock::now() - t0, 30ms);
  EXPECT_FALSE(ch.closed());  // a timeout, not the end of the stream
  t0 = std::chrono::steady_clock::now();
  EXPECT_EQ(ch.recv_until(std::chrono::steady_clock::now() + 20ms), std::nullopt);
  EXPECT_GE(std::chrono::steady_clock::now() - t0, 20ms);
  EXPECT_EQ(ch.recv_until(std::chrono::system_clock::now() + 10ms), std::nullopt);
  EXPECT_EQ(ch.recv_for(0ms), std::nullopt);
  EXPECT_EQ(ch.recv_for(std::chrono::duration<double>(0.001)), std::nullopt);
  ch.send(5);
  EXPECT_EQ(ch.recv_for(0ms), 5);  // a ready value is taken even with no time left
}

TEST(Channel, TimedOpsSeeValuesAndClose) {
  Channel<int> ch(1);
  std::latch waiting(1);
  auto receiver = std::async(std::launch::async, [&] {
    waiting.count_down();
    return ch.recv_for(kSafetyNet);
  });
  waiting.wait();
  int v = 9;
  EXPECT_TRUE(ch.send_for(v, kSafetyNet));
  ASSERT_TRUE(finishes(receiver));
  EXPECT_EQ(receiver.get(), 9);

  ch.send(10);
  std::latch sending(1);
  auto sender = std::async(std::launch::async, [&] {
    sending.count_down();
    int w = 11;
    return ch.send_until(w, std::chrono::steady_clock::time_point::max());  // no deadline
  });
  CloseOnExit guard{ch};
  sending.wait();
  EXPECT_EQ(sender.wait_for(kStillBlocked), std::future_status::timeout);
  ch.close();
  ASSERT_TRUE(finishes(sender));
  EXPECT_THROW(sender.get(), ChannelClosed);
  EXPECT_EQ(ch.recv_for(std::chrono::nanoseconds::max()), 10);
  EXPECT_EQ(ch.recv_until(std::chrono::system_clock::time_point::max()), std::nullopt);
  EXPECT_TRUE(ch.closed());
  int w = 12;
  EXPECT_THROW((void)ch.send_for(w, 1h), ChannelClosed);
  EXPECT_EQ(w, 12);
}

TEST(Channel, CapacityIsExact) {
  for (const std::size_t capacity : {std::size_t{1}, std::size_t{2}, std::size_t{3}, std::size_t{5},
                                     std::size_t{7}, std::size_t{100}, std::size_t{1000}}) {
    SCOPED_TRACE(capacity);
    Channel<int> ch(capacity);
    EXPECT_EQ(ch.capacity(), capacity);
    for (std::size_t lap = 0; lap < 3; ++lap) {  // several laps around the ring
      for (std::size_t i = 0; i < capacity; ++i) ASSERT_TRUE(ch.try_send(static_cast<int>(i)));
      EXPECT_EQ(ch.size(), capacity);
      EXPECT_FALSE(ch.try_send(-1));
      for (std::size_t i = 0; i < capacity; ++i) ASSERT_EQ(ch.try_recv(), static_cast<int>(i));
      EXPECT_EQ(ch.try_recv(), std::nullopt);
    }
  }
}

TEST(Channel, SmallAndOddCapacitiesKeepFifoUnderLoad) {
  for (const std::size_t capacity : {std::size_t{1}, std::size_t{3}, std::size_t{5}, std::size_t{1000}}) {
    SCOPED_TRACE(capacity);
    constexpr int kCount = 20'000;
    Channel<int> ch(capacity);
    auto producer = std::async(std::launch::async, [&] {
      try {
        for (int i = 0; i < kCount; ++i) ch.send(i);
      } catch (const ChannelClosed&) {  // only when the test failed and closed it early
      }
    });
    CloseOnExit guard{ch};
    for (int i = 0; i < kCount; ++i) ASSERT_EQ(ch.recv(), i);
    ASSERT_TRUE(finishes(producer));
    producer.get();
  }
}

TEST(Channel, MoveOnlyValues) {
  Channel<std::unique_ptr<int>> ch(3);
  auto producer = std::async(std::launch::async, [&] {
    try {
      for (int i = 0; i < 1000; ++i) ch.send(std::make_unique<int>(i));
    } catch (const ChannelClosed&) {  // only when the test failed and closed it early
    }
    ch.close();
  });
  CloseOnExit guard{ch};
  int expected = 0;
  for (std::unique_ptr<int>& p : ch) {
    ASSERT_NE(p, nullptr);
    EXPECT_EQ(*p, expected++);
    std::unique_ptr<int> mine = std::move(p);  // the loop hands out T&: the value may be taken
  }
  EXPECT_EQ(expected, 1000);
  ASSERT_TRUE(finishes(producer));
  producer.get();
}

TEST(Channel, RangeForEndsAtClose) {
  Channel<int> ch(4);
  auto producer = std::async(std::launch::async, [&] {
    try {
      for (int i = 0; i < 500; ++i) ch.send(i);
    } catch (const ChannelClosed&) {  // only when the test failed and closed it early
    }
    ch.close();
  });
  CloseOnExit guard{ch};
  std::vector<int> got;
  for (int& v : ch) got.push_back(v);
  std::vector<int> want(500);
  std::iota(want.begin(), want.end(), 0);
  EXPECT_EQ(got, want);
  ASSERT_TRUE(finishes(producer));
  producer.get();
  int n = 0;
  for (int& v : ch) n += v;  // closed and drained: the loop body never runs
  EXPECT_EQ(n, 0);
}

TEST(Channel, InvalidCapacityThrows) {
  EXPECT_THROW(Channel<int>(0), std::invalid_argument);
}

struct Counted {
  static std::atomic<int> destroyed;
  int value = 0;
  explicit Counted(int v) noexcept : value(v) {}
  Counted(Counted&& o) noexcept : value(std::exchange(o.value, -1)) {}
  Counted& operator=(Counted&&) = delete;  // the channel never assigns T
  ~Counted() {
    if (value >= 0) destroyed.fetch_add(1, std::memory_order_relaxed);
  }
};
std::atomic<int> Counted::destroyed{0};

TEST(Channel, LeftoverValuesAreDestroyedWithTheChannel) {
  Counted::destroyed = 0;
  {
    Channel<Counted> ch(5);
    for (int i = 0; i < 4; ++i) ch.send(Counted(i));
    EXPECT_EQ(ch.recv()->value, 0);  // the received temporary is destroyed here: one
    EXPECT_EQ(Counted::destroyed.load(), 1);
    for (Counted& c : ch) {  // non-assignable T works with range-for too
      if (c.value == 2) break;
    }
    EXPECT_EQ(Counted::destroyed.load(), 3);
  }
  EXPECT_EQ(Counted::destroyed.load(), 4);  // the one left in the ring
}

}  // namespace
