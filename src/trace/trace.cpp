// src/trace/trace.cpp — per-thread span buffers, and the readers that export them.
//
// Protocol. B is one thread's Buffer, "the owner" is the thread that records into it, M is Registry::mutex.
// B.count is stored only by the owner; B.base ("cleared up to") only under M.
//
// 1. Attach. On its first record() a thread allocates B, appends it to the registry under M and keeps a
//    thread_local pointer to it. The registry owns B: spans outlive the thread that recorded them.
// 2. Append (owner, no lock). n = B.count. If B.base != 0 a clear() happened: do step 5 first. If n has
//    reached the limit, drop and count. Otherwise find chunk n / kChunkSpans (allocating it if missing and
//    publishing its pointer with a release store), copy the span into slot n, then store B.count = n + 1
//    with release. Outside step 5, a slot below B.count is never written again.
// 3. Read (snapshot, under M). For each B: c = B.count with acquire, which synchronizes with the release
//    store of step 2, so slots [0, c) and the chunk pointers that hold them are complete and visible.
//    Copy slots [B.base, c). The owner may be filling slot c meanwhile; the reader never touches it.
// 4. Clear (under M). Delete each B whose owner has exited (step 7): nobody can write into it. For each live
//    B set B.base = B.count: readers skip everything recorded so far. Nothing a live owner may be writing
//    into is freed or rewritten.
// 5. Reset (owner, under M). Seeing B.base != 0, the owner takes M, so no reader is inside step 3. It moves
//    slots [B.base, n) down to [0, n - B.base) (spans it appended after the clear but before it noticed
//    it, so none recorded after clear() returned is lost), stores B.count = n - B.base and B.base = 0, and
//    releases M. This is the only place low slots are rewritten, and no reader can see it half done:
//    readers run under M and see the new count and base together.
// 6. Grow (owner, under M). If the limit was raised after B was made and slot n lies beyond B's chunk
//    table, the owner replaces the table under M. Readers read the table pointer only under M, and the
//    owner is the only thread that changes it, so the owner may read it without M.
// 7. Detach. At thread exit a thread_local destructor marks B dead under M (and frees it at once if it
//    holds no span); the thread's later record() calls are dropped. Step 4 frees dead buffers.
#include "weft/trace/trace.hpp"

#include "weft/core/detail/clock.hpp"

#include <algorithm>
#include <array>
#include <cerrno>
#include <charconv>
#include <fstream>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <new>
#include <ostream>
#include <set>
#include <shared_mutex>
#include <stdexcept>
#include <system_error>
#include <unordered_set>
#include <utility>

namespace weft::trace {
namespace {

// Spans per chunk: 4096 * 56 bytes = 224 KiB, so a thread that records a few spans costs little.
constexpr std::size_t kChunkSpans = 4096;
// Chunk-table entries a new buffer starts with (covers the default limit of 2^20 spans); step 6 grows it.
constexpr std::size_t kMaxInitialChunks = 256;

// Relaxed: the limit is a plain setting; a thread that sees a new value late drops or keeps a few spans
// more, which enable() documents.
std::atomic<std::size_t> g_limit{Config{}.max_spans_per_thread};
// Relaxed: a statistic, with no data published through it.
std::atomic<std::uint64_t> g_dropped{0};

class Buffer;

struct Registry {
  std::mutex mutex;                              // M of the protocol.
  std::vector<std::unique_ptr<Buffer>> buffers;  // Guarded by `mutex`, in order of attachment.

  std::mutex executors_mutex;
  std::vector<std::string> executors;  // Name of executor id i + 1.

  struct Hash {
    using is_transparent = void;
    std::size_t operator()(std::string_view s) const noexcept { return std::hash<std::string_view>{}(s); }
  };
  std::shared_mutex interned_mutex;
  // Node-based: an element never moves, so its c_str() stays valid while the set grows.
  std::unordered_set<std::string, Hash, std::equal_to<>> interned;
};

// Never destroyed, so a thread that exits during static destruction (or after it) can still detach.
Registry& registry() {
  static Registry* const r = new Registry;
  return *r;
}

// One thread's spans. See the protocol at the top of the file for who may touch what.
class Buffer {
 public:
  explicit Buffer(std::size_t chunks)
      : table_(std::make_unique<std::atomic<Span*>[]>(chunks)), table_size_(chunks) {}

  Buffer(const Buffer&) = delete;
  Buffer& operator=(const Buffer&) = delete;

  ~Buffer() {
    for (std::size_t k = 0; k < table_size_; ++k) ::operator delete(table_[k].load(std::memory_order_relaxed));
  }

  // Step 2; owner only. False when the span is dropped.
  bool append(const Span& s) noexcept {
    // Relaxed: only this thread stores count_ (here and in reset()).
    std::size_t n = count_.load(std::memory_order_relaxed);
    // Relaxed: a stale 0 only means appending after the cleared range; the next call that sees the new
    // base moves such spans down in reset(), so nothing is lost. A stale non-zero cannot happen: base_
    // becomes 0 again only in reset(), on this thread.
    if (base_.load(std::memory_order_relaxed) != 0) [[unlikely]] n = reset(n);
    if (n >= g_limit.load(std::memory_order_relaxed)) return false;
    const std::size_t k = n / kChunkSpans;
    // Relaxed: this thread is the only one that stores table entries.
    Span* chunk = k < table_size_ ? table_[k].load(std::memory_order_relaxed) : nullptr;
    if (chunk == nullptr) [[unlikely]] {
      chunk = add_chunk(k);
      if (chunk == nullptr) return false;
    }
    ::new (static_cast<void*>(chunk + n % kChunkSpans)) Span(s);
    // Release: synchronizes with the acquire load in copy_visible(), publishing the slot just written.
    count_.store(n + 1, std::memory_order_release);
    return true;
  }

  // Step 3; caller holds M.
  void copy_visible(std::vector<Span>& out) const {
    // Acquire: synchronizes with the release store in append(); slots below c are complete.
    const std::size_t c = count_.load(std::memory_order_acquire);
    // Relaxed: base_ is stored only under M, which we hold.
    const std::size_t b = std::min(base_.load(std::memory_order_relaxed), c);
    for (std::size_t i = b; i < c; ++i) {
      // Acquire pairs with the release store in add_chunk(); the count already orders it, this is belt
      // and braces at no cost.
      const Span* chunk = table_[i / kChunkSpans].load(std::memory_order_acquire);
      out.push_back(chunk[i % kChunkSpans]);
    }
  }

  // Caller holds M.
  std::size_t visible() const noexcept {
    const std::size_t c = count_.load(std::memory_order_acquire);
    const std::size_t b = base_.load(std::memory_order_relaxed);
    return c > b ? c - b : 0;
  }

  // Step 4; caller holds M. Relaxed store: the owner reads base_ under M before acting on it (reset()).
  void forget_visible() noexcept { base_.store(count_.load(std::memory_order_acquire), std::memory_order_relaxed); }

  bool alive = true;  // Guarded by M; false once the owner has exited (step 7).

 private:
  // Step 5; owner only. Returns the new count.
  std::size_t reset(std::size_t n) noexcept {
    std::lock_guard lock(registry().mutex);
    const std::size_t b = std::min(base_.load(std::memory_order_relaxed), n);
    for (std::size_t i = b; i < n; ++i) ::new (static_cast<void*>(slot(i - b))) Span(*slot(i));
    n -= b;
    // No reader runs while we hold M; the next one sees both stores through M.
    count_.store(n, std::memory_order_release);
    base_.store(0, std::memory_order_relaxed);
    return n;
  }

  // Owner only: slot i below count_, whose chunk exists.
  Span* slot(std::size_t i) const noexcept {
    return table_[i / kChunkSpans].load(std::memory_order_relaxed) + i % kChunkSpans;
  }

  // Owner only: makes chunk k exist (steps 2 and 6). Null when memory is short.
  Span* add_chunk(std::size_t k) noexcept {
    if (k >= table_size_ && !grow(k + 1)) return nullptr;
    // Raw storage: a chunk is filled slot by slot with placement new, never default-constructed.
    auto* chunk = static_cast<Span*>(::operator new(kChunkSpans * sizeof(Span), std::nothrow));
    if (chunk == nullptr) return nullptr;
    // Release: pairs with the acquire load in copy_visible() (also ordered by the count, see there).
    table_[k].store(chunk, std::memory_order_release);
    return chunk;
  }

  // Step 6; owner only.
  bool grow(std::size_t chunks) noexcept {
    const std::size_t size = std::max(chunks, 2 * table_size_);
    std::unique_ptr<std::atomic<Span*>[]> table(new (std::nothrow) std::atomic<Span*>[size]());
    if (!table) return false;
    for (std::size_t k = 0; k < table_size_; ++k) {
      table[k].store(table_[k].load(std::memory_order_relaxed), std::memory_order_relaxed);
    }
    std::lock_guard lock(registry().mutex);  // Readers read table_ and table_size_ under M.
    table_.swap(table);
    table_size_ = size;
    return true;
  }

  // Stored by the owner only; release in append(), acquire by readers.
  alignas(64) std::atomic<std::size_t> count_{0};
  // "Cleared up to": readers ignore slots below it. Stored only under M.
  std::atomic<std::size_t> base_{0};
  // Chunk pointers. table_ and table_size_ change only in grow(), by the owner, under M.
  std::unique_ptr<std::atomic<Span*>[]> table_;
  std::size_t table_size_;
};

thread_local Buffer* tls_buffer = nullptr;  // This thread's buffer, once attached (step 1).
thread_local bool tls_detached = false;     // Set at thread exit (step 7); later spans are dropped.

// Step 7.
struct Detacher {
  Buffer* buffer = nullptr;

  Detacher() = default;
  Detacher(const Detacher&) = delete;
  Detacher& operator=(const Detacher&) = delete;

  ~Detacher() {
    tls_buffer = nullptr;
    tls_detached = true;
    if (buffer == nullptr) return;
    Registry& r = registry();
    std::lock_guard lock(r.mutex);
    buffer->alive = false;
    if (buffer->visible() == 0) {
      std::erase_if(r.buffers, [this](const std::unique_ptr<Buffer>& b) { return b.get() == buffer; });
    }
  }
};

// Step 1. Null when the thread is exiting or memory is short.
Buffer* attach_thread() noexcept {
  if (tls_detached) return nullptr;
  try {
    thread_local Detacher detacher;
    const std::size_t limit = g_limit.load(std::memory_order_relaxed);
    const std::size_t needed = limit / kChunkSpans + (limit % kChunkSpans != 0 ? 1 : 0);
    const std::size_t chunks = std::clamp<std::size_t>(needed, 1, kMaxInitialChunks);
    auto owned = std::make_unique<Buffer>(chunks);
    Buffer* b = owned.get();
    Registry& r = registry();
    {
      std::lock_guard lock(r.mutex);
      r.buffers.push_back(std::move(owned));
    }
    detacher.buffer = b;
    tls_buffer = b;
    return b;
  } catch (...) {
    return nullptr;
  }
}

// ---- export helpers -------------------------------------------------------------------------------------

void append_fixed(std::string& out, double v, int precision) {
  char buf[64];
  const auto r = std::to_chars(buf, buf + sizeof buf, v, std::chars_format::fixed, precision);
  if (r.ec != std::errc{}) {
    out += '0';  // Only a non-finite or absurdly large value gets here; keep the JSON valid.
    return;
  }
  out.append(buf, r.ptr);
}

std::string fixed(double v, int precision) {
  std::string out;
  append_fixed(out, v, precision);
  return out;
}

void append_uint(std::string& out, std::uint64_t v) {
  char buf[24];
  const auto r = std::to_chars(buf, buf + sizeof buf, v);
  out.append(buf, r.ptr);
}

// Length of the well-formed UTF-8 sequence at s[i] (Unicode Table 3-7), or 0 if it is not one.
std::size_t utf8_length(std::string_view s, std::size_t i) noexcept {
  const auto byte = [&](std::size_t j) { return static_cast<unsigned char>(s[j]); };
  const unsigned char c = byte(i);
  std::size_t len = 0;
  unsigned char lo = 0x80, hi = 0xBF;  // Allowed range of the second byte.
  if (c >= 0xC2 && c <= 0xDF) {
    len = 2;
  } else if (c >= 0xE0 && c <= 0xEF) {
    len = 3;
    if (c == 0xE0) lo = 0xA0;  // No overlong forms.
    if (c == 0xED) hi = 0x9F;  // No surrogates.
  } else if (c >= 0xF0 && c <= 0xF4) {
    len = 4;
    if (c == 0xF0) lo = 0x90;  // No overlong forms.
    if (c == 0xF4) hi = 0x8F;  // Nothing above U+10FFFF.
  } else {
    return 0;
  }
  if (s.size() - i < len) return 0;
  if (byte(i + 1) < lo || byte(i + 1) > hi) return 0;
  for (std::size_t j = 2; j < len; ++j) {
    if (byte(i + j) < 0x80 || byte(i + j) > 0xBF) return 0;
  }
  return len;
}

void append_json_string(std::string& out, std::string_view s) {
  static constexpr char kHex[] = "0123456789abcdef";
  out += '"';
  for (std::size_t i = 0; i < s.size();) {
    const auto c = static_cast<unsigned char>(s[i]);
    if (c >= 0x80) {
      const std::size_t len = utf8_length(s, i);
      if (len == 0) {
        out += "\\ufffd";
        ++i;
      } else {
        out.append(s, i, len);
        i += len;
      }
      continue;
    }
    switch (c) {
      case '"': out += "\\\""; break;
      case '\\': out += "\\\\"; break;
      case '\b': out += "\\b"; break;
      case '\f': out += "\\f"; break;
      case '\n': out += "\\n"; break;
      case '\r': out += "\\r"; break;
      case '\t': out += "\\t"; break;
      default:
        if (c < 0x20) {
          out += "\\u00";
          out += kHex[c >> 4];
          out += kHex[c & 0xF];
        } else {
          out += static_cast<char>(c);
        }
    }
    ++i;
  }
  out += '"';
}

std::string_view name_of(const Span& s) noexcept { return s.name != nullptr ? s.name : "(unnamed)"; }

std::uint64_t run_ticks(const Span& s) noexcept { return s.end > s.start ? s.end - s.start : 0; }
std::uint64_t wait_ticks(const Span& s) noexcept { return s.start > s.submit ? s.start - s.submit : 0; }

// Nearest rank: the smallest value with at least p percent of the values at or below it.
std::uint64_t percentile(const std::vector<std::uint64_t>& sorted, std::uint64_t p) noexcept {
  const std::uint64_t n = sorted.size();
  const std::uint64_t rank = std::max<std::uint64_t>((p * n + 99) / 100, 1);
  return sorted[rank - 1];
}

std::vector<std::string> executor_names() {
  Registry& r = registry();
  std::lock_guard lock(r.executors_mutex);
  return r.executors;
}

}  // namespace

// ---- recording ------------------------------------------------------------------------------------------

void enable(Config c) noexcept {
  g_limit.store(c.max_spans_per_thread, std::memory_order_relaxed);
  // Relaxed: enabled() is a relaxed load; the switch publishes no data (see enabled()).
  weft::detail::trace_on.store(true, std::memory_order_relaxed);
}

void disable() noexcept { weft::detail::trace_on.store(false, std::memory_order_relaxed); }

void record(const Span& s) noexcept {
  if (!enabled()) return;
  Buffer* b = tls_buffer;
  if (b == nullptr) [[unlikely]] {
    b = attach_thread();
    if (b == nullptr) {
      g_dropped.fetch_add(1, std::memory_order_relaxed);
      return;
    }
  }
  if (!b->append(s)) [[unlikely]] g_dropped.fetch_add(1, std::memory_order_relaxed);
}

std::uint64_t dropped() noexcept { return g_dropped.load(std::memory_order_relaxed); }

std::uint32_t register_executor(std::string_view name) {
  Registry& r = registry();
  std::lock_guard lock(r.executors_mutex);
  r.executors.emplace_back(name);
  return static_cast<std::uint32_t>(r.executors.size());
}

const char* intern(std::string_view s) {
  Registry& r = registry();
  {
    std::shared_lock lock(r.interned_mutex);
    if (auto it = r.interned.find(s); it != r.interned.end()) return it->c_str();
  }
  std::unique_lock lock(r.interned_mutex);
  return r.interned.emplace(s).first->c_str();  // Finds the copy another thread may have added meanwhile.
}

void clear() {
  Registry& r = registry();
  std::lock_guard lock(r.mutex);
  std::erase_if(r.buffers, [](const std::unique_ptr<Buffer>& b) { return !b->alive; });
  for (auto& b : r.buffers) b->forget_visible();
  g_dropped.store(0, std::memory_order_relaxed);
}

std::vector<Span> snapshot() {
  Registry& r = registry();
  std::lock_guard lock(r.mutex);
  std::size_t total = 0;
  for (const auto& b : r.buffers) total += b->visible();
  std::vector<Span> out;
  out.reserve(total);  // A few more may be published while we copy; push_back makes room.
  for (const auto& b : r.buffers) b->copy_visible(out);
  return out;
}

// ---- summary --------------------------------------------------------------------------------------------

std::vector<TaskStats> summarize() {
  const std::vector<Span> spans = snapshot();
  struct Group {
    std::uint64_t failed = 0;
    std::uint64_t total = 0;
    std::vector<std::uint64_t> run, wait;
  };
  std::map<std::string_view, Group> groups;  // Ordered by name: the tie-break of the final sort.
  for (const Span& s : spans) {
    Group& g = groups[name_of(s)];
    g.failed += s.failed ? 1 : 0;
    g.total += run_ticks(s);
    g.run.push_back(run_ticks(s));
    g.wait.push_back(wait_ticks(s));
  }

  const double ns = weft::detail::ns_per_tick();
  const auto us = [ns](std::uint64_t t) { return static_cast<double>(t) * ns / 1e3; };
  std::vector<TaskStats> rows;
  rows.reserve(groups.size());
  for (auto& [name, g] : groups) {
    std::sort(g.run.begin(), g.run.end());
    std::sort(g.wait.begin(), g.wait.end());
    TaskStats t;
    t.name = std::string(name);
    t.count = g.run.size();
    t.failed = g.failed;
    t.total_ms = static_cast<double>(g.total) * ns / 1e6;
    t.mean_us = us(g.total) / static_cast<double>(t.count);
    t.p50_us = us(percentile(g.run, 50));
    t.p99_us = us(percentile(g.run, 99));
    t.wait_p50_us = us(percentile(g.wait, 50));
    t.wait_p99_us = us(percentile(g.wait, 99));
    rows.push_back(std::move(t));
  }
  std::stable_sort(rows.begin(), rows.end(),
                   [](const TaskStats& a, const TaskStats& b) { return a.total_ms > b.total_ms; });
  return rows;
}

// The name as a table cell: control characters (which would break the layout) become '?'.
std::string printable(std::string_view name) {
  std::string out(name);
  for (char& c : out) {
    if (static_cast<unsigned char>(c) < 0x20 || c == 0x7F) c = '?';
  }
  return out;
}

// Columns a cell takes: UTF-8 continuation bytes take none (wide characters are counted as one).
std::size_t display_width(std::string_view cell) noexcept {
  const auto starts_a_character = [](char c) { return (static_cast<unsigned char>(c) & 0xC0) != 0x80; };
  return static_cast<std::size_t>(std::count_if(cell.begin(), cell.end(), starts_a_character));
}

std::string format_summary(const std::vector<TaskStats>& rows) {
  constexpr std::size_t kColumns = 9;
  using Row = std::array<std::string, kColumns>;
  std::vector<Row> cells;
  cells.reserve(rows.size() + 1);
  cells.push_back(
      {"task", "count", "failed", "total ms", "mean us", "p50 us", "p99 us", "wait p50 us", "wait p99 us"});
  for (const TaskStats& t : rows) {
    cells.push_back({printable(t.name), std::to_string(t.count), std::to_string(t.failed), fixed(t.total_ms, 3),
                     fixed(t.mean_us, 2), fixed(t.p50_us, 2), fixed(t.p99_us, 2), fixed(t.wait_p50_us, 2),
                     fixed(t.wait_p99_us, 2)});
  }
  std::array<std::size_t, kColumns> width{};
  for (const Row& row : cells) {
    for (std::size_t c = 0; c < kColumns; ++c) width[c] = std::max(width[c], display_width(row[c]));
  }
  std::string out;
  for (const Row& row : cells) {
    for (std::size_t c = 0; c < kColumns; ++c) {
      const std::size_t pad = width[c] - display_width(row[c]);
      if (c == 0) {  // Names left-aligned, figures right-aligned.
        out += row[c];
        out.append(pad, ' ');
      } else {
        out.append(2 + pad, ' ');
        out += row[c];
      }
    }
    out += '\n';
  }
  return out;
}

// ---- Chrome trace-event JSON ----------------------------------------------------------------------------

void write_chrome_json(std::ostream& out) {
  const std::vector<Span> spans = snapshot();
  const std::vector<std::string> names = executor_names();
  const double ns = weft::detail::ns_per_tick();
  const auto us = [ns](std::uint64_t t) { return static_cast<double>(t) * ns / 1e3; };

  std::uint64_t origin = UINT64_MAX;
  std::set<std::uint32_t> executors;
  std::set<std::pair<std::uint32_t, std::uint32_t>> workers;
  for (const Span& s : spans) {
    origin = std::min(origin, s.start);
    executors.insert(s.executor);
    workers.emplace(s.executor, s.worker);
  }

  std::string buf;
  bool first = true;
  const auto begin_event = [&] {
    if (!first) buf += ",\n";
    first = false;
    // Hand the text over in pieces, so a large trace is not held twice in memory.
    if (buf.size() >= (1u << 16)) {
      out.write(buf.data(), static_cast<std::streamsize>(buf.size()));
      buf.clear();
    }
  };
  const auto metadata = [&](const char* what, std::uint32_t pid, std::uint32_t tid) {
    begin_event();
    buf += "{\"name\":\"";
    buf += what;
    buf += "\",\"ph\":\"M\",\"pid\":";
    append_uint(buf, pid);
    buf += ",\"tid\":";
    append_uint(buf, tid);
    buf += ",\"args\":{";
  };

  buf += "{\"traceEvents\":[\n";
  for (std::uint32_t e : executors) {
    metadata("process_name", e, 0);
    buf += "\"name\":";
    if (e == 0) {
      append_json_string(buf, "(unnamed executor)");
    } else if (e <= names.size()) {
      append_json_string(buf, names[e - 1]);
    } else {
      append_json_string(buf, "executor " + std::to_string(e));
    }
    buf += "}}";
  }
  for (const auto& [e, w] : workers) {
    metadata("thread_name", e, w);
    buf += "\"name\":";
    append_json_string(buf, w == kCallerWorker ? std::string("caller") : "worker " + std::to_string(w));
    buf += "}}";
    metadata("thread_sort_index", e, w);
    buf += "\"sort_index\":";
    append_uint(buf, w);
    buf += "}}";
  }
  for (const Span& s : spans) {
    begin_event();
    buf += "{\"name\":";
    append_json_string(buf, name_of(s));
    buf += ",\"cat\":\"task\",\"ph\":\"X\",\"ts\":";
    append_fixed(buf, us(s.start - origin), 3);
    buf += ",\"dur\":";
    append_fixed(buf, us(run_ticks(s)), 3);
    buf += ",\"pid\":";
    append_uint(buf, s.executor);
    buf += ",\"tid\":";
    append_uint(buf, s.worker);
    buf += ",\"args\":{\"id\":";
    append_uint(buf, s.id);
    buf += ",\"queue_wait_us\":";
    append_fixed(buf, us(wait_ticks(s)), 3);
    buf += s.failed ? ",\"failed\":true}}" : ",\"failed\":false}}";
  }
  buf += "\n],\"displayTimeUnit\":\"ms\"}\n";
  out.write(buf.data(), static_cast<std::streamsize>(buf.size()));
}

void write_chrome_json(const std::string& path) {
  std::ofstream file;
  errno = 0;
  file.open(path, std::ios::binary | std::ios::trunc);
  if (!file.is_open()) {
    const int e = errno != 0 ? errno : static_cast<int>(std::errc::io_error);
    throw std::system_error(e, std::generic_category(), "weft::trace: cannot open '" + path + "' for writing");
  }
  write_chrome_json(file);
  file.close();  // Flushes; a full disk shows up here at the latest.
  if (file.fail()) throw std::runtime_error("weft::trace: writing '" + path + "' failed");
}

}  // namespace weft::trace
