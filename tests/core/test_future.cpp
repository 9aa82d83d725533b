// Tests of weft::Future / weft::Promise: values (void, move-only), exceptions passed through unchanged,
// consuming get(), timed waits, cancellation, broken promises, done-callbacks, then() in all its forms,
// make_ready_future / make_exceptional_future, and races between producer, waiters, callbacks and cancel.
#include "race_rounds.hpp"
#include "weft/core/future.hpp"

#include "weft/thread/thread_pool.hpp"

#include <gtest/gtest.h>

#include <atomic>
#include <barrier>
#include <chrono>
#include <cstddef>
#include <exception>
#include <latch>
#include <memory>
#include <mutex>
#include <stdexcept>
#include <string>
#include <string_view>
#include <thread>
#include <type_traits>
#include <utility>
#include <vector>

namespace {

using namespace std::chrono_literals;
using weft::Future;
using weft::Promise;

// A generous safety net for waits that must succeed; never the thing being measured.
constexpr auto kLong = 30s;

// An exception type of our own, not derived from std::runtime_error, with a payload.
struct Custom : std::exception {
  explicit Custom(int c) : code(c) {}
  const char* what() const noexcept override { return "custom"; }
  int code;
};

// The address of the exception object held by `p` (nullptr when it is not an E). The object lives as long
// as any exception_ptr to it, so two addresses may be compared to tell whether two pointers share it.
template <class E>
const E* address_in(const std::exception_ptr& p) {
  try {
    std::rethrow_exception(p);
  } catch (const E& e) {
    return &e;
  } catch (...) {
    return nullptr;
  }
}

// Installs an unhandled-exception handler that records what it gets; restores the previous one on exit.
class CapturedErrors {
 public:
  CapturedErrors() {
    previous_ = weft::set_unhandled_exception_handler([this](std::exception_ptr e, std::string_view context) {
      std::lock_guard lock(mutex_);
      errors_.push_back(std::move(e));
      contexts_.emplace_back(context);
    });
  }
  ~CapturedErrors() { weft::set_unhandled_exception_handler(std::move(previous_)); }
  CapturedErrors(const CapturedErrors&) = delete;
  CapturedErrors& operator=(const CapturedErrors&) = delete;

  std::vector<std::exception_ptr> errors() {
    std::lock_guard lock(mutex_);
    return errors_;
  }
  std::vector<std::string> contexts() {
    std::lock_guard lock(mutex_);
    return contexts_;
  }

 private:
  std::mutex mutex_;
  std::vector<std::exception_ptr> errors_;
  std::vector<std::string> contexts_;
  weft::UnhandledExceptionHandler previous_;
};

// Counts live instances, to check that values are destroyed exactly once.
struct Tracked {
  static inline std::atomic<int> live{0};
  int value;
  explicit Tracked(int v) : value(v) { live.fetch_add(1); }
  Tracked(Tracked&& o) noexcept : value(o.value) { live.fetch_add(1); }
  Tracked(const Tracked&) = delete;
  Tracked& operator=(const Tracked&) = delete;
  ~Tracked() { live.fetch_sub(1); }
};

// ---- values ------------------------------------------------------------------------------------------

TEST(Future, ValueRoundTrip) {
  Promise<int> p;
  Future<int> f = p.get_future();
  EXPECT_TRUE(f.valid());
  EXPECT_FALSE(f.ready());
  EXPECT_TRUE(p.set_value(42));
  EXPECT_TRUE(f.ready());
  EXPECT_FALSE(f.cancelled());
  EXPECT_EQ(f.get(), 42);
  EXPECT_FALSE(f.valid());
}

TEST(Future, VoidRoundTrip) {
  Promise<void> p;
  Future<void> f = p.get_future();
  EXPECT_FALSE(f.ready());
  EXPECT_TRUE(p.set_value());
  EXPECT_TRUE(f.ready());
  EXPECT_NO_THROW(f.get());
  EXPECT_FALSE(f.valid());
}

TEST(Future, MoveOnlyValue) {
  Promise<std::unique_ptr<int>> p;
  auto f = p.get_future();
  p.set_value(std::make_unique<int>(7));
  std::unique_ptr<int> v = f.get();
  ASSERT_NE(v, nullptr);
  EXPECT_EQ(*v, 7);
}

TEST(Future, ValueIsConstructedFromArguments) {
  Promise<std::string> p;
  auto f = p.get_future();
  p.set_value(3u, 'x');
  EXPECT_EQ(f.get(), "xxx");
}

TEST(Future, ValueIsDestroyedExactlyOnce) {
  ASSERT_EQ(Tracked::live.load(), 0);
  {
    Promise<Tracked> p;
    auto f = p.get_future();
    p.set_value(5);
    EXPECT_EQ(Tracked::live.load(), 1);
    Tracked t = f.get();
    EXPECT_EQ(t.value, 5);
  }
  EXPECT_EQ(Tracked::live.load(), 0);
  {
    Promise<Tracked> p;
    auto f = p.get_future();
    p.set_value(6);  // never read: destroyed with the shared state
  }
  EXPECT_EQ(Tracked::live.load(), 0);
  {
    Promise<Tracked> p;
    p.set_value(7);  // the future was never retrieved
  }
  EXPECT_EQ(Tracked::live.load(), 0);
}

TEST(Future, ThrowingValueConstructorStoresTheException) {
  struct Explodes {
    explicit Explodes(int) { throw Custom(3); }
  };
  Promise<Explodes> p;
  auto f = p.get_future();
  EXPECT_TRUE(p.set_value(1));
  EXPECT_THROW(f.get(), Custom);
}

TEST(Future, ValueSetFromAnotherThreadWakesTheWaiter) {
  for (int round = 0; round < 20; ++round) {
    Promise<int> p;
    auto f = p.get_future();
    std::latch go(1);
    std::jthread producer([&] {
      go.wait();
      p.set_value(round);
    });
    go.count_down();
    EXPECT_EQ(f.get(), round);
  }
}

// ---- exceptions --------------------------------------------------------------------------------------

TEST(Future, ExceptionPropagatesUnchanged) {
  Promise<int> p;
  auto f = p.get_future();
  const std::exception_ptr thrown = std::make_exception_ptr(Custom(17));
  p.set_exception(thrown);
  EXPECT_TRUE(f.ready());
  const std::exception_ptr seen = f.exception();
  EXPECT_EQ(seen, thrown);  // the very same exception object
  try {
    f.get();
    FAIL() << "get() must throw";
  } catch (const Custom& e) {
    EXPECT_EQ(e.code, 17);
    EXPECT_EQ(&e, address_in<Custom>(thrown));
  }
  EXPECT_FALSE(f.valid());
}

TEST(Future, ExceptionOfAnyTypePropagates) {
  Promise<void> p;
  auto f = p.get_future();
  p.set_exception(std::make_exception_ptr(42));
  try {
    f.get();
    FAIL() << "get() must throw";
  } catch (int v) {
    EXPECT_EQ(v, 42);
  }
}

TEST(Future, SetFromStoresResultOrException) {
  Promise<int> ok;
  auto fok = ok.get_future();
  EXPECT_TRUE(ok.set_from([](int a, int b) { return a * b; }, 6, 7));
  EXPECT_EQ(fok.get(), 42);

  Promise<int> bad;
  auto fbad = bad.get_future();
  EXPECT_TRUE(bad.set_from([]() -> int { throw Custom(1); }));
  EXPECT_THROW(fbad.get(), Custom);

  Promise<void> vbad;
  auto fvbad = vbad.get_future();
  EXPECT_TRUE(vbad.set_from([] { throw std::out_of_range("x"); }));
  EXPECT_THROW(fvbad.get(), std::out_of_range);
}

TEST(Future, ExceptionAccessorDoesNotConsume) {
  Promise<int> p;
  auto f = p.get_future();
  p.set_value(1);
  EXPECT_EQ(f.exception(), nullptr);
  EXPECT_TRUE(f.valid());
  EXPECT_EQ(f.get(), 1);

  Promise<int> q;
  auto g = q.get_future();
  auto e = std::make_exception_ptr(std::logic_error("bad"));
  q.set_exception(e);
  EXPECT_EQ(g.exception(), e);
  EXPECT_EQ(g.exception(), e);  // twice: still there
  EXPECT_TRUE(g.valid());
  EXPECT_THROW(g.get(), std::logic_error);
}

TEST(Future, ExceptionAccessorWaits) {
  Promise<int> p;
  auto f = p.get_future();
  std::latch go(1);
  std::jthread producer([&] {
    go.wait();
    p.set_exception(std::make_exception_ptr(Custom(2)));
  });
  go.count_down();
  EXPECT_NE(address_in<Custom>(f.exception()), nullptr);
}

// ---- validity and consumption ------------------------------------------------------------------------

TEST(Future, GetConsumesAndSecondGetThrowsFutureError) {
  auto f = weft::make_ready_future(3);
  EXPECT_EQ(f.get(), 3);
  EXPECT_FALSE(f.valid());
  EXPECT_THROW(f.get(), weft::FutureError);

  auto g = weft::make_exceptional_future<int>(std::make_exception_ptr(Custom(1)));
  EXPECT_THROW(g.get(), Custom);
  EXPECT_FALSE(g.valid());  // a failed get() consumes too
  EXPECT_THROW(g.get(), weft::FutureError);
}

TEST(Future, InvalidFutureThrowsFutureErrorEverywhere) {
  Future<int> f;
  EXPECT_FALSE(f.valid());
  EXPECT_THROW(f.get(), weft::FutureError);
  EXPECT_THROW((void)f.ready(), weft::FutureError);
  EXPECT_THROW((void)f.cancelled(), weft::FutureError);
  EXPECT_THROW(f.wait(), weft::FutureError);
  EXPECT_THROW((void)f.wait_for(1ms), weft::FutureError);
  EXPECT_THROW((void)f.wait_until(std::chrono::steady_clock::now()), weft::FutureError);
  EXPECT_THROW(f.get_for(1ms), weft::FutureError);
  EXPECT_THROW((void)f.exception(), weft::FutureError);
  EXPECT_THROW(f.cancel(), weft::FutureError);
  EXPECT_THROW(f.on_done([] {}), weft::FutureError);
  EXPECT_THROW((void)std::move(f).then([](int x) { return x; }), weft::FutureError);
}

TEST(Future, MovedFromFutureIsInvalid) {
  Promise<int> p;
  auto f = p.get_future();
  Future<int> g = std::move(f);
  EXPECT_FALSE(f.valid());  // NOLINT(bugprone-use-after-move)
  EXPECT_TRUE(g.valid());
  Future<int> h;
  h = std::move(g);
  EXPECT_TRUE(h.valid());
  p.set_value(9);
  EXPECT_EQ(h.get(), 9);
}

TEST(Future, MoveAssignmentReleasesTheOldState) {
  ASSERT_EQ(Tracked::live.load(), 0);
  {
    Promise<Tracked> p1;
    Promise<Tracked> p2;
    auto f = p1.get_future();
    p1.set_value(1);
    f = p2.get_future();  // the first state is now owned by p1 alone
    p2.set_value(2);
    EXPECT_EQ(f.get().value, 2);
  }
  EXPECT_EQ(Tracked::live.load(), 0);
}

TEST(Promise, GetFutureTwiceThrows) {
  Promise<int> p;
  auto f = p.get_future();
  EXPECT_THROW(p.get_future(), weft::FutureError);
  p.set_value(1);
}

TEST(Promise, MovedFromPromiseIsEmpty) {
  Promise<int> p;
  auto f = p.get_future();
  Promise<int> q = std::move(p);
  EXPECT_FALSE(p.valid());  // NOLINT(bugprone-use-after-move)
  EXPECT_THROW(p.set_value(1), weft::FutureError);
  EXPECT_THROW(p.get_future(), weft::FutureError);
  EXPECT_FALSE(p.try_start());
  EXPECT_FALSE(p.cancelled());
  EXPECT_TRUE(q.set_value(2));
  EXPECT_EQ(f.get(), 2);
}

TEST(Promise, SetTwiceThrowsFutureError) {
  Promise<int> p;
  auto f = p.get_future();
  EXPECT_TRUE(p.set_value(1));
  EXPECT_THROW(p.set_value(2), weft::FutureError);
  EXPECT_THROW(p.set_exception(std::make_exception_ptr(Custom(1))), weft::FutureError);
  EXPECT_THROW(p.set_from([] { return 3; }), weft::FutureError);
  EXPECT_EQ(f.get(), 1);  // the first value stands

  Promise<void> q;
  auto g = q.get_future();
  q.set_exception(std::make_exception_ptr(Custom(5)));
  EXPECT_THROW(q.set_value(), weft::FutureError);
  EXPECT_THROW(g.get(), Custom);
}

TEST(Promise, DestroyedUnsetBreaksThePromise) {
  Future<int> f;
  {
    Promise<int> p;
    f = p.get_future();
  }
  EXPECT_TRUE(f.ready());
  EXPECT_THROW(f.get(), weft::BrokenPromise);
}

TEST(Promise, MoveAssignedOverBreaksTheOldPromise) {
  Promise<int> p;
  auto f = p.get_future();
  p = Promise<int>();
  EXPECT_THROW(f.get(), weft::BrokenPromise);
  auto g = p.get_future();
  p.set_value(4);
  EXPECT_EQ(g.get(), 4);
}

TEST(Promise, DestroyedUnsetWakesWaiterOnAnotherThread) {
  auto p = std::make_unique<Promise<std::string>>();
  auto f = p->get_future();
  std::latch go(1);
  std::jthread killer([&] {
    go.wait();
    p.reset();
  });
  go.count_down();
  EXPECT_THROW(f.get(), weft::BrokenPromise);
}

TEST(Promise, DestroyedAfterSettingDoesNotBreak) {
  Future<int> f;
  {
    Promise<int> p;
    f = p.get_future();
    p.set_value(8);
  }
  EXPECT_EQ(f.get(), 8);
}

// ---- timed waits -------------------------------------------------------------------------------------

TEST(Future, GetForTimesOutAndStaysValid) {
  Promise<int> p;
  auto f = p.get_future();
  EXPECT_THROW(f.get_for(2ms), weft::Timeout);
  EXPECT_TRUE(f.valid());
  EXPECT_FALSE(f.ready());
  p.set_value(5);
  EXPECT_EQ(f.get_for(kLong), 5);
  EXPECT_FALSE(f.valid());
}

TEST(Future, GetForVoidTimesOut) {
  Promise<void> p;
  auto f = p.get_future();
  EXPECT_THROW(f.get_for(1ms), weft::Timeout);
  EXPECT_TRUE(f.valid());
  p.set_value();
  EXPECT_NO_THROW(f.get_for(kLong));
}

TEST(Future, WaitForAndWaitUntilTimeOut) {
  Promise<int> p;
  auto f = p.get_future();
  const auto before = std::chrono::steady_clock::now();
  EXPECT_FALSE(f.wait_for(5ms));
  EXPECT_GE(std::chrono::steady_clock::now() - before, 5ms);  // it did wait
  EXPECT_FALSE(f.wait_for(0ms));
  EXPECT_FALSE(f.wait_for(-1s));
  EXPECT_FALSE(f.wait_until(std::chrono::steady_clock::now() + 1ms));
  EXPECT_FALSE(f.wait_until(std::chrono::steady_clock::now() - 1h));
  EXPECT_TRUE(f.valid());
  p.set_value(1);
  EXPECT_TRUE(f.wait_for(0ms));
  EXPECT_TRUE(f.wait_until(std::chrono::steady_clock::now() - 1h));  // ready: the deadline does not matter
  EXPECT_EQ(f.get(), 1);
}

TEST(Future, WaitForReturnsWhenSetFromAnotherThread) {
  Promise<int> p;
  auto f = p.get_future();
  std::latch go(1);
  std::jthread producer([&] {
    go.wait();
    p.set_value(3);
  });
  go.count_down();
  EXPECT_TRUE(f.wait_for(kLong));
  EXPECT_TRUE(f.ready());
  EXPECT_EQ(f.get(), 3);
}

// Regression: wait_for(nanoseconds::max()) — "no limit" — overflowed the deadline into the past (undefined
// behaviour, and in practice an immediate timeout).
TEST(Future, DeadlinesSaturateInsteadOfOverflowing) {
  using Clock = std::chrono::steady_clock;
  const auto now = Clock::now();
  EXPECT_EQ(weft::detail::deadline_after(std::chrono::nanoseconds::max()), Clock::time_point::max());
  EXPECT_EQ(weft::detail::deadline_after(std::chrono::hours::max()), Clock::time_point::max());
  EXPECT_EQ(weft::detail::deadline_after(std::chrono::duration<double>(1e30)), Clock::time_point::max());
  const auto past = weft::detail::deadline_after(std::chrono::nanoseconds::min());
  const auto minus_one = weft::detail::deadline_after(-1s);
  const auto later = Clock::now();
  EXPECT_LE(past, later);
  EXPECT_LE(minus_one, later);
  const auto soon = weft::detail::deadline_after(1ms);
  EXPECT_GE(soon, now + 1ms);
  EXPECT_LT(soon, Clock::time_point::max());
}

TEST(Future, WaitWithoutLimitWaitsForTheValue) {
  Promise<int> p;
  auto f = p.get_future();
  std::latch go(1);
  std::jthread producer([&] {
    go.wait();
    p.set_value(6);
  });
  go.count_down();
  EXPECT_TRUE(f.wait_for(std::chrono::nanoseconds::max()));
  EXPECT_TRUE(f.wait_for(std::chrono::hours::max()));
  EXPECT_EQ(f.get_for(std::chrono::nanoseconds::max()), 6);
}

TEST(Future, WaitIsRepeatableAndDoesNotConsume) {
  auto f = weft::make_ready_future(std::string("s"));
  f.wait();
  f.wait();
  EXPECT_TRUE(f.valid());
  EXPECT_EQ(f.get(), "s");
}

// ---- cancellation ------------------------------------------------------------------------------------

TEST(Future, CancelBeforeStartSucceeds) {
  Promise<int> p;
  auto f = p.get_future();
  EXPECT_TRUE(f.cancel());
  EXPECT_TRUE(f.ready());
  EXPECT_TRUE(f.cancelled());
  EXPECT_TRUE(p.cancelled());
  EXPECT_FALSE(p.try_start());   // the producer learns not to run the work
  EXPECT_FALSE(p.set_value(1));  // dropped, not an error
  EXPECT_FALSE(p.set_exception(std::make_exception_ptr(Custom(1))));
  EXPECT_FALSE(f.cancel());  // only once
  EXPECT_NE(address_in<weft::Cancelled>(f.exception()), nullptr);
  EXPECT_THROW(f.get(), weft::Cancelled);
}

TEST(Future, CancelledValueIsDropped) {
  ASSERT_EQ(Tracked::live.load(), 0);
  {
    Promise<Tracked> p;
    auto f = p.get_future();
    EXPECT_TRUE(f.cancel());
    EXPECT_FALSE(p.set_value(1));
    EXPECT_EQ(Tracked::live.load(), 0);
    EXPECT_THROW(f.get(), weft::Cancelled);
  }
  EXPECT_EQ(Tracked::live.load(), 0);
}

TEST(Future, CancelAfterTryStartFails) {
  Promise<int> p;
  auto f = p.get_future();
  EXPECT_TRUE(p.try_start());
  EXPECT_FALSE(p.try_start());  // started once
  EXPECT_FALSE(f.cancel());
  EXPECT_FALSE(f.cancelled());
  EXPECT_FALSE(f.ready());
  EXPECT_TRUE(p.set_value(10));
  EXPECT_EQ(f.get(), 10);
}

TEST(Future, CancelAfterReadyFails) {
  Promise<int> p;
  auto f = p.get_future();
  p.set_value(1);
  EXPECT_FALSE(f.cancel());
  EXPECT_FALSE(f.cancelled());
  EXPECT_EQ(f.get(), 1);

  Promise<int> q;
  auto g = q.get_future();
  q.set_exception(std::make_exception_ptr(Custom(1)));
  EXPECT_FALSE(g.cancel());
  EXPECT_FALSE(g.cancelled());
  EXPECT_THROW(g.get(), Custom);
}

TEST(Future, CancelWakesWaiter) {
  Promise<int> p;
  auto f = p.get_future();
  std::jthread waiter([&] { f.wait(); });  // only reads f (wait is const); this thread cancels it
  EXPECT_TRUE(f.cancel());
  waiter.join();
  EXPECT_THROW(f.get(), weft::Cancelled);
}

// ---- done-callbacks ----------------------------------------------------------------------------------

TEST(FutureOnDone, AlreadyReadyRunsInline) {
  auto f = weft::make_ready_future(1);
  int calls = 0;
  std::thread::id ran_on;
  f.on_done([&] {
    ++calls;
    ran_on = std::this_thread::get_id();
  });
  EXPECT_EQ(calls, 1);  // before on_done returned
  EXPECT_EQ(ran_on, std::this_thread::get_id());
  EXPECT_TRUE(f.valid());  // not consumed
  EXPECT_EQ(f.get(), 1);
}

TEST(FutureOnDone, NotReadyRunsOnTheCompletingThread) {
  Promise<int> p;
  auto f = p.get_future();
  std::atomic<int> calls{0};
  std::thread::id ran_on;
  f.on_done([&] {
    calls.fetch_add(1);
    ran_on = std::this_thread::get_id();
  });
  EXPECT_EQ(calls.load(), 0);
  std::thread::id producer_id;
  std::jthread producer([&] {
    producer_id = std::this_thread::get_id();
    p.set_value(2);
  });
  producer.join();
  EXPECT_EQ(calls.load(), 1);
  EXPECT_EQ(ran_on, producer_id);
  EXPECT_EQ(f.get(), 2);
}

TEST(FutureOnDone, RunsOnceEachInRegistrationOrder) {
  Promise<void> p;
  auto f = p.get_future();
  std::vector<int> order;
  for (int i = 0; i < 10; ++i) f.on_done([&order, i] { order.push_back(i); });
  p.set_value();
  f.on_done([&order] { order.push_back(10); });
  EXPECT_EQ(order, (std::vector<int>{0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10}));
}

TEST(FutureOnDone, RunsOnExceptionCancelAndBrokenPromise) {
  int calls = 0;
  {
    Promise<int> p;
    auto f = p.get_future();
    f.on_done([&] { ++calls; });
    p.set_exception(std::make_exception_ptr(Custom(1)));
  }
  EXPECT_EQ(calls, 1);
  {
    Promise<int> p;
    auto f = p.get_future();
    f.on_done([&] { ++calls; });
    f.cancel();
    EXPECT_EQ(calls, 2);
    p.set_value(1);  // dropped; the callbacks do not run again
  }
  EXPECT_EQ(calls, 2);
  {
    Future<int> f;
    {
      Promise<int> p;
      f = p.get_future();
      f.on_done([&] { ++calls; });
    }
    EXPECT_EQ(calls, 3);
  }
}

TEST(FutureOnDone, CallbackResultIsDiscarded) {
  Promise<int> p;
  auto f = p.get_future();
  std::atomic<int> n{0};
  f.on_done([&n] { return n.fetch_add(1); });  // returns a value, which is ignored
  p.set_value(0);
  EXPECT_EQ(n.load(), 1);
}

TEST(FutureOnDone, CapturesAreReleasedAfterTheCallbackRuns) {
  auto token = std::make_shared<int>(0);
  Promise<int> p;
  auto f = p.get_future();
  f.on_done([token] { ++*token; });
  EXPECT_EQ(token.use_count(), 2);
  p.set_value(1);
  EXPECT_EQ(*token, 1);
  EXPECT_EQ(token.use_count(), 1);  // the state no longer holds the callback
}

TEST(FutureOnDone, MoveOnlyCapture) {
  Promise<int> p;
  auto f = p.get_future();
  int seen = 0;
  f.on_done([q = std::make_unique<int>(4), &seen] { seen = *q; });
  p.set_value(1);
  EXPECT_EQ(seen, 4);
}

TEST(FutureOnDone, ExceptionGoesToTheUnhandledHandler) {
  CapturedErrors captured;
  int after = 0;
  // Not ready: runs on completion; the next callback still runs.
  Promise<int> p;
  auto f = p.get_future();
  f.on_done([] { throw Custom(11); });
  f.on_done([&] { ++after; });
  p.set_value(1);
  EXPECT_EQ(after, 1);
  // Already ready: runs inline, and the exception does not escape on_done.
  EXPECT_NO_THROW(f.on_done([] { throw std::out_of_range("inline"); }));
  EXPECT_EQ(f.get(), 1);  // the future is unaffected

  auto errors = captured.errors();
  ASSERT_EQ(errors.size(), 2u);
  const Custom* c = address_in<Custom>(errors[0]);
  ASSERT_NE(c, nullptr);
  EXPECT_EQ(c->code, 11);
  EXPECT_NE(address_in<std::out_of_range>(errors[1]), nullptr);
  for (const std::string& ctx : captured.contexts()) EXPECT_FALSE(ctx.empty());
}

TEST(FutureOnDone, HandlerIsRestored) {
  // The default handler must be back after CapturedErrors: install one, then check ours is what was there.
  auto probe = [](std::exception_ptr, std::string_view) {};
  auto previous = weft::set_unhandled_exception_handler(probe);
  { CapturedErrors captured; }
  auto mine = weft::set_unhandled_exception_handler(std::move(previous));
  ASSERT_TRUE(mine);
  EXPECT_NE(mine.target<decltype(probe)>(), nullptr);
}

// ---- then() ------------------------------------------------------------------------------------------

TEST(FutureThen, ValueForm) {
  Promise<int> p;
  auto f = p.get_future();
  auto g = std::move(f).then([](int x) { return std::to_string(x * 2); });
  static_assert(std::is_same_v<decltype(g), Future<std::string>>);
  EXPECT_FALSE(f.valid());  // NOLINT(bugprone-use-after-move): then() consumes
  EXPECT_FALSE(g.ready());
  p.set_value(21);
  EXPECT_EQ(g.get(), "42");
}

// Regression: then() on a Future<void> did not compile (the continuation traits formed void&&).
TEST(FutureThen, VoidSourceAndVoidResult) {
  Promise<void> p;
  int ran = 0;
  auto g = p.get_future().then([&] { return ++ran; });
  static_assert(std::is_same_v<decltype(g), Future<int>>);
  auto h = std::move(g).then([&](int v) { ran += v * 10; });
  static_assert(std::is_same_v<decltype(h), Future<void>>);
  p.set_value();
  EXPECT_NO_THROW(h.get());
  EXPECT_EQ(ran, 11);
}

TEST(FutureThen, FutureFormSeesValuesAndExceptions) {
  auto ok = weft::make_ready_future(5).then([](Future<int> f) { return f.get() + 1; });
  EXPECT_EQ(ok.get(), 6);

  Promise<int> p;
  auto handled = p.get_future().then([](Future<int>&& f) {
    EXPECT_TRUE(f.ready());
    try {
      return f.get();
    } catch (const Custom& e) {
      return -e.code;
    }
  });
  p.set_exception(std::make_exception_ptr(Custom(9)));
  EXPECT_EQ(handled.get(), -9);

  Promise<void> vp;
  auto vhandled = vp.get_future().then([](Future<void> f) { return f.exception() != nullptr; });
  vp.set_exception(std::make_exception_ptr(Custom(1)));
  EXPECT_TRUE(vhandled.get());
}

TEST(FutureThen, ExceptionSkipsValueFormAndPassesThroughUnchanged) {
  Promise<int> p;
  int calls = 0;
  auto g = p.get_future().then([&](int x) {
    ++calls;
    return x;
  });
  auto h = std::move(g).then([&](int x) {
    ++calls;
    return x;
  });
  const auto thrown = std::make_exception_ptr(Custom(23));
  p.set_exception(thrown);
  EXPECT_EQ(calls, 0);
  try {
    h.get();
    FAIL() << "expected the source's exception";
  } catch (const Custom& e) {
    EXPECT_EQ(e.code, 23);
    EXPECT_EQ(&e, address_in<Custom>(thrown));  // the same object, not a copy
  }

  Promise<void> vp;
  auto vh = vp.get_future().then([&] { ++calls; });
  vp.set_exception(std::make_exception_ptr(std::out_of_range("v")));
  EXPECT_THROW(vh.get(), std::out_of_range);
  EXPECT_EQ(calls, 0);
}

TEST(FutureThen, ExceptionFromContinuationReachesTheResult) {
  auto g = weft::make_ready_future(1).then([](int) -> int { throw Custom(4); });
  EXPECT_THROW(g.get(), Custom);
  auto h = weft::make_ready_future().then([] { throw std::length_error("l"); });
  EXPECT_THROW(h.get(), std::length_error);
}

TEST(FutureThen, CancelledSourcePassesCancelledThrough) {
  Promise<int> p;
  auto f = p.get_future();
  f.cancel();
  bool ran = false;
  auto g = std::move(f).then([&](int) { ran = true; });
  EXPECT_THROW(g.get(), weft::Cancelled);
  EXPECT_FALSE(ran);
}

// Regression: a continuation returning Future<U> gave a Future<std::true_type> (the IsFuture trait's ::type).
TEST(FutureThen, FlattensAContinuationReturningAFuture) {
  Promise<int> source;
  Promise<std::string> inner;
  auto inner_f = std::make_shared<Future<std::string>>(inner.get_future());
  auto g = source.get_future().then([inner_f](int x) {
    EXPECT_EQ(x, 1);
    return std::move(*inner_f);
  });
  static_assert(std::is_same_v<decltype(g), Future<std::string>>);
  source.set_value(1);
  EXPECT_FALSE(g.ready());  // waits for the inner future too
  inner.set_value("inner");
  EXPECT_EQ(g.get(), "inner");
}

TEST(FutureThen, FlattenedInnerFailurePropagates) {
  auto g = weft::make_ready_future(1).then(
      [](int) { return weft::make_exceptional_future<double>(std::make_exception_ptr(Custom(8))); });
  static_assert(std::is_same_v<decltype(g), Future<double>>);
  EXPECT_THROW(g.get(), Custom);

  auto v = weft::make_ready_future(1).then([](int) { return weft::make_ready_future(); });
  static_assert(std::is_same_v<decltype(v), Future<void>>);
  EXPECT_NO_THROW(v.get());

  auto thrown = weft::make_ready_future(1).then([](int) -> Future<int> { throw Custom(3); });
  EXPECT_THROW(thrown.get(), Custom);

  // The future form may flatten too.
  auto ff = weft::make_ready_future(2).then([](Future<int> f) { return weft::make_ready_future(f.get() * 3); });
  EXPECT_EQ(ff.get(), 6);
}

// Regression: an invalid Future returned by the continuation was dereferenced (null state).
TEST(FutureThen, ContinuationReturningAnInvalidFutureFailsWithFutureError) {
  auto g = weft::make_ready_future(1).then([](int) { return Future<int>(); });
  EXPECT_THROW(g.get(), weft::FutureError);
}

TEST(FutureThen, MoveOnlyValuesThroughAChain) {
  Promise<std::unique_ptr<int>> p;
  auto g = p.get_future()
               .then([](std::unique_ptr<int> v) {
                 *v += 1;
                 return v;
               })
               .then([](std::unique_ptr<int>&& v) { return *v * 10; });
  p.set_value(std::make_unique<int>(1));
  EXPECT_EQ(g.get(), 20);
}

TEST(FutureThen, LongChain) {
  Promise<int> p;
  Future<int> f = p.get_future();
  for (int i = 0; i < 200; ++i) f = std::move(f).then([](int x) { return x + 1; });
  p.set_value(0);
  EXPECT_EQ(f.get(), 200);
}

TEST(FutureThen, RunsInlineWhenReadyAndOnCompletingThreadOtherwise) {
  std::thread::id ran_on;
  auto g = weft::make_ready_future(1).then([&](int x) {
    ran_on = std::this_thread::get_id();
    return x;
  });
  EXPECT_TRUE(g.ready());
  EXPECT_EQ(ran_on, std::this_thread::get_id());
  EXPECT_EQ(g.get(), 1);

  Promise<int> p;
  auto h = p.get_future().then([&](int x) {
    ran_on = std::this_thread::get_id();
    return x;
  });
  std::thread::id producer_id;
  std::jthread producer([&] {
    producer_id = std::this_thread::get_id();
    p.set_value(2);
  });
  producer.join();
  EXPECT_EQ(ran_on, producer_id);
  EXPECT_EQ(h.get(), 2);
}

TEST(FutureThen, CancellingTheContinuationBeforeTheSourceCompletesSkipsF) {
  Promise<int> p;
  bool ran = false;
  auto g = p.get_future().then([&](int x) {
    ran = true;
    return x;
  });
  EXPECT_TRUE(g.cancel());
  p.set_value(1);
  EXPECT_FALSE(ran);
  EXPECT_THROW(g.get(), weft::Cancelled);

  // A finished continuation can no longer be cancelled.
  auto h = weft::make_ready_future(1).then([](int x) { return x; });
  EXPECT_FALSE(h.cancel());
  EXPECT_EQ(h.get(), 1);
}

TEST(FutureThen, DroppedResultStillRunsF) {
  Promise<int> p;
  int ran = 0;
  (void)p.get_future().then([&](int) { ++ran; });  // result future discarded at once
  p.set_value(1);
  EXPECT_EQ(ran, 1);
}

TEST(FutureThen, BrokenSourceReachesTheContinuation) {
  Future<int> g;
  {
    Promise<int> p;
    g = p.get_future().then([](int x) { return x; });
  }
  EXPECT_THROW(g.get(), weft::BrokenPromise);
}

TEST(FutureThen, OnExecutorRunsOnAPoolWorker) {
  weft::ThreadPool pool(2);
  Promise<int> p;
  std::atomic<bool> in_pool{false};
  auto g = p.get_future().then(pool, [&](int x) {
    in_pool.store(pool.in_pool());
    return x + 1;
  });
  static_assert(std::is_same_v<decltype(g), Future<int>>);
  p.set_value(1);
  EXPECT_EQ(g.get_for(kLong), 2);
  EXPECT_TRUE(in_pool.load());
  EXPECT_FALSE(pool.in_pool());

  // Already-ready source, void forms, and the future form.
  std::atomic<bool> void_in_pool{false};
  auto v = weft::make_ready_future().then(pool, [&] { void_in_pool.store(pool.in_pool()); });
  static_assert(std::is_same_v<decltype(v), Future<void>>);
  EXPECT_NO_THROW(v.get_for(kLong));
  EXPECT_TRUE(void_in_pool.load());

  auto ff = weft::make_exceptional_future<int>(std::make_exception_ptr(Custom(6))).then(pool, [&](Future<int> f) {
    return pool.in_pool() && f.exception() != nullptr;
  });
  EXPECT_TRUE(ff.get_for(kLong));
}

TEST(FutureThen, OnExecutorExceptionSkipsValueForm) {
  weft::ThreadPool pool(1);
  std::atomic<bool> ran{false};
  auto thrown = std::make_exception_ptr(Custom(2));
  auto g = weft::make_exceptional_future<int>(thrown).then(pool, [&](int x) {
    ran = true;
    return x;
  });
  try {
    g.get_for(kLong);
    FAIL() << "expected the source's exception";
  } catch (const Custom& e) {
    EXPECT_EQ(&e, address_in<Custom>(thrown));
  }
  EXPECT_FALSE(ran.load());
}

// Regression: then(executor, f) with f returning Future<U> gave Future<Future<U>>, unlike then(f).
TEST(FutureThen, OnExecutorFlattensAReturnedFuture) {
  weft::ThreadPool pool(1);
  Promise<std::string> inner;
  auto inner_f = std::make_shared<Future<std::string>>(inner.get_future());
  auto g = weft::make_ready_future(1).then(pool, [inner_f](int) { return std::move(*inner_f); });
  static_assert(std::is_same_v<decltype(g), Future<std::string>>);
  inner.set_value("late");
  EXPECT_EQ(g.get_for(kLong), "late");

  auto failing = weft::make_ready_future().then(
      pool, [] { return weft::make_exceptional_future<int>(std::make_exception_ptr(Custom(5))); });
  static_assert(std::is_same_v<decltype(failing), Future<int>>);
  EXPECT_THROW(failing.get_for(kLong), Custom);
}

TEST(FutureThen, OnShutDownExecutorCarriesBrokenExecutor) {
  weft::ThreadPool pool(1);
  pool.shutdown();
  bool ran = false;
  auto g = weft::make_ready_future(1).then(pool, [&](int x) {
    ran = true;
    return x;
  });
  EXPECT_THROW(g.get(), weft::BrokenExecutor);
  EXPECT_FALSE(ran);
}

// ---- make_ready_future / make_exceptional_future -----------------------------------------------------

TEST(Future, MakeReadyFuture) {
  auto a = weft::make_ready_future(7);
  static_assert(std::is_same_v<decltype(a), Future<int>>);
  EXPECT_TRUE(a.ready());
  EXPECT_EQ(a.get(), 7);

  const std::string s = "abc";
  auto b = weft::make_ready_future(s);  // decay-copied
  static_assert(std::is_same_v<decltype(b), Future<std::string>>);
  EXPECT_EQ(b.get(), "abc");

  auto c = weft::make_ready_future(std::make_unique<int>(3));
  EXPECT_EQ(*c.get(), 3);

  auto d = weft::make_ready_future();
  static_assert(std::is_same_v<decltype(d), Future<void>>);
  EXPECT_TRUE(d.ready());
  EXPECT_NO_THROW(d.get());
}

TEST(Future, MakeExceptionalFuture) {
  auto e = std::make_exception_ptr(Custom(12));
  auto f = weft::make_exceptional_future<std::string>(e);
  EXPECT_TRUE(f.ready());
  EXPECT_FALSE(f.cancelled());
  EXPECT_EQ(f.exception(), e);
  EXPECT_THROW(f.get(), Custom);
  auto v = weft::make_exceptional_future<void>(std::make_exception_ptr(std::bad_alloc()));
  EXPECT_THROW(v.get(), std::bad_alloc);
}

// ---- races ---------------------------------------------------------------------------------------------

using weft::test::race_rounds;

// Each round, four threads start together on one fresh promise/future pair:
//   producer: set_value (in odd rounds first try_start(), as an executor does),
//   canceller: cancel(),
//   waiter: wait() then reads the outcome,
//   registrar: adds done-callbacks while the others run.
// Exactly one of "the value was set" and "the future was cancelled" must happen, the outcome seen by every
// thread must agree, and every callback must run exactly once. The threads only call const members and
// cancel() on the shared Future, none of which changes which state it refers to.
TEST(FutureStress, SetValueRacesWaitOnDoneAndCancel) {
  constexpr int kRounds = 2000;
  constexpr int kCallbacks = 3;

  struct Round {
    Promise<int> promise;
    Future<int> future;
    std::atomic<int> callbacks{0};
    int value = 0;
    bool set_ok = false;
    bool set_threw = false;
    bool started = true;
    bool cancel_ok = false;
    bool waiter_saw_cancelled = false;
    std::exception_ptr waiter_error;
  };
  std::unique_ptr<Round> round;
  int failures = 0;

  race_rounds(
      kRounds, 4,
      [&](int i) {
        round = std::make_unique<Round>();  // the previous round's promise and future are released here
        round->future = round->promise.get_future();
        round->value = i;
      },
      [&](int role, int i) {
        Round& r = *round;
        switch (role) {
          case 0:
            try {
              if ((i & 1) != 0) r.started = r.promise.try_start();
              if (r.started) r.set_ok = r.promise.set_value(r.value);
            } catch (const weft::FutureError&) {
              r.set_threw = true;
            }
            break;
          case 1:
            r.cancel_ok = r.future.cancel();
            break;
          case 2:
            r.future.wait();
            r.waiter_saw_cancelled = r.future.cancelled();
            r.waiter_error = r.future.exception();
            break;
          default:
            for (int k = 0; k < kCallbacks; ++k) r.future.on_done([&r] { r.callbacks.fetch_add(1); });
            break;
        }
      },
      [&](int i) {
        Round& r = *round;
        const bool started_ok = (i & 1) == 0 || r.started == !r.cancel_ok;
        const bool ok = !r.set_threw && (r.set_ok != r.cancel_ok) && started_ok &&
                        r.waiter_saw_cancelled == r.cancel_ok && (r.waiter_error != nullptr) == r.cancel_ok &&
                        r.callbacks.load() == kCallbacks;
        if (!ok && ++failures <= 5) {
          ADD_FAILURE() << "round " << i << ": set_ok=" << r.set_ok << " set_threw=" << r.set_threw
                        << " started=" << r.started << " cancel_ok=" << r.cancel_ok
                        << " waiter_saw_cancelled=" << r.waiter_saw_cancelled << " callbacks=" << r.callbacks.load();
        }
        if (r.cancel_ok) {
          EXPECT_THROW(r.future.get(), weft::Cancelled);
        } else {
          EXPECT_EQ(r.future.get(), i);
        }
      });
  EXPECT_EQ(failures, 0);
}

// Spins until `flag` reaches `value`: a few hundred pauses, then yields (fair to a loaded 2-core machine).
void spin_until(const std::atomic<int>& flag, int value) {
  for (int i = 0; flag.load(std::memory_order_acquire) < value; ++i) {
    if (i < 512) {
      weft::detail::cpu_relax();
    } else {
      std::this_thread::yield();
    }
  }
}

// A producer's set_value and a consumer's cancel() meeting head-on, with staggered start offsets so the
// set lands before, during and after the cancel. While cancel() is between claiming the state and
// publishing Cancelled, set_value must report "cancelled" (false), never "already satisfied".
// Regression: cancel() used to claim the state without kCancelled, so a racing set_value threw FutureError.
TEST(FutureStress, SetValueRacesCancelHeadOn) {
  constexpr int kRounds = 5000;
  std::atomic<int> go{0};
  std::atomic<int> done{0};
  std::unique_ptr<Promise<int>> promise;
  int set_true = 0;
  int set_threw = 0;
  std::jthread producer([&] {
    for (int i = 1; i <= kRounds; ++i) {
      spin_until(go, i);
      for (int k = 0; k < i % 16; ++k) weft::detail::cpu_relax();
      try {
        if (promise->set_value(i)) ++set_true;
      } catch (const weft::FutureError&) {
        ++set_threw;
      }
      done.store(i, std::memory_order_release);
    }
  });
  int cancelled = 0;
  int mismatches = 0;
  for (int i = 1; i <= kRounds; ++i) {
    promise = std::make_unique<Promise<int>>();
    Future<int> f = promise->get_future();
    go.store(i, std::memory_order_release);
    for (int k = 0; k < (i / 16) % 32; ++k) weft::detail::cpu_relax();
    const bool c = f.cancel();
    cancelled += c ? 1 : 0;
    spin_until(done, i);
    if (c) {
      try {
        f.get();
        ++mismatches;
      } catch (const weft::Cancelled&) {
      }
    } else if (f.get() != i) {
      ++mismatches;
    }
  }
  producer.join();
  EXPECT_EQ(set_threw, 0);
  EXPECT_EQ(mismatches, 0);
  EXPECT_EQ(set_true + cancelled, kRounds);  // exactly one of the two won each round
  RecordProperty("cancelled", cancelled);
}

// Many threads add callbacks while another completes the future: each callback runs once, none is lost.
TEST(FutureStress, ManyRegistrarsRaceCompletion) {
  constexpr int kRounds = 300;
  constexpr int kRegistrars = 4;
  constexpr int kPerThread = 25;
  std::unique_ptr<Promise<int>> p;
  Future<int> f;
  std::atomic<int> runs{0};
  race_rounds(
      kRounds, kRegistrars + 1,
      [&](int) {
        p = std::make_unique<Promise<int>>();
        f = p->get_future();
        runs.store(0);
      },
      [&](int t, int r) {
        if (t == kRegistrars) {
          p->set_value(r);
        } else {
          for (int k = 0; k < kPerThread; ++k) f.on_done([&runs] { runs.fetch_add(1); });
        }
      },
      [&](int r) {
        EXPECT_EQ(runs.load(), kRegistrars * kPerThread) << "round " << r;
        EXPECT_EQ(f.get(), r);
      });
}

// then() registered on one thread while another sets the value: the continuation runs exactly once.
TEST(FutureStress, ThenRacesCompletion) {
  constexpr int kRounds = 1000;
  std::unique_ptr<Promise<int>> p;
  Future<int> f;
  Future<int> g;
  std::atomic<int> runs{0};
  race_rounds(
      kRounds, 2,
      [&](int) {
        p = std::make_unique<Promise<int>>();
        f = p->get_future();
        runs.store(0);
      },
      [&](int t, int r) {
        if (t == 0) {
          p->set_value(r);
        } else {
          g = std::move(f).then([&runs](int x) {
            runs.fetch_add(1);
            return x + 1;
          });
        }
      },
      [&](int r) {
        EXPECT_EQ(g.get(), r + 1);
        EXPECT_EQ(runs.load(), 1);
      });
}

// A promise destroyed on one thread while others wait with and without a deadline: all see BrokenPromise.
TEST(FutureStress, BrokenPromiseRacesWaiters) {
  constexpr int kRounds = 500;
  std::unique_ptr<Promise<int>> p;
  Future<int> f;
  bool timed_ready = false;
  race_rounds(
      kRounds, 3,
      [&](int) {
        p = std::make_unique<Promise<int>>();
        f = p->get_future();
        timed_ready = false;
      },
      [&](int t, int) {
        if (t == 0) {
          p.reset();
        } else if (t == 1) {
          timed_ready = f.wait_for(kLong);
        } else {
          f.wait();
        }
      },
      [&](int) {
        EXPECT_TRUE(timed_ready);
        EXPECT_THROW(f.get(), weft::BrokenPromise);
      });
}

// Short timed waits racing the value: a wait either sees it or times out, and the future stays usable.
TEST(FutureStress, TimedWaitRacesSet) {
  constexpr int kRounds = 500;
  std::unique_ptr<Promise<int>> p;
  Future<int> f;
  int timed_out = 0;
  bool consumed = false;
  race_rounds(
      kRounds, 2,
      [&](int) {
        p = std::make_unique<Promise<int>>();
        f = p->get_future();
        consumed = false;
      },
      [&](int t, int r) {
        if (t == 0) {
          p->set_value(r);
          return;
        }
        try {
          EXPECT_EQ(f.get_for(std::chrono::microseconds(r % 50)), r);
          consumed = true;
        } catch (const weft::Timeout&) {
          ++timed_out;
        }
      },
      [&](int r) {
        EXPECT_EQ(f.valid(), !consumed);
        if (!consumed) {
          EXPECT_EQ(f.get(), r);
        }
      });
  RecordProperty("timed_out", timed_out);
}

}  // namespace
