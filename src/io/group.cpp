// io::TaskGroup: children bookkeeping and failure propagation (protocol at the top of group.hpp).
#include "weft/io/group.hpp"

#include <cassert>

namespace weft::io {

namespace detail {
bool is_cancelled(const std::exception_ptr& e) noexcept {
  try {
    std::rethrow_exception(e);
  } catch (const Cancelled&) {
    return true;
  } catch (...) {
    return false;
  }
}
}  // namespace detail

TaskGroup::TaskGroup(detail::StopState* parent, bool report_only, detail::LoopCore* core)
    : core_(core != nullptr ? core : &detail::current_core()), parent_(parent), report_only_(report_only) {
  if (parent_ == nullptr) return;
  if (parent_->stop_requested()) {  // step 1: born into a scope that is already stopping
    stop_.request_stop();
    parent_ = nullptr;
    return;
  }
  parent_hook_.fn = [](detail::StopHook* h) { static_cast<TaskGroup*>(h->ctx)->stop_.request_stop(); };
  parent_hook_.ctx = this;
  parent_->add(&parent_hook_);
}

TaskGroup::~TaskGroup() {
  assert(live_ == 0 && "a task group was destroyed with children still running");
  if (parent_ != nullptr) parent_->remove(&parent_hook_);
}

void TaskGroup::adopt_erased(detail::PromiseBase& p, std::coroutine_handle<> h, bool eager) {
  p.set_stop_state(&stop_);
  p.set_done(&TaskGroup::child_done);
  p.owner = this;
  p.list_prev = nullptr;
  p.list_next = children_;
  if (children_ != nullptr) children_->list_prev = &p;
  children_ = &p;
  ++live_;
  if (eager) h.resume();
  else core_->schedule(h);  // step 2: starts in the next turn
}

std::coroutine_handle<> TaskGroup::child_done(detail::PromiseBase& p, std::coroutine_handle<> h) noexcept {
  auto* g = static_cast<TaskGroup*>(p.owner);
  std::exception_ptr error = std::move(p.error());
  if (p.list_prev != nullptr) p.list_prev->list_next = p.list_next;
  else g->children_ = p.list_next;
  if (p.list_next != nullptr) p.list_next->list_prev = p.list_prev;
  --g->live_;
  h.destroy();  // the child is suspended at its final point: destroying it here is allowed
  if (error && !detail::is_cancelled(error)) {  // step 3
    if (g->report_only_) {
      report_unhandled_exception(error, "weft::io::Loop::spawn");
    } else {
      if (!g->failure_) g->failure_ = error;
      g->stop_.request_stop();
    }
  }
  if (g->live_ == 0 && g->joiner_) return std::exchange(g->joiner_, {});
  return std::noop_coroutine();
}

}  // namespace weft::io
