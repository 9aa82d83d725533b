// Result states and Celery's result meta JSON (../shared/celery/SPEC.md §5).
#include "weft/tasks/backend.hpp"

namespace weft::tasks {
namespace {
constexpr std::string_view kNames[] = {"PENDING", "RECEIVED", "STARTED", "RETRY", "SUCCESS", "FAILURE", "REVOKED"};
}

std::string_view state_name(State s) noexcept { return kNames[static_cast<int>(s)]; }

State parse_state(std::string_view name) {
  for (int i = 0; i < 7; ++i) {
    if (kNames[i] == name) return static_cast<State>(i);
  }
  throw ProtocolError("weft: unknown task state '" + std::string(name) + "'");
}

std::string encode_meta(const ResultMeta& m) {
  Json j = {{"status", state_name(m.state)},
            {"result", m.result},
            {"traceback", m.traceback.empty() ? Json(nullptr) : Json(m.traceback)},
            {"children", m.children},
            {"date_done", m.date_done ? Json(format_time(*m.date_done)) : Json(nullptr)},
            {"task_id", m.task_id}};
  if (!m.name.empty()) j["name"] = m.name;
  if (m.retries != 0) j["retries"] = m.retries;
  return j.dump();
}

ResultMeta decode_meta(std::string_view text) {
  ResultMeta m;
  try {
    const Json j = Json::parse(text);
    if (!j.is_object()) throw ProtocolError("weft: result meta is not a JSON object");
    m.task_id = j.at("task_id").get<std::string>();
    m.state = parse_state(j.at("status").get<std::string>());
    m.result = j.value("result", Json(nullptr));
    if (auto it = j.find("traceback"); it != j.end() && it->is_string()) m.traceback = it->get<std::string>();
    m.children = j.value("children", Json::array());
    if (auto it = j.find("date_done"); it != j.end() && it->is_string()) m.date_done = parse_time(it->get<std::string>());
    if (auto it = j.find("name"); it != j.end() && it->is_string()) m.name = it->get<std::string>();
    if (auto it = j.find("retries"); it != j.end() && it->is_number_integer()) m.retries = it->get<int>();
  } catch (const Json::exception& e) {
    throw ProtocolError(std::string("weft: malformed result meta: ") + e.what());
  }
  return m;
}

}  // namespace weft::tasks
