// Structured concurrency: task_group (concurrency, failure cancels siblings, body failure, parent cancellation
// reaching sleeps and socket reads, nesting), gather, as_completed, wait_for on tasks and raw awaitables, and
// io::stop_requested.
#include <gtest/gtest.h>

#include <algorithm>
#include <numeric>
#include <string>
#include <tuple>
#include <variant>
#include <vector>

#include "io_test_support.hpp"
#include "weft/core/future.hpp"
#include "weft/io/future.hpp"
#include "weft/io/sync.hpp"

namespace {

using namespace weft::test::iotest;
using weft::Cancelled;
using weft::Future;
using weft::Promise;

class IoTaskGroup : public BackendTest {};
WEFT_IO_INSTANTIATE(IoTaskGroup);

// Each side announces itself, then waits for the other: finishes only if both run at the same time.
io::Task<void> rendezvous(Promise<void>& mine, Future<void> theirs, int& done) {
  mine.set_value();
  co_await std::move(theirs);
  ++done;
}

TEST_P(IoTaskGroup, ChildrenRunConcurrently) {
  int done = 0;
  run([](int& d) -> io::Task<void> {
    Promise<void> a, b;
    Future<void> fa = a.get_future(), fb = b.get_future();
    co_await io::task_group([&](io::TaskGroup& g) -> io::Task<void> {
      g.spawn(rendezvous(a, std::move(fb), d));
      g.spawn(rendezvous(b, std::move(fa), d));
      EXPECT_EQ(g.live(), 2u);
      co_return;
    });
  }(done));
  EXPECT_EQ(done, 2);
}

TEST_P(IoTaskGroup, WaitingChildrenOverlap) {
  // 20 children each sleep, then wait for an event that is set only once all 20 have started: they can only
  // finish if every one of them is waiting at the same time.
  int done = 0;
  int max_sleeping = 0;
  run([](int& d, int& most) -> io::Task<void> {
    io::Event all_in;
    int sleeping = 0;
    co_await io::task_group([&](io::TaskGroup& g) -> io::Task<void> {
      for (int i = 0; i < 20; ++i) g.spawn([](int& n, int& now, int& peak, io::Event& ev) -> io::Task<void> {
          ++now;
          peak = std::max(peak, now);
          co_await io::sleep(1ms);
          co_await ev.wait();
          --now;
          ++n;
        }(d, sleeping, most, all_in));
      EXPECT_TRUE(co_await yield_until([&] { return sleeping == 20; }));
      all_in.set();
    });
  }(done, max_sleeping));
  EXPECT_EQ(done, 20);
  EXPECT_EQ(max_sleeping, 20);
}

struct ChildLog {
  bool started = false;
  bool cancelled = false;
  bool finished = false;
};

io::Task<void> sleeper(ChildLog& log, std::chrono::milliseconds d = std::chrono::hours(1)) {
  log.started = true;
  try {
    co_await io::sleep(d);
  } catch (const Cancelled&) {
    log.cancelled = true;
    throw;
  }
  log.finished = true;
}

io::Task<void> reader(io::Stream& s, ChildLog& log) {
  log.started = true;
  char buf[16];
  try {
    co_await s.read(buf, sizeof buf);
  } catch (const Cancelled&) {
    log.cancelled = true;
    throw;
  }
  log.finished = true;
}


// Fails once both siblings have started (and so are suspended in their awaits).
io::Task<void> fail_after_started(ChildLog& a, ChildLog& b, int code) {
  co_await yield_until([&] { return a.started && b.started; });
  throw TestError(code);
}

// Swallows the cancellation and returns normally.
io::Task<void> stubborn(ChildLog& log) {
  log.started = true;
  try {
    co_await io::sleep(std::chrono::hours(1));
  } catch (const Cancelled&) {
    log.cancelled = true;
  }
  log.finished = true;
}

// After a cancelled read, data written to the peer must still arrive whole at the next read (the cancelled
// request consumed nothing and is really gone from the kernel).
io::Task<void> expect_stream_still_works(StreamPair& p) {
  co_await p.client.write_all(std::string_view("after-cancel"));
  std::string got = co_await read_up_to(p.server, 12);
  EXPECT_EQ(got, "after-cancel");
}

TEST_P(IoTaskGroup, FirstFailureCancelsSiblingsAndIsRethrownAfterAllFinished) {
  run([]() -> io::Task<void> {
    StreamPair p = co_await tcp_pair();
    ChildLog sleeping, reading, swallowing;
    bool siblings_done_at_catch = false;
    int code = 0;
    try {
      co_await io::task_group([&](io::TaskGroup& g) -> io::Task<void> {
        g.spawn(sleeper(sleeping));
        g.spawn(reader(p.server, reading));
        g.spawn(stubborn(swallowing));
        g.spawn(fail_after_started(sleeping, reading, 7));
        co_return;
      });
    } catch (const TestError& e) {
      code = e.code;
      siblings_done_at_catch = sleeping.cancelled && reading.cancelled && swallowing.finished;
    }
    EXPECT_EQ(code, 7) << "the child's failure was not rethrown unchanged";
    EXPECT_TRUE(siblings_done_at_catch) << "the group rethrew before every child had finished";
    EXPECT_FALSE(sleeping.finished);
    EXPECT_FALSE(reading.finished);
    EXPECT_TRUE(swallowing.cancelled);
    co_await expect_stream_still_works(p);
  }());
}

TEST_P(IoTaskGroup, CancelledChildIsNotAFailure) {
  int after = 0;
  run([](int& a) -> io::Task<void> {
    co_await io::task_group([&](io::TaskGroup& g) -> io::Task<void> {
      g.spawn([]() -> io::Task<void> {
        throw weft::Cancelled("a child gives up");
        co_return;
      }());
      g.spawn([](int& n) -> io::Task<void> {
        co_await io::sleep(2ms);
        ++n;
      }(a));
      co_return;
    });
    ++a;
  }(after));
  EXPECT_EQ(after, 2) << "a child's own Cancelled cancelled its sibling or failed the group";
}

TEST_P(IoTaskGroup, BodyFailureCancelsChildren) {
  run([]() -> io::Task<void> {
    ChildLog a, b;
    std::exception_ptr err = co_await error_of(io::task_group([&](io::TaskGroup& g) -> io::Task<int> {
      g.spawn(sleeper(a));
      g.spawn(sleeper(b));
      co_await yield_until([&] { return a.started && b.started; });
      throw TestError(11);
    }));
    EXPECT_TRUE(is_error<TestError>(err));
    EXPECT_TRUE(a.cancelled);
    EXPECT_TRUE(b.cancelled);
  }());
}

TEST_P(IoTaskGroup, BodyValueIsReturnedAfterChildrenFinish) {
  run([]() -> io::Task<void> {
    ChildLog child;
    int v = co_await io::task_group([&](io::TaskGroup& g) -> io::Task<int> {
      g.spawn(sleeper(child, 5ms));
      co_return 21;
    });
    EXPECT_EQ(v, 21);
    EXPECT_TRUE(child.finished) << "the group returned before its child finished";
  }());
}

TEST_P(IoTaskGroup, ParentCancellationReachesSleepsAndSocketReads) {
  run([]() -> io::Task<void> {
    StreamPair p = co_await tcp_pair();
    ChildLog sleeping, reading;
    std::exception_ptr err = co_await error_of(io::wait_for(io::task_group([&](io::TaskGroup& g) -> io::Task<void> {
                                                                g.spawn(sleeper(sleeping));
                                                                g.spawn(reader(p.server, reading));
                                                                co_return;
                                                              }),
                                                              30ms));
    EXPECT_TRUE(is_error<weft::Timeout>(err));
    EXPECT_TRUE(sleeping.cancelled);
    EXPECT_TRUE(reading.cancelled);
    co_await expect_stream_still_works(p);
  }());
}

TEST_P(IoTaskGroup, NestedGroupsPropagateFailureOutAndCancellationIn) {
  run([]() -> io::Task<void> {
    // A failure deep inside cancels the inner siblings, then the outer ones, and comes out unchanged.
    ChildLog outer_sibling, inner_sibling;
    std::exception_ptr err = co_await error_of(io::task_group([&](io::TaskGroup& outer) -> io::Task<void> {
      outer.spawn(sleeper(outer_sibling));
      outer.spawn(io::task_group([&](io::TaskGroup& inner) -> io::Task<void> {
        inner.spawn(sleeper(inner_sibling));
        inner.spawn(fail_after_started(inner_sibling, outer_sibling, 5));
        co_return;
      }));
      co_return;
    }));
    EXPECT_TRUE(is_error<TestError>(err));
    EXPECT_TRUE(inner_sibling.cancelled);
    EXPECT_TRUE(outer_sibling.cancelled);

    // Cancelling the outermost scope reaches a grandchild.
    ChildLog grandchild;
    err = co_await error_of(io::wait_for(io::task_group([&](io::TaskGroup& outer) -> io::Task<void> {
                                           outer.spawn(io::task_group([&](io::TaskGroup& inner) -> io::Task<void> {
                                             inner.spawn(sleeper(grandchild));
                                             co_return;
                                           }));
                                           co_return;
                                         }),
                                         20ms));
    EXPECT_TRUE(is_error<weft::Timeout>(err));
    EXPECT_TRUE(grandchild.cancelled);
  }());
}

TEST_P(IoTaskGroup, SpawnIntoACancelledGroupRunsTheTaskCancelled) {
  run([]() -> io::Task<void> {
    ChildLog log;
    bool stop_seen = false;
    co_await io::task_group([&](io::TaskGroup& g) -> io::Task<void> {
      g.cancel();
      EXPECT_TRUE(g.cancelled());
      g.spawn(sleeper(log));
      // A computation that never suspends sees the request through stop_requested().
      g.spawn([](bool& seen) -> io::Task<void> {
        for (int i = 0; i < 1000 && !seen; ++i) seen = co_await io::stop_requested();
      }(stop_seen));
      co_return;
    });
    EXPECT_TRUE(log.started);
    EXPECT_TRUE(log.cancelled);
    EXPECT_TRUE(stop_seen);
  }());
}

TEST_P(IoTaskGroup, StopRequestedTurnsTrueWhenTheScopeIsCancelled) {
  run([]() -> io::Task<void> {
    bool before = true, after = false, started = false;
    co_await io::task_group([&](io::TaskGroup& g) -> io::Task<void> {
      g.spawn([](bool& b, bool& a, bool& s) -> io::Task<void> {
        b = co_await io::stop_requested();
        s = true;
        try {
          co_await io::sleep(std::chrono::hours(1));
        } catch (const Cancelled&) {
        }
        a = co_await io::stop_requested();
      }(before, after, started));
      co_await yield_until([&] { return started; });
      g.cancel();
    });
    EXPECT_FALSE(before);
    EXPECT_TRUE(after);
  }());
}

io::Task<int> value_after(std::chrono::milliseconds d, int v) {
  co_await io::sleep(d);
  co_return v;
}

io::Task<std::string> text() { co_return "text"; }

io::Task<void> set_flag_task(bool& flag) {
  co_await io::sleep(1ms);
  flag = true;
}

TEST_P(IoTaskGroup, GatherReturnsValuesInArgumentOrder) {
  run([]() -> io::Task<void> {
    bool ran = false;
    auto [a, b, c, d] = co_await io::gather(value_after(20ms, 1), text(), set_flag_task(ran), value_after(0ms, 4));
    EXPECT_EQ(a, 1);
    EXPECT_EQ(b, "text");
    EXPECT_TRUE((std::is_same_v<decltype(c), std::monostate>));
    EXPECT_EQ(d, 4);
    EXPECT_TRUE(ran);

    // Vector form: the later tasks finish first, the values still come in order.
    std::vector<io::Task<int>> tasks;
    for (int i = 0; i < 30; ++i) tasks.push_back(value_after(std::chrono::milliseconds(30 - i), i));
    std::vector<int> values = co_await io::gather(std::move(tasks));
    std::vector<int> expected(30);
    std::iota(expected.begin(), expected.end(), 0);
    EXPECT_EQ(values, expected);

    std::vector<io::Task<int>> none;
    EXPECT_TRUE((co_await io::gather(std::move(none))).empty());

    int count = 0;
    std::vector<io::Task<void>> voids;
    for (int i = 0; i < 10; ++i) voids.push_back([](int& n) -> io::Task<void> {
        co_await io::sleep(1ms);
        ++n;
      }(count));
    co_await io::gather(std::move(voids));
    EXPECT_EQ(count, 10);
  }());
}

TEST_P(IoTaskGroup, GatherFailureCancelsTheOthers) {
  run([]() -> io::Task<void> {
    ChildLog a, b;
    std::exception_ptr err =
        co_await error_of(io::gather(sleeper(a), sleeper(b), fail_after_started(a, b, 2), value_after(0ms, 1)));
    EXPECT_TRUE(is_error<TestError>(err));
    EXPECT_TRUE(a.cancelled);
    EXPECT_TRUE(b.cancelled);
  }());
}

TEST_P(IoTaskGroup, AsCompletedDeliversInCompletionOrder) {
  run([]() -> io::Task<void> {
    const int delays_ms[] = {50, 10, 40, 0, 30, 20};
    std::vector<io::Task<int>> tasks;
    for (int i = 0; i < 6; ++i) tasks.push_back(value_after(std::chrono::milliseconds(delays_ms[i]), i * 100));
    std::vector<std::pair<std::size_t, int>> seen;
    co_await io::as_completed(std::move(tasks), [&](std::size_t index, int value) { seen.emplace_back(index, value); });
    std::vector<std::pair<std::size_t, int>> expected = {{3, 300}, {1, 100}, {5, 500}, {4, 400}, {2, 200}, {0, 0}};
    EXPECT_EQ(seen, expected);

    // void tasks: the callback takes the index only.
    std::vector<io::Task<void>> voids;
    voids.push_back([]() -> io::Task<void> { co_await io::sleep(15ms); }());
    voids.push_back([]() -> io::Task<void> { co_await io::sleep(1ms); }());
    std::vector<std::size_t> order;
    co_await io::as_completed(std::move(voids), [&](std::size_t index) { order.push_back(index); });
    EXPECT_EQ(order, (std::vector<std::size_t>{1, 0}));
  }());
}

TEST_P(IoTaskGroup, AsCompletedCallbackFailureCancelsTheRest) {
  run([]() -> io::Task<void> {
    ChildLog slow;
    std::vector<io::Task<int>> tasks;
    tasks.push_back(value_after(0ms, 1));
    tasks.push_back([](ChildLog& l) -> io::Task<int> {
      co_await sleeper(l);
      co_return 2;
    }(slow));
    int calls = 0;
    std::exception_ptr err = co_await error_of(io::as_completed(std::move(tasks), [&](std::size_t, int) {
      ++calls;
      throw TestError(1);
    }));
    EXPECT_TRUE(is_error<TestError>(err));
    EXPECT_EQ(calls, 1);
    EXPECT_TRUE(slow.cancelled);
  }());
}

TEST_P(IoTaskGroup, WaitForReturnsTheValueOrTheTasksOwnError) {
  run([]() -> io::Task<void> {
    int v = co_await io::wait_for(value_after(1ms, 5), 10s);
    EXPECT_EQ(v, 5);
    std::exception_ptr err = co_await error_of(io::wait_for(
        []() -> io::Task<int> {
          co_await io::sleep(0ms);
          throw TestError(4);
        }(),
        10s));
    EXPECT_TRUE(is_error<TestError>(err));
  }());
}

TEST_P(IoTaskGroup, WaitForTimesOutAfterCancellingTheTask) {
  run([]() -> io::Task<void> {
    ChildLog log;
    bool cancelled_before_timeout = false;
    try {
      co_await io::wait_for(sleeper(log), 20ms);
    } catch (const weft::Timeout&) {
      cancelled_before_timeout = log.cancelled;
    }
    EXPECT_TRUE(cancelled_before_timeout) << "Timeout was thrown before the task had finished cancelled";
    EXPECT_FALSE(log.finished);
  }());
}

TEST_P(IoTaskGroup, WaitForOnASocketReadCancelsTheRead) {
  run([]() -> io::Task<void> {
    StreamPair p = co_await tcp_pair();
    char buf[64];
    std::exception_ptr err = co_await error_of(io::wait_for(p.server.read(buf, sizeof buf), 20ms));
    EXPECT_TRUE(is_error<weft::Timeout>(err));
    // Twice, so that a leftover request of the first read would have to coexist with the second.
    err = co_await error_of(io::wait_for(p.server.read(buf, sizeof buf), 5ms));
    EXPECT_TRUE(is_error<weft::Timeout>(err));
    co_await expect_stream_still_works(p);
    // And a read that completes in time returns its bytes through wait_for.
    co_await p.client.write_all(std::string_view("xyz"));
    std::size_t n = co_await io::wait_for(p.server.read(buf, sizeof buf), 10s);
    EXPECT_EQ(std::string_view(buf, n), "xyz");
  }());
}

}  // namespace
