// What crosses a process boundary: msgpack encoding of values, and the errors for bad input.
#include "weft/process/serialize.hpp"

#include <gtest/gtest.h>

#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <tuple>
#include <vector>

namespace {

using weft::process::pack;
using weft::process::SerializationError;
using weft::process::Serializable;
using weft::process::unpack;

struct Point {
  int x = 0;
  double y = 0;
  std::string label;
  MSGPACK_DEFINE(x, y, label)
  bool operator==(const Point&) const = default;
};

struct Opaque {
  int* p;
};

static_assert(Serializable<int>);
static_assert(Serializable<std::map<std::string, std::vector<std::optional<double>>>>);
static_assert(Serializable<Point>);
static_assert(Serializable<std::tuple<int, std::string, std::vector<Point>>>);
static_assert(!Serializable<int*>);
static_assert(!Serializable<Opaque>);
static_assert(!Serializable<std::function<void()>>);
static_assert(!Serializable<std::vector<int*>>);

TEST(Serialize, RoundTripsStandardTypes) {
  std::map<std::string, std::vector<std::optional<double>>> m{{"a", {1.5, std::nullopt}}, {"", {}}};
  EXPECT_EQ(unpack<decltype(m)>(pack(m)), m);
  std::tuple<std::int64_t, std::string, bool> t{-(std::int64_t{1} << 40), std::string("x\0y", 3), true};
  EXPECT_EQ((unpack<decltype(t)>(pack(t))), t);
  std::vector<Point> pts{{1, 2.5, "p"}, {-3, 0, ""}};
  EXPECT_EQ(unpack<std::vector<Point>>(pack(pts)), pts);
  EXPECT_EQ(unpack<std::uint64_t>(pack(std::uint64_t{0xffffffffffffffffULL})), 0xffffffffffffffffULL);
}

TEST(Serialize, TruncatedMessageIsAnError) {
  std::string b = pack(std::vector<int>{1, 2, 3, 4});
  b.pop_back();
  EXPECT_THROW(unpack<std::vector<int>>(b), SerializationError);
  EXPECT_THROW(unpack<int>(""), SerializationError);
}

TEST(Serialize, TrailingBytesAreAnError) {
  std::string b = pack(7) + pack(8);
  try {
    (void)unpack<int>(b);
    FAIL() << "trailing bytes were accepted";
  } catch (const SerializationError& e) {
    EXPECT_NE(std::string(e.what()).find("follow"), std::string::npos) << e.what();
  }
}

TEST(Serialize, WrongTypeNamesTheExpectedType) {
  try {
    (void)unpack<int>(pack(std::string("seven")));
    FAIL() << "a string decoded as an int";
  } catch (const SerializationError& e) {
    EXPECT_NE(std::string(e.what()).find("int"), std::string::npos) << e.what();
  }
  EXPECT_THROW(unpack<Point>(pack(std::vector<std::string>{"x"})), SerializationError);
}

TEST(Serialize, ClassesAcceptFewerFieldsKeepingDefaults) {
  // msgpack's rule for MSGPACK_DEFINE, which lets a sender that predates a new field talk to a newer reader.
  Point p = unpack<Point>(pack(std::make_tuple(5)));
  EXPECT_EQ(p, (Point{5, 0.0, ""}));
}

TEST(Serialize, CorruptLengthDoesNotAllocateItsClaim) {
  // array32 announcing 2^32-1 elements, followed by one element: capped by the 6-byte buffer.
  const std::string b("\xdd\xff\xff\xff\xff\x01", 6);
  EXPECT_THROW(unpack<std::vector<int>>(b), SerializationError);
  // str32 announcing 4 GiB.
  const std::string s("\xdb\xff\xff\xff\xff" "abc", 8);
  EXPECT_THROW(unpack<std::string>(s), SerializationError);
}

TEST(Serialize, DeepNestingIsRefused) {
  std::string b(100, '\x91');  // 100 nested one-element arrays
  b += '\x01';
  EXPECT_THROW(unpack<std::vector<int>>(b), SerializationError);
}

}  // namespace
