// Task messages: the envelope round trip, Celery's own captured envelope, poison input, times and base64.
#include "weft/tasks/backend.hpp"
#include "weft/tasks/message.hpp"

#include <gtest/gtest.h>

#include <set>

namespace {
using namespace weft::tasks;

TEST(TaskMessage, EnvelopeRoundTripKeepsEveryField) {
  TaskMessage m;
  m.id = new_task_id();
  m.task = "demo.add";
  m.args = Json::array({2, 3});
  m.kwargs = Json::object();
  m.eta = parse_time("2026-11-22T10:00:00.250000+00:00");
  m.expires = parse_time("2026-11-23T10:00:00Z");
  m.retries = 2;
  m.parent_id = "p";
  m.group = "g";
  m.group_index = 1;
  m.timelimit = {10.0, 5.0};
  m.priority = 7;
  m.queue = "fast";
  m.extra_headers = {{"x-trace", "abc"}};
  const TaskMessage back = decode_envelope(encode_envelope(m));
  EXPECT_EQ(back.id, m.id);
  EXPECT_EQ(back.task, "demo.add");
  EXPECT_EQ(back.args, m.args);
  EXPECT_EQ(back.eta, m.eta);
  EXPECT_EQ(back.expires, m.expires);
  EXPECT_EQ(back.retries, 2);
  EXPECT_EQ(back.root_id, m.id);  // a first task is its own root
  EXPECT_EQ(back.parent_id, "p");
  EXPECT_EQ(back.group, "g");
  EXPECT_EQ(back.group_index, 1);
  EXPECT_EQ(back.timelimit[0], 10.0);
  EXPECT_EQ(back.timelimit[1], 5.0);
  EXPECT_EQ(back.priority, 7);
  EXPECT_EQ(back.queue, "fast");
  EXPECT_EQ(back.extra_headers.value("x-trace", ""), "abc");
}

// The envelope Celery 5.2.6 put on Redis for add.delay(2, 3) (../shared/celery/SPEC.md §2), verbatim.
TEST(TaskMessage, DecodesCelerysOwnEnvelope) {
  const char* celery =
      R"json({"body": "W1syLCAzXSwge30sIHsiY2FsbGJhY2tzIjogbnVsbCwgImVycmJhY2tzIjogbnVsbCwgImNoYWluIjogbnVsbCwgImNob3JkIjogbnVsbH1d", "content-encoding": "utf-8", "content-type": "application/json", "headers": {"lang": "py", "task": "capapp.add", "id": "16ffdd22-cfdd-45f6-a06f-3641ae102f38", "shadow": null, "eta": null, "expires": null, "group": null, "group_index": null, "retries": 0, "timelimit": [null, null], "root_id": "16ffdd22-cfdd-45f6-a06f-3641ae102f38", "parent_id": null, "argsrepr": "(2, 3)", "kwargsrepr": "{}", "origin": "gen7659@vm", "ignore_result": false}, "properties": {"correlation_id": "16ffdd22-cfdd-45f6-a06f-3641ae102f38", "reply_to": "0fa4f368-836f-30da-ac5b-d1f76a069f6f", "delivery_mode": 2, "delivery_info": {"exchange": "", "routing_key": "celery"}, "priority": 0, "body_encoding": "base64", "delivery_tag": "c8f669af-9c17-4fc1-a6a9-3e0da0e5547a"}})json";
  const TaskMessage m = decode_envelope(celery);
  EXPECT_EQ(m.task, "capapp.add");
  EXPECT_EQ(m.id, "16ffdd22-cfdd-45f6-a06f-3641ae102f38");
  EXPECT_EQ(m.args, Json::array({2, 3}));
  EXPECT_TRUE(m.kwargs.empty());
  EXPECT_FALSE(m.eta.has_value());
  EXPECT_EQ(m.queue, "celery");
  EXPECT_EQ(m.origin, "gen7659@vm");
  EXPECT_EQ(m.reply_to, "0fa4f368-836f-30da-ac5b-d1f76a069f6f");
}

// What decode_envelope says of `text` ("no error" when it decodes).
std::string what(const std::string& text) {
  try {
    (void)decode_envelope(text);
  } catch (const ProtocolError& e) {
    return e.what();
  }
  return "no error";
}

TEST(TaskMessage, PoisonIsAProtocolErrorSayingWhatIsWrong) {
  EXPECT_NE(what("not json").find("not JSON"), std::string::npos);
  EXPECT_NE(what("[1]").find("not a JSON object"), std::string::npos);
  EXPECT_NE(what(R"({"body": "W10=", "headers": {}})").find("[args, kwargs, embed]"), std::string::npos);
  EXPECT_NE(what(R"({"body": "!!!!", "headers": {"id": "a", "task": "t"}})").find("base64"), std::string::npos);
  TaskMessage m;
  m.id = "x";
  m.task = "t";
  Json env = Json::parse(encode_envelope(m));
  env["headers"].erase("task");
  EXPECT_NE(what(env.dump()).find("task"), std::string::npos);
  env = Json::parse(encode_envelope(m));
  env["headers"]["eta"] = "yesterday";
  EXPECT_NE(what(env.dump()).find("ISO 8601"), std::string::npos);
  env = Json::parse(encode_envelope(m));
  env["content-type"] = "application/x-python-serialize";
  EXPECT_NE(what(env.dump()).find("content type"), std::string::npos);
}

TEST(TaskMessage, MsgpackBodiesRoundTripAndBadOnesArePoison) {
  TaskMessage m;
  m.id = "m1";
  m.task = "t.pack";
  m.args = Json::array({1, -2.5, "text", Json::array({true, nullptr}), Json{{"k", 7}}});
  m.kwargs = Json{{"a", 1}};
  m.callbacks = Json::array({Json{{"task", "cb"}}});
  m.serializer = Serializer::msgpack;
  const std::string text = encode_envelope(m);
  const Json env = Json::parse(text);
  EXPECT_EQ(env["content-type"], "application/x-msgpack");
  EXPECT_EQ(env["content-encoding"], "binary");
  // The body is msgpack: [args, kwargs, embed] as msgpack bytes, base64 like any body.
  const std::string raw = base64_decode(env["body"].get<std::string>());
  EXPECT_EQ(Json::from_msgpack(raw)[0], m.args);
  const TaskMessage back = decode_envelope(text);
  EXPECT_EQ(back.serializer, Serializer::msgpack);
  EXPECT_EQ(back.args, m.args);
  EXPECT_EQ(back.kwargs, m.kwargs);
  EXPECT_EQ(back.callbacks, m.callbacks);
  // A body that is not msgpack: a ProtocolError that says so.
  Json bad = env;
  bad["body"] = base64_encode("\xc1 not msgpack");
  try {
    (void)decode_envelope(bad.dump());
    ADD_FAILURE() << "no error";
  } catch (const ProtocolError& e) {
    EXPECT_NE(std::string(e.what()).find("not msgpack"), std::string::npos) << e.what();
  }
  // JSON stays the default.
  m.serializer = Serializer::json;
  EXPECT_EQ(Json::parse(encode_envelope(m))["content-type"], "application/json");
}

TEST(TaskMessage, DeeplyNestedValuesArePoisonNotACrash) {
  TaskMessage m;
  m.id = "deep";
  m.task = "t";
  // A body of 100,000 nested arrays, as JSON and as msgpack (0x91: an array of one element).
  Json env = Json::parse(encode_envelope(m));
  env["body"] = base64_encode(std::string(100'000, '[') + std::string(100'000, ']'));
  EXPECT_NE(what(env.dump()).find("nested deeper than"), std::string::npos);
  m.serializer = Serializer::msgpack;
  env = Json::parse(encode_envelope(m));
  env["body"] = base64_encode(std::string(100'000, '\x91') + std::string(1, '\xc0'));
  EXPECT_NE(what(env.dump()).find("nested deeper than"), std::string::npos);
  // Deep headers in the envelope itself.
  const std::string deep_header = R"({"headers": {"x": )" + std::string(100'000, '[') + std::string(100'000, ']') + "}}";
  EXPECT_NE(what(deep_header).find("nested deeper than"), std::string::npos);
  // 100 levels are fine.
  m.serializer = Serializer::json;
  Json nested = 1;
  for (int i = 0; i < 100; ++i) nested = Json::array({nested});
  m.args = Json::array({nested});
  EXPECT_EQ(decode_envelope(encode_envelope(m)).args, m.args);
}

TEST(TaskMessage, OversizedMessagesAreRefused) {
  TaskMessage m;
  m.id = "x";
  m.task = "t";
  m.args = Json::array({std::string(kMaxEnvelope, 'a')});
  EXPECT_THROW((void)encode_envelope(m), MessageTooLarge);
}

TEST(TaskMessage, TaskIdsAreVersion4UuidsAndDistinct) {
  std::set<std::string> ids;
  for (int i = 0; i < 1000; ++i) {
    const std::string id = new_task_id();
    ASSERT_EQ(id.size(), 36u);
    EXPECT_EQ(id[14], '4');
    EXPECT_TRUE(id[19] == '8' || id[19] == '9' || id[19] == 'a' || id[19] == 'b') << id;
    ids.insert(id);
  }
  EXPECT_EQ(ids.size(), 1000u);
}

TEST(TaskMessage, TimesRoundTripToTheMicrosecond) {
  const auto t = parse_time("2026-02-28T23:59:59.999999+00:00");
  EXPECT_EQ(format_time(t), "2026-02-28T23:59:59.999999+00:00");
  EXPECT_EQ(parse_time("2026-02-28T23:59:59Z"), parse_time("2026-02-28T23:59:59.000000+00:00"));
  EXPECT_THROW((void)parse_time("2026-02-28T23:59:59+02:00"), ProtocolError);
  EXPECT_THROW((void)parse_time("2026-13-01T00:00:00"), ProtocolError);
}

TEST(TaskMessage, Base64MatchesTheRfcVectors) {
  EXPECT_EQ(base64_encode(""), "");
  EXPECT_EQ(base64_encode("f"), "Zg==");
  EXPECT_EQ(base64_encode("fo"), "Zm8=");
  EXPECT_EQ(base64_encode("foo"), "Zm9v");
  EXPECT_EQ(base64_encode("foobar"), "Zm9vYmFy");
  for (std::string s : {"", "f", "fo", "foo", "foob", "fooba", "foobar"}) EXPECT_EQ(base64_decode(base64_encode(s)), s);
  EXPECT_THROW((void)base64_decode("Zm9"), ProtocolError);
  EXPECT_THROW((void)base64_decode("Zm9*"), ProtocolError);
}

TEST(ResultMetaCodec, CelerysFormRoundTrips) {
  ResultMeta m;
  m.task_id = "id1";
  m.state = State::failure;
  m.result = Json{{"exc_type", "ValueError"}, {"exc_message", Json::array({"bad"})}, {"exc_module", "builtins"}};
  m.traceback = "Traceback...";
  m.date_done = parse_time("2026-11-22T10:00:00Z");
  const Json j = Json::parse(encode_meta(m));
  EXPECT_EQ(j["status"], "FAILURE");
  EXPECT_EQ(j["task_id"], "id1");
  const ResultMeta back = decode_meta(encode_meta(m));
  EXPECT_EQ(back.state, State::failure);
  EXPECT_EQ(back.result, m.result);
  EXPECT_EQ(back.traceback, "Traceback...");
  EXPECT_EQ(back.date_done, m.date_done);
  EXPECT_THROW((void)decode_meta(R"({"status": "DONE", "task_id": "x"})"), ProtocolError);
  for (State s : {State::pending, State::received, State::started, State::retry, State::success, State::failure,
                  State::revoked}) {
    EXPECT_EQ(parse_state(state_name(s)), s);
  }
}

}  // namespace
