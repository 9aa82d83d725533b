// web_server_async.cpp — the site of web_server_threaded.cpp on weft's event loop: io::http::Server, one
// thread, a coroutine per connection.
//
// Python: an aiohttp / asyncio server. A slow page awaits (co_await io::sleep stands in for a database call):
// only that request's task waits, the thread goes on serving everyone else, and an idle keep-alive connection
// costs a suspended coroutine and no thread. Limits are the server's options: max_connections (503 beyond),
// header/body/idle timeouts against slow or silent clients, request size limits (431/413).
//
// Shutdown: io::SignalSet turns SIGINT/SIGTERM into an awaitable; on it, server.stop() stops accepting, closes
// idle connections, lets requests in progress finish (with `Connection: close`), and serve() returns.
//
//   example_web_server_async --port 8080
//   example_web_server_async --self-test      (fetches its own pages concurrently, then stops itself)
#include <signal.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <string_view>
#include <vector>

#include "weft/io/group.hpp"
#include "weft/io/http/client.hpp"
#include "weft/io/http/server.hpp"
#include "weft/io/loop.hpp"
#include "weft/io/signal.hpp"
#include "weft/io/time.hpp"

namespace io = weft::io;
namespace http = weft::io::http;
using namespace std::chrono_literals;

namespace {

// The site, as an async handler. The Request stays valid until the returned task finishes.
io::Task<http::Response> site(const http::Request& req) {
  if (req.path() == "/") {
    co_return http::Response::html(200,
                                   "<h1>weft</h1><a href=\"/hello?name=you\">hello</a> <a href=\"/slow\">slow</a>");
  }
  if (req.path() == "/hello") {
    std::string_view q = req.query();
    std::string_view name = q.starts_with("name=") ? q.substr(5) : "world";
    co_return http::Response::text(200, "Hello, " + std::string(name) + "!\n");
  }
  if (req.path() == "/slow") {
    co_await io::sleep(50ms);  // only this request waits; the loop serves the others meanwhile
    co_return http::Response::text(200, "slow page\n");
  }
  co_return http::Response::text(404, "no such page\n");
}

// --self-test: twenty /slow pages at once over twenty connections. They overlap, so together they take about
// one page's 50 ms, not twenty times that. Then SIGTERM, as an operator would send it.
io::Task<void> self_test(std::uint16_t port, bool& ok) {
  const std::string base = "http://127.0.0.1:" + std::to_string(port);
  auto start = std::chrono::steady_clock::now();
  std::vector<io::Task<http::Response>> fetches;
  for (int i = 0; i < 20; ++i) fetches.push_back(http::get(base + "/slow"));
  std::vector<http::Response> pages = co_await io::gather(std::move(fetches));
  double ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start).count();
  int good = 0;
  for (const http::Response& p : pages) good += p.status == 200 && p.body == "slow page\n";

  // And a keep-alive connection for a few pages in a row.
  http::Connection conn = co_await http::Connection::connect("127.0.0.1", port);
  http::Response hello = co_await conn.get("/hello?name=async");
  http::Response missing = co_await conn.get("/missing");
  ok = good == 20 && hello.body == "Hello, async!\n" && missing.status == 404;
  std::printf("self-test client: 20 slow pages in %.0f ms (one takes 50 ms), /hello and a 404 on one connection:"
              " %s\n", ms, ok ? "as expected" : "UNEXPECTED");
  ::kill(::getpid(), SIGTERM);
}

io::Task<bool> run(std::uint16_t port, bool test) {
  io::SignalSet signals{SIGINT, SIGTERM};  // from here on, these signals are events for the loop
  http::ServerOptions options;
  options.max_connections = 1000;
  options.idle_timeout = 30s;
  http::Server server(site, options);
  io::Listener listener = io::Listener::bind(io::Address::loopback(port));
  std::printf("serving on http://%s\n", listener.local_address().to_string().c_str());
  std::fflush(stdout);

  bool ok = true;
  co_await io::task_group([&](io::TaskGroup& g) -> io::Task<void> {
    g.spawn(server.serve(listener));
    if (test) g.spawn(self_test(listener.local_address().port(), ok));
    int sig = co_await signals.wait();
    std::printf("signal %d: stopping (requests in progress finish)\n", sig);
    server.stop();
  });
  const http::ServerStats& s = server.stats();
  std::printf("stopped: %llu connections, %llu requests, %llu rejected\n",
              static_cast<unsigned long long>(s.connections_accepted), static_cast<unsigned long long>(s.requests),
              static_cast<unsigned long long>(s.connections_rejected));
  co_return ok;
}

}  // namespace

int main(int argc, char** argv) {
  std::uint16_t port = 8080;
  bool test = false;
  for (int i = 1; i < argc; ++i) {
    std::string_view a = argv[i];
    if (a == "--self-test") test = true;
    else if (a == "--port" && i + 1 < argc) port = static_cast<std::uint16_t>(std::atoi(argv[++i]));
    else return std::fprintf(stderr, "usage: %s [--port N] [--self-test]\n", argv[0]), 2;
  }
  if (test) port = 0;
  return io::run(run(port, test)) ? 0 : 1;
}
