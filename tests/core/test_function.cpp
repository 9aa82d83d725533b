// Tests of weft::UniqueFunction: inline (small) and heap (large) callables, move-only captures, moving,
// assigning and resetting, calling an empty one, and that every held callable is destroyed exactly once.
#include "weft/core/function.hpp"

#include <gtest/gtest.h>

#include <array>
#include <cstddef>
#include <functional>
#include <memory>
#include <string>
#include <type_traits>
#include <utility>

namespace {

using weft::UniqueFunction;

// Counts live instances: every construction (also by move) is matched by exactly one destruction.
struct Census {
  int constructed = 0;
  int destroyed = 0;
  int live() const { return constructed - destroyed; }
};

// A callable that reports its constructions and destructions to a Census. `Pad` bytes of payload decide
// whether it fits the inline buffer (40 bytes by default).
template <std::size_t Pad>
struct Counted {
  Census* census;
  std::array<unsigned char, Pad> payload{};

  explicit Counted(Census* c) : census(c) { ++census->constructed; }
  Counted(Counted&& o) noexcept : census(o.census), payload(o.payload) { ++census->constructed; }
  Counted(const Counted&) = delete;
  Counted& operator=(const Counted&) = delete;
  Counted& operator=(Counted&&) = delete;
  ~Counted() { ++census->destroyed; }
  int operator()(int x) const { return x + static_cast<int>(Pad); }
};
using SmallCounted = Counted<8>;    // 16 bytes: inline
using LargeCounted = Counted<256>;  // heap

// Same size as SmallCounted, but its move may throw, so it must go to the heap to keep moves noexcept.
struct ThrowingMove {
  Census* census;
  explicit ThrowingMove(Census* c) : census(c) { ++census->constructed; }
  ThrowingMove(ThrowingMove&& o) noexcept(false) : census(o.census) { ++census->constructed; }
  ~ThrowingMove() { ++census->destroyed; }
  int operator()(int x) const { return -x; }
};

TEST(UniqueFunction, DefaultAndNullAreEmpty) {
  UniqueFunction<void()> a;
  UniqueFunction<void()> b(nullptr);
  EXPECT_FALSE(a);
  EXPECT_FALSE(b);
  int (*null_fn)() = nullptr;
  UniqueFunction<int()> c(null_fn);
  EXPECT_FALSE(c);
}

TEST(UniqueFunction, EmptyCallThrowsBadFunctionCall) {
  UniqueFunction<int(int)> f;
  EXPECT_THROW(f(1), std::bad_function_call);
  f = [](int x) { return x; };
  f.reset();
  EXPECT_THROW(f(1), std::bad_function_call);
  UniqueFunction<int(int)> g = [](int x) { return x; };
  UniqueFunction<int(int)> h(std::move(g));
  EXPECT_THROW(g(1), std::bad_function_call);  // NOLINT(bugprone-use-after-move): moved-from is empty
  EXPECT_EQ(h(4), 4);
}

TEST(UniqueFunction, CallsFunctionPointersLambdasAndMemberPointers) {
  struct Point {
    int x;
    int sum(int y) const { return x + y; }
  };
  UniqueFunction<int(int)> fp = +[](int x) { return x * 3; };
  EXPECT_EQ(fp(5), 15);
  UniqueFunction<int(const Point&, int)> mem = &Point::sum;
  EXPECT_EQ(mem(Point{2}, 5), 7);
  UniqueFunction<int(const Point&)> field = &Point::x;
  EXPECT_EQ(field(Point{9}), 9);
  int calls = 0;
  UniqueFunction<void()> lambda = [&calls] { ++calls; };
  lambda();
  lambda();
  EXPECT_EQ(calls, 2);
}

// Regression: a value-returning callable was accepted by the constructor of UniqueFunction<void()> but did
// not compile (`return f();` in a function returning void).
TEST(UniqueFunction, DiscardsTheResultForVoidSignature) {
  int n = 0;
  UniqueFunction<void()> f = [&n] { return ++n; };  // a result that is thrown away
  f();
  EXPECT_EQ(n, 1);
  UniqueFunction<void(int)> g = [](int x) { return std::to_string(x); };
  g(3);
}

TEST(UniqueFunction, ConvertsTheResultToR) {
  UniqueFunction<long(int)> f = [](int x) -> short { return static_cast<short>(x + 1); };
  EXPECT_EQ(f(41), 42L);
  UniqueFunction<std::string()> g = [] { return "literal"; };
  EXPECT_EQ(g(), "literal");
}

TEST(UniqueFunction, ForwardsArgumentsWithoutCopies) {
  UniqueFunction<std::unique_ptr<int>(std::unique_ptr<int>)> pass = [](std::unique_ptr<int> p) {
    *p += 1;
    return p;
  };
  auto out = pass(std::make_unique<int>(1));
  ASSERT_NE(out, nullptr);
  EXPECT_EQ(*out, 2);

  int target = 0;
  UniqueFunction<void(int&)> by_ref = [](int& r) { r = 7; };
  by_ref(target);
  EXPECT_EQ(target, 7);
}

TEST(UniqueFunction, MoveOnlyCapturesSmallAndLarge) {
  auto small_p = std::make_unique<int>(5);
  UniqueFunction<int()> small = [p = std::move(small_p)] { return *p; };
  EXPECT_EQ(small(), 5);

  std::array<int, 64> big{};
  big[63] = 11;
  UniqueFunction<int()> large = [p = std::make_unique<int>(6), big] { return *p + big[63]; };
  EXPECT_EQ(large(), 17);

  UniqueFunction<int()> moved = std::move(large);
  EXPECT_FALSE(large);  // NOLINT(bugprone-use-after-move)
  EXPECT_EQ(moved(), 17);
}

TEST(UniqueFunction, MutableStateIsKeptAcrossCallsAndMoves) {
  UniqueFunction<int()> counter = [n = 0]() mutable { return ++n; };
  EXPECT_EQ(counter(), 1);
  EXPECT_EQ(counter(), 2);
  UniqueFunction<int()> other = std::move(counter);
  EXPECT_EQ(other(), 3);
  std::array<char, 100> pad{};
  UniqueFunction<int()> big_counter = [n = 0, pad]() mutable { return ++n + pad[0]; };
  EXPECT_EQ(big_counter(), 1);
  UniqueFunction<int()> big_other = std::move(big_counter);
  EXPECT_EQ(big_other(), 2);
}

template <class C>
void check_lifetime_through_moves() {
  Census census;
  {
    UniqueFunction<int(int)> a{C(&census)};
    EXPECT_EQ(census.live(), 1);
    EXPECT_EQ(a(1), C(&census)(1));
    EXPECT_EQ(census.live(), 1);

    UniqueFunction<int(int)> b(std::move(a));  // move construction
    EXPECT_EQ(census.live(), 1);
    EXPECT_FALSE(a);  // NOLINT(bugprone-use-after-move)

    UniqueFunction<int(int)> c;
    c = std::move(b);  // move assignment into an empty one
    EXPECT_EQ(census.live(), 1);

    UniqueFunction<int(int)> d{C(&census)};
    EXPECT_EQ(census.live(), 2);
    d = std::move(c);  // move assignment over a full one destroys the old callable
    EXPECT_EQ(census.live(), 1);

    auto& self = d;
    d = std::move(self);  // self-move keeps the callable
    EXPECT_TRUE(d);
    EXPECT_EQ(census.live(), 1);

    d = nullptr;  // assigning null destroys
    EXPECT_EQ(census.live(), 0);
    EXPECT_FALSE(d);

    UniqueFunction<int(int)> e{C(&census)};
    e.reset();
    EXPECT_EQ(census.live(), 0);
    e.reset();  // resetting an empty one is harmless
    UniqueFunction<int(int)> f{C(&census)};
    EXPECT_EQ(census.live(), 1);
  }  // f is destroyed here
  EXPECT_EQ(census.live(), 0);
  EXPECT_GT(census.destroyed, 0);
}

TEST(UniqueFunction, SmallCallableIsDestroyedExactlyOnce) { check_lifetime_through_moves<SmallCounted>(); }

TEST(UniqueFunction, LargeCallableIsDestroyedExactlyOnce) { check_lifetime_through_moves<LargeCounted>(); }

TEST(UniqueFunction, ThrowingMoveCallableIsDestroyedExactlyOnce) { check_lifetime_through_moves<ThrowingMove>(); }

TEST(UniqueFunction, LargeCallableIsNotCopiedWhenMoved) {
  // A heap-held callable is relocated by moving the pointer: no move constructor runs on a move.
  Census census;
  UniqueFunction<int(int)> a{LargeCounted(&census)};
  const int after_construction = census.constructed;
  UniqueFunction<int(int)> b(std::move(a));
  UniqueFunction<int(int)> c;
  c = std::move(b);
  EXPECT_EQ(census.constructed, after_construction);
  EXPECT_EQ(c(0), 256);
}

TEST(UniqueFunction, MovesAreNoexcept) {
  static_assert(std::is_nothrow_move_constructible_v<UniqueFunction<void()>>);
  static_assert(std::is_nothrow_move_assignable_v<UniqueFunction<void()>>);
  static_assert(!std::is_copy_constructible_v<UniqueFunction<void()>>);
  static_assert(!std::is_copy_assignable_v<UniqueFunction<void()>>);
  // Not callable with the wrong arguments: the converting constructor is constrained.
  static_assert(!std::is_constructible_v<UniqueFunction<void(int)>, void (*)(std::string)>);
  static_assert(std::is_constructible_v<UniqueFunction<void(int)>, void (*)(long)>);
}

TEST(UniqueFunction, ExceptionFromCallablePropagates) {
  UniqueFunction<void()> f = [] { throw std::runtime_error("boom"); };
  try {
    f();
    FAIL() << "expected an exception";
  } catch (const std::runtime_error& e) {
    EXPECT_STREQ(e.what(), "boom");
  }
  EXPECT_TRUE(f);  // still holds the callable
}

TEST(UniqueFunction, CustomInlineSize) {
  Census census;
  {
    // 16 bytes do not fit an 8-byte buffer: the callable goes to the heap, and still dies once.
    UniqueFunction<int(int), 8> f{SmallCounted(&census)};
    EXPECT_EQ(f(1), 9);
    UniqueFunction<int(int), 8> g(std::move(f));
    EXPECT_EQ(g(2), 10);
    EXPECT_EQ(census.live(), 1);
  }
  EXPECT_EQ(census.live(), 0);
}

}  // namespace
