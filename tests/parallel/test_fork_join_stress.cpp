// Bounded stress runs of weft::ForkJoinPool, sweeping workers {1, 2, 3, 8, 32} and outside producers {1, 4}:
// recursion that mixes join, TaskGroup and submit+get (checked against a sequential checksum), many outside
// submitters at once (also on a tiny injection queue), pools built and destroyed with work in flight, and
// shutdown(cancel_pending) while recursive work runs (every future ends ready; AddressSanitizer checks that
// nothing leaks).
//
// Loops are bounded in count and smaller under the sanitizers; every run is under a Watchdog.
#include "weft/parallel/fork_join_pool.hpp"

#include <gtest/gtest.h>

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <exception>
#include <latch>
#include <memory>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "../thread/pool_test_support.hpp"
#include "weft/core/errors.hpp"
#include "weft/core/future.hpp"
#include "weft/parallel/task_group.hpp"
#include "fork_join_test_support.hpp"

namespace {

using namespace weft::test::forkjoin;

constexpr std::size_t kWorkers[] = {1, 2, 3, 8, 32};
constexpr std::size_t kProducers[] = {1, 4};

std::uint64_t mix(std::uint64_t x) {
  x ^= x >> 33;
  x *= 0xff51afd7ed558ccdULL;
  x ^= x >> 33;
  x *= 0xc4ceb9fe1a85ec53ULL;
  x ^= x >> 33;
  return x;
}

// A binary tree of node ids (children 2id and 2id+1); each inner node splits its two subtrees with join, a
// TaskGroup, or a submit whose future it then waits on, chosen by a hash of its id. Returns the sum of
// mix(id) over the subtree.
std::uint64_t tree(ForkJoinPool& pool, std::uint64_t id, int depth) {
  const std::uint64_t own = mix(id);
  if (depth == 0) return own;
  const std::uint64_t l = 2 * id;
  const std::uint64_t r = 2 * id + 1;
  switch (mix(id ^ 0x5bd1e995u) % 3) {
    case 0: {
      auto [a, b] = pool.join([&] { return tree(pool, l, depth - 1); }, [&] { return tree(pool, r, depth - 1); });
      return own + a + b;
    }
    case 1: {
      std::uint64_t a = 0;
      std::uint64_t b = 0;
      TaskGroup g(pool);
      g.spawn([&] { a = tree(pool, l, depth - 1); });
      g.spawn([&] { b = tree(pool, r, depth - 1); });
      g.wait();
      return own + a + b;
    }
    default: {
      Future<std::uint64_t> fa = pool.submit([&pool, l, depth] { return tree(pool, l, depth - 1); });
      const std::uint64_t b = tree(pool, r, depth - 1);
      return own + fa.get() + b;
    }
  }
}

std::uint64_t tree_seq(std::uint64_t id, int depth) {
  if (depth == 0) return mix(id);
  return mix(id) + tree_seq(2 * id, depth - 1) + tree_seq(2 * id + 1, depth - 1);
}

std::string label(std::size_t workers, std::size_t producers) {
  return "workers=" + std::to_string(workers) + " producers=" + std::to_string(producers);
}

TEST(ForkJoinStress, MixedRecursionChecksums) {
  Watchdog dog("ForkJoinStress.MixedRecursionChecksums");
  const int depth = static_cast<int>(scaled(10, 7));
  const int rounds = static_cast<int>(scaled(4, 2));
  for (std::size_t workers : kWorkers) {
    for (std::size_t producers : kProducers) {
      SCOPED_TRACE(label(workers, producers));
      ForkJoinPool pool(workers);
      std::vector<int> wrong(producers, 0);
      std::vector<int> failed(producers, 0);
      {
        std::latch go(static_cast<std::ptrdiff_t>(producers));
        std::vector<std::jthread> threads;
        for (std::size_t p = 0; p < producers; ++p) {
          threads.emplace_back([&, p] {
            go.arrive_and_wait();
            for (int r = 0; r < rounds; ++r) {
              const std::uint64_t root = 1 + p * 1000 + static_cast<std::uint64_t>(r);
              std::uint64_t got = 0;
              try {
                switch ((p + static_cast<std::size_t>(r)) % 3) {  // three ways in from outside
                  case 0:
                    got = pool.invoke([&] { return tree(pool, root, depth); });
                    break;
                  case 1:
                    got = pool.submit([&pool, root, depth] { return tree(pool, root, depth); }).get_for(kSafetyNet);
                    break;
                  default: {
                    auto [a, b] = pool.join([&] { return tree(pool, 2 * root, depth - 1); },
                                            [&] { return tree(pool, 2 * root + 1, depth - 1); });
                    got = mix(root) + a + b;
                  }
                }
              } catch (...) {
                ++failed[p];
                continue;
              }
              if (got != tree_seq(root, depth)) ++wrong[p];
            }
          });
        }
      }
      for (std::size_t p = 0; p < producers; ++p) {
        EXPECT_EQ(wrong[p], 0) << "producer " << p;
        EXPECT_EQ(failed[p], 0) << "producer " << p;
      }
    }
  }
}

TEST(ForkJoinStress, ManyOutsideSubmittersAtOnce) {
  Watchdog dog("ForkJoinStress.ManyOutsideSubmittersAtOnce");
  for (std::size_t capacity : {std::size_t{16384}, std::size_t{3}}) {
    // On the tiny queue nearly every submit waits for room: fewer tasks keep the run short.
    const long kEach = capacity > 3 ? static_cast<long>(scaled(2000, 300)) : static_cast<long>(scaled(400, 100));
    for (std::size_t workers : kWorkers) {
      for (std::size_t producers : {std::size_t{1}, std::size_t{4}, std::size_t{16}}) {
        if (capacity == 3 && producers > 4) continue;
        SCOPED_TRACE(label(workers, producers) + " capacity=" + std::to_string(capacity));
        ForkJoinPool pool(ForkJoinPoolOptions{.threads = workers, .capacity = capacity});
        std::atomic<long> posted{0};
        std::atomic<long> spawned{0};
        std::vector<long> sums(producers, -1);
        {
          std::latch go(static_cast<std::ptrdiff_t>(producers));
          std::vector<std::jthread> threads;
          for (std::size_t p = 0; p < producers; ++p) {
            threads.emplace_back([&, p] {
              go.arrive_and_wait();
              const long base = static_cast<long>(p) * kEach;
              std::vector<Future<long>> futures;
              futures.reserve(static_cast<std::size_t>(kEach));
              TaskGroup group(pool);
              for (long i = 0; i < kEach; ++i) {
                futures.push_back(pool.submit([](long v) { return v; }, base + i));
                if (i % 4 == 0) pool.post([&posted] { posted.fetch_add(1, std::memory_order_relaxed); });
                if (i % 4 == 1) group.spawn([&spawned] { spawned.fetch_add(1, std::memory_order_relaxed); });
              }
              group.wait();
              long sum = 0;
              for (auto& f : futures) sum += f.get_for(kSafetyNet);
              sums[p] = sum;
            });
          }
        }
        pool.shutdown();  // the posted tasks have run
        const long per_posts = (kEach + 3) / 4;
        const long per_spawns = (kEach + 2) / 4;
        EXPECT_EQ(posted.load(), per_posts * static_cast<long>(producers));
        EXPECT_EQ(spawned.load(), per_spawns * static_cast<long>(producers));
        for (std::size_t p = 0; p < producers; ++p) {
          const long first = static_cast<long>(p) * kEach;
          EXPECT_EQ(sums[p], kEach * first + kEach * (kEach - 1) / 2) << "producer " << p;
        }
      }
    }
  }
}

long fib_join(ForkJoinPool& pool, int n) {
  if (n < 2) return n;
  auto [a, b] = pool.join([&] { return fib_join(pool, n - 1); }, [&] { return fib_join(pool, n - 2); });
  return a + b;
}

long fib_seq(int n) { return n < 2 ? n : fib_seq(n - 1) + fib_seq(n - 2); }

TEST(ForkJoinStress, RepeatedConstructDestroyWithWorkInFlight) {
  Watchdog dog("ForkJoinStress.RepeatedConstructDestroyWithWorkInFlight");
  const int iterations = static_cast<int>(scaled(40, 10));
  for (int it = 0; it < iterations; ++it) {
    const std::size_t workers = kWorkers[static_cast<std::size_t>(it) % std::size(kWorkers)];
    SCOPED_TRACE("iteration " + std::to_string(it) + " workers=" + std::to_string(workers));
    std::atomic<int> posted{0};
    std::vector<Future<long>> joins;
    std::vector<Future<long>> nested;
    {
      ForkJoinPool pool(workers);
      for (int i = 0; i < 8; ++i) joins.push_back(pool.submit([&pool] { return fib_join(pool, 15); }));
      for (int i = 0; i < 50; ++i) pool.post([&posted] { posted.fetch_add(1); });
      // Tasks that submit from inside: once the destructor's shutdown has begun their inner submit is
      // refused (BrokenExecutor), which their future then carries.
      for (int i = 0; i < 8; ++i) {
        nested.push_back(pool.submit([&pool, i] { return pool.submit([i] { return static_cast<long>(i); }).get(); }));
      }
    }  // destroyed at once: the destructor drains
    EXPECT_EQ(posted.load(), 50);
    for (auto& f : joins) {
      ASSERT_TRUE(f.ready());
      EXPECT_EQ(f.get(), 610);
    }
    for (int i = 0; i < 8; ++i) {
      auto& f = nested[static_cast<std::size_t>(i)];
      ASSERT_TRUE(f.ready());
      try {
        EXPECT_EQ(f.get(), i);
      } catch (const BrokenExecutor&) {
      }
    }
  }
}

TEST(ForkJoinStress, ShutdownCancelPendingWhileRecursiveWorkRuns) {
  Watchdog dog("ForkJoinStress.ShutdownCancelPendingWhileRecursiveWorkRuns");
  const int depth = static_cast<int>(scaled(9, 6));
  const int kTasks = static_cast<int>(scaled(32, 12));
  for (std::size_t workers : kWorkers) {
    for (std::size_t producers : kProducers) {
      SCOPED_TRACE(label(workers, producers));
      ForkJoinPool pool(workers);
      std::latch first_started(1);
      std::atomic<bool> counted{false};
      std::vector<std::vector<Future<std::uint64_t>>> futures(producers);
      std::vector<std::uint64_t> expected;
      for (int i = 0; i < kTasks; ++i) expected.push_back(tree_seq(static_cast<std::uint64_t>(i + 1), depth));
      std::vector<int> refused(producers, 0);
      {
        std::vector<std::jthread> threads;
        for (std::size_t p = 0; p < producers; ++p) {
          threads.emplace_back([&, p] {
            for (int i = static_cast<int>(p); i < kTasks; i += static_cast<int>(producers)) {
              try {
                futures[p].push_back(pool.submit([&, i] {
                  if (!counted.exchange(true)) first_started.count_down();
                  return tree(pool, static_cast<std::uint64_t>(i + 1), depth);
                }));
              } catch (const BrokenExecutor&) {
                ++refused[p];  // the shutdown came first
              }
            }
          });
        }
        first_started.wait();
        pool.shutdown(Shutdown::cancel_pending);  // while the recursion runs (and producers may still submit)
      }
      int ok = 0, cancelled = 0, broken = 0, refused_total = 0;
      for (std::size_t p = 0; p < producers; ++p) {
        refused_total += refused[p];
        for (std::size_t k = 0; k < futures[p].size(); ++k) {
          auto& f = futures[p][k];
          ASSERT_TRUE(f.ready()) << "a future was left pending by shutdown";
          const int i = static_cast<int>(p + k * producers);
          try {
            EXPECT_EQ(f.get(), expected[static_cast<std::size_t>(i)]) << "task " << i;
            ++ok;
          } catch (const Cancelled&) {
            ++cancelled;  // never started, or a part it waited on never started
          } catch (const BrokenExecutor&) {
            ++broken;  // a submit inside it was refused
          }
        }
      }
      EXPECT_EQ(ok + cancelled + broken + refused_total, kTasks);
      EXPECT_THROW((void)pool.submit([] { return 0; }), BrokenExecutor);
    }
  }
}

TEST(ForkJoinStress, ShutdownDrainWhileRecursiveWorkRuns) {
  Watchdog dog("ForkJoinStress.ShutdownDrainWhileRecursiveWorkRuns");
  const int depth = static_cast<int>(scaled(9, 6));
  const int kTasks = static_cast<int>(scaled(16, 6));
  for (std::size_t workers : kWorkers) {
    SCOPED_TRACE("workers=" + std::to_string(workers));
    ForkJoinPool pool(workers);
    std::latch first_started(1);
    std::atomic<bool> counted{false};
    std::vector<Future<long>> futures;
    for (int i = 0; i < kTasks; ++i) {
      // join and TaskGroup only: both keep working during a shutdown, so every task must finish normally.
      futures.push_back(pool.submit([&, i] {
        if (!counted.exchange(true)) first_started.count_down();
        TaskGroup g(pool);
        std::atomic<long> sum{0};
        for (int k = 0; k < 4; ++k) g.spawn([&] { sum.fetch_add(fib_join(pool, depth + 4)); });
        g.wait();
        return sum.load() + i;
      }));
    }
    first_started.wait();
    pool.shutdown(Shutdown::drain);
    const long f = fib_seq(depth + 4);
    for (int i = 0; i < kTasks; ++i) {
      ASSERT_TRUE(futures[static_cast<std::size_t>(i)].ready());
      EXPECT_EQ(futures[static_cast<std::size_t>(i)].get(), 4 * f + i);
    }
  }
}

}  // namespace
