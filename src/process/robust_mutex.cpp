#include "weft/process/robust_mutex.hpp"

#include <cerrno>
#include <ctime>

#include "weft/process/errors.hpp"

namespace weft::process {

RobustMutex::RobustMutex() {
  pthread_mutexattr_t a;
  pthread_mutexattr_init(&a);
  int rc = pthread_mutexattr_setpshared(&a, PTHREAD_PROCESS_SHARED);
  if (rc == 0) rc = pthread_mutexattr_setrobust(&a, PTHREAD_MUTEX_ROBUST);
  if (rc == 0) rc = pthread_mutex_init(&m_, &a);
  pthread_mutexattr_destroy(&a);
  if (rc != 0) throw_errno(rc, "initialising a process-shared robust mutex");
}

RobustMutex::~RobustMutex() { pthread_mutex_destroy(&m_); }

// Turns a lock call's result into held-or-not; EOWNERDEAD means held, from a dead owner.
bool RobustMutex::after(int rc, const char* what) {
  if (rc == 0) {
    owner_died_ = false;
    return true;
  }
  if (rc == EOWNERDEAD) {
    owner_died_ = true;
    return true;
  }
  if (rc == EBUSY || rc == ETIMEDOUT) return false;
  throw_errno(rc, what);
}

LockResult RobustMutex::lock_checked() {
  (void)after(pthread_mutex_lock(&m_), "locking a robust mutex");
  return owner_died_ ? LockResult::previous_owner_died : LockResult::acquired;
}

bool RobustMutex::try_lock() { return after(pthread_mutex_trylock(&m_), "try-locking a robust mutex"); }

bool RobustMutex::try_lock_for(std::chrono::nanoseconds timeout) {
  // pthread_mutex_timedlock takes an absolute CLOCK_REALTIME time.
  timespec now{};
  clock_gettime(CLOCK_REALTIME, &now);
  const long long ns = now.tv_nsec + (timeout.count() > 0 ? timeout.count() : 0);
  timespec at{now.tv_sec + static_cast<time_t>(ns / 1'000'000'000), static_cast<long>(ns % 1'000'000'000)};
  return after(pthread_mutex_timedlock(&m_, &at), "locking a robust mutex with a timeout");
}

void RobustMutex::unlock() {
  if (owner_died_) {
    owner_died_ = false;
    pthread_mutex_consistent(&m_);
  }
  pthread_mutex_unlock(&m_);
}

}  // namespace weft::process
