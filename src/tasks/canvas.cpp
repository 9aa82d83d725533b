// The canvas: chain, group, chord, link / link_error (weft/tasks/canvas.hpp), and what a worker does after a
// task ended (detail::after_task, src/tasks/workflow.hpp).
//
// Applying (client side). Every id of a canvas is assigned before anything is sent.
//  1. A signature becomes one message; its link / link_error become embed.callbacks / embed.errbacks.
//  2. chain(t0 .. tn): the message of t0 carries embed.chain = [tn .. t1] (Celery's order: the next is last),
//     each with options.task_id. The chain's link goes on tn, its link_error on every task.
//  3. group: "group:<gid>" = JSON list of the member ids (kCanvasTtl), then one message per member with
//     group = gid, group_index = i, root_id = the first member's id.
//  4. chord: as a group, plus "chord:<gid>:size" = the header size (kCanvasTtl), both stored before the first
//     header message is sent; each header message carries embed.chord = the body with its options.task_id.
//     If a header message cannot be sent, the body is stored FAILURE before the error is rethrown.
//
// After a task ended (worker side, after its final state was stored; Celery's trace.py / backend
// on_chord_part_return play this part):
//  SUCCESS with result r:
//  1. each callback is sent with args [r, ...args] (args alone if immutable), parent_id = the task, root_id =
//     its root;
//  2. embed.chain non-empty: its last element is sent the same way, carrying the rest as its embed.chain;
//  3. embed.chord (a chord part with group gid, group_index i of size n = "chord:<gid>:size"):
//     a. put_if_absent("chord:<gid>:part:<i, 6 digits>", r as JSON) — the part's result, once per part;
//     b. if this call stored it: k = incr("chord:<gid>"); the part that gets k == n is the last one. Every
//        part stores (a) before counting (b), so when k == n all n results are stored;
//        if it was stored already (this task was delivered again): the chord is complete when all n parts
//        are stored and the body is not ready (a worker that died between (a) and (b) is recovered here;
//        the body may then be sent twice, under its one id: the first stored result stays);
//     c. the last part reads the n results in index order (one scan: the keys sort by index), sends the body
//        with args [[r0 .. rn-1], ...args], parent_id = itself, sets "chord:<gid>:size" to "done" (a part
//        delivered again after this does nothing) and erases the results and the counter.
//  FAILURE or REVOKED with error e:
//  4. each errback is sent with args [task id, ...args];
//  5. every task left in embed.chain gets the same state and e (they will never run; whoever waits on the
//     chain's last task gets the error);
//  6. a chord part: the body gets FAILURE (ChordError naming the part); the first to store it sends the
//     body's errbacks with the body's id. The chord's counter then never reaches n; its entries expire.
//  Each step runs even if an earlier one threw; the first error is rethrown at the end. A message that cannot
//  be sent marks its own id FAILURE first (and, for a chain, every later task's), so no one waits forever.
#include "weft/tasks/canvas.hpp"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <exception>
#include <stdexcept>

#include "workflow.hpp"

namespace weft::tasks {
namespace {

// ---- JSON form of signatures ----

Json seconds(std::chrono::milliseconds ms) {
  if (ms.count() % 1000 == 0) return Json(ms.count() / 1000);
  return Json(static_cast<double>(ms.count()) / 1000.0);
}

std::chrono::milliseconds from_seconds(const Json& v, const char* what) {
  const double s = v.get<double>();
  if (!std::isfinite(s) || std::fabs(s) > 1e12) {
    throw ProtocolError(std::string("weft: signature option '") + what + "' is out of range");
  }
  return std::chrono::milliseconds(std::llround(s * 1000.0));
}

Json signature_json(const Signature& s) {
  Json o = Json::object();
  const CallOptions& c = s.options;
  if (c.task_id) o["task_id"] = *c.task_id;
  if (c.countdown) o["countdown"] = seconds(*c.countdown);
  if (c.eta) o["eta"] = format_time(*c.eta);
  if (c.expires_in) {
    o["expires"] = seconds(*c.expires_in);
  } else if (c.expires) {
    o["expires"] = format_time(*c.expires);
  }
  if (c.priority) o["priority"] = *c.priority;
  if (c.queue) o["queue"] = *c.queue;
  if (c.headers.is_object() && !c.headers.empty()) o["headers"] = c.headers;
  auto list = [](const std::vector<Signature>& v) {
    Json a = Json::array();
    for (const Signature& x : v) a.push_back(signature_json(x));
    return a;
  };
  if (!s.link.empty()) o["link"] = list(s.link);
  if (!s.link_error.empty()) o["link_error"] = list(s.link_error);
  return Json{{"task", s.task},        {"args", s.args},     {"kwargs", s.kwargs},
              {"options", std::move(o)}, {"subtask_type", nullptr}, {"immutable", s.immutable}};
}

[[noreturn]] void bad(const std::string& what) { throw ProtocolError("weft: not a task signature: " + what); }

// The member `key` of `j` unless absent or null.
const Json* member(const Json& j, const char* key) {
  auto it = j.find(key);
  if (it == j.end() || it->is_null()) return nullptr;
  return &*it;
}

Signature parse_signature(const Json& j, int depth) {
  if (depth > kMaxSignatureDepth) {
    bad("link / link_error nested deeper than " + std::to_string(kMaxSignatureDepth) + " levels");
  }
  if (!j.is_object()) bad("a " + std::string(j.type_name()) + " instead of an object");
  Signature s;
  const Json* task = member(j, "task");
  if (task == nullptr || !task->is_string() || task->get_ref<const std::string&>().empty()) {
    bad("\"task\" is missing or not a non-empty string");
  }
  s.task = task->get<std::string>();
  if (const Json* t = member(j, "subtask_type")) {
    if (!t->is_string()) bad("\"subtask_type\" is not a string");
    throw ProtocolError("weft: a nested canvas (subtask_type '" + t->get<std::string>() +
                        "') is not supported as a signature; send its tasks as signatures");
  }
  if (const Json* a = member(j, "args")) {
    if (!a->is_array()) bad("\"args\" of task '" + s.task + "' is not an array");
    s.args = *a;
  }
  if (const Json* k = member(j, "kwargs")) {
    if (!k->is_object()) bad("\"kwargs\" of task '" + s.task + "' is not an object");
    s.kwargs = *k;
  }
  if (const Json* im = member(j, "immutable")) {
    if (!im->is_boolean()) bad("\"immutable\" of task '" + s.task + "' is not a boolean");
    s.immutable = im->get<bool>();
  }
  const Json* o = member(j, "options");
  if (o == nullptr) return s;
  if (!o->is_object()) bad("\"options\" of task '" + s.task + "' is not an object");
  CallOptions& c = s.options;
  auto wrong = [&](const char* key, const char* kind) {
    bad("options." + std::string(key) + " of task '" + s.task + "' is not " + kind);
  };
  if (const Json* v = member(*o, "task_id")) {
    if (!v->is_string() || v->get_ref<const std::string&>().empty()) wrong("task_id", "a non-empty string");
    c.task_id = v->get<std::string>();
  }
  if (const Json* v = member(*o, "countdown")) {
    if (!v->is_number()) wrong("countdown", "a number of seconds");
    c.countdown = from_seconds(*v, "countdown");
  }
  if (const Json* v = member(*o, "eta")) {
    if (!v->is_string()) wrong("eta", "an ISO 8601 time");
    c.eta = parse_time(v->get_ref<const std::string&>());
  }
  if (const Json* v = member(*o, "expires")) {
    if (v->is_number()) {
      c.expires_in = from_seconds(*v, "expires");
    } else if (v->is_string()) {
      c.expires = parse_time(v->get_ref<const std::string&>());
    } else {
      wrong("expires", "a number of seconds or an ISO 8601 time");
    }
  }
  if (const Json* v = member(*o, "priority")) {
    if (!v->is_number_integer() || v->get<std::int64_t>() < 0 || v->get<std::int64_t>() > 255) {
      wrong("priority", "an integer in 0-255");
    }
    c.priority = v->get<int>();
  }
  if (const Json* v = member(*o, "queue")) {
    if (!v->is_string()) wrong("queue", "a string");
    c.queue = v->get<std::string>();
  }
  if (const Json* v = member(*o, "headers")) {
    if (!v->is_object()) wrong("headers", "an object");
    c.headers = *v;
  }
  // Celery keeps a list; a single signature object is accepted too.
  auto links = [&](const char* key, std::vector<Signature>& out) {
    const Json* v = member(*o, key);
    if (v == nullptr) return;
    if (v->is_object()) {
      out.push_back(parse_signature(*v, depth + 1));
    } else if (v->is_array()) {
      for (const Json& x : *v) out.push_back(parse_signature(x, depth + 1));
    } else {
      wrong(key, "a list of signatures");
    }
  };
  links("link", s.link);
  links("link_error", s.link_error);
  return s;
}

// ---- Messages ----

std::string root_of(const TaskMessage& m) { return m.root_id.empty() ? m.id : m.root_id; }

Json signature_list(const std::vector<Signature>& v) {
  if (v.empty()) return nullptr;
  Json a = Json::array();
  for (const Signature& s : v) a.push_back(signature_json(s));
  return a;
}

// The message of one call of `s` with `args` (App::send_task's rules for options and the task's registered
// defaults). Throws std::invalid_argument for a signature that cannot be a call.
TaskMessage message_for(App& app, const Signature& s, Json args) {
  if (s.task.empty()) throw std::invalid_argument("weft: a signature without a task name");
  if (!args.is_array()) {
    throw std::invalid_argument("weft: the args of a signature of '" + s.task + "' are not an array");
  }
  if (!s.kwargs.is_object()) {
    throw std::invalid_argument("weft: the kwargs of a signature of '" + s.task + "' are not an object");
  }
  TaskMessage m = app.make_message(s.task, std::move(args), s.kwargs, s.options);
  m.callbacks = signature_list(s.link);
  m.errbacks = signature_list(s.link_error);
  return m;
}

// `prefix` prepended to a signature's args, unless it is immutable.
Json call_args(const Signature& s, const Json& first) {
  if (s.immutable) return s.args;
  Json a = Json::array({first});
  for (const Json& x : s.args) a.push_back(x);
  return a;
}

Json error_json(const std::string& type, const std::string& message, const char* module = "weft") {
  return Json{{"exc_type", type}, {"exc_message", Json::array({message})}, {"exc_module", module}};
}

// "Type: message" of a stored exception object, for the errors that name it.
std::string describe(const Json& exc) {
  if (!exc.is_object()) return exc.dump().substr(0, 200);
  std::string type = "Exception";
  if (const Json* t = member(exc, "exc_type"); t != nullptr && t->is_string()) type = t->get<std::string>();
  std::string message;
  if (const Json* msg = member(exc, "exc_message")) {
    if (msg->is_string()) {
      message = msg->get<std::string>();
    } else if (msg->is_array() && msg->size() == 1 && (*msg)[0].is_string()) {
      message = (*msg)[0].get<std::string>();
    } else {
      message = msg->dump().substr(0, 200);
    }
  }
  return message.empty() ? type : type + ": " + message;
}

// Stores a final state no task run will produce (the task will never run). Returns the backend's answer:
// false when a final state was stored already.
bool store_final(App& app, const std::string& id, const std::string& name, State state, Json error,
                 std::string why) {
  ResultMeta meta;
  meta.task_id = id;
  meta.state = state;
  meta.result = std::move(error);
  meta.traceback = std::move(why);
  meta.date_done = std::chrono::system_clock::now();
  meta.name = name;
  return app.backend().store(meta);
}

// The (task id, task name) of each signature of an embedded chain that carries a task id; tolerant of
// anything else, since this runs when something already went wrong.
std::vector<std::pair<std::string, std::string>> chain_ids(const Json& chain) {
  std::vector<std::pair<std::string, std::string>> out;
  if (!chain.is_array()) return out;
  for (const Json& s : chain) {
    if (!s.is_object()) continue;
    const Json* o = member(s, "options");
    if (o == nullptr || !o->is_object()) continue;
    const Json* id = member(*o, "task_id");
    if (id == nullptr || !id->is_string()) continue;
    const Json* task = member(s, "task");
    out.emplace_back(id->get<std::string>(), task != nullptr && task->is_string() ? task->get<std::string>() : "");
  }
  return out;
}

// Sends `m`; if that fails, stores FAILURE for m.id and for every task of `chain_rest` (they could never run
// now) before rethrowing.
void send_or_fail(App& app, TaskMessage m, const Json& chain_rest = nullptr) {
  const std::string id = m.id, name = m.task;
  try {
    app.send_message(std::move(m));
  } catch (const std::exception& e) {
    const Json err = error_json("CanvasError", std::string("weft: task ") + id + " could not be sent: " + e.what());
    store_final(app, id, name, State::failure, err, "");
    for (const auto& [rid, rname] : chain_ids(chain_rest)) {
      store_final(app, rid, rname, State::failure, err, "weft: an earlier task of its chain could not be sent");
    }
    throw;
  }
}

// Runs each step; the first exception is rethrown after all ran.
class Steps {
 public:
  template <class F>
  void run(F&& f) {
    try {
      f();
    } catch (...) {
      if (!first_) first_ = std::current_exception();
    }
  }
  void rethrow() const {
    if (first_) std::rethrow_exception(first_);
  }

 private:
  std::exception_ptr first_;
};

// ---- Chords ----

// The value of "chord:<gid>:size" once the body was sent.
constexpr std::string_view kChordDone = "done";

std::string counter_key(const std::string& gid) { return "chord:" + gid; }
std::string size_key(const std::string& gid) { return "chord:" + gid + ":size"; }
std::string parts_prefix(const std::string& gid) { return "chord:" + gid + ":part:"; }
std::string part_key(const std::string& gid, int index) {
  char buf[16];
  std::snprintf(buf, sizeof buf, "%06d", index);  // below kMaxGroupSize: keys sort by index
  return parts_prefix(gid) + buf;
}
std::string sender_key(const std::string& gid) { return "chord:" + gid + ":sender"; }
std::string group_key(const std::string& gid) { return "group:" + gid; }

// Marks the chord body FAILURE (ChordError) and, if this was the first final state stored for it, sends the
// body's errbacks with its id.
void fail_body(App& app, const Signature& body, const std::string& id, const TaskMessage& m, const std::string& why) {
  const Json err = error_json("ChordError", why, "celery.exceptions");
  if (!store_final(app, id, body.task, State::failure, err, why)) return;
  Steps steps;
  for (const Signature& eb : body.link_error) {
    steps.run([&] {
      TaskMessage e = message_for(app, eb, call_args(eb, Json(id)));
      e.parent_id = id;
      e.root_id = root_of(m);
      send_or_fail(app, std::move(e));
    });
  }
  steps.rethrow();
}

struct ChordPart {
  Signature body;
  std::string body_id;
  std::string gid;
  int index = 0;
};

ChordPart chord_part(const TaskMessage& m) {
  ChordPart p;
  p.body = signature_from_json(m.chord);
  if (!p.body.options.task_id) throw ProtocolError("weft: task " + m.id + " carries a chord body without a task_id");
  p.body_id = *p.body.options.task_id;
  p.gid = m.group;
  if (p.gid.empty()) throw ProtocolError("weft: task " + m.id + " carries a chord body but no group id");
  if (!m.group_index || *m.group_index < 0 || static_cast<std::size_t>(*m.group_index) >= kMaxGroupSize) {
    throw ProtocolError("weft: chord part " + m.id + " has no valid group_index");
  }
  p.index = *m.group_index;
  return p;
}

void chord_part_succeeded(App& app, const TaskMessage& m, const Json& result) {
  const ChordPart p = chord_part(m);
  ResultBackend& kv = app.backend();
  const std::string where = "weft: chord " + p.gid + ": ";
  const auto size_text = kv.read(size_key(p.gid));
  if (!size_text) {
    fail_body(app, p.body, p.body_id, m,
              where + "its size is not stored (expired after " + std::to_string(kCanvasTtl.count() / 1000) +
                  " s, or the chord was not applied by weft)");
    return;
  }
  if (*size_text == kChordDone) return;  // delivered again after the body was sent
  std::int64_t n = 0;
  try {
    n = std::stoll(*size_text);
  } catch (const std::exception&) {
    throw ProtocolError(where + "its stored size '" + size_text->substr(0, 40) + "' is not a number");
  }
  if (n <= 0 || n > static_cast<std::int64_t>(kMaxGroupSize) || p.index >= n) {
    throw ProtocolError(where + "part " + std::to_string(p.index) + " does not fit its size " + *size_text);
  }
  const std::string value = result.dump();
  if (value.size() > ResultBackend::kMaxValue) {
    fail_body(app, p.body, p.body_id, m,
              where + "the result of part " + std::to_string(p.index) + " (task " + m.id + ") is " +
                  std::to_string(value.size()) + " bytes of JSON, above the limit of " +
                  std::to_string(ResultBackend::kMaxValue));
    return;
  }
  const std::string prefix = parts_prefix(p.gid);
  const auto limit = static_cast<std::size_t>(n) + 1;
  bool complete = false;
  if (kv.put_if_absent(part_key(p.gid, p.index), value, kCanvasTtl)) {
    complete = kv.incr(counter_key(p.gid), 1, kCanvasTtl) == n;
  } else {
    // Delivered again: counted before (or its worker died before counting; then this completes the chord).
    complete = kv.scan(prefix, limit).size() == static_cast<std::size_t>(n);
  }
  if (!complete) return;
  // Several deliveries may see the chord complete at once (a part delivered twice, or the last two parts
  // finishing together): one sends the body. The claim holds the id of the part that sends it, so that the
  // same part delivered again after its worker died sends the body in its place — and two deliveries of that
  // same part running at once (a lost lease) may both send it: at-least-once, as every delivery here.
  if (!kv.put_if_absent(sender_key(p.gid), m.id, kCanvasTtl)) {
    const auto holder = kv.read(sender_key(p.gid));
    if (holder && *holder != m.id) return;
  }
  if (auto body_meta = kv.get(p.body_id); body_meta && is_ready(body_meta->state)) return;  // failed or done
  const auto parts = kv.scan(prefix, limit);
  if (parts.size() != static_cast<std::size_t>(n)) {
    // The same part delivered twice at once: the other delivery sent the body, marked the chord done and then
    // removed the parts. Missing parts of a chord not done expired or were removed by someone else.
    if (const auto now = kv.read(size_key(p.gid)); now && *now == kChordDone) return;
    fail_body(app, p.body, p.body_id, m,
              where + std::to_string(parts.size()) + " part results are stored for a chord of " +
                  std::to_string(n) + " (entries expired or were removed)");
    return;
  }
  Json results = Json::array();
  for (const auto& [key, text] : parts) {
    try {
      results.push_back(Json::parse(text));
    } catch (const Json::exception& e) {
      fail_body(app, p.body, p.body_id, m, where + "the stored result '" + key + "' is not JSON: " + e.what());
      return;
    }
  }
  TaskMessage b = message_for(app, p.body, call_args(p.body, results));
  b.id = p.body_id;
  b.parent_id = m.id;
  b.root_id = root_of(m);
  Steps steps;
  steps.run([&] { send_or_fail(app, std::move(b)); });
  // The body is sent: the results and the counter are not needed any more (they would expire anyway). The
  // size entry stays, marked done, so that a part delivered again from now on knows the chord is over.
  steps.run([&] {
    kv.put(size_key(p.gid), kChordDone, kCanvasTtl);
    for (const auto& [key, text] : parts) kv.erase(key);
    kv.erase(counter_key(p.gid));
  });
  steps.rethrow();
}

void chord_part_failed(App& app, const TaskMessage& m, State state, const Json& error) {
  const ChordPart p = chord_part(m);
  fail_body(app, p.body, p.body_id, m,
            "weft: chord " + p.gid + ": part " + std::to_string(p.index) + " (task " + m.task + ", id " + m.id +
                ") ended in " + std::string(state_name(state)) + ": " + describe(error));
}

// ---- Applying ----

std::vector<std::string> assign_ids(std::vector<Signature>& sigs) {
  std::vector<std::string> ids;
  ids.reserve(sigs.size());
  for (Signature& s : sigs) {
    if (!s.options.task_id) s.options.task_id = new_task_id();
    ids.push_back(*s.options.task_id);
  }
  return ids;
}

void check_group_size(std::size_t n, const char* what) {
  if (n > kMaxGroupSize) {
    throw std::invalid_argument(std::string("weft: a ") + what + " of " + std::to_string(n) +
                                " tasks, above the limit of " + std::to_string(kMaxGroupSize));
  }
}

// Builds the messages of a group's members (validating them all before anything is sent).
std::vector<TaskMessage> member_messages(App& app, const std::vector<Signature>& sigs, const std::string& gid) {
  std::vector<TaskMessage> out;
  out.reserve(sigs.size());
  for (std::size_t i = 0; i < sigs.size(); ++i) {
    TaskMessage m = message_for(app, sigs[i], sigs[i].args);
    m.group = gid;
    m.group_index = static_cast<int>(i);
    m.root_id = *sigs.front().options.task_id;
    out.push_back(std::move(m));
  }
  return out;
}

}  // namespace

Json to_json(const Signature& s) { return signature_json(s); }
Signature signature_from_json(const Json& j) { return parse_signature(j, 0); }
void to_json(Json& j, const Signature& s) { j = signature_json(s); }
void from_json(const Json& j, Signature& s) { s = parse_signature(j, 0); }

Signature on_success(Signature s, Signature callback) {
  s.link.push_back(std::move(callback));
  return s;
}

Signature on_error(Signature s, Signature errback) {
  s.link_error.push_back(std::move(errback));
  return s;
}

AsyncResult apply(App& app, const Signature& s) { return app.send_message(message_for(app, s, s.args)); }

AsyncResult Chain::apply_async(App& app) const {
  if (tasks.empty()) throw std::invalid_argument("weft: a chain without tasks");
  std::vector<Signature> sigs = tasks;
  const std::vector<std::string> ids = assign_ids(sigs);
  for (const Signature& l : link) sigs.back().link.push_back(l);
  for (Signature& s : sigs) {
    for (const Signature& e : link_error) s.link_error.push_back(e);
  }
  TaskMessage first = message_for(app, sigs.front(), sigs.front().args);
  if (sigs.size() > 1) {
    Json rest = Json::array();
    for (std::size_t i = sigs.size() - 1; i >= 1; --i) {
      message_for(app, sigs[i], sigs[i].args);  // validates it now rather than when its turn comes
      rest.push_back(signature_json(sigs[i]));
    }
    first.chain = std::move(rest);
  }
  first.root_id = first.id;
  app.send_message(std::move(first));
  return app.result(ids.back());
}

GroupResult Group::apply_async(App& app) const {
  check_group_size(tasks.size(), "group");
  const std::string gid = id.empty() ? new_task_id() : id;
  std::vector<Signature> sigs = tasks;
  const std::vector<std::string> ids = assign_ids(sigs);
  std::vector<TaskMessage> messages = member_messages(app, sigs, gid);
  app.backend().put(group_key(gid), Json(ids).dump(), kCanvasTtl);
  // One batch: all members are sent or none (sqlite://: one durable commit for the group).
  return GroupResult(gid, app.send_many(std::move(messages)));
}

AsyncResult Chord::apply_async(App& app) const {
  check_group_size(header.tasks.size(), "chord header");
  Signature b = body;
  if (b.task.empty()) throw std::invalid_argument("weft: a chord without a body task");
  if (!b.options.task_id) b.options.task_id = new_task_id();
  const std::string body_id = *b.options.task_id;
  if (header.tasks.empty()) {  // Celery calls the body at once with no results
    app.send_message(message_for(app, b, call_args(b, Json::array())));
    return app.result(body_id);
  }
  message_for(app, b, b.args);  // validates the body before anything is sent
  const std::string gid = header.id.empty() ? new_task_id() : header.id;
  std::vector<Signature> sigs = header.tasks;
  const std::vector<std::string> ids = assign_ids(sigs);
  std::vector<TaskMessage> messages = member_messages(app, sigs, gid);
  const Json body_json = signature_json(b);
  for (TaskMessage& m : messages) m.chord = body_json;
  ResultBackend& kv = app.backend();
  kv.put(group_key(gid), Json(ids).dump(), kCanvasTtl);
  kv.put(size_key(gid), std::to_string(messages.size()), kCanvasTtl);
  try {
    app.send_many(std::move(messages));  // all header tasks or none
  } catch (const std::exception& e) {
    const std::string why = "weft: chord " + gid + ": its header could not be sent: " + std::string(e.what());
    store_final(app, body_id, b.task, State::failure, error_json("ChordError", why, "celery.exceptions"), why);
    throw;
  }
  return app.result(body_id);
}

std::vector<Json> GroupResult::get(std::optional<std::chrono::nanoseconds> timeout) const {
  using Steady = std::chrono::steady_clock;
  std::optional<Steady::time_point> deadline;
  if (timeout) deadline = Steady::now() + std::chrono::duration_cast<Steady::duration>(*timeout);
  std::vector<Json> out;
  out.reserve(results_.size());
  for (const AsyncResult& r : results_) {
    std::optional<std::chrono::nanoseconds> left;
    if (deadline) left = std::max(Steady::duration::zero(), *deadline - Steady::now());
    out.push_back(r.get_json(left));
  }
  return out;
}

bool GroupResult::ready() const {
  for (const AsyncResult& r : results_) {
    if (!r.ready()) return false;
  }
  return true;
}

std::size_t GroupResult::completed_count() const {
  std::size_t n = 0;
  for (const AsyncResult& r : results_) n += r.successful() ? 1 : 0;
  return n;
}

bool GroupResult::successful() const { return completed_count() == results_.size(); }

bool GroupResult::failed() const {
  for (const AsyncResult& r : results_) {
    if (r.failed()) return true;
  }
  return false;
}

void GroupResult::forget() const {
  for (const AsyncResult& r : results_) r.forget();
}

GroupResult GroupResult::restore(App& app, const std::string& id) {
  const auto text = app.backend().read(group_key(id));
  if (!text) throw weft::Error("weft: no group " + id + " is stored (unknown, or expired)");
  Json ids;
  try {
    ids = Json::parse(*text);
  } catch (const Json::exception& e) {
    throw ProtocolError("weft: the stored members of group " + id + " are not JSON: " + e.what());
  }
  if (!ids.is_array()) throw ProtocolError("weft: the stored members of group " + id + " are not a list");
  std::vector<AsyncResult> results;
  results.reserve(ids.size());
  for (const Json& m : ids) {
    if (!m.is_string()) throw ProtocolError("weft: the stored members of group " + id + " are not task ids");
    results.push_back(app.result(m.get<std::string>()));
  }
  return GroupResult(id, std::move(results));
}

namespace detail {

void after_task(App& app, const TaskMessage& m, State state, const Json& result) {
  Steps steps;
  if (state == State::success) {
    if (m.callbacks.is_array()) {
      for (const Json& cb : m.callbacks) {
        steps.run([&] {
          const Signature s = signature_from_json(cb);
          TaskMessage c = message_for(app, s, call_args(s, result));
          c.parent_id = m.id;
          c.root_id = root_of(m);
          send_or_fail(app, std::move(c));
        });
      }
    }
    if (m.chain.is_array() && !m.chain.empty()) {
      steps.run([&] {
        Json rest = m.chain;
        const Json next_json = rest.back();
        rest.erase(rest.size() - 1);
        try {
          const Signature next = signature_from_json(next_json);
          TaskMessage n = message_for(app, next, call_args(next, result));
          n.chain = rest;
          n.parent_id = m.id;
          n.root_id = root_of(m);
          send_or_fail(app, std::move(n), rest);
        } catch (const ProtocolError& e) {
          // The chain cannot go on: tell whoever waits on its tasks.
          const Json err = error_json("ProtocolError", e.what());
          for (const auto& [id, name] : chain_ids(m.chain)) {
            store_final(app, id, name, State::failure, err, "weft: the chain after task " + m.id + " is malformed");
          }
          throw;
        }
      });
    }
    if (!m.chord.is_null()) steps.run([&] { chord_part_succeeded(app, m, result); });
  } else if (state == State::failure || state == State::revoked) {
    if (m.errbacks.is_array()) {
      for (const Json& eb : m.errbacks) {
        steps.run([&] {
          const Signature s = signature_from_json(eb);
          TaskMessage e = message_for(app, s, call_args(s, Json(m.id)));
          e.parent_id = m.id;
          e.root_id = root_of(m);
          send_or_fail(app, std::move(e));
        });
      }
    }
    steps.run([&] {
      const std::string why = "weft: not run: task " + m.id + " (" + m.task + ") earlier in its chain ended in " +
                              std::string(state_name(state));
      for (const auto& [id, name] : chain_ids(m.chain)) store_final(app, id, name, state, result, why);
    });
    if (!m.chord.is_null()) steps.run([&] { chord_part_failed(app, m, state, result); });
  }
  // Other states are not final: nothing follows from them.
  steps.rethrow();
}

}  // namespace detail
}  // namespace weft::tasks
