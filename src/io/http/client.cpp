// The HTTP client: URL parsing, Connection (one request at a time on a keep-alive socket), http::get.
#include "weft/io/http/client.hpp"

#include <http_parser.h>

#include <utility>

#include "response_parser.hpp"
#include "weft/io/group.hpp"

namespace weft::io::http {

std::string Url::authority() const {
  const bool v6 = host.find(':') != std::string::npos;
  std::string a;
  if (v6) a += '[';
  a += host;
  if (v6) a += ']';
  if (port != 80) a.append(":").append(std::to_string(port));
  return a;
}

Url parse_url(std::string_view url) {
  http_parser_url u;
  http_parser_url_init(&u);
  if (http_parser_parse_url(url.data(), url.size(), 0, &u) != 0) {
    throw HttpError("weft::io::http: not a URL: '" + std::string(url) + "'");
  }
  auto field = [&](http_parser_url_fields f) -> std::string_view {
    if ((u.field_set & (1u << f)) == 0) return {};
    return url.substr(u.field_data[f].off, u.field_data[f].len);
  };
  if (!iequals(field(UF_SCHEMA), "http")) {
    throw HttpError("weft::io::http: only http:// URLs are supported: '" + std::string(url) + "'");
  }
  Url out;
  out.host = std::string(field(UF_HOST));
  if (out.host.empty()) throw HttpError("weft::io::http: no host in '" + std::string(url) + "'");
  if ((u.field_set & (1u << UF_PORT)) != 0) out.port = u.port;
  std::string_view path = field(UF_PATH);
  out.target = path.empty() ? "/" : std::string(path);
  if (std::string_view q = field(UF_QUERY); !q.empty()) {
    out.target += '?';
    out.target += q;
  }
  return out;
}

Connection::Connection() noexcept = default;
Connection::~Connection() = default;
Connection::Connection(Connection&&) noexcept = default;
Connection& Connection::operator=(Connection&&) noexcept = default;

Task<Connection> Connection::connect(std::string host, std::uint16_t port, ClientOptions options) {
  Connection c;
  Url where{host, port, "/"};
  c.authority_ = where.authority();
  c.options_ = options;
  c.parser_ = std::make_unique<detail::ResponseParser>(options.max_header_bytes, options.max_body_bytes);
  c.stream_ = co_await Stream::connect(std::move(host), port, options.timeout);
  co_return c;
}

Task<Response> Connection::get(std::string target) { return request(Request("GET", target)); }

Task<Response> Connection::request(Request req) {
  if (!is_open() || !parser_) throw HttpError("weft::io::http::Connection: not connected");
  bool ok = false;
  struct CloseUnlessOk {  // any failure leaves the connection in an unknown state: close it
    Connection* c;
    bool* ok;
    ~CloseUnlessOk() {
      if (!*ok) c->close();
    }
  } guard{this, &ok};
  // Plain statements, not `cond ? co_await a : co_await b`: g++ 12 miscompiles co_await inside a conditional
  // expression (the result is copied bitwise out of a destroyed frame).
  Response r;
  if (options_.timeout.count() > 0) {
    r = co_await wait_for(exchange(req), options_.timeout);
  } else {
    r = co_await exchange(req);
  }
  ok = true;
  co_return r;
}

Task<Response> Connection::exchange(const Request& req) {
  out_.clear();
  append_request(out_, req, authority_);
  co_await stream_.write_all(out_);
  parser_->start(req.method() == "HEAD");
  for (;;) {
    Buffer b = co_await stream_.read_some();
    if (b.empty()) {
      parser_->feed_eof();
    } else {
      parser_->feed(b.data(), b.size());
    }
    if (parser_->failed()) throw HttpError(std::string("weft::io::http: ") + parser_->error());
    if (parser_->done()) break;
    if (b.empty()) throw HttpError("weft::io::http: the connection closed before the response was complete");
  }
  Response r = std::move(parser_->response());
  if (!parser_->keep_alive()) stream_.close();
  co_return r;
}

Task<Response> get(std::string url, ClientOptions options) {
  Url u = parse_url(url);
  auto once = [](Url where, ClientOptions opts) -> Task<Response> {
    opts.timeout = std::chrono::milliseconds(0);  // the whole exchange is bounded below
    Connection c = co_await Connection::connect(where.host, where.port, opts);
    Request req("GET", where.target);
    req.add_header("Connection", "close");
    co_return co_await c.request(std::move(req));
  };
  if (options.timeout.count() > 0) co_return co_await wait_for(once(std::move(u), options), options.timeout);
  co_return co_await once(std::move(u), options);
}

}  // namespace weft::io::http
