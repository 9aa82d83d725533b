#pragma once
// Bridges between the event loop and weft's executors: `co_await` on any weft::Future (a ThreadPool's, a
// ForkJoinPool's, a Promise's...) suspends only the awaiting task, never the loop; run_in_executor hands a
// blocking or CPU-bound call to a pool and awaits it (asyncio's loop.run_in_executor).
#include <atomic>
#include <coroutine>
#include <utility>

#include "weft/core/errors.hpp"
#include "weft/core/future.hpp"
#include "weft/io/detail/stop_state.hpp"
#include "weft/io/loop.hpp"

namespace weft::io {
namespace detail {

/// Shared by the awaiter (loop thread) and the future's done-callback (any thread).
///  state: 0 waiting → 1 the callback claimed the wake-up and posts the node; or 0 → 2 the awaiter gave up
///  (cancelled while the work was already running) and resumed; the callback then only drops its reference.
///  The loop cannot end while a task is suspended here, so posting after a successful 0 → 1 is safe.
struct FutureWake : RemoteNode {
  std::atomic<int> state{0};
  std::atomic<int> refs{2};
  std::coroutine_handle<> waiter;
  void release() noexcept {
    if (refs.fetch_sub(1, std::memory_order_acq_rel) == 1) delete this;
  }
};

template <class T>
class FutureAwaiter {
 public:
  explicit FutureAwaiter(Future<T> f) : future_(std::move(f)) {
    if (!future_.valid()) throw FutureError("weft::io: co_await on an invalid future");
  }
  /// Moves an awaiter that has not been awaited yet.
  FutureAwaiter(FutureAwaiter&& o) noexcept : future_(std::move(o.future_)) {}
  FutureAwaiter(const FutureAwaiter&) = delete;
  FutureAwaiter& operator=(const FutureAwaiter&) = delete;
  ~FutureAwaiter() {
    if (wake_ != nullptr) wake_->release();
  }

  bool await_ready() const { return future_.ready(); }

  template <class P>
  bool await_suspend(std::coroutine_handle<P> h) {
    StopState* stop = stop_state_of(h);
    LoopCore& core = current_core();
    wake_ = new FutureWake;
    wake_->waiter = h;
    wake_->fn = [](RemoteNode* n) {
      auto* w = static_cast<FutureWake*>(n);
      std::coroutine_handle<> waiter = w->waiter;
      w->release();  // the callback's reference; the awaiter still holds its own
      waiter.resume();
    };
    core_ = &core;
    if (stop != nullptr) {
      if (stop->stop_requested()) {
        future_.cancel();
        abandoned_ = !future_.ready();
        delete std::exchange(wake_, nullptr);
        return false;
      }
      hook_.link(stop, &FutureAwaiter::on_stop, this);
    }
    FutureWake* w = wake_;
    future_.on_done([w, c = &core] {
      int expected = 0;
      if (w->state.compare_exchange_strong(expected, 1, std::memory_order_acq_rel)) c->post_remote(w);
      else w->release();
    });
    return true;
  }

  T await_resume() {
    hook_.unlink();
    if (abandoned_) throw Cancelled("weft::io: wait for a future cancelled");
    return future_.get();  // ready: does not block
  }

 private:
  // Loop thread. Cancel the work if it has not started (the callback then resumes us with Cancelled from the
  // future); otherwise stop waiting, unless the callback already claimed the wake-up.
  static void on_stop(StopHook* h) {
    auto* self = static_cast<FutureAwaiter*>(h->ctx);
    if (self->future_.cancel()) return;
    int expected = 0;
    if (self->wake_->state.compare_exchange_strong(expected, 2, std::memory_order_acq_rel)) {
      self->abandoned_ = true;
      self->core_->schedule(self->wake_->waiter);
    }
  }

  ScopedStopHook hook_;
  Future<T> future_;
  FutureWake* wake_ = nullptr;
  LoopCore* core_ = nullptr;
  bool abandoned_ = false;
};

}  // namespace detail
}  // namespace weft::io

namespace weft {

/// `co_await future` inside an io::Task: suspends the task (not the loop) until the future is ready, then
/// returns its value or rethrows its exception. If the task is cancelled meanwhile, the future's work is
/// cancelled when it has not started; otherwise the task stops waiting (weft::Cancelled) and the work runs on.
/// Consumes the future. Must be awaited on a running loop's thread.
template <class T>
io::detail::FutureAwaiter<T> operator co_await(Future<T>&& f) {
  return io::detail::FutureAwaiter<T>(std::move(f));
}

}  // namespace weft

namespace weft::io {

/// Submits `f(args...)` to `executor` (a ThreadPool, ForkJoinPool, ... — anything with submit) and returns the
/// future to co_await: the loop keeps running while the call runs elsewhere. Throws what executor.submit throws
/// (e.g. weft::QueueFull from a full bounded pool).
template <class Executor, class F, class... Args>
auto run_in_executor(Executor& executor, F&& f, Args&&... args) {
  return executor.submit(std::forward<F>(f), std::forward<Args>(args)...);
}

}  // namespace weft::io
