// RequestParser on http-parser: callbacks that copy the request's pieces into the Request's storage, the pause
// that stops at the end of each request, and the limits.
//
// How the limits are enforced:
//  1. Head size: while the head is incomplete, feed() hands http-parser at most the bytes left in the head
//     budget, so a head that has not ended after max_header_bytes bytes is caught after exactly that many,
//     whatever the size of the caller's buffer. Once on_headers_complete has run, the rest of the slice and of
//     the input is body (or the next request) and is fed without that cap.
//  2. Header count: on_header_field refuses the (max_headers + 1)-th line.
//  3. Body size: on_headers_complete refuses a declared Content-Length above the limit before any body byte
//     is read; on_body refuses a chunked body once its decoded size would pass the limit.
//  4. End of a request: on_message_complete pauses the parser, so http_parser_execute returns the bytes up to
//     and including the request's last byte; next() unpauses it.
#include "weft/io/http/request_parser.hpp"

#include <http_parser.h>

#include <climits>
#include <cstring>
#include <utility>

namespace weft::io::http {

static_assert(sizeof(http_parser) <= 32 && alignof(http_parser) <= 8,
              "RequestParser::raw_ must hold an http_parser");

namespace {
http_parser* raw(unsigned char* p) noexcept { return reinterpret_cast<http_parser*>(p); }
enum class Last : std::uint8_t { none, field, value };
}  // namespace

int ParseError::status() const noexcept {
  switch (kind) {
    case Kind::none: return 0;
    case Kind::bad_request: return 400;
    case Kind::headers_too_large: return 431;
    case Kind::body_too_large: return 413;
    case Kind::version_not_supported: return 505;
  }
  return 400;
}

// The http-parser callbacks. They run inside http_parser_execute, called from feed(); parser->data is the
// RequestParser. A non-zero return stops the parser with an HPE_CB_* error (failed() is then already set).
struct ParserCallbacks {
  static RequestParser& self(http_parser* p) noexcept { return *static_cast<RequestParser*>(p->data); }

  static int on_message_begin(http_parser* p) {
    RequestParser& s = self(p);
    Request& r = s.request_;
    r.text_.clear();
    r.method_ = {};
    r.target_ = {};
    return 0;
  }

  static int on_url(http_parser* p, const char* at, std::size_t len) {
    Request& r = self(p).request_;
    r.text_.append(at, len);  // the URL comes first: it starts at offset 0 and grows contiguously
    r.target_.len += static_cast<std::uint32_t>(len);
    return 0;
  }

  static int on_header_field(http_parser* p, const char* at, std::size_t len) {
    RequestParser& s = self(p);
    if (s.head_done_) return count_trailer(s, len);
    Request& r = s.request_;
    if (!r.fields_.empty() && s.last_ == static_cast<std::uint8_t>(Last::field)) {
      r.fields_.back().name.len += static_cast<std::uint32_t>(len);  // the name continues (split input)
    } else {
      if (r.fields_.size() >= s.limits_.max_headers) {
        s.fail(ParseError::Kind::headers_too_large, "too many header lines");
        return 1;
      }
      Request::Field f;
      f.name = {static_cast<std::uint32_t>(r.text_.size()), static_cast<std::uint32_t>(len)};
      r.fields_.push_back(f);
    }
    r.text_.append(at, len);
    s.last_ = static_cast<std::uint8_t>(Last::field);
    return 0;
  }

  static int on_header_value(http_parser* p, const char* at, std::size_t len) {
    RequestParser& s = self(p);
    if (s.head_done_) return count_trailer(s, len);
    Request& r = s.request_;
    Request::Field& f = r.fields_.back();  // http-parser always reports a field before its value
    if (s.last_ != static_cast<std::uint8_t>(Last::value)) f.value = {static_cast<std::uint32_t>(r.text_.size()), 0};
    r.text_.append(at, len);
    f.value.len += static_cast<std::uint32_t>(len);
    s.last_ = static_cast<std::uint8_t>(Last::value);
    return 0;
  }

  static int on_headers_complete(http_parser* p) {
    RequestParser& s = self(p);
    Request& r = s.request_;
    s.head_done_ = true;
    if (p->http_major != 1) {
      s.fail(ParseError::Kind::version_not_supported, "HTTP major version other than 1");
      return -1;
    }
    r.minor_ = static_cast<std::uint8_t>(p->http_minor);
    r.method_ = r.append(http_method_str(static_cast<http_method>(p->method)));
    for (Request::Field& f : r.fields_) {  // http-parser drops leading whitespace of values, not trailing
      while (f.value.len > 0) {
        char c = r.text_[f.value.off + f.value.len - 1];
        if (c != ' ' && c != '\t') break;
        --f.value.len;
      }
    }
    bool chunked = (p->flags & F_CHUNKED) != 0;
    bool declared = !chunked && p->content_length != ULLONG_MAX;
    if (declared && p->content_length > s.limits_.max_body_bytes) {
      s.fail(ParseError::Kind::body_too_large, "declared Content-Length above the body limit");
      return -1;
    }
    if (r.minor_ >= 1 && (chunked || (declared && p->content_length > 0))) {
      if (auto e = r.header("expect")) s.expect_continue_ = iequals(*e, "100-continue");
    }
    return 0;
  }

  static int on_body(http_parser* p, const char* at, std::size_t len) {
    RequestParser& s = self(p);
    std::string& body = s.request_.body_;
    if (len > s.limits_.max_body_bytes - body.size()) {
      s.fail(ParseError::Kind::body_too_large, "body above the body limit");
      return 1;
    }
    if (body.empty() && p->content_length != ULLONG_MAX && (p->flags & F_CHUNKED) == 0) {
      body.reserve(body.size() + len + p->content_length);  // content_length counts what is still to come
    }
    body.append(at, len);
    return 0;
  }

  static int on_message_complete(http_parser* p) {
    RequestParser& s = self(p);
    s.done_ = true;
    s.upgrade_ = p->upgrade != 0;
    http_parser_pause(p, 1);  // step 4
    return 0;
  }

  static int count_trailer(RequestParser& s, std::size_t len) {
    s.trailer_bytes_ += len;
    if (s.trailer_bytes_ > s.limits_.max_header_bytes) {
      s.fail(ParseError::Kind::headers_too_large, "chunk trailers above the header limit");
      return 1;
    }
    return 0;
  }

  static const http_parser_settings settings;
};

const http_parser_settings ParserCallbacks::settings = [] {
  http_parser_settings s;
  std::memset(&s, 0, sizeof s);
  s.on_message_begin = &ParserCallbacks::on_message_begin;
  s.on_url = &ParserCallbacks::on_url;
  s.on_header_field = &ParserCallbacks::on_header_field;
  s.on_header_value = &ParserCallbacks::on_header_value;
  s.on_headers_complete = &ParserCallbacks::on_headers_complete;
  s.on_body = &ParserCallbacks::on_body;
  s.on_message_complete = &ParserCallbacks::on_message_complete;
  return s;
}();

RequestParser::RequestParser(ParserLimits limits) noexcept : limits_(limits), raw_{} { reset(); }

RequestParser::RequestParser(RequestParser&& other) noexcept = default;
RequestParser& RequestParser::operator=(RequestParser&& other) noexcept = default;

void RequestParser::fail(ParseError::Kind kind, const char* message) noexcept {
  if (error_.kind == ParseError::Kind::none) error_ = ParseError{kind, message};
}

void RequestParser::start_message() noexcept {
  request_.clear();
  done_ = false;
  head_done_ = false;
  expect_continue_ = false;
  upgrade_ = false;
  last_ = 0;
  consumed_ = 0;
  head_bytes_ = 0;
  trailer_bytes_ = 0;
}

void RequestParser::reset() noexcept {
  http_parser_init(raw(raw_), HTTP_REQUEST);
  error_ = {};
  start_message();
}

void RequestParser::next() noexcept {
  start_message();
  http_parser_pause(raw(raw_), 0);
}

Request RequestParser::take() {
  Request r = std::move(request_);
  next();
  return r;
}

std::size_t RequestParser::feed(const char* data, std::size_t size) {
  if (done_ || failed() || size == 0) return 0;
  http_parser* p = raw(raw_);
  p->data = this;
  std::size_t total = 0;
  while (total < size) {
    std::size_t chunk = size - total;
    if (!head_done_) {  // step 1
      if (head_bytes_ >= limits_.max_header_bytes) {
        fail(ParseError::Kind::headers_too_large, "request line and headers above the header limit");
        break;
      }
      chunk = std::min(chunk, limits_.max_header_bytes - head_bytes_);
    }
    bool head_was_done = head_done_;
    std::size_t k = http_parser_execute(p, &ParserCallbacks::settings, data + total, chunk);
    total += k;
    consumed_ += k;
    if (!head_was_done) head_bytes_ += k;  // once the head ends, the excess is body: it no longer matters
    if (failed()) break;                  // a callback refused (a limit)
    http_errno err = HTTP_PARSER_ERRNO(p);
    if (err == HPE_PAUSED || done_) break;  // step 4: one request complete
    if (err != HPE_OK) {
      fail(err == HPE_HEADER_OVERFLOW ? ParseError::Kind::headers_too_large : ParseError::Kind::bad_request,
           http_errno_description(err));
      break;
    }
    if (!head_done_ && head_bytes_ >= limits_.max_header_bytes) {
      fail(ParseError::Kind::headers_too_large, "request line and headers above the header limit");
      break;
    }
    if (k < chunk) {  // http-parser stopped without saying why: never expected, refuse rather than loop
      fail(ParseError::Kind::bad_request, "the parser stopped early");
      break;
    }
  }
  return total;
}

}  // namespace weft::io::http
