#pragma once
// A small HTTP/1.1 client on weft's event loop: plain http:// only (no TLS), Content-Length, chunked and
// read-until-close bodies, a body limit, keep-alive connections.
//
//   io::http::Response r = co_await io::http::get("http://127.0.0.1:8080/index.html");
//
//   auto conn = co_await io::http::Connection::connect("127.0.0.1", 8080);
//   for (auto& path : paths) pages.push_back(co_await conn.get(path));   // one socket, one request at a time
//
// Thread safety: like every io object, a Connection belongs to the loop thread that made it. One request at a
// time per Connection (requests are not pipelined).
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>

#include "weft/core/errors.hpp"
#include "weft/io/http/message.hpp"
#include "weft/io/socket.hpp"
#include "weft/io/task.hpp"

namespace weft::io::http {

/// A URL the client cannot use (not http://host[:port][/path]), or a response that breaks HTTP or a limit,
/// or a connection that ended before its response did.
class HttpError : public Error {
 public:
  using Error::Error;
};

struct ClientOptions {
  /// Limit for one request: connecting (for http::get), sending and receiving the whole response. Zero: none.
  /// Beyond it: weft::Timeout.
  std::chrono::milliseconds timeout{30'000};
  /// The status line and headers of a response.
  std::size_t max_header_bytes = std::size_t{64} << 10;
  /// A response body, decoded.
  std::size_t max_body_bytes = std::size_t{8} << 20;
};

/// The parts of an http:// URL the client needs.
struct Url {
  std::string host;        // a name or an address literal (IPv6 without brackets)
  std::uint16_t port = 80;
  std::string target = "/";  // path and query
  /// The Host header value: host, with ":port" unless it is 80 (IPv6 literals in brackets).
  std::string authority() const;
};

/// Parses "http://host[:port][/path][?query]" (the fragment is dropped). Throws HttpError for anything else,
/// https:// included.
Url parse_url(std::string_view url);

namespace detail {
class ResponseParser;
}

/// A keep-alive client connection to one server.
class Connection {
 public:
  /// Not connected.
  Connection() noexcept;
  ~Connection();
  Connection(Connection&&) noexcept;
  Connection& operator=(Connection&&) noexcept;
  Connection(const Connection&) = delete;
  Connection& operator=(const Connection&) = delete;

  /// Connects to host:port (a name is resolved off the loop). Throws IoError (ECONNREFUSED...),
  /// weft::Timeout after options.timeout, weft::Cancelled.
  static Task<Connection> connect(std::string host, std::uint16_t port, ClientOptions options = {});

  /// Sends `req` (a Host header is added if it has none) and returns the response. After a response that
  /// closes the connection (`Connection: close`, HTTP/1.0, a body delimited by the close) is_open() is
  /// false. Throws HttpError (malformed response, over a limit, the server closed first), IoError,
  /// weft::Timeout (after options.timeout), weft::Cancelled; after any of these the connection is closed.
  /// Precondition: is_open(), and no other request in progress on this connection.
  Task<Response> request(Request req);
  /// request(Request("GET", target)).
  Task<Response> get(std::string target);

  /// Connected, and the server has not asked to close.
  bool is_open() const noexcept { return stream_.is_open(); }
  void close() noexcept { stream_.close(); }

 private:
  Task<Response> exchange(const Request& req);

  Stream stream_;
  std::string authority_;
  ClientOptions options_;
  std::unique_ptr<detail::ResponseParser> parser_;
  std::string out_;
};

/// One GET on a fresh connection (closed afterwards). The whole exchange, connect included, is bounded by
/// options.timeout. Throws what parse_url, Connection::connect and Connection::request throw. Loop thread only.
Task<Response> get(std::string url, ClientOptions options = {});

}  // namespace weft::io::http
