// futures_composition.cpp — combining futures without blocking a thread per future.
//
// Python equivalents:
//   f.then(g)                         f.add_done_callback(...) that feeds a new future; asyncio's `await f` then g
//   when_all(futures)                 asyncio.gather(*futures) (but it never fails: you inspect each result)
//   when_any(futures)                 asyncio.wait(..., return_when=FIRST_COMPLETED), as a future
//   as_completed(futures)             concurrent.futures.as_completed(futures)
//   wait(futures, ReturnWhen::...)    concurrent.futures.wait(futures, return_when=...)
// A weft::Promise is the producer's end of a future (asyncio: loop.create_future() + set_result()); this
// example uses promises to decide exactly in which order things complete, so its output is always the same.
#include <cstdio>
#include <stdexcept>
#include <string>
#include <tuple>
#include <vector>

#include "weft/core/future.hpp"
#include "weft/core/when.hpp"
#include "weft/thread/thread_pool.hpp"

int main() {
  weft::ThreadPool pool(2);

  // then: a continuation runs when the future is ready, on the thread that completed it, and returns a
  // new future. Chains read top to bottom; an exception skips the value continuations and comes out at get().
  weft::Future<std::string> chained = pool.submit([] { return 6; })
                                          .then([](int x) { return x * 7; })
                                          .then([](int x) { return "the answer is " + std::to_string(x); });
  std::printf("then: %s\n", chained.get().c_str());

  weft::Future<int> failed = pool.submit([]() -> int { throw std::runtime_error("step 1 failed"); })
                                 .then([](int x) { return x + 1; });  // skipped: there is no value
  try {
    failed.get();
  } catch (const std::runtime_error& e) {
    std::printf("then: the first step's exception came through the chain: %s\n", e.what());
  }

  // A continuation that takes the Future itself sees failures too, and can recover (like try/except).
  weft::Future<int> recovered =
      pool.submit([]() -> int { throw std::runtime_error("no data"); }).then([](weft::Future<int> f) {
        try {
          return f.get();
        } catch (const std::exception&) {
          return -1;  // a default
        }
      });
  std::printf("then: recovered with a default: %d\n", recovered.get());

  // then(executor, f): run the continuation as a new task on a pool instead of on the completing thread.
  weft::Future<int> hopped = pool.submit([] { return 20; }).then(pool, [](int x) { return x + 1; });
  std::printf("then(pool, f): %d\n", hopped.get());

  // when_all: one future for many. Its value is the same futures, all ready, in the same order.
  std::vector<weft::Future<int>> parts;
  for (int i = 1; i <= 4; ++i) parts.push_back(pool.submit([i] { return i * i; }));
  int total = 0;
  for (auto& f : weft::when_all(std::move(parts)).get()) total += f.get();
  std::printf("when_all: 1 + 4 + 9 + 16 = %d\n", total);

  // when_all over different types gives a tuple of futures.
  auto [number, text] = weft::when_all(pool.submit([] { return 3.5; }), pool.submit([] { return std::string("pi?"); }))
                            .get();
  std::printf("when_all (tuple): %.1f and %s\n", number.get(), text.get().c_str());

  // when_any: ready as soon as one of them is, and says which. Here promise #2 is the one that delivers.
  std::vector<weft::Promise<std::string>> promises(3);
  std::vector<weft::Future<std::string>> futures;
  for (auto& p : promises) futures.push_back(p.get_future());
  weft::Future<weft::WhenAnyResult<std::string>> any = weft::when_any(std::move(futures));
  promises[2].set_value("third");
  weft::WhenAnyResult<std::string> first = any.get();
  std::printf("when_any: future #%zu finished first with \"%s\"\n", first.index,
              first.futures[first.index].get().c_str());
  // (The other promises are destroyed unfulfilled: their futures then hold BrokenPromise, never a hang.)

  // as_completed: futures in the order they finish, with their position in the input. They are made
  // to finish in the order 2, 0, 1.
  std::vector<weft::Promise<int>> more(3);
  std::vector<weft::Future<int>> more_futures;
  for (auto& p : more) more_futures.push_back(p.get_future());
  auto in_order = weft::as_completed(std::move(more_futures));
  more[2].set_value(30);
  more[0].set_value(10);
  more[1].set_value(20);
  std::printf("as_completed:");
  for (auto& done : in_order) std::printf(" #%zu=%d", done.index, done.future.get());
  std::printf("\n");

  // wait: block until a condition holds, without consuming the futures; returns which are done.
  std::vector<weft::Promise<int>> ps(3);
  std::vector<weft::Future<int>> fs;
  for (auto& p : ps) fs.push_back(p.get_future());
  ps[1].set_value(1);
  weft::WaitResult w = weft::wait(fs, weft::ReturnWhen::first_completed);
  std::printf("wait(first_completed): %zu done, %zu not done\n", w.done.size(), w.not_done.size());
  ps[0].set_exception(std::make_exception_ptr(std::runtime_error("boom")));
  w = weft::wait(fs, weft::ReturnWhen::first_exception);
  std::printf("wait(first_exception): returned once #0 failed; %zu done, %zu not done\n", w.done.size(),
              w.not_done.size());
  ps[2].set_value(3);
  w = weft::wait(fs, weft::ReturnWhen::all_completed);
  std::printf("wait(all_completed): %zu done\n", w.done.size());
  return 0;
}
