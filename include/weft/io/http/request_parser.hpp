#pragma once
// RequestParser: an incremental HTTP/1.x request parser (on Debian's http-parser), independent of any event
// loop: the async server, a threaded server and the fuzzer all drive it the same way.
//
//   RequestParser p;
//   while (have bytes) {
//     std::size_t used = p.feed(data, size);      // stops at the end of one request
//     if (p.failed()) { answer p.error().status(); close; }
//     if (p.done())   { handle(p.request()); p.next(); }
//     data += used; size -= used;                  // the rest belongs to the next (pipelined) request
//   }
//
// Pipelined requests come out one at a time: feed() consumes bytes up to the end of the current request and
// no further, so the caller answers it and calls next() before feeding the rest. Everything a Request holds is
// copied out of the fed bytes: the caller's buffer may be reused as soon as feed() returns.
//
// Limits (ParserLimits) bound what one request may cost: the request line and headers together
// (max_header_bytes → 431), the number of header lines (→ 431), the decoded body (max_body_bytes → 413, found
// from Content-Length before any body byte is read when it is declared). Chunked bodies are decoded; chunk
// trailers are read and dropped (they count against max_header_bytes). A request with both Content-Length and
// Transfer-Encoding is rejected (400), as a guard against request smuggling.
//
// Thread safety: one parser belongs to one connection; no shared state.
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "weft/io/http/message.hpp"

namespace weft::io::http {

struct ParserLimits {
  /// Request line plus header lines, with their line ends, including the blank line.
  std::size_t max_header_bytes = 8192;
  /// The decoded body.
  std::size_t max_body_bytes = std::size_t{1} << 20;
  /// Header lines.
  std::size_t max_headers = 100;
};

/// Why a request was rejected, and the status to answer with.
struct ParseError {
  enum class Kind : std::uint8_t {
    none,
    bad_request,            // 400: not HTTP, a malformed line, conflicting framing headers...
    headers_too_large,      // 431: max_header_bytes or max_headers exceeded
    body_too_large,         // 413: max_body_bytes exceeded
    version_not_supported,  // 505: HTTP major version other than 1
  };
  Kind kind = Kind::none;
  /// A short static description (never null; "" for none).
  const char* message = "";

  /// 400, 431, 413 or 505 (0 for none).
  int status() const noexcept;
  explicit operator bool() const noexcept { return kind != Kind::none; }
};

class RequestParser {
 public:
  explicit RequestParser(ParserLimits limits = {}) noexcept;
  /// Movable (not while inside feed()); not copyable.
  RequestParser(RequestParser&& other) noexcept;
  RequestParser& operator=(RequestParser&& other) noexcept;
  RequestParser(const RequestParser&) = delete;
  RequestParser& operator=(const RequestParser&) = delete;
  ~RequestParser() = default;

  /// Parses up to `size` bytes and returns how many it consumed: all of them, or fewer when a request ended
  /// (done()) or an error was found (failed()) before the end. Returns 0 without reading when done() or
  /// failed() is already true. Never throws (std::bad_alloc aside).
  std::size_t feed(const char* data, std::size_t size);
  std::size_t feed(std::string_view bytes) { return feed(bytes.data(), bytes.size()); }

  /// A complete request is ready: request()/take(), then next() (or take() alone) to go on.
  bool done() const noexcept { return done_; }
  /// The input is not an acceptable request; error() says why. Final until reset().
  bool failed() const noexcept { return error_.kind != ParseError::Kind::none; }
  const ParseError& error() const noexcept { return error_; }

  /// No byte of the next request has been consumed yet (between requests, or before the first).
  bool idle() const noexcept { return consumed_ == 0 && !done_; }
  /// The current request's line and headers are complete (its body may still be arriving).
  bool head_complete() const noexcept { return head_done_; }
  /// The current request's head is complete, asks for `Expect: 100-continue` and its body has not all arrived:
  /// a server should answer "100 Continue" before reading on.
  bool expects_continue() const noexcept { return expect_continue_ && head_done_ && !done_; }
  /// The completed request asks to switch protocols (CONNECT, or Upgrade): what follows it on the connection is
  /// not HTTP/1.1, so a server that does not switch must close after answering.
  bool upgrade() const noexcept { return upgrade_; }

  /// The complete request. Precondition: done().
  const Request& request() const noexcept { return request_; }
  /// Moves the complete request out and gets ready for the next one. Precondition: done().
  Request take();
  /// Discards the complete request, keeping its storage for the next one (no allocation in steady state).
  void next() noexcept;
  /// Back to the initial state (a new connection), keeping storage and limits.
  void reset() noexcept;

  const ParserLimits& limits() const noexcept { return limits_; }

 private:
  friend struct ParserCallbacks;
  void start_message() noexcept;
  void fail(ParseError::Kind kind, const char* message) noexcept;

  ParserLimits limits_;
  Request request_;
  ParseError error_;
  std::size_t consumed_ = 0;      // bytes of the current request consumed so far
  std::size_t head_bytes_ = 0;    // bytes of the current request's head consumed so far
  std::size_t trailer_bytes_ = 0; // bytes of chunk trailers (dropped)
  bool done_ = false;
  bool head_done_ = false;
  std::uint8_t last_ = 0;         // the last header callback: 0 none, 1 a name, 2 a value
  bool expect_continue_ = false;
  bool upgrade_ = false;
  // The http-parser state, kept opaque so that http_parser.h stays out of public headers (size checked in the
  // source file).
  alignas(8) unsigned char raw_[32];
};

}  // namespace weft::io::http
