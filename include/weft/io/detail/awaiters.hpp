#pragma once
// The awaiters that suspend a task on the loop: an I/O request (optionally with a deadline) and a timer.
// Both follow the stop-state protocol of stop_state.hpp: a task whose scope is already stopping does not start
// the operation; a stop request while it is pending cancels it; resuming unlinks everything the awaiter linked.
#include <cerrno>
#include <coroutine>
#include <cstdint>

#include "weft/core/errors.hpp"
#include "weft/io/detail/op.hpp"
#include "weft/io/detail/stop_state.hpp"
#include "weft/io/loop.hpp"

namespace weft::io::detail {

/// Suspends on one IoOp. await_resume returns op.result (>= 0, or -errno other than ECANCELED); a cancelled
/// request throws weft::Cancelled, one stopped by its deadline throws weft::Timeout.
class OpAwaiter {
 public:
  OpAwaiter(LoopCore& core, std::int64_t deadline_ns) noexcept : core_(&core) { timer_.deadline = deadline_ns; }
  /// Moves a configured awaiter that has not been awaited yet (nothing is linked before await_suspend).
  OpAwaiter(OpAwaiter&& o) noexcept : op(o.op), core_(o.core_) { timer_.deadline = o.timer_.deadline; }
  OpAwaiter(const OpAwaiter&) = delete;
  OpAwaiter& operator=(const OpAwaiter&) = delete;

  IoOp op;

  bool await_ready() const noexcept { return false; }

  template <class P>
  bool await_suspend(std::coroutine_handle<P> h) {
    StopState* stop = stop_state_of(h);
    if (stop != nullptr && stop->stop_requested()) {
      op.result = -ECANCELED;
      return false;
    }
    op.waiter = h;
    if (!core_->start(op)) return false;
    if (stop != nullptr) {
      hook_.fn = &OpAwaiter::on_stop;
      hook_.ctx = this;
      stop_ = stop;
      stop->add(&hook_);
    }
    if (timer_.deadline != 0) {
      timer_.fn = &OpAwaiter::on_deadline;
      timer_.ctx = this;
      core_->add_timer(timer_);
    }
    return true;
  }

  std::int32_t await_resume() {
    if (stop_ != nullptr) stop_->remove(&hook_);
    if (timer_.armed()) core_->remove_timer(timer_);
    if (op.result == -ECANCELED) {
      if (timed_out_) throw Timeout("weft::io: operation timed out");
      throw Cancelled("weft::io: operation cancelled");
    }
    return op.result;
  }

 private:
  static void on_stop(StopHook* h) {
    auto* self = static_cast<OpAwaiter*>(h->ctx);
    self->core_->cancel(self->op);
  }
  static void on_deadline(TimerNode* t) {
    auto* self = static_cast<OpAwaiter*>(t->ctx);
    self->timed_out_ = true;
    self->core_->cancel(self->op);
  }

  LoopCore* core_;
  StopState* stop_ = nullptr;
  StopHook hook_;
  TimerNode timer_;
  bool timed_out_ = false;
};

/// Suspends until a deadline (ns on the loop's clock). Throws weft::Cancelled when its scope stops first.
class TimerAwaiter {
 public:
  TimerAwaiter(LoopCore& core, std::int64_t deadline_ns) noexcept : core_(&core) { timer_.deadline = deadline_ns; }
  /// Moves an awaiter that has not been awaited yet.
  TimerAwaiter(TimerAwaiter&& o) noexcept : core_(o.core_) { timer_.deadline = o.timer_.deadline; }
  TimerAwaiter(const TimerAwaiter&) = delete;
  TimerAwaiter& operator=(const TimerAwaiter&) = delete;

  bool await_ready() const noexcept { return false; }

  template <class P>
  bool await_suspend(std::coroutine_handle<P> h) {
    StopState* stop = stop_state_of(h);
    if (stop != nullptr && stop->stop_requested()) {
      cancelled_ = true;
      return false;
    }
    waiter_ = h;
    timer_.fn = &TimerAwaiter::on_fire;
    timer_.ctx = this;
    core_->add_timer(timer_);
    if (stop != nullptr) {
      hook_.fn = &TimerAwaiter::on_stop;
      hook_.ctx = this;
      stop_ = stop;
      stop->add(&hook_);
    }
    return true;
  }

  void await_resume() {
    if (stop_ != nullptr) stop_->remove(&hook_);
    if (cancelled_) throw Cancelled("weft::io: sleep cancelled");
  }

 private:
  static void on_fire(TimerNode* t) {
    auto* self = static_cast<TimerAwaiter*>(t->ctx);
    // Unlink now: a stop request later in this turn, before the waiter runs, must not schedule it again.
    if (self->stop_ != nullptr) self->stop_->remove(&self->hook_);
    self->core_->schedule(self->waiter_);
  }
  static void on_stop(StopHook* h) {
    auto* self = static_cast<TimerAwaiter*>(h->ctx);
    self->cancelled_ = true;
    self->core_->remove_timer(self->timer_);
    self->core_->schedule(self->waiter_);
  }

  LoopCore* core_;
  std::coroutine_handle<> waiter_;
  StopState* stop_ = nullptr;
  StopHook hook_;
  TimerNode timer_;
  bool cancelled_ = false;
};

}  // namespace weft::io::detail
