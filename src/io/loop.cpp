// io::Loop: the turn, timers, the cross-thread inbox and backend selection. The protocols are at the top of
// loop_core.hpp; the backends are in uring.cpp and epoll.cpp.
#include <sys/mman.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <string>

#include "loop_core.hpp"
#include "weft/core/errors.hpp"

namespace weft::io {
namespace detail {
namespace {

thread_local LoopImpl* tl_current = nullptr;

Backend backend_from_env() {
  const char* v = std::getenv("WEFT_IO_BACKEND");
  if (v == nullptr || *v == '\0') return Backend::automatic;
  std::string s(v);
  if (s == "uring" || s == "io_uring") return Backend::uring;
  if (s == "epoll") return Backend::epoll;
  throw Error("weft::io: WEFT_IO_BACKEND must be 'uring' or 'epoll', not '" + s + "'");
}

std::uint32_t round_up_pow2(std::uint32_t v) {
  std::uint32_t p = 1;
  while (p < v) p <<= 1;
  return p;
}

}  // namespace

BufferArena::BufferArena(std::uint32_t count, std::uint32_t size) : count_(count), size_(size) {
  if (count == 0 || count > 32768) throw Error("weft::io: LoopOptions::buffer_count must be 1..32768");
  if (size == 0 || size > (1u << 24)) throw Error("weft::io: LoopOptions::buffer_size must be 1..16 MiB");
  void* p = ::mmap(nullptr, std::size_t{count} * size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (p == MAP_FAILED) throw Error(std::string("weft::io: cannot map the read pool: ") + std::strerror(errno));
  base_ = static_cast<char*>(p);
}

BufferArena::~BufferArena() { ::munmap(base_, std::size_t{count_} * size_); }

LoopImpl::LoopImpl(Loop& owner, LoopOptions options)
    : owner_(owner),
      options_(options),
      arena_(round_up_pow2(options.buffer_count), options.buffer_size),
      root_(std::make_unique<TaskGroup>(nullptr, true, this)) {
  if (options_.queue_depth < 8) options_.queue_depth = 8;
  Backend want = options_.backend == Backend::automatic ? backend_from_env() : options_.backend;
  if (want == Backend::uring || want == Backend::automatic) {
    backend_ = make_uring_backend(*this, arena_, options_.queue_depth);
    if (backend_) kind_ = Backend::uring;
    else if (want == Backend::uring) throw Error("weft::io: the io_uring backend is unavailable on this system");
  }
  if (!backend_) {
    backend_ = make_epoll_backend(*this, arena_, options_.queue_depth);
    kind_ = Backend::epoll;
  }
  refresh_now();
}

LoopImpl::~LoopImpl() {
  // Tasks spawned but never run (the loop never ran again): let them start cancelled and finish.
  if (root_->live() > 0 && tl_current == nullptr) {
    tl_current = this;
    root_->cancel();
    while (root_->live() > 0) turn();
    tl_current = nullptr;
  }
}

void LoopImpl::refresh_now() noexcept {
  now_ = std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::steady_clock::now().time_since_epoch())
             .count();
}

bool LoopImpl::start(IoOp& op) {
  ++stats_.ops_started;
  op.state = OpState::pending;
  if (backend_->start(op)) return true;
  op.state = OpState::done;
  ++stats_.ops_inline;
  return false;
}

void LoopImpl::release_buffer(std::uint16_t id) noexcept {
  --stats_.buffers_in_use;
  backend_->release_buffer(id);
}

// ---- timers: a binary min-heap of TimerNode*, each node knowing its index (O(log n) removal) ----

void LoopImpl::heap_swap(std::uint32_t a, std::uint32_t b) noexcept {
  std::swap(heap_[a], heap_[b]);
  heap_[a]->index = a;
  heap_[b]->index = b;
}

void LoopImpl::heap_up(std::uint32_t i) noexcept {
  while (i > 0) {
    std::uint32_t parent = (i - 1) / 2;
    if (heap_[parent]->deadline <= heap_[i]->deadline) break;
    heap_swap(i, parent);
    i = parent;
  }
}

void LoopImpl::heap_down(std::uint32_t i) noexcept {
  const auto n = static_cast<std::uint32_t>(heap_.size());
  for (;;) {
    std::uint32_t l = 2 * i + 1, r = l + 1, m = i;
    if (l < n && heap_[l]->deadline < heap_[m]->deadline) m = l;
    if (r < n && heap_[r]->deadline < heap_[m]->deadline) m = r;
    if (m == i) return;
    heap_swap(i, m);
    i = m;
  }
}

void LoopImpl::add_timer(TimerNode& t) {
  t.index = static_cast<std::uint32_t>(heap_.size());
  heap_.push_back(&t);
  heap_up(t.index);
}

void LoopImpl::remove_timer(TimerNode& t) noexcept {
  if (!t.armed()) return;
  std::uint32_t i = t.index;
  std::uint32_t last = static_cast<std::uint32_t>(heap_.size()) - 1;
  if (i != last) {
    heap_swap(i, last);
    heap_.pop_back();
    heap_down(i);
    heap_up(i);
  } else {
    heap_.pop_back();
  }
  t.index = TimerNode::kNotArmed;
}

void LoopImpl::fire_timers() {
  while (!heap_.empty() && heap_.front()->deadline <= now_) {
    TimerNode* t = heap_.front();
    remove_timer(*t);
    t->fn(t);
  }
}

// ---- cross-thread inbox (protocol b at the top of loop_core.hpp) ----

// The wake-up is written while the inbox lock is held: the loop cannot take the post before the poster is done
// with the loop, so a post that lets the loop finish (the last wake-up a task was waiting for) never touches a
// loop that has meanwhile been destroyed.
void LoopImpl::call_soon_threadsafe(UniqueFunction<void()> fn) {
  std::lock_guard lock(inbox_mutex_);
  if (inbox_.size() >= options_.max_pending_calls)
    throw QueueFull("weft::io::Loop::call_soon_threadsafe: " + std::to_string(options_.max_pending_calls) +
                    " calls already pending (LoopOptions::max_pending_calls)");
  inbox_.push_back(std::move(fn));
  if (!signalled_.exchange(true, std::memory_order_acq_rel)) backend_->wake();
}

void LoopImpl::post_remote(RemoteNode* node) noexcept {
  std::lock_guard lock(inbox_mutex_);
  node->next = remote_head_;
  remote_head_ = node;
  if (!signalled_.exchange(true, std::memory_order_acq_rel)) backend_->wake();
}

void LoopImpl::run_remote() {
  // Protocol b: clear the flag before taking the inbox.
  signalled_.store(false, std::memory_order_seq_cst);
  std::vector<UniqueFunction<void()>> calls;
  RemoteNode* nodes = nullptr;
  {
    std::lock_guard lock(inbox_mutex_);
    calls.swap(inbox_);
    nodes = std::exchange(remote_head_, nullptr);
  }
  RemoteNode* fifo = nullptr;  // reverse the LIFO list to run in posting order
  while (nodes != nullptr) {
    RemoteNode* next = nodes->next;
    nodes->next = fifo;
    fifo = nodes;
    nodes = next;
  }
  while (fifo != nullptr) {
    RemoteNode* next = fifo->next;  // fn may free the node
    fifo->fn(fifo);
    fifo = next;
  }
  for (auto& fn : calls) {
    try {
      fn();
    } catch (...) {
      report_unhandled_exception(std::current_exception(), "weft::io::Loop::call_soon_threadsafe");
    }
  }
}

// ---- the turn (steps 1-4 at the top of loop_core.hpp) ----

void LoopImpl::turn() {
  ++stats_.turns;
  if (signalled_.load(std::memory_order_acquire)) run_remote();  // 1
  if (!calls_.empty()) {
    calls_running_.swap(calls_);
    for (auto& fn : calls_running_) {
      try {
        fn();
      } catch (...) {
        report_unhandled_exception(std::current_exception(), "weft::io::Loop::call_soon");
      }
    }
    calls_running_.clear();
  }
  if (!ready_.empty()) {  // 2
    running_.swap(ready_);
    for (auto h : running_) h.resume();
    running_.clear();
  }
  refresh_now();
  fire_timers();  // 3
  std::int64_t timeout = -1;  // 4
  if (!ready_.empty() || !calls_.empty() || signalled_.load(std::memory_order_acquire) || main_done_) {
    timeout = 0;
  } else if (!heap_.empty()) {
    timeout = heap_.front()->deadline - now_;
    if (timeout < 0) timeout = 0;
  }
  if (timeout != 0) ++stats_.waits;
  backend_->wait(timeout);
  refresh_now();
}

void LoopImpl::run_root(PromiseBase& p, std::coroutine_handle<> h) {
  if (tl_current != nullptr) throw Error("weft::io::Loop::run: this thread is already running an event loop");
  if (running_loop_.exchange(true)) throw Error("weft::io::Loop::run: the loop is already running on another thread");
  if (runner_ == std::thread::id{}) {
    runner_ = std::this_thread::get_id();
  } else if (runner_ != std::this_thread::get_id()) {
    running_loop_ = false;
    throw Error("weft::io::Loop::run: a loop runs on the thread that ran it first");
  }
  try {
    backend_->bind_thread();
  } catch (...) {
    running_loop_ = false;
    throw;
  }
  tl_current = this;
  main_done_ = false;
  p.owner = this;
  p.set_done([](PromiseBase& pr, std::coroutine_handle<>) noexcept -> std::coroutine_handle<> {
    static_cast<LoopImpl*>(pr.owner)->main_done_ = true;
    return std::noop_coroutine();
  });
  schedule(h);
  struct Exit {
    LoopImpl* self;
    ~Exit() {
      tl_current = nullptr;
      self->running_loop_ = false;
    }
  } exit{this};
  refresh_now();
  while (!main_done_) turn();
  // The main task is done: cancel the background tasks and run until they have finished.
  root_->cancel();
  while (root_->live() > 0) turn();
  root_ = std::make_unique<TaskGroup>(nullptr, true, this);
  // Deliver what is already due so nothing queued is silently dropped.
  if (!calls_.empty() || signalled_.load()) turn();
}

LoopCore& current_core() {
  if (tl_current == nullptr) throw Error("weft::io: no event loop is running on this thread");
  return *tl_current;
}

}  // namespace detail

std::string_view to_string(Backend b) noexcept {
  switch (b) {
    case Backend::automatic: return "automatic";
    case Backend::uring: return "uring";
    case Backend::epoll: return "epoll";
  }
  return "?";
}

Loop::Loop(LoopOptions options) : core_(std::make_unique<detail::LoopImpl>(*this, options)) {}
Loop::~Loop() = default;

namespace {
detail::LoopImpl& impl(detail::LoopCore& c) { return static_cast<detail::LoopImpl&>(c); }
}  // namespace

Backend Loop::backend() const noexcept { return impl(*core_).backend_kind(); }
const LoopOptions& Loop::options() const noexcept { return impl(*core_).options(); }
void Loop::spawn(Task<void> task) { impl(*core_).spawn(std::move(task)); }
void Loop::call_soon(UniqueFunction<void()> fn) { impl(*core_).call_soon(std::move(fn)); }
void Loop::call_soon_threadsafe(UniqueFunction<void()> fn) { impl(*core_).call_soon_threadsafe(std::move(fn)); }
Loop::Stats Loop::stats() const noexcept { return impl(*core_).stats(); }
void Loop::run_root(detail::PromiseBase& p, std::coroutine_handle<> h) { impl(*core_).run_root(p, h); }

Loop* Loop::current() noexcept { return detail::tl_current != nullptr ? &detail::tl_current->loop() : nullptr; }

}  // namespace weft::io
