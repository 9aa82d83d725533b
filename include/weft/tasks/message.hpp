// weft/tasks/message.hpp — a task message as Celery protocol 2 carries it, and its envelope (kombu's JSON
// message, the string a Redis list holds): the one format every broker stores, so that a Redis broker is one
// more implementation of the Broker interface and Python Celery reads weft's messages (../shared/celery/SPEC.md).
//
//   envelope = {"body": base64(JSON [args, kwargs, embed]), "content-encoding": "utf-8",
//               "content-type": "application/json", "headers": {lang, task, id, shadow, eta, expires, group,
//               group_index, retries, timelimit, root_id, parent_id, argsrepr, kwargsrepr, origin,
//               ignore_result, + extra headers}, "properties": {correlation_id, reply_to, delivery_mode: 2,
//               delivery_info: {exchange: "", routing_key: queue}, priority, body_encoding: "base64",
//               delivery_tag}}
#pragma once

#include <array>
#include <chrono>
#include <optional>
#include <string>
#include <string_view>

#include <nlohmann/json.hpp>

#include "weft/core/errors.hpp"

namespace weft::tasks {

using Json = nlohmann::json;
using SysTime = std::chrono::system_clock::time_point;

/// A message that cannot be a task message (not JSON, a field missing or of the wrong type, bad base64, a
/// body that is not [args, kwargs, embed]). The message is poison: workers record a FAILURE for it when it
/// names a task id, and never retry it.
class ProtocolError : public weft::Error {
 public:
  using weft::Error::Error;
};

/// The largest envelope any broker accepts (bytes). Larger ones are refused by publish (MessageTooLarge) and,
/// should one arrive from elsewhere, failed as poison by workers.
inline constexpr std::size_t kMaxEnvelope = std::size_t{16} << 20;

/// A publish refused for its size.
class MessageTooLarge : public weft::Error {
 public:
  using weft::Error::Error;
};

/// A publish refused because the broker holds all it may (memory://: kMaxMemoryMessages messages or
/// kMaxMemoryBytes of envelopes). Nothing of the publish was stored; try again once workers have taken some.
class BrokerFull : public weft::Error {
 public:
  using weft::Error::Error;
};

/// The most messages, and envelope bytes, one memory:// broker holds (ready, scheduled and reserved).
inline constexpr std::size_t kMaxMemoryMessages = 1'000'000;
inline constexpr std::size_t kMaxMemoryBytes = std::size_t{1} << 30;

/// How a message's body [args, kwargs, embed] is serialized (kombu's content types).
enum class Serializer {
  json,     ///< "application/json" (Celery's default)
  msgpack,  ///< "application/x-msgpack": smaller and faster to decode for numbers
};

/// One call of a task (Celery protocol 2: headers + body [args, kwargs, embed]).
struct TaskMessage {
  std::string id;                 ///< the task id (a UUID), also the result's key
  std::string task;               ///< the registered task name
  Json args = Json::array();      ///< positional arguments
  Json kwargs = Json::object();   ///< keyword arguments
  Json callbacks = nullptr;       ///< embed.callbacks: signatures to call with the result (link)
  Json errbacks = nullptr;        ///< embed.errbacks: signatures to call on failure (link_error)
  Json chain = nullptr;           ///< embed.chain: the rest of a chain, last first (Celery's order)
  Json chord = nullptr;           ///< embed.chord: the chord body signature
  std::optional<SysTime> eta;     ///< not before this time
  std::optional<SysTime> expires; ///< after this time the task is REVOKED unrun
  int retries = 0;                ///< how many times it has been retried
  std::string root_id;            ///< the first task of the workflow (itself when empty on encode)
  std::string parent_id;          ///< the task that sent this one (empty: none)
  std::string group;              ///< the group id (empty: none)
  std::optional<int> group_index;
  std::array<std::optional<double>, 2> timelimit{};  ///< hard, soft seconds
  bool ignore_result = false;
  std::string origin;             ///< "<pid>@<hostname>" of the sender
  int priority = 0;               ///< 0-9, higher first
  std::string queue = "celery";   ///< routing key
  std::string reply_to;
  Json extra_headers = Json::object();  ///< other headers, kept as they came
  Serializer serializer = Serializer::json;  ///< the body's encoding (decode_envelope reports the one it read)
};

/// A random (version 4) UUID in its 36-character text form. Thread-safe.
std::string new_task_id();

/// The envelope (compact JSON) of `m` with `delivery_tag` (a fresh UUID when empty). Throws
/// MessageTooLarge (above kMaxEnvelope), Json's type_error for arguments that are not valid UTF-8 strings.
std::string encode_envelope(const TaskMessage& m, std::string_view delivery_tag = {});

/// Parses an envelope (a JSON or msgpack body). Unknown headers land in extra_headers. Throws ProtocolError
/// with what is wrong (another content type included; values nested deeper than 128 levels).
TaskMessage decode_envelope(std::string_view envelope);

/// ISO 8601 UTC with microseconds ("2026-11-22T21:30:00.123456+00:00", Celery's form) and back. parse_time
/// accepts a trailing "Z", "+00:00" or no zone (taken as UTC); throws ProtocolError otherwise.
std::string format_time(SysTime t);
SysTime parse_time(std::string_view text);

/// Standard base64 (RFC 4648, padded). decode throws ProtocolError on a bad character or length.
std::string base64_encode(std::string_view bytes);
std::string base64_decode(std::string_view text);

}  // namespace weft::tasks
