// Tests of weft::parallel_for and weft::parallel_for_range: every index visited exactly once for sizes from
// empty to 100'003 and grains automatic to large, on pools of 1, 2 and 8 workers (more than the cores);
// chunks disjoint, covering, no longer than the grain; signed, unsigned, negative, narrow and whole-type
// ranges; the exception of the lowest failing index reaching the caller as itself; nested loops; the
// default-pool overloads.
#include "weft/parallel/parallel_for.hpp"

#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <cstddef>
#include <cstdint>
#include <limits>
#include <memory>
#include <mutex>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

#include "weft/parallel/fork_join_pool.hpp"
#include "algorithm_test_support.hpp"

namespace {

using namespace weft::test::algorithms;

constexpr std::size_t kSizes[] = {0, 1, 2, 7, 1000, 100'003};

// Per-index visit counters.
class Visits {
 public:
  explicit Visits(std::size_t n) : counts_(std::make_unique<std::atomic<int>[]>(n)), n_(n) {}
  void visit(std::size_t i) {
    if (i >= n_) {
      out_of_range_.fetch_add(1, std::memory_order_relaxed);
      return;
    }
    counts_[i].fetch_add(1, std::memory_order_relaxed);
  }
  // Every index visited exactly once, nothing out of range.
  ::testing::AssertionResult each_once() const {
    if (out_of_range_.load() != 0) return ::testing::AssertionFailure() << out_of_range_.load() << " out of range";
    for (std::size_t i = 0; i < n_; ++i) {
      const int c = counts_[i].load();
      if (c != 1) return ::testing::AssertionFailure() << "index " << i << " visited " << c << " times";
    }
    return ::testing::AssertionSuccess();
  }

 private:
  std::unique_ptr<std::atomic<int>[]> counts_;
  std::size_t n_;
  std::atomic<int> out_of_range_{0};
};

struct Chunk {
  std::int64_t lo;
  std::int64_t hi;
};

// Chunks are non-empty, disjoint and cover [0, n) exactly.
::testing::AssertionResult tiles(std::vector<Chunk> chunks, std::int64_t n) {
  std::sort(chunks.begin(), chunks.end(), [](const Chunk& a, const Chunk& b) { return a.lo < b.lo; });
  std::int64_t next = 0;
  for (const Chunk& c : chunks) {
    if (c.lo != next || c.hi <= c.lo) {
      return ::testing::AssertionFailure() << "chunk [" << c.lo << ", " << c.hi << ") where " << next << " was due";
    }
    next = c.hi;
  }
  if (next != n) return ::testing::AssertionFailure() << "covered up to " << next << " of " << n;
  return ::testing::AssertionSuccess();
}

struct IndexError : std::runtime_error {
  explicit IndexError(std::int64_t i) : std::runtime_error("index " + std::to_string(i)), index(i) {}
  std::int64_t index;
};

TEST(ParallelFor, VisitsEveryIndexExactlyOnceOnTheWorkers) {
  for_each_pool([](weft::ForkJoinPool& pool) {
    for (std::size_t n : kSizes) {
      for (std::size_t grain : kGrains) {
        SCOPED_TRACE(size_and_grain(n, grain));
        Visits visits(n);
        std::atomic<int> off_pool{0};
        weft::parallel_for(
            pool, std::size_t{0}, n,
            [&](std::size_t i) {
              if (weft::ForkJoinPool::current() != &pool) off_pool.fetch_add(1, std::memory_order_relaxed);
              visits.visit(i);
            },
            grain);
        EXPECT_TRUE(visits.each_once());
        EXPECT_EQ(off_pool.load(), 0);
      }
    }
  });
}

TEST(ParallelFor, RangeChunksTileTheRangeAndRespectTheGrain) {
  for_each_pool([](weft::ForkJoinPool& pool) {
    for (std::size_t n : kSizes) {
      for (std::size_t grain : kGrains) {
        SCOPED_TRACE(size_and_grain(n, grain));
        std::mutex m;
        std::vector<Chunk> chunks;
        weft::parallel_for_range(
            pool, std::int64_t{0}, static_cast<std::int64_t>(n),
            [&](std::int64_t lo, std::int64_t hi) {
              std::scoped_lock lock(m);
              chunks.push_back({lo, hi});
            },
            grain);
        EXPECT_TRUE(tiles(chunks, static_cast<std::int64_t>(n)));
        const std::size_t limit = grain > 0 ? grain : std::max<std::size_t>(1, (n + 8 * pool.threads() - 1) / (8 * pool.threads()));
        for (const Chunk& c : chunks) EXPECT_LE(static_cast<std::size_t>(c.hi - c.lo), limit);
      }
    }
  });
}

TEST(ParallelFor, AutomaticGrainMakesEightToSixteenChunksPerWorker) {
  for_each_pool([](weft::ForkJoinPool& pool) {
    std::atomic<std::size_t> chunks{0};
    weft::parallel_for_range(pool, 0, 100'003, [&](int, int) { chunks.fetch_add(1); });
    EXPECT_GE(chunks.load(), 8 * pool.threads());
    EXPECT_LE(chunks.load(), 16 * pool.threads());
  });
}

TEST(ParallelFor, GrainLongerThanTheRangeIsOneCall) {
  weft::ForkJoinPool pool(2);
  std::vector<Chunk> chunks;  // one call: no lock needed
  weft::parallel_for_range(pool, 0, 7, [&](int lo, int hi) { chunks.push_back({lo, hi}); }, 1000);
  ASSERT_EQ(chunks.size(), 1u);
  EXPECT_EQ(chunks[0].lo, 0);
  EXPECT_EQ(chunks[0].hi, 7);
}

TEST(ParallelFor, EmptyAndReversedRangesCallNothingAndUseNoPoolWork) {
  weft::ForkJoinPool pool(2);
  const auto before = pool.stats().executed;
  std::atomic<int> calls{0};
  auto body = [&](auto) { calls.fetch_add(1); };
  auto range_body = [&](auto, auto) { calls.fetch_add(1); };
  weft::parallel_for(pool, 5, 5, body);
  weft::parallel_for(pool, 5, -5, body);
  weft::parallel_for(pool, 10u, 3u, body, 1);
  weft::parallel_for_range(pool, std::int64_t{0}, std::int64_t{0}, range_body);
  weft::parallel_for_range(pool, std::numeric_limits<std::int64_t>::max(), std::numeric_limits<std::int64_t>::min(),
                           range_body);
  weft::parallel_for(7, 7, body);
  weft::parallel_for_range(9u, 1u, range_body);
  EXPECT_EQ(calls.load(), 0);
  EXPECT_EQ(pool.stats().executed, before);
}

TEST(ParallelFor, SignedRangesAcrossZero) {
  for_each_pool([](weft::ForkJoinPool& pool) {
    for (std::size_t grain : kGrains) {
      Visits visits(2000);
      weft::parallel_for(pool, -1000, 1000, [&](int i) { visits.visit(static_cast<std::size_t>(i + 1000)); }, grain);
      EXPECT_TRUE(visits.each_once());
      Visits negative(500);
      weft::parallel_for(pool, std::int64_t{-700}, std::int64_t{-200},
                         [&](std::int64_t i) { negative.visit(static_cast<std::size_t>(i + 700)); }, grain);
      EXPECT_TRUE(negative.each_once());
    }
  });
}

// Narrow types: whole-type ranges, where last - first overflows the type itself.
TEST(ParallelFor, NarrowIndexTypesCoverTheirWholeRange) {
  for_each_pool([](weft::ForkJoinPool& pool) {
    for (std::size_t grain : kGrains) {
      Visits s8(255);
      weft::parallel_for(pool, std::numeric_limits<std::int8_t>::min(), std::numeric_limits<std::int8_t>::max(),
                         [&](std::int8_t i) { s8.visit(static_cast<std::size_t>(i + 128)); }, grain);
      EXPECT_TRUE(s8.each_once());
      Visits u8(255);
      weft::parallel_for(pool, std::uint8_t{0}, std::numeric_limits<std::uint8_t>::max(),
                         [&](std::uint8_t i) { u8.visit(i); }, grain);
      EXPECT_TRUE(u8.each_once());
      Visits s16(65535);
      weft::parallel_for(pool, std::numeric_limits<std::int16_t>::min(), std::numeric_limits<std::int16_t>::max(),
                         [&](std::int16_t i) { s16.visit(static_cast<std::size_t>(i + 32768)); }, grain);
      EXPECT_TRUE(s16.each_once());
    }
  });
}

TEST(ParallelFor, RangesAtTheEdgesOfSixtyFourBitTypes) {
  constexpr std::int64_t kMin = std::numeric_limits<std::int64_t>::min();
  constexpr std::int64_t kMax = std::numeric_limits<std::int64_t>::max();
  constexpr std::uint64_t kUMax = std::numeric_limits<std::uint64_t>::max();
  for_each_pool([&](weft::ForkJoinPool& pool) {
    for (std::size_t grain : kGrains) {
      Visits low(1000);
      weft::parallel_for(pool, kMin, kMin + 1000,
                         [&](std::int64_t i) { low.visit(static_cast<std::size_t>(i - kMin)); }, grain);
      EXPECT_TRUE(low.each_once());
      Visits high(1000);
      weft::parallel_for(pool, kMax - 1000, kMax,
                         [&](std::int64_t i) { high.visit(static_cast<std::size_t>(i - (kMax - 1000))); }, grain);
      EXPECT_TRUE(high.each_once());
      Visits top(1000);
      weft::parallel_for(pool, kUMax - 1000, kUMax, [&](std::uint64_t i) { top.visit(i - (kUMax - 1000)); }, grain);
      EXPECT_TRUE(top.each_once());
    }
  });
}

// 2^64 - 1 indices: only the chunk bounds are looked at. A count kept in the index type would overflow.
TEST(ParallelFor, WholeSixtyFourBitRangeSplitsWithoutOverflow) {
  constexpr std::int64_t kMin = std::numeric_limits<std::int64_t>::min();
  constexpr std::int64_t kMax = std::numeric_limits<std::int64_t>::max();
  for_each_pool([&](weft::ForkJoinPool& pool) {
    std::mutex m;
    std::vector<std::pair<std::int64_t, std::int64_t>> chunks;
    weft::parallel_for_range(pool, kMin, kMax, [&](std::int64_t lo, std::int64_t hi) {
      std::scoped_lock lock(m);
      chunks.emplace_back(lo, hi);
    });
    std::sort(chunks.begin(), chunks.end());
    ASSERT_FALSE(chunks.empty());
    EXPECT_EQ(chunks.front().first, kMin);
    EXPECT_EQ(chunks.back().second, kMax);
    for (std::size_t k = 0; k < chunks.size(); ++k) {
      EXPECT_LT(chunks[k].first, chunks[k].second);
      if (k > 0) {
        EXPECT_EQ(chunks[k - 1].second, chunks[k].first);
      }
    }
    EXPECT_GE(chunks.size(), 8 * pool.threads());
    EXPECT_LE(chunks.size(), 16 * pool.threads());

    std::atomic<std::uint64_t> covered{0};  // wraps modulo 2^64: must end at 2^64 - 1
    weft::parallel_for_range(
        pool, std::uint64_t{0}, std::numeric_limits<std::uint64_t>::max(),
        [&](std::uint64_t lo, std::uint64_t hi) { covered.fetch_add(hi - lo); }, std::uint64_t{1} << 58);
    EXPECT_EQ(covered.load(), std::numeric_limits<std::uint64_t>::max());
  });
}

// Bodies that throw for every index from some point on: the caller gets the exception of the lowest one
// (join rethrows its lower half's exception first, and everything below the lowest thrower always runs).
TEST(ParallelFor, ExceptionOfTheLowestFailingIndexReachesTheCaller) {
  for_each_pool([](weft::ForkJoinPool& pool) {
    for (std::size_t grain : kGrains) {
      SCOPED_TRACE("grain=" + std::to_string(grain));
      for (std::int64_t first_bad : {std::int64_t{0}, std::int64_t{77'777}, std::int64_t{100'002}}) {
        std::atomic<std::int64_t> visited_below{0};
        try {
          weft::parallel_for(
              pool, std::int64_t{0}, std::int64_t{100'003},
              [&](std::int64_t i) {
                if (i >= first_bad && i % 3 == first_bad % 3) throw IndexError(i);
                if (i < first_bad) visited_below.fetch_add(1, std::memory_order_relaxed);
              },
              grain);
          ADD_FAILURE() << "no exception";
        } catch (const IndexError& e) {
          EXPECT_EQ(e.index, first_bad);
          EXPECT_EQ(e.what(), "index " + std::to_string(first_bad));
        }
        EXPECT_EQ(visited_below.load(), first_bad);
      }
    }
    // The pool is still fine afterwards.
    Visits visits(1000);
    weft::parallel_for(pool, 0, 1000, [&](int i) { visits.visit(static_cast<std::size_t>(i)); });
    EXPECT_TRUE(visits.each_once());
  });
}

TEST(ParallelFor, ExceptionFromARangeBodyReachesTheCallerAsItself) {
  for_each_pool([](weft::ForkJoinPool& pool) {
    EXPECT_THROW(weft::parallel_for_range(
                     pool, 0, 100'003,
                     [](int lo, int hi) {
                       if (lo <= 99'999 && 99'999 < hi) throw std::out_of_range("deep");
                     },
                     1),
                 std::out_of_range);
  });
}

TEST(ParallelFor, NestedLoopsComplete) {
  for (std::size_t workers : {std::size_t{1}, std::size_t{2}}) {
    SCOPED_TRACE("workers=" + std::to_string(workers));
    weft::ForkJoinPool pool(workers);
    for (std::size_t grain : kGrains) {
      constexpr int kOuter = 60;
      constexpr int kInner = 300;
      Visits visits(kOuter * kInner);
      // The inner loop uses the default-pool overload: inside a job that is the job's own pool.
      weft::parallel_for(
          pool, 0, kOuter,
          [&](int i) {
            weft::parallel_for(0, kInner, [&](int j) {
              EXPECT_EQ(weft::ForkJoinPool::current(), &pool);
              visits.visit(static_cast<std::size_t>(i * kInner + j));
            });
          },
          grain);
      EXPECT_TRUE(visits.each_once());
      // Three levels with the pool passed explicitly.
      Visits deep(8 * 8 * 8);
      weft::parallel_for(pool, 0, 8, [&](int a) {
        weft::parallel_for(pool, 0, 8, [&](int b) {
          weft::parallel_for(pool, 0, 8, [&](int c) { deep.visit(static_cast<std::size_t>(a * 64 + b * 8 + c)); },
                             grain);
        });
      });
      EXPECT_TRUE(deep.each_once());
    }
  }
}

TEST(ParallelFor, DefaultPoolOverloadsRunOnTheDefaultPool) {
  for (std::size_t n : kSizes) {
    for (std::size_t grain : kGrains) {
      Visits visits(n);
      std::atomic<int> elsewhere{0};
      weft::parallel_for(
          std::size_t{0}, n,
          [&](std::size_t i) {
            if (weft::ForkJoinPool::current() != &weft::default_pool()) elsewhere.fetch_add(1);
            visits.visit(i);
          },
          grain);
      EXPECT_TRUE(visits.each_once());
      EXPECT_EQ(elsewhere.load(), 0);
      std::mutex m;
      std::vector<Chunk> chunks;
      weft::parallel_for_range(
          0, static_cast<int>(n),
          [&](int lo, int hi) {
            std::scoped_lock lock(m);
            chunks.push_back({lo, hi});
          },
          grain);
      EXPECT_TRUE(tiles(chunks, static_cast<std::int64_t>(n)));
    }
  }
}

TEST(ParallelFor, DefaultPoolOverloadInsideAJobUsesThatJobsPool) {
  weft::ForkJoinPool pool(2);
  std::atomic<int> elsewhere{0};
  Visits visits(1000);
  pool.invoke([&] {
    weft::parallel_for_range(0, 1000, [&](int lo, int hi) {
      for (int i = lo; i < hi; ++i) {
        if (weft::ForkJoinPool::current() != &pool) elsewhere.fetch_add(1);
        visits.visit(static_cast<std::size_t>(i));
      }
    });
  });
  EXPECT_TRUE(visits.each_once());
  EXPECT_EQ(elsewhere.load(), 0);
}

// The body is used in place: a move-only functor works, and its state is the caller's object.
TEST(ParallelFor, BodyIsNotCopied) {
  struct Counter {
    std::unique_ptr<std::atomic<int>> calls = std::make_unique<std::atomic<int>>(0);
    void operator()(int) const { calls->fetch_add(1); }
  };
  for_each_pool([](weft::ForkJoinPool& pool) {
    Counter counter;
    weft::parallel_for(pool, 0, 1000, counter, 7);
    EXPECT_EQ(counter.calls->load(), 1000);
    weft::parallel_for(pool, 0, 10, Counter{});  // an rvalue is fine too
  });
}

// Every index of a large range written by its own body: the results are all there after the call.
TEST(ParallelFor, WritesAreVisibleToTheCaller) {
  for_each_pool([](weft::ForkJoinPool& pool) {
    std::vector<std::uint64_t> out(100'003);
    weft::parallel_for(pool, std::size_t{0}, out.size(), [&](std::size_t i) { out[i] = i * i; });
    for (std::size_t i = 0; i < out.size(); ++i) ASSERT_EQ(out[i], i * i) << i;
  });
}

}  // namespace
