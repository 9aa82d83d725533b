#include "weft/thread/thread.hpp"

#include <pthread.h>

#include <system_error>

#include "weft/core/errors.hpp"

namespace weft {

namespace {
thread_local std::string current_name;
const std::string empty_name;
}  // namespace

namespace this_thread {
const std::string& name() noexcept { return current_name; }

void set_name(std::string name) {
  const std::string os_name = name.substr(0, 15);  // the kernel keeps 15 bytes and a NUL
  pthread_setname_np(pthread_self(), os_name.c_str());
  current_name = std::move(name);
}
}  // namespace this_thread

void Thread::start(UniqueFunction<void(std::stop_token)> body) {
  thread_ = std::jthread([ctx = ctx_, body = std::move(body)](std::stop_token st) mutable {
    this_thread::set_name(ctx->name);
    try {
      body(std::move(st));
    } catch (...) {
      ctx->error = std::current_exception();  // published to the joiner by the thread's termination
    }
  });
}

const std::string& Thread::name() const noexcept { return ctx_ ? ctx_->name : empty_name; }

void Thread::join() {
  if (!thread_.joinable()) throw std::system_error(std::make_error_code(std::errc::invalid_argument),
                                                   "weft::Thread::join: not joinable");
  // Checked here rather than left to pthread_join, which POSIX only says "may" detect a self-join (glibc
  // does, but ThreadSanitizer's interceptor forgets the thread on the failed call, and the real join later
  // aborts it). Reading the id is safe even while the owner is inside join(): join() changes it only after
  // this thread has ended.
  if (thread_.get_id() == std::this_thread::get_id()) {
    throw std::system_error(std::make_error_code(std::errc::resource_deadlock_would_occur),
                            "weft::Thread::join: called from the thread itself");
  }
  thread_.join();
  if (ctx_->error) std::rethrow_exception(std::exchange(ctx_->error, nullptr));
}

void Thread::finish() noexcept {
  if (thread_.joinable()) {
    thread_.request_stop();
    if (thread_.get_id() == std::this_thread::get_id()) {
      // Destroying a Thread from its own function would deadlock; std::jthread would throw from the
      // destructor. Report it and terminate explicitly rather than detach silently.
      report_unhandled_exception(std::make_exception_ptr(std::logic_error("weft::Thread destroyed by itself")),
                                 "weft::Thread '" + ctx_->name + "'");
      std::terminate();
    }
    thread_.join();
  }
  if (ctx_ && ctx_->error) {
    report_unhandled_exception(std::exchange(ctx_->error, nullptr), "weft::Thread '" + ctx_->name + "'");
  }
}

Thread& Thread::operator=(Thread&& other) noexcept {
  if (this != &other) {
    finish();
    thread_ = std::move(other.thread_);
    ctx_ = std::move(other.ctx_);
  }
  return *this;
}

Thread::~Thread() { finish(); }

}  // namespace weft
