// weft/process/value.hpp — typed values and arrays in shared memory (multiprocessing.Value / Array), each
// with an optional robust lock.
//
//   weft::process::Value<std::int64_t> counter(0);                 // anonymous segment, with a lock
//   weft::process::Process p(&work, counter);                       // the child maps the same memory
//   { auto g = counter.lock(); if (g.owner_died()) repair(*g); ++*g; }
//   std::int64_t now = counter.load();
//
// T must be trivially copyable (it is copied as bytes between processes). The segment starts with a header
// (magic, element size, a tag of T's type, count, lock flag) that every attach checks: mapping a Value<int>
// as a Value<double>, or an Array of the wrong length, is a clear error, never a silent reinterpretation.
// Without a lock, load/store of a lock-free T are atomic (std::atomic_ref, sequentially consistent); other
// access is the caller's to synchronise. A holder of the lock that dies leaves it to the next locker with
// owner_died() true (see robust_mutex.hpp).
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <new>
#include <span>
#include <stdexcept>
#include <string>
#include <string_view>
#include <type_traits>
#include <typeinfo>
#include <vector>

#include "weft/process/robust_mutex.hpp"
#include "weft/process/serialize.hpp"
#include "weft/process/shared_memory.hpp"

namespace weft::process {

struct ValueOptions {
  bool lock = true;        ///< include a robust process-shared lock
  std::string name = {};   ///< empty: an anonymous segment (shared by passing it to a Process); else named
};

namespace detail {
struct alignas(64) ArrayHeader {
  std::uint64_t magic;
  std::uint64_t type_tag;
  std::uint64_t count;
  std::uint32_t element_size;
  std::uint32_t has_lock;
};
inline constexpr std::uint64_t kArrayMagic = 0x57454654'41525259ULL;  // "WEFTARRY"
inline constexpr std::size_t kLockOffset = sizeof(ArrayHeader);
inline constexpr std::size_t align_up(std::size_t n, std::size_t a) { return (n + a - 1) / a * a; }
template <class T>
std::uint64_t type_tag() {
  return std::hash<std::string_view>{}(typeid(T).name()) ^ (sizeof(T) << 48);
}
template <class T>
constexpr std::size_t data_offset() {
  return align_up(kLockOffset + sizeof(RobustMutex), alignof(T) > 64 ? alignof(T) : 64);
}
}  // namespace detail

/// `n` elements of T in shared memory. Move-only; copies in other processes come from passing it to a
/// Process (or attach() by name). Thread- and process-safe as far as the lock is used.
template <class T>
class Array {
  static_assert(std::is_trivially_copyable_v<T>, "weft: Array<T>/Value<T> need a trivially copyable T");

 public:
  /// Holds the lock; gives access to the elements. Unlocks on destruction.
  class Guard {
   public:
    Guard(Guard&& o) noexcept : a_(std::exchange(o.a_, nullptr)) {}
    Guard(const Guard&) = delete;
    Guard& operator=(const Guard&) = delete;
    ~Guard() {
      if (a_ != nullptr) a_->mutex()->unlock();
    }
    std::span<T> operator*() const noexcept { return a_->span(); }
    /// True when the previous holder died holding the lock: the elements may be half-updated.
    bool owner_died() const noexcept { return a_->mutex()->owner_died(); }

   private:
    friend class Array;
    explicit Guard(const Array* a) : a_(a) { (void)a_->mutex()->lock_checked(); }
    const Array* a_;
  };

  /// Makes `n` elements, each `init`. Throws std::invalid_argument (n == 0), what SharedMemory throws.
  explicit Array(std::size_t n, const T& init = T{}, ValueOptions options = {}) {
    if (n == 0) throw std::invalid_argument("weft: an Array needs at least one element");
    const std::size_t bytes = detail::data_offset<T>() + n * sizeof(T);
    mem_ = options.name.empty() ? SharedMemory::anonymous(bytes) : SharedMemory::create(options.name, bytes);
    auto* h = new (mem_.data()) detail::ArrayHeader{detail::kArrayMagic, detail::type_tag<T>(), n,
                                                    static_cast<std::uint32_t>(sizeof(T)), options.lock ? 1u : 0u};
    (void)h;
    if (options.lock) new (static_cast<char*>(mem_.data()) + detail::kLockOffset) RobustMutex();
    T* d = data();
    for (std::size_t i = 0; i < n; ++i) new (&d[i]) T(init);
    n_ = n;
  }

  /// Maps the named Array another process made. Throws std::system_error (no such name), std::runtime_error
  /// (the segment is not an Array<T>: another element type or size).
  static Array attach(std::string_view name) { return Array(SharedMemory::attach(name)); }
  /// Wraps a mapped segment, checking its header (used when an Array arrives as a Process argument).
  explicit Array(SharedMemory mem) : mem_(std::move(mem)) {
    if (mem_.size() < detail::data_offset<T>()) throw std::runtime_error("weft: shared memory too small for an Array");
    const auto* h = static_cast<const detail::ArrayHeader*>(mem_.data());
    if (h->magic != detail::kArrayMagic) throw std::runtime_error("weft: this shared memory does not hold an Array");
    if (h->element_size != sizeof(T) || h->type_tag != detail::type_tag<T>()) {
      throw std::runtime_error("weft: this Array holds elements of another type (" + std::to_string(h->element_size) +
                               " bytes each), not " + detail::type_name(typeid(T)));
    }
    if (detail::data_offset<T>() + h->count * sizeof(T) > mem_.size()) {
      throw std::runtime_error("weft: this Array's header announces more elements than its memory holds");
    }
    n_ = static_cast<std::size_t>(h->count);
  }

  std::size_t size() const noexcept { return n_; }
  T* data() const noexcept { return reinterpret_cast<T*>(static_cast<char*>(mem_.data()) + detail::data_offset<T>()); }
  std::span<T> span() const noexcept { return {data(), n_}; }
  /// Unchecked access (no lock taken).
  T& operator[](std::size_t i) const noexcept { return data()[i]; }
  /// Checked access (no lock taken). Throws std::out_of_range.
  T& at(std::size_t i) const {
    if (i >= n_) throw std::out_of_range("weft: Array index " + std::to_string(i) + " of " + std::to_string(n_));
    return data()[i];
  }
  bool has_lock() const noexcept { return static_cast<const detail::ArrayHeader*>(mem_.data())->has_lock != 0; }
  /// Takes the lock. Throws std::logic_error when the Array has none.
  Guard lock() const {
    if (!has_lock()) throw std::logic_error("weft: this Array was made without a lock");
    return Guard(this);
  }
  /// A copy of the elements, under the lock when there is one.
  std::vector<T> to_vector() const {
    if (!has_lock()) return std::vector<T>(data(), data() + n_);
    auto g = lock();
    return std::vector<T>(data(), data() + n_);
  }
  const SharedMemory& memory() const noexcept { return mem_; }

 private:
  RobustMutex* mutex() const noexcept {
    return reinterpret_cast<RobustMutex*>(static_cast<char*>(mem_.data()) + detail::kLockOffset);
  }
  SharedMemory mem_;
  std::size_t n_ = 0;
};

/// One T in shared memory (an Array of one, with value-style access).
template <class T>
class Value {
 public:
  using Guard = typename Array<T>::Guard;
  explicit Value(const T& init = T{}, ValueOptions options = {}) : a_(1, init, std::move(options)) {}
  explicit Value(SharedMemory mem) : a_(std::move(mem)) {
    if (a_.size() != 1) throw std::runtime_error("weft: this shared memory holds an Array, not a Value");
  }
  static Value attach(std::string_view name) { return Value(SharedMemory::attach(name)); }

  /// The value: under the lock when there is one, else an atomic load for a lock-free T, else a plain copy.
  T load() const {
    if (a_.has_lock()) {
      auto g = a_.lock();
      return (*g)[0];
    }
    if constexpr (std::atomic_ref<T>::is_always_lock_free) {
      return std::atomic_ref<T>(a_[0]).load();
    } else {
      return a_[0];
    }
  }
  /// Sets the value (same rules as load()).
  void store(const T& v) const {
    if (a_.has_lock()) {
      auto g = a_.lock();
      (*g)[0] = v;
      return;
    }
    if constexpr (std::atomic_ref<T>::is_always_lock_free) {
      std::atomic_ref<T>(a_[0]).store(v);
    } else {
      a_[0] = v;
    }
  }
  /// Takes the lock; `(*guard)[0]` is the value. Throws std::logic_error without a lock.
  Guard lock() const { return a_.lock(); }
  /// Atomic access without the lock, for a lock-free T.
  std::atomic_ref<T> atomic() const
    requires std::atomic_ref<T>::is_always_lock_free
  {
    return std::atomic_ref<T>(a_[0]);
  }
  bool has_lock() const noexcept { return a_.has_lock(); }
  const SharedMemory& memory() const noexcept { return a_.memory(); }

 private:
  Array<T> a_;
};

template <class T>
struct serializable<Array<T>> : std::true_type {};
template <class T>
struct serializable<Value<T>> : std::true_type {};

}  // namespace weft::process

namespace msgpack {
MSGPACK_API_VERSION_NAMESPACE(MSGPACK_DEFAULT_API_NS) {
namespace adaptor {
template <class T>
struct pack<weft::process::Array<T>> {
  template <class Stream>
  packer<Stream>& operator()(packer<Stream>& o, const weft::process::Array<T>& a) const {
    o.pack(a.memory());
    return o;
  }
};
template <class T>
struct as<weft::process::Array<T>> {
  weft::process::Array<T> operator()(const msgpack::object& o) const {
    return weft::process::Array<T>(o.as<weft::process::SharedMemory>());
  }
};
template <class T>
struct pack<weft::process::Value<T>> {
  template <class Stream>
  packer<Stream>& operator()(packer<Stream>& o, const weft::process::Value<T>& v) const {
    o.pack(v.memory());
    return o;
  }
};
template <class T>
struct as<weft::process::Value<T>> {
  weft::process::Value<T> operator()(const msgpack::object& o) const {
    return weft::process::Value<T>(o.as<weft::process::SharedMemory>());
  }
};
}  // namespace adaptor
}  // MSGPACK_API_VERSION_NAMESPACE(MSGPACK_DEFAULT_API_NS)
}  // namespace msgpack
