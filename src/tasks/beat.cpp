// Schedules (interval, crontab) and the Beat; the once-per-period protocol is at the top of weft/tasks/beat.hpp.
#include "weft/tasks/beat.hpp"

#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <bit>
#include <cctype>
#include <cstring>
#include <stdexcept>

namespace weft::tasks {
namespace {

using std::chrono::days;
using std::chrono::hours;
using std::chrono::milliseconds;
using std::chrono::minutes;
using std::chrono::seconds;
using std::chrono::sys_days;
using std::chrono::sys_seconds;

// How far next_after looks. Every valid crontab fires within 13 years (the 1st of a given month on a given
// weekday recurs within 12; a leap day within 8); the rest is margin for local schedules.
constexpr auto kSearchSpan = days(366 * 50);
constexpr milliseconds kMaxInterval = days(3650);
constexpr std::size_t kMaxEntryName = 256;

// ---- crontab parsing ----

struct Field {
  const char* name;
  int min;
  int max;
  const std::array<const char*, 12>* names;  // names[i] is value min + i, up to the first null; null: numbers only
};

constexpr std::array<const char*, 12> kMonthNames = {"jan", "feb", "mar", "apr", "may", "jun",
                                                     "jul", "aug", "sep", "oct", "nov", "dec"};
constexpr std::array<const char*, 12> kDayNames = {"sun", "mon", "tue", "wed", "thu", "fri", "sat"};

constexpr Field kMinute{"minute", 0, 59, nullptr};
constexpr Field kHour{"hour", 0, 23, nullptr};
constexpr Field kDayOfMonth{"day-of-month", 1, 31, nullptr};
constexpr Field kMonth{"month", 1, 12, &kMonthNames};
constexpr Field kDayOfWeek{"day-of-week", 0, 7, &kDayNames};  // 7 is Sunday again

struct Parsed {
  std::uint64_t bits = 0;
  bool star = false;  // the field starts with '*' (Vixie's test for "unrestricted")
};

class FieldParser {
 public:
  FieldParser(std::string_view expression, const Field& f, std::string_view text)
      : expression_(expression), f_(f), text_(text) {}

  Parsed parse() const {
    Parsed p;
    p.star = !text_.empty() && text_.front() == '*';
    std::size_t start = 0;
    for (;;) {
      const std::size_t comma = text_.find(',', start);
      const std::string_view item = text_.substr(start, comma == std::string_view::npos ? comma : comma - start);
      p.bits |= parse_item(item);
      if (comma == std::string_view::npos) break;
      start = comma + 1;
    }
    if (f_.max == 7 && (p.bits >> 7 & 1U)) p.bits = (p.bits | 1U) & ~(std::uint64_t{1} << 7);  // 7 is Sunday
    return p;
  }

 private:
  [[noreturn]] void fail(const std::string& why) const {
    throw std::invalid_argument("weft: crontab \"" + std::string(expression_) + "\": bad " + f_.name + " field \"" +
                                std::string(text_) + "\": " + why);
  }

  std::uint64_t parse_item(std::string_view item) const {
    if (item.empty()) fail("an empty list item");
    std::string_view base = item;
    std::optional<int> step;
    if (const auto slash = item.find('/'); slash != std::string_view::npos) {
      base = item.substr(0, slash);
      const std::string_view s = item.substr(slash + 1);
      if (s.empty() || s.size() > 4 || !std::all_of(s.begin(), s.end(), [](char c) { return c >= '0' && c <= '9'; })) {
        fail("the step \"" + std::string(s) + "\" is not a number");
      }
      step = std::stoi(std::string(s));
      if (*step < 1 || *step > f_.max) {
        fail("the step " + std::to_string(*step) + " is not between 1 and " + std::to_string(f_.max));
      }
    }
    int lo = f_.min;
    int hi = f_.max == 7 ? 6 : f_.max;
    if (base == "*") {
      // the whole field
    } else if (const auto dash = base.find('-'); dash != std::string_view::npos) {
      lo = value(base.substr(0, dash));
      hi = value(base.substr(dash + 1));
      if (f_.max == 7 && hi == 0 && lo > 0) hi = 7;  // "fri-sun": a range may end with Sunday
      if (lo > hi) fail("the range " + std::string(base) + " runs backwards");
    } else {
      if (step) fail("a step needs * or a range before it (\"*/n\", \"a-b/n\"), not \"" + std::string(base) + "\"");
      lo = hi = value(base);
    }
    std::uint64_t bits = 0;
    for (int v = lo; v <= hi; v += step.value_or(1)) bits |= std::uint64_t{1} << v;
    return bits;
  }

  int value(std::string_view s) const {
    if (s.empty()) fail("a range lacks a bound");
    if (std::all_of(s.begin(), s.end(), [](char c) { return c >= '0' && c <= '9'; })) {
      const std::string range = " is not between " + std::to_string(f_.min) + " and " + std::to_string(f_.max);
      if (s.size() > 4) fail(std::string(s) + range);
      const int v = std::stoi(std::string(s));
      if (v < f_.min || v > f_.max) fail(std::to_string(v) + range);
      return v;
    }
    std::string lower(s);
    for (char& c : lower) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    if (f_.names != nullptr) {
      for (std::size_t i = 0; i < f_.names->size() && (*f_.names)[i] != nullptr; ++i) {
        if (lower == (*f_.names)[i]) return f_.min + static_cast<int>(i);
      }
      fail("unknown " + std::string(f_.max == 7 ? "day" : "month") + " name \"" + std::string(s) + "\"");
    }
    fail("\"" + std::string(s) + "\" is not a number");
  }

  std::string_view expression_;
  const Field& f_;
  std::string_view text_;
};

std::string_view expand_macro(std::string_view e) {
  if (e == "@yearly" || e == "@annually") return "0 0 1 1 *";
  if (e == "@monthly") return "0 0 1 * *";
  if (e == "@weekly") return "0 0 * * 0";
  if (e == "@daily" || e == "@midnight") return "0 0 * * *";
  if (e == "@hourly") return "0 * * * *";
  return {};
}

unsigned max_days(unsigned month) {
  constexpr std::array<unsigned, 13> kDays = {0, 31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
  return kDays[month];
}

// The UTC offset of local time at `s`.
seconds local_offset(sys_seconds s) {
  const time_t tt = static_cast<time_t>(s.time_since_epoch().count());
  tm parts{};
  if (::localtime_r(&tt, &parts) == nullptr) {
    throw weft::Error("weft: localtime_r failed for " + std::to_string(s.time_since_epoch().count()));
  }
  return seconds(parts.tm_gmtoff);
}

std::once_flag tz_once;

// ---- Beat helpers ----

std::string default_hostname() {
  char host[256] = {};
  if (::gethostname(host, sizeof host - 1) != 0) std::strcpy(host, "localhost");
  return "beat-" + std::to_string(::getpid()) + "@" + host;
}

// The latest fire time <= now, given a fire time `due` <= now (protocol step 3).
SysTime latest_due(const Schedule& s, SysTime due, SysTime now) {
  if (const auto iv = s.interval()) {
    const auto d = std::chrono::duration_cast<SysTime::duration>(*iv);
    auto q = now.time_since_epoch() / d;
    if (now.time_since_epoch() % d != SysTime::duration::zero() && now.time_since_epoch().count() < 0) --q;
    return std::max(due, SysTime(q * d));
  }
  if (s.next_after(due) > now) return due;  // not behind: the common case
  // P(x) = "next_after(x) <= now" is true below the answer L and false from it on. Bisect to a window of at
  // most one minute; a crontab fires on whole minutes, so next_after(lo) is then L.
  SysTime lo = due;   // P(lo): next_after(due) <= now, checked above
  SysTime hi = now;   // !P(hi)
  while (hi - lo > minutes(1)) {
    const SysTime mid = lo + (hi - lo) / 2;
    if (s.next_after(mid) <= now) {
      lo = mid;
    } else {
      hi = mid;
    }
  }
  return s.next_after(lo);
}

milliseconds ceil_ms(SysTime::duration d) { return std::chrono::ceil<milliseconds>(d); }

}  // namespace

// ---- Schedule ----

Schedule Schedule::every(milliseconds interval) {
  if (interval < milliseconds(1) || interval > kMaxInterval) {
    throw std::invalid_argument("weft: a schedule's interval must be between 1 ms and 3650 days, not " +
                                std::to_string(interval.count()) + " ms");
  }
  Schedule s;
  s.interval_ = interval;
  return s;
}

Schedule Schedule::crontab(std::string_view expression, CronZone zone) {
  std::string_view text = expression;
  while (!text.empty() && std::isspace(static_cast<unsigned char>(text.front()))) text.remove_prefix(1);
  while (!text.empty() && std::isspace(static_cast<unsigned char>(text.back()))) text.remove_suffix(1);
  if (!text.empty() && text.front() == '@') {
    const std::string_view expanded = expand_macro(text);
    if (expanded.empty()) {
      throw std::invalid_argument("weft: crontab \"" + std::string(expression) +
                                  "\": unknown macro (@yearly, @annually, @monthly, @weekly, @daily, @midnight, "
                                  "@hourly)");
    }
    text = expanded;
  }
  std::vector<std::string_view> fields;
  std::size_t i = 0;
  while (i < text.size()) {
    while (i < text.size() && (text[i] == ' ' || text[i] == '\t')) ++i;
    const std::size_t start = i;
    while (i < text.size() && text[i] != ' ' && text[i] != '\t') ++i;
    if (i > start) fields.push_back(text.substr(start, i - start));
  }
  if (fields.size() != 5) {
    throw std::invalid_argument("weft: crontab \"" + std::string(expression) + "\" has " +
                                std::to_string(fields.size()) +
                                " fields; it needs 5: minute hour day-of-month month day-of-week");
  }
  Schedule s;
  s.expression_ = std::string(expression);
  s.zone_ = zone;
  s.minutes_ = FieldParser(expression, kMinute, fields[0]).parse().bits;
  s.hours_ = static_cast<std::uint32_t>(FieldParser(expression, kHour, fields[1]).parse().bits);
  const Parsed dom = FieldParser(expression, kDayOfMonth, fields[2]).parse();
  s.months_ = static_cast<std::uint16_t>(FieldParser(expression, kMonth, fields[3]).parse().bits);
  const Parsed dow = FieldParser(expression, kDayOfWeek, fields[4]).parse();
  s.days_ = static_cast<std::uint32_t>(dom.bits);
  s.weekdays_ = static_cast<std::uint8_t>(dow.bits);
  s.day_or_ = !dom.star && !dow.star;
  // Can it ever fire? With either day field starting with '*' both must match. A day-of-month starting with
  // '*' holds the 1st, which falls on every weekday of every month in some year; a day of week '*' leaves the
  // days of the month, which must exist in some month of the month field (the 29th in February: leap years).
  // With both restricted either may match, and every month holds every weekday.
  if (!s.day_or_ && !dom.star) {
    bool possible = false;
    for (unsigned m = 1; m <= 12; ++m) {
      if ((s.months_ >> m & 1U) && (s.days_ & ((std::uint64_t{2} << max_days(m)) - 1)) != 0) possible = true;
    }
    if (!possible) {
      throw std::invalid_argument("weft: crontab \"" + std::string(expression) +
                                  "\" never fires: no month of its month field has any of its days of the month");
    }
  }
  if (zone == CronZone::local) std::call_once(tz_once, [] { ::tzset(); });
  return s;
}

std::optional<milliseconds> Schedule::interval() const noexcept {
  if (interval_.count() > 0) return interval_;
  return std::nullopt;
}

std::string Schedule::describe() const {
  if (interval_.count() > 0) {
    const auto ms = interval_.count();
    if (ms % 3'600'000 == 0) return "every " + std::to_string(ms / 3'600'000) + "h";
    if (ms % 60'000 == 0) return "every " + std::to_string(ms / 60'000) + "m";
    if (ms % 1000 == 0) return "every " + std::to_string(ms / 1000) + "s";
    return "every " + std::to_string(ms) + "ms";
  }
  return "crontab \"" + expression_ + "\" (" + (zone_ == CronZone::utc ? "UTC" : "local time") + ")";
}

std::optional<sys_seconds> Schedule::match_from(sys_seconds from, sys_seconds limit) const {
  const sys_seconds first = std::chrono::ceil<minutes>(from);
  sys_days day = std::chrono::floor<days>(first);
  int minute_of_day = static_cast<int>((first - day) / minutes(1));
  for (; day <= limit; day += days(1), minute_of_day = 0) {
    const std::chrono::year_month_day ymd{day};
    const unsigned month = static_cast<unsigned>(ymd.month());
    if (!(months_ >> month & 1U)) continue;
    const bool dom_ok = (days_ >> static_cast<unsigned>(ymd.day()) & 1U) != 0;
    const bool dow_ok = (weekdays_ >> std::chrono::weekday(day).c_encoding() & 1U) != 0;
    if (day_or_ ? !(dom_ok || dow_ok) : !(dom_ok && dow_ok)) continue;
    for (int h = minute_of_day / 60; h < 24; ++h) {
      if (!(hours_ >> h & 1U)) continue;
      const int from_minute = h == minute_of_day / 60 ? minute_of_day % 60 : 0;
      const std::uint64_t left = minutes_ >> from_minute << from_minute;
      if (left == 0) continue;
      const sys_seconds m = day + hours(h) + minutes(std::countr_zero(left));
      if (m >= limit) return std::nullopt;
      return m;
    }
  }
  return std::nullopt;
}

SysTime Schedule::next_local(SysTime t) const {
  // Walk forward in stretches of constant UTC offset, at most a day each: in a stretch [lo, hi) with offset
  // `off`, the instants whose local time matches are those of the fields read on UTC in [lo + off, hi + off),
  // shifted back by off. A skipped local hour lies in no stretch; a repeated one lies in two.
  sys_seconds lo = std::chrono::floor<seconds>(t) + seconds(1);
  const sys_seconds end = lo + kSearchSpan;
  while (lo < end) {
    const seconds off = local_offset(lo);
    sys_seconds hi = lo + days(1);
    if (local_offset(hi) != off) {  // one change in (lo, hi]: find its first second
      sys_seconds a = lo;
      sys_seconds b = hi;
      while (b - a > seconds(1)) {
        const sys_seconds mid = a + (b - a) / 2;
        if (local_offset(mid) == off) {
          a = mid;
        } else {
          b = mid;
        }
      }
      hi = b;
    }
    if (const auto m = match_from(lo + off, hi + off)) return *m - off;
    lo = hi;
  }
  throw weft::Error("weft: " + describe() + " does not fire within 50 years of the time asked for");
}

SysTime Schedule::next_after(SysTime t) const {
  if (interval_.count() > 0) {
    const auto d = std::chrono::duration_cast<SysTime::duration>(interval_);
    auto q = t.time_since_epoch() / d;  // floor(t / d): division truncates towards 0
    if (t.time_since_epoch() % d != SysTime::duration::zero() && t.time_since_epoch().count() < 0) --q;
    return SysTime((q + 1) * d);
  }
  if (zone_ == CronZone::local) return next_local(t);
  const sys_seconds from = std::chrono::floor<minutes>(t) + minutes(1);
  if (const auto m = match_from(from, from + kSearchSpan)) return *m;
  throw weft::Error("weft: " + describe() + " does not fire within 50 years of the time asked for");
}

// ---- Beat ----

std::string beat_claim_key(std::string_view entry, SysTime t) {
  const auto us = std::chrono::floor<std::chrono::microseconds>(t.time_since_epoch()).count();
  std::string key = "beat:";
  key.append(entry);
  key += ':';
  key += std::to_string(us);
  return key;
}

Beat::Beat(App& app, BeatOptions options) : app_(app), options_(std::move(options)) {
  if (options_.min_claim_ttl.count() <= 0) throw std::invalid_argument("weft: a beat's min_claim_ttl must be above 0");
  if (options_.max_sleep.count() <= 0) throw std::invalid_argument("weft: a beat's max_sleep must be above 0");
  if (options_.hostname.empty()) options_.hostname = default_hostname();
  std::vector<std::string_view> names;
  for (const BeatEntry& e : options_.entries) {
    if (e.name.empty()) throw std::invalid_argument("weft: a beat entry needs a name");
    if (e.name.size() > kMaxEntryName) {
      throw std::invalid_argument("weft: beat entry name \"" + e.name.substr(0, 40) + "...\" is longer than " +
                                  std::to_string(kMaxEntryName) + " bytes");
    }
    if (e.task.empty()) throw std::invalid_argument("weft: beat entry \"" + e.name + "\" names no task");
    if (!e.args.is_array()) {
      throw std::invalid_argument("weft: beat entry \"" + e.name + "\": args must be a JSON array");
    }
    if (!e.kwargs.is_object()) {
      throw std::invalid_argument("weft: beat entry \"" + e.name + "\": kwargs must be a JSON object");
    }
    if (std::find(names.begin(), names.end(), e.name) != names.end()) {
      throw std::invalid_argument("weft: two beat entries are named \"" + e.name + "\"");
    }
    names.push_back(e.name);
  }
  slots_.resize(options_.entries.size());
}

Beat::~Beat() { stop(); }

void Beat::start() {
  std::lock_guard join(join_mu_);
  std::lock_guard lock(mu_);
  if (started_) throw std::logic_error("weft: Beat::start called twice");
  if (stopping_) throw std::logic_error("weft: Beat::start called after stop");
  thread_ = std::thread([this] { run(); });
  started_ = true;
}

void Beat::stop() {
  {
    std::lock_guard lock(mu_);  // the thread checks stopping_ under mu_ before it sleeps: it cannot miss this
    stopping_ = true;
  }
  cv_.notify_all();
  std::lock_guard join(join_mu_);
  if (thread_.joinable()) thread_.join();
}

std::vector<std::string> Beat::tick(SysTime now) {
  std::vector<std::string> sent;
  step(now, &sent);
  return sent;
}

BeatStats Beat::stats() const {
  std::lock_guard lock(mu_);
  return stats_;
}

std::vector<BeatEntryState> Beat::entries() const {
  std::lock_guard lock(step_mu_);
  std::vector<BeatEntryState> out;
  for (std::size_t i = 0; i < slots_.size(); ++i) {
    out.push_back({options_.entries[i].name, slots_[i].next, slots_[i].last_sent, slots_[i].last_task_id});
  }
  return out;
}

std::optional<SysTime> Beat::step(SysTime now, std::vector<std::string>* sent) {
  std::lock_guard steps(step_mu_);
  std::optional<SysTime> wake;
  for (std::size_t i = 0; i < options_.entries.size(); ++i) {
    const BeatEntry& e = options_.entries[i];
    Slot& slot = slots_[i];
    try {
      if (!slot.next) {
        slot.next = e.schedule.next_after(now);  // step 2: the first fire time after now, no catch-up
      } else if (now < *slot.next) {
        // Step 7: a clock set back before the last fire time. In normal running next_after(now) == next.
        const SysTime n = e.schedule.next_after(now);
        if (n < *slot.next) slot.next = n;
      } else {
        const SysTime t = latest_due(e.schedule, *slot.next, now);  // step 3
        const bool late = t != *slot.next;
        slot.next = e.schedule.next_after(t);
        const milliseconds ttl = std::max(ceil_ms(2 * (*slot.next - t)), options_.min_claim_ttl);  // step 5
        if (late) {
          std::lock_guard lock(mu_);
          ++stats_.late;
        }
        // Step 4. The claim comes first: if the send then fails, the period is lost rather than sent twice.
        if (app_.backend().put_if_absent(beat_claim_key(e.name, t), options_.hostname, ttl)) {
          AsyncResult r = app_.send_task(e.task, e.args, e.kwargs, e.options);
          slot.last_sent = t;
          slot.last_task_id = r.id();
          if (sent != nullptr) sent->push_back(e.name);
          std::lock_guard lock(mu_);
          ++stats_.fired;
        } else {
          std::lock_guard lock(mu_);
          ++stats_.skipped;
        }
      }
    } catch (const std::exception& ex) {
      std::lock_guard lock(mu_);
      ++stats_.errors;
      stats_.last_error = e.name + ": " + ex.what();
    }
    if (slot.next && (!wake || *slot.next < *wake)) wake = slot.next;
  }
  return wake;
}

void Beat::run() {
  for (;;) {
    std::optional<SysTime> wake;
    try {
      wake = step(std::chrono::system_clock::now(), nullptr);
    } catch (const std::exception& ex) {  // step catches per entry; this is what escapes that (bad_alloc)
      std::lock_guard lock(mu_);
      ++stats_.errors;
      stats_.last_error = std::string("beat: ") + ex.what();
    }
    std::unique_lock lock(mu_);
    SysTime until = std::chrono::system_clock::now() + options_.max_sleep;
    if (wake && *wake < until) until = *wake;
    // A system_clock deadline: the wait ends when the wall clock reaches it, also after the clock was set.
    cv_.wait_until(lock, until, [this] { return stopping_; });
    if (stopping_) return;
  }
}

std::vector<BeatEntry> beat_entries_from_json(const Json& schedule) {
  const Json* list = &schedule;
  if (schedule.is_object()) {
    for (const auto& [key, value] : schedule.items()) {
      if (key != "entries") throw std::invalid_argument("weft: schedule: unknown key '" + key + "' (only \"entries\")");
    }
    if (!schedule.contains("entries")) throw std::invalid_argument("weft: schedule: no \"entries\"");
    list = &schedule.at("entries");
  }
  if (!list->is_array()) throw std::invalid_argument("weft: schedule: the entries are not a JSON array");
  std::vector<BeatEntry> out;
  std::size_t index = 0;
  for (const Json& e : *list) {
    ++index;
    const std::string where = "weft: schedule entry " + std::to_string(index);
    if (!e.is_object()) throw std::invalid_argument(where + " is not a JSON object");
    auto text = [&](const char* key) -> std::string {
      if (!e.contains(key)) return {};
      if (!e.at(key).is_string()) throw std::invalid_argument(where + ": \"" + key + "\" is not a string");
      return e.at(key).get<std::string>();
    };
    auto seconds = [&](const char* key) -> std::optional<double> {
      if (!e.contains(key)) return std::nullopt;
      if (!e.at(key).is_number() || e.at(key).get<double>() <= 0) {
        throw std::invalid_argument(where + ": \"" + key + "\" is not a number of seconds above 0");
      }
      return e.at(key).get<double>();
    };
    for (const auto& [key, value] : e.items()) {
      static const char* known[] = {"name", "task", "every", "crontab", "zone", "args", "kwargs", "queue",
                                    "priority", "expires"};
      if (std::find_if(std::begin(known), std::end(known), [&](const char* k) { return key == k; }) == std::end(known)) {
        throw std::invalid_argument(where + ": unknown key '" + key + "'");
      }
    }
    BeatEntry b{.name = text("name"), .task = text("task"), .schedule = Schedule::every(std::chrono::seconds(1))};
    const std::string named = b.name.empty() ? where : where + " (" + b.name + ")";
    const auto every = seconds("every");
    const std::string cron = text("crontab");
    if (every.has_value() == !cron.empty()) {
      throw std::invalid_argument(named + ": give exactly one of \"every\" (seconds) and \"crontab\"");
    }
    const std::string zone = text("zone");
    if (!zone.empty() && zone != "utc" && zone != "local") {
      throw std::invalid_argument(named + ": \"zone\" is \"utc\" or \"local\", not '" + zone + "'");
    }
    try {
      b.schedule = every ? Schedule::every(std::chrono::milliseconds(static_cast<std::int64_t>(*every * 1000)))
                         : Schedule::crontab(cron, zone == "local" ? CronZone::local : CronZone::utc);
    } catch (const std::invalid_argument& x) {
      throw std::invalid_argument(named + ": " + x.what());
    }
    if (e.contains("args")) b.args = e.at("args");
    if (e.contains("kwargs")) b.kwargs = e.at("kwargs");
    if (!b.args.is_array()) throw std::invalid_argument(named + ": \"args\" is not a JSON array");
    if (!b.kwargs.is_object()) throw std::invalid_argument(named + ": \"kwargs\" is not a JSON object");
    if (const std::string q = text("queue"); !q.empty()) b.options.queue = q;
    if (e.contains("priority")) {
      if (!e.at("priority").is_number_integer() || e.at("priority").get<int>() < 0 || e.at("priority").get<int>() > 9) {
        throw std::invalid_argument(named + ": \"priority\" is a whole number from 0 to 9");
      }
      b.options.priority = e.at("priority").get<int>();
    }
    if (const auto x = seconds("expires")) {
      b.options.expires_in = std::chrono::milliseconds(static_cast<std::int64_t>(*x * 1000));
    }
    out.push_back(std::move(b));
  }
  return out;
}

}  // namespace weft::tasks
