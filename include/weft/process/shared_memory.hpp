// weft/process/shared_memory.hpp — a segment of memory shared between processes
// (multiprocessing.shared_memory.SharedMemory), named or anonymous.
//
//   auto shm = weft::process::SharedMemory::create("frames", 1 << 20);  // /dev/shm/frames, 1 MiB
//   ... another process: auto view = weft::process::SharedMemory::attach("frames");
//
// Unlike Python's, a segment created by name is unlinked when the object that created it is destroyed (so a
// program cannot leak /dev/shm entries by forgetting), unless keep() was called. An anonymous segment
// (anonymous(size), a memfd) has no name at all and travels to a child as a Process argument, by descriptor.
// Concurrent access to the bytes is the user's to synchronise (Value/Array add a lock; Queue is a ring).
#pragma once

#include <cstddef>
#include <span>
#include <string>
#include <string_view>

#include "weft/process/detail/fd_passing.hpp"
#include "weft/process/errors.hpp"
#include "weft/process/serialize.hpp"

namespace weft::process {

class SharedMemory {
 public:
  /// Creates a new named segment of `size` bytes, zero-filled (shm_open O_EXCL, mode 0600). The name may
  /// start with '/'; otherwise it has 1..200 characters and no '/'. Throws std::invalid_argument (bad name,
  /// size 0), std::system_error (EEXIST when the name is taken; ENOSPC/ENOMEM ...), naming the segment.
  static SharedMemory create(std::string_view name, std::size_t size);
  /// Creates a named segment with a fresh unique name ("weft-<pid>-<n>-<random>").
  static SharedMemory create(std::size_t size);
  /// Maps an existing named segment (its whole size). Throws std::system_error (ENOENT: no such segment).
  static SharedMemory attach(std::string_view name);
  /// Creates an anonymous segment (memfd): no name, nothing in /dev/shm; share it by passing it to a Process.
  static SharedMemory anonymous(std::size_t size);

  SharedMemory() = default;
  SharedMemory(SharedMemory&& other) noexcept;
  SharedMemory& operator=(SharedMemory&& other) noexcept;
  SharedMemory(const SharedMemory&) = delete;
  SharedMemory& operator=(const SharedMemory&) = delete;
  /// Unmaps; the creator of a named segment also unlinks it unless keep() was called. Never throws.
  ~SharedMemory();

  void* data() const noexcept { return data_; }
  std::span<std::byte> bytes() const noexcept { return {static_cast<std::byte*>(data_), size_}; }
  std::size_t size() const noexcept { return size_; }
  /// The name without its leading '/', empty for an anonymous segment.
  const std::string& name() const noexcept { return name_; }
  /// The descriptor of an anonymous segment (kept open; owned by this object), -1 for a named one.
  int fd() const noexcept { return fd_; }
  /// True for the object that created a named segment (and will unlink it).
  bool owner() const noexcept { return owner_; }

  /// Leaves a created named segment in place when this object goes (someone else will unlink it).
  void keep() noexcept { owner_ = false; }
  /// Removes the name now (existing mappings stay valid). Idempotent: a name already gone is not an error.
  /// Throws std::system_error for other failures.
  void unlink();

  /// Adopts an anonymous segment's descriptor (taking ownership) and maps it.
  static SharedMemory adopt_fd(int fd);

 private:
  void* data_ = nullptr;
  std::size_t size_ = 0;
  std::string name_;
  int fd_ = -1;
  bool owner_ = false;
};

template <>
struct serializable<SharedMemory> : std::true_type {};

}  // namespace weft::process

namespace msgpack {
MSGPACK_API_VERSION_NAMESPACE(MSGPACK_DEFAULT_API_NS) {
namespace adaptor {
// A named segment travels by name (the receiver attaches and is not its owner), an anonymous one by descriptor.
template <>
struct pack<weft::process::SharedMemory> {
  template <class Stream>
  packer<Stream>& operator()(packer<Stream>& o, const weft::process::SharedMemory& m) const {
    o.pack_array(3);
    o.pack(std::string_view("weft.SharedMemory"));
    o.pack(m.name());
    if (m.name().empty()) {
      o.pack(weft::process::detail::export_fd(m.fd(), "SharedMemory"));
    } else {
      o.pack_nil();
    }
    return o;
  }
};
template <>
struct as<weft::process::SharedMemory> {
  weft::process::SharedMemory operator()(const msgpack::object& o) const {
    if (o.type != msgpack::type::ARRAY || o.via.array.size != 3 ||
        o.via.array.ptr[0].as<std::string>() != "weft.SharedMemory") {
      throw msgpack::type_error();
    }
    const auto name = o.via.array.ptr[1].as<std::string>();
    if (!name.empty()) return weft::process::SharedMemory::attach(name);
    return weft::process::SharedMemory::adopt_fd(
        weft::process::detail::import_fd(o.via.array.ptr[2].as<std::uint32_t>(), "SharedMemory"));
  }
};
}  // namespace adaptor
}  // MSGPACK_API_VERSION_NAMESPACE(MSGPACK_DEFAULT_API_NS)
}  // namespace msgpack
