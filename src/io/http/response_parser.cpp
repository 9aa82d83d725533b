// The client's response parser: http-parser in response mode; on_message_complete pauses the parser so one
// feed() never reads past the end of the response (like RequestParser), interim 1xx responses are dropped.
#include "response_parser.hpp"

#include <climits>
#include <cstring>

namespace weft::io::http::detail {

struct ResponseParser::Callbacks {
  static ResponseParser& self(http_parser* p) noexcept { return *static_cast<ResponseParser*>(p->data); }

  static int count_head(ResponseParser& s, std::size_t len) {
    s.header_bytes_ += len;
    if (s.header_bytes_ > s.max_header_bytes_) {
      s.fail("the response's status line and headers are above the header limit");
      return 1;
    }
    return 0;
  }

  static int on_message_begin(http_parser* p) {
    ResponseParser& s = self(p);
    s.response_ = Response();
    s.header_bytes_ = 0;
    s.last_ = 0;
    return 0;
  }

  static int on_status(http_parser* p, const char*, std::size_t len) { return count_head(self(p), len); }

  static int on_header_field(http_parser* p, const char* at, std::size_t len) {
    ResponseParser& s = self(p);
    if (count_head(s, len) != 0) return 1;
    auto& headers = s.response_.headers;
    if (s.last_ == 1 && !headers.empty()) headers.back().first.append(at, len);
    else headers.emplace_back(std::string(at, len), std::string());
    s.last_ = 1;
    return 0;
  }

  static int on_header_value(http_parser* p, const char* at, std::size_t len) {
    ResponseParser& s = self(p);
    if (count_head(s, len) != 0) return 1;
    if (s.response_.headers.empty()) return 0;  // trailers after a chunked body start with a name anyway
    s.response_.headers.back().second.append(at, len);
    s.last_ = 2;
    return 0;
  }

  static int on_headers_complete(http_parser* p) {
    ResponseParser& s = self(p);
    Response& r = s.response_;
    r.status = p->status_code;
    r.version_minor = p->http_minor;
    for (auto it = r.headers.begin(); it != r.headers.end();) {
      std::string& v = it->second;
      while (!v.empty() && (v.back() == ' ' || v.back() == '\t')) v.pop_back();
      if (iequals(it->first, "content-type") && r.content_type.empty()) {
        r.content_type = std::move(v);
        it = r.headers.erase(it);
      } else {
        ++it;
      }
    }
    bool chunked = (p->flags & F_CHUNKED) != 0;
    if (!chunked && p->content_length != ULLONG_MAX && p->content_length > s.max_body_bytes_ && !s.head_request_) {
      s.fail("the response's Content-Length is above the body limit");
      return -1;
    }
    return s.head_request_ ? 1 : 0;  // 1: no body follows, whatever the headers say
  }

  static int on_body(http_parser* p, const char* at, std::size_t len) {
    ResponseParser& s = self(p);
    std::string& body = s.response_.body;
    if (len > s.max_body_bytes_ - body.size()) {
      s.fail("the response's body is above the body limit");
      return 1;
    }
    body.append(at, len);
    return 0;
  }

  static int on_message_complete(http_parser* p) {
    ResponseParser& s = self(p);
    int status = p->status_code;
    if (status >= 100 && status < 200 && status != 101) return 0;  // interim: the real response follows
    s.done_ = true;
    s.keep_alive_ = http_should_keep_alive(p) != 0 && p->upgrade == 0;
    http_parser_pause(p, 1);
    return 0;
  }

  static const http_parser_settings settings;
};

const http_parser_settings ResponseParser::Callbacks::settings = [] {
  http_parser_settings s;
  std::memset(&s, 0, sizeof s);
  s.on_message_begin = &Callbacks::on_message_begin;
  s.on_status = &Callbacks::on_status;
  s.on_header_field = &Callbacks::on_header_field;
  s.on_header_value = &Callbacks::on_header_value;
  s.on_headers_complete = &Callbacks::on_headers_complete;
  s.on_body = &Callbacks::on_body;
  s.on_message_complete = &Callbacks::on_message_complete;
  return s;
}();

ResponseParser::ResponseParser(std::size_t max_header_bytes, std::size_t max_body_bytes) noexcept
    : max_header_bytes_(max_header_bytes), max_body_bytes_(max_body_bytes) {
  start(false);
}

void ResponseParser::start(bool head_request) noexcept {
  http_parser_init(&parser_, HTTP_RESPONSE);
  head_request_ = head_request;
  done_ = false;
  keep_alive_ = false;
  error_ = nullptr;
  header_bytes_ = 0;
  last_ = 0;
}

std::size_t ResponseParser::feed(const char* data, std::size_t size) {
  if (done_ || failed() || size == 0) return 0;
  parser_.data = this;
  std::size_t used = http_parser_execute(&parser_, &Callbacks::settings, data, size);
  http_errno err = HTTP_PARSER_ERRNO(&parser_);
  if (!done_ && !failed() && err != HPE_OK) fail(http_errno_description(err));
  return used;
}

void ResponseParser::feed_eof() {
  if (done_ || failed()) return;
  parser_.data = this;
  http_parser_execute(&parser_, &Callbacks::settings, nullptr, 0);
  http_errno err = HTTP_PARSER_ERRNO(&parser_);
  if (!done_ && !failed()) {
    fail(err != HPE_OK ? http_errno_description(err) : "the connection closed before the response was complete");
  }
}

}  // namespace weft::io::http::detail
