// App: the registry and the client side of calls; AsyncResult.
#include "weft/tasks/app.hpp"

#include <algorithm>
#include <stdexcept>
#include <cstring>

#include <unistd.h>

namespace weft::tasks {

namespace {
const AppOptions& checked(const AppOptions& o) {
  if (o.result_expires && (o.result_expires->count() <= 0 || *o.result_expires > kMaxResultExpires)) {
    throw std::invalid_argument("weft: result_expires must be above 0 and at most 100 years (or none: keep results "
                                "until forgotten)");
  }
  return o;
}
}  // namespace

App::App(AppOptions options)
    : options_(checked(options)), broker_(connect_broker(options_.broker)), backend_(connect_backend(options_.backend)) {
  char host[256] = {};
  if (::gethostname(host, sizeof host - 1) != 0) std::strcpy(host, "localhost");
  origin_ = std::to_string(::getpid()) + "@" + host;
}

void App::add_entry(detail::TaskEntry e) {
  if (e.name.empty()) throw std::invalid_argument("weft: a task needs a name");
  std::lock_guard lock(mu_);
  auto [it, inserted] = tasks_.emplace(e.name, nullptr);
  if (!inserted) throw std::invalid_argument("weft: task '" + e.name + "' is registered already");
  it->second = std::make_shared<const detail::TaskEntry>(std::move(e));
}

const detail::TaskEntry* App::find(std::string_view name) const {
  std::lock_guard lock(mu_);
  auto it = tasks_.find(std::string(name));
  return it == tasks_.end() ? nullptr : it->second.get();
}

std::vector<std::string> App::registered() const {
  std::lock_guard lock(mu_);
  std::vector<std::string> out;
  for (const auto& [name, e] : tasks_) out.push_back(name);
  std::sort(out.begin(), out.end());
  return out;
}

TaskMessage App::make_message(const std::string& name, Json args, Json kwargs, const CallOptions& o) const {
  if (name.empty()) throw std::invalid_argument("weft: a call without a task name");
  TaskMessage m;
  m.id = o.task_id.value_or(new_task_id());
  m.task = name;
  m.args = std::move(args);
  m.kwargs = std::move(kwargs);
  const auto now = std::chrono::system_clock::now();
  if (o.eta) m.eta = *o.eta;
  if (o.countdown) m.eta = now + *o.countdown;
  if (o.expires) m.expires = *o.expires;
  if (o.expires_in) m.expires = now + *o.expires_in;
  const detail::TaskEntry* e = find(name);
  m.queue = o.queue.value_or(e != nullptr ? e->options.queue : "celery");
  m.priority = o.priority.value_or(e != nullptr ? e->options.priority : 0);
  if (e != nullptr) {
    m.ignore_result = e->options.ignore_result;
    if (e->options.time_limit) m.timelimit[0] = e->options.time_limit->count() / 1e3;
    if (e->options.soft_time_limit) m.timelimit[1] = e->options.soft_time_limit->count() / 1e3;
  }
  if (o.headers.is_object()) m.extra_headers = o.headers;
  m.serializer = o.serializer.value_or(e != nullptr && e->options.serializer ? *e->options.serializer : options_.serializer);
  return m;
}

AsyncResult App::send_task(const std::string& name, Json args, Json kwargs, const CallOptions& o) {
  if (name.empty()) throw std::invalid_argument("weft: send_task without a task name");
  return send_message(make_message(name, std::move(args), std::move(kwargs), o));
}

AsyncResult App::send_message(TaskMessage m) {
  if (m.task.empty()) throw std::invalid_argument("weft: a message without a task name");
  if (m.id.empty()) m.id = new_task_id();
  if (m.root_id.empty()) m.root_id = m.id;
  if (m.origin.empty()) m.origin = origin_;
  const auto message = std::make_shared<const TaskMessage>(std::move(m));
  broker_->publish_messages(std::span(&message, 1));
  return AsyncResult(backend_, message->id);
}

std::vector<WorkerInfo> App::workers() const {
  std::vector<WorkerInfo> out;
  for (const auto& [key, text] : backend_->scan("worker:")) {
    try {
      const Json j = Json::parse(text);
      WorkerInfo w;
      w.hostname = j.at("hostname").get<std::string>();
      w.pid = j.value("pid", 0L);
      w.cpus = j.value("cpus", 0);
      w.pool = j.value("pool", "");
      w.concurrency = j.value("concurrency", std::size_t{0});
      w.queues = j.value("queues", std::vector<std::string>{});
      w.active = j.value("active", Json::array());
      w.reserved = j.value("reserved", std::size_t{0});
      w.prefetch = j.value("prefetch", std::size_t{0});
      w.stats = j.value("stats", Json::object());
      w.registered = j.value("registered", std::vector<std::string>{});
      const Json load = j.value("loadavg", Json::array());
      for (std::size_t i = 0; i < 3 && i < load.size(); ++i) w.loadavg[i] = load[i].get<double>();
      if (j.contains("timestamp")) w.timestamp = parse_time(j.at("timestamp").get<std::string>());
      w.freq = j.value("freq", 0.0);
      w.raw = j;
      out.push_back(std::move(w));
    } catch (const std::exception&) {
      continue;  // a heartbeat written by something else: not a worker this App can describe
    }
  }
  return out;
}

void AsyncResult::revoke(const RevokeOptions& o) const {
  backend_->put("revoked:" + id_, o.terminate ? "terminate" : "revoke", o.remember);
}

std::vector<AsyncResult> App::send_many(std::vector<TaskMessage> messages) {
  detail::check_batch_size(messages.size());
  std::vector<std::shared_ptr<const TaskMessage>> batch;
  batch.reserve(messages.size());
  std::vector<AsyncResult> results;
  results.reserve(messages.size());
  for (TaskMessage& m : messages) {
    if (m.task.empty()) throw std::invalid_argument("weft: a message without a task name");
    if (m.id.empty()) m.id = new_task_id();
    if (m.root_id.empty()) m.root_id = m.id;
    if (m.origin.empty()) m.origin = origin_;
    results.emplace_back(backend_, m.id);
    batch.push_back(std::make_shared<const TaskMessage>(std::move(m)));
  }
  broker_->publish_messages(batch);
  return results;
}

State AsyncResult::state() const {
  auto m = backend_->get(id_);
  return m ? m->state : State::pending;
}

Json AsyncResult::get_json(std::optional<std::chrono::nanoseconds> timeout) const {
  std::optional<std::chrono::steady_clock::time_point> deadline;
  if (timeout) deadline = std::chrono::steady_clock::now() + std::chrono::duration_cast<std::chrono::steady_clock::duration>(*timeout);
  auto m = backend_->wait(id_, deadline);
  if (!m || !is_ready(m->state)) {
    throw weft::Timeout("weft: task " + id_ + " is not ready (" +
                        std::string(state_name(m ? m->state : State::pending)) + ")");
  }
  if (m->state == State::success) return m->result;
  std::string type = "Exception", message;
  if (m->result.is_object()) {
    type = m->result.value("exc_type", type);
    const Json msg = m->result.value("exc_message", Json(nullptr));
    if (msg.is_string()) {
      message = msg.get<std::string>();
    } else if (msg.is_array() && msg.size() == 1 && msg[0].is_string()) {
      message = msg[0].get<std::string>();
    } else if (!msg.is_null()) {
      message = msg.dump();
    }
  }
  if (m->state == State::revoked) throw weft::Cancelled("weft: task " + id_ + " was revoked" + (message.empty() ? "" : ": " + message));
  throw weft::RemoteError(type, message, m->traceback);
}

}  // namespace weft::tasks
