#pragma once
// io::Buffer: bytes read by Stream::read_some — a buffer of the loop's read pool (returned to the pool when the
// Buffer is destroyed) or, when the pool was empty, a one-off heap buffer.
#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>
#include <string_view>
#include <utility>

namespace weft::io {

namespace detail {
class LoopCore;
}

class Buffer {
 public:
  Buffer() noexcept = default;
  /// A pool buffer `id` of `core` holding `size` bytes.
  Buffer(detail::LoopCore* core, std::uint16_t id, char* data, std::size_t size) noexcept
      : core_(core), data_(data), size_(size), id_(id) {}
  /// A heap buffer holding `size` bytes.
  Buffer(std::unique_ptr<char[]> heap, std::size_t size) noexcept
      : data_(heap.get()), size_(size), heap_(std::move(heap)) {}
  Buffer(Buffer&& o) noexcept
      : core_(std::exchange(o.core_, nullptr)), data_(std::exchange(o.data_, nullptr)),
        size_(std::exchange(o.size_, 0)), id_(o.id_), heap_(std::move(o.heap_)) {}
  Buffer& operator=(Buffer&& o) noexcept {
    if (this != &o) {
      reset();
      core_ = std::exchange(o.core_, nullptr);
      data_ = std::exchange(o.data_, nullptr);
      size_ = std::exchange(o.size_, 0);
      id_ = o.id_;
      heap_ = std::move(o.heap_);
    }
    return *this;
  }
  Buffer(const Buffer&) = delete;
  Buffer& operator=(const Buffer&) = delete;
  ~Buffer() { reset(); }

  const char* data() const noexcept { return data_; }
  std::size_t size() const noexcept { return size_; }
  bool empty() const noexcept { return size_ == 0; }
  std::string_view view() const noexcept { return {data_, size_}; }
  std::span<const std::byte> bytes() const noexcept { return {reinterpret_cast<const std::byte*>(data_), size_}; }

  /// Gives the memory back now (to the pool, or frees it). Loop thread only.
  void reset() noexcept;

 private:
  detail::LoopCore* core_ = nullptr;
  char* data_ = nullptr;
  std::size_t size_ = 0;
  std::uint16_t id_ = 0;
  std::unique_ptr<char[]> heap_;
};

}  // namespace weft::io
