// Periodic tasks: interval and crontab schedules, and beats that send each period once however many of them
// run (threads of one process, processes sharing a sqlite:// file).
#include "weft/tasks/beat.hpp"
#include "weft/tasks/worker.hpp"

#include "support.hpp"

#include <stdlib.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <atomic>
#include <barrier>
#include <condition_variable>
#include <cstdio>
#include <map>
#include <mutex>
#include <set>
#include <string>
#include <thread>
#include <vector>

namespace {
using namespace weft::tasks;
using namespace std::chrono_literals;
using std::chrono::sys_days;
using weft::test::TempDir;

constexpr auto kLong = std::chrono::seconds(20);  // a safety net, never the thing measured

// A UTC time.
SysTime utc(int y, unsigned mo, unsigned d, int h = 0, int mi = 0, int s = 0) {
  return sys_days{std::chrono::year(y) / std::chrono::month(mo) / std::chrono::day(d)} + std::chrono::hours(h) +
         std::chrono::minutes(mi) + std::chrono::seconds(s);
}

std::string text(SysTime t) {
  const time_t tt = std::chrono::system_clock::to_time_t(t);
  tm parts{};
  ::gmtime_r(&tt, &parts);
  char buf[64];
  std::strftime(buf, sizeof buf, "%Y-%m-%d %H:%M:%S", &parts);
  return buf;
}

// The message of the std::invalid_argument that crontab(expr) throws; "" when it does not throw.
std::string cron_error(const std::string& expr) {
  try {
    (void)Schedule::crontab(expr);
  } catch (const std::invalid_argument& e) {
    return e.what();
  }
  return "";
}

// The fire times of `s` in (from, to].
std::vector<SysTime> fires(const Schedule& s, SysTime from, SysTime to) {
  std::vector<SysTime> out;
  for (SysTime t = s.next_after(from); t <= to; t = s.next_after(t)) out.push_back(t);
  return out;
}

std::size_t claims(ResultBackend& b, const std::string& entry) { return b.scan("beat:" + entry + ":").size(); }

std::string test_name() { return ::testing::UnitTest::GetInstance()->current_test_info()->name(); }

// ---- schedules ----

// First in the file: it changes TZ while the process has no other threads (each test of the suite also runs
// in a process of its own under ctest).
TEST(Crontab, LocalTimeFollowsDaylightSavingChanges) {
  const char* old = std::getenv("TZ");
  const std::string saved = old != nullptr ? old : "";
  ::setenv("TZ", "CET-1CEST,M3.5.0,M10.5.0/3", 1);  // a POSIX rule: needs no tz database files
  ::tzset();
  const auto nine = Schedule::crontab("0 9 * * *", CronZone::local);
  EXPECT_EQ(nine.next_after(utc(2024, 1, 10)), utc(2024, 1, 10, 8)) << "09:00 CET is 08:00 UTC";
  EXPECT_EQ(nine.next_after(utc(2024, 7, 10)), utc(2024, 7, 10, 7)) << "09:00 CEST is 07:00 UTC";
  EXPECT_EQ(Schedule::crontab("0 9 * * *").next_after(utc(2024, 7, 10)), utc(2024, 7, 10, 9)) << "UTC default";
  EXPECT_EQ(nine.describe(), "crontab \"0 9 * * *\" (local time)");
  // 2024-03-31 02:00 CET jumps to 03:00 CEST: 02:30 does not exist that day and does not fire.
  const auto half_past_two = Schedule::crontab("30 2 * * *", CronZone::local);
  EXPECT_EQ(half_past_two.next_after(utc(2024, 3, 30, 12)), utc(2024, 4, 1, 0, 30));
  // 2024-10-27 03:00 CEST goes back to 02:00 CET: 02:30 happens twice, at 00:30 and 01:30 UTC, and fires twice.
  EXPECT_EQ(half_past_two.next_after(utc(2024, 10, 26, 12)), utc(2024, 10, 27, 0, 30));
  EXPECT_EQ(half_past_two.next_after(utc(2024, 10, 27, 0, 30)), utc(2024, 10, 27, 1, 30));
  EXPECT_EQ(half_past_two.next_after(utc(2024, 10, 27, 1, 30)), utc(2024, 10, 28, 1, 30));
  // Hourly keeps firing every real hour through both changes.
  const auto hourly = Schedule::crontab("0 * * * *", CronZone::local);
  EXPECT_EQ(fires(hourly, utc(2024, 3, 30, 22), utc(2024, 3, 31, 4)).size(), 6U);
  EXPECT_EQ(fires(hourly, utc(2024, 10, 26, 22), utc(2024, 10, 27, 4)).size(), 6U);
  if (old != nullptr) {
    ::setenv("TZ", saved.c_str(), 1);
  } else {
    ::unsetenv("TZ");
  }
  ::tzset();
}

TEST(Crontab, ParsesEveryFieldForm) {
  const SysTime t = utc(2024, 5, 14, 10, 7, 30);  // a Tuesday
  EXPECT_EQ(Schedule::crontab("*/15 * * * *").next_after(t), utc(2024, 5, 14, 10, 15));
  EXPECT_EQ(Schedule::crontab("* * * * *").next_after(t), utc(2024, 5, 14, 10, 8));
  EXPECT_EQ(Schedule::crontab("5,10-12 * * * *").next_after(t), utc(2024, 5, 14, 10, 10));
  EXPECT_EQ(Schedule::crontab("5,10-12 * * * *").next_after(utc(2024, 5, 14, 10, 12)), utc(2024, 5, 14, 11, 5));
  EXPECT_EQ(Schedule::crontab("20-50/15 * * * *").next_after(t), utc(2024, 5, 14, 10, 20));
  EXPECT_EQ(Schedule::crontab("20-50/15 * * * *").next_after(utc(2024, 5, 14, 10, 35)), utc(2024, 5, 14, 10, 50));
  EXPECT_EQ(Schedule::crontab("0 */6 * * *").next_after(t), utc(2024, 5, 14, 12));
  EXPECT_EQ(Schedule::crontab("  0\t9   * JUL,dec *  ").next_after(t), utc(2024, 7, 1, 9)) << "blanks, names, case";
  EXPECT_EQ(Schedule::crontab("0 0 * * sun").next_after(t), utc(2024, 5, 19));
  EXPECT_EQ(Schedule::crontab("0 0 * * 7").next_after(t), utc(2024, 5, 19)) << "7 is Sunday too";
  EXPECT_EQ(Schedule::crontab("0 0 * * 0").next_after(t), utc(2024, 5, 19));
  EXPECT_EQ(Schedule::crontab("0 0 * * fri-sun").next_after(t), utc(2024, 5, 17)) << "a range ending on Sunday";
  EXPECT_EQ(Schedule::crontab("0 0 * * 6-7").next_after(utc(2024, 5, 18, 1)), utc(2024, 5, 19));
  EXPECT_EQ(Schedule::crontab("0 0 * * mon-fri").next_after(utc(2024, 5, 17, 1)), utc(2024, 5, 20));
  EXPECT_EQ(Schedule::crontab("0 0 * mar-may/2 *").next_after(t), utc(2024, 5, 15)) << "months 3 and 5";
  EXPECT_EQ(Schedule::crontab("0 0 * mar-may/2 *").next_after(utc(2024, 5, 31, 1)), utc(2025, 3, 1));
  EXPECT_EQ(Schedule::crontab("@hourly").next_after(t), utc(2024, 5, 14, 11));
  EXPECT_EQ(Schedule::crontab("@daily").next_after(t), utc(2024, 5, 15));
  EXPECT_EQ(Schedule::crontab("@midnight").next_after(t), utc(2024, 5, 15));
  EXPECT_EQ(Schedule::crontab("@weekly").next_after(t), utc(2024, 5, 19));
  EXPECT_EQ(Schedule::crontab("@monthly").next_after(t), utc(2024, 6, 1));
  EXPECT_EQ(Schedule::crontab("@yearly").next_after(t), utc(2025, 1, 1));
  EXPECT_EQ(Schedule::crontab("@annually").next_after(t), utc(2025, 1, 1));
  EXPECT_EQ(Schedule::crontab("*/5 * * * *").describe(), "crontab \"*/5 * * * *\" (UTC)");
  EXPECT_FALSE(Schedule::crontab("*/5 * * * *").interval());
}

TEST(Crontab, ErrorsNameTheFieldAndTheBadText) {
  struct Case {
    const char* expr;
    std::vector<const char*> says;
  };
  const std::vector<Case> cases = {
      {"", {"has 0 fields", "minute hour day-of-month month day-of-week"}},
      {"* * * *", {"\"* * * *\" has 4 fields"}},
      {"* * * * * *", {"has 6 fields"}},
      {"60 * * * *", {"minute field \"60\"", "60 is not between 0 and 59"}},
      {"* 24 * * *", {"hour field \"24\"", "not between 0 and 23"}},
      {"* * 0 * *", {"day-of-month field \"0\"", "not between 1 and 31"}},
      {"* * 32 * *", {"day-of-month field \"32\""}},
      {"* * * 13 *", {"month field \"13\"", "not between 1 and 12"}},
      {"* * * * 8", {"day-of-week field \"8\"", "not between 0 and 7"}},
      {"* * * foo *", {"month field \"foo\"", "unknown month name \"foo\""}},
      {"* * * * mon-funday", {"day-of-week field \"mon-funday\"", "unknown day name \"funday\""}},
      {"x * * * *", {"minute field \"x\"", "\"x\" is not a number"}},
      {"99999 * * * *", {"minute field \"99999\"", "not between 0 and 59"}},
      {"10-5 * * * *", {"minute field \"10-5\"", "the range 10-5 runs backwards"}},
      {"* * * dec-jan *", {"month field \"dec-jan\"", "runs backwards"}},
      {"1- * * * *", {"minute field \"1-\"", "lacks a bound"}},
      {"-1 * * * *", {"minute field \"-1\"", "lacks a bound"}},
      {"*/0 * * * *", {"minute field \"*/0\"", "the step 0 is not between 1 and 59"}},
      {"*/60 * * * *", {"the step 60 is not between 1 and 59"}},
      {"*/ * * * *", {"minute field \"*/\"", "the step \"\" is not a number"}},
      {"*/x * * * *", {"the step \"x\" is not a number"}},
      {"5/10 * * * *", {"minute field \"5/10\"", "a step needs * or a range"}},
      {"1,,2 * * * *", {"minute field \"1,,2\"", "an empty list item"}},
      {"1, * * * *", {"an empty list item"}},
      {"0 0 30 2 *", {"\"0 0 30 2 *\" never fires"}},
      {"0 0 31 apr,jun,sep,nov *", {"never fires"}},
      {"@reboot", {"\"@reboot\": unknown macro"}},
  };
  for (const Case& c : cases) {
    const std::string what = cron_error(c.expr);
    ASSERT_FALSE(what.empty()) << "\"" << c.expr << "\" was accepted";
    for (const char* s : c.says) EXPECT_NE(what.find(s), std::string::npos) << c.expr << " -> " << what;
  }
  // Restricted days of the month that some month of the field has, or a weekday to match instead, do fire.
  EXPECT_EQ(Schedule::crontab("0 0 31 2,3 *").next_after(utc(2024, 1, 1)), utc(2024, 3, 31));
  EXPECT_EQ(Schedule::crontab("0 0 30 2 mon").next_after(utc(2024, 2, 1)), utc(2024, 2, 5)) << "or a Monday";
}

TEST(Crontab, NextAfterCrossesHourDayMonthAndYear) {
  const auto hourly = Schedule::crontab("0 * * * *");
  EXPECT_EQ(hourly.next_after(utc(2024, 5, 14, 10, 59, 59)), utc(2024, 5, 14, 11));
  EXPECT_EQ(hourly.next_after(utc(2024, 5, 14, 11)), utc(2024, 5, 14, 12)) << "strictly after a fire time";
  EXPECT_EQ(hourly.next_after(utc(2024, 5, 14, 11) - 1ns), utc(2024, 5, 14, 11));
  EXPECT_EQ(hourly.next_after(utc(2024, 5, 14, 23, 30)), utc(2024, 5, 15));
  const auto late = Schedule::crontab("45 23 * * *");
  EXPECT_EQ(late.next_after(utc(2024, 5, 31, 23, 50)), utc(2024, 6, 1, 23, 45)) << "into the next month";
  EXPECT_EQ(late.next_after(utc(2023, 12, 31, 23, 46)), utc(2024, 1, 1, 23, 45)) << "into the next year";
  const auto midnight = Schedule::crontab("0 0 * * *");
  EXPECT_EQ(midnight.next_after(utc(2023, 12, 31, 23, 59, 59)), utc(2024, 1, 1));
  EXPECT_EQ(Schedule::crontab("0 0 1 * *").next_after(utc(2024, 1, 31, 12)), utc(2024, 2, 1));
  EXPECT_EQ(Schedule::crontab("0 12 31 * *").next_after(utc(2024, 1, 31, 12)), utc(2024, 3, 31, 12))
      << "months without a 31st are passed over";
  EXPECT_EQ(Schedule::crontab("59 23 31 12 *").next_after(utc(2024, 12, 31, 23, 59)), utc(2025, 12, 31, 23, 59));
  EXPECT_EQ(Schedule::crontab("*/5 * * * *").next_after(utc(2024, 5, 14, 10, 5) + 1us), utc(2024, 5, 14, 10, 10));
  EXPECT_EQ(fires(Schedule::crontab("*/10 * * * *"), utc(2024, 5, 14), utc(2024, 5, 15)).size(), 144U);
}

TEST(Crontab, LeapDayFiresOnlyInLeapYears) {
  const auto leap = Schedule::crontab("0 0 29 2 *");
  EXPECT_EQ(leap.next_after(utc(2023, 6, 1)), utc(2024, 2, 29));
  EXPECT_EQ(leap.next_after(utc(2024, 2, 29)), utc(2028, 2, 29));
  EXPECT_EQ(leap.next_after(utc(2096, 3, 1)), utc(2104, 2, 29)) << "2100 is not a leap year";
  EXPECT_EQ(Schedule::crontab("0 0 28 2 *").next_after(utc(2100, 2, 27)), utc(2100, 2, 28));
}

TEST(Crontab, BothDayFieldsRestrictedMatchEitherOtherwiseBoth) {
  // Vixie cron: "the 1st, and every Monday".
  const auto either = Schedule::crontab("0 0 1 * mon");
  EXPECT_EQ(text(either.next_after(utc(2024, 5, 28))), "2024-06-01 00:00:00") << "the 1st, a Saturday";
  EXPECT_EQ(text(either.next_after(utc(2024, 6, 1))), "2024-06-03 00:00:00") << "then a Monday";
  EXPECT_EQ(fires(either, utc(2024, 6, 1), utc(2024, 7, 1, 1)).size(), 5U) << "Mondays 3-24 of June, July 1st";
  // A day of the month starting with '*' is not a restriction: both fields must match (odd days that are
  // Mondays).
  const auto both = Schedule::crontab("0 0 */2 * mon");
  EXPECT_EQ(text(both.next_after(utc(2024, 6, 1))), "2024-06-03 00:00:00");
  EXPECT_EQ(text(both.next_after(utc(2024, 6, 3))), "2024-06-17 00:00:00") << "June 10th is even";
  // Nor is a day of week starting with '*'.
  const auto both2 = Schedule::crontab("0 0 13 * */7");
  EXPECT_EQ(text(both2.next_after(utc(2024, 9, 1))), "2024-10-13 00:00:00") << "the 13th that is a Sunday";
}

TEST(Schedule, IntervalsAreAlignedToTheEpoch) {
  const SysTime epoch{};
  const auto tenth = Schedule::every(100ms);
  EXPECT_EQ(tenth.next_after(epoch + 1234ms), epoch + 1300ms);
  EXPECT_EQ(tenth.next_after(epoch + 1300ms), epoch + 1400ms) << "strictly after a fire time";
  EXPECT_EQ(tenth.next_after(epoch + 1300ms - 1ns), epoch + 1300ms);
  EXPECT_EQ(tenth.next_after(epoch - 150ms), epoch - 100ms) << "before the epoch too";
  EXPECT_EQ(tenth.next_after(epoch - 100ms), epoch);
  EXPECT_EQ(Schedule::every(1h).next_after(utc(2024, 5, 14, 10, 59)), utc(2024, 5, 14, 11));
  EXPECT_EQ(Schedule::every(std::chrono::days(1)).next_after(utc(2024, 5, 14, 10)), utc(2024, 5, 15));
  // Two beats started at different moments agree on the period a time belongs to.
  const auto seven = Schedule::every(7s);
  EXPECT_EQ(seven.next_after(utc(2024, 5, 14, 10, 0, 1)), seven.next_after(utc(2024, 5, 14, 10, 0, 2)));
  EXPECT_EQ(tenth.interval(), 100ms);
  EXPECT_EQ(tenth.describe(), "every 100ms");
  EXPECT_EQ(Schedule::every(1500ms).describe(), "every 1500ms");
  EXPECT_EQ(Schedule::every(90s).describe(), "every 90s");
  EXPECT_EQ(Schedule::every(5min).describe(), "every 5m");
  EXPECT_EQ(Schedule::every(2h).describe(), "every 2h");
  EXPECT_THROW((void)Schedule::every(0ms), std::invalid_argument);
  EXPECT_THROW((void)Schedule::every(-5ms), std::invalid_argument);
  EXPECT_THROW((void)Schedule::every(std::chrono::days(3651)), std::invalid_argument);
}

// ---- beats, driven by tick() ----

// A fresh name for memory:// brokers and backends (they live as long as the process): Apps made with the same
// name share them, as processes share a server.
std::string fresh_name() {
  static std::atomic<int> made{0};
  return test_name() + "-" + std::to_string(++made);
}
AppOptions memory_app(const std::string& name) {
  return AppOptions{.broker = "memory://" + name, .backend = "memory://" + name};
}

TEST(Beat, RejectsBadEntries) {
  App app(memory_app(fresh_name()));
  auto one = [](std::string name) {
    return BeatEntry{.name = std::move(name), .task = "t", .schedule = Schedule::every(1s)};
  };
  EXPECT_THROW((Beat(app, {.entries = {one("a"), one("b"), one("a")}})), std::invalid_argument);
  EXPECT_THROW((Beat(app, {.entries = {one("")}})), std::invalid_argument);
  EXPECT_THROW((Beat(app, {.entries = {one(std::string(257, 'x'))}})), std::invalid_argument);
  EXPECT_NO_THROW((Beat(app, {.entries = {one(std::string(256, 'x'))}})));
  EXPECT_THROW((Beat(app, {.entries = {{.name = "a", .task = "", .schedule = Schedule::every(1s)}}})),
               std::invalid_argument);
  EXPECT_THROW(
      (Beat(app, {.entries = {{.name = "a", .task = "t", .args = Json::object(), .schedule = Schedule::every(1s)}}})),
               std::invalid_argument);
  EXPECT_THROW(
      (Beat(app, {.entries = {{.name = "a", .task = "t", .kwargs = Json::array(), .schedule = Schedule::every(1s)}}})),
               std::invalid_argument);
  EXPECT_THROW((Beat(app, {.entries = {one("a")}, .min_claim_ttl = 0ms})), std::invalid_argument);
  EXPECT_THROW((Beat(app, {.entries = {one("a")}, .max_sleep = 0ms})), std::invalid_argument);
  Beat named(app, {.entries = {one("a")}, .hostname = "beat-1"});
  EXPECT_EQ(named.hostname(), "beat-1");
  Beat unnamed(app, {.entries = {one("a")}});
  EXPECT_EQ(unnamed.hostname().rfind("beat-", 0), 0U) << unnamed.hostname();
}

TEST(Beat, FirstStepDoesNotCatchUpAndALateBeatFiresOnce) {
  App app(memory_app(fresh_name()));
  Beat beat(app, {.entries = {{.name = "e", .task = "t.e", .args = Json::array({1, "x"}),
                               .schedule = Schedule::every(1s)}},
                  .hostname = "b1"});
  const SysTime t0 = utc(2024, 5, 14, 10, 0, 0) + 300ms;
  EXPECT_TRUE(beat.tick(t0).empty()) << "periods before the first step are not caught up";
  ASSERT_EQ(beat.entries().size(), 1U);
  EXPECT_EQ(beat.entries()[0].next, utc(2024, 5, 14, 10, 0, 1));
  EXPECT_TRUE(beat.tick(t0 + 500ms).empty());
  EXPECT_EQ(beat.tick(t0 + 700ms), std::vector<std::string>{"e"}) << "10:00:01 is due";
  EXPECT_TRUE(beat.tick(t0 + 800ms).empty()) << "once per period";
  // Fell behind by several periods: only the latest (10:00:06) is sent.
  EXPECT_EQ(beat.tick(t0 + 6s), std::vector<std::string>{"e"});
  EXPECT_TRUE(beat.tick(t0 + 6s + 100ms).empty());
  const auto st = beat.stats();
  EXPECT_EQ(st.fired, 2U);
  EXPECT_EQ(st.late, 1U);
  EXPECT_EQ(st.skipped, 0U);
  EXPECT_EQ(st.errors, 0U);
  EXPECT_EQ(beat.entries()[0].last_sent, utc(2024, 5, 14, 10, 0, 6));
  EXPECT_EQ(beat.entries()[0].next, utc(2024, 5, 14, 10, 0, 7));
  auto keys = app.backend().scan("beat:e:");
  ASSERT_EQ(keys.size(), 2U);
  EXPECT_EQ(keys[0].first, beat_claim_key("e", utc(2024, 5, 14, 10, 0, 1)));
  EXPECT_EQ(keys[0].first, "beat:e:" + std::to_string(std::chrono::duration_cast<std::chrono::microseconds>(
                                                          utc(2024, 5, 14, 10, 0, 1).time_since_epoch()).count()));
  EXPECT_EQ(keys[0].second, "b1");
  EXPECT_EQ(keys[1].first, beat_claim_key("e", utc(2024, 5, 14, 10, 0, 6)));
  // What was sent: the entry's task with its arguments, under the id the beat reports.
  EXPECT_EQ(app.broker().size("celery"), 2U);
  const std::vector<std::string> queues = {"celery"};
  auto d = app.broker().reserve(queues, 10s, std::chrono::steady_clock::now() + kLong);
  ASSERT_TRUE(d);
  const TaskMessage m = decode_envelope(envelope_of(*d));
  EXPECT_EQ(m.task, "t.e");
  EXPECT_EQ(m.args, Json::array({1, "x"}));
}

TEST(Beat, ALateCrontabBeatSendsOnlyTheLatestMissedPeriod) {
  App app(memory_app(fresh_name()));
  Beat beat(app, {.entries = {{.name = "minutely", .task = "t", .schedule = Schedule::crontab("* * * * *")},
                              {.name = "monthly", .task = "t", .schedule = Schedule::crontab("30 12 1 * *")},
                              {.name = "weekdays", .task = "t", .schedule = Schedule::crontab("0 9 * * mon-fri")}}});
  (void)beat.tick(utc(2024, 1, 15, 8, 0, 30));
  // Asleep until a Sunday three months later.
  const auto sent = beat.tick(utc(2024, 4, 14, 17, 20, 10));
  EXPECT_EQ(sent, (std::vector<std::string>{"minutely", "monthly", "weekdays"}));
  const auto entries = beat.entries();
  EXPECT_EQ(text(*entries[0].last_sent), "2024-04-14 17:20:00");
  EXPECT_EQ(text(*entries[1].last_sent), "2024-04-01 12:30:00");
  EXPECT_EQ(text(*entries[2].last_sent), "2024-04-12 09:00:00") << "the Friday before";
  EXPECT_EQ(text(*entries[0].next), "2024-04-14 17:21:00");
  EXPECT_EQ(text(*entries[1].next), "2024-05-01 12:30:00");
  EXPECT_EQ(text(*entries[2].next), "2024-04-15 09:00:00");
  EXPECT_EQ(beat.stats().late, 3U);
  EXPECT_EQ(app.broker().size("celery"), 3U);
}

TEST(Beat, ClockSetBackDoesNotSendAPeriodTwice) {
  App app(memory_app(fresh_name()));
  Beat beat(app, {.entries = {{.name = "e", .task = "t", .schedule = Schedule::every(1s)}}});
  const SysTime t0 = utc(2024, 5, 14, 10);
  (void)beat.tick(t0);
  EXPECT_EQ(beat.tick(t0 + 1s).size(), 1U);
  EXPECT_EQ(beat.tick(t0 + 2s).size(), 1U);
  EXPECT_TRUE(beat.tick(t0 - 30s).empty()) << "the clock was set back";
  EXPECT_EQ(beat.entries()[0].next, t0 - 29s) << "it waits for the first period after the new now";
  EXPECT_TRUE(beat.tick(t0 + 1s).empty()) << "10:00:01 was sent already: its claim is still there";
  EXPECT_TRUE(beat.tick(t0 + 2s).empty());
  EXPECT_EQ(beat.tick(t0 + 3s).size(), 1U);
  EXPECT_EQ(beat.stats().fired, 3U);
  EXPECT_EQ(app.broker().size("celery"), 3U);
}

TEST(Beat, SendErrorsAreCountedAndTheBeatKeepsGoing) {
  App app(memory_app(fresh_name()));
  Beat beat(app, {.entries = {{.name = "broken", .task = "t", .schedule = Schedule::every(1s),
                               .options = {.queue = std::string()}},  // the broker refuses an empty queue name
                              {.name = "fine", .task = "t", .schedule = Schedule::every(1s)}}});
  const SysTime t0 = utc(2024, 5, 14, 10);
  (void)beat.tick(t0);
  EXPECT_EQ(beat.tick(t0 + 1s), std::vector<std::string>{"fine"});
  EXPECT_EQ(beat.tick(t0 + 2s), std::vector<std::string>{"fine"});
  const auto st = beat.stats();
  EXPECT_EQ(st.errors, 2U) << "each period of the broken entry";
  EXPECT_EQ(st.fired, 2U);
  EXPECT_EQ(st.last_error.rfind("broken: ", 0), 0U) << st.last_error;
  EXPECT_EQ(beat.entries()[0].next, t0 + 3s) << "it goes on to the next period";
  EXPECT_EQ(app.broker().size("celery"), 2U);
}

// Beats in lock step on `times` (each in its own thread, released together at every step, so that their
// claims race); returns each beat's stats.
std::vector<BeatStats> run_in_lock_step(std::vector<Beat*> beats, const std::vector<SysTime>& times) {
  std::barrier sync(static_cast<std::ptrdiff_t>(beats.size()));
  std::vector<std::thread> threads;
  for (Beat* b : beats) {
    threads.emplace_back([&sync, b, &times] {
      for (SysTime t : times) {
        sync.arrive_and_wait();
        (void)b->tick(t);
      }
    });
  }
  for (auto& t : threads) t.join();
  std::vector<BeatStats> out;
  for (Beat* b : beats) out.push_back(b->stats());
  return out;
}

TEST(Beat, ThreeBeatsOnOneMemoryBackendSendEachPeriodOnce) {
  // Three Apps on the same memory:// broker and backend stand for three processes.
  const std::string name = fresh_name();
  App a(memory_app(name)), b(memory_app(name)), c(memory_app(name));
  const auto entries = [] {
    return std::vector<BeatEntry>{{.name = "fast", .task = "t.fast", .schedule = Schedule::every(1s)},
                                  {.name = "minutely", .task = "t.minutely",
                                   .schedule = Schedule::crontab("* * * * *")}};
  };
  Beat ba(a, {.entries = entries(), .hostname = "a"});
  Beat bb(b, {.entries = entries(), .hostname = "b"});
  Beat bc(c, {.entries = entries(), .hostname = "c"});
  const SysTime base = utc(2024, 5, 14, 10, 0, 0) + 10ms;
  std::vector<SysTime> times;
  for (int i = 0; i < 400; ++i) times.push_back(base + i * 400ms);  // 160 s
  const auto stats = run_in_lock_step({&ba, &bb, &bc}, times);
  const std::size_t fast = fires(Schedule::every(1s), base, times.back()).size();
  const std::size_t minutely = fires(Schedule::crontab("* * * * *"), base, times.back()).size();
  ASSERT_EQ(fast, 159U);
  ASSERT_EQ(minutely, 2U);
  std::uint64_t fired = 0, skipped = 0;
  for (const auto& s : stats) {
    fired += s.fired;
    skipped += s.skipped;
    EXPECT_EQ(s.errors, 0U) << s.last_error;
    EXPECT_EQ(s.late, 0U);
  }
  EXPECT_EQ(fired, fast + minutely) << "each period sent once";
  EXPECT_EQ(skipped, 2 * (fast + minutely)) << "and skipped by the two other beats";
  EXPECT_EQ(a.broker().size("celery"), fast + minutely);
  EXPECT_EQ(claims(a.backend(), "fast"), fast);
  EXPECT_EQ(claims(a.backend(), "minutely"), minutely);
}

TEST(Beat, TwoBeatsOnOneSqliteFileSendEachPeriodOnce) {
  TempDir dir;
  const std::string url = "sqlite://" + dir.db();
  App a({.broker = url, .backend = url}), b({.broker = url, .backend = url});
  const auto entries = [] {
    return std::vector<BeatEntry>{{.name = "e", .task = "t", .schedule = Schedule::every(1s)}};
  };
  Beat ba(a, {.entries = entries(), .hostname = "a"});
  Beat bb(b, {.entries = entries(), .hostname = "b"});
  const SysTime base = utc(2024, 5, 14, 10) + 500ms;
  std::vector<SysTime> times;
  for (int i = 0; i <= 20; ++i) times.push_back(base + i * 1s);
  const auto stats = run_in_lock_step({&ba, &bb}, times);
  EXPECT_EQ(stats[0].fired + stats[1].fired, 20U);
  EXPECT_EQ(stats[0].skipped + stats[1].skipped, 20U);
  EXPECT_EQ(stats[0].errors + stats[1].errors, 0U) << stats[0].last_error << stats[1].last_error;
  EXPECT_EQ(a.broker().size("celery"), 20U);
  EXPECT_EQ(claims(b.backend(), "e"), 20U);
}

TEST(Beat, TwoProcessesOnOneSqliteFileSendEachPeriodOnce) {
  TempDir dir;
  const std::string url = "sqlite://" + dir.db();
  const SysTime base = utc(2024, 5, 14, 10) + 500ms;
  constexpr int kPeriods = 20;
  // Both processes tick through the same times; before each step they meet (each sends a byte on the socket
  // pair and reads the other's), so that their claims of each period race.
  auto run = [&](const std::string& host, int fd) {
    App app({.broker = url, .backend = url});
    Beat beat(app, {.entries = {{.name = "e", .task = "t", .schedule = Schedule::every(1s)}}, .hostname = host});
    (void)beat.tick(base);
    for (int i = 1; i <= kPeriods; ++i) {
      char c = 'x';
      if (::send(fd, &c, 1, MSG_NOSIGNAL) != 1 || ::read(fd, &c, 1) != 1) {
        throw std::runtime_error("the other process is gone");
      }
      (void)beat.tick(base + i * 1s);
    }
    const BeatStats st = beat.stats();
    if (st.errors != 0) throw std::runtime_error(host + ": " + st.last_error);
    return st;
  };
  int go[2];
  ASSERT_EQ(::socketpair(AF_UNIX, SOCK_STREAM, 0, go), 0);
  const pid_t child = ::fork();  // before this test creates any thread or object
  ASSERT_GE(child, 0);
  if (child == 0) {
    int code = 100;
    try {
      ::close(go[1]);
      code = static_cast<int>(run("child", go[0]).fired);
    } catch (const std::exception& e) {
      std::fprintf(stderr, "child: %s\n", e.what());
    }
    ::_exit(code);
  }
  ::close(go[0]);
  const BeatStats mine = run("parent", go[1]);
  ::close(go[1]);
  int status = 0;
  ASSERT_EQ(::waitpid(child, &status, 0), child);
  ASSERT_TRUE(WIFEXITED(status));
  const int child_fired = WEXITSTATUS(status);
  ASSERT_LE(child_fired, kPeriods) << "the child failed";
  EXPECT_EQ(static_cast<int>(mine.fired) + child_fired, kPeriods);
  App app({.broker = url, .backend = url});
  EXPECT_EQ(app.broker().size("celery"), static_cast<std::size_t>(kPeriods));
  std::map<std::string, int> by_host;
  for (const auto& [key, host] : app.backend().scan("beat:e:")) ++by_host[host];
  EXPECT_EQ(by_host["parent"] + by_host["child"], kPeriods);
  EXPECT_EQ(by_host["child"], child_fired);
}

// ---- beats in real time ----

std::mutex runs_mu;
std::condition_variable runs_cv;
int runs = 0;
void count_run() {
  {
    std::lock_guard lock(runs_mu);
    ++runs;
  }
  runs_cv.notify_all();
}
// Waits (bounded) until `pred()` holds under runs_mu; returns whether it did.
template <class P>
bool wait_runs(P pred) {
  std::unique_lock lock(runs_mu);
  return runs_cv.wait_for(lock, kLong, pred);
}

TEST(Beat, TwoRunningBeatsAndAWorkerRunEachPeriodOnce) {
  {
    std::lock_guard lock(runs_mu);
    runs = 0;
  }
  const std::string name = fresh_name();
  App a(memory_app(name)), b(memory_app(name));
  (void)a.task<&count_run>("beat.count");
  const auto entries = [] {
    return std::vector<BeatEntry>{{.name = "count", .task = "beat.count", .schedule = Schedule::every(100ms)}};
  };
  Worker w(a, {.concurrency = 1});
  w.start();
  Beat ba(a, {.entries = entries(), .hostname = "a"});
  Beat bb(b, {.entries = entries(), .hostname = "b"});
  ba.start();
  bb.start();
  ASSERT_TRUE(wait_runs([] { return runs >= 4; })) << "no periodic runs";
  ba.stop();
  bb.stop();
  const BeatStats sa = ba.stats(), sb = bb.stats();
  const std::uint64_t sent = sa.fired + sb.fired;
  ASSERT_TRUE(wait_runs([&] { return runs >= static_cast<int>(sent); })) << "sent tasks did not run";
  w.stop();
  EXPECT_EQ(runs, static_cast<int>(sent)) << "one run per send";
  EXPECT_EQ(claims(a.backend(), "count"), sent) << "one send per claimed period";
  EXPECT_GT(sa.skipped + sb.skipped, 0U) << "both beats tried the same periods";
  EXPECT_EQ(sa.errors + sb.errors, 0U) << sa.last_error << sb.last_error;
  EXPECT_EQ(w.stats().succeeded, sent);
  EXPECT_EQ(a.broker().size("celery"), 0U);
}

TEST(Beat, StopWakesASleepingBeatAtOnce) {
  App app(memory_app(fresh_name()));
  Beat beat(app, {.entries = {{.name = "yearly", .task = "t", .schedule = Schedule::crontab("@yearly")}},
                  .max_sleep = std::chrono::hours(1)});
  beat.start();
  EXPECT_THROW(beat.start(), std::logic_error);
  // Wait (bounded) for the first step, after which the thread sleeps until next year or an hour.
  const auto deadline = std::chrono::steady_clock::now() + kLong;
  while (!beat.entries()[0].next && std::chrono::steady_clock::now() < deadline) std::this_thread::yield();
  ASSERT_TRUE(beat.entries()[0].next);
  const auto t0 = std::chrono::steady_clock::now();
  beat.stop();
  EXPECT_LT(std::chrono::steady_clock::now() - t0, 10s) << "stop() waited for the sleep to end";
  beat.stop();  // idempotent
  EXPECT_EQ(beat.stats().fired, 0U);
}

}  // namespace
