// Tests of weft::parallel_sort and weft::parallel_stable_sort against std::sort and std::stable_sort: input
// shapes (random, sorted, reversed, all equal, few distinct keys, organ pipe, sawtooth) and sizes from 0 to
// 1'000'000, on pools of 1, 2 and 8 workers (more than the cores) and the default pool; std::greater and a
// comparator on a struct field; std::string, a struct holding a std::string, and move-only std::unique_ptr;
// stability (records sorted by key keep their original index order); a comparator exception thrown at
// several depths of the recursion reaching the caller with nothing lost or leaked; concurrent and nested calls.
#include "weft/parallel/sort.hpp"

#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <random>
#include <stdexcept>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "weft/parallel/fork_join_pool.hpp"
#include "weft/parallel/task_group.hpp"
#include "algorithm_test_support.hpp"

namespace {

using namespace weft::test::algorithms;

constexpr std::size_t kSizes[] = {0, 1, 2, 17, 1000, 100'003};
constexpr std::size_t kLarge = 1'000'000;

enum class Shape { random, sorted, reversed, all_equal, few_distinct, organ_pipe, sawtooth };
constexpr Shape kShapes[] = {Shape::random,       Shape::sorted,     Shape::reversed, Shape::all_equal,
                             Shape::few_distinct, Shape::organ_pipe, Shape::sawtooth};

const char* name_of(Shape s) {
  switch (s) {
    case Shape::random: return "random";
    case Shape::sorted: return "sorted";
    case Shape::reversed: return "reversed";
    case Shape::all_equal: return "all_equal";
    case Shape::few_distinct: return "few_distinct";
    case Shape::organ_pipe: return "organ_pipe";
    case Shape::sawtooth: return "sawtooth";
  }
  return "?";
}

// n keys of the given shape; `seed` varies the random ones.
std::vector<std::uint32_t> make_keys(Shape shape, std::size_t n, std::uint32_t seed = 1) {
  std::mt19937 rng(seed);
  std::vector<std::uint32_t> v(n);
  for (std::size_t i = 0; i < n; ++i) {
    const auto u = static_cast<std::uint32_t>(i);
    switch (shape) {
      case Shape::random: v[i] = rng(); break;
      case Shape::sorted: v[i] = u * 3; break;
      case Shape::reversed: v[i] = static_cast<std::uint32_t>(n - i) * 3; break;
      case Shape::all_equal: v[i] = 42; break;
      case Shape::few_distinct: v[i] = rng() % 5; break;
      case Shape::organ_pipe: v[i] = i < n / 2 ? u : static_cast<std::uint32_t>(n - i); break;
      case Shape::sawtooth: v[i] = u % 1000; break;
    }
  }
  return v;
}

// A key and the position it had in the input: sorting by key alone shows stability in the indices.
struct Record {
  std::uint32_t key;
  std::uint32_t index;
  bool operator==(const Record&) const = default;
};

struct ByKey {
  bool operator()(const Record& a, const Record& b) const { return a.key < b.key; }
};

std::vector<Record> make_records(Shape shape, std::size_t n, std::uint32_t seed = 1) {
  const std::vector<std::uint32_t> keys = make_keys(shape, n, seed);
  std::vector<Record> v(n);
  for (std::size_t i = 0; i < n; ++i) v[i] = {keys[i] % 1000, static_cast<std::uint32_t>(i)};  // many equal keys
  return v;
}

// Same elements (a permutation of the input): compared as multisets by (key, index).
::testing::AssertionResult same_records(std::vector<Record> a, std::vector<Record> b) {
  auto full = [](const Record& x, const Record& y) { return x.key != y.key ? x.key < y.key : x.index < y.index; };
  std::sort(a.begin(), a.end(), full);
  std::sort(b.begin(), b.end(), full);
  if (a != b) return ::testing::AssertionFailure() << "not a permutation of the input";
  return ::testing::AssertionSuccess();
}

struct Named {
  std::string name;
  int key;
  bool operator==(const Named&) const = default;
};

std::vector<Named> make_named(std::size_t n, std::uint32_t seed = 7) {
  std::mt19937 rng(seed);
  std::vector<Named> v;
  v.reserve(n);
  for (std::size_t i = 0; i < n; ++i) {
    // Long enough to live on the heap, so a lost or doubly destroyed string shows under the sanitizers.
    v.push_back({"name-padded-beyond-small-string-" + std::to_string(i), static_cast<int>(rng() % 100)});
  }
  return v;
}

std::vector<std::string> make_strings(std::size_t n, std::uint32_t seed = 3) {
  std::mt19937 rng(seed);
  std::vector<std::string> v;
  v.reserve(n);
  for (std::size_t i = 0; i < n; ++i) {
    std::string s(1 + rng() % 40, 'a');
    for (char& c : s) c = static_cast<char>('a' + rng() % 4);  // small alphabet: long common prefixes, duplicates
    v.push_back(std::move(s));
  }
  return v;
}

struct ComparatorError : std::runtime_error {
  ComparatorError() : std::runtime_error("comparator failed") {}
};

// Compares keys; the call numbered `throw_at` (counting from 1, across all threads) throws ComparatorError.
template <class T, class Key>
struct ThrowingLess {
  std::atomic<std::size_t>* calls;
  std::size_t throw_at;
  Key key;
  bool operator()(const T& a, const T& b) const {
    if (calls->fetch_add(1, std::memory_order_relaxed) + 1 == throw_at) throw ComparatorError();
    return key(a) < key(b);
  }
};

// Success if `got` equals `expected`; otherwise names the first position where they differ.
template <class T>
::testing::AssertionResult same_order(const std::vector<T>& got, const std::vector<T>& expected) {
  if (got.size() != expected.size()) {
    return ::testing::AssertionFailure() << "size " << got.size() << ", expected " << expected.size();
  }
  const auto diff = std::mismatch(got.begin(), got.end(), expected.begin());
  if (diff.first == got.end()) return ::testing::AssertionSuccess();
  return ::testing::AssertionFailure() << "differs from the std:: sort at position " << (diff.first - got.begin())
                                       << " of " << got.size();
}

// Sorts a copy of `v` with std::sort and `v` itself with weft::parallel_sort on `pool`, both with `comp` (or
// neither with a comparator), and checks that the two orders are equal.
template <class T, class... Compare>
::testing::AssertionResult matches_std_sort(weft::ForkJoinPool& pool, std::vector<T> v, Compare... comp) {
  std::vector<T> expected = v;
  std::sort(expected.begin(), expected.end(), comp...);
  weft::parallel_sort(pool, v.begin(), v.end(), comp...);
  return same_order(v, expected);
}

// As matches_std_sort, for std::stable_sort and weft::parallel_stable_sort: equal keys must keep their order.
template <class T, class... Compare>
::testing::AssertionResult matches_std_stable_sort(weft::ForkJoinPool& pool, std::vector<T> v, Compare... comp) {
  std::vector<T> expected = v;
  std::stable_sort(expected.begin(), expected.end(), comp...);
  weft::parallel_stable_sort(pool, v.begin(), v.end(), comp...);
  return same_order(v, expected);
}

// ---------------------------------------------------------------------------------------------------------
// parallel_sort

TEST(ParallelSort, MatchesStdSortForEveryShapeSizeAndPool) {
  for_each_pool([](weft::ForkJoinPool& pool) {
    for (Shape shape : kShapes) {
      for (std::size_t n : kSizes) {
        SCOPED_TRACE(std::string(name_of(shape)) + " n=" + std::to_string(n));
        std::vector<std::uint32_t> v = make_keys(shape, n);
        ASSERT_TRUE(matches_std_sort(pool, v));
      }
    }
  });
}

TEST(ParallelSort, OneMillionElementsOfEveryShape) {
  weft::ForkJoinPool pool(2);
  for (Shape shape : kShapes) {
    SCOPED_TRACE(name_of(shape));
    std::vector<std::uint32_t> v = make_keys(shape, kLarge);
    ASSERT_TRUE(matches_std_sort(pool, v));
  }
}

TEST(ParallelSort, ManySeedsOnEightWorkers) {
  // Different random inputs give different partition trees (pivots, unbalanced sides, equal-key runs).
  weft::ForkJoinPool pool(8);
  for (std::uint32_t seed = 1; seed <= 20; ++seed) {
    for (Shape shape : {Shape::random, Shape::few_distinct}) {
      SCOPED_TRACE(std::string(name_of(shape)) + " seed=" + std::to_string(seed));
      std::vector<std::uint32_t> v = make_keys(shape, 20'000 + seed * 997, seed);
      ASSERT_TRUE(matches_std_sort(pool, v));
    }
  }
}

TEST(ParallelSort, GreaterComparator) {
  for_each_pool([](weft::ForkJoinPool& pool) {
    for (Shape shape : kShapes) {
      SCOPED_TRACE(name_of(shape));
      std::vector<std::uint32_t> v = make_keys(shape, 100'003);
      ASSERT_TRUE(matches_std_sort(pool, v, std::greater<>{}));
    }
  });
}

TEST(ParallelSort, ComparatorOnAStructField) {
  for_each_pool([](weft::ForkJoinPool& pool) {
    for (Shape shape : kShapes) {
      for (std::size_t n : kSizes) {
        SCOPED_TRACE(std::string(name_of(shape)) + " n=" + std::to_string(n));
        const std::vector<Record> input = make_records(shape, n);
        std::vector<Record> v = input;
        weft::parallel_sort(pool, v.begin(), v.end(), ByKey{});
        ASSERT_TRUE(std::is_sorted(v.begin(), v.end(), ByKey{}));
        ASSERT_TRUE(same_records(v, input));
      }
    }
  });
}

TEST(ParallelSort, Strings) {
  for_each_pool([](weft::ForkJoinPool& pool) {
    for (std::size_t n : kSizes) {
      SCOPED_TRACE("n=" + std::to_string(n));
      std::vector<std::string> v = make_strings(n);
      ASSERT_TRUE(matches_std_sort(pool, v));
    }
  });
}

TEST(ParallelSort, StructWithAStringSortedByItsIntKey) {
  for_each_pool([](weft::ForkJoinPool& pool) {
    for (std::size_t n : kSizes) {
      SCOPED_TRACE("n=" + std::to_string(n));
      const std::vector<Named> input = make_named(n);
      std::vector<Named> v = input;
      auto by_key = [](const Named& a, const Named& b) { return a.key < b.key; };
      weft::parallel_sort(pool, v.begin(), v.end(), by_key);
      ASSERT_TRUE(std::is_sorted(v.begin(), v.end(), by_key));
      // A permutation: the names are unique, so sorting both by name must give the same sequence.
      std::vector<Named> a = v, b = input;
      auto by_name = [](const Named& x, const Named& y) { return x.name < y.name; };
      std::sort(a.begin(), a.end(), by_name);
      std::sort(b.begin(), b.end(), by_name);
      ASSERT_EQ(a, b);
    }
  });
}

TEST(ParallelSort, MoveOnlyUniquePtrs) {
  for_each_pool([](weft::ForkJoinPool& pool) {
    for (Shape shape : kShapes) {
      SCOPED_TRACE(name_of(shape));
      const std::vector<std::uint32_t> keys = make_keys(shape, 50'021);
      std::vector<std::unique_ptr<int>> v;
      std::vector<const int*> owned;
      for (std::uint32_t k : keys) {
        v.push_back(std::make_unique<int>(static_cast<int>(k % 100'000)));
        owned.push_back(v.back().get());
      }
      auto by_value = [](const std::unique_ptr<int>& a, const std::unique_ptr<int>& b) { return *a < *b; };
      weft::parallel_sort(pool, v.begin(), v.end(), by_value);
      ASSERT_TRUE(std::is_sorted(v.begin(), v.end(), by_value));
      std::vector<const int*> after;
      for (const auto& p : v) after.push_back(p.get());
      std::sort(owned.begin(), owned.end());
      std::sort(after.begin(), after.end());
      ASSERT_EQ(after, owned);  // every object still owned exactly once
    }
  });
}

TEST(ParallelSort, ComparatorExceptionAtAnyDepthReachesTheCaller) {
  constexpr std::size_t n = 100'003;
  const std::vector<std::uint32_t> input = make_keys(Shape::random, n);
  auto deref = [](const std::unique_ptr<std::uint32_t>& p) { return *p; };
  using Less = ThrowingLess<std::unique_ptr<std::uint32_t>, decltype(deref)>;
  auto make = [&] {
    std::vector<std::unique_ptr<std::uint32_t>> v;
    for (std::uint32_t k : input) v.push_back(std::make_unique<std::uint32_t>(k));
    return v;
  };
  for_each_pool([&](weft::ForkJoinPool& pool) {
    auto sort = [&pool](auto& v, const Less& less) { weft::parallel_sort(pool, v.begin(), v.end(), less); };
    std::atomic<std::size_t> counted{0};
    {
      std::vector<std::unique_ptr<std::uint32_t>> v = make();
      sort(v, Less{&counted, 0, deref});
    }
    // The partition tree depends only on the input and the pool's size, so a second run makes the same
    // comparisons.
    const std::size_t total = counted.load();
    ASSERT_GT(total, n);
    // The first call (top partition), two points inside the recursion, and the very last comparison.
    for (std::size_t throw_at : {std::size_t{1}, total / 3, 2 * total / 3, total}) {
      SCOPED_TRACE("throw_at=" + std::to_string(throw_at) + " of " + std::to_string(total));
      std::vector<std::unique_ptr<std::uint32_t>> v = make();
      std::atomic<std::size_t> calls{0};
      EXPECT_THROW(sort(v, Less{&calls, throw_at, deref}), ComparatorError);
      // The range still holds every element once (a permutation); the sanitizers check nothing leaked.
      std::vector<std::uint32_t> keys;
      for (const auto& p : v) {
        ASSERT_NE(p, nullptr);
        keys.push_back(*p);
      }
      std::vector<std::uint32_t> expected = input;
      std::sort(keys.begin(), keys.end());
      std::sort(expected.begin(), expected.end());
      ASSERT_EQ(keys, expected);
    }
    // The pool is unharmed.
    std::vector<std::unique_ptr<std::uint32_t>> v = make();
    auto less = [](const auto& a, const auto& b) { return *a < *b; };
    weft::parallel_sort(pool, v.begin(), v.end(), less);
    ASSERT_TRUE(std::is_sorted(v.begin(), v.end(), less));
  });
}

TEST(ParallelSort, DefaultPoolOverloadsUseTheCallersPoolOrTheDefaultPool) {
  std::vector<std::uint32_t> v = make_keys(Shape::random, 100'003);
  std::vector<std::uint32_t> expected = v;
  std::sort(expected.begin(), expected.end(), std::greater<>{});
  {
    // From outside any pool: the default pool's workers do the comparisons.
    std::atomic<int> elsewhere{0};
    weft::ForkJoinPool* const def = &weft::default_pool();
    std::vector<std::uint32_t> w = v;
    weft::parallel_sort(w.begin(), w.end(), [&](std::uint32_t a, std::uint32_t b) {
      if (weft::ForkJoinPool::current() != def) elsewhere.fetch_add(1, std::memory_order_relaxed);
      return a > b;
    });
    EXPECT_EQ(w, expected);
    EXPECT_EQ(elsewhere.load(), 0);
    std::vector<std::uint32_t> x = v;
    weft::parallel_sort(x.begin(), x.end());
    EXPECT_TRUE(std::is_sorted(x.begin(), x.end()));
  }
  {
    // From a task of another pool: that pool's workers do them.
    weft::ForkJoinPool pool(3);
    std::atomic<int> elsewhere{0};
    std::vector<std::uint32_t> w = v;
    pool.invoke([&] {
      weft::parallel_sort(w.begin(), w.end(), [&](std::uint32_t a, std::uint32_t b) {
        if (weft::ForkJoinPool::current() != &pool) elsewhere.fetch_add(1, std::memory_order_relaxed);
        return a > b;
      });
    });
    EXPECT_EQ(w, expected);
    EXPECT_EQ(elsewhere.load(), 0);
  }
}

TEST(ParallelSort, ConcurrentCallersShareOnePool) {
  weft::ForkJoinPool pool(2);
  std::vector<std::vector<std::uint32_t>> inputs;
  for (std::uint32_t seed = 1; seed <= 4; ++seed) inputs.push_back(make_keys(Shape::random, 200'000, seed));
  std::vector<std::vector<std::uint32_t>> outputs = inputs;
  {
    std::vector<std::jthread> callers;
    for (auto& out : outputs) callers.emplace_back([&pool, &out] { weft::parallel_sort(pool, out.begin(), out.end()); });
  }
  for (std::size_t i = 0; i < inputs.size(); ++i) {
    std::sort(inputs[i].begin(), inputs[i].end());
    EXPECT_EQ(outputs[i], inputs[i]) << "caller " << i;
  }
}

TEST(ParallelSort, NestedInTasksOfATaskGroup) {
  weft::ForkJoinPool pool(2);
  std::vector<std::vector<std::uint32_t>> parts;
  for (std::uint32_t seed = 1; seed <= 6; ++seed) parts.push_back(make_keys(Shape::random, 50'000, seed));
  std::vector<std::vector<std::uint32_t>> expected = parts;
  for (auto& e : expected) std::sort(e.begin(), e.end());
  pool.invoke([&] {
    weft::TaskGroup group(pool);
    for (auto& part : parts) group.spawn([&part] { weft::parallel_sort(part.begin(), part.end()); });
    group.wait();
  });
  EXPECT_EQ(parts, expected);
}

// ---------------------------------------------------------------------------------------------------------
// parallel_stable_sort

TEST(ParallelStableSort, MatchesStdStableSortForEveryShapeSizeAndPool) {
  for_each_pool([](weft::ForkJoinPool& pool) {
    for (Shape shape : kShapes) {
      for (std::size_t n : kSizes) {
        SCOPED_TRACE(std::string(name_of(shape)) + " n=" + std::to_string(n));
        std::vector<Record> v = make_records(shape, n);
        // Same keys and, among equal keys, the original index order.
        ASSERT_TRUE(matches_std_stable_sort(pool, v, ByKey{}));
      }
    }
  });
}

TEST(ParallelStableSort, OneMillionRecords) {
  weft::ForkJoinPool pool(2);
  for (Shape shape : {Shape::random, Shape::sorted, Shape::reversed, Shape::few_distinct, Shape::sawtooth}) {
    SCOPED_TRACE(name_of(shape));
    std::vector<Record> v = make_records(shape, kLarge);
    ASSERT_TRUE(matches_std_stable_sort(pool, v, ByKey{}));
  }
}

TEST(ParallelStableSort, PlainKeysWithDefaultAndGreaterComparators) {
  for_each_pool([](weft::ForkJoinPool& pool) {
    for (Shape shape : kShapes) {
      SCOPED_TRACE(name_of(shape));
      std::vector<std::uint32_t> v = make_keys(shape, 100'003);
      std::vector<std::uint32_t> up = v, down = v;
      weft::parallel_stable_sort(pool, up.begin(), up.end());
      weft::parallel_stable_sort(pool, down.begin(), down.end(), std::greater<>{});
      std::sort(v.begin(), v.end());
      ASSERT_EQ(up, v);
      std::reverse(v.begin(), v.end());
      ASSERT_EQ(down, v);
    }
  });
}

TEST(ParallelStableSort, GreaterOnKeysKeepsEqualKeysInOrder) {
  for_each_pool([](weft::ForkJoinPool& pool) {
    std::vector<Record> v = make_records(Shape::random, 100'003);
    auto greater_key = [](const Record& a, const Record& b) { return a.key > b.key; };
    ASSERT_TRUE(matches_std_stable_sort(pool, v, greater_key));
  });
}

TEST(ParallelStableSort, AllKeysEqualLeavesTheOrderAlone) {
  for_each_pool([](weft::ForkJoinPool& pool) {
    std::vector<Record> v = make_records(Shape::all_equal, 100'003);
    const std::vector<Record> input = v;
    weft::parallel_stable_sort(pool, v.begin(), v.end(), ByKey{});
    ASSERT_EQ(v, input);
  });
}

TEST(ParallelStableSort, StructWithAStringByItsIntKey) {
  for_each_pool([](weft::ForkJoinPool& pool) {
    for (std::size_t n : kSizes) {
      SCOPED_TRACE("n=" + std::to_string(n));
      std::vector<Named> v = make_named(n);
      auto by_key = [](const Named& a, const Named& b) { return a.key < b.key; };
      ASSERT_TRUE(matches_std_stable_sort(pool, v, by_key));  // names are unique: this checks stability too
    }
  });
}

TEST(ParallelStableSort, Strings) {
  for_each_pool([](weft::ForkJoinPool& pool) {
    std::vector<std::string> v = make_strings(100'003);
    ASSERT_TRUE(matches_std_stable_sort(pool, v));
  });
}

TEST(ParallelStableSort, MoveOnlyUniquePtrsKeepEqualKeysInOrder) {
  for_each_pool([](weft::ForkJoinPool& pool) {
    const std::vector<Record> records = make_records(Shape::random, 100'003);
    std::vector<std::unique_ptr<Record>> v;
    for (const Record& r : records) v.push_back(std::make_unique<Record>(r));
    weft::parallel_stable_sort(pool, v.begin(), v.end(), [](const auto& a, const auto& b) { return a->key < b->key; });
    std::vector<Record> expected = records;
    std::stable_sort(expected.begin(), expected.end(), ByKey{});
    ASSERT_EQ(v.size(), expected.size());
    for (std::size_t i = 0; i < v.size(); ++i) {
      ASSERT_NE(v[i], nullptr);
      ASSERT_EQ(*v[i], expected[i]) << "at " << i;
    }
  });
}

// Moves may throw (so the buffer is filled sequentially); never actually throws here.
struct MayThrowOnMove {
  std::uint32_t key = 0;
  std::uint32_t index = 0;
  MayThrowOnMove(std::uint32_t k, std::uint32_t i) : key(k), index(i) {}
  MayThrowOnMove(const MayThrowOnMove&) = default;
  MayThrowOnMove(MayThrowOnMove&& o) noexcept(false) : key(o.key), index(o.index) {}
  MayThrowOnMove& operator=(const MayThrowOnMove&) = default;
  MayThrowOnMove& operator=(MayThrowOnMove&& o) noexcept(false) {
    key = o.key;
    index = o.index;
    return *this;
  }
  ~MayThrowOnMove() {}  // not trivially copyable
};

TEST(ParallelStableSort, TypeWhoseMoveMayThrow) {
  weft::ForkJoinPool pool(2);
  std::vector<MayThrowOnMove> v;
  for (const Record& r : make_records(Shape::random, 100'003)) v.emplace_back(r.key, r.index);
  auto by_key = [](const MayThrowOnMove& a, const MayThrowOnMove& b) { return a.key < b.key; };
  std::vector<MayThrowOnMove> expected = v;
  std::stable_sort(expected.begin(), expected.end(), by_key);
  weft::parallel_stable_sort(pool, v.begin(), v.end(), by_key);
  ASSERT_EQ(v.size(), expected.size());
  for (std::size_t i = 0; i < v.size(); ++i) {
    ASSERT_EQ(v[i].key, expected[i].key) << "at " << i;
    ASSERT_EQ(v[i].index, expected[i].index) << "at " << i;
  }
}

TEST(ParallelStableSort, ComparatorExceptionAtAnyDepthReachesTheCaller) {
  constexpr std::size_t n = 100'003;
  for_each_pool([&](weft::ForkJoinPool& pool) {
    {
      // Heap-owning elements (moved through the buffer): the sanitizers check nothing leaks or is freed twice.
      auto key = [](const Named& x) { return x.key; };
      using Less = ThrowingLess<Named, decltype(key)>;
      const std::vector<Named> input = make_named(n);
      std::atomic<std::size_t> counted{0};
      {
        std::vector<Named> v = input;
        weft::parallel_stable_sort(pool, v.begin(), v.end(), Less{&counted, 0, key});
      }
      const std::size_t total = counted.load();
      ASSERT_GT(total, n);
      for (std::size_t throw_at : {std::size_t{1}, total / 3, 2 * total / 3, total}) {
        SCOPED_TRACE("Named throw_at=" + std::to_string(throw_at) + " of " + std::to_string(total));
        std::vector<Named> v = input;
        std::atomic<std::size_t> calls{0};
        EXPECT_THROW(weft::parallel_stable_sort(pool, v.begin(), v.end(), Less{&calls, throw_at, key}),
                     ComparatorError);
        EXPECT_EQ(v.size(), n);
      }
    }
    {
      // Trivially copyable elements (sorted in place, the buffer as scratch).
      auto key = [](const Record& x) { return x.key; };
      using Less = ThrowingLess<Record, decltype(key)>;
      const std::vector<Record> input = make_records(Shape::random, n);
      std::atomic<std::size_t> counted{0};
      {
        std::vector<Record> v = input;
        weft::parallel_stable_sort(pool, v.begin(), v.end(), Less{&counted, 0, key});
      }
      const std::size_t total = counted.load();
      for (std::size_t throw_at : {std::size_t{1}, total / 3, 2 * total / 3, total}) {
        SCOPED_TRACE("Record throw_at=" + std::to_string(throw_at) + " of " + std::to_string(total));
        std::vector<Record> v = input;
        std::atomic<std::size_t> calls{0};
        EXPECT_THROW(weft::parallel_stable_sort(pool, v.begin(), v.end(), Less{&calls, throw_at, key}),
                     ComparatorError);
      }
      // The pool is unharmed.
      std::vector<Record> v = input;
      weft::parallel_stable_sort(pool, v.begin(), v.end(), ByKey{});
      EXPECT_TRUE(std::is_sorted(v.begin(), v.end(), ByKey{}));
    }
  });
}

TEST(ParallelStableSort, DefaultPoolOverloads) {
  std::vector<Record> v = make_records(Shape::random, 100'003);
  std::vector<Record> expected = v;
  std::stable_sort(expected.begin(), expected.end(), ByKey{});
  std::atomic<int> elsewhere{0};
  weft::ForkJoinPool* const def = &weft::default_pool();
  std::vector<Record> w = v;
  weft::parallel_stable_sort(w.begin(), w.end(), [&](const Record& a, const Record& b) {
    if (weft::ForkJoinPool::current() != def) elsewhere.fetch_add(1, std::memory_order_relaxed);
    return a.key < b.key;
  });
  EXPECT_EQ(w, expected);
  EXPECT_EQ(elsewhere.load(), 0);

  std::vector<std::uint32_t> keys = make_keys(Shape::reversed, 100'003);
  weft::ForkJoinPool pool(3);
  pool.invoke([&] { weft::parallel_stable_sort(keys.begin(), keys.end()); });
  EXPECT_TRUE(std::is_sorted(keys.begin(), keys.end()));
}

}  // namespace
