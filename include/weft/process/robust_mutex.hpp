// weft/process/robust_mutex.hpp — a mutex shared between processes that survives the death of its holder.
//
// Built in place in shared memory (see Value/Array). When the process holding it dies, the next locker gets
// it and is told (lock_checked() returns previous_owner_died; owner_died() is true while it holds it): the
// data it protects may be half-updated, and this locker may repair it. unlock() then marks the mutex
// consistent again, so it keeps working for everyone (POSIX robust mutexes, PTHREAD_MUTEX_ROBUST).
#pragma once

#include <pthread.h>

#include <chrono>

namespace weft::process {

enum class LockResult {
  acquired,             ///< the usual case
  previous_owner_died,  ///< acquired; the previous holder died holding it: repair the data it protects
};

/// Thread- and process-safe. Not copyable or movable (it lives at a fixed place in shared memory).
/// lock()/try_lock()/unlock() make it usable with std::scoped_lock (which does not report a dead owner:
/// check owner_died() while holding it).
class RobustMutex {
 public:
  /// Initialises the mutex in place (the memory must be shared by every process that will use it).
  /// Throws std::system_error when the attributes are not supported.
  RobustMutex();
  ~RobustMutex();
  RobustMutex(const RobustMutex&) = delete;
  RobustMutex& operator=(const RobustMutex&) = delete;

  /// Blocks until held. Throws std::system_error (ENOTRECOVERABLE: a holder died and its successor gave up).
  [[nodiscard]] LockResult lock_checked();
  void lock() { (void)lock_checked(); }
  /// True when held now (and then like lock_checked about a dead owner).
  bool try_lock();
  /// Waits at most `timeout`; false when it did not get the mutex.
  bool try_lock_for(std::chrono::nanoseconds timeout);
  /// Marks the mutex consistent if its previous owner died, then releases it.
  void unlock();
  /// While held: true when this holder got it from a holder that died.
  bool owner_died() const noexcept { return owner_died_; }

 private:
  bool after(int rc, const char* what);
  pthread_mutex_t m_;
  bool owner_died_ = false;  // written only by the holder
};

}  // namespace weft::process
