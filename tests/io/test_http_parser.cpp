// RequestParser and the HTTP message helpers: loop-independent, fed from strings.
#include <gtest/gtest.h>

#include <string>
#include <string_view>
#include <vector>

#include "weft/io/http/message.hpp"
#include "weft/io/http/request_parser.hpp"

namespace http = weft::io::http;

namespace {

// Feeds `input` in pieces of `piece` bytes (0: all at once) and collects the complete requests; stops at an
// error. Returns the number of bytes consumed.
std::size_t feed_all(http::RequestParser& p, std::string_view input, std::size_t piece,
                     std::vector<http::Request>& out) {
  std::size_t at = 0;
  std::size_t guard = 0;
  while (at < input.size() && guard++ < input.size() + 16) {
    std::size_t n = piece == 0 ? input.size() - at : std::min(piece, input.size() - at);
    std::size_t used = p.feed(input.data() + at, n);
    EXPECT_LE(used, n);
    at += used;
    if (p.failed()) break;
    if (p.done()) out.push_back(p.take());
  }
  return at;
}

http::Request parse_one(std::string_view input, std::size_t piece = 0) {
  http::RequestParser p;
  std::vector<http::Request> out;
  feed_all(p, input, piece, out);
  EXPECT_FALSE(p.failed()) << p.error().message;
  EXPECT_EQ(out.size(), 1u);
  return out.empty() ? http::Request() : std::move(out.front());
}

http::ParseError parse_error(std::string_view input, http::ParserLimits limits = {}) {
  http::RequestParser p(limits);
  std::vector<http::Request> out;
  feed_all(p, input, 0, out);
  EXPECT_TRUE(p.failed());
  return p.error();
}

}  // namespace

TEST(HttpParser, SimpleGet) {
  http::Request r = parse_one("GET /index.html?x=1&y=2 HTTP/1.1\r\nHost: example.org\r\nX-Long:  padded value \t\r\n"
                              "accept: */*\r\n\r\n");
  EXPECT_EQ(r.method(), "GET");
  EXPECT_EQ(r.target(), "/index.html?x=1&y=2");
  EXPECT_EQ(r.path(), "/index.html");
  EXPECT_EQ(r.query(), "x=1&y=2");
  EXPECT_EQ(r.version_minor(), 1);
  ASSERT_EQ(r.header_count(), 3u);
  EXPECT_EQ(r.header_at(0).name, "Host");
  EXPECT_EQ(r.header("HOST").value_or(""), "example.org");
  EXPECT_EQ(r.header("x-long").value_or(""), "padded value");
  EXPECT_EQ(r.header("Accept").value_or(""), "*/*");
  EXPECT_FALSE(r.header("Cookie").has_value());
  EXPECT_TRUE(r.body().empty());
  EXPECT_TRUE(r.keep_alive());
}

TEST(HttpParser, EveryPieceSizeGivesTheSameRequest) {
  const std::string input =
      "POST /submit HTTP/1.1\r\nHost: h\r\nContent-Type: text/plain\r\nContent-Length: 11\r\n\r\nhello world";
  for (std::size_t piece : {1u, 2u, 3u, 7u, 16u, 0u}) {
    http::Request r = parse_one(input, piece);
    EXPECT_EQ(r.method(), "POST") << "piece " << piece;
    EXPECT_EQ(r.target(), "/submit") << "piece " << piece;
    EXPECT_EQ(r.header("content-type").value_or(""), "text/plain") << "piece " << piece;
    EXPECT_EQ(r.body(), "hello world") << "piece " << piece;
  }
}

TEST(HttpParser, PipelinedRequestsComeOutOneAtATime) {
  const std::string first = "GET /a HTTP/1.1\r\nHost: h\r\n\r\n";
  const std::string second = "POST /b HTTP/1.1\r\nContent-Length: 3\r\n\r\nxyz";
  const std::string third = "GET /c HTTP/1.1\r\n\r\n";
  const std::string all = first + second + third;
  http::RequestParser p;
  std::size_t used = p.feed(all);
  EXPECT_EQ(used, first.size());
  ASSERT_TRUE(p.done());
  EXPECT_EQ(p.request().target(), "/a");
  EXPECT_EQ(p.feed(all.data() + used, all.size() - used), 0u) << "nothing is consumed until next()";
  p.next();
  std::size_t used2 = p.feed(all.data() + used, all.size() - used);
  EXPECT_EQ(used2, second.size());
  ASSERT_TRUE(p.done());
  EXPECT_EQ(p.request().target(), "/b");
  EXPECT_EQ(p.request().body(), "xyz");
  p.next();
  EXPECT_TRUE(p.idle());
  EXPECT_EQ(p.feed(all.data() + used + used2, third.size()), third.size());
  ASSERT_TRUE(p.done());
  EXPECT_EQ(p.request().target(), "/c");
  EXPECT_TRUE(p.request().body().empty());
}

TEST(HttpParser, ChunkedBodyIsDecoded) {
  const std::string input =
      "POST /up HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n7;ext=1\r\n, world\r\n0\r\n"
      "X-Trailer: dropped\r\n\r\n";
  for (std::size_t piece : {1u, 5u, 0u}) {
    http::Request r = parse_one(input, piece);
    EXPECT_EQ(r.body(), "hello, world") << "piece " << piece;
    EXPECT_FALSE(r.header("X-Trailer").has_value());
  }
}

TEST(HttpParser, KeepAliveFollowsTheVersionAndConnectionHeader) {
  EXPECT_TRUE(parse_one("GET / HTTP/1.1\r\n\r\n").keep_alive());
  EXPECT_FALSE(parse_one("GET / HTTP/1.1\r\nConnection: close\r\n\r\n").keep_alive());
  EXPECT_FALSE(parse_one("GET / HTTP/1.1\r\nConnection: foo, Close\r\n\r\n").keep_alive());
  http::Request old = parse_one("GET / HTTP/1.0\r\n\r\n");
  EXPECT_EQ(old.version_minor(), 0);
  EXPECT_FALSE(old.keep_alive());
  EXPECT_TRUE(parse_one("GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n").keep_alive());
}

TEST(HttpParser, HeadAtTheLimitPassesOneByteMoreIs431) {
  http::ParserLimits limits;
  limits.max_header_bytes = 256;
  const std::string start = "GET / HTTP/1.1\r\nX-Pad: ";
  const std::string end = "\r\n\r\n";
  std::string exact = start + std::string(limits.max_header_bytes - start.size() - end.size(), 'a') + end;
  ASSERT_EQ(exact.size(), limits.max_header_bytes);
  {
    http::RequestParser p(limits);
    EXPECT_EQ(p.feed(exact), exact.size());
    EXPECT_TRUE(p.done());
  }
  std::string over = start + std::string(limits.max_header_bytes - start.size() - end.size() + 1, 'a') + end;
  http::ParseError e = parse_error(over, limits);
  EXPECT_EQ(e.kind, http::ParseError::Kind::headers_too_large);
  EXPECT_EQ(e.status(), 431);
}

TEST(HttpParser, EndlessHeadIsCaughtAtTheLimitWhateverThePieceSize) {
  http::ParserLimits limits;
  limits.max_header_bytes = 1000;
  std::string endless = "GET / HTTP/1.1\r\nX-Pad: " + std::string(5000, 'b');
  for (std::size_t piece : {1u, 100u, 0u}) {
    http::RequestParser p(limits);
    std::vector<http::Request> out;
    std::size_t used = feed_all(p, endless, piece, out);
    EXPECT_TRUE(p.failed()) << "piece " << piece;
    EXPECT_EQ(p.error().status(), 431);
    EXPECT_LE(used, limits.max_header_bytes) << "piece " << piece;
  }
}

TEST(HttpParser, TooManyHeaderLinesIs431) {
  http::ParserLimits limits;
  limits.max_headers = 3;
  EXPECT_TRUE(parse_one("GET / HTTP/1.1\r\nA: 1\r\nB: 2\r\nC: 3\r\n\r\n").header("C").has_value());
  http::RequestParser p(limits);
  p.feed("GET / HTTP/1.1\r\nA: 1\r\nB: 2\r\nC: 3\r\nD: 4\r\n\r\n");
  ASSERT_TRUE(p.failed());
  EXPECT_EQ(p.error().status(), 431);
}

TEST(HttpParser, DeclaredBodyAboveTheLimitIs413BeforeAnyBodyByte) {
  http::ParserLimits limits;
  limits.max_body_bytes = 10;
  http::RequestParser p(limits);
  const std::string head = "POST / HTTP/1.1\r\nContent-Length: 11\r\n\r\n";
  p.feed(head);
  ASSERT_TRUE(p.failed());
  EXPECT_EQ(p.error().kind, http::ParseError::Kind::body_too_large);
  EXPECT_EQ(p.error().status(), 413);
  http::RequestParser ok(limits);
  const std::string fits = "POST / HTTP/1.1\r\nContent-Length: 10\r\n\r\n0123456789";
  EXPECT_EQ(ok.feed(fits), fits.size());
  EXPECT_TRUE(ok.done());
}

TEST(HttpParser, ChunkedBodyAboveTheLimitIs413) {
  http::ParserLimits limits;
  limits.max_body_bytes = 8;
  EXPECT_EQ(parse_error("POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n5\r\nworld\r\n0\r\n\r\n",
                        limits)
                .status(),
            413);
}

TEST(HttpParser, MalformedInputIs400) {
  EXPECT_EQ(parse_error("HELLO\r\n\r\n").status(), 400);
  EXPECT_EQ(parse_error("GET / HTTP/1.1\r\nNo colon here\r\n\r\n").status(), 400);
  EXPECT_EQ(parse_error("GET / HTTP/1.1\r\nContent-Length: x\r\n\r\n").status(), 400);
  // Both framings at once: the request-smuggling guard.
  EXPECT_EQ(parse_error("POST / HTTP/1.1\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n").status(),
            400);
  http::RequestParser p;
  p.feed("\x16\x03\x01\x02\x00", 5);  // a TLS handshake on the plain port
  EXPECT_TRUE(p.failed());
  EXPECT_EQ(p.feed("GET / HTTP/1.1\r\n\r\n"), 0u) << "an error is final";
  p.reset();
  EXPECT_EQ(p.feed("GET / HTTP/1.1\r\n\r\n"), 18u);
  EXPECT_TRUE(p.done());
}

TEST(HttpParser, HttpMajorVersionOtherThanOneIs505) {
  EXPECT_EQ(parse_error("GET / HTTP/2.0\r\n\r\n").status(), 505);
}

TEST(HttpParser, ExpectContinueIsReportedWhileTheBodyIsMissing) {
  http::RequestParser p;
  p.feed("PUT /f HTTP/1.1\r\nExpect: 100-continue\r\nContent-Length: 4\r\n\r\n");
  EXPECT_TRUE(p.head_complete());
  EXPECT_FALSE(p.done());
  EXPECT_TRUE(p.expects_continue());
  p.feed("data");
  EXPECT_TRUE(p.done());
  EXPECT_FALSE(p.expects_continue());
  EXPECT_EQ(p.request().body(), "data");
}

TEST(HttpParser, IdleAndHeadCompleteTrackTheRequest) {
  http::RequestParser p;
  EXPECT_TRUE(p.idle());
  p.feed("GET / HT");
  EXPECT_FALSE(p.idle());
  EXPECT_FALSE(p.head_complete());
  p.feed("TP/1.1\r\n\r\n");
  EXPECT_TRUE(p.done());
  EXPECT_FALSE(p.idle());
  p.next();
  EXPECT_TRUE(p.idle());
}

TEST(HttpParser, UpgradeIsFlagged) {
  http::RequestParser p;
  p.feed("GET /chat HTTP/1.1\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n");
  ASSERT_TRUE(p.done());
  EXPECT_TRUE(p.upgrade());
}

TEST(HttpParser, RequestsCopyAndMoveWithTheirViews) {
  http::Request a = parse_one("GET /copy HTTP/1.1\r\nK: v\r\n\r\n");
  http::Request b = a;
  http::Request c = std::move(a);
  EXPECT_EQ(b.target(), "/copy");
  EXPECT_EQ(c.header("k").value_or(""), "v");
  c.clear();
  EXPECT_EQ(c.method(), "GET");
  EXPECT_EQ(c.target(), "/");
  EXPECT_EQ(c.header_count(), 0u);
}

TEST(HttpMessage, ResponseSerialization) {
  std::string out;
  http::Response r = http::Response::text(404, "missing");
  r.set_header("X-Id", "7").set_header("Content-Length", "999");  // the serializer writes its own length
  http::ResponseContext ctx;
  ctx.server = "weft";
  http::append_response(out, r, ctx);
  EXPECT_EQ(out,
            "HTTP/1.1 404 Not Found\r\nServer: weft\r\nContent-Type: text/plain; charset=utf-8\r\nX-Id: 7\r\n"
            "Content-Length: 7\r\n\r\nmissing");
  out.clear();
  ctx.close = true;
  ctx.head = true;
  http::append_response(out, http::Response(200, "body"), ctx);
  EXPECT_EQ(out, "HTTP/1.1 200 OK\r\nServer: weft\r\nContent-Length: 4\r\nConnection: close\r\n\r\n");
  out.clear();
  http::append_response(out, http::Response(204), {});
  EXPECT_EQ(out, "HTTP/1.1 204 No Content\r\n\r\n");
  out.clear();
  http::ResponseContext old;
  old.http10_keep_alive = true;
  http::append_response(out, http::Response(200, "x"), old);
  EXPECT_EQ(out, "HTTP/1.1 200 OK\r\nContent-Length: 1\r\nConnection: keep-alive\r\n\r\nx");
  out = "prefix|";
  http::append_response(out, http::Response::prebuilt("RAW BYTES"), ctx);
  EXPECT_EQ(out, "prefix|RAW BYTES");
}

TEST(HttpMessage, RequestSerializationAndReasonPhrases) {
  http::Request r("POST", "/api?q=1");
  r.add_header("Accept", "*/*");
  r.body() = "{}";
  std::string out;
  http::append_request(out, r, "localhost:8080");
  EXPECT_EQ(out, "POST /api?q=1 HTTP/1.1\r\nAccept: */*\r\nHost: localhost:8080\r\nContent-Length: 2\r\n\r\n{}");
  EXPECT_EQ(http::reason_phrase(200), "OK");
  EXPECT_EQ(http::reason_phrase(431), "Request Header Fields Too Large");
  EXPECT_EQ(http::reason_phrase(799), "Unknown");
  EXPECT_TRUE(http::has_token("keep-alive, Upgrade", "upgrade"));
  EXPECT_FALSE(http::has_token("keep-alive", "close"));
  std::string_view date = http::http_date();
  EXPECT_EQ(date.size(), 29u);
  EXPECT_TRUE(date.ends_with(" GMT"));
}
