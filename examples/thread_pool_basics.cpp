// thread_pool_basics.cpp — a pool of worker threads, and futures for what they compute.
//
// Python: concurrent.futures.ThreadPoolExecutor. weft::ThreadPool is the same idea in C++, bounded:
//   pool.submit(fn, args...) → Future           executor.submit(fn, *args) → Future
//   future.get()                                 future.result()
//   pool.map(fn, items)                          list(executor.map(fn, items))
//   pool.post(fn)                                submit and forget (the exception goes to a handler)
//   pool.shutdown() / the destructor             executor.shutdown(wait=True) / the `with` block's end
// Unlike Python's threads, these run truly in parallel: C++ has no global interpreter lock.
#include <cstdio>
#include <exception>
#include <stdexcept>
#include <string>
#include <vector>

#include "weft/core/errors.hpp"
#include "weft/core/future.hpp"
#include "weft/thread/thread_pool.hpp"

namespace {

long long sum_of_squares(int n) {
  long long s = 0;
  for (int i = 1; i <= n; ++i) s += static_cast<long long>(i) * i;
  return s;
}

}  // namespace

int main() {
  // Four workers. With no argument (or threads = 0) the pool starts one worker per available core.
  weft::ThreadPool pool(4);

  // submit: the function and its arguments are copied into the task (like std::thread); the future is
  // the handle to the eventual result.
  weft::Future<long long> f = pool.submit(sum_of_squares, 1000);
  std::printf("submit: sum of squares 1..1000 = %lld\n", f.get());  // get() waits, then hands the value over

  // Many tasks at once, gathered in submission order.
  std::vector<weft::Future<long long>> futures;
  for (int n = 1; n <= 5; ++n) futures.push_back(pool.submit([n] { return sum_of_squares(n * 100); }));
  std::printf("submit x5:");
  for (auto& fut : futures) std::printf(" %lld", fut.get());
  std::printf("\n");

  // Exceptions: a task's exception is stored in its future and rethrown, unchanged, by get() — it is never
  // swallowed and never kills the worker (Python: future.result() re-raises).
  weft::Future<int> bad = pool.submit([]() -> int { throw std::out_of_range("index 7 is past the end"); });
  try {
    bad.get();
  } catch (const std::out_of_range& e) {
    std::printf("exception: get() rethrew std::out_of_range: %s\n", e.what());
  }

  // map: f(item) for every item, run in chunks on the pool, results in input order.
  const std::vector<int> inputs{1, 2, 3, 4, 5, 6, 7, 8};
  const std::vector<int> squares = pool.map([](int x) { return x * x; }, inputs);
  std::printf("map: squares =");
  for (int s : squares) std::printf(" %d", s);
  std::printf("\n");

  // post: fire and forget — no future. A posted task's exception goes to the pool's on_error handler
  // (by default weft's unhandled-exception handler, which logs to stderr).
  std::exception_ptr posted_error;
  {
    weft::ThreadPoolOptions options;
    options.threads = 1;
    options.name = "posting";
    // Called on the worker thread; this pool has one, and we read the result only after the pool is gone.
    options.on_error = [&posted_error](std::exception_ptr e) { posted_error = std::move(e); };
    weft::ThreadPool posting(options);
    posting.post([] { std::printf("post: a detached task ran\n"); });
    posting.post([] { throw std::runtime_error("a posted task failed"); });
  }  // the destructor runs everything queued (shutdown with drain), then joins the worker
  if (posted_error) std::printf("post: on_error received: %s\n", weft::describe_exception(posted_error).c_str());

  // After shutdown the pool takes no more work: submit throws BrokenExecutor.
  pool.shutdown();
  try {
    pool.submit([] { return 0; });
  } catch (const weft::BrokenExecutor& e) {
    std::printf("shutdown: submit now throws BrokenExecutor (%s)\n", e.what());
  }
  const weft::ThreadPoolStats stats = pool.stats();
  std::printf("stats: completed %llu, failed %llu\n", static_cast<unsigned long long>(stats.completed),
              static_cast<unsigned long long>(stats.failed));
  return 0;
}
