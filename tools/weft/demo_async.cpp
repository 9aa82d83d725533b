// tools/weft/demo_async.cpp — see demo_async.hpp.
#include "demo_async.hpp"

#include <fmt/core.h>

#include <algorithm>
#include <vector>

#include "weft/io.hpp"

namespace weft::cli {
namespace {

namespace http = io::http;
using Clock = std::chrono::steady_clock;

double seconds_since(Clock::time_point t0) { return std::chrono::duration<double>(Clock::now() - t0).count(); }

// The page the server returns for /page/<i>: easy to check on the client side.
std::string page_body(std::size_t i) { return fmt::format("<html><body>page {} of the weft demo</body></html>", i); }

struct Site {
  std::chrono::milliseconds latency;
  std::size_t in_flight = 0;
  std::size_t max_in_flight = 0;
};

http::Server make_server(Site& site) {
  return http::Server([&site](const http::Request& req) -> io::Task<http::Response> {
    ++site.in_flight;
    site.max_in_flight = std::max(site.max_in_flight, site.in_flight);
    co_await io::sleep(site.latency);  // the slow backend behind the page
    --site.in_flight;
    const std::string_view target = req.target();
    if (!target.starts_with("/page/")) co_return http::Response::text(404, "no such page\n");
    co_return http::Response::html(200, page_body(std::stoul(std::string(target.substr(6)))));
  });
}

io::Task<bool> fetch_page(std::string base, std::size_t i) {
  http::Response r = co_await http::get(fmt::format("{}/page/{}", base, i));
  co_return r.status == 200 && r.body == page_body(i);
}

io::Task<bool> fetch_bounded(io::Semaphore& slots, std::string base, std::size_t i) {
  io::SemaphoreGuard slot = co_await slots.guard();
  co_return co_await fetch_page(std::move(base), i);
}

io::Task<AsyncFetchResult> run(std::size_t pages, std::chrono::milliseconds latency, std::size_t concurrency) {
  AsyncFetchResult result;
  result.pages = pages;
  result.concurrency = concurrency;
  result.backend = std::string(io::to_string(io::Loop::current()->backend()));
  Site site{latency};
  http::Server server = make_server(site);
  io::Listener listener = io::Listener::bind(io::Address::loopback(0));
  const std::string base = fmt::format("http://{}", listener.local_address().to_string());
  bool all_ok = true;
  co_await io::task_group([&](io::TaskGroup& g) -> io::Task<void> {
    g.spawn(server.serve(listener));

    auto t0 = Clock::now();
    for (std::size_t i = 0; i < pages; ++i) all_ok = co_await fetch_page(base, i) && all_ok;
    result.sequential_seconds = seconds_since(t0);
    fmt::print("  sequential: {} pages, one request at a time       {:.3f} s\n", pages, result.sequential_seconds);

    site.max_in_flight = 0;
    io::Semaphore slots(concurrency);
    std::vector<io::Task<bool>> fetches;
    for (std::size_t i = 0; i < pages; ++i) fetches.push_back(fetch_bounded(slots, base, i));
    t0 = Clock::now();
    std::vector<bool> oks = co_await io::gather(std::move(fetches));
    result.concurrent_seconds = seconds_since(t0);
    all_ok = std::all_of(oks.begin(), oks.end(), [](bool b) { return b; }) && all_ok;
    fmt::print("  concurrent: {} pages, at most {} in flight          {:.3f} s\n", pages, concurrency,
               result.concurrent_seconds);
    server.stop();
  });
  result.max_in_flight = site.max_in_flight;
  result.ok = all_ok && site.max_in_flight <= concurrency && site.max_in_flight > 1;
  co_return result;
}

}  // namespace

AsyncFetchResult async_fetch(std::size_t pages, std::chrono::milliseconds latency, std::size_t concurrency) {
  AsyncFetchResult r = io::run(run(pages, latency, concurrency));
  fmt::print("  event loop: {}; the server saw at most {} requests at once\n", r.backend, r.max_in_flight);
  fmt::print("  every page came back whole and the same both ways: {}\n", r.ok ? "ok" : "NO");
  fmt::print("  speedup: {:.2f}x on one thread (the waits overlap; no thread per request)\n", r.speedup());
  return r;
}

}  // namespace weft::cli
