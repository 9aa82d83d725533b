// tests/core/race_rounds.hpp — a reusable start gate for race tests.
#pragma once

#include <barrier>
#include <cstddef>
#include <thread>
#include <vector>

namespace weft::test {

// Runs `rounds` rounds of a race on `n` threads that live for the whole test (starting a thread is slow
// under ThreadSanitizer): each round, setup(r) runs on this thread, then body(t, r) runs on every thread t,
// all released at once, then check(r) runs here once all of them have returned.
template <class Setup, class Body, class Check>
void race_rounds(int rounds, int n, Setup setup, Body body, Check check) {
  std::barrier<> sync(n + 1);
  std::vector<std::jthread> threads;
  threads.reserve(static_cast<std::size_t>(n));
  for (int t = 0; t < n; ++t) {
    threads.emplace_back([&, t] {
      for (int r = 0; r < rounds; ++r) {
        sync.arrive_and_wait();  // round r is set up
        body(t, r);
        sync.arrive_and_wait();  // round r is done
      }
    });
  }
  for (int r = 0; r < rounds; ++r) {
    setup(r);
    sync.arrive_and_wait();
    sync.arrive_and_wait();
    check(r);
  }
}

}  // namespace weft::test
