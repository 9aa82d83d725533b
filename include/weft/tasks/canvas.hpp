// weft/tasks/canvas.hpp — the canvas: chains, groups and chords of task signatures, and link / link_error
// callbacks, encoded as Celery protocol 2 encodes them (../shared/celery/SPEC.md), so Python Celery reads them.
//
//   auto add = app.task<&add_fn>("demo.add");           // int add_fn(int, int)
//   auto tsum = app.task<&tsum_fn>("demo.tsum");        // int tsum_fn(std::vector<int>)
//   int ten = chain(add.s(1, 2), add.s(3), add.s(4)).apply_async(app).get<int>(10s);  // ((1 + 2) + 3) + 4
//   std::vector<Json> v = group(add.s(1, 1), add.s(2, 2)).apply_async(app).get(10s);  // [2, 4]
//   int six = chord(group(add.s(1, 1), add.s(2, 2)), tsum.s()).apply_async(app).get<int>(10s);  // tsum([2, 4])
//   apply(app, on_success(add.s(2, 3), add.s(10)));     // add(2, 3), then add(5, 10)
//
// How a canvas travels (every id is assigned when it is applied, so its results can be waited on at once):
//  - link / link_error: the task's message carries them as embed.callbacks / embed.errbacks.
//  - chain(a, b, c): one message, for a, whose embed.chain is [c, b] (the rest, reversed: the next is last).
//  - group: one message per member, headers group = the group's id, group_index = its position.
//  - chord(header, body): the header group's messages also carry embed.chord = the body.
// What a worker does once a task's final state is stored (the protocol is at the top of src/tasks/canvas.cpp):
//  - SUCCESS: each link callback is sent with the result prepended to its args; the chain's next task is sent
//    with the result prepended; a chord part is counted, and the last part of a chord to finish sends the body
//    with the list of the header's results (in header order) prepended. Immutable signatures (Task::si) get
//    no result prepended.
//  - FAILURE (and REVOKED): each link_error errback is sent with the failed task's id prepended to its args;
//    the rest of its chain is not run, and each of its tasks gets the same final state and error, so that
//    waiting on a chain's last task never hangs; a chord whose part fails gets FAILURE for its body
//    (ChordError, naming the part) and the body's own errbacks are sent with the body's id.
//
// Limits: a group or chord header has at most kMaxGroupSize members; a chain's remaining tasks travel in one
// message, so a chain is as long as kMaxEnvelope allows (MessageTooLarge); a chord part's result (as JSON)
// must fit one backend entry (ResultBackend::kMaxValue), else the chord's body fails. The backend entries
// that coordinate a group or chord live kCanvasTtl: a chord whose header takes longer than that to finish
// never runs its body. Members of a canvas are single task calls: a chain of groups, a group of chains or a
// chord inside a chain are not supported (Celery's nested canvases).
//
// Hazard: a task that waits on a canvas's result (get()) occupies a worker thread while it waits; with every
// thread waiting, nothing is left to run what they wait for. Send a chord, or a chain, instead of waiting.
//
// Delivery is at-least-once, like every task: a task delivered twice sends its callbacks and its chain's
// next task twice (under the same pre-assigned ids, so the first stored result stays); a chord part delivered
// twice is counted once.
#pragma once

#include <chrono>
#include <cstddef>
#include <optional>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

#include "weft/tasks/app.hpp"

namespace weft::tasks {

/// How long the backend entries that coordinate a group or chord live ("group:<id>", "chord:<id>..."):
/// Celery's default result_expires.
inline constexpr std::chrono::milliseconds kCanvasTtl = std::chrono::hours(24);
/// The most members a group or chord header may have (its member ids are kept in one backend entry).
inline constexpr std::size_t kMaxGroupSize = 10'000;
/// The deepest nesting of link / link_error signatures accepted from JSON.
inline constexpr int kMaxSignatureDepth = 16;

// ---- Signatures as JSON -------------------------------------------------------------------------------------

/// Celery's JSON form of a signature: {"task", "args", "kwargs", "options", "subtask_type": null,
/// "immutable"}. options holds what is set of task_id, countdown (seconds), eta (ISO 8601), expires (seconds
/// for expires_in, else ISO 8601), priority, queue, headers, and link / link_error (lists of signatures).
/// Thread-safe (a pure function).
Json to_json(const Signature& s);
/// The inverse of to_json. Lenient where Celery is: missing args / kwargs / options / immutable take their
/// defaults, unknown keys (such as options.reply_to) are ignored, null means absent. Throws ProtocolError for
/// JSON that is not a signature (not an object, no task name, a field of the wrong type, a bad time, links
/// nested deeper than kMaxSignatureDepth) and for a nested canvas (subtask_type "chain", "group", "chord":
/// not supported).
Signature signature_from_json(const Json& j);
/// nlohmann::json hooks, so that Json(sig) and j.get<Signature>() work; the same as the two above.
void to_json(Json& j, const Signature& s);
void from_json(const Json& j, Signature& s);

// ---- Single signatures ----------------------------------------------------------------------------------------

/// `s` with `callback` added to its link: called with s's result (prepended to its args unless immutable)
/// when s succeeds. The same as `s.link.push_back(callback)`.
Signature on_success(Signature s, Signature callback);
/// `s` with `errback` added to its link_error: called with s's task id (prepended to its args unless
/// immutable) when s fails or is revoked. The same as `s.link_error.push_back(errback)`.
Signature on_error(Signature s, Signature errback);

/// Sends one call of `s` (its options as in App::send_task; its link / link_error as the message's callbacks /
/// errbacks). The id is s.options.task_id, or a new one. Throws std::invalid_argument (no task name, args not
/// an array, kwargs not an object), MessageTooLarge, weft::Error (broker failure). Thread-safe.
AsyncResult apply(App& app, const Signature& s);

// ---- Chains ---------------------------------------------------------------------------------------------------

/// Tasks run one after the other, each getting the previous one's result prepended to its args (unless
/// immutable). A failing task stops the chain: it and every later task end in FAILURE with its error.
struct Chain {
  std::vector<Signature> tasks;
  std::vector<Signature> link{};        ///< called with the last task's result when the whole chain succeeded
  std::vector<Signature> link_error{};  ///< called with the id of the task that failed (attached to every task)

  /// Sends the first task (the rest travel in its message) and returns the LAST task's result: its id is the
  /// last signature's options.task_id if set, else assigned now. Throws std::invalid_argument (no tasks, a
  /// signature as in apply()), MessageTooLarge (the chain does not fit one message), weft::Error (broker).
  /// Thread-safe (const).
  AsyncResult apply_async(App& app) const;
};

/// chain(a, b, c): a Chain of those signatures.
template <class... S>
  requires(std::is_convertible_v<S, Signature> && ...)
Chain chain(S&&... s) {
  return Chain{std::vector<Signature>{Signature(std::forward<S>(s))...}};
}

// ---- Groups ---------------------------------------------------------------------------------------------------

/// The results of a group's tasks, in the group's order. Copyable; thread-safe (it holds only ids).
class GroupResult {
 public:
  GroupResult(std::string id, std::vector<AsyncResult> results) : id_(std::move(id)), results_(std::move(results)) {}

  /// The group's id (headers.group of its messages).
  const std::string& id() const noexcept { return id_; }
  const std::vector<AsyncResult>& results() const noexcept { return results_; }
  std::size_t size() const noexcept { return results_.size(); }

  /// Waits for every member (the timeout covers them all; none: forever) and returns their results in group
  /// order. Throws what the first member in group order that is not SUCCESS throws (weft::RemoteError for
  /// FAILURE, weft::Cancelled for REVOKED), weft::Timeout, weft::Error (backend failure).
  std::vector<Json> get(std::optional<std::chrono::nanoseconds> timeout = std::nullopt) const;
  /// The same, each converted to T. Also throws ArgumentError (a result that is not a T).
  template <class T>
  std::vector<T> get(std::optional<std::chrono::nanoseconds> timeout = std::nullopt) const {
    std::vector<T> out;
    out.reserve(results_.size());
    for (Json& j : get(timeout)) {
      try {
        out.push_back(j.get<T>());
      } catch (const Json::exception& e) {
        throw ArgumentError("weft: a result of group " + id_ + " is not of the type asked for: " + e.what());
      }
    }
    return out;
  }
  /// True when every member is ready (SUCCESS, FAILURE or REVOKED); an empty group is ready.
  bool ready() const;
  /// How many members are SUCCESS (Celery's completed_count).
  std::size_t completed_count() const;
  /// True when every member is SUCCESS.
  bool successful() const;
  /// True when some member is FAILURE.
  bool failed() const;
  /// Deletes every member's stored result.
  void forget() const;

  /// The GroupResult of a group applied earlier (by any process on the same backend), from the member list
  /// stored when it was applied; it lives kCanvasTtl. Throws weft::Error (no such group, or expired),
  /// ProtocolError (the stored list is malformed).
  static GroupResult restore(App& app, const std::string& id);

 private:
  std::string id_;
  std::vector<AsyncResult> results_;
};

/// Tasks run in parallel (on whichever workers take them).
struct Group {
  std::vector<Signature> tasks;
  std::string id{};  ///< the group's id; empty: a new one when applied

  /// Sends every task (with group = the id, group_index = its position) and stores the member ids (for
  /// GroupResult::restore). An empty group sends nothing and returns an empty GroupResult. Throws
  /// std::invalid_argument (more than kMaxGroupSize tasks, a signature as in apply()), MessageTooLarge,
  /// weft::Error (broker or backend failure; the tasks sent before it still run). Thread-safe (const).
  GroupResult apply_async(App& app) const;
};

/// group(a, b, c): a Group of those signatures.
template <class... S>
  requires(std::is_convertible_v<S, Signature> && ...)
Group group(S&&... s) {
  return Group{std::vector<Signature>{Signature(std::forward<S>(s))...}};
}

// ---- Chords ---------------------------------------------------------------------------------------------------

/// A group (the header) and a body called with the list of the header's results, in header order, once all
/// have succeeded. If a header task fails the body is not run: it gets FAILURE (ChordError) at once.
struct Chord {
  Group header;
  Signature body;

  /// Sends the header's tasks and returns the body's result (its id: body.options.task_id if set, else
  /// assigned now). An empty header sends the body at once with [] prepended (like Celery). The chord's size
  /// is stored before any header task is sent. Throws std::invalid_argument (more than kMaxGroupSize tasks, no
  /// body task name, a signature as in apply()), MessageTooLarge, weft::Error (broker or backend failure: if a
  /// header task could not be sent, the body is marked FAILURE first, so no one waits on it forever).
  /// Thread-safe (const).
  AsyncResult apply_async(App& app) const;
};

/// chord(header, body).
inline Chord chord(Group header, Signature body) { return Chord{std::move(header), std::move(body)}; }

}  // namespace weft::tasks
