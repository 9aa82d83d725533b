#pragma once
// HTTP/1.1 messages: Request (what a server receives, what a client sends), Response (the other way round),
// their serialization and the status reason phrases.
//
// A Request keeps its method, target and header names and values in one string and refers to them by offset,
// so parsing a request costs no allocation once a connection's Request has grown to its working size (the
// server reuses one per connection). Accessors return std::string_view into that storage: a view is valid
// until the Request is modified, cleared or destroyed.
//
// A Response is a plain value built by a handler: status, content type, extra headers and body. The server
// writes Content-Length (always, except where HTTP forbids a body) and Connection itself. For the fastest path a
// handler may return Response::prebuilt(bytes): complete response bytes written as they are.
//
// Thread safety: values; none is shared between threads by the library.
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace weft::io::http {

/// One header line: views of its name and value (value without surrounding whitespace).
struct Header {
  std::string_view name;
  std::string_view value;
};

/// ASCII case-insensitive comparison, as HTTP header names and tokens are compared.
bool iequals(std::string_view a, std::string_view b) noexcept;

/// True when the comma-separated header value `list` (e.g. of Connection) holds `token`, case-insensitively.
bool has_token(std::string_view list, std::string_view token) noexcept;

class RequestParser;
struct ParserCallbacks;

/// An HTTP/1.x request. Cheap to move; copies deep.
class Request {
 public:
  /// An empty GET / HTTP/1.1 request.
  Request() = default;
  /// A request line of `method` and `target` (origin form: "/path?query"), HTTP/1.1, no headers.
  Request(std::string_view method, std::string_view target);

  /// "GET", "POST", ...
  std::string_view method() const noexcept { return view(method_); }
  /// The request target as sent: "/path?query" (or an absolute URL, "*", "host:port" for CONNECT).
  std::string_view target() const noexcept { return view(target_); }
  /// The target up to '?' (or '#').
  std::string_view path() const noexcept;
  /// The target after '?', without it (empty when there is none).
  std::string_view query() const noexcept;
  /// The minor version: 1 for HTTP/1.1, 0 for HTTP/1.0. (The major version is always 1.)
  int version_minor() const noexcept { return minor_; }
  void set_version_minor(int minor) noexcept { minor_ = static_cast<std::uint8_t>(minor); }

  /// Number of header lines, and the i-th in order of arrival (i < header_count()).
  std::size_t header_count() const noexcept { return fields_.size(); }
  Header header_at(std::size_t i) const noexcept { return {view(fields_[i].name), view(fields_[i].value)}; }
  /// The value of the first header named `name` (case-insensitive), or nullopt.
  std::optional<std::string_view> header(std::string_view name) const noexcept;
  /// Appends a header line (for clients building a request). Invalidates views returned earlier.
  void add_header(std::string_view name, std::string_view value);

  /// The body, decoded (a chunked body arrives here without its chunk framing).
  const std::string& body() const noexcept { return body_; }
  std::string& body() noexcept { return body_; }

  /// Whether the client allows the connection to stay open after this request: HTTP/1.1 unless it sent
  /// `Connection: close`; HTTP/1.0 only with `Connection: keep-alive`.
  bool keep_alive() const noexcept;

  /// Forgets everything (back to an empty GET / HTTP/1.1) but keeps the allocated storage.
  void clear() noexcept;

 private:
  friend class RequestParser;
  friend struct ParserCallbacks;
  struct Span {
    std::uint32_t off = 0;
    std::uint32_t len = 0;
  };
  struct Field {
    Span name;
    Span value;
  };
  std::string_view view(Span s) const noexcept { return {text_.data() + s.off, s.len}; }
  Span append(std::string_view s);

  std::string text_ = "GET/";  // method, target, header names and values, referred to by Span
  Span method_{0, 3};
  Span target_{3, 1};
  std::vector<Field> fields_;
  std::string body_;
  std::uint8_t minor_ = 1;
};

/// The reason phrase of a status code ("Not Found"); "Unknown" for a code without one.
std::string_view reason_phrase(int status) noexcept;

/// An HTTP/1.x response.
class Response {
 public:
  int status = 200;
  /// Written as the Content-Type header when not empty.
  std::string content_type;
  /// Further header lines. The server writes Content-Length and Connection itself: lines with those names (and
  /// Transfer-Encoding) here are not written. (A parsed response from the client keeps every line here,
  /// except Content-Type, which goes to content_type.)
  std::vector<std::pair<std::string, std::string>> headers;
  std::string body;
  /// Parsed responses only: 1 for HTTP/1.1, 0 for HTTP/1.0.
  int version_minor = 1;

  Response() = default;
  explicit Response(int status_code, std::string body_text = {}, std::string type = {})
      : status(status_code), content_type(std::move(type)), body(std::move(body_text)) {}

  /// A text/plain (UTF-8) response.
  static Response text(int status, std::string body);
  /// A text/html (UTF-8) response.
  static Response html(int status, std::string body);
  /// Complete response bytes (status line, headers, body), written as they are: no header is added, so they
  /// must carry their own Content-Length, and they are written whole for a HEAD request too. The response
  /// keeps the connection open unless the request asked to close it (then the server closes after writing,
  /// without a `Connection: close` header). Hazard: only the view is stored — the bytes must stay
  /// valid until the server has written them (a static string is the intended use).
  static Response prebuilt(std::string_view bytes) {
    Response r;
    r.prebuilt_ = bytes;
    return r;
  }
  bool is_prebuilt() const noexcept { return prebuilt_.data() != nullptr; }
  std::string_view prebuilt_bytes() const noexcept { return prebuilt_; }

  /// The reason phrase of `status`.
  std::string_view reason() const noexcept { return reason_phrase(status); }
  /// The value of the first header named `name` (case-insensitive; "Content-Type" reads content_type).
  std::optional<std::string_view> header(std::string_view name) const noexcept;
  /// Adds a header line; returns *this for chaining.
  Response& set_header(std::string name, std::string value) {
    headers.emplace_back(std::move(name), std::move(value));
    return *this;
  }

 private:
  std::string_view prebuilt_;
};

/// How a response is written (see append_response).
struct ResponseContext {
  /// Add `Connection: close` (the server closes the connection after this response).
  bool close = false;
  /// The request was HEAD: write the headers (with the body's Content-Length) but not the body.
  bool head = false;
  /// The request was HTTP/1.0 with keep-alive: add `Connection: keep-alive` (an HTTP/1.0 client needs it).
  bool http10_keep_alive = false;
  /// The Server header's value; empty: none.
  std::string_view server;
  /// The Date header's value (see http_date()); empty: none.
  std::string_view date;
};

/// Appends `r` serialized as HTTP/1.1 to `out` (out keeps its capacity between calls: no allocation once it
/// has grown). 1xx, 204 and 304 responses get neither body nor Content-Length, as HTTP requires.
void append_response(std::string& out, const Response& r, const ResponseContext& ctx = {});

/// Appends `r` serialized as a request to `out`, with `Host: host` unless `r` already has a Host header, and
/// Content-Length when the body is not empty (or the method is POST, PUT or PATCH).
void append_request(std::string& out, const Request& r, std::string_view host);

/// The current time as an HTTP date ("Sun, 06 Nov 1994 08:49:37 GMT"), formatted at most once a second per
/// thread. The view is valid until the next call on this thread.
std::string_view http_date() noexcept;

}  // namespace weft::io::http
