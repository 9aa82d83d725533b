// Results expire (Celery's result_expires): ResultBackend::expire_results on both backends, and the worker
// that sweeps them when it starts (then every tenth of AppOptions::result_expires).
#include "support.hpp"

#include <gtest/gtest.h>

#include <chrono>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>

#include "weft/tasks/app.hpp"
#include "weft/tasks/backend.hpp"
#include "weft/tasks/worker.hpp"

namespace {

using namespace weft::tasks;
using namespace std::chrono_literals;
using weft::test::TempDir;

ResultMeta result(const std::string& id, State state, std::optional<SysTime> done) {
  ResultMeta m;
  m.task_id = id;
  m.state = state;
  m.result = 1;
  m.date_done = done;
  m.name = "t";
  return m;
}

class ResultExpiry : public ::testing::TestWithParam<const char*> {
 protected:
  std::string url() { return weft::test::fresh_url_for(GetParam(), dir_, "expiry"); }
  TempDir dir_;
};

TEST_P(ResultExpiry, TheBackendDeletesResultsDoneBeforeTheTimeGivenUpToTheLimit) {
  auto b = connect_backend(url());
  const SysTime now = std::chrono::system_clock::now();
  b->store(result("old-1", State::success, now - 3h));
  b->store(result("old-2", State::failure, now - 2h));
  b->store(result("new", State::success, now));
  b->store(result("started", State::started, std::nullopt));
  EXPECT_THROW(b->expire_results(now - 1h, 0), std::invalid_argument);
  EXPECT_EQ(b->expire_results(now - 1h, 1), 1u);
  EXPECT_EQ(b->expire_results(now - 1h, 10), 1u);
  EXPECT_EQ(b->expire_results(now - 1h, 10), 0u);
  EXPECT_FALSE(b->get("old-1"));
  EXPECT_FALSE(b->get("old-2"));
  EXPECT_TRUE(b->get("new"));
  EXPECT_TRUE(b->get("started")) << "a result without date_done stays";
}

TEST_P(ResultExpiry, AWorkerSweepsExpiredResultsWhenItStarts) {
  const std::string u = url();
  App app(AppOptions{.broker = u, .backend = u, .result_expires = std::chrono::hours(1)});
  const SysTime now = std::chrono::system_clock::now();
  app.backend().store(result("old", State::success, now - 2h));
  app.backend().store(result("recent", State::success, now - 30min));
  Worker w(app, {.concurrency = 1});
  w.start();
  EXPECT_EQ(app.result("old").state(), State::pending) << "expired: deleted by start()";
  EXPECT_EQ(app.result("recent").state(), State::success);
  w.stop();
  EXPECT_EQ(w.stats().errors, 0u) << w.stats().last_error;
}

TEST_P(ResultExpiry, ResultsAreKeptWhenTheyDoNotExpire) {
  const std::string u = url();
  App app(AppOptions{.broker = u, .backend = u, .result_expires = std::nullopt});
  app.backend().store(result("ancient", State::success, std::chrono::system_clock::now() - 24h * 365));
  Worker w(app, {.concurrency = 1});
  w.start();
  EXPECT_EQ(app.result("ancient").state(), State::success);
}

INSTANTIATE_TEST_SUITE_P(Backends, ResultExpiry, ::testing::Values("memory", "sqlite"));

TEST(ResultExpiryOptions, AnExpiryOfZeroIsRefused) {
  EXPECT_THROW(App(AppOptions{.broker = "memory://expiry-zero", .backend = "memory://expiry-zero",
                              .result_expires = std::chrono::milliseconds(0)}),
               std::invalid_argument);
}

}  // namespace
