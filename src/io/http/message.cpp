// HTTP/1.x messages: accessors, serialization, reason phrases, the cached Date value.
#include "weft/io/http/message.hpp"

#include <charconv>
#include <cstdio>
#include <ctime>

namespace weft::io::http {

namespace {

constexpr char lower(char c) noexcept { return (c >= 'A' && c <= 'Z') ? static_cast<char>(c + ('a' - 'A')) : c; }

constexpr bool is_space(char c) noexcept { return c == ' ' || c == '\t'; }

std::string_view trim(std::string_view s) noexcept {
  while (!s.empty() && is_space(s.front())) s.remove_prefix(1);
  while (!s.empty() && is_space(s.back())) s.remove_suffix(1);
  return s;
}

void append_number(std::string& out, std::size_t n) {
  char buf[24];
  auto [end, ec] = std::to_chars(buf, buf + sizeof buf, n);
  (void)ec;  // 24 digits always suffice
  out.append(buf, end);
}

// Header lines of Response::headers that the serializer writes itself.
bool is_framing_header(std::string_view name) noexcept {
  return iequals(name, "content-length") || iequals(name, "connection") || iequals(name, "transfer-encoding");
}

bool has_no_body(int status) noexcept { return (status >= 100 && status < 200) || status == 204 || status == 304; }

}  // namespace

bool iequals(std::string_view a, std::string_view b) noexcept {
  if (a.size() != b.size()) return false;
  for (std::size_t i = 0; i < a.size(); ++i) {
    if (lower(a[i]) != lower(b[i])) return false;
  }
  return true;
}

bool has_token(std::string_view list, std::string_view token) noexcept {
  while (!list.empty()) {
    std::size_t comma = list.find(',');
    std::string_view item = trim(list.substr(0, comma));
    if (iequals(item, token)) return true;
    if (comma == std::string_view::npos) break;
    list.remove_prefix(comma + 1);
  }
  return false;
}

// ---- Request ----

Request::Request(std::string_view method, std::string_view target) {
  text_.clear();
  method_ = append(method);
  target_ = append(target);
}

Request::Span Request::append(std::string_view s) {
  Span span{static_cast<std::uint32_t>(text_.size()), static_cast<std::uint32_t>(s.size())};
  text_.append(s);
  return span;
}

std::string_view Request::path() const noexcept {
  std::string_view t = target();
  return t.substr(0, t.find_first_of("?#"));
}

std::string_view Request::query() const noexcept {
  std::string_view t = target();
  std::size_t q = t.find('?');
  if (q == std::string_view::npos) return {};
  t.remove_prefix(q + 1);
  return t.substr(0, t.find('#'));
}

std::optional<std::string_view> Request::header(std::string_view name) const noexcept {
  for (const Field& f : fields_) {
    if (iequals(view(f.name), name)) return view(f.value);
  }
  return std::nullopt;
}

void Request::add_header(std::string_view name, std::string_view value) {
  Field f;
  f.name = append(name);
  f.value = append(trim(value));
  fields_.push_back(f);
}

bool Request::keep_alive() const noexcept {
  bool close = false;
  bool keep = false;
  for (const Field& f : fields_) {
    if (!iequals(view(f.name), "connection")) continue;
    close = close || has_token(view(f.value), "close");
    keep = keep || has_token(view(f.value), "keep-alive");
  }
  if (close) return false;
  return minor_ >= 1 || keep;
}

void Request::clear() noexcept {
  text_.assign("GET/");  // fits the small-string buffer or the existing capacity: no allocation
  method_ = {0, 3};
  target_ = {3, 1};
  fields_.clear();
  body_.clear();
  minor_ = 1;
}

// ---- Response ----

Response Response::text(int status, std::string body) {
  return Response(status, std::move(body), "text/plain; charset=utf-8");
}

Response Response::html(int status, std::string body) {
  return Response(status, std::move(body), "text/html; charset=utf-8");
}

std::optional<std::string_view> Response::header(std::string_view name) const noexcept {
  if (iequals(name, "content-type") && !content_type.empty()) return std::string_view(content_type);
  for (const auto& [n, v] : headers) {
    if (iequals(n, name)) return std::string_view(v);
  }
  return std::nullopt;
}

std::string_view reason_phrase(int status) noexcept {
  switch (status) {
    case 100: return "Continue";
    case 101: return "Switching Protocols";
    case 200: return "OK";
    case 201: return "Created";
    case 202: return "Accepted";
    case 203: return "Non-Authoritative Information";
    case 204: return "No Content";
    case 205: return "Reset Content";
    case 206: return "Partial Content";
    case 300: return "Multiple Choices";
    case 301: return "Moved Permanently";
    case 302: return "Found";
    case 303: return "See Other";
    case 304: return "Not Modified";
    case 307: return "Temporary Redirect";
    case 308: return "Permanent Redirect";
    case 400: return "Bad Request";
    case 401: return "Unauthorized";
    case 403: return "Forbidden";
    case 404: return "Not Found";
    case 405: return "Method Not Allowed";
    case 406: return "Not Acceptable";
    case 408: return "Request Timeout";
    case 409: return "Conflict";
    case 410: return "Gone";
    case 411: return "Length Required";
    case 412: return "Precondition Failed";
    case 413: return "Content Too Large";
    case 414: return "URI Too Long";
    case 415: return "Unsupported Media Type";
    case 416: return "Range Not Satisfiable";
    case 417: return "Expectation Failed";
    case 421: return "Misdirected Request";
    case 422: return "Unprocessable Content";
    case 426: return "Upgrade Required";
    case 428: return "Precondition Required";
    case 429: return "Too Many Requests";
    case 431: return "Request Header Fields Too Large";
    case 500: return "Internal Server Error";
    case 501: return "Not Implemented";
    case 502: return "Bad Gateway";
    case 503: return "Service Unavailable";
    case 504: return "Gateway Timeout";
    case 505: return "HTTP Version Not Supported";
    default: return "Unknown";
  }
}

// ---- serialization ----

void append_response(std::string& out, const Response& r, const ResponseContext& ctx) {
  if (r.is_prebuilt()) {
    out.append(r.prebuilt_bytes());
    return;
  }
  int status = (r.status >= 100 && r.status <= 999) ? r.status : 500;
  out.append("HTTP/1.1 ");
  append_number(out, static_cast<std::size_t>(status));
  out.push_back(' ');
  out.append(reason_phrase(status));
  out.append("\r\n");
  if (!ctx.server.empty()) {
    out.append("Server: ");
    out.append(ctx.server);
    out.append("\r\n");
  }
  if (!ctx.date.empty()) {
    out.append("Date: ");
    out.append(ctx.date);
    out.append("\r\n");
  }
  if (!r.content_type.empty()) {
    out.append("Content-Type: ");
    out.append(r.content_type);
    out.append("\r\n");
  }
  for (const auto& [name, value] : r.headers) {
    if (is_framing_header(name)) continue;
    out.append(name);
    out.append(": ");
    out.append(value);
    out.append("\r\n");
  }
  bool bodyless = has_no_body(status);
  if (!bodyless) {
    out.append("Content-Length: ");
    append_number(out, r.body.size());
    out.append("\r\n");
  }
  if (ctx.close) out.append("Connection: close\r\n");
  else if (ctx.http10_keep_alive) out.append("Connection: keep-alive\r\n");
  out.append("\r\n");
  if (!bodyless && !ctx.head) out.append(r.body);
}

void append_request(std::string& out, const Request& r, std::string_view host) {
  out.append(r.method());
  out.push_back(' ');
  out.append(r.target());
  out.append(r.version_minor() == 0 ? " HTTP/1.0\r\n" : " HTTP/1.1\r\n");
  bool has_host = false;
  bool has_length = false;
  for (std::size_t i = 0; i < r.header_count(); ++i) {
    Header h = r.header_at(i);
    has_host = has_host || iequals(h.name, "host");
    if (iequals(h.name, "content-length") || iequals(h.name, "transfer-encoding")) {
      has_length = true;
    }
    out.append(h.name);
    out.append(": ");
    out.append(h.value);
    out.append("\r\n");
  }
  if (!has_host && !host.empty()) {
    out.append("Host: ");
    out.append(host);
    out.append("\r\n");
  }
  std::string_view m = r.method();
  if (!has_length && (!r.body().empty() || m == "POST" || m == "PUT" || m == "PATCH")) {
    out.append("Content-Length: ");
    append_number(out, r.body().size());
    out.append("\r\n");
  }
  out.append("\r\n");
  out.append(r.body());
}

std::string_view http_date() noexcept {
  thread_local std::time_t cached_second = -1;
  thread_local char text[48];
  thread_local std::size_t length = 0;
  timespec ts{};
  ::clock_gettime(CLOCK_REALTIME_COARSE, &ts);
  if (ts.tv_sec != cached_second) {
    std::tm tm{};
    ::gmtime_r(&ts.tv_sec, &tm);
    // Formatted by hand: strftime's %a and %b follow the locale, HTTP wants English names.
    static constexpr const char* kDays[] = {"Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"};
    static constexpr const char* kMonths[] = {"Jan", "Feb", "Mar", "Apr", "May", "Jun",
                                              "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};
    int n = std::snprintf(text, sizeof text, "%s, %02d %s %04d %02d:%02d:%02d GMT", kDays[tm.tm_wday % 7],
                          tm.tm_mday, kMonths[tm.tm_mon % 12], tm.tm_year + 1900, tm.tm_hour, tm.tm_min,
                          tm.tm_sec);
    length = n > 0 ? static_cast<std::size_t>(n) : 0;
    cached_second = ts.tv_sec;
  }
  return {text, length};
}

}  // namespace weft::io::http
