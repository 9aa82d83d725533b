// Tests of weft::trace: recording from many threads, drop counting, clear() under concurrent recording,
// the summary figures, the Chrome JSON export, intern() and the on/off switch.
//
// The tracer is process-wide, so every test starts and ends with the default limits and no spans.
#include "weft/trace/trace.hpp"

#include "weft/core/detail/clock.hpp"

#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <charconv>
#include <cmath>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <latch>
#include <map>
#include <memory>
#include <random>
#include <set>
#include <sstream>
#include <string>
#include <string_view>
#include <system_error>
#include <thread>
#include <utility>
#include <vector>

namespace {

namespace tr = weft::trace;

class Trace : public ::testing::Test {
 protected:
  void SetUp() override {
    tr::enable();
    tr::clear();
  }
  void TearDown() override {
    tr::enable();
    tr::clear();
  }
};

tr::Span make_span(const char* name, std::uint64_t id, std::uint64_t submit, std::uint64_t start,
                   std::uint64_t end, std::uint32_t executor = 0, std::uint32_t worker = 0,
                   bool failed = false) {
  return tr::Span{name, id, submit, start, end, executor, worker, failed};
}

// Runs fn(0) ... fn(n - 1) on n threads that start together, and joins them.
template <class F>
void run_threads(unsigned n, F fn) {
  std::latch go(n);
  std::vector<std::jthread> threads;
  threads.reserve(n);
  for (unsigned t = 0; t < n; ++t) {
    threads.emplace_back([&, t] {
      go.arrive_and_wait();
      fn(t);
    });
  }
}

// Ids of the spans of one worker, in snapshot order.
std::map<std::uint32_t, std::vector<std::uint64_t>> ids_by_worker(const std::vector<tr::Span>& spans) {
  std::map<std::uint32_t, std::vector<std::uint64_t>> out;
  for (const tr::Span& s : spans) out[s.worker].push_back(s.id);
  return out;
}

std::vector<std::uint64_t> iota_ids(std::uint64_t first, std::uint64_t n) {
  std::vector<std::uint64_t> v(n);
  for (std::uint64_t i = 0; i < n; ++i) v[i] = first + i;
  return v;
}

// ---- a small strict JSON parser, enough to check the export ---------------------------------------------

struct Json {
  enum class Kind { null, boolean, number, string, array, object } kind = Kind::null;
  bool b = false;
  double num = 0;
  std::string str;
  std::vector<Json> arr;
  std::vector<std::string> keys;  // An object: keys[i] names values[i]. (A vector of pairs would need
  std::vector<Json> values;       // Json complete; a vector of Json itself may be declared before.)

  const Json* get(std::string_view key) const {
    for (std::size_t i = 0; i < keys.size(); ++i) {
      if (keys[i] == key) return &values[i];
    }
    return nullptr;
  }
};

class JsonParser {
 public:
  explicit JsonParser(std::string_view text) : s_(text) {}

  // Throws std::runtime_error on anything that is not one well-formed JSON value.
  Json parse() {
    Json v = value();
    ws();
    if (i_ != s_.size()) fail("trailing characters");
    return v;
  }

 private:
  [[noreturn]] void fail(const std::string& what) const {
    throw std::runtime_error("JSON: " + what + " at offset " + std::to_string(i_));
  }
  void ws() {
    while (i_ < s_.size() && (s_[i_] == ' ' || s_[i_] == '\n' || s_[i_] == '\r' || s_[i_] == '\t')) ++i_;
  }
  char peek() {
    ws();
    if (i_ >= s_.size()) fail("unexpected end");
    return s_[i_];
  }
  void expect(char c) {
    if (peek() != c) fail(std::string("expected '") + c + "'");
    ++i_;
  }
  bool literal(std::string_view word) {
    if (s_.substr(i_, word.size()) != word) return false;
    i_ += word.size();
    return true;
  }

  Json value() {
    Json v;
    const char c = peek();
    if (c == '{') {
      v.kind = Json::Kind::object;
      ++i_;
      if (peek() == '}') {
        ++i_;
        return v;
      }
      for (;;) {
        if (peek() != '"') fail("expected a key");
        v.keys.push_back(string());
        expect(':');
        v.values.push_back(value());
        if (peek() == ',') {
          ++i_;
          continue;
        }
        expect('}');
        return v;
      }
    }
    if (c == '[') {
      v.kind = Json::Kind::array;
      ++i_;
      if (peek() == ']') {
        ++i_;
        return v;
      }
      for (;;) {
        v.arr.push_back(value());
        if (peek() == ',') {
          ++i_;
          continue;
        }
        expect(']');
        return v;
      }
    }
    if (c == '"') {
      v.kind = Json::Kind::string;
      v.str = string();
      return v;
    }
    if (literal("true")) {
      v.kind = Json::Kind::boolean;
      v.b = true;
      return v;
    }
    if (literal("false")) {
      v.kind = Json::Kind::boolean;
      return v;
    }
    if (literal("null")) return v;
    v.kind = Json::Kind::number;
    v.num = number();
    return v;
  }

  double number() {
    const std::size_t begin = i_;
    const auto digits = [&] {
      const std::size_t from = i_;
      while (i_ < s_.size() && s_[i_] >= '0' && s_[i_] <= '9') ++i_;
      if (i_ == from) fail("expected a digit");
    };
    if (i_ < s_.size() && s_[i_] == '-') ++i_;
    if (i_ < s_.size() && s_[i_] == '0') {
      ++i_;
    } else {
      digits();
    }
    if (i_ < s_.size() && s_[i_] == '.') {
      ++i_;
      digits();
    }
    if (i_ < s_.size() && (s_[i_] == 'e' || s_[i_] == 'E')) {
      ++i_;
      if (i_ < s_.size() && (s_[i_] == '+' || s_[i_] == '-')) ++i_;
      digits();
    }
    double d = 0;
    const auto r = std::from_chars(s_.data() + begin, s_.data() + i_, d);
    if (r.ec != std::errc{}) fail("bad number");
    return d;
  }

  unsigned hex4() {
    if (s_.size() - i_ < 4) fail("short \\u escape");
    unsigned v = 0;
    const auto r = std::from_chars(s_.data() + i_, s_.data() + i_ + 4, v, 16);
    if (r.ec != std::errc{} || r.ptr != s_.data() + i_ + 4) fail("bad \\u escape");
    i_ += 4;
    return v;
  }

  static void put_utf8(std::string& out, unsigned cp) {
    if (cp < 0x80) {
      out += static_cast<char>(cp);
    } else if (cp < 0x800) {
      out += static_cast<char>(0xC0 | (cp >> 6));
      out += static_cast<char>(0x80 | (cp & 0x3F));
    } else if (cp < 0x10000) {
      out += static_cast<char>(0xE0 | (cp >> 12));
      out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
      out += static_cast<char>(0x80 | (cp & 0x3F));
    } else {
      out += static_cast<char>(0xF0 | (cp >> 18));
      out += static_cast<char>(0x80 | ((cp >> 12) & 0x3F));
      out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
      out += static_cast<char>(0x80 | (cp & 0x3F));
    }
  }

  std::string string() {
    expect('"');
    std::string out;
    for (;;) {
      if (i_ >= s_.size()) fail("unterminated string");
      const auto c = static_cast<unsigned char>(s_[i_++]);
      if (c == '"') return out;
      if (c < 0x20) fail("raw control character in a string");
      if (c != '\\') {
        out += static_cast<char>(c);
        continue;
      }
      if (i_ >= s_.size()) fail("unterminated escape");
      switch (s_[i_++]) {
        case '"': out += '"'; break;
        case '\\': out += '\\'; break;
        case '/': out += '/'; break;
        case 'b': out += '\b'; break;
        case 'f': out += '\f'; break;
        case 'n': out += '\n'; break;
        case 'r': out += '\r'; break;
        case 't': out += '\t'; break;
        case 'u': {
          unsigned cp = hex4();
          if (cp >= 0xD800 && cp <= 0xDBFF) {
            if (!literal("\\u")) fail("lone high surrogate");
            const unsigned lo = hex4();
            if (lo < 0xDC00 || lo > 0xDFFF) fail("bad low surrogate");
            cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
          } else if (cp >= 0xDC00 && cp <= 0xDFFF) {
            fail("lone low surrogate");
          }
          put_utf8(out, cp);
          break;
        }
        default: fail("unknown escape");
      }
    }
  }

  std::string_view s_;
  std::size_t i_ = 0;
};

Json parse_json(const std::string& text) { return JsonParser(text).parse(); }

std::vector<const Json*> events_with_ph(const Json& root, std::string_view ph) {
  std::vector<const Json*> out;
  const Json* events = root.get("traceEvents");
  if (events == nullptr) return out;
  for (const Json& e : events->arr) {
    const Json* p = e.get("ph");
    if (p != nullptr && p->str == ph) out.push_back(&e);
  }
  return out;
}

// ---- the switch -----------------------------------------------------------------------------------------

TEST_F(Trace, EnabledToggles) {
  EXPECT_TRUE(tr::enabled());
  tr::enable();  // Idempotent.
  EXPECT_TRUE(tr::enabled());
  tr::record(make_span("kept", 1, 0, 1, 2));

  tr::disable();
  EXPECT_FALSE(tr::enabled());
  tr::record(make_span("ignored", 2, 0, 1, 2));  // Off: not recorded, not counted as dropped.
  EXPECT_EQ(tr::dropped(), 0u);
  auto spans = tr::snapshot();  // Spans recorded before disable() stay.
  ASSERT_EQ(spans.size(), 1u);
  EXPECT_STREQ(spans[0].name, "kept");

  tr::enable();
  EXPECT_TRUE(tr::enabled());
  tr::record(make_span("again", 3, 0, 1, 2));
  spans = tr::snapshot();
  ASSERT_EQ(spans.size(), 2u);
  EXPECT_STREQ(spans[1].name, "again");
}

// ---- recording ------------------------------------------------------------------------------------------

TEST_F(Trace, RecordsFromManyThreads) {
  // 5000 spans a thread crosses the 4096-span chunk boundary.
  constexpr std::uint64_t kPerThread = 5000;
  for (unsigned threads : {1u, 3u, 16u}) {
    SCOPED_TRACE("threads = " + std::to_string(threads));
    tr::clear();
    run_threads(threads, [](unsigned t) {
      for (std::uint64_t i = 0; i < kPerThread; ++i) {
        tr::record(make_span("task", i, 10 * i, 10 * i + 1, 10 * i + 2 + t, 5, t, i % 3 == 0));
      }
    });
    // The threads have exited: their spans must still be there.
    const auto spans = tr::snapshot();
    ASSERT_EQ(spans.size(), threads * kPerThread);
    EXPECT_EQ(tr::dropped(), 0u);
    for (const tr::Span& s : spans) {
      ASSERT_STREQ(s.name, "task");
      ASSERT_EQ(s.executor, 5u);
      ASSERT_LT(s.worker, threads);
      ASSERT_EQ(s.submit, 10 * s.id);
      ASSERT_EQ(s.start, 10 * s.id + 1);
      ASSERT_EQ(s.end, 10 * s.id + 2 + s.worker);
      ASSERT_EQ(s.failed, s.id % 3 == 0);
    }
    const auto by_worker = ids_by_worker(spans);
    ASSERT_EQ(by_worker.size(), threads);
    for (const auto& [w, ids] : by_worker) EXPECT_EQ(ids, iota_ids(0, kPerThread)) << "worker " << w;
  }
  tr::clear();  // Frees the buffers of the exited threads.
  EXPECT_TRUE(tr::snapshot().empty());
}

TEST_F(Trace, SnapshotIsEmptyAfterClear) {
  for (int i = 0; i < 10; ++i) tr::record(make_span("x", i, 0, 1, 2));
  run_threads(2, [](unsigned t) { tr::record(make_span("y", t, 0, 1, 2)); });
  EXPECT_EQ(tr::snapshot().size(), 12u);
  tr::clear();
  EXPECT_TRUE(tr::snapshot().empty());
  tr::record(make_span("z", 99, 0, 1, 2));  // The main thread's buffer is reused after clear().
  const auto spans = tr::snapshot();
  ASSERT_EQ(spans.size(), 1u);
  EXPECT_EQ(spans[0].id, 99u);
}

// ---- limits ---------------------------------------------------------------------------------------------

TEST_F(Trace, DropsAtPerThreadLimit) {
  // Not a multiple of the chunk size, so the limit falls inside the second chunk.
  tr::enable({.max_spans_per_thread = 5000});
  std::thread([] {
    for (std::uint64_t i = 0; i < 6000; ++i) tr::record(make_span("full", i, 0, 1, 2, 0, 0));
  }).join();
  EXPECT_EQ(tr::dropped(), 1000u);
  std::thread([] {  // The limit is per thread: another thread still has room.
    for (std::uint64_t i = 0; i < 10; ++i) tr::record(make_span("other", i, 0, 1, 2, 0, 1));
  }).join();
  EXPECT_EQ(tr::dropped(), 1000u);

  const auto by_worker = ids_by_worker(tr::snapshot());
  ASSERT_EQ(by_worker.size(), 2u);
  EXPECT_EQ(by_worker.at(0), iota_ids(0, 5000));  // The first spans are kept, the later ones dropped.
  EXPECT_EQ(by_worker.at(1), iota_ids(0, 10));

  tr::clear();
  EXPECT_EQ(tr::dropped(), 0u);
}

TEST_F(Trace, ClearMakesRoomOnALiveThread) {
  tr::enable({.max_spans_per_thread = 100});
  for (std::uint64_t i = 0; i < 101; ++i) tr::record(make_span("a", i, 0, 1, 2));
  EXPECT_EQ(tr::dropped(), 1u);
  EXPECT_EQ(tr::snapshot().size(), 100u);
  tr::clear();
  for (std::uint64_t i = 0; i < 100; ++i) tr::record(make_span("b", i, 0, 1, 2));
  EXPECT_EQ(tr::dropped(), 0u);
  const auto spans = tr::snapshot();
  ASSERT_EQ(spans.size(), 100u);
  EXPECT_STREQ(spans.front().name, "b");
}

TEST_F(Trace, RaisingTheLimitGrowsAnExistingBuffer) {
  tr::enable({.max_spans_per_thread = 100});
  std::thread([] {
    // The buffer is made for 100 spans (one chunk); raising the limit later must still let it grow.
    for (std::uint64_t i = 0; i < 150; ++i) tr::record(make_span("g", i, 0, 1, 2));
    tr::enable({.max_spans_per_thread = 10000});
    for (std::uint64_t i = 150; i < 10050; ++i) tr::record(make_span("g", i, 0, 1, 2));
  }).join();
  EXPECT_EQ(tr::dropped(), 50u);
  const auto spans = tr::snapshot();
  ASSERT_EQ(spans.size(), 10000u);
  std::vector<std::uint64_t> expected = iota_ids(0, 100);
  const auto rest = iota_ids(150, 9900);
  expected.insert(expected.end(), rest.begin(), rest.end());
  EXPECT_EQ(ids_by_worker(spans).at(0), expected);
}

// ---- clear() while threads record -----------------------------------------------------------------------

TEST_F(Trace, ClearDuringConcurrentRecordingStaysConsistent) {
  constexpr unsigned kThreads = 4;
  constexpr std::uint64_t kPerThread = 20000;
  constexpr std::uint64_t kAfter = 10;
  static const char* const kName = "concurrent";
  std::atomic<unsigned> finished{0};
  std::latch first_round(1);  // Holds the writers halfway until at least one clear() has happened.
  std::latch cleared(1);

  // Every field is a function of (worker, sequence number), so a torn or stale slot shows.
  const auto span_for = [](unsigned t, std::uint64_t seq) {
    return make_span(kName, (std::uint64_t{t} << 32) | seq, seq, seq + 1, seq + 2, 7, t, seq % 7 == 0);
  };
  const auto check = [&](const std::vector<tr::Span>& spans) {
    std::map<std::uint32_t, std::uint64_t> next;  // Per worker, the least sequence number still allowed.
    for (const tr::Span& s : spans) {
      ASSERT_EQ(s.name, kName);
      ASSERT_EQ(s.executor, 7u);
      ASSERT_LT(s.worker, kThreads);
      ASSERT_EQ(s.id >> 32, s.worker);
      const std::uint64_t seq = s.id & 0xFFFFFFFFu;
      ASSERT_EQ(s.submit, seq);
      ASSERT_EQ(s.start, seq + 1);
      ASSERT_EQ(s.end, seq + 2);
      ASSERT_EQ(s.failed, seq % 7 == 0);
      ASSERT_GE(seq, next[s.worker]) << "spans of one thread out of order";
      next[s.worker] = seq + 1;
    }
  };

  std::vector<std::jthread> writers;
  std::latch go(kThreads + 1);
  for (unsigned t = 0; t < kThreads; ++t) {
    writers.emplace_back([&, t] {
      go.arrive_and_wait();
      for (std::uint64_t i = 0; i < kPerThread; ++i) {
        if (i == kPerThread / 2) first_round.wait();
        tr::record(span_for(t, i));
      }
      finished.fetch_add(1);
      cleared.wait();
      for (std::uint64_t i = kPerThread; i < kPerThread + kAfter; ++i) tr::record(span_for(t, i));
    });
  }
  go.arrive_and_wait();
  // Bounded: the writers stop after kPerThread spans each.
  std::uint64_t rounds = 0;
  do {
    check(tr::snapshot());
    tr::clear();
    if (++rounds == 1) first_round.count_down();
  } while (finished.load() < kThreads && !HasFatalFailure());
  // Whatever was not cleared is still consistent.
  check(tr::snapshot());
  tr::clear();
  cleared.count_down();
  writers.clear();  // Joins.

  EXPECT_EQ(tr::dropped(), 0u);
  // Spans recorded after clear() returned are all kept, each thread's in order.
  const auto spans = tr::snapshot();
  check(spans);
  ASSERT_EQ(spans.size(), kThreads * kAfter);
  for (const auto& [w, ids] : ids_by_worker(spans)) {
    std::vector<std::uint64_t> expected;
    for (std::uint64_t i = kPerThread; i < kPerThread + kAfter; ++i) expected.push_back((std::uint64_t{w} << 32) | i);
    EXPECT_EQ(ids, expected) << "worker " << w;
  }
}

TEST_F(Trace, SpansRecordedAfterClearAreKept) {
  std::latch recorded(1), cleared(1);
  std::jthread writer([&] {
    for (std::uint64_t i = 0; i < 10; ++i) tr::record(make_span("w", i, 0, 1, 2));
    recorded.count_down();
    cleared.wait();
    for (std::uint64_t i = 10; i < 15; ++i) tr::record(make_span("w", i, 0, 1, 2));
  });
  recorded.wait();
  EXPECT_EQ(tr::snapshot().size(), 10u);
  tr::clear();
  EXPECT_TRUE(tr::snapshot().empty());
  cleared.count_down();
  writer.join();
  EXPECT_EQ(ids_by_worker(tr::snapshot()).at(0), iota_ids(10, 5));
}

// ---- summary --------------------------------------------------------------------------------------------

TEST_F(Trace, SummarizeComputesFigures) {
  const double ns = weft::detail::ns_per_tick();
  const auto us = [ns](double ticks) { return ticks * ns / 1e3; };
  // alpha: 100 spans, run k * 1000 ticks and wait 2 * k * 1000 ticks for k = 1..100, recorded out of order.
  std::vector<std::uint64_t> ks;
  for (std::uint64_t k = 1; k <= 100; ++k) ks.push_back((k * 37) % 100 + 1);  // A permutation of 1..100.
  ASSERT_EQ(std::set<std::uint64_t>(ks.begin(), ks.end()).size(), 100u);
  constexpr std::uint64_t kBase = 1'000'000'000;
  for (std::uint64_t k : ks) {
    const std::uint64_t submit = kBase + k * 10'000'000;
    const std::uint64_t start = submit + 2 * k * 1000;
    tr::record(make_span("alpha", k, submit, start, start + k * 1000, 1, 0, k <= 3));
  }
  // beta: one span through a string literal and one through intern(): grouped together by name.
  tr::record(make_span("beta", 1, kBase, kBase + 5000, kBase + 5000 + 7000));
  tr::record(make_span(tr::intern("beta"), 2, kBase, kBase + 1000, kBase + 1000 + 3000, 0, 1, true));
  // gamma: end before start counts as zero time.
  tr::record(make_span("gamma", 1, kBase + 10, kBase, kBase - 10));

  const auto rows = tr::summarize();
  ASSERT_EQ(rows.size(), 3u);
  EXPECT_EQ(rows[0].name, "alpha");  // By total run time, descending.
  EXPECT_EQ(rows[1].name, "beta");
  EXPECT_EQ(rows[2].name, "gamma");

  const auto near = [](double expected) { return std::max(1e-9, std::abs(expected) * 1e-9); };
  const tr::TaskStats& a = rows[0];
  EXPECT_EQ(a.count, 100u);
  EXPECT_EQ(a.failed, 3u);
  EXPECT_NEAR(a.total_ms, 5050.0 * 1000 * ns / 1e6, near(5050.0 * 1000 * ns / 1e6));
  EXPECT_NEAR(a.mean_us, us(50500), near(us(50500)));
  EXPECT_NEAR(a.p50_us, us(50'000), near(us(50'000)));  // Nearest rank: the 50th of 100.
  EXPECT_NEAR(a.p99_us, us(99'000), near(us(99'000)));  // The 99th of 100.
  EXPECT_NEAR(a.wait_p50_us, us(100'000), near(us(100'000)));
  EXPECT_NEAR(a.wait_p99_us, us(198'000), near(us(198'000)));

  const tr::TaskStats& b = rows[1];
  EXPECT_EQ(b.count, 2u);
  EXPECT_EQ(b.failed, 1u);
  EXPECT_NEAR(b.total_ms, 10'000 * ns / 1e6, near(10'000 * ns / 1e6));
  EXPECT_NEAR(b.mean_us, us(5000), near(us(5000)));
  EXPECT_NEAR(b.p50_us, us(3000), near(us(3000)));  // Rank ceil(0.5 * 2) = 1: the smaller.
  EXPECT_NEAR(b.p99_us, us(7000), near(us(7000)));  // Rank ceil(0.99 * 2) = 2: the larger.
  EXPECT_NEAR(b.wait_p50_us, us(1000), near(us(1000)));
  EXPECT_NEAR(b.wait_p99_us, us(5000), near(us(5000)));

  const tr::TaskStats& g = rows[2];
  EXPECT_EQ(g.count, 1u);
  EXPECT_EQ(g.total_ms, 0.0);
  EXPECT_EQ(g.p99_us, 0.0);
  EXPECT_EQ(g.wait_p99_us, 0.0);
}

TEST_F(Trace, FormatSummaryAlignsColumns) {
  std::vector<tr::TaskStats> rows(2);
  rows[0].name = "a rather long task name";
  rows[0].count = 12345;
  rows[0].total_ms = 1.5;
  rows[0].p99_us = 123456.789;
  rows[1].name = "t";
  rows[1].count = 1;
  rows[1].failed = 1;
  rows.push_back(tr::TaskStats{.name = "caf\xC3\xA9\n\x01"});  // Two bytes, one column; control characters.
  const std::string table = tr::format_summary(rows);

  std::vector<std::string> lines;
  std::istringstream in(table);
  for (std::string line; std::getline(in, line);) lines.push_back(line);
  ASSERT_EQ(lines.size(), 4u);
  EXPECT_EQ(lines[0].find("task"), 0u);
  for (const char* column : {"count", "failed", "total ms", "mean us", "p50 us", "p99 us", "wait p50 us",
                             "wait p99 us"}) {
    EXPECT_NE(lines[0].find(column), std::string::npos) << column;
  }
  EXPECT_EQ(lines[1].find("a rather long task name"), 0u);
  EXPECT_EQ(lines[2].find("t "), 0u);
  EXPECT_NE(lines[1].find("12345"), std::string::npos);
  EXPECT_NE(lines[1].find("1.500"), std::string::npos);
  EXPECT_NE(lines[1].find("123456.79"), std::string::npos);
  EXPECT_EQ(lines[3].find("caf\xC3\xA9?? "), 0u);
  // Aligned: every line is as wide as the header (counted in characters, not bytes), and right-aligned
  // columns end at the same place.
  const auto columns = [](const std::string& line) {
    return std::count_if(line.begin(), line.end(),
                         [](char c) { return (static_cast<unsigned char>(c) & 0xC0) != 0x80; });
  };
  EXPECT_EQ(columns(lines[1]), columns(lines[0]));
  EXPECT_EQ(columns(lines[2]), columns(lines[0]));
  EXPECT_EQ(columns(lines[3]), columns(lines[0]));
  const auto count_end = [](const std::string& line, const std::string& cell) {
    return line.find(cell) + cell.size();
  };
  EXPECT_EQ(count_end(lines[0], "count"), count_end(lines[1], "12345"));

  EXPECT_EQ(tr::format_summary({}).find('\n'), tr::format_summary({}).size() - 1);  // Header only.
}

// ---- Chrome JSON ----------------------------------------------------------------------------------------

TEST_F(Trace, ChromeJsonIsValidAndEscapesNames) {
  const std::string pool_name = "pool \"A\"\\";
  const std::uint32_t pool = tr::register_executor(pool_name);
  const std::string weird = "say \"hi\"\\\n\t\x01 caf\xC3\xA9 \xE2\x82\xAC";
  const char* weird_name = tr::intern(weird);
  const double ns = weft::detail::ns_per_tick();
  const auto us = [ns](double ticks) { return ticks * ns / 1e3; };

  constexpr std::uint64_t t0 = 5'000'000;
  tr::record(make_span(weird_name, 42, t0 - 4000, t0, t0 + 3000, pool, 2, false));
  tr::record(make_span("bad \xFF utf8", 43, t0, t0 + 10'000, t0 + 12'000, 0, 0, true));

  std::ostringstream out;
  tr::write_chrome_json(out);
  const std::string text = out.str();
  Json root;
  ASSERT_NO_THROW(root = parse_json(text)) << text;
  ASSERT_EQ(root.kind, Json::Kind::object);
  ASSERT_NE(root.get("displayTimeUnit"), nullptr);
  EXPECT_EQ(root.get("displayTimeUnit")->str, "ms");
  ASSERT_NE(root.get("traceEvents"), nullptr);
  ASSERT_EQ(root.get("traceEvents")->kind, Json::Kind::array);

  const auto complete = events_with_ph(root, "X");
  ASSERT_EQ(complete.size(), 2u);
  const Json* first = nullptr;
  const Json* second = nullptr;
  for (const Json* e : complete) (e->get("args")->get("id")->num == 42 ? first : second) = e;
  ASSERT_NE(first, nullptr);
  ASSERT_NE(second, nullptr);

  EXPECT_EQ(first->get("name")->str, weird);  // Escaped on the way out, decoded back to the original.
  EXPECT_EQ(first->get("pid")->num, pool);
  EXPECT_EQ(first->get("tid")->num, 2);
  EXPECT_NEAR(first->get("ts")->num, 0.0, 1e-3);  // The earliest start is the origin.
  EXPECT_NEAR(first->get("dur")->num, us(3000), 1e-3);
  EXPECT_NEAR(first->get("args")->get("queue_wait_us")->num, us(4000), 1e-3);
  EXPECT_EQ(first->get("args")->get("failed")->kind, Json::Kind::boolean);
  EXPECT_FALSE(first->get("args")->get("failed")->b);

  EXPECT_EQ(second->get("name")->str, "bad \xEF\xBF\xBD utf8");  // The stray byte became U+FFFD.
  EXPECT_EQ(second->get("pid")->num, 0);
  EXPECT_NEAR(second->get("ts")->num, us(10'000), 1e-3);
  EXPECT_NEAR(second->get("dur")->num, us(2000), 1e-3);
  EXPECT_TRUE(second->get("args")->get("failed")->b);

  // Metadata: the executor is a named process, each worker a named thread.
  std::map<std::pair<double, double>, std::string> thread_names;
  std::map<double, std::string> process_names;
  for (const Json* m : events_with_ph(root, "M")) {
    const std::string& what = m->get("name")->str;
    if (what == "process_name") process_names[m->get("pid")->num] = m->get("args")->get("name")->str;
    if (what == "thread_name") {
      thread_names[{m->get("pid")->num, m->get("tid")->num}] = m->get("args")->get("name")->str;
    }
  }
  ASSERT_EQ(process_names.count(pool), 1u);
  EXPECT_EQ(process_names[pool], pool_name);
  EXPECT_EQ(process_names.count(0), 1u);
  EXPECT_EQ((thread_names[{double(pool), 2.0}]), "worker 2");
  EXPECT_EQ((thread_names[{0.0, 0.0}]), "worker 0");
}

TEST_F(Trace, ChromeJsonOfAnEmptyTraceIsValid) {
  std::ostringstream out;
  tr::write_chrome_json(out);
  Json root;
  ASSERT_NO_THROW(root = parse_json(out.str())) << out.str();
  ASSERT_NE(root.get("traceEvents"), nullptr);
  EXPECT_TRUE(root.get("traceEvents")->arr.empty());
  EXPECT_TRUE(tr::summarize().empty());
}

TEST_F(Trace, ChromeJsonLargeTraceIsValid) {
  // Enough events that the writer hands its text to the stream in several pieces.
  run_threads(4, [](unsigned t) {
    for (std::uint64_t i = 0; i < 3000; ++i) tr::record(make_span("bulk", i, i, i + 1, i + 2, 1, t));
  });
  std::ostringstream out;
  tr::write_chrome_json(out);
  ASSERT_GT(out.str().size(), std::size_t{1} << 17);
  Json root;
  ASSERT_NO_THROW(root = parse_json(out.str()));
  EXPECT_EQ(events_with_ph(root, "X").size(), 12000u);
}

TEST_F(Trace, ChromeJsonToFile) {
  tr::record(make_span("file", 1, 0, 1, 2));
  const auto path = std::filesystem::temp_directory_path() /
                    ("weft_trace_test_" + std::to_string(std::random_device{}()) + ".trace.json");
  tr::write_chrome_json(path.string());
  std::ifstream in(path, std::ios::binary);
  const std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  in.close();
  std::filesystem::remove(path);
  Json root;
  ASSERT_NO_THROW(root = parse_json(text)) << text;
  ASSERT_EQ(events_with_ph(root, "X").size(), 1u);
  EXPECT_EQ(events_with_ph(root, "X")[0]->get("name")->str, "file");
}

TEST_F(Trace, ChromeJsonToABadPathThrowsWithThePath) {
  const std::string path = "/nonexistent-weft-directory/sub/trace.json";
  try {
    tr::write_chrome_json(path);
    FAIL() << "no exception";
  } catch (const std::system_error& e) {
    EXPECT_NE(std::string(e.what()).find(path), std::string::npos) << e.what();
    EXPECT_EQ(e.code(), std::errc::no_such_file_or_directory);
  }
}

TEST_F(Trace, ChromeJsonWriteFailureThrowsWithThePath) {
  if (!std::filesystem::exists("/dev/full")) GTEST_SKIP() << "no /dev/full";
  // Enough text to overflow the stream's buffer, so the failure shows however it is flushed.
  run_threads(1, [](unsigned) {
    for (std::uint64_t i = 0; i < 2000; ++i) tr::record(make_span("full", i, i, i + 1, i + 2));
  });
  try {
    tr::write_chrome_json(std::string("/dev/full"));
    FAIL() << "no exception";
  } catch (const std::runtime_error& e) {
    EXPECT_NE(std::string(e.what()).find("/dev/full"), std::string::npos) << e.what();
  }
}

// ---- names ----------------------------------------------------------------------------------------------

TEST_F(Trace, InternReturnsTheSamePointerForEqualStrings) {
  std::string dynamic = "task-";
  dynamic += "17";
  const char* a = tr::intern(dynamic);
  const char* b = tr::intern("task-17");
  EXPECT_EQ(a, b);
  EXPECT_STREQ(a, "task-17");
  EXPECT_NE(tr::intern("task-18"), a);
  dynamic[0] = 'X';  // The copy does not follow the caller's string.
  EXPECT_STREQ(a, "task-17");
  // Stable while the table grows.
  for (int i = 0; i < 5000; ++i) tr::intern("grow-" + std::to_string(i));
  EXPECT_EQ(tr::intern("task-17"), a);
  EXPECT_STREQ(a, "task-17");
  // Embedded NUL: distinct from the prefix.
  EXPECT_NE(tr::intern(std::string_view("ab\0c", 4)), tr::intern("ab"));
}

TEST_F(Trace, InternIsThreadSafe) {
  constexpr unsigned kThreads = 8;
  constexpr int kNames = 200;
  std::vector<std::vector<const char*>> seen(kThreads, std::vector<const char*>(kNames));
  run_threads(kThreads, [&](unsigned t) {
    for (int i = 0; i < kNames; ++i) {
      const int n = (i + static_cast<int>(t) * 31) % kNames;  // Each thread in a different order.
      seen[t][n] = tr::intern("concurrent-name-" + std::to_string(n));
    }
  });
  for (int n = 0; n < kNames; ++n) {
    for (unsigned t = 1; t < kThreads; ++t) ASSERT_EQ(seen[t][n], seen[0][n]) << n;
    ASSERT_EQ(std::string(seen[0][n]), "concurrent-name-" + std::to_string(n));
  }
}

TEST_F(Trace, RegisterExecutorReturnsDistinctIds) {
  const std::uint32_t a = tr::register_executor("a");
  const std::uint32_t b = tr::register_executor("a");
  EXPECT_NE(a, 0u);
  EXPECT_NE(b, 0u);
  EXPECT_NE(a, b);
  std::vector<std::uint32_t> ids(4);
  run_threads(4, [&](unsigned t) { ids[t] = tr::register_executor("pool " + std::to_string(t)); });
  EXPECT_EQ(std::set<std::uint32_t>(ids.begin(), ids.end()).size(), 4u);
}

}  // namespace
