// The canvas: signatures as Celery's JSON, the messages a canvas sends, and chains, groups, chords and link /
// link_error run by real Workers on memory:// and on sqlite://.
#include "weft/tasks/canvas.hpp"
#include "weft/tasks/worker.hpp"

#include "support.hpp"

#include <gtest/gtest.h>

#include <atomic>
#include <numeric>
#include <stdexcept>
#include <string>
#include <vector>

namespace {
using namespace weft::tasks;
using namespace std::chrono_literals;

constexpr auto kLong = std::chrono::seconds(10);  // a safety net, never the thing measured

int add(int a, int b) { return a + b; }
int mul(int a, int b) { return a * b; }
int tsum(std::vector<int> v) { return std::accumulate(v.begin(), v.end(), 0); }
int scaled_sum(std::vector<int> v, int k) { return k * std::accumulate(v.begin(), v.end(), 0); }
int boom(int x) { throw std::invalid_argument("boom " + std::to_string(x)); }
std::string echo(std::string s) { return s; }

// ---- Signatures as JSON ---------------------------------------------------------------------------------------

TEST(CanvasJson, SignatureRoundTripsThroughCeleryForm) {
  Signature cb{"t.mul", Json::array({10}), Json::object(), CallOptions{.task_id = std::string("cb-1")}};
  Signature eb{"t.echo", Json::array(), Json::object(), CallOptions{}, true};
  const SysTime eta{std::chrono::microseconds(1'800'000'000'123'456)};
  Signature s{"t.add",
              Json::array({1, "two", Json::array({3})}),
              Json{{"k", 1}},
              CallOptions{.countdown = 1500ms,
                          .eta = eta,
                          .expires_in = 60s,
                          .priority = 5,
                          .queue = std::string("q1"),
                          .task_id = std::string("id-1"),
                          .headers = Json{{"h", "v"}}},
              true,
              {cb},
              {eb}};
  const Json j = to_json(s);
  EXPECT_EQ(j["task"], "t.add");
  EXPECT_EQ(j["args"], Json::array({1, "two", Json::array({3})}));
  EXPECT_TRUE(j["subtask_type"].is_null());
  EXPECT_EQ(j["immutable"], true);
  EXPECT_EQ(j["options"]["task_id"], "id-1");
  EXPECT_EQ(j["options"]["countdown"], 1.5);
  EXPECT_EQ(j["options"]["expires"], 60);
  EXPECT_EQ(j["options"]["eta"], format_time(eta));
  EXPECT_EQ(j["options"]["link"][0]["task"], "t.mul");
  EXPECT_EQ(j["options"]["link_error"][0]["immutable"], true);

  const Signature back = signature_from_json(j);
  EXPECT_EQ(back.task, "t.add");
  EXPECT_EQ(back.options.countdown, 1500ms);
  EXPECT_EQ(back.options.eta, eta);
  EXPECT_EQ(back.options.expires_in, 60s);
  EXPECT_FALSE(back.options.expires);
  EXPECT_EQ(back.options.priority, 5);
  EXPECT_EQ(back.options.queue, "q1");
  EXPECT_EQ(back.options.headers, (Json{{"h", "v"}}));
  ASSERT_EQ(back.link.size(), 1u);
  EXPECT_EQ(back.link[0].options.task_id, "cb-1");
  ASSERT_EQ(back.link_error.size(), 1u);
  EXPECT_TRUE(back.link_error[0].immutable);
  EXPECT_EQ(to_json(back), j);
  // nlohmann's hooks do the same.
  EXPECT_EQ(Json(s), j);
  EXPECT_EQ(j.get<Signature>().task, "t.add");
  // An absolute expiry travels as a time.
  Signature abs{"t.add"};
  abs.options.expires = eta;
  EXPECT_EQ(to_json(abs)["options"]["expires"], format_time(eta));
  EXPECT_EQ(signature_from_json(to_json(abs)).options.expires, eta);
}

TEST(CanvasJson, ReadsSignaturesAsPythonCelerySendsThem) {
  // An element of embed.chain from Celery 5.2 (../shared/celery/samples/08_chain.list-celery.body.json), and a
  // link kept as one signature rather than a list.
  const Json j = Json::parse(R"({"task": "capapp.add", "args": [4], "kwargs": {}, "options": {"task_id":
      "24fea8ec-1b9b-4804-8068-61ce8c44ed07", "reply_to": "0fa4f368-836f-30da-ac5b-d1f76a069f6f", "link":
      {"task": "capapp.echo", "args": [], "kwargs": {}, "options": {}, "subtask_type": null, "immutable": false}},
      "subtask_type": null, "immutable": false, "chord_size": null})");
  const Signature s = signature_from_json(j);
  EXPECT_EQ(s.task, "capapp.add");
  EXPECT_EQ(s.args, Json::array({4}));
  EXPECT_EQ(s.options.task_id, "24fea8ec-1b9b-4804-8068-61ce8c44ed07");
  EXPECT_FALSE(s.immutable);
  ASSERT_EQ(s.link.size(), 1u);
  EXPECT_EQ(s.link[0].task, "capapp.echo");
  // The least a signature needs is its task.
  const Signature bare = signature_from_json(Json{{"task", "t.x"}});
  EXPECT_EQ(bare.args, Json::array());
  EXPECT_EQ(bare.kwargs, Json::object());
}

TEST(CanvasJson, BadJsonIsAProtocolError) {
  const char* bad[] = {
      R"([])",
      R"("t.add")",
      R"({"args": []})",
      R"({"task": ""})",
      R"({"task": 7})",
      R"({"task": "t", "args": {}})",
      R"({"task": "t", "kwargs": []})",
      R"({"task": "t", "immutable": "yes"})",
      R"({"task": "t", "options": []})",
      R"({"task": "t", "options": {"task_id": 5}})",
      R"({"task": "t", "options": {"eta": "tomorrow"}})",
      R"({"task": "t", "options": {"eta": "2026-01-01T00:00:00+02:00"}})",
      R"({"task": "t", "options": {"countdown": "1"}})",
      R"({"task": "t", "options": {"countdown": 1e300}})",
      R"({"task": "t", "options": {"expires": true}})",
      R"({"task": "t", "options": {"priority": 1.5}})",
      R"({"task": "t", "options": {"queue": 1}})",
      R"({"task": "t", "options": {"headers": "h"}})",
      R"({"task": "t", "options": {"link": 3}})",
      R"({"task": "t", "options": {"link": [{"args": []}]}})",
      R"({"task": "celery.group", "subtask_type": "group"})",
      R"({"task": "t", "subtask_type": 1})",
  };
  for (const char* text : bad) {
    EXPECT_THROW(signature_from_json(Json::parse(text)), ProtocolError) << text;
    EXPECT_THROW(Json::parse(text).get<Signature>(), ProtocolError) << text;
  }
  // Links nested deeper than the limit.
  Json deep{{"task", "t"}};
  for (int i = 0; i <= kMaxSignatureDepth; ++i) deep = Json{{"task", "t"}, {"options", {{"link", {deep}}}}};
  EXPECT_THROW(signature_from_json(deep), ProtocolError);
}

// ---- What a canvas sends (no worker: the messages are read from the broker) ------------------------------------

AppOptions fresh_memory(const std::string& suffix = {}) {
  static std::atomic<int> n{0};
  const auto* info = ::testing::UnitTest::GetInstance()->current_test_info();
  const std::string name = std::string(info->test_suite_name()) + "." + info->name() + "." +
                           std::to_string(n.fetch_add(1)) + suffix;
  return AppOptions{.broker = "memory://" + name, .backend = "memory://" + name};
}

std::vector<TaskMessage> take_all(App& app, std::size_t count) {
  const std::vector<std::string> queues{"celery"};
  std::vector<TaskMessage> out;
  for (std::size_t i = 0; i < count; ++i) {
    auto d = app.broker().reserve(queues, 10s, std::chrono::steady_clock::now() + kLong);
    if (!d) throw std::runtime_error("a message is missing");
    out.push_back(decode_envelope(envelope_of(*d)));
    app.broker().ack(*d);
  }
  return out;
}

TEST(CanvasMessages, AChainTravelsAsOneMessageWithTheRestReversed) {
  App app(fresh_memory());
  auto add_t = app.task<&add>("t.add");
  auto echo_t = app.task<&echo>("t.echo");
  Signature last = add_t.s(4);
  last.options.task_id = "last";
  Chain c = chain(add_t.s(1, 2), add_t.s(3), last);
  c.link_error.push_back(echo_t.s());
  AsyncResult r = c.apply_async(app);
  EXPECT_EQ(r.id(), "last");
  const TaskMessage m = take_all(app, 1)[0];
  EXPECT_EQ(m.task, "t.add");
  EXPECT_EQ(m.args, Json::array({1, 2}));
  EXPECT_EQ(m.root_id, m.id);
  ASSERT_TRUE(m.chain.is_array());
  ASSERT_EQ(m.chain.size(), 2u);
  EXPECT_EQ(m.chain[0]["args"], Json::array({4}));  // the last task first
  EXPECT_EQ(m.chain[0]["options"]["task_id"], "last");
  EXPECT_EQ(m.chain[1]["args"], Json::array({3}));
  EXPECT_TRUE(m.chain[1]["options"]["task_id"].is_string());  // every id is known up front
  // link_error goes on every task of the chain.
  ASSERT_TRUE(m.errbacks.is_array());
  EXPECT_EQ(m.errbacks[0]["task"], "t.echo");
  EXPECT_EQ(m.chain[1]["options"]["link_error"][0]["task"], "t.echo");
  EXPECT_TRUE(m.chord.is_null());
  EXPECT_THROW(Chain{}.apply_async(app), std::invalid_argument);
}

TEST(CanvasMessages, AChordsHeaderCarriesItsBodyAndItsSizeIsStoredFirst) {
  App app(fresh_memory());
  auto add_t = app.task<&add>("t.add");
  auto tsum_t = app.task<&tsum>("t.tsum");
  Group header = group(add_t.s(1, 1), add_t.s(2, 2), add_t.s(3, 3));
  header.id = "g-1";
  AsyncResult body = chord(header, tsum_t.s()).apply_async(app);
  EXPECT_EQ(app.backend().read("chord:g-1:size"), "3");
  const std::vector<TaskMessage> ms = take_all(app, 3);
  GroupResult members = GroupResult::restore(app, "g-1");
  ASSERT_EQ(members.size(), 3u);
  for (int i = 0; i < 3; ++i) {
    EXPECT_EQ(ms[i].group, "g-1");
    EXPECT_EQ(ms[i].group_index, i);
    EXPECT_EQ(ms[i].id, members.results()[i].id());
    EXPECT_EQ(ms[i].root_id, ms[0].id);
    EXPECT_EQ(ms[i].chord["task"], "t.tsum");
    EXPECT_EQ(ms[i].chord["options"]["task_id"], body.id());
  }
  EXPECT_THROW(GroupResult::restore(app, "no-such-group"), weft::Error);
  Group too_big;
  too_big.tasks.assign(kMaxGroupSize + 1, add_t.s(1, 1));
  EXPECT_THROW(too_big.apply_async(app), std::invalid_argument);
  EXPECT_THROW(chord(too_big, tsum_t.s()).apply_async(app), std::invalid_argument);
  EXPECT_THROW(chord(group(add_t.s(1, 1)), Signature{}).apply_async(app), std::invalid_argument);
  EXPECT_EQ(app.broker().size("celery"), 0u);  // nothing of a refused canvas was sent
}

// ---- Run by workers, on memory:// and sqlite:// ---------------------------------------------------------------

class Canvas : public ::testing::TestWithParam<std::string> {
 protected:
  AppOptions options() {
    if (GetParam() == "memory") return fresh_memory();
    const std::string url = "sqlite://" + dir_.db();
    return AppOptions{.broker = url, .backend = url};
  }

 private:
  weft::test::TempDir dir_;
};

// An App with the test tasks and a running worker of two threads.
struct Env {
  explicit Env(AppOptions o)
      : app(std::move(o)),
        add_t(app.task<&add>("t.add")),
        mul_t(app.task<&mul>("t.mul")),
        tsum_t(app.task<&tsum>("t.tsum")),
        scaled_t(app.task<&scaled_sum>("t.scaled_sum")),
        boom_t(app.task<&boom>("t.boom")),
        echo_t(app.task<&echo>("t.echo")),
        worker(app, {.concurrency = 2}) {
    worker.start();
  }
  App app;
  Task<&add> add_t;
  Task<&mul> mul_t;
  Task<&tsum> tsum_t;
  Task<&scaled_sum> scaled_t;
  Task<&boom> boom_t;
  Task<&echo> echo_t;
  Worker worker;
};

Signature with_id(Signature s, std::string id) {
  s.options.task_id = std::move(id);
  return s;
}

TEST_P(Canvas, AChainPassesEachResultToTheNextTask) {
  Env env(options());
  Signature first = with_id(env.add_t.s(1, 2), "first");
  AsyncResult r = chain(first, env.add_t.s(3), env.mul_t.s(4)).apply_async(env.app);
  EXPECT_EQ(r.get<int>(kLong), 24);  // ((1 + 2) + 3) * 4
  EXPECT_EQ(env.app.result("first").get<int>(kLong), 3);
  // A chain of one is a single call.
  EXPECT_EQ(chain(env.add_t.s(5, 6)).apply_async(env.app).get<int>(kLong), 11);
}

TEST_P(Canvas, AnImmutableSignatureInAChainIgnoresThePreviousResult) {
  Env env(options());
  AsyncResult r = chain(env.add_t.s(1, 2), env.add_t.si(10, 20), env.add_t.s(5)).apply_async(env.app);
  EXPECT_EQ(r.get<int>(kLong), 35);
}

TEST_P(Canvas, AFailingMiddleTaskFailsTheRestOfTheChainInsteadOfHanging) {
  Env env(options());
  Signature middle = with_id(env.boom_t.s(), "middle");
  Signature last = with_id(env.add_t.s(1), "last");
  Chain c = chain(env.add_t.s(3, 4), middle, last);
  c.link_error.push_back(with_id(env.echo_t.s(), "errback"));
  AsyncResult r = c.apply_async(env.app);
  try {
    r.get<int>(kLong);
    FAIL() << "the chain's last task succeeded";
  } catch (const weft::RemoteError& e) {
    EXPECT_NE(e.type().find("invalid_argument"), std::string::npos) << e.type();
    EXPECT_EQ(e.message(), "boom 7");  // the middle task's own error
  }
  EXPECT_EQ(env.app.result("middle").state(), State::failure);
  // The chain's link_error is called once, with the id of the task that failed.
  EXPECT_EQ(env.app.result("errback").get<std::string>(kLong), "middle");
}

TEST_P(Canvas, AGroupOfTwentyReturnsItsResultsInOrder) {
  Env env(options());
  Group g;
  for (int i = 0; i < 20; ++i) g.tasks.push_back(env.add_t.s(i, i));
  GroupResult r = g.apply_async(env.app);
  ASSERT_EQ(r.size(), 20u);
  const std::vector<int> v = r.get<int>(kLong);
  for (int i = 0; i < 20; ++i) EXPECT_EQ(v[i], 2 * i);
  EXPECT_TRUE(r.ready());
  EXPECT_TRUE(r.successful());
  EXPECT_FALSE(r.failed());
  EXPECT_EQ(r.completed_count(), 20u);
  // Any client can find the group again by its id.
  GroupResult again = GroupResult::restore(env.app, r.id());
  EXPECT_EQ(again.get(kLong), r.get(kLong));
}

TEST_P(Canvas, AnEmptyGroupIsReadyAtOnce) {
  Env env(options());
  GroupResult r = Group{}.apply_async(env.app);
  EXPECT_EQ(r.size(), 0u);
  EXPECT_TRUE(r.get(kLong).empty());
  EXPECT_TRUE(r.ready());
  EXPECT_TRUE(r.successful());
}

TEST_P(Canvas, AGroupWithAFailureThrowsTheFirstFailure) {
  Env env(options());
  GroupResult r = group(env.add_t.s(1, 1), env.boom_t.s(2), env.boom_t.s(3)).apply_async(env.app);
  try {
    r.get(kLong);
    FAIL() << "the group succeeded";
  } catch (const weft::RemoteError& e) {
    EXPECT_EQ(e.message(), "boom 2");
  }
  // Wait for the last member too before looking at the counts.
  EXPECT_THROW(r.results()[2].get_json(kLong), weft::RemoteError);
  EXPECT_TRUE(r.ready());
  EXPECT_TRUE(r.failed());
  EXPECT_FALSE(r.successful());
  EXPECT_EQ(r.completed_count(), 1u);
}

TEST_P(Canvas, AChordCallsItsBodyWithTheHeadersResults) {
  Env env(options());
  Group header;
  for (int i = 0; i < 10; ++i) header.tasks.push_back(env.add_t.s(i, i));
  AsyncResult r = chord(header, env.tsum_t.s()).apply_async(env.app);
  EXPECT_EQ(r.get<int>(kLong), 90);
  // A body with arguments of its own gets the results first; immutable, it gets none.
  AsyncResult with_args = chord(group(env.add_t.s(1, 1), env.add_t.s(2, 2)), env.scaled_t.s(10)).apply_async(env.app);
  EXPECT_EQ(with_args.get<int>(kLong), 60);  // scaled_sum([2, 4], 10)
  AsyncResult immutable = chord(group(env.add_t.s(1, 1)), env.echo_t.si(std::string("done"))).apply_async(env.app);
  EXPECT_EQ(immutable.get<std::string>(kLong), "done");
}

TEST_P(Canvas, AChordWithAnEmptyHeaderCallsItsBodyWithNoResults) {
  Env env(options());
  EXPECT_EQ(chord(Group{}, env.tsum_t.s()).apply_async(env.app).get<int>(kLong), 0);
}

TEST_P(Canvas, AChordWithAFailingPartFailsItsBody) {
  Env env(options());
  Signature body = env.tsum_t.s();
  body.link_error.push_back(with_id(env.echo_t.s(), "body-errback"));
  Signature bad = with_id(env.boom_t.s(5), "bad-part");
  AsyncResult r = chord(group(env.add_t.s(1, 1), bad, env.add_t.s(2, 2)), body).apply_async(env.app);
  try {
    r.get<int>(kLong);
    FAIL() << "the chord's body succeeded";
  } catch (const weft::RemoteError& e) {
    EXPECT_EQ(e.type(), "ChordError");
    EXPECT_NE(e.message().find("bad-part"), std::string::npos) << e.message();
    EXPECT_NE(e.message().find("boom 5"), std::string::npos) << e.message();
  }
  EXPECT_EQ(env.app.result("body-errback").get<std::string>(kLong), r.id());
}

TEST_P(Canvas, ALinkCallbackGetsTheResult) {
  Env env(options());
  Signature cb = with_id(env.mul_t.s(10), "callback");
  AsyncResult r = apply(env.app, on_success(env.add_t.s(2, 3), cb));
  EXPECT_EQ(r.get<int>(kLong), 5);
  EXPECT_EQ(env.app.result("callback").get<int>(kLong), 50);
  // An immutable callback keeps its own arguments; a chain's link is called with the last result.
  Chain c = chain(env.add_t.s(1, 1), env.add_t.s(1));
  c.link.push_back(with_id(env.add_t.s(100), "chain-callback"));
  EXPECT_EQ(c.apply_async(env.app).get<int>(kLong), 3);
  EXPECT_EQ(env.app.result("chain-callback").get<int>(kLong), 103);
  apply(env.app, on_success(env.add_t.s(0, 0), with_id(env.add_t.si(7, 8), "immutable-callback")));
  EXPECT_EQ(env.app.result("immutable-callback").get<int>(kLong), 15);
}

TEST_P(Canvas, ALinkErrorGetsTheFailedTasksId) {
  Env env(options());
  Signature failing = with_id(env.boom_t.s(1), "failing");
  Signature never = with_id(env.mul_t.s(2), "never");
  AsyncResult r = apply(env.app, on_success(on_error(failing, with_id(env.echo_t.s(), "errback")), never));
  EXPECT_THROW(r.get<int>(kLong), weft::RemoteError);
  EXPECT_EQ(env.app.result("errback").get<std::string>(kLong), "failing");
  // The success callback was never sent: once the worker has stopped (its tasks and what follows them
  // finished), it is neither run nor waiting in the broker.
  env.worker.stop();
  EXPECT_EQ(env.app.result("never").state(), State::pending);
  EXPECT_EQ(env.app.broker().size("celery"), 0u);
}

TEST_P(Canvas, AChordPartDeliveredTwiceIsCountedOnce) {
  // The header's messages are each published twice before any worker runs (as after a lost lease). Counting
  // a part twice would complete the chord early, with a part's result missing.
  const AppOptions o = options();
  App client(o);  // kept open: a memory:// broker lives while someone holds it
  auto add_t = client.task<&add>("t.add");
  auto tsum_t = client.task<&tsum>("t.tsum");
  const std::string body_id =
      chord(group(add_t.s(1, 1), add_t.s(2, 2), add_t.s(3, 3)), tsum_t.s()).apply_async(client).id();
  const std::vector<std::string> queues{"celery"};
  std::vector<std::string> envelopes;
  for (int i = 0; i < 3; ++i) {
    auto d = client.broker().reserve(queues, 10s, std::chrono::steady_clock::now() + kLong);
    ASSERT_TRUE(d);
    envelopes.push_back(envelope_of(*d));  // memory:// carries the message itself
    client.broker().ack(*d);
  }
  for (int copy = 0; copy < 2; ++copy) {
    for (const std::string& e : envelopes) client.broker().publish("celery", e, 0, std::nullopt);
  }
  Env env(o);
  EXPECT_EQ(env.app.result(body_id).get<int>(kLong), 12);
}

INSTANTIATE_TEST_SUITE_P(Backends, Canvas, ::testing::Values("memory", "sqlite"),
                         [](const auto& p) { return std::string(p.param); });

}  // namespace
