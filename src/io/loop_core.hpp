#pragma once
// The loop's machinery shared by both backends (private header).
//
// One loop turn (LoopImpl::turn):
//  1. If another thread posted (calls or remote wake-ups), take them all under the inbox lock and run them.
//  2. Run the coroutines that were ready at the start of the turn (ones scheduled meanwhile wait for the next
//     turn, so a task that keeps yielding cannot starve I/O).
//  3. Fire the expired timers.
//  4. Ask the backend for completions: without blocking when something is ready, else blocking until the next
//     timer (or for ever). The backend resumes each completed operation's waiter inline.
//
// Cross-thread wake-up protocol (call_soon_threadsafe, post_remote):
//  a. The poster appends under inbox_mutex_ and, still holding it, does `signalled_.exchange(true)`; only the
//     poster that turns it from false to true writes the backend's eventfd (one system call per batch of
//     posts). Holding the lock keeps the loop from taking the post, finishing and being destroyed while the
//     poster still touches it.
//  b. The loop, in step 1, stores false into signalled_ *before* taking the inbox lock. A post that lands
//     after the loop took the inbox sees false (the store precedes it in signalled_'s modification order,
//     through the mutex) and wakes the loop again; a post that lands before is taken now. No post is missed.
#include <sys/mman.h>
#include <sys/resource.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <memory>
#include <mutex>
#include <thread>
#include <vector>

#include "weft/core/function.hpp"
#include "weft/io/group.hpp"
#include "weft/io/loop.hpp"

namespace weft::io::detail {

class LoopImpl;

/// A kernel interface. All methods but wake() run on the loop thread.
class BackendOps {
 public:
  virtual ~BackendOps() = default;
  virtual bool start(IoOp& op) = 0;
  virtual void cancel(IoOp& op) = 0;
  /// Waits for and dispatches completions; timeout_ns < 0: no limit, 0: do not block.
  virtual void wait(std::int64_t timeout_ns) = 0;
  virtual void wake() noexcept = 0;
  /// Called on the thread that runs the loop, each time run() starts (io_uring binds its ring to it).
  virtual void bind_thread() {}
  virtual void attach_fd(int fd) = 0;
  virtual void detach_fd(int fd) noexcept = 0;
  virtual void release_buffer(std::uint16_t id) noexcept = 0;
  /// True when the kernel picks a pool buffer as data arrives (io_uring's provided buffers); false when a buffer
  /// is taken by the read call itself (epoll), so a reader should first wait for readiness (poll_in) and read
  /// only when it can use the data at once.
  virtual bool kernel_picks_buffers() const noexcept = 0;
  /// Runs op's system call once, without waiting: true when it finished (op.result set), false on EAGAIN.
  /// Readiness backends only.
  virtual bool try_now(IoOp& op) = 0;
};

/// The read pool: buffer_count buffers of buffer_size bytes in one anonymous mapping (pages are touched, and
/// count in RSS, only once a buffer is used).
class BufferArena {
 public:
  BufferArena(std::uint32_t count, std::uint32_t size);
  ~BufferArena();
  BufferArena(const BufferArena&) = delete;
  BufferArena& operator=(const BufferArena&) = delete;
  char* data(std::uint16_t id) const noexcept { return base_ + std::size_t{id} * size_; }
  std::uint32_t count() const noexcept { return count_; }
  std::uint32_t size() const noexcept { return size_; }

 private:
  char* base_ = nullptr;
  std::uint32_t count_;
  std::uint32_t size_;
};

/// The buffer_id of a recv_pooled op whose data is in a one-off heap buffer (op.buf) because the pool was empty.
inline constexpr std::uint16_t kHeapBuffer = 0xFFFF;

/// Capacity to reserve for a backend's per-descriptor tables (indexed by fd): the soft RLIMIT_NOFILE, at most
/// 2^20. Reserved, not touched: a table's memory is used only as far as the highest descriptor attached.
inline std::size_t descriptor_table_capacity() noexcept {
  rlimit lim{};
  std::size_t fds = 1024;
  if (::getrlimit(RLIMIT_NOFILE, &lim) == 0 && lim.rlim_cur != RLIM_INFINITY) fds = lim.rlim_cur;
  return std::min<std::size_t>(fds, std::size_t{1} << 20);
}

std::unique_ptr<BackendOps> make_uring_backend(LoopImpl& loop, BufferArena& arena, unsigned depth);  // null: unavailable
std::unique_ptr<BackendOps> make_epoll_backend(LoopImpl& loop, BufferArena& arena, unsigned depth);

class LoopImpl final : public LoopCore {
 public:
  LoopImpl(Loop& owner, LoopOptions options);
  ~LoopImpl() override;

  // LoopCore
  bool start(IoOp& op) override;
  void cancel(IoOp& op) override { backend_->cancel(op); }
  void schedule(std::coroutine_handle<> h) override { ready_.push_back(h); }
  void add_timer(TimerNode& t) override;
  void remove_timer(TimerNode& t) noexcept override;
  std::int64_t now() noexcept override { return now_; }
  void attach_fd(int fd) override { backend_->attach_fd(fd); }
  void detach_fd(int fd) noexcept override { backend_->detach_fd(fd); }
  char* buffer_data(std::uint16_t id) noexcept override { return arena_.data(id); }
  std::uint32_t buffer_size() const noexcept override { return arena_.size(); }
  void release_buffer(std::uint16_t id) noexcept override;
  Loop& loop() noexcept override { return owner_; }
  void post_remote(RemoteNode* node) noexcept override;

  void call_soon(UniqueFunction<void()> fn) { calls_.push_back(std::move(fn)); }
  void call_soon_threadsafe(UniqueFunction<void()> fn);
  void spawn(Task<void> task) { root_->spawn(std::move(task)); }
  void run_root(PromiseBase& p, std::coroutine_handle<> h);

  Backend backend_kind() const noexcept { return kind_; }
  BackendOps& backend() noexcept { return *backend_; }
  const LoopOptions& options() const noexcept { return options_; }
  Loop::Stats stats() const noexcept { return stats_; }
  Loop::Stats& counters() noexcept { return stats_; }
  void refresh_now() noexcept;
  /// The backend found a pool buffer (or fell back to the heap) for a reader.
  void note_buffer_taken(bool from_pool) noexcept {
    if (from_pool) ++stats_.buffers_in_use;
    else ++stats_.buffer_fallbacks;
  }

 private:
  void turn();
  void run_remote();
  void fire_timers();
  void heap_up(std::uint32_t i) noexcept;
  void heap_down(std::uint32_t i) noexcept;
  void heap_swap(std::uint32_t a, std::uint32_t b) noexcept;

  Loop& owner_;
  LoopOptions options_;
  Backend kind_ = Backend::epoll;
  BufferArena arena_;
  std::unique_ptr<BackendOps> backend_;
  std::unique_ptr<TaskGroup> root_;

  std::vector<std::coroutine_handle<>> ready_;
  std::vector<std::coroutine_handle<>> running_;
  std::vector<UniqueFunction<void()>> calls_;
  std::vector<UniqueFunction<void()>> calls_running_;
  std::vector<TimerNode*> heap_;
  std::int64_t now_ = 0;
  bool main_done_ = false;
  std::atomic<bool> running_loop_{false};
  std::thread::id runner_;  // the thread that ran the loop first; it alone may run it (io_uring's ring is bound)

  std::mutex inbox_mutex_;
  std::vector<UniqueFunction<void()>> inbox_;       // guarded by inbox_mutex_
  RemoteNode* remote_head_ = nullptr;                // guarded by inbox_mutex_ (LIFO; reversed when taken)
  std::atomic<bool> signalled_{false};

  Loop::Stats stats_;
};

}  // namespace weft::io::detail
