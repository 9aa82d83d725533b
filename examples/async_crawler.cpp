// async_crawler.cpp — I/O-bound work on one thread: crawl a small web site concurrently, then one page at a
// time, and compare.
//
// Python: an asyncio crawler with aiohttp and asyncio.Semaphore. The site is served by this program itself on
// 127.0.0.1 (io::http::Server); each page answers after a simulated latency (co_await io::sleep — a slow
// backend) and links to two more pages, so the crawler discovers the site as it goes. Waiting dominates, so
// overlapping the waits on one thread gives a speedup close to the concurrency limit; no thread is needed.
//
// The concurrency limit is an io::Semaphore: every fetch holds a permit while its request is out, so at most
// --concurrency requests are in flight whatever the number of pages found (bounded by default: an unbounded
// crawler floods the server it visits).
//
//   example_async_crawler [--pages 100] [--concurrency 16] [--latency-ms 20] [--port 0]
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <deque>
#include <string>
#include <string_view>
#include <unordered_set>
#include <vector>

#include "weft/io/group.hpp"
#include "weft/io/http/client.hpp"
#include "weft/io/http/server.hpp"
#include "weft/io/loop.hpp"
#include "weft/io/sync.hpp"
#include "weft/io/time.hpp"

namespace io = weft::io;
namespace http = weft::io::http;
using Clock = std::chrono::steady_clock;

namespace {

struct Settings {
  int pages = 100;
  int concurrency = 16;
  int latency_ms = 20;
  std::uint16_t port = 0;
};

// The site: /page/N (0 <= N < pages) links to pages 2N+1 and 2N+2, a binary tree of pages.
struct Site {
  int pages;
  std::chrono::milliseconds latency;

  io::Task<http::Response> operator()(const http::Request& req) const {
    co_await io::sleep(latency);  // the slow backend behind every page
    std::string_view path = req.path();
    int n = path.starts_with("/page/") ? std::atoi(std::string(path.substr(6)).c_str()) : -1;
    if (n < 0 || n >= pages) co_return http::Response::text(404, "no such page\n");
    std::string html = "<h1>page " + std::to_string(n) + "</h1>";
    for (int child : {2 * n + 1, 2 * n + 2}) {
      if (child < pages) html += "<a href=\"/page/" + std::to_string(child) + "\">next</a>";
    }
    co_return http::Response::html(200, std::move(html));
  }
};

// The targets of href="..." in a page.
std::vector<std::string> links_in(std::string_view html) {
  std::vector<std::string> out;
  for (std::size_t at = html.find("href=\""); at != std::string_view::npos; at = html.find("href=\"", at)) {
    at += 6;
    std::size_t end = html.find('"', at);
    if (end == std::string_view::npos) break;
    out.emplace_back(html.substr(at, end - at));
  }
  return out;
}

// The concurrent crawler: each page is a task of one group; a semaphore bounds the requests in flight.
class Crawler {
 public:
  Crawler(std::string base, int concurrency)
      : base_(std::move(base)), permits_(static_cast<std::size_t>(concurrency)) {}

  io::Task<std::size_t> crawl(std::string start) {
    seen_.insert(start);
    co_await io::task_group([&](io::TaskGroup& g) -> io::Task<void> {
      g.spawn(visit(g, start));
      co_return;  // the group waits for every visit, including those spawned by visits
    });
    co_return fetched_;
  }

 private:
  io::Task<void> visit(io::TaskGroup& g, std::string path) {
    http::Response page;
    {
      io::SemaphoreGuard permit = co_await permits_.guard();  // wait for a free slot
      page = co_await http::get(base_ + path);
    }  // the permit goes back here: parsing the page does not hold a slot
    ++fetched_;
    for (std::string& link : links_in(page.body)) {
      if (seen_.insert(link).second) g.spawn(visit(g, std::move(link)));  // each page once
    }
  }

  std::string base_;
  io::Semaphore permits_;
  std::unordered_set<std::string> seen_;
  std::size_t fetched_ = 0;
};

// The sequential crawler: the same discovery, one request at a time.
io::Task<std::size_t> crawl_sequentially(const std::string& base, std::string start) {
  std::unordered_set<std::string> seen{start};
  std::deque<std::string> todo{std::move(start)};
  std::size_t fetched = 0;
  while (!todo.empty()) {
    http::Response page = co_await http::get(base + todo.front());
    todo.pop_front();
    ++fetched;
    for (std::string& link : links_in(page.body)) {
      if (seen.insert(link).second) todo.push_back(std::move(link));
    }
  }
  co_return fetched;
}

io::Task<bool> run(Settings s) {
  http::ServerOptions options;
  options.name = "crawl-me";
  http::Server server(Site{s.pages, std::chrono::milliseconds(s.latency_ms)}, options);
  io::Listener listener = io::Listener::bind(io::Address::loopback(s.port));
  const std::string base = "http://127.0.0.1:" + std::to_string(listener.local_address().port());
  std::printf("site: %d pages at %s, each answering after %d ms\n", s.pages, base.c_str(), s.latency_ms);

  std::size_t concurrent_pages = 0;
  std::size_t sequential_pages = 0;
  double concurrent_s = 0;
  double sequential_s = 0;
  co_await io::task_group([&](io::TaskGroup& g) -> io::Task<void> {
    g.spawn(server.serve(listener));

    auto t0 = Clock::now();
    Crawler crawler(base, s.concurrency);
    concurrent_pages = co_await crawler.crawl("/page/0");
    concurrent_s = std::chrono::duration<double>(Clock::now() - t0).count();
    std::printf("concurrent (at most %d requests in flight): %zu pages in %.3f s\n", s.concurrency,
                concurrent_pages, concurrent_s);

    auto t1 = Clock::now();
    sequential_pages = co_await crawl_sequentially(base, "/page/0");
    sequential_s = std::chrono::duration<double>(Clock::now() - t1).count();
    std::printf("sequential (one request at a time):        %zu pages in %.3f s\n", sequential_pages, sequential_s);
    server.stop();
  });
  std::printf("speedup: %.1fx on one thread\n", sequential_s / concurrent_s);
  co_return concurrent_pages == static_cast<std::size_t>(s.pages) && sequential_pages == concurrent_pages;
}

}  // namespace

int main(int argc, char** argv) {
  Settings s;
  for (int i = 1; i + 1 < argc; i += 2) {
    std::string_view a = argv[i];
    int v = std::atoi(argv[i + 1]);
    if (a == "--pages" && v > 0) s.pages = v;
    else if (a == "--concurrency" && v > 0) s.concurrency = v;
    else if (a == "--latency-ms" && v >= 0) s.latency_ms = v;
    else if (a == "--port" && v >= 0) s.port = static_cast<std::uint16_t>(v);
    else return std::fprintf(stderr, "usage: %s [--pages N] [--concurrency N] [--latency-ms N] [--port N]\n", argv[0]),
                2;
  }
  if (argc % 2 == 0) return std::fprintf(stderr, "%s: every option takes a value\n", argv[0]), 2;
  return io::run(run(s)) ? 0 : 1;
}
