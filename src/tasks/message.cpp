// Task messages: Celery protocol 2 headers and body inside kombu's JSON envelope (../shared/celery/SPEC.md §2-3).
#include "weft/tasks/message.hpp"

#include <unistd.h>

#include <cstdint>
#include <cstdio>
#include <ctime>
#include <random>
#include <vector>

namespace weft::tasks {
namespace {

Json opt_time(const std::optional<SysTime>& t) { return t ? Json(format_time(*t)) : Json(nullptr); }
Json opt_string(const std::string& s) { return s.empty() ? Json(nullptr) : Json(s); }

std::string hostname() {
  char buf[256] = {};
  if (::gethostname(buf, sizeof buf - 1) != 0) return "localhost";
  return buf;
}

// Throws ProtocolError naming the field when `j[key]` is missing or not of the expected kind.
const Json& field(const Json& j, const char* key, const char* where) {
  auto it = j.find(key);
  if (it == j.end()) throw ProtocolError(std::string("weft: task message without ") + where + "." + key);
  return *it;
}

std::string string_or_empty(const Json& j, const char* key) {
  auto it = j.find(key);
  if (it == j.end() || it->is_null()) return {};
  if (!it->is_string()) throw ProtocolError(std::string("weft: task message header '") + key + "' is not a string");
  return it->get<std::string>();
}

std::optional<SysTime> time_or_none(const Json& j, const char* key) {
  auto it = j.find(key);
  if (it == j.end() || it->is_null()) return std::nullopt;
  if (!it->is_string()) throw ProtocolError(std::string("weft: task message header '") + key + "' is not a time");
  return parse_time(it->get_ref<const std::string&>());
}

constexpr char kAlphabet[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

}  // namespace

std::string new_task_id() {
  // Per-thread generator seeded from the OS: ids from concurrent threads and processes do not collide.
  thread_local std::mt19937_64 rng([] {
    std::random_device rd;
    std::seed_seq seq{rd(), rd(), rd(), rd(), static_cast<unsigned>(::getpid())};
    return std::mt19937_64(seq);
  }());
  std::uint64_t hi = rng(), lo = rng();
  hi = (hi & 0xffffffffffff0fffULL) | 0x0000000000004000ULL;  // version 4
  lo = (lo & 0x3fffffffffffffffULL) | 0x8000000000000000ULL;  // variant 10
  char out[37];
  std::snprintf(out, sizeof out, "%08x-%04x-%04x-%04x-%012llx", static_cast<unsigned>(hi >> 32),
                static_cast<unsigned>((hi >> 16) & 0xffff), static_cast<unsigned>(hi & 0xffff),
                static_cast<unsigned>(lo >> 48), static_cast<unsigned long long>(lo & 0xffffffffffffULL));
  return out;
}

std::string format_time(SysTime t) {
  const auto us = std::chrono::duration_cast<std::chrono::microseconds>(t.time_since_epoch()).count();
  std::int64_t secs = us / 1'000'000, frac = us % 1'000'000;
  if (frac < 0) {
    frac += 1'000'000;
    --secs;
  }
  const std::time_t tt = static_cast<std::time_t>(secs);
  std::tm tm{};
  ::gmtime_r(&tt, &tm);
  char buf[64];
  std::snprintf(buf, sizeof buf, "%04d-%02d-%02dT%02d:%02d:%02d.%06lld+00:00", tm.tm_year + 1900, tm.tm_mon + 1,
                tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, static_cast<long long>(frac));
  return buf;
}

SysTime parse_time(std::string_view text) {
  int y, mo, d, h, mi, s, n = 0;
  const std::string str(text);
  if (std::sscanf(str.c_str(), "%4d-%2d-%2dT%2d:%2d:%2d%n", &y, &mo, &d, &h, &mi, &s, &n) != 6 || n != 19) {
    throw ProtocolError("weft: not an ISO 8601 time: '" + str + "'");
  }
  std::string_view rest = text.substr(19);
  std::int64_t micros = 0;
  if (!rest.empty() && rest.front() == '.') {
    rest.remove_prefix(1);
    int digits = 0;
    while (!rest.empty() && rest.front() >= '0' && rest.front() <= '9') {
      if (digits < 6) {
        micros = micros * 10 + (rest.front() - '0');
        ++digits;
      }
      rest.remove_prefix(1);
    }
    if (digits == 0) throw ProtocolError("weft: not an ISO 8601 time: '" + str + "'");
    for (; digits < 6; ++digits) micros *= 10;
  }
  if (!(rest.empty() || rest == "Z" || rest == "+00:00" || rest == "-00:00")) {
    throw ProtocolError("weft: only UTC times are accepted: '" + str + "'");
  }
  if (mo < 1 || mo > 12 || d < 1 || d > 31 || h > 23 || mi > 59 || s > 60) {
    throw ProtocolError("weft: not a valid time: '" + str + "'");
  }
  std::tm tm{};
  tm.tm_year = y - 1900;
  tm.tm_mon = mo - 1;
  tm.tm_mday = d;
  tm.tm_hour = h;
  tm.tm_min = mi;
  tm.tm_sec = s;
  const std::time_t secs = ::timegm(&tm);
  return SysTime(std::chrono::seconds(secs)) + std::chrono::microseconds(micros);
}

std::string base64_encode(std::string_view in) {
  std::string out;
  out.reserve((in.size() + 2) / 3 * 4);
  std::size_t i = 0;
  for (; i + 2 < in.size(); i += 3) {
    const std::uint32_t v = (std::uint8_t(in[i]) << 16) | (std::uint8_t(in[i + 1]) << 8) | std::uint8_t(in[i + 2]);
    out += kAlphabet[v >> 18];
    out += kAlphabet[(v >> 12) & 63];
    out += kAlphabet[(v >> 6) & 63];
    out += kAlphabet[v & 63];
  }
  if (i + 1 == in.size()) {
    const std::uint32_t v = std::uint8_t(in[i]) << 16;
    out += kAlphabet[v >> 18];
    out += kAlphabet[(v >> 12) & 63];
    out += "==";
  } else if (i + 2 == in.size()) {
    const std::uint32_t v = (std::uint8_t(in[i]) << 16) | (std::uint8_t(in[i + 1]) << 8);
    out += kAlphabet[v >> 18];
    out += kAlphabet[(v >> 12) & 63];
    out += kAlphabet[(v >> 6) & 63];
    out += '=';
  }
  return out;
}

std::string base64_decode(std::string_view in) {
  auto value = [](char c) -> int {
    if (c >= 'A' && c <= 'Z') return c - 'A';
    if (c >= 'a' && c <= 'z') return c - 'a' + 26;
    if (c >= '0' && c <= '9') return c - '0' + 52;
    if (c == '+') return 62;
    if (c == '/') return 63;
    return -1;
  };
  if (in.size() % 4 != 0) throw ProtocolError("weft: base64 text whose length is not a multiple of 4");
  std::string out;
  out.reserve(in.size() / 4 * 3);
  for (std::size_t i = 0; i < in.size(); i += 4) {
    const bool last = i + 4 == in.size();
    const int pad = last ? (in[i + 3] == '=') + (in[i + 2] == '=') : 0;
    if (pad == 1 && in[i + 2] == '=') throw ProtocolError("weft: bad base64 padding");
    std::uint32_t v = 0;
    for (int k = 0; k < 4 - pad; ++k) {
      const int x = value(in[i + k]);
      if (x < 0) throw ProtocolError("weft: a character that is not base64 at offset " + std::to_string(i + k));
      v |= static_cast<std::uint32_t>(x) << (18 - 6 * k);
    }
    out += static_cast<char>(v >> 16);
    if (pad < 2) out += static_cast<char>((v >> 8) & 0xff);
    if (pad < 1) out += static_cast<char>(v & 0xff);
  }
  return out;
}

std::string encode_envelope(const TaskMessage& m, std::string_view delivery_tag) {
  const Json body = Json::array({m.args, m.kwargs,
                                 Json{{"callbacks", m.callbacks}, {"errbacks", m.errbacks}, {"chain", m.chain},
                                      {"chord", m.chord}}});
  Json headers = m.extra_headers.is_object() ? m.extra_headers : Json::object();
  static const std::string origin = std::to_string(::getpid()) + "@" + hostname();
  headers["lang"] = "py";  // Celery workers refuse other values; the body is plain JSON all the same
  headers["task"] = m.task;
  headers["id"] = m.id;
  headers["shadow"] = nullptr;
  headers["eta"] = opt_time(m.eta);
  headers["expires"] = opt_time(m.expires);
  headers["group"] = opt_string(m.group);
  headers["group_index"] = m.group_index ? Json(*m.group_index) : Json(nullptr);
  headers["retries"] = m.retries;
  headers["timelimit"] = Json::array({m.timelimit[0] ? Json(*m.timelimit[0]) : Json(nullptr),
                                      m.timelimit[1] ? Json(*m.timelimit[1]) : Json(nullptr)});
  headers["root_id"] = m.root_id.empty() ? m.id : m.root_id;
  headers["parent_id"] = opt_string(m.parent_id);
  // For people reading messages: text that is not UTF-8 (a msgpack string may be any bytes) shows as U+FFFD.
  headers["argsrepr"] = m.args.dump(-1, ' ', false, Json::error_handler_t::replace);
  headers["kwargsrepr"] = m.kwargs.dump(-1, ' ', false, Json::error_handler_t::replace);
  headers["origin"] = m.origin.empty() ? origin : m.origin;
  headers["ignore_result"] = m.ignore_result;
  std::string body_bytes;
  if (m.serializer == Serializer::msgpack) {
    const std::vector<std::uint8_t> packed = Json::to_msgpack(body);
    body_bytes.assign(packed.begin(), packed.end());
  } else {
    body_bytes = body.dump();
  }
  const bool packed = m.serializer == Serializer::msgpack;
  const Json envelope = {
      {"body", base64_encode(body_bytes)},
      {"content-encoding", packed ? "binary" : "utf-8"},
      {"content-type", packed ? "application/x-msgpack" : "application/json"},
      {"headers", std::move(headers)},
      {"properties",
       {{"correlation_id", m.id},
        {"reply_to", m.reply_to},
        {"delivery_mode", 2},
        {"delivery_info", {{"exchange", ""}, {"routing_key", m.queue}}},
        {"priority", m.priority},
        {"body_encoding", "base64"},
        {"delivery_tag", delivery_tag.empty() ? new_task_id() : std::string(delivery_tag)}}}};
  std::string out = envelope.dump();
  if (out.size() > kMaxEnvelope) {
    throw MessageTooLarge("weft: task message of " + std::to_string(out.size()) + " bytes is above the limit of " +
                          std::to_string(kMaxEnvelope) + " bytes");
  }
  return out;
}

namespace {

// Nesting deeper than kMaxNesting is poison: decoding and copying nested values recurses, so a message of a few
// hundred kilobytes of brackets would otherwise overflow a worker's stack. Checked without building anything,
// by a SAX pass that stops at the limit (the parser's recursion ends there too).
constexpr std::size_t kMaxNesting = 128;

class NestingCheck final : public nlohmann::json_sax<Json> {
 public:
  bool too_deep = false;
  bool null() override { return true; }
  bool boolean(bool) override { return true; }
  bool number_integer(number_integer_t) override { return true; }
  bool number_unsigned(number_unsigned_t) override { return true; }
  bool number_float(number_float_t, const string_t&) override { return true; }
  bool string(string_t&) override { return true; }
  bool binary(binary_t&) override { return true; }
  bool start_object(std::size_t) override { return enter(); }
  bool key(string_t&) override { return true; }
  bool end_object() override { return leave(); }
  bool start_array(std::size_t) override { return enter(); }
  bool end_array() override { return leave(); }
  bool parse_error(std::size_t, const std::string&, const nlohmann::detail::exception&) override { return false; }

 private:
  bool enter() {
    if (++depth_ <= kMaxNesting) return true;
    too_deep = true;
    return false;
  }
  bool leave() {
    --depth_;
    return true;
  }
  std::size_t depth_ = 0;
};

void check_nesting(std::string_view bytes, nlohmann::detail::input_format_t format, const char* what) {
  NestingCheck check;
  Json::sax_parse(bytes, &check, format);  // a syntax error is reported by the real parse that follows
  if (check.too_deep) {
    throw ProtocolError(std::string("weft: task message ") + what + " nested deeper than " +
                        std::to_string(kMaxNesting) + " levels");
  }
}

}  // namespace

TaskMessage decode_envelope(std::string_view text) {
  if (text.size() > kMaxEnvelope) throw ProtocolError("weft: task message above the size limit");
  check_nesting(text, nlohmann::detail::input_format_t::json, "envelope");
  Json env;
  try {
    env = Json::parse(text);
  } catch (const Json::parse_error& e) {
    throw ProtocolError(std::string("weft: task message is not JSON: ") + e.what());
  }
  if (!env.is_object()) throw ProtocolError("weft: task message is not a JSON object");
  TaskMessage m;
  try {
    const Json& headers = field(env, "headers", "envelope");
    const Json& props = env.contains("properties") ? env["properties"] : Json::object();
    if (!headers.is_object() || !props.is_object()) throw ProtocolError("weft: task message headers are not an object");
    const std::string ctype = env.value("content-type", "application/json");
    if (ctype == "application/x-msgpack") {
      m.serializer = Serializer::msgpack;
    } else if (ctype != "application/json") {
      throw ProtocolError("weft: task message body of content type '" + ctype +
                          "' (application/json and application/x-msgpack are read)");
    }
    const Json& body_text = field(env, "body", "envelope");
    if (!body_text.is_string()) throw ProtocolError("weft: task message body is not a string");
    const std::string encoding = props.value("body_encoding", "base64");
    const std::string raw = encoding == "base64" ? base64_decode(body_text.get_ref<const std::string&>())
                                                 : body_text.get<std::string>();
    check_nesting(raw,
                  m.serializer == Serializer::msgpack ? nlohmann::detail::input_format_t::msgpack
                                                      : nlohmann::detail::input_format_t::json,
                  "body");
    Json body;
    try {
      body = m.serializer == Serializer::msgpack ? Json::from_msgpack(raw) : Json::parse(raw);
    } catch (const Json::parse_error& e) {
      throw ProtocolError(std::string("weft: task message body is not ") +
                          (m.serializer == Serializer::msgpack ? "msgpack: " : "JSON: ") + e.what());
    }
    if (!body.is_array() || body.size() != 3 || !body[0].is_array() || !body[1].is_object() ||
        !(body[2].is_object() || body[2].is_null())) {
      throw ProtocolError("weft: task message body is not [args, kwargs, embed]");
    }
    m.args = body[0];
    m.kwargs = body[1];
    if (body[2].is_object()) {
      m.callbacks = body[2].value("callbacks", Json(nullptr));
      m.errbacks = body[2].value("errbacks", Json(nullptr));
      m.chain = body[2].value("chain", Json(nullptr));
      m.chord = body[2].value("chord", Json(nullptr));
    }
    const Json& id = field(headers, "id", "headers");
    const Json& task = field(headers, "task", "headers");
    if (!id.is_string() || id.get_ref<const std::string&>().empty()) throw ProtocolError("weft: task message id is not a string");
    if (!task.is_string() || task.get_ref<const std::string&>().empty()) throw ProtocolError("weft: task message task name is not a string");
    m.id = id.get<std::string>();
    m.task = task.get<std::string>();
    m.eta = time_or_none(headers, "eta");
    m.expires = time_or_none(headers, "expires");
    if (auto it = headers.find("retries"); it != headers.end() && !it->is_null()) {
      if (!it->is_number_integer()) throw ProtocolError("weft: task message retries is not an integer");
      m.retries = it->get<int>();
    }
    m.root_id = string_or_empty(headers, "root_id");
    m.parent_id = string_or_empty(headers, "parent_id");
    m.group = string_or_empty(headers, "group");
    if (auto it = headers.find("group_index"); it != headers.end() && it->is_number_integer()) m.group_index = it->get<int>();
    if (auto it = headers.find("timelimit"); it != headers.end() && it->is_array() && it->size() == 2) {
      for (int k = 0; k < 2; ++k) {
        if ((*it)[k].is_number()) m.timelimit[k] = (*it)[k].get<double>();
      }
    }
    if (auto it = headers.find("ignore_result"); it != headers.end() && it->is_boolean()) m.ignore_result = it->get<bool>();
    m.origin = string_or_empty(headers, "origin");
    if (auto it = props.find("priority"); it != props.end() && it->is_number_integer()) m.priority = it->get<int>();
    if (auto it = props.find("delivery_info"); it != props.end() && it->is_object()) {
      if (auto rk = it->find("routing_key"); rk != it->end() && rk->is_string()) m.queue = rk->get<std::string>();
    }
    if (auto it = props.find("reply_to"); it != props.end() && it->is_string()) m.reply_to = it->get<std::string>();
    static const char* known[] = {"lang", "task", "id", "shadow", "eta", "expires", "group", "group_index", "retries",
                                  "timelimit", "root_id", "parent_id", "argsrepr", "kwargsrepr", "origin",
                                  "ignore_result"};
    for (auto it = headers.begin(); it != headers.end(); ++it) {
      bool is_known = false;
      for (const char* k : known) is_known = is_known || it.key() == k;
      if (!is_known) m.extra_headers[it.key()] = it.value();
    }
  } catch (const Json::exception& e) {
    throw ProtocolError(std::string("weft: malformed task message: ") + e.what());
  }
  return m;
}

}  // namespace weft::tasks
