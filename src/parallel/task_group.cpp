// TaskGroup: waiting, failure and destruction (spawning is inline in the header).
#include "weft/parallel/task_group.hpp"

namespace weft {

TaskGroup::~TaskGroup() {
  if (!latch_.done()) {
    cancel();  // nobody will collect the results: skip what has not started
    pool_.wait_latch(latch_);
  }
  std::exception_ptr e;
  {
    std::scoped_lock lock(error_mutex_);
    e = std::move(error_);
  }
  if (e) report_unhandled_exception(e, "a TaskGroup destroyed without wait()");
}

void TaskGroup::wait() {
  pool_.wait_latch(latch_);
  std::exception_ptr e;
  {
    std::scoped_lock lock(error_mutex_);
    e = std::exchange(error_, nullptr);
  }
  cancelled_.store(false, std::memory_order_release);
  if (e) std::rethrow_exception(e);
}

void TaskGroup::fail(std::exception_ptr e) noexcept {
  {
    std::scoped_lock lock(error_mutex_);
    if (!error_) error_ = std::move(e);
  }
  cancel();
}

}  // namespace weft
