// weft/tasks/beat.hpp — periodic tasks (Celery beat): schedules, and the Beat that sends each entry's task once
// per period even when several beats run at once (threads of one process, or processes sharing a backend).
//
//   weft::tasks::App app({.broker = "sqlite:///var/tmp/q.db", .backend = "sqlite:///var/tmp/q.db"});
//   weft::tasks::Beat beat(app, {.entries = {
//       {.name = "cleanup", .task = "demo.cleanup", .schedule = Schedule::every(std::chrono::minutes(5))},
//       {.name = "report", .task = "demo.report", .args = {"daily"},
//        .schedule = Schedule::crontab("30 6 * * mon-fri")}}});
//   beat.start();  // sends until stop() or destruction
//
// Once per period, with any number of beats:
//  1. Fire times are absolute instants: every(p) fires at the multiples of p since the Unix epoch, a crontab
//     at the minutes it matches. Two beats with the same entry therefore agree on which period a moment
//     belongs to, whenever each of them started.
//  2. A beat keeps, per entry, `next`: the fire time it waits for. Its first step sets next to the first fire
//     time after that moment: periods that passed while no beat ran are not caught up.
//  3. A step at `now` takes each entry with next <= now and picks t, the latest fire time <= now. When the beat
//     fell behind (a stalled process, a suspended machine) the earlier missed periods are dropped, not sent in
//     a burst: an entry fires at most once per step (counted in BeatStats::late).
//  4. The beat claims t: app.backend().put_if_absent(beat_claim_key(entry, t), hostname, ttl). Of all beats
//     that try, exactly one gets true (the backend's guarantee); it alone sends the task. The others count
//     the period as skipped. Then next = the first fire time after t.
//  5. ttl = max(2 × (next - t), min_claim_ttl). A beat only ever tries to claim t while now < next (later, step
//     3 picks a later period), so the claim outlives every attempt on it with at least one more period (and at
//     least min_claim_ttl) of slack for slow steps and for clocks of different machines that disagree.
//  6. The beat's thread sleeps on a condition variable until the earliest next, at most max_sleep at a time
//     (so that it notices a wall clock that was set or a machine that was suspended); stop() wakes it at once.
//  7. A wall clock set back before an entry's last fire time resets that entry's next to the first fire time
//     after now: the periods lived again are sent again only where their claims have expired (step 5).
//
// A period whose claim or send throws is counted (BeatStats::errors, last_error) and not retried: the claim
// may exist, so no other beat sends it either; the next period is tried as usual.
//
// Hazards: every beat sharing a backend must have the same entries. A claim key names only the entry and the
// fire time, so beats that give one name different schedules or tasks share claims that mean different
// things. Beats on different machines need clocks that agree within the slack of step 5. memory:// backends
// are per process: beats in different processes need a shared backend (sqlite:///path) to fire once.
#pragma once

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <cstdio>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "weft/tasks/app.hpp"

namespace weft::tasks {

/// Which clock a crontab's fields are read on.
enum class CronZone {
  utc,    ///< UTC
  local,  ///< the process's local time zone (TZ), with its daylight saving time: see Schedule::crontab
};

/// When a periodic task fires: a fixed interval, or a crontab. An immutable value: copyable, and its const
/// members may be called from any thread.
///
/// Times must lie well inside what std::chrono::system_clock holds (libstdc++: 1678-2262): a search may reach
/// 50 years past the time asked about.
class Schedule {
 public:
  /// Fires at every multiple of `interval` since the Unix epoch (1970-01-01 00:00 UTC), so every(1h) fires on
  /// the hour and every(100ms) at .0, .1, .2 s. Throws std::invalid_argument unless 1 ms <= interval <= 3650
  /// days.
  static Schedule every(std::chrono::milliseconds interval);

  /// A crontab of the 5 standard fields, separated by spaces or tabs:
  ///   minute 0-59   hour 0-23   day-of-month 1-31   month 1-12 or jan-dec   day-of-week 0-7 or sun-sat
  /// Each field is a comma-separated list of `*`, `*/n`, `a`, `a-b` and `a-b/n` (n from 1 to the field's
  /// largest value). Names are 3 letters, any case. In the day of week both 0 and 7 are Sunday, and a range
  /// may end with Sunday (`fri-sun`, `5-7`). The macros @yearly (@annually), @monthly, @weekly, @daily
  /// (@midnight) and @hourly stand for "0 0 1 1 *", "0 0 1 * *", "0 0 * * 0", "0 0 * * *" and "0 * * * *".
  ///
  /// Days follow Vixie cron: when both day fields are restricted (neither starts with `*`), a day matches when
  /// either does ("0 0 1 * mon": the 1st and every Monday); otherwise both must.
  ///
  /// CronZone::local reads the fields on the local clock, at the instants whose local time matches: a local
  /// time skipped by a daylight saving change does not fire that day, one that happens twice fires twice
  /// (prefer UTC for once-a-day jobs near the change). The zone is the process's TZ when first used;
  /// changing TZ while schedules are in use is not supported. Offsets are assumed to change at most once in
  /// any 24 hours (true of every zone in the tz database).
  ///
  /// Throws std::invalid_argument naming the field and the bad text (wrong number of fields, a value out of
  /// range, an unknown name, a range that runs backwards, a step of 0 or above the field's largest value,
  /// a step without a range, an empty list item), or for a schedule that never fires ("0 0 30 2 *": no month
  /// of the month field has that day).
  static Schedule crontab(std::string_view expression, CronZone zone = CronZone::utc);

  /// The first fire time strictly after `t`. A crontab fires on whole minutes (of UTC, or of local time);
  /// its search is bounded (50 years, where every valid crontab fires within 13): throws weft::Error if it
  /// finds none, which only a local schedule whose every match falls in skipped local times could cause.
  SysTime next_after(SysTime t) const;

  /// The interval of every(), nullopt for a crontab.
  std::optional<std::chrono::milliseconds> interval() const noexcept;

  /// "every 5m", "every 1500ms", "crontab \"*/5 * * * *\" (UTC)", "crontab \"0 9 * * 1-5\" (local time)".
  std::string describe() const;

 private:
  Schedule() = default;
  // The first matching minute M of the fields, as if read on UTC, with from <= M < limit.
  std::optional<std::chrono::sys_seconds> match_from(std::chrono::sys_seconds from,
                                                     std::chrono::sys_seconds limit) const;
  SysTime next_local(SysTime t) const;

  std::chrono::milliseconds interval_{0};  // above 0: every(); 0: a crontab
  std::string expression_;                 // as given
  CronZone zone_ = CronZone::utc;
  std::uint64_t minutes_ = 0;   // bit m: minute m matches (0-59)
  std::uint32_t hours_ = 0;     // bit h: hour h (0-23)
  std::uint32_t days_ = 0;      // bit d: day of month d (1-31)
  std::uint16_t months_ = 0;    // bit m: month m (1-12)
  std::uint8_t weekdays_ = 0;   // bit w: weekday w (0 Sunday - 6 Saturday)
  bool day_or_ = false;         // both day fields restricted: a day matches when either does (Vixie)
};

/// One periodic task.
struct BeatEntry {
  std::string name;                ///< unique among a beat's entries; names its claims (at most 256 bytes)
  std::string task;                ///< the registered task name sent
  Json args = Json::array();       ///< positional arguments (a JSON array)
  Json kwargs = Json::object();    ///< keyword arguments (a JSON object)
  Schedule schedule;                ///< no default: every entry names its schedule
  CallOptions options{};           ///< as send_task's; a fixed task_id would give every period the same id
};

struct BeatOptions {
  std::vector<BeatEntry> entries;
  std::string hostname{};  ///< stored as the value of this beat's claims; default "beat-<pid>@<host>"
  /// The shortest life of a claim (protocol step 5): slack for slow steps and clocks that disagree.
  std::chrono::milliseconds min_claim_ttl{60'000};
  /// The longest the thread sleeps before it reads the clock again (protocol step 6).
  std::chrono::milliseconds max_sleep{30'000};
};

struct BeatStats {
  std::uint64_t fired = 0;    ///< periods this beat claimed and sent
  std::uint64_t skipped = 0;  ///< periods another beat had claimed
  std::uint64_t late = 0;     ///< steps that found an entry more than one period behind (earlier ones dropped)
  std::uint64_t errors = 0;   ///< claims or sends that threw (those periods were not sent)
  std::string last_error;     ///< "<entry>: <what the exception said>" of the latest error; empty: none
};

/// What a beat knows of one entry.
struct BeatEntryState {
  std::string name;
  std::optional<SysTime> next;       ///< the fire time it waits for; nullopt before the first step
  std::optional<SysTime> last_sent;  ///< the fire time of the last period this beat sent
  std::string last_task_id;          ///< the task id it sent then
};

/// The backend key that claims entry `entry`'s period at fire time `t`: "beat:<entry>:<t in µs since the
/// epoch>". Several beats read the same key for the same period.
std::string beat_claim_key(std::string_view entry, SysTime t);

/// Entries from JSON (the schedule file of `weft beat --schedule` and `weft worker -B --schedule`): an object
/// {"entries": [...]} or the array itself, each entry
///   {"name": "cleanup", "task": "demo.cleanup", "every": 300}                  (seconds, may be fractional)
///   {"name": "report", "task": "demo.report", "crontab": "30 6 * * mon-fri", "zone": "utc" | "local",
///    "args": ["daily"], "kwargs": {}, "queue": "reports", "priority": 5, "expires": 60}
/// ("expires": seconds after sending). Throws std::invalid_argument naming the entry and what is wrong
/// (unknown keys included, so that a misspelt key is not silently ignored).
std::vector<BeatEntry> beat_entries_from_json(const Json& schedule);

/// Runs a Beat in the calling thread until SIGTERM or SIGINT (then stops it and returns 0; a second signal
/// exits at once), like run_worker, reporting to `log` (null: silent). One run_beat or run_worker at a time
/// per process (std::logic_error otherwise).
int run_beat(App& app, BeatOptions options, std::FILE* log = stderr);

/// Sends periodic tasks (protocol at the top of this file). start() runs a thread; tick() runs one step from
/// the caller instead. Thread-safe: any member from any thread; steps (the thread's and tick()'s) run one at
/// a time. The destructor stops the thread. The App must outlive the Beat.
class Beat {
 public:
  /// Throws std::invalid_argument: an entry without a name or task, a name above 256 bytes, two entries with
  /// one name, args that are not an array or kwargs not an object, min_claim_ttl or max_sleep not above 0.
  Beat(App& app, BeatOptions options);
  ~Beat();
  Beat(const Beat&) = delete;
  Beat& operator=(const Beat&) = delete;

  /// Starts the thread (once): its first step is now, which sets each entry's first fire time after now.
  /// Throws std::logic_error when called twice, std::system_error.
  void start();
  /// Stops the thread, waiting for a step in progress to finish (it may be sending). Idempotent.
  void stop();

  /// One step at `now` (protocol steps 2-4, 7): claims and sends what is due; returns the names of the
  /// entries this beat sent, in entry order. Errors are counted in stats(), not thrown. For tests and for
  /// programs that drive their own clock; it may also run beside start()ed threads (steps are serialised).
  std::vector<std::string> tick(SysTime now);

  BeatStats stats() const;
  /// Per entry, in entry order. Waits for a step in progress (which may be sending) to finish.
  std::vector<BeatEntryState> entries() const;
  const std::string& hostname() const noexcept { return options_.hostname; }

 private:
  struct Slot {
    std::optional<SysTime> next;
    std::optional<SysTime> last_sent;
    std::string last_task_id;
  };
  std::optional<SysTime> step(SysTime now, std::vector<std::string>* sent);
  void run();

  App& app_;
  BeatOptions options_;
  mutable std::mutex step_mu_;      // serialises steps; guards slots_. Taken before mu_, never after.
  std::vector<Slot> slots_;         // one per entry
  mutable std::mutex mu_;           // guards stats_, stopping_, started_; the thread sleeps on cv_ under it
  std::condition_variable cv_;
  BeatStats stats_;
  bool stopping_ = false;
  bool started_ = false;
  std::mutex join_mu_;              // serialises the joins of concurrent stop() calls
  std::thread thread_;
};

}  // namespace weft::tasks
