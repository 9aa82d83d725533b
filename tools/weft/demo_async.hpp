// tools/weft/demo_async.hpp — the async I/O part of `weft demo`: one thread's event loop serves a small site
// whose pages answer after a delay (a slow backend: the I/O-bound case) and fetches its pages, first one after
// another, then many at once with a bound on how many are in flight.
#pragma once

#include <chrono>
#include <cstddef>
#include <string>

namespace weft::cli {

struct AsyncFetchResult {
  std::size_t pages = 0;
  std::size_t concurrency = 0;
  std::string backend;             ///< the event loop's backend ("uring" or "epoll")
  double sequential_seconds = 0;
  double concurrent_seconds = 0;
  std::size_t max_in_flight = 0;   ///< the most requests the server had in progress at once
  bool ok = false;                 ///< every page came back whole, the same both times, and the bound held
  double speedup() const { return concurrent_seconds > 0 ? sequential_seconds / concurrent_seconds : 0; }
};

/// Starts an io::http::Server on 127.0.0.1 (a free port) whose every page takes `latency` to answer, fetches
/// `pages` pages from it with io::http::get sequentially and then `concurrency` at a time, all on one thread,
/// and checks the results. Prints its lines to stdout.
AsyncFetchResult async_fetch(std::size_t pages, std::chrono::milliseconds latency, std::size_t concurrency);

}  // namespace weft::cli
