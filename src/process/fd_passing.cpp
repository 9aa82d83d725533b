#include "weft/process/detail/fd_passing.hpp"

#include <string>

#include "weft/process/errors.hpp"

namespace weft::process::detail {

namespace {
thread_local std::vector<int>* g_export = nullptr;
thread_local std::vector<int>* g_import = nullptr;
}  // namespace

FdExport::FdExport(std::vector<int>& out) noexcept : prev_(g_export) { g_export = &out; }
FdExport::~FdExport() { g_export = prev_; }
FdImport::FdImport(std::vector<int>& in) noexcept : prev_(g_import) { g_import = &in; }
FdImport::~FdImport() { g_import = prev_; }

std::uint32_t export_fd(int fd, const char* what) {
  if (g_export == nullptr) {
    throw SerializationError(std::string("weft: a ") + what +
                             " is an open descriptor: it can be passed as an argument of a Process or of a ProcessPool initializer, "
                             "not through a queue, a pipe or a pool task");
  }
  g_export->push_back(fd);
  return static_cast<std::uint32_t>(g_export->size() - 1);
}

int import_fd(std::uint32_t index, const char* what) {
  if (g_import == nullptr) {
    throw SerializationError(std::string("weft: a ") + what +
                             " arrived outside a Process's arguments: its descriptor did not travel with it");
  }
  if (index >= g_import->size() || (*g_import)[index] < 0) {
    throw SerializationError(std::string("weft: a ") + what + " refers to descriptor #" + std::to_string(index) +
                             ", which did not arrive (or was taken already)");
  }
  int fd = (*g_import)[index];
  (*g_import)[index] = -1;
  return fd;
}

}  // namespace weft::process::detail
