// io::http client: URL parsing, http::get and keep-alive Connections against io::http::Server, and against
// scripted raw servers for chunked, until-close, interim and broken responses, limits and timeouts.
#include <gtest/gtest.h>

#include <chrono>
#include <string>
#include <string_view>

#include "weft/io/group.hpp"
#include "weft/io/http/client.hpp"
#include "weft/io/http/server.hpp"
#include "weft/io/loop.hpp"
#include "weft/io/socket.hpp"

namespace io = weft::io;
namespace http = weft::io::http;
using io::Task;
using namespace std::chrono_literals;

namespace {

// Accepts one connection, reads one request head, writes `reply`, then closes (or, with `hold`, waits for the
// client to close first).
Task<void> scripted_server(io::Listener& l, std::string reply, bool hold = false) {
  io::Stream s = co_await l.accept();
  std::string in;
  char buf[1024];
  for (int guard = 0; guard < 1000 && in.find("\r\n\r\n") == std::string::npos; ++guard) {
    std::size_t n = co_await s.read(buf, sizeof buf);
    if (n == 0) co_return;
    in.append(buf, n);
  }
  co_await s.write_all(reply);
  if (hold) {
    for (int guard = 0; guard < 1000; ++guard) {
      if (co_await s.read(buf, sizeof buf) == 0) break;
    }
  }
}

class HttpClient : public ::testing::TestWithParam<io::Backend> {
 protected:
  template <class Body>
  void run(Body body) {
    io::LoopOptions lo;
    lo.backend = GetParam();
    io::run(io::wait_for(body(), 30s), lo);
  }
};

}  // namespace

TEST(HttpUrl, ParsesHostPortAndTarget) {
  http::Url u = http::parse_url("http://example.org:8080/a/b?x=1#frag");
  EXPECT_EQ(u.host, "example.org");
  EXPECT_EQ(u.port, 8080);
  EXPECT_EQ(u.target, "/a/b?x=1");
  EXPECT_EQ(u.authority(), "example.org:8080");
  http::Url d = http::parse_url("HTTP://127.0.0.1");
  EXPECT_EQ(d.port, 80);
  EXPECT_EQ(d.target, "/");
  EXPECT_EQ(d.authority(), "127.0.0.1");
  http::Url v6 = http::parse_url("http://[::1]:81/x");
  EXPECT_EQ(v6.host, "::1");
  EXPECT_EQ(v6.authority(), "[::1]:81");
  EXPECT_THROW(http::parse_url("https://example.org/"), http::HttpError);
  EXPECT_THROW(http::parse_url("not a url"), http::HttpError);
  EXPECT_THROW(http::parse_url("/relative/path"), http::HttpError);
}

TEST_P(HttpClient, GetAndKeepAliveConnectionAgainstTheServer) {
  run([]() -> Task<void> {
    http::Server server([](const http::Request& req) {
      return http::Response::text(200, std::string(req.method()) + " " + std::string(req.target()) + " " + req.body());
    });
    io::Listener l = io::Listener::bind(io::Address::loopback(0));
    const std::uint16_t port = l.local_address().port();
    co_await io::task_group([&](io::TaskGroup& g) -> Task<void> {
      g.spawn(server.serve(l));
      http::Response r = co_await http::get("http://127.0.0.1:" + std::to_string(port) + "/hello?q=1");
      EXPECT_EQ(r.status, 200);
      EXPECT_EQ(r.body, "GET /hello?q=1 ");
      EXPECT_EQ(r.header("content-type").value_or(""), "text/plain; charset=utf-8");
      EXPECT_EQ(r.header("Server").value_or(""), "weft");

      http::Connection c = co_await http::Connection::connect("127.0.0.1", port);
      for (int i = 0; i < 3; ++i) {
        http::Response ri = co_await c.get("/n" + std::to_string(i));
        EXPECT_EQ(ri.body, "GET /n" + std::to_string(i) + " ");
        EXPECT_TRUE(c.is_open());
      }
      http::Request post("POST", "/form");
      post.body() = "a=b";
      EXPECT_EQ((co_await c.request(std::move(post))).body, "POST /form a=b");
      http::Request head("HEAD", "/h");
      http::Response hr = co_await c.request(std::move(head));
      EXPECT_EQ(hr.status, 200);
      EXPECT_TRUE(hr.body.empty());
      EXPECT_EQ((co_await c.get("/after-head")).body, "GET /after-head ");  // the HEAD left nothing unread
      EXPECT_EQ(server.stats().connections_accepted, 2u);  // the get() and the keep-alive connection
      server.stop();
    });
  });
}

TEST_P(HttpClient, ChunkedUntilCloseAndInterimResponses) {
  run([]() -> Task<void> {
    io::Listener l = io::Listener::bind(io::Address::loopback(0));
    const std::uint16_t port = l.local_address().port();
    const std::string base = "http://127.0.0.1:" + std::to_string(port);
    co_await io::task_group([&](io::TaskGroup& g) -> Task<void> {
      g.spawn(scripted_server(l,
                              "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n4\r\ndefg\r\n0\r\n\r\n",
                              true));
      http::Response r = co_await http::get(base + "/chunked");
      EXPECT_EQ(r.body, "abcdefg");
      co_return;
    });
    co_await io::task_group([&](io::TaskGroup& g) -> Task<void> {
      g.spawn(scripted_server(l, "HTTP/1.0 200 OK\r\nContent-Type: text/html\r\n\r\n<p>until close</p>"));
      http::Connection c = co_await http::Connection::connect("127.0.0.1", port);
      http::Response r = co_await c.get("/eof");
      EXPECT_EQ(r.body, "<p>until close</p>");
      EXPECT_EQ(r.content_type, "text/html");
      EXPECT_EQ(r.version_minor, 0);
      EXPECT_FALSE(c.is_open());  // a body delimited by the close cannot be followed by another response
    });
    co_await io::task_group([&](io::TaskGroup& g) -> Task<void> {
      g.spawn(scripted_server(
          l, "HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 201 Created\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok"));
      http::Response r = co_await http::get(base + "/interim");
      EXPECT_EQ(r.status, 201);
      EXPECT_EQ(r.body, "ok");
    });
  });
}

TEST_P(HttpClient, BrokenOversizedAndTruncatedResponsesAreHttpErrors) {
  run([]() -> Task<void> {
    io::Listener l = io::Listener::bind(io::Address::loopback(0));
    const std::string base = "http://127.0.0.1:" + std::to_string(l.local_address().port());
    struct Case {
      std::string reply;
      const char* what;
    };
    const Case cases[] = {
        {"NOT HTTP AT ALL\r\n\r\n", "garbage"},
        {"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n" + std::string(100, 'x'), "body above the limit"},
        {"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nshort", "closed before the end"},
    };
    http::ClientOptions small;
    small.max_body_bytes = 50;
    for (const Case& c : cases) {
      bool threw = false;
      co_await io::task_group([&](io::TaskGroup& g) -> Task<void> {
        g.spawn(scripted_server(l, c.reply));
        try {
          co_await http::get(base + "/", small);
        } catch (const http::HttpError&) {
          threw = true;
        }
      });
      EXPECT_TRUE(threw) << c.what;
    }
  });
}

TEST_P(HttpClient, TimeoutWhenTheServerNeverAnswers) {
  run([]() -> Task<void> {
    io::Listener l = io::Listener::bind(io::Address::loopback(0));
    const std::uint16_t port = l.local_address().port();
    http::ClientOptions quick;
    quick.timeout = 150ms;
    bool timed_out = false;
    co_await io::task_group([&](io::TaskGroup& g) -> Task<void> {
      io::Stream accepted;
      g.spawn([](io::Listener& lst, io::Stream& keep) -> Task<void> { keep = co_await lst.accept(); }(l, accepted));
      http::Connection c = co_await http::Connection::connect("127.0.0.1", port, quick);
      try {
        co_await c.get("/silence");
      } catch (const weft::Timeout&) {
        timed_out = true;
      }
      EXPECT_FALSE(c.is_open());  // a failed request leaves the connection closed
    });
    EXPECT_TRUE(timed_out);
  });
}

INSTANTIATE_TEST_SUITE_P(Backends, HttpClient, ::testing::Values(io::Backend::uring, io::Backend::epoll),
                         [](const ::testing::TestParamInfo<io::Backend>& param) {
                           return std::string(io::to_string(param.param));
                         });
