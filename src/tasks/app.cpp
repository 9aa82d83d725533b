// App: the registry and the client side of calls; AsyncResult.
#include "weft/tasks/app.hpp"

#include <algorithm>
#include <stdexcept>

namespace weft::tasks {

App::App(AppOptions options)
    : options_(std::move(options)), broker_(connect_broker(options_.broker)), backend_(connect_backend(options_.backend)) {}

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

AsyncResult App::send_task(const std::string& name, Json args, Json kwargs, const CallOptions& o) {
  if (name.empty()) throw std::invalid_argument("weft: send_task without a task name");
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
  const std::string envelope = encode_envelope(m);
  broker_->publish(m.queue, envelope, m.priority, m.eta);
  return AsyncResult(backend_, m.id);
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
