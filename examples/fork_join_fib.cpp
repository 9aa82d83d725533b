// fork_join_fib.cpp — fork/join on a work-stealing pool: join, TaskGroup, invoke, and waiting inside tasks.
//
// Python equivalents: there is no direct one. concurrent.futures can express "submit the halves and wait", but
// a pool thread that waits on its own pool's futures blocks — recursion deeper than the pool has threads
// deadlocks. weft's ForkJoinPool has its waiting workers run other work instead, so any depth is fine.
#include <atomic>
#include <cstdint>
#include <cstdio>
#include <stdexcept>
#include <vector>

#include "weft/parallel/fork_join_pool.hpp"
#include "weft/parallel/task_group.hpp"

// join(a, b): a runs here, b waits in this worker's deque where an idle worker can steal it; if nobody
// did, this worker runs b right after a. No allocation, no future: the cheapest way to split work in two.
std::uint64_t fib(weft::ForkJoinPool& pool, int n) {
  if (n < 20) return n < 2 ? static_cast<std::uint64_t>(n) : fib(pool, n - 1) + fib(pool, n - 2);  // cutoff
  auto [a, b] = pool.join([&] { return fib(pool, n - 1); }, [&] { return fib(pool, n - 2); });
  return a + b;
}

// The same recursion with a future per call, waited on inside the task: safe on a ForkJoinPool even with a
// single worker, because the waiting worker runs the sub-task itself.
std::uint64_t fib_futures(weft::ForkJoinPool& pool, int n) {
  if (n < 2) return static_cast<std::uint64_t>(n);
  weft::Future<std::uint64_t> left = pool.submit([&pool, n] { return fib_futures(pool, n - 1); });
  const std::uint64_t right = fib_futures(pool, n - 2);
  return left.get() + right;
}

int main() {
  weft::ForkJoinPool pool;  // one worker per available core

  // invoke: from outside the pool, run a function on a worker and wait for its result.
  std::printf("fib(35) = %llu with join\n", static_cast<unsigned long long>(pool.invoke([&] { return fib(pool, 35); })));

  weft::ForkJoinPool one(1);
  std::printf("fib(18) = %llu with a future per call on a 1-worker pool\n",
              static_cast<unsigned long long>(one.invoke([&] { return fib_futures(one, 18); })));

  // TaskGroup: spawn any number of tasks, wait once. The first exception cancels the tasks not started yet
  // and comes out of wait() once the running ones have finished.
  std::vector<int> squares(100);
  weft::TaskGroup group(pool);
  for (int i = 0; i < 100; ++i) group.spawn([&squares, i] { squares[i] = i * i; });
  group.wait();
  std::printf("TaskGroup: squares[99] = %d\n", squares[99]);

  std::atomic<int> ran{0};
  for (int i = 0; i < 1000; ++i) {
    group.spawn([&ran, i] {
      ran.fetch_add(1);
      if (i == 10) throw std::runtime_error("task 10 failed");
    });
  }
  try {
    group.wait();
  } catch (const std::runtime_error& e) {
    std::printf("TaskGroup: %s; %d of 1000 tasks ran before the group was cancelled\n", e.what(), ran.load());
  }

  weft::ForkJoinPoolStats s = pool.stats();
  std::printf("pool: %zu workers, %llu jobs stolen, %llu times a worker went to sleep\n", s.threads,
              static_cast<unsigned long long>(s.stolen), static_cast<unsigned long long>(s.parks));
}
