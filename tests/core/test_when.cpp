// Tests of the future combinators: when_all (vector and variadic), when_any, as_completed and
// wait(futures, ReturnWhen, timeout) — outcomes preserved per future, completion order, timeouts, invalid
// inputs, and completion racing registration from many threads.
#include "race_rounds.hpp"
#include "weft/core/when.hpp"

#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <barrier>
#include <chrono>
#include <cstddef>
#include <memory>
#include <numeric>
#include <stdexcept>
#include <string>
#include <thread>
#include <tuple>
#include <type_traits>
#include <utility>
#include <vector>

namespace {

using namespace std::chrono_literals;
using weft::Future;
using weft::Promise;

constexpr auto kLong = 30s;  // safety net for waits that must succeed

struct Custom : std::exception {
  explicit Custom(int c) : code(c) {}
  const char* what() const noexcept override { return "custom"; }
  int code;
};

// n fresh promises and their futures.
template <class T>
struct Batch {
  explicit Batch(std::size_t n) : promises(n) {
    futures.reserve(n);
    for (auto& p : promises) futures.push_back(p.get_future());
  }
  std::vector<Promise<T>> promises;
  std::vector<Future<T>> futures;
};

using weft::test::race_rounds;

std::vector<std::size_t> iota(std::size_t n) {
  std::vector<std::size_t> v(n);
  std::iota(v.begin(), v.end(), std::size_t{0});
  return v;
}

// ---- when_all ----------------------------------------------------------------------------------------

TEST(WhenAll, VectorReadyWhenAllAreReady) {
  Batch<int> b(5);
  auto all = weft::when_all(std::move(b.futures));
  static_assert(std::is_same_v<decltype(all), Future<std::vector<Future<int>>>>);
  const std::vector<std::size_t> order{3, 0, 4, 1};
  for (std::size_t i : order) {
    b.promises[i].set_value(static_cast<int>(i) * 10);
    EXPECT_FALSE(all.ready()) << "ready after only some were set";
  }
  std::jthread last([&] { b.promises[2].set_value(20); });
  auto futures = all.get_for(kLong);
  ASSERT_EQ(futures.size(), 5u);
  for (std::size_t i = 0; i < futures.size(); ++i) {
    ASSERT_TRUE(futures[i].ready());
    EXPECT_EQ(futures[i].get(), static_cast<int>(i) * 10);  // same order as the input
  }
}

TEST(WhenAll, EmptyVectorIsReadyAtOnce) {
  auto all = weft::when_all(std::vector<Future<int>>{});
  ASSERT_TRUE(all.ready());
  EXPECT_TRUE(all.get().empty());
}

TEST(WhenAll, AlreadyReadyInputs) {
  std::vector<Future<std::string>> v;
  v.push_back(weft::make_ready_future(std::string("a")));
  v.push_back(weft::make_ready_future(std::string("b")));
  auto all = weft::when_all(std::move(v));
  ASSERT_TRUE(all.ready());
  auto out = all.get();
  EXPECT_EQ(out[0].get(), "a");
  EXPECT_EQ(out[1].get(), "b");
}

TEST(WhenAll, MixedOutcomesArePreservedPerFuture) {
  Batch<int> b(4);
  ASSERT_TRUE(b.futures[2].cancel());
  auto all = weft::when_all(std::move(b.futures));
  b.promises[0].set_value(1);
  const auto thrown = std::make_exception_ptr(Custom(2));
  b.promises[1].set_exception(thrown);
  EXPECT_FALSE(all.ready());
  b.promises[3] = Promise<int>();  // breaks promise 3
  ASSERT_TRUE(all.ready());
  EXPECT_FALSE(all.cancelled());
  EXPECT_EQ(all.exception(), nullptr);  // when_all itself never fails
  auto out = all.get();
  ASSERT_EQ(out.size(), 4u);
  EXPECT_EQ(out[0].get(), 1);
  EXPECT_EQ(out[1].exception(), thrown);  // the very same exception object
  EXPECT_THROW(out[1].get(), Custom);
  EXPECT_TRUE(out[2].cancelled());
  EXPECT_THROW(out[2].get(), weft::Cancelled);
  EXPECT_THROW(out[3].get(), weft::BrokenPromise);
}

TEST(WhenAll, CancelledInputCounts) {
  Batch<int> b(2);
  Future<int> cancelled = std::move(b.futures[0]);
  ASSERT_TRUE(cancelled.cancel());
  std::vector<Future<int>> v;
  v.push_back(std::move(cancelled));
  v.push_back(std::move(b.futures[1]));
  auto all = weft::when_all(std::move(v));
  EXPECT_FALSE(all.ready());
  b.promises[1].set_value(5);
  auto out = all.get();
  EXPECT_TRUE(out[0].cancelled());
  EXPECT_THROW(out[0].get(), weft::Cancelled);
  EXPECT_EQ(out[1].get(), 5);
}

TEST(WhenAll, InvalidFutureThrowsFutureError) {
  std::vector<Future<int>> v;
  v.push_back(weft::make_ready_future(1));
  v.emplace_back();  // invalid
  EXPECT_THROW(weft::when_all(std::move(v)), weft::FutureError);
  EXPECT_THROW(weft::when_all(weft::make_ready_future(1), Future<double>()), weft::FutureError);
}

TEST(WhenAll, VariadicMixedTypes) {
  Promise<int> pi;
  Promise<std::string> ps;
  Promise<void> pv;
  auto all = weft::when_all(pi.get_future(), ps.get_future(), pv.get_future());
  static_assert(std::is_same_v<decltype(all), Future<std::tuple<Future<int>, Future<std::string>, Future<void>>>>);
  pv.set_value();
  ps.set_exception(std::make_exception_ptr(Custom(3)));
  EXPECT_FALSE(all.ready());
  std::jthread producer([&] { pi.set_value(7); });
  auto [fi, fs, fv] = all.get_for(kLong);
  EXPECT_EQ(fi.get(), 7);
  EXPECT_THROW(fs.get(), Custom);
  EXPECT_NO_THROW(fv.get());
}

TEST(WhenAll, VariadicOfOneAndOfNone) {
  auto one = weft::when_all(weft::make_ready_future(std::make_unique<int>(4)));
  ASSERT_TRUE(one.ready());
  auto [f] = one.get();
  EXPECT_EQ(*f.get(), 4);

  auto none = weft::when_all();
  static_assert(std::is_same_v<decltype(none), Future<std::tuple<>>>);
  EXPECT_TRUE(none.ready());
  EXPECT_NO_THROW(none.get());
}

// Completions from many threads race the registration of when_all's callbacks.
TEST(WhenAll, InputsCompletedFromManyThreads) {
  constexpr int kRounds = 100;
  constexpr std::size_t kFutures = 64;
  constexpr int kProducers = 4;
  std::unique_ptr<Batch<std::size_t>> b;
  Future<std::vector<Future<std::size_t>>> all;
  race_rounds(
      kRounds, kProducers + 1, [&](int) { b = std::make_unique<Batch<std::size_t>>(kFutures); },
      [&](int t, int) {
        if (t == kProducers) {
          all = weft::when_all(std::move(b->futures));
          return;
        }
        for (std::size_t i = static_cast<std::size_t>(t); i < kFutures; i += kProducers) b->promises[i].set_value(i);
      },
      [&](int r) {
        auto out = all.get_for(kLong);
        ASSERT_EQ(out.size(), kFutures) << "round " << r;
        for (std::size_t i = 0; i < kFutures; ++i) EXPECT_EQ(out[i].get(), i);
      });
}

// ---- when_any ----------------------------------------------------------------------------------------

TEST(WhenAny, ReportsTheIndexOfTheFirst) {
  Batch<int> b(4);
  auto any = weft::when_any(std::move(b.futures));
  static_assert(std::is_same_v<decltype(any), Future<weft::WhenAnyResult<int>>>);
  EXPECT_FALSE(any.ready());
  std::jthread producer([&] { b.promises[2].set_value(22); });
  auto r = any.get_for(kLong);
  producer.join();
  b.promises[0].set_value(0);  // later ones do not change the answer
  EXPECT_EQ(r.index, 2u);
  ASSERT_EQ(r.futures.size(), 4u);
  EXPECT_TRUE(r.futures[0].ready());
  EXPECT_FALSE(r.futures[1].ready());
  EXPECT_FALSE(r.futures[3].ready());
  EXPECT_EQ(r.futures[2].get(), 22);
  b.promises[1].set_value(1);
  b.promises[3].set_value(3);
  EXPECT_EQ(r.futures[1].get(), 1);
}

TEST(WhenAny, AlreadyReadyInputWins) {
  Batch<int> b(3);
  b.promises[1].set_value(5);
  auto any = weft::when_any(std::move(b.futures));
  ASSERT_TRUE(any.ready());
  auto r = any.get();
  EXPECT_EQ(r.index, 1u);
  EXPECT_EQ(r.futures[1].get(), 5);
}

TEST(WhenAny, FailureCountsAsCompletion) {
  Batch<void> b(3);
  auto any = weft::when_any(std::move(b.futures));
  b.promises[2].set_exception(std::make_exception_ptr(Custom(9)));
  auto r = any.get();
  EXPECT_EQ(r.index, 2u);
  EXPECT_THROW(r.futures[2].get(), Custom);

  Batch<int> c(2);
  auto any2 = weft::when_any(std::move(c.futures));
  c.promises[0] = Promise<int>();  // broken
  auto r2 = any2.get();
  EXPECT_EQ(r2.index, 0u);
  EXPECT_THROW(r2.futures[0].get(), weft::BrokenPromise);
}

TEST(WhenAny, EmptyIsInvalidArgument) {
  EXPECT_THROW(weft::when_any(std::vector<Future<int>>{}), std::invalid_argument);
}

TEST(WhenAny, InvalidFutureThrowsFutureError) {
  std::vector<Future<int>> v;
  v.emplace_back();
  EXPECT_THROW(weft::when_any(std::move(v)), weft::FutureError);
}

// Several inputs complete at once while when_any registers: one winner, and it is ready.
TEST(WhenAny, ExactlyOneWinnerWhenManyCompleteAtOnce) {
  constexpr int kRounds = 300;
  constexpr int kProducers = 3;
  std::unique_ptr<Batch<int>> b;
  Future<weft::WhenAnyResult<int>> any;
  race_rounds(
      kRounds, kProducers + 1, [&](int) { b = std::make_unique<Batch<int>>(kProducers); },
      [&](int t, int) {
        if (t == kProducers) {
          any = weft::when_any(std::move(b->futures));
        } else {
          b->promises[static_cast<std::size_t>(t)].set_value(t);
        }
      },
      [&](int r) {
        auto result = any.get_for(kLong);
        ASSERT_LT(result.index, static_cast<std::size_t>(kProducers)) << "round " << r;
        ASSERT_TRUE(result.futures[result.index].ready());
        EXPECT_EQ(result.futures[result.index].get(), static_cast<int>(result.index));
      });
}

// ---- as_completed ------------------------------------------------------------------------------------

TEST(AsCompleted, YieldsInCompletionOrder) {
  const std::vector<std::size_t> order{3, 0, 5, 1, 4, 2};
  Batch<int> b(order.size());
  auto it = weft::as_completed(std::move(b.futures));
  EXPECT_EQ(it.remaining(), order.size());
  std::jthread producer([&] {
    for (std::size_t i : order) b.promises[i].set_value(static_cast<int>(i) * 2);
  });
  std::vector<std::size_t> seen;
  for (auto& [index, future] : it) {
    ASSERT_TRUE(future.ready());
    EXPECT_EQ(future.get(), static_cast<int>(index) * 2);
    seen.push_back(index);
  }
  EXPECT_EQ(seen, order);
  EXPECT_EQ(it.remaining(), 0u);
  EXPECT_FALSE(it.next().has_value());
}

TEST(AsCompleted, WaitsForEachInLockstep) {
  // The producer completes the next future only after the consumer has received the previous one, so every
  // next() call has to wait.
  const std::vector<std::size_t> order{2, 4, 0, 3, 1};
  Batch<int> b(order.size());
  std::vector<Promise<void>> received(order.size());
  std::vector<Future<void>> received_f;
  for (auto& p : received) received_f.push_back(p.get_future());
  std::jthread producer([&] {
    for (std::size_t k = 0; k < order.size(); ++k) {
      if (k > 0) received_f[k - 1].wait();
      b.promises[order[k]].set_value(static_cast<int>(k));
    }
  });
  auto it = weft::as_completed(std::move(b.futures), kLong);
  std::size_t k = 0;
  while (auto c = it.next()) {
    EXPECT_EQ(c->index, order[k]);
    EXPECT_EQ(c->future.get(), static_cast<int>(k));
    EXPECT_EQ(it.remaining(), order.size() - k - 1);
    received[k].set_value();
    ++k;
  }
  EXPECT_EQ(k, order.size());
}

TEST(AsCompleted, AlreadyReadyComeFirstInInputOrder) {
  Batch<int> b(4);
  b.promises[3].set_value(3);
  b.promises[1].set_value(1);
  auto it = weft::as_completed(std::move(b.futures));
  b.promises[0].set_value(0);
  b.promises[2].set_value(2);
  std::vector<std::size_t> seen;
  for (auto& c : it) seen.push_back(c.index);
  // 1 and 3 were ready when registered (in input order), then 0 and 2 in completion order.
  EXPECT_EQ(seen, (std::vector<std::size_t>{1, 3, 0, 2}));
}

TEST(AsCompleted, FailuresAreYieldedToo) {
  Batch<int> b(2);
  b.promises[1].set_exception(std::make_exception_ptr(Custom(1)));
  b.promises[0].set_value(0);
  std::vector<std::size_t> seen;
  for (auto& [i, f] : weft::as_completed(std::move(b.futures))) {
    seen.push_back(i);
    if (i == 1) {
      EXPECT_THROW(f.get(), Custom);
    } else {
      EXPECT_EQ(f.get(), 0);
    }
  }
  EXPECT_EQ(seen, (std::vector<std::size_t>{0, 1}));
}

TEST(AsCompleted, TimeoutThrowsTimeout) {
  Batch<int> b(3);
  b.promises[1].set_value(1);
  auto it = weft::as_completed(std::move(b.futures), 20ms);
  auto first = it.next();
  ASSERT_TRUE(first.has_value());
  EXPECT_EQ(first->index, 1u);
  EXPECT_EQ(it.remaining(), 2u);
  EXPECT_THROW(it.next(), weft::Timeout);
  EXPECT_EQ(it.remaining(), 2u);  // nothing was handed out
  b.promises[0].set_value(0);     // completing afterwards is harmless
  b.promises[2].set_value(2);
}

TEST(AsCompleted, TimeoutRunsFromTheCall) {
  // The deadline is fixed when as_completed is called (as in Python): next() gives up no earlier than it.
  Batch<int> b(2);
  const auto start = std::chrono::steady_clock::now();
  auto it = weft::as_completed(std::move(b.futures), 30ms);
  EXPECT_THROW(it.next(), weft::Timeout);
  EXPECT_GE(std::chrono::steady_clock::now() - start, 30ms);
  EXPECT_THROW(it.next(), weft::Timeout);  // past the deadline: still a timeout, not a hang
  EXPECT_EQ(it.remaining(), 2u);
}

TEST(AsCompleted, TimeoutWithoutLimit) {
  Batch<int> b(2);
  auto it = weft::as_completed(std::move(b.futures), std::chrono::nanoseconds::max());
  std::jthread producer([&] {
    b.promises[1].set_value(1);
    b.promises[0].set_value(0);
  });
  std::vector<std::size_t> seen;
  for (auto& c : it) seen.push_back(c.index);
  EXPECT_EQ(seen, (std::vector<std::size_t>{1, 0}));
}

TEST(AsCompleted, EmptyInput) {
  auto it = weft::as_completed(std::vector<Future<int>>{});
  EXPECT_EQ(it.remaining(), 0u);
  EXPECT_FALSE(it.next().has_value());
  EXPECT_TRUE(it.begin() == it.end());
}

TEST(AsCompleted, InvalidFutureThrowsFutureError) {
  std::vector<Future<int>> v;
  v.push_back(weft::make_ready_future(1));
  v.emplace_back();
  EXPECT_THROW(weft::as_completed(std::move(v)), weft::FutureError);
}

// Producers on several threads; the consumer iterates concurrently: every future comes out exactly once.
TEST(AsCompleted, ManyProducersEveryFutureOnce) {
  constexpr int kRounds = 40;
  constexpr std::size_t kFutures = 100;
  constexpr int kProducers = 3;
  std::unique_ptr<Batch<std::size_t>> b;
  std::unique_ptr<weft::AsCompleted<std::size_t>> it;
  std::vector<int> count;
  race_rounds(
      kRounds, kProducers + 1,
      [&](int) {
        b = std::make_unique<Batch<std::size_t>>(kFutures);
        it = std::make_unique<weft::AsCompleted<std::size_t>>(std::move(b->futures), kLong);
        count.assign(kFutures, 0);
      },
      [&](int t, int) {
        if (t < kProducers) {
          for (std::size_t i = static_cast<std::size_t>(t); i < kFutures; i += kProducers) b->promises[i].set_value(i);
          return;
        }
        for (auto& [i, f] : *it) {
          EXPECT_EQ(f.get(), i);
          ++count[i];
        }
      },
      [&](int r) {
        for (std::size_t i = 0; i < kFutures; ++i) EXPECT_EQ(count[i], 1) << "round " << r << " index " << i;
      });
}

// ---- wait --------------------------------------------------------------------------------------------

TEST(Wait, AllCompleted) {
  Batch<int> b(3);
  std::jthread producer([&] {
    for (auto& p : b.promises) p.set_value(1);
  });
  auto r = weft::wait(b.futures);  // all_completed by default
  EXPECT_EQ(r.done, iota(3));
  EXPECT_TRUE(r.not_done.empty());
  for (auto& f : b.futures) {
    EXPECT_TRUE(f.valid());  // not consumed
    EXPECT_EQ(f.get(), 1);
  }
}

TEST(Wait, FirstCompleted) {
  Batch<int> b(3);
  std::jthread producer([&] { b.promises[1].set_value(1); });
  auto r = weft::wait(b.futures, weft::ReturnWhen::first_completed);
  producer.join();
  EXPECT_EQ(r.done, std::vector<std::size_t>{1});
  EXPECT_EQ(r.not_done, (std::vector<std::size_t>{0, 2}));
}

TEST(Wait, FirstCompletedWithAReadyFutureReturnsAtOnce) {
  Batch<int> b(2);
  b.promises[0].set_value(0);
  auto r = weft::wait(b.futures, weft::ReturnWhen::first_completed, kLong);
  EXPECT_EQ(r.done, std::vector<std::size_t>{0});
  EXPECT_EQ(r.not_done, std::vector<std::size_t>{1});
}

TEST(Wait, FirstExceptionReturnsOnAFailure) {
  Batch<int> b(3);
  b.promises[0].set_value(0);  // a value does not end the wait
  std::jthread producer([&] { b.promises[2].set_exception(std::make_exception_ptr(Custom(2))); });
  auto r = weft::wait(b.futures, weft::ReturnWhen::first_exception, kLong);
  producer.join();
  EXPECT_EQ(r.done, (std::vector<std::size_t>{0, 2}));
  EXPECT_EQ(r.not_done, std::vector<std::size_t>{1});
  EXPECT_THROW(b.futures[2].get(), Custom);
}

TEST(Wait, FirstExceptionWithoutFailuresWaitsForAll) {
  Batch<int> b(2);
  b.promises[0].set_value(0);
  std::jthread producer([&] { b.promises[1].set_value(1); });
  auto r = weft::wait(b.futures, weft::ReturnWhen::first_exception);
  EXPECT_EQ(r.done, iota(2));
  EXPECT_TRUE(r.not_done.empty());
}

TEST(Wait, CancellationIsNotAnException) {
  Batch<int> b(2);
  ASSERT_TRUE(b.futures[0].cancel());
  const auto start = std::chrono::steady_clock::now();
  auto r = weft::wait(b.futures, weft::ReturnWhen::first_exception, 30ms);
  // Had the cancellation counted, wait would have returned at once.
  EXPECT_GE(std::chrono::steady_clock::now() - start, 30ms);
  EXPECT_EQ(r.done, std::vector<std::size_t>{0});
  EXPECT_EQ(r.not_done, std::vector<std::size_t>{1});
  b.promises[1].set_value(1);
  // A cancelled future does count as done for all_completed.
  auto all = weft::wait(b.futures, weft::ReturnWhen::all_completed, kLong);
  EXPECT_EQ(all.done, iota(2));
}

TEST(Wait, TimeoutReturnsNotDone) {
  Batch<int> b(3);
  b.promises[2].set_value(2);
  const auto start = std::chrono::steady_clock::now();
  auto r = weft::wait(b.futures, weft::ReturnWhen::all_completed, 20ms);
  EXPECT_GE(std::chrono::steady_clock::now() - start, 20ms);
  EXPECT_EQ(r.done, std::vector<std::size_t>{2});
  EXPECT_EQ(r.not_done, (std::vector<std::size_t>{0, 1}));
  // Zero timeout: a snapshot.
  auto snap = weft::wait(b.futures, weft::ReturnWhen::first_exception, 0ms);
  EXPECT_EQ(snap.done, std::vector<std::size_t>{2});
  EXPECT_EQ(snap.not_done, (std::vector<std::size_t>{0, 1}));
}

TEST(Wait, TimeoutWithoutLimit) {
  Batch<int> b(2);
  std::jthread producer([&] {
    for (auto& p : b.promises) p.set_value(1);
  });
  auto r = weft::wait(b.futures, weft::ReturnWhen::all_completed, std::chrono::nanoseconds::max());
  EXPECT_EQ(r.done, iota(2));
  EXPECT_TRUE(r.not_done.empty());
}

TEST(Wait, EmptyReturnsAtOnce) {
  const std::vector<Future<int>> none;
  for (auto when :
       {weft::ReturnWhen::first_completed, weft::ReturnWhen::first_exception, weft::ReturnWhen::all_completed}) {
    auto r = weft::wait(none, when);
    EXPECT_TRUE(r.done.empty());
    EXPECT_TRUE(r.not_done.empty());
  }
}

TEST(Wait, InvalidFutureThrowsFutureError) {
  std::vector<Future<int>> v;
  v.push_back(weft::make_ready_future(1));
  v.emplace_back();
  EXPECT_THROW(weft::wait(v), weft::FutureError);
}

TEST(Wait, VoidFutures) {
  Batch<void> b(2);
  b.promises[0].set_value();
  b.promises[1].set_exception(std::make_exception_ptr(Custom(1)));
  auto r = weft::wait(b.futures, weft::ReturnWhen::first_exception);
  EXPECT_EQ(r.done, iota(2));
}

// wait(all_completed) while other threads complete the futures, some with exceptions.
TEST(Wait, AllCompletedFromManyThreads) {
  constexpr int kRounds = 60;
  constexpr std::size_t kFutures = 100;
  constexpr int kProducers = 3;
  std::unique_ptr<Batch<int>> b;
  weft::WaitResult result;
  race_rounds(
      kRounds, kProducers + 1, [&](int) { b = std::make_unique<Batch<int>>(kFutures); },
      [&](int t, int) {
        if (t == kProducers) {
          result = weft::wait(b->futures, weft::ReturnWhen::all_completed, kLong);
          return;
        }
        for (std::size_t i = static_cast<std::size_t>(t); i < kFutures; i += kProducers) {
          if (i % 7 == 0) {
            b->promises[i].set_exception(std::make_exception_ptr(Custom(static_cast<int>(i))));
          } else {
            b->promises[i].set_value(static_cast<int>(i));
          }
        }
      },
      [&](int r) {
        EXPECT_EQ(result.done.size(), kFutures) << "round " << r;
        EXPECT_TRUE(result.not_done.empty());
      });
}

}  // namespace
