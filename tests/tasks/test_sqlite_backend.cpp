// The sqlite:/// result backend: first ready state wins, and waits woken by stores from other threads and
// processes without polling.
#include "../../src/tasks/sqlite_backend.hpp"
#include "../../src/tasks/sqlite_broker.hpp"
#include "support.hpp"

#include <gtest/gtest.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <filesystem>
#include <future>
#include <string>
#include <vector>

namespace {

using namespace weft::tasks;
using namespace std::chrono_literals;
using weft::tasks::detail::make_sqlite_backend;
using weft::tasks::detail::make_sqlite_broker;
using weft::tasks::detail::SqliteOptions;
using Steady = std::chrono::steady_clock;

constexpr auto kLong = 30s;  // a safety net, never the thing measured
// Waiters with this recheck can only be woken by a change notification within a test's deadlines.
const SqliteOptions kNoRecheck{.busy_timeout = 5000ms, .recheck = std::chrono::hours(1)};

auto within(std::chrono::milliseconds d) { return std::optional(Steady::now() + d); }

using weft::test::TempDir;

ResultMeta meta(std::string id, State s, Json result = nullptr) {
  ResultMeta m;
  m.task_id = std::move(id);
  m.state = s;
  m.result = std::move(result);
  return m;
}

TEST(SqliteBackend, GetIsEmptyWhenNothingStored) {
  TempDir dir;
  auto r = make_sqlite_backend(dir.db());
  EXPECT_FALSE(r->get("nope"));
  EXPECT_FALSE(r->wait("nope", Steady::now()));
}

TEST(SqliteBackend, StoresEveryField) {
  TempDir dir;
  auto r = make_sqlite_backend(dir.db());
  ResultMeta m = meta("t1", State::failure,
                      Json{{"exc_type", "ValueError"}, {"exc_message", {"bad"}}, {"exc_module", "builtins"}});
  m.traceback = "Traceback (most recent call last):\n  ...";
  m.children = Json::array({Json::array({"child-id", nullptr})});
  m.date_done = std::chrono::system_clock::time_point(std::chrono::microseconds(1'790'000'000'123'456));
  m.name = "app.divide";
  m.retries = 3;
  ASSERT_TRUE(r->store(m));
  auto got = make_sqlite_backend(dir.db())->get("t1");  // through another connection
  ASSERT_TRUE(got);
  EXPECT_EQ(got->task_id, "t1");
  EXPECT_EQ(got->state, State::failure);
  EXPECT_EQ(got->result, m.result);
  EXPECT_EQ(got->traceback, m.traceback);
  EXPECT_EQ(got->children, m.children);
  EXPECT_EQ(got->date_done, m.date_done);
  EXPECT_EQ(got->name, "app.divide");
  EXPECT_EQ(got->retries, 3);

  ASSERT_TRUE(r->store(meta("t2", State::started)));
  auto t2 = r->get("t2");
  ASSERT_TRUE(t2);
  EXPECT_FALSE(t2->date_done);
  EXPECT_TRUE(t2->result.is_null());
}

TEST(SqliteBackend, FirstReadyStateWins) {
  TempDir dir;
  auto r = make_sqlite_backend(dir.db());
  EXPECT_TRUE(r->store(meta("t", State::received)));
  EXPECT_TRUE(r->store(meta("t", State::started))) << "states before ready replace each other";
  EXPECT_TRUE(r->store(meta("t", State::success, 5)));
  EXPECT_FALSE(r->store(meta("t", State::failure, "late")));
  EXPECT_FALSE(r->store(meta("t", State::success, 6)));
  EXPECT_FALSE(make_sqlite_backend(dir.db())->store(meta("t", State::started))) << "from another connection too";
  auto got = r->get("t");
  ASSERT_TRUE(got);
  EXPECT_EQ(got->state, State::success);
  EXPECT_EQ(got->result, 5);
}

TEST(SqliteBackend, WaitReturnsAtTheDeadlineWhenNotReady) {
  TempDir dir;
  auto r = make_sqlite_backend(dir.db(), kNoRecheck);
  ASSERT_TRUE(r->store(meta("t", State::started)));
  const auto start = Steady::now();
  auto got = r->wait("t", within(100ms));
  EXPECT_GE(Steady::now() - start, 100ms);
  ASSERT_TRUE(got);
  EXPECT_EQ(got->state, State::started);
}

TEST(SqliteBackend, WaitWokenByStoreFromAnotherThread) {
  TempDir dir;
  auto r = make_sqlite_backend(dir.db(), kNoRecheck);
  auto other = make_sqlite_backend(dir.db(), kNoRecheck);
  int n = 0;
  // The same object, then another on the file: both wake waiters through the process's one watch of it.
  for (auto* writer : {r.get(), other.get()}) {
    const std::string id = "t" + std::to_string(n++);
    const auto deadline = Steady::now() + kLong;
    auto waiter = std::async(std::launch::async, [&] { return r->wait(id, deadline); });
    ASSERT_TRUE(writer->store(meta(id, State::started)));  // not ready: the waiter keeps waiting
    ASSERT_TRUE(writer->store(meta(id, State::success, 42)));
    ASSERT_EQ(waiter.wait_for(kLong + 5s), std::future_status::ready);
    auto got = waiter.get();
    ASSERT_TRUE(got);
    EXPECT_EQ(got->state, State::success);
    ASSERT_TRUE(Steady::now() < deadline) << "found only when the deadline ran out";
    EXPECT_EQ(got->result, 42);
  }
}

TEST(SqliteBackend, WaitWokenByStoreFromAnotherProcess) {
  TempDir dir;
  // A socket rather than a pipe: send() with MSG_NOSIGNAL reports a dead child instead of raising SIGPIPE.
  int go[2];
  ASSERT_EQ(::socketpair(AF_UNIX, SOCK_STREAM, 0, go), 0);
  const pid_t child = ::fork();  // before this test creates any thread or object
  ASSERT_GE(child, 0);
  if (child == 0) {
    int code = 0;
    try {
      ::close(go[1]);
      auto r = make_sqlite_backend(dir.db());
      char c = 0;
      if (::read(go[0], &c, 1) != 1) throw std::runtime_error("pipe closed");
      if (!r->store(meta("t", State::success, "from the child"))) code = 2;
    } catch (const std::exception& e) {
      std::fprintf(stderr, "child: %s\n", e.what());
      code = 1;
    }
    ::_exit(code);
  }
  ::close(go[0]);
  auto r = make_sqlite_backend(dir.db(), kNoRecheck);
  const auto deadline = Steady::now() + kLong;
  auto waiter = std::async(std::launch::async, [&] { return r->wait("t", deadline); });
  ASSERT_EQ(::send(go[1], "x", 1, MSG_NOSIGNAL), 1);
  ::close(go[1]);
  ASSERT_EQ(waiter.wait_for(kLong + 5s), std::future_status::ready);
  auto got = waiter.get();
  ASSERT_TRUE(got);
  // Recheck is an hour: only the child's commit, seen through inotify, ends the wait before its deadline.
  ASSERT_TRUE(Steady::now() < deadline) << "found only when the deadline ran out";
  EXPECT_EQ(got->state, State::success);
  EXPECT_EQ(got->result, "from the child");
  int status = 0;
  ASSERT_EQ(::waitpid(child, &status, 0), child);
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0);
}

TEST(SqliteBackend, ForgetDeletes) {
  TempDir dir;
  auto r = make_sqlite_backend(dir.db());
  ASSERT_TRUE(r->store(meta("t", State::success, 1)));
  r->forget("t");
  EXPECT_FALSE(r->get("t"));
  EXPECT_TRUE(r->store(meta("t", State::success, 2))) << "a forgotten task can be stored again";
  EXPECT_EQ(r->get("t")->result, 2);
  r->forget("never-stored");
}

TEST(SqliteBackend, SharesItsFileWithTheBroker) {
  TempDir dir;
  auto b = make_sqlite_broker(dir.db());
  auto r = make_sqlite_backend(dir.db());
  b->publish("q", "m", 0, std::nullopt);
  ASSERT_TRUE(r->store(meta("t", State::success, 1)));
  EXPECT_EQ(b->size("q"), 1u);
  EXPECT_EQ(r->get("t")->result, 1);
}

TEST(SqliteBackend, RejectsEmptyTaskIdsAndMissingDirectories) {
  TempDir dir;
  auto r = make_sqlite_backend(dir.db());
  EXPECT_THROW(r->store(meta("", State::success)), std::invalid_argument);
  EXPECT_THROW(r->get(""), std::invalid_argument);
  EXPECT_THROW(make_sqlite_backend("/nonexistent-weft-dir/r.db"), weft::Error);
}

}  // namespace
