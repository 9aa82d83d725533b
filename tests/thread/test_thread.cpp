// Tests of weft::Thread: the name (weft's and the OS's), cooperative stop, argument passing, exceptions
// (join rethrows; an uncollected one reaches the unhandled-exception handler), move assignment and the
// misuse errors.
#include "weft/thread/thread.hpp"

#include <pthread.h>

#include <gtest/gtest.h>

#include <atomic>
#include <condition_variable>
#include <exception>
#include <latch>
#include <memory>
#include <mutex>
#include <stdexcept>
#include <stop_token>
#include <string>
#include <string_view>
#include <system_error>
#include <thread>
#include <utility>
#include <vector>

#include "weft/core/errors.hpp"
#include "pool_test_support.hpp"

namespace {

std::string os_thread_name(pthread_t handle) {
  char buf[64] = {};
  if (pthread_getname_np(handle, buf, sizeof(buf)) != 0) return "<error>";
  return buf;
}

using weft::test::CapturingHandler;

// Blocks the calling weft::Thread until a stop is requested: no polling, no sleep.
void wait_for_stop(const std::stop_token& st) {
  std::mutex m;
  std::condition_variable_any cv;
  std::unique_lock lock(m);
  cv.wait(lock, st, [] { return false; });
}

TEST(Thread, NameIsVisibleInsideAndAsTheOsName) {
  std::string inside;
  std::string os_inside;
  weft::Thread t("weft-worker", [&] {
    inside = weft::this_thread::name();
    os_inside = os_thread_name(pthread_self());
  });
  EXPECT_EQ(t.name(), "weft-worker");
  t.join();
  EXPECT_EQ(inside, "weft-worker");
  EXPECT_EQ(os_inside, "weft-worker");
}

TEST(Thread, LongNameIsTruncatedTo15BytesForTheOs) {
  const std::string name = "a-rather-long-thread-name";
  std::string inside;
  std::string os_inside;
  std::string os_outside;
  std::latch named(1);
  std::latch seen(1);
  weft::Thread t(name, [&] {
    inside = weft::this_thread::name();
    os_inside = os_thread_name(pthread_self());
    named.count_down();
    seen.wait();
  });
  named.wait();
  os_outside = os_thread_name(t.native_handle());  // read from another thread while it runs
  seen.count_down();
  t.join();
  EXPECT_EQ(inside, name);  // weft keeps the whole name
  EXPECT_EQ(os_inside, name.substr(0, 15));
  EXPECT_EQ(os_outside, name.substr(0, 15));
}

TEST(Thread, SetNameNamesAPlainThread) {
  std::string inside;
  std::string os_inside;
  std::thread t([&] {
    EXPECT_EQ(weft::this_thread::name(), "");  // nobody named this thread yet
    weft::this_thread::set_name("plain-thread-renamed");
    inside = weft::this_thread::name();
    os_inside = os_thread_name(pthread_self());
  });
  t.join();
  EXPECT_EQ(inside, "plain-thread-renamed");
  EXPECT_EQ(os_inside, "plain-thread-re");
}

TEST(Thread, DefaultConstructedIsEmpty) {
  weft::Thread t;
  EXPECT_FALSE(t.joinable());
  EXPECT_EQ(t.name(), "");
  EXPECT_THROW(t.join(), std::system_error);
}

TEST(Thread, ArgumentsAreDecayCopied) {
  std::string text = "hello";
  int result = 0;
  std::string seen;
  weft::Thread t(
      "args",
      [&result, &seen](int a, int b, std::string s) {
        result = a + b;
        seen = std::move(s);
      },
      2, 3, text);
  text = "changed after start";  // the thread has its own copy
  t.join();
  EXPECT_EQ(result, 5);
  EXPECT_EQ(seen, "hello");
}

TEST(Thread, MoveOnlyArgumentsAreAccepted) {
  int seen = 0;
  weft::Thread t("move-only", [&seen](std::unique_ptr<int> p) { seen = *p; }, std::make_unique<int>(42));
  t.join();
  EXPECT_EQ(seen, 42);
}

TEST(Thread, StopTokenIsDeliveredAndRequestStopIsObserved) {
  std::latch started(1);
  std::atomic<bool> stopped_cleanly{false};
  weft::Thread t("stoppable", [&](std::stop_token st, int marker) {
    EXPECT_EQ(marker, 7);
    EXPECT_FALSE(st.stop_requested());
    started.count_down();
    wait_for_stop(st);
    stopped_cleanly = st.stop_requested();
  }, 7);
  started.wait();
  EXPECT_FALSE(t.get_stop_token().stop_requested());
  EXPECT_TRUE(t.request_stop());
  EXPECT_FALSE(t.request_stop());  // only the first call makes the request
  t.join();
  EXPECT_TRUE(stopped_cleanly);
  EXPECT_TRUE(t.get_stop_token().stop_requested());
}

TEST(Thread, DestructorRequestsStopAndJoins) {
  std::latch started(1);
  std::atomic<bool> finished{false};
  {
    weft::Thread t("stop-on-destroy", [&](std::stop_token st) {
      started.count_down();
      wait_for_stop(st);
      finished = true;
    });
    started.wait();
  }  // would hang here if the destructor did not request stop before joining
  EXPECT_TRUE(finished);
}

TEST(Thread, JoinRethrowsTheFunctionsException) {
  weft::Thread t("thrower", [] { throw std::out_of_range("index 9 out of range"); });
  try {
    t.join();
    FAIL() << "join() should have rethrown";
  } catch (const std::out_of_range& e) {
    EXPECT_STREQ(e.what(), "index 9 out of range");
  }
  EXPECT_FALSE(t.joinable());
  EXPECT_THROW(t.join(), std::system_error);  // joined already; the exception was handed out once
}

TEST(Thread, CollectedExceptionIsNotReportedAgain) {
  CapturingHandler handler;
  {
    weft::Thread t("collected", [] { throw std::runtime_error("collected by join"); });
    EXPECT_THROW(t.join(), std::runtime_error);
  }
  EXPECT_TRUE(handler.reports().empty());
}

TEST(Thread, UncollectedExceptionGoesToTheHandlerAtDestruction) {
  CapturingHandler handler;
  std::latch thrown(1);
  {
    weft::Thread t("uncollected", [&] {
      // count_down first: the exception is stored after the function returns, before the thread ends.
      thrown.count_down();
      throw std::logic_error("nobody joined me");
    });
    thrown.wait();
    EXPECT_TRUE(handler.reports().empty());  // not reported before the Thread is destroyed
  }
  const auto reports = handler.reports();
  ASSERT_EQ(reports.size(), 1u);
  EXPECT_EQ(reports[0].what, "nobody joined me");
  EXPECT_NE(reports[0].context.find("uncollected"), std::string::npos) << reports[0].context;
}

TEST(Thread, NonStandardExceptionIsKeptToo) {
  weft::Thread t("throws-int", [] { throw 42; });
  try {
    t.join();
    FAIL() << "join() should have rethrown";
  } catch (int v) {
    EXPECT_EQ(v, 42);
  }
}

TEST(Thread, MoveAssignmentJoinsTheOldThread) {
  std::latch old_started(1);
  std::atomic<bool> old_finished{false};
  std::latch new_started(1);
  weft::Thread a("old", [&](std::stop_token st) {
    old_started.count_down();
    wait_for_stop(st);
    old_finished = true;
  });
  weft::Thread b("new", [&](std::stop_token st) {
    new_started.count_down();
    wait_for_stop(st);
  });
  old_started.wait();
  new_started.wait();
  const auto new_id = b.get_id();

  a = std::move(b);  // must stop and join "old" before taking over "new"
  EXPECT_TRUE(old_finished);
  EXPECT_EQ(a.name(), "new");
  EXPECT_EQ(a.get_id(), new_id);
  EXPECT_TRUE(a.joinable());
  EXPECT_FALSE(b.joinable());  // NOLINT(bugprone-use-after-move): a moved-from Thread is empty
  EXPECT_EQ(b.name(), "");     // NOLINT(bugprone-use-after-move)
  a.request_stop();
  a.join();
}

TEST(Thread, MoveAssignmentReportsTheOldThreadsUncollectedException) {
  CapturingHandler handler;
  weft::Thread a("old-thrower", [] { throw std::runtime_error("lost on reassignment?"); });
  a = weft::Thread("replacement", [] {});
  const auto reports = handler.reports();
  ASSERT_EQ(reports.size(), 1u);
  EXPECT_EQ(reports[0].what, "lost on reassignment?");
  EXPECT_NE(reports[0].context.find("old-thrower"), std::string::npos) << reports[0].context;
  a.join();
  EXPECT_EQ(handler.reports().size(), 1u);
}

TEST(Thread, MoveConstructionTransfersOwnership) {
  std::latch go(1);
  std::atomic<bool> ran{false};
  weft::Thread a("moved", [&] {
    go.wait();
    ran = true;
  });
  weft::Thread b(std::move(a));
  EXPECT_FALSE(a.joinable());  // NOLINT(bugprone-use-after-move)
  EXPECT_TRUE(b.joinable());
  EXPECT_EQ(b.name(), "moved");
  go.count_down();
  b.join();
  EXPECT_TRUE(ran);
}

TEST(Thread, JoinFromTheThreadItselfThrows) {
  weft::Thread t;
  std::latch constructed(1);
  std::exception_ptr error;
  t = weft::Thread("self-join", [&] {
    constructed.wait();  // `t` is assigned before the thread looks at it
    try {
      t.join();
    } catch (...) {
      error = std::current_exception();
    }
  });
  constructed.count_down();
  t.join();
  ASSERT_TRUE(error);
  try {
    std::rethrow_exception(error);
  } catch (const std::system_error& e) {
    EXPECT_EQ(e.code(), std::errc::resource_deadlock_would_occur);
  }
}

TEST(Thread, ManyThreadsEachSeeTheirOwnName) {
  constexpr int kThreads = 16;
  std::vector<std::string> names(kThreads);
  std::latch all_named(kThreads);
  {
    std::vector<weft::Thread> threads;
    for (int i = 0; i < kThreads; ++i) {
      threads.emplace_back("t-" + std::to_string(i), [&, i] {
        all_named.arrive_and_wait();  // every thread is alive and named before any reads its name
        names[i] = weft::this_thread::name();
      });
    }
  }  // the destructors join
  for (int i = 0; i < kThreads; ++i) EXPECT_EQ(names[i], "t-" + std::to_string(i));
}

}  // namespace
