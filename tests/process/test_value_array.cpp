// Value<T> and Array<T>: typed shared memory between processes, with and without the lock.
#include "weft/process/process.hpp"
#include "weft/process/value.hpp"

#include "support.hpp"

#include <gtest/gtest.h>

#include <cstdint>
#include <vector>

namespace {

using weft::process::Array;
using weft::process::Process;
using weft::process::Value;
using weft::process::ValueOptions;

using weft::test::kLong;

void add_locked(Value<std::int64_t> v, int times) {
  for (int i = 0; i < times; ++i) {
    auto g = v.lock();
    (*g)[0] += 1;
  }
}
void add_atomic(Value<std::int64_t> v, int times) {
  for (int i = 0; i < times; ++i) v.atomic().fetch_add(1);
}
void fill(Array<double> a, int index) { a[static_cast<std::size_t>(index)] = index * 1.5; }

TEST(ValueArray, ChildrenIncrementALockedValueExactly) {
  for (int children : {1, 2, 8}) {
    Value<std::int64_t> v(0);
    std::vector<Process> ps;
    for (int c = 0; c < children; ++c) ps.emplace_back(&add_locked, v, 2000);
    for (auto& p : ps) {
      ASSERT_TRUE(p.join(kLong));
      ASSERT_EQ(p.exitcode(), 0);
    }
    EXPECT_EQ(v.load(), 2000 * children);
  }
}

TEST(ValueArray, AtomicAccessWithoutALockIsExactToo) {
  Value<std::int64_t> v(0, ValueOptions{.lock = false});
  EXPECT_FALSE(v.has_lock());
  EXPECT_THROW((void)v.lock(), std::logic_error);
  std::vector<Process> ps;
  for (int c = 0; c < 4; ++c) ps.emplace_back(&add_atomic, v, 5000);
  for (auto& p : ps) ASSERT_TRUE(p.join(kLong));
  EXPECT_EQ(v.load(), 20000);
}

TEST(ValueArray, ArrayElementsWrittenByChildrenAreSeenByTheParent) {
  Array<double> a(16, -1.0);
  std::vector<Process> ps;
  for (int i = 0; i < 16; ++i) ps.emplace_back(&fill, a, i);
  for (auto& p : ps) ASSERT_TRUE(p.join(kLong));
  std::vector<double> v = a.to_vector();
  for (int i = 0; i < 16; ++i) EXPECT_EQ(v[i], i * 1.5);
  EXPECT_THROW((void)a.at(16), std::out_of_range);
}

TEST(ValueArray, AttachingWithTheWrongTypeIsAClearError) {
  Array<std::int32_t> a(8, 7, ValueOptions{.name = "weft-test-array-" + std::to_string(::getpid())});
  EXPECT_EQ(Array<std::int32_t>::attach(a.memory().name()).to_vector(), std::vector<std::int32_t>(8, 7));
  EXPECT_THROW((void)Array<double>::attach(a.memory().name()), std::runtime_error);
  EXPECT_THROW((void)Array<float>::attach(a.memory().name()), std::runtime_error);  // same size, other type
  EXPECT_THROW((void)Value<std::int32_t>::attach(a.memory().name()), std::runtime_error);  // 8 elements, not 1
}

}  // namespace
