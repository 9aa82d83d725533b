#pragma once
// Loop-confined cancellation state shared by the tasks of one scope.
//
// A StopState belongs to one event loop and is touched only on that loop's thread, so it needs no atomics: a
// request is a plain flag plus an intrusive list of hooks. Every pending operation (an I/O request, a timer, a
// wait on a queue or a future) links one StopHook while it is suspended and unlinks it when it resumes, so a
// request reaches exactly the operations pending at that moment and costs nothing when no one cancels.
//
// Protocol:
//  1. request_stop() sets the flag first (once set, never unset), then pops hooks one at a time and calls each.
//     A hook is unlinked before its function runs, so a hook function may link or unlink other hooks.
//  2. A hook function must not resume a coroutine inline: it asks the loop to finish the operation (cancel the
//     I/O request, or queue the waiter with a "cancelled" result). The waiter then throws weft::Cancelled.
//  3. An operation that starts while the flag is set completes at once with "cancelled" and links nothing.
//  4. Scopes nest: a child scope links a hook into its parent's state that requests stop on the child.
#include <cassert>

namespace weft::io::detail {

/// One registration on a StopState. Intrusive: lives inside the pending operation.
struct StopHook {
  void (*fn)(StopHook*) = nullptr;
  void* ctx = nullptr;  // for fn: the object that owns the hook
  StopHook* prev = nullptr;
  StopHook* next = nullptr;
  bool linked = false;
};

class StopState {
 public:
  StopState() = default;
  StopState(const StopState&) = delete;
  StopState& operator=(const StopState&) = delete;
  ~StopState() { assert(head_ == nullptr && "a pending operation outlived its scope"); }

  bool stop_requested() const noexcept { return stopped_; }

  /// Step 1. Idempotent.
  void request_stop() {
    if (stopped_) return;
    stopped_ = true;
    while (head_ != nullptr) {
      StopHook* h = head_;
      remove(h);
      h->fn(h);
    }
  }

  void add(StopHook* h) noexcept {
    assert(!h->linked);
    h->prev = nullptr;
    h->next = head_;
    if (head_ != nullptr) head_->prev = h;
    head_ = h;
    h->linked = true;
  }

  void remove(StopHook* h) noexcept {
    if (!h->linked) return;
    if (h->prev != nullptr) h->prev->next = h->next;
    else head_ = h->next;
    if (h->next != nullptr) h->next->prev = h->prev;
    h->prev = h->next = nullptr;
    h->linked = false;
  }

 private:
  StopHook* head_ = nullptr;
  bool stopped_ = false;
};

/// A hook that unlinks itself from its state when destroyed (for awaiters that may be destroyed suspended).
struct ScopedStopHook : StopHook {
  StopState* state = nullptr;
  void link(StopState* s, void (*f)(StopHook*), void* c) noexcept {
    state = s;
    fn = f;
    ctx = c;
    s->add(this);
  }
  void unlink() noexcept {
    if (state != nullptr) state->remove(this);
    state = nullptr;
  }
  ~ScopedStopHook() { unlink(); }
};

}  // namespace weft::io::detail
