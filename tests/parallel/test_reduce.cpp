// Tests of weft::parallel_reduce (index and iterator forms) and weft::parallel_transform_reduce (one and two
// ranges): results equal to the sequential std:: algorithms for sizes from empty to 100'003, grains
// automatic to large, pools of 1, 2 and 8 workers; order kept for non-commutative operations on
// non-trivially-copyable and custom types; bit-for-bit reproducible floating-point results; exceptions from
// deep in the split tree reaching the caller as themselves; nesting; the default-pool overloads.
#include "weft/parallel/reduce.hpp"

#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <functional>
#include <limits>
#include <memory>
#include <numeric>
#include <random>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

#include "weft/parallel/fork_join_pool.hpp"
#include "weft/parallel/parallel_for.hpp"
#include "algorithm_test_support.hpp"

namespace {

using namespace weft::test::algorithms;

constexpr std::size_t kSizes[] = {0, 1, 2, 7, 1000, 100'003};
// The iterator forms have no grain: sizes around their smallest chunk and the 8-accumulator loop's steps.
constexpr std::size_t kIteratorSizes[] = {0, 1, 2, 3, 7, 8, 15, 16, 17, 23, 24, 25, 1000, 2047, 2048, 2049, 5000, 100'003};

std::vector<std::int64_t> iota_values(std::size_t n) {
  std::vector<std::int64_t> v(n);
  std::iota(v.begin(), v.end(), std::int64_t{0});
  return v;
}

std::vector<double> random_doubles(std::size_t n, unsigned seed) {
  std::mt19937_64 gen(seed);
  std::uniform_real_distribution<double> dist(-1.0, 1.0);
  std::vector<double> v(n);
  for (double& x : v) x = dist(gen);
  return v;
}

// Small integers as doubles: every sum is exact, whatever the grouping.
std::vector<double> integral_doubles(std::size_t n) {
  std::vector<double> v(n);
  for (std::size_t i = 0; i < n; ++i) v[i] = static_cast<double>(static_cast<int>(i % 1000) - 400);
  return v;
}

// A 2x2 matrix of integers modulo 2^64: multiplication is associative, not commutative.
struct Mat2 {
  std::uint64_t a = 1, b = 0, c = 0, d = 1;
  friend Mat2 operator*(const Mat2& x, const Mat2& y) {
    return {x.a * y.a + x.b * y.c, x.a * y.b + x.b * y.d, x.c * y.a + x.d * y.c, x.c * y.b + x.d * y.d};
  }
  friend bool operator==(const Mat2&, const Mat2&) = default;
};

// A random word in the two shears [[1,1],[0,1]] and [[1,0],[1,1]]: they do not commute, and with
// determinant 1 every product stays invertible (it never collapses to a matrix that hides the order).
std::vector<Mat2> random_matrices(std::size_t n) {
  std::mt19937_64 gen(7);
  std::vector<Mat2> v(n);
  for (Mat2& m : v) m = (gen() & 1) != 0 ? Mat2{1, 1, 0, 1} : Mat2{1, 0, 1, 1};
  return v;
}

const auto concat = [](std::string a, const std::string& b) {
  a += b;
  return a;
};

std::vector<std::string> words(std::size_t n) {
  std::vector<std::string> v(n);
  for (std::size_t i = 0; i < n; ++i) v[i] = std::to_string(i) + ",";
  return v;
}

struct Boom : std::runtime_error {
  explicit Boom(std::int64_t i) : std::runtime_error("boom " + std::to_string(i)), index(i) {}
  std::int64_t index;
};

// ---------------------------------------------------------------------------------------------------------
// Index form

TEST(ParallelReduce, IndexFormMatchesASequentialLoop) {
  for_each_pool([](weft::ForkJoinPool& pool) {
    for (std::size_t n : kSizes) {
      std::uint64_t expected = 0;
      for (std::uint64_t i = 0; i < n; ++i) expected += i * i + 1;
      for (std::size_t grain : kGrains) {
        SCOPED_TRACE(size_and_grain(n, grain));
        const std::uint64_t got = weft::parallel_reduce(
            pool, std::uint64_t{0}, std::uint64_t{n}, std::uint64_t{0},
            [](std::uint64_t lo, std::uint64_t hi, std::uint64_t acc) {
              for (std::uint64_t i = lo; i < hi; ++i) acc += i * i + 1;
              return acc;
            },
            std::plus<>(), grain);
        EXPECT_EQ(got, expected);
      }
    }
  });
}

// Each chunk appends its indices to a fresh copy of the (empty) identity; combine appends right to left. The
// result is the whole range in order only if chunks start from identity and combine keeps left before right.
TEST(ParallelReduce, IndexFormKeepsOrderAndStartsEachChunkFromIdentity) {
  for_each_pool([](weft::ForkJoinPool& pool) {
    for (std::size_t n : kSizes) {
      const auto first = -static_cast<std::int64_t>(n / 2);
      const auto last = first + static_cast<std::int64_t>(n);
      std::vector<std::int64_t> expected(n);
      std::iota(expected.begin(), expected.end(), first);
      for (std::size_t grain : kGrains) {
        SCOPED_TRACE(size_and_grain(n, grain));
        const auto got = weft::parallel_reduce(
            pool, first, last, std::vector<std::int64_t>{},
            [](std::int64_t lo, std::int64_t hi, std::vector<std::int64_t> acc) {
              for (std::int64_t i = lo; i < hi; ++i) acc.push_back(i);
              return acc;
            },
            [](std::vector<std::int64_t> left, const std::vector<std::int64_t>& right) {
              left.insert(left.end(), right.begin(), right.end());
              return left;
            },
            grain);
        EXPECT_EQ(got, expected);
      }
    }
  });
}

TEST(ParallelReduce, IndexFormChunksRespectTheGrain) {
  for_each_pool([](weft::ForkJoinPool& pool) {
    for (std::size_t grain : {std::size_t{1}, std::size_t{3}, std::size_t{1000}}) {
      SCOPED_TRACE(size_and_grain(100'003, grain));
      // T = (chunks, longest chunk)
      using Stat = std::pair<std::size_t, std::size_t>;
      const Stat s = weft::parallel_reduce(
          pool, 0, 100'003, Stat{0, 0}, [](int lo, int hi, Stat) { return Stat{1, static_cast<std::size_t>(hi - lo)}; },
          [](Stat l, Stat r) { return Stat{l.first + r.first, std::max(l.second, r.second)}; }, grain);
      EXPECT_LE(s.second, grain);
      EXPECT_GE(s.first, (100'003 + grain - 1) / grain);
    }
  });
}

TEST(ParallelReduce, IndexFormEmptyAndReversedRangesReturnIdentityWithoutPoolWork) {
  weft::ForkJoinPool pool(2);
  const auto before = pool.stats().executed;
  std::atomic<int> calls{0};
  auto leaf = [&](auto, auto, std::string acc) {
    calls.fetch_add(1);
    return acc;
  };
  EXPECT_EQ(weft::parallel_reduce(pool, 4, 4, std::string("id"), leaf, concat), "id");
  EXPECT_EQ(weft::parallel_reduce(pool, 4, -4, std::string("id"), leaf, concat, 1), "id");
  EXPECT_EQ(weft::parallel_reduce(pool, 9u, 2u, std::string("id"), leaf, concat), "id");
  EXPECT_EQ(weft::parallel_reduce(3L, 3L, std::string("id"), leaf, concat), "id");
  EXPECT_EQ(calls.load(), 0);
  EXPECT_EQ(pool.stats().executed, before);
}

TEST(ParallelReduce, IndexFormSignedUnsignedAndEdgeRanges) {
  constexpr std::int64_t kMax = std::numeric_limits<std::int64_t>::max();
  constexpr std::uint64_t kUMax = std::numeric_limits<std::uint64_t>::max();
  auto sum_leaf = [](auto lo, auto hi, std::int64_t acc) {
    for (auto i = lo; i < hi; ++i) acc += static_cast<std::int64_t>(i % 7);
    return acc;
  };
  for_each_pool([&](weft::ForkJoinPool& pool) {
    for (std::size_t grain : kGrains) {
      SCOPED_TRACE("grain=" + std::to_string(grain));
      std::int64_t expected = 0;
      for (int i = -1000; i < 1000; ++i) expected += i % 7;
      EXPECT_EQ(weft::parallel_reduce(pool, -1000, 1000, std::int64_t{0}, sum_leaf, std::plus<>(), grain), expected);
      expected = 0;
      for (std::int64_t i = kMax - 1000; i < kMax; ++i) expected += i % 7;
      EXPECT_EQ(weft::parallel_reduce(pool, kMax - 1000, kMax, std::int64_t{0}, sum_leaf, std::plus<>(), grain),
                expected);
      expected = 0;
      for (std::uint64_t i = kUMax - 1000; i < kUMax; ++i) expected += static_cast<std::int64_t>(i % 7);
      EXPECT_EQ(weft::parallel_reduce(pool, kUMax - 1000, kUMax, std::int64_t{0}, sum_leaf, std::plus<>(), grain),
                expected);
      // int8_t over its whole range (last - first does not fit in int8_t).
      expected = 0;
      for (int i = -128; i < 127; ++i) expected += i;
      EXPECT_EQ(weft::parallel_reduce(
                    pool, std::numeric_limits<std::int8_t>::min(), std::numeric_limits<std::int8_t>::max(),
                    std::int64_t{0},
                    [](std::int8_t lo, std::int8_t hi, std::int64_t acc) {
                      for (int i = lo; i < hi; ++i) acc += i;
                      return acc;
                    },
                    std::plus<>(), grain),
                expected);
    }
  });
}

// The same floating-point sum, run again and again, is the same bits every time (the split tree does not
// depend on which worker stole what).
TEST(ParallelReduce, IndexFormIsReproducible) {
  const std::vector<double> v = random_doubles(100'003, 1);
  for_each_pool([&](weft::ForkJoinPool& pool) {
    for (std::size_t grain : kGrains) {
      SCOPED_TRACE("grain=" + std::to_string(grain));
      auto run = [&] {
        return weft::parallel_reduce(
            pool, std::size_t{0}, v.size(), 0.0,
            [&](std::size_t lo, std::size_t hi, double acc) {
              for (std::size_t i = lo; i < hi; ++i) acc += v[i];
              return acc;
            },
            std::plus<>(), grain);
      };
      const double first = run();
      EXPECT_NEAR(first, std::accumulate(v.begin(), v.end(), 0.0), 1e-9);
      for (int r = 0; r < 5; ++r) ASSERT_EQ(run(), first) << "round " << r;
    }
  });
}

TEST(ParallelReduce, IndexFormExceptionOfTheLowestFailingChunkReachesTheCaller) {
  for_each_pool([](weft::ForkJoinPool& pool) {
    for (std::size_t grain : kGrains) {
      SCOPED_TRACE("grain=" + std::to_string(grain));
      for (std::int64_t bad : {std::int64_t{0}, std::int64_t{54'321}, std::int64_t{100'002}}) {
        try {
          (void)weft::parallel_reduce(
              pool, std::int64_t{0}, std::int64_t{100'003}, std::int64_t{0},
              [&](std::int64_t lo, std::int64_t hi, std::int64_t acc) {
                for (std::int64_t i = lo; i < hi; ++i) {
                  if (i >= bad) throw Boom(i);
                  acc += i;
                }
                return acc;
              },
              std::plus<>(), grain);
          ADD_FAILURE() << "no exception";
        } catch (const Boom& e) {
          EXPECT_EQ(e.index, bad);
        }
      }
      // From combine, deep in the tree: thrown for the combination that reaches 50'000.
      EXPECT_THROW((void)weft::parallel_reduce(
                       pool, 0, 100'003, std::int64_t{0},
                       [](int lo, int hi, std::int64_t) { return std::int64_t{hi - lo}; },
                       [](std::int64_t l, std::int64_t r) {
                         if (l < 50'000 && l + r >= 50'000) throw Boom(l + r);
                         return l + r;
                       },
                       grain == 0 ? 1 : grain),
                   Boom);
    }
  });
}

TEST(ParallelReduce, IndexFormNestedInsideParallelFor) {
  for (std::size_t workers : {std::size_t{1}, std::size_t{2}}) {
    SCOPED_TRACE("workers=" + std::to_string(workers));
    weft::ForkJoinPool pool(workers);
    std::vector<std::int64_t> sums(40);
    weft::parallel_for(pool, std::size_t{0}, sums.size(), [&](std::size_t row) {
      sums[row] = weft::parallel_reduce(  // default-pool overload: the job's own pool
          std::int64_t{0}, std::int64_t{1000}, std::int64_t{0},
          [&](std::int64_t lo, std::int64_t hi, std::int64_t acc) {
            for (std::int64_t i = lo; i < hi; ++i) acc += i * static_cast<std::int64_t>(row);
            return acc;
          },
          std::plus<>(), 3);
    });
    for (std::size_t row = 0; row < sums.size(); ++row) EXPECT_EQ(sums[row], 499'500 * static_cast<std::int64_t>(row));
  }
}

TEST(ParallelReduce, IndexFormDefaultPoolOverload) {
  for (std::size_t n : kSizes) {
    for (std::size_t grain : kGrains) {
      SCOPED_TRACE(size_and_grain(n, grain));
      std::atomic<int> elsewhere{0};
      const auto got = weft::parallel_reduce(
          std::size_t{0}, n, std::size_t{0},
          [&](std::size_t lo, std::size_t hi, std::size_t acc) {
            if (weft::ForkJoinPool::current() != &weft::default_pool()) elsewhere.fetch_add(1);
            for (std::size_t i = lo; i < hi; ++i) acc += i;
            return acc;
          },
          std::plus<>(), grain);
      EXPECT_EQ(got, n * (n == 0 ? 0 : n - 1) / 2);
      EXPECT_EQ(elsewhere.load(), 0);
    }
  }
}

// ---------------------------------------------------------------------------------------------------------
// Iterator form (std::reduce)

TEST(ParallelReduce, IteratorFormMatchesStdReduce) {
  for_each_pool([](weft::ForkJoinPool& pool) {
    for (std::size_t n : kIteratorSizes) {
      SCOPED_TRACE("n=" + std::to_string(n));
      const auto v = iota_values(n);
      EXPECT_EQ(weft::parallel_reduce(pool, v.begin(), v.end(), std::int64_t{17}),
                std::reduce(v.begin(), v.end(), std::int64_t{17}));
      EXPECT_EQ(weft::parallel_reduce(pool, v.data(), v.data() + v.size(), std::int64_t{-3}, std::plus<std::int64_t>()),
                std::reduce(v.begin(), v.end(), std::int64_t{-3}));
      // max: init taking part, elements and init of different types.
      EXPECT_EQ(weft::parallel_reduce(pool, v.begin(), v.end(), 5L, [](long a, long b) { return std::max(a, b); }),
                std::max<long>(5, n == 0 ? 5 : static_cast<long>(n - 1)));
    }
  });
}

// Integer-valued doubles sum exactly in any grouping: checks the eight-accumulator path element by element.
TEST(ParallelReduce, IteratorFormSumsDoublesExactly) {
  for_each_pool([](weft::ForkJoinPool& pool) {
    for (std::size_t n : kIteratorSizes) {
      SCOPED_TRACE("n=" + std::to_string(n));
      const auto v = integral_doubles(n);
      const double expected = std::accumulate(v.begin(), v.end(), 0.5);
      EXPECT_EQ(weft::parallel_reduce(pool, v.begin(), v.end(), 0.5), expected);
      EXPECT_EQ(weft::parallel_reduce(pool, v.begin(), v.end(), 0.5, std::plus<double>()), expected);
      // float elements into a double (not the eight-accumulator path)
      std::vector<float> f(v.begin(), v.end());
      EXPECT_EQ(weft::parallel_reduce(pool, f.begin(), f.end(), 0.5), expected);
    }
  });
}

TEST(ParallelReduce, IteratorFormDoublesAreCloseAndReproducible) {
  const auto v = random_doubles(100'003, 2);
  const double sequential = std::accumulate(v.begin(), v.end(), 0.0);
  for_each_pool([&](weft::ForkJoinPool& pool) {
    const double first = weft::parallel_reduce(pool, v.begin(), v.end(), 0.0);
    EXPECT_NEAR(first, sequential, 1e-9);
    for (int r = 0; r < 10; ++r) ASSERT_EQ(weft::parallel_reduce(pool, v.begin(), v.end(), 0.0), first) << r;
  });
}

// Concatenation is associative but not commutative: any reordering shows in the result.
TEST(ParallelReduce, StringConcatenationKeepsOrder) {
  for_each_pool([](weft::ForkJoinPool& pool) {
    for (std::size_t n : kIteratorSizes) {
      SCOPED_TRACE("n=" + std::to_string(n));
      const auto w = words(n);
      const std::string expected = std::accumulate(w.begin(), w.end(), std::string("<"), concat);
      EXPECT_EQ(weft::parallel_reduce(pool, w.begin(), w.end(), std::string("<"), concat), expected);
    }
  });
}

TEST(ParallelReduce, CustomNonCommutativeTypeKeepsOrder) {
  for_each_pool([](weft::ForkJoinPool& pool) {
    for (std::size_t n : kIteratorSizes) {
      SCOPED_TRACE("n=" + std::to_string(n));
      const auto m = random_matrices(n);
      const Mat2 init{3, 1, 4, 1};
      const Mat2 expected = std::accumulate(m.begin(), m.end(), init, std::multiplies<>());
      EXPECT_EQ(weft::parallel_reduce(pool, m.begin(), m.end(), init, std::multiplies<>()), expected);
    }
  });
}

TEST(ParallelReduce, IteratorFormOnADeque) {
  std::deque<int> d;
  for (int i = 0; i < 100'003; ++i) d.push_back(i % 101);
  const long expected = std::accumulate(d.begin(), d.end(), 0L);
  for_each_pool([&](weft::ForkJoinPool& pool) { EXPECT_EQ(weft::parallel_reduce(pool, d.begin(), d.end(), 0L), expected); });
}

TEST(ParallelReduce, IteratorFormEmptyAndReversedRangesReturnInit) {
  weft::ForkJoinPool pool(2);
  const auto before = pool.stats().executed;
  const int values[] = {1, 2, 3, 4, 5, 6};
  EXPECT_EQ(weft::parallel_reduce(pool, values + 3, values + 3, 42), 42);
  EXPECT_EQ(weft::parallel_reduce(pool, values + 5, values + 2, 42), 42);
  EXPECT_EQ(weft::parallel_reduce(values + 5, values + 2, 42), 42);
  EXPECT_EQ(pool.stats().executed, before);
}

TEST(ParallelReduce, IteratorFormExceptionReachesTheCallerAsItself) {
  for_each_pool([](weft::ForkJoinPool& pool) {
    auto w = words(100'003);
    w[99'999] = "boom";
    auto op = [](std::string a, const std::string& b) {
      if (a == "boom" || b == "boom") throw Boom(99'999);
      a += b;
      return a;
    };
    try {
      (void)weft::parallel_reduce(pool, w.begin(), w.end(), std::string(), op);
      ADD_FAILURE() << "no exception";
    } catch (const Boom& e) {
      EXPECT_EQ(e.index, 99'999);
    }
  });
}

TEST(ParallelReduce, IteratorFormDefaultPoolOverload) {
  for (std::size_t n : kIteratorSizes) {
    SCOPED_TRACE("n=" + std::to_string(n));
    const auto w = words(n);
    EXPECT_EQ(weft::parallel_reduce(w.begin(), w.end(), std::string(">"), concat),
              std::accumulate(w.begin(), w.end(), std::string(">"), concat));
    const auto v = iota_values(n);
    EXPECT_EQ(weft::parallel_reduce(v.begin(), v.end(), std::int64_t{0}), std::reduce(v.begin(), v.end()));
  }
}

// ---------------------------------------------------------------------------------------------------------
// parallel_transform_reduce

TEST(ParallelTransformReduce, OneRangeMatchesStd) {
  for_each_pool([](weft::ForkJoinPool& pool) {
    for (std::size_t n : kIteratorSizes) {
      SCOPED_TRACE("n=" + std::to_string(n));
      const auto v = iota_values(n);
      auto square = [](std::int64_t x) { return x * x; };
      EXPECT_EQ(weft::parallel_transform_reduce(pool, v.begin(), v.end(), std::int64_t{9}, std::plus<>(), square),
                std::transform_reduce(v.begin(), v.end(), std::int64_t{9}, std::plus<>(), square));
      const auto d = integral_doubles(n);
      auto twice = [](double x) { return 2 * x; };  // double -> double: the eight-accumulator path
      EXPECT_EQ(weft::parallel_transform_reduce(pool, d.begin(), d.end(), 1.0, std::plus<>(), twice),
                std::transform_reduce(d.begin(), d.end(), 1.0, std::plus<>(), twice));
    }
  });
}

TEST(ParallelTransformReduce, InnerProductMatchesStd) {
  for_each_pool([](weft::ForkJoinPool& pool) {
    for (std::size_t n : kIteratorSizes) {
      SCOPED_TRACE("n=" + std::to_string(n));
      const auto a = iota_values(n);
      std::vector<int> b(n);
      for (std::size_t i = 0; i < n; ++i) b[i] = static_cast<int>(i % 13) - 6;
      EXPECT_EQ(weft::parallel_transform_reduce(pool, a.begin(), a.end(), b.begin(), std::int64_t{0}, std::plus<>(),
                                                std::multiplies<>()),
                std::inner_product(a.begin(), a.end(), b.begin(), std::int64_t{0}));
      const auto x = integral_doubles(n);
      std::vector<double> y(n);
      for (std::size_t i = 0; i < n; ++i) y[i] = static_cast<double>(i % 5);
      EXPECT_EQ(weft::parallel_transform_reduce(pool, x.begin(), x.end(), y.data(), 0.0, std::plus<>(),
                                                std::multiplies<>()),
                std::inner_product(x.begin(), x.end(), y.begin(), 0.0));
    }
  });
}

TEST(ParallelTransformReduce, DotProductIsCloseAndReproducible) {
  const auto x = random_doubles(100'003, 3);
  const auto y = random_doubles(100'003, 4);
  const double sequential = std::inner_product(x.begin(), x.end(), y.begin(), 0.0);
  for_each_pool([&](weft::ForkJoinPool& pool) {
    auto run = [&] {
      return weft::parallel_transform_reduce(pool, x.begin(), x.end(), y.begin(), 0.0, std::plus<>(),
                                             std::multiplies<>());
    };
    const double first = run();
    EXPECT_NEAR(first, sequential, 1e-9);
    for (int r = 0; r < 10; ++r) ASSERT_EQ(run(), first) << r;
  });
}

TEST(ParallelTransformReduce, TransformRunsOncePerElementOnTheWorkers) {
  for_each_pool([](weft::ForkJoinPool& pool) {
    for (std::size_t n : kIteratorSizes) {
      SCOPED_TRACE("n=" + std::to_string(n));
      const auto v = iota_values(n);
      auto counts = std::make_unique<std::atomic<int>[]>(n + 1);
      std::atomic<int> off_pool{0};
      const std::int64_t total = weft::parallel_transform_reduce(
          pool, v.begin(), v.end(), std::int64_t{0}, std::plus<>(), [&](std::int64_t i) {
            if (weft::ForkJoinPool::current() != &pool) off_pool.fetch_add(1);
            counts[static_cast<std::size_t>(i)].fetch_add(1, std::memory_order_relaxed);
            return i;
          });
      EXPECT_EQ(total, std::reduce(v.begin(), v.end()));
      EXPECT_EQ(off_pool.load(), 0);
      for (std::size_t i = 0; i < n; ++i) ASSERT_EQ(counts[i].load(), 1) << i;
    }
  });
}

TEST(ParallelTransformReduce, NonCommutativeReduceKeepsOrder) {
  for_each_pool([](weft::ForkJoinPool& pool) {
    for (std::size_t n : kIteratorSizes) {
      SCOPED_TRACE("n=" + std::to_string(n));
      const auto v = iota_values(n);
      auto name = [](std::int64_t i) { return std::to_string(i) + ";"; };
      std::string expected = "[";
      for (std::int64_t i : v) expected += name(i);
      EXPECT_EQ(weft::parallel_transform_reduce(pool, v.begin(), v.end(), std::string("["), concat, name), expected);
      // Two ranges: pairs joined in order.
      const auto w = words(n);
      auto pair = [](std::int64_t i, const std::string& s) { return std::to_string(i) + ":" + s; };
      std::string expected2;
      for (std::size_t i = 0; i < n; ++i) expected2 += pair(v[i], w[i]);
      EXPECT_EQ(weft::parallel_transform_reduce(pool, v.begin(), v.end(), w.begin(), std::string(), concat, pair),
                expected2);
    }
  });
}

TEST(ParallelTransformReduce, MixedTypes) {
  for_each_pool([](weft::ForkJoinPool& pool) {
    for (std::size_t n : kIteratorSizes) {
      SCOPED_TRACE("n=" + std::to_string(n));
      std::vector<float> f(n);
      for (std::size_t i = 0; i < n; ++i) f[i] = static_cast<float>(i % 100);
      auto half = [](float x) { return x / 2; };  // float -> float, summed into a double
      EXPECT_EQ(weft::parallel_transform_reduce(pool, f.begin(), f.end(), 0.0, std::plus<>(), half),
                std::transform_reduce(f.begin(), f.end(), 0.0, std::plus<>(), half));
      const auto m = random_matrices(n);
      std::vector<int> k(n);  // odd factors: the products stay invertible modulo 2^64
      for (std::size_t i = 0; i < n; ++i) k[i] = static_cast<int>(2 * (i % 3) + 1);
      auto scale = [](const Mat2& a, int s) {
        const auto u = static_cast<std::uint64_t>(s);
        return Mat2{a.a * u, a.b * u, a.c * u, a.d * u};
      };
      Mat2 expected{};
      for (std::size_t i = 0; i < n; ++i) expected = expected * scale(m[i], k[i]);
      EXPECT_EQ(weft::parallel_transform_reduce(pool, m.begin(), m.end(), k.begin(), Mat2{}, std::multiplies<>(), scale),
                expected);
    }
  });
}

TEST(ParallelTransformReduce, ExceptionFromTransformReachesTheCallerAsItself) {
  for_each_pool([](weft::ForkJoinPool& pool) {
    const auto v = iota_values(100'003);
    for (std::int64_t bad : {std::int64_t{0}, std::int64_t{65'432}, std::int64_t{100'002}}) {
      try {
        (void)weft::parallel_transform_reduce(pool, v.begin(), v.end(), std::int64_t{0}, std::plus<>(),
                                              [&](std::int64_t i) {
                                                if (i >= bad) throw Boom(i);
                                                return i;
                                              });
        ADD_FAILURE() << "no exception";
      } catch (const Boom& e) {
        EXPECT_EQ(e.index, bad);  // the lowest failing element: everything to its left runs first
      }
      EXPECT_THROW((void)weft::parallel_transform_reduce(pool, v.begin(), v.end(), v.begin(), std::int64_t{0},
                                                         std::plus<>(),
                                                         [&](std::int64_t i, std::int64_t j) {
                                                           if (i == bad) throw std::length_error("two ranges");
                                                           return i * j;
                                                         }),
                   std::length_error);
    }
  });
}

TEST(ParallelTransformReduce, DefaultPoolOverloads) {
  for (std::size_t n : kIteratorSizes) {
    SCOPED_TRACE("n=" + std::to_string(n));
    const auto v = iota_values(n);
    auto square = [](std::int64_t x) { return x * x; };
    EXPECT_EQ(weft::parallel_transform_reduce(v.begin(), v.end(), std::int64_t{0}, std::plus<>(), square),
              std::transform_reduce(v.begin(), v.end(), std::int64_t{0}, std::plus<>(), square));
    EXPECT_EQ(weft::parallel_transform_reduce(v.begin(), v.end(), v.begin(), std::int64_t{1}, std::plus<>(),
                                              std::multiplies<>()),
              std::inner_product(v.begin(), v.end(), v.begin(), std::int64_t{1}));
  }
}

TEST(ParallelTransformReduce, NestedInsideParallelFor) {
  for (std::size_t workers : {std::size_t{1}, std::size_t{2}}) {
    SCOPED_TRACE("workers=" + std::to_string(workers));
    weft::ForkJoinPool pool(workers);
    const auto v = iota_values(5000);
    std::vector<std::int64_t> dots(24);
    weft::parallel_for(pool, std::size_t{0}, dots.size(), [&](std::size_t row) {
      dots[row] = weft::parallel_transform_reduce(
          v.begin(), v.end(), std::int64_t{0}, std::plus<>(),
          [row](std::int64_t x) { return x * static_cast<std::int64_t>(row); });
    });
    const std::int64_t base = std::reduce(v.begin(), v.end());
    for (std::size_t row = 0; row < dots.size(); ++row) EXPECT_EQ(dots[row], base * static_cast<std::int64_t>(row));
  }
}

}  // namespace
