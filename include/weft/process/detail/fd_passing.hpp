// weft/process/detail/fd_passing.hpp — descriptors that travel with a value to another process.
//
// Some handles (a Pipe's Connection, an anonymous Queue or SharedMemory) are open descriptors, not names.
// When such a handle is packed while an FdExport scope is active on the thread, its descriptor is appended
// to the scope's list and the encoding holds only its index; the list then travels beside the bytes as
// SCM_RIGHTS ancillary data (a Process's arguments through the fork server). On the other side an FdImport
// scope over the received descriptors lets the handle's unpacking find its descriptor by index.
// Packing a descriptor handle with no FdExport scope active is a SerializationError: a descriptor number
// means nothing in another process.
#pragma once

#include <cstdint>
#include <vector>

namespace weft::process::detail {

/// While alive, handles packed on this thread append their descriptors to `out` (not owned: the caller keeps
/// them open until they have been sent). Scopes nest; the innermost wins.
class FdExport {
 public:
  explicit FdExport(std::vector<int>& out) noexcept;
  ~FdExport();
  FdExport(const FdExport&) = delete;
  FdExport& operator=(const FdExport&) = delete;

 private:
  std::vector<int>* prev_;
};

/// While alive, handles unpacked on this thread take their descriptors from `in` by index. A handle that
/// takes a descriptor sets its entry to -1 (it now owns it); the owner of `in` closes what is left.
class FdImport {
 public:
  explicit FdImport(std::vector<int>& in) noexcept;
  ~FdImport();
  FdImport(const FdImport&) = delete;
  FdImport& operator=(const FdImport&) = delete;

 private:
  std::vector<int>* prev_;
};

/// Packing side: records `fd` in the active FdExport scope and returns its index.
/// Throws SerializationError ("... can only be passed as a Process argument") when no scope is active.
std::uint32_t export_fd(int fd, const char* what);

/// Unpacking side: takes ownership of descriptor `index` of the active FdImport scope.
/// Throws SerializationError when no scope is active, the index is out of range or already taken.
int import_fd(std::uint32_t index, const char* what);

}  // namespace weft::process::detail
