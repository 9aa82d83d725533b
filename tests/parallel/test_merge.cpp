// Tests of weft::parallel_merge against std::merge: input shapes and every pairing of sizes from 0 to
// 100'003 (and 1'000'000), balanced and lopsided, on pools of 1, 2 and 8 workers and the default pool;
// stability (of equal keys, the first input's elements first, each input's order kept); std::greater and a
// comparator on a struct field; std::string and a struct holding one; different iterator types; the
// returned end; a comparator exception reaching the caller.
#include "weft/parallel/sort.hpp"

#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <random>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

#include "weft/parallel/fork_join_pool.hpp"
#include "algorithm_test_support.hpp"

namespace {

using namespace weft::test::algorithms;

constexpr std::size_t kSizes[] = {0, 1, 2, 17, 1000, 100'003};

// A key, the input it came from (0 or 1) and its position there: a merge by key alone must keep
// (source, index) in the order std::merge gives.
struct Tagged {
  std::uint32_t key = 0;
  std::uint32_t source = 0;
  std::uint32_t index = 0;
  bool operator==(const Tagged&) const = default;
};

struct ByKey {
  bool operator()(const Tagged& a, const Tagged& b) const { return a.key < b.key; }
};

enum class Keys { random, few_distinct, all_equal, disjoint_low, disjoint_high };
constexpr Keys kKeyKinds[] = {Keys::random, Keys::few_distinct, Keys::all_equal, Keys::disjoint_low,
                              Keys::disjoint_high};

const char* name_of(Keys k) {
  switch (k) {
    case Keys::random: return "random";
    case Keys::few_distinct: return "few_distinct";
    case Keys::all_equal: return "all_equal";
    case Keys::disjoint_low: return "disjoint_low";
    case Keys::disjoint_high: return "disjoint_high";
  }
  return "?";
}

// A sorted input of n elements tagged with `source`. disjoint_low/high: all of source 0's keys below (above)
// all of source 1's.
std::vector<Tagged> make_input(Keys kind, std::size_t n, std::uint32_t source, std::uint32_t seed) {
  std::mt19937 rng(seed * 2 + source);
  std::vector<Tagged> v(n);
  for (std::size_t i = 0; i < n; ++i) {
    std::uint32_t key = 0;
    switch (kind) {
      case Keys::random: key = rng() % 1'000'000; break;
      case Keys::few_distinct: key = rng() % 4; break;
      case Keys::all_equal: key = 7; break;
      case Keys::disjoint_low: key = rng() % 1000 + (source == 0 ? 0 : 1000); break;
      case Keys::disjoint_high: key = rng() % 1000 + (source == 0 ? 1000 : 0); break;
    }
    v[i].key = key;
    v[i].source = source;
  }
  std::sort(v.begin(), v.end(), ByKey{});
  for (std::size_t i = 0; i < n; ++i) v[i].index = static_cast<std::uint32_t>(i);
  return v;
}

// Merges with weft::parallel_merge and std::merge and compares the outputs and the returned ends.
template <class T, class Comp>
::testing::AssertionResult merges_like_std(weft::ForkJoinPool& pool, const std::vector<T>& a,
                                           const std::vector<T>& b, Comp comp) {
  std::vector<T> expected(a.size() + b.size());
  std::merge(a.begin(), a.end(), b.begin(), b.end(), expected.begin(), comp);
  std::vector<T> out(a.size() + b.size());
  auto end = weft::parallel_merge(pool, a.begin(), a.end(), b.begin(), b.end(), out.begin(), comp);
  if (end != out.end()) return ::testing::AssertionFailure() << "returned end is off by " << (end - out.end());
  if (out != expected) {
    const auto at = std::mismatch(out.begin(), out.end(), expected.begin()).first - out.begin();
    return ::testing::AssertionFailure() << "outputs differ first at " << at << " of " << out.size();
  }
  return ::testing::AssertionSuccess();
}

struct ComparatorError : std::runtime_error {
  ComparatorError() : std::runtime_error("comparator failed") {}
};

TEST(ParallelMerge, MatchesStdMergeForEveryPairOfSizesAndPool) {
  for (Keys kind : kKeyKinds) {
    std::vector<std::vector<Tagged>> first, second;  // by index into kSizes
    for (std::size_t n : kSizes) {
      first.push_back(make_input(kind, n, 0, 1));
      second.push_back(make_input(kind, n, 1, 1));
    }
    for_each_pool([&](weft::ForkJoinPool& pool) {
      for (std::size_t i = 0; i < first.size(); ++i) {
        for (std::size_t j = 0; j < second.size(); ++j) {
          SCOPED_TRACE(std::string(name_of(kind)) + " n1=" + std::to_string(kSizes[i]) +
                       " n2=" + std::to_string(kSizes[j]));
          ASSERT_TRUE(merges_like_std(pool, first[i], second[j], ByKey{}));
        }
      }
    });
  }
}

TEST(ParallelMerge, OneMillionElements) {
  weft::ForkJoinPool pool(2);
  for (Keys kind : {Keys::random, Keys::few_distinct, Keys::disjoint_high}) {
    SCOPED_TRACE(name_of(kind));
    const std::vector<Tagged> a = make_input(kind, 1'000'000, 0, 2);
    const std::vector<Tagged> b = make_input(kind, 1'000'000, 1, 2);
    ASSERT_TRUE(merges_like_std(pool, a, b, ByKey{}));
    // Lopsided: a million against a handful.
    const std::vector<Tagged> few = make_input(kind, 5, 1, 3);
    ASSERT_TRUE(merges_like_std(pool, a, few, ByKey{}));
    ASSERT_TRUE(merges_like_std(pool, few, a, ByKey{}));
  }
}

TEST(ParallelMerge, AllKeysEqualPutsTheFirstInputFirst) {
  for_each_pool([](weft::ForkJoinPool& pool) {
    const std::vector<Tagged> a = make_input(Keys::all_equal, 60'000, 0, 1);
    const std::vector<Tagged> b = make_input(Keys::all_equal, 70'000, 1, 1);
    std::vector<Tagged> out(a.size() + b.size());
    weft::parallel_merge(pool, a.begin(), a.end(), b.begin(), b.end(), out.begin(), ByKey{});
    std::vector<Tagged> expected = a;
    expected.insert(expected.end(), b.begin(), b.end());
    ASSERT_EQ(out, expected);
  });
}

TEST(ParallelMerge, ManySeedsAndSizesOnEightWorkers) {
  weft::ForkJoinPool pool(8);
  for (std::uint32_t seed = 1; seed <= 20; ++seed) {
    SCOPED_TRACE("seed=" + std::to_string(seed));
    const std::vector<Tagged> a = make_input(Keys::few_distinct, 5'000 * seed, 0, seed);
    const std::vector<Tagged> b = make_input(Keys::random, 3'001 * (21 - seed), 1, seed);
    ASSERT_TRUE(merges_like_std(pool, a, b, ByKey{}));
  }
}

TEST(ParallelMerge, PlainKeysWithDefaultAndGreaterComparators) {
  for_each_pool([](weft::ForkJoinPool& pool) {
    std::mt19937 rng(5);
    std::vector<int> a(100'003), b(77'777);
    for (int& x : a) x = static_cast<int>(rng() % 5000) - 2500;
    for (int& x : b) x = static_cast<int>(rng() % 5000) - 2500;
    std::sort(a.begin(), a.end());
    std::sort(b.begin(), b.end());
    ASSERT_TRUE(merges_like_std(pool, a, b, std::less<>{}));
    // No comparator argument: std::less<>.
    std::vector<int> out(a.size() + b.size()), expected(out.size());
    weft::parallel_merge(pool, a.begin(), a.end(), b.begin(), b.end(), out.begin());
    std::merge(a.begin(), a.end(), b.begin(), b.end(), expected.begin());
    ASSERT_EQ(out, expected);
    std::reverse(a.begin(), a.end());
    std::reverse(b.begin(), b.end());
    ASSERT_TRUE(merges_like_std(pool, a, b, std::greater<>{}));
  });
}

TEST(ParallelMerge, GreaterOnAStructFieldIsStable) {
  for_each_pool([](weft::ForkJoinPool& pool) {
    auto greater_key = [](const Tagged& x, const Tagged& y) { return x.key > y.key; };
    std::vector<Tagged> a = make_input(Keys::few_distinct, 100'003, 0, 4);
    std::vector<Tagged> b = make_input(Keys::few_distinct, 50'001, 1, 4);
    std::stable_sort(a.begin(), a.end(), greater_key);
    std::stable_sort(b.begin(), b.end(), greater_key);
    ASSERT_TRUE(merges_like_std(pool, a, b, greater_key));
  });
}

TEST(ParallelMerge, StringsAndAStructHoldingOne) {
  struct Named {
    std::string name;
    int key;
    bool operator==(const Named&) const = default;
  };
  for_each_pool([](weft::ForkJoinPool& pool) {
    std::mt19937 rng(9);
    for (std::size_t n : {0, 1, 2, 17, 1000, 30'011}) {
      SCOPED_TRACE("n=" + std::to_string(n));
      std::vector<std::string> a, b;
      std::vector<Named> na, nb;
      for (std::size_t i = 0; i < n; ++i) {
        a.push_back("string-long-enough-for-the-heap-" + std::to_string(rng() % 10'000));
        b.push_back("string-long-enough-for-the-heap-" + std::to_string(rng() % 10'000));
        na.push_back({"a-heap-allocated-name-" + std::to_string(i), static_cast<int>(rng() % 50)});
        nb.push_back({"b-heap-allocated-name-" + std::to_string(i), static_cast<int>(rng() % 50)});
      }
      auto by_key = [](const Named& x, const Named& y) { return x.key < y.key; };
      std::sort(a.begin(), a.end());
      std::sort(b.begin(), b.end());
      std::stable_sort(na.begin(), na.end(), by_key);
      std::stable_sort(nb.begin(), nb.end(), by_key);
      ASSERT_TRUE(merges_like_std(pool, a, b, std::less<>{}));
      ASSERT_TRUE(merges_like_std(pool, na, nb, by_key));  // unique names: checks stability
    }
  });
}

TEST(ParallelMerge, MixedIteratorTypes) {
  weft::ForkJoinPool pool(2);
  std::vector<long> a(100'003);
  std::deque<long> b(60'000);
  for (std::size_t i = 0; i < a.size(); ++i) a[i] = static_cast<long>(i * 3);
  for (std::size_t i = 0; i < b.size(); ++i) b[i] = static_cast<long>(i * 5);
  const std::vector<long> ca = a;  // const iterators for the first input
  auto out = std::make_unique<long[]>(a.size() + b.size());
  long* end = weft::parallel_merge(pool, ca.cbegin(), ca.cend(), b.begin(), b.end(), out.get());
  ASSERT_EQ(end, out.get() + a.size() + b.size());
  std::vector<long> expected(a.size() + b.size());
  std::merge(a.begin(), a.end(), b.begin(), b.end(), expected.begin());
  ASSERT_TRUE(std::equal(expected.begin(), expected.end(), out.get()));
}

TEST(ParallelMerge, ComparatorExceptionReachesTheCaller) {
  for_each_pool([](weft::ForkJoinPool& pool) {
    std::vector<std::string> a, b;
    for (int i = 0; i < 100'003; ++i) a.push_back("heap-allocated-string-" + std::to_string(100'000 + i * 2));
    for (int i = 0; i < 80'000; ++i) b.push_back("heap-allocated-string-" + std::to_string(100'001 + i * 2));
    std::sort(a.begin(), a.end());
    std::sort(b.begin(), b.end());
    const std::size_t total_out = a.size() + b.size();
    auto merge_counting = [&](std::atomic<std::size_t>& calls, std::size_t throw_at) {
      std::vector<std::string> out(total_out);
      weft::parallel_merge(pool, a.begin(), a.end(), b.begin(), b.end(), out.begin(),
                           [&](const std::string& x, const std::string& y) {
                             if (calls.fetch_add(1, std::memory_order_relaxed) + 1 == throw_at) throw ComparatorError();
                             return x < y;
                           });
    };
    // The split tree depends only on the inputs and the pool's size: a second run makes the same comparisons.
    std::atomic<std::size_t> counted{0};
    merge_counting(counted, 0);
    const std::size_t total = counted.load();
    ASSERT_GT(total, a.size());
    for (std::size_t throw_at : {std::size_t{1}, total / 3, 2 * total / 3, total}) {
      SCOPED_TRACE("throw_at=" + std::to_string(throw_at) + " of " + std::to_string(total));
      std::atomic<std::size_t> calls{0};
      EXPECT_THROW(merge_counting(calls, throw_at), ComparatorError);
    }
    // The pool is unharmed.
    std::vector<std::string> out(total_out);
    weft::parallel_merge(pool, a.begin(), a.end(), b.begin(), b.end(), out.begin());
    EXPECT_TRUE(std::is_sorted(out.begin(), out.end()));
  });
}

TEST(ParallelMerge, DefaultPoolOverloads) {
  const std::vector<Tagged> a = make_input(Keys::random, 100'003, 0, 6);
  const std::vector<Tagged> b = make_input(Keys::random, 90'001, 1, 6);
  std::vector<Tagged> expected(a.size() + b.size());
  std::merge(a.begin(), a.end(), b.begin(), b.end(), expected.begin(), ByKey{});
  {
    // From outside any pool: on the default pool.
    std::atomic<int> elsewhere{0};
    weft::ForkJoinPool* const def = &weft::default_pool();
    std::vector<Tagged> out(expected.size());
    auto end = weft::parallel_merge(a.begin(), a.end(), b.begin(), b.end(), out.begin(),
                                    [&](const Tagged& x, const Tagged& y) {
                                      if (weft::ForkJoinPool::current() != def) elsewhere.fetch_add(1);
                                      return x.key < y.key;
                                    });
    EXPECT_EQ(end, out.end());
    EXPECT_EQ(out, expected);
    EXPECT_EQ(elsewhere.load(), 0);
  }
  {
    // From a task of another pool: on that pool.
    weft::ForkJoinPool pool(3);
    std::atomic<int> elsewhere{0};
    std::vector<Tagged> out(expected.size());
    pool.invoke([&] {
      weft::parallel_merge(a.begin(), a.end(), b.begin(), b.end(), out.begin(), [&](const Tagged& x, const Tagged& y) {
        if (weft::ForkJoinPool::current() != &pool) elsewhere.fetch_add(1);
        return x.key < y.key;
      });
    });
    EXPECT_EQ(out, expected);
    EXPECT_EQ(elsewhere.load(), 0);
  }
}

}  // namespace
