// Result states and Celery's result meta JSON (../shared/celery/SPEC.md §5).
#include "weft/tasks/backend.hpp"

#include <charconv>
#include <stdexcept>

namespace weft::tasks {

std::vector<bool> ResultBackend::store_many(std::span<const ResultMeta> ms) {
  std::vector<bool> out;
  out.reserve(ms.size());
  for (const ResultMeta& m : ms) out.push_back(store(m));
  return out;
}

void ResultBackend::check_entry(std::string_view key, std::string_view value,
                                std::optional<std::chrono::milliseconds> ttl) {
  if (key.empty()) throw std::invalid_argument("weft: a backend entry needs a key");
  if (key.size() > kMaxKey) {
    throw std::invalid_argument("weft: backend key of " + std::to_string(key.size()) + " bytes above the limit of " +
                                std::to_string(kMaxKey));
  }
  if (value.size() > kMaxValue) {
    throw std::invalid_argument("weft: backend value of " + std::to_string(value.size()) +
                                " bytes above the limit of " + std::to_string(kMaxValue) + " (key '" +
                                std::string(key) + "')");
  }
  if (ttl && ttl->count() <= 0) {
    throw std::invalid_argument("weft: the time to live of backend entry '" + std::string(key) + "' is not above 0");
  }
}

std::int64_t ResultBackend::parse_counter(std::string_view key, std::string_view value) {
  if (value.empty()) return 0;
  std::int64_t n = 0;
  const auto [end, ec] = std::from_chars(value.data(), value.data() + value.size(), n);
  if (ec != std::errc() || end != value.data() + value.size()) {
    throw ProtocolError("weft: backend entry '" + std::string(key) + "' holds '" + std::string(value.substr(0, 40)) +
                        "', not an integer to increment");
  }
  return n;
}

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
