// The process tests' main: the fork server starts before GoogleTest (or any test) creates a thread, as the
// documentation of weft/process/process.hpp asks of programs.
#include <gtest/gtest.h>

#include "weft/process/process.hpp"

// Tests crash children on purpose (SIGSEGV, abort) and check the signal that ended them: the sanitizers must
// let those signals through instead of reporting them and exiting with a status of their own.
extern "C" const char* __asan_default_options() { return "handle_segv=0:handle_abort=0:handle_sigbus=0"; }
extern "C" const char* __tsan_default_options() { return "handle_segv=0:handle_abort=0:handle_sigbus=0"; }

int main(int argc, char** argv) {
  weft::process::start_fork_server();
  ::testing::InitGoogleTest(&argc, argv);
  return RUN_ALL_TESTS();
}
