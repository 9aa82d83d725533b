#include "weft/process/errors.hpp"

#include <string.h>  // sigabbrev_np (GNU)

namespace weft::process {

MessageTooLarge::MessageTooLarge(std::size_t size, std::size_t limit)
    : weft::Error("weft: message of " + std::to_string(size) + " bytes exceeds the limit of " +
                  std::to_string(limit) + " bytes"),
      size_(size),
      limit_(limit) {}

namespace {
std::string lost_message(int pid, int signal, int exit_code) {
  std::string m = "weft: worker process " + std::to_string(pid) + " was lost: ";
  if (signal != 0) {
    const char* abbrev = sigabbrev_np(signal);
    m += "killed by signal " + std::to_string(signal);
    if (abbrev != nullptr) m += std::string(" (SIG") + abbrev + ")";
  } else {
    m += "exited with status " + std::to_string(exit_code);
  }
  return m;
}
}  // namespace

WorkerLost::WorkerLost(int pid, int signal, int exit_code)
    : weft::Error(lost_message(pid, signal, exit_code)), pid_(pid), signal_(signal), exit_code_(exit_code) {}

void throw_errno(int errno_value, const std::string& what) {
  throw std::system_error(errno_value, std::generic_category(), "weft: " + what);
}

}  // namespace weft::process
