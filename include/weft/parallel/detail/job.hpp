// weft/parallel/detail/job.hpp — what a ForkJoinPool queues: an intrusive, type-erased job, and the latch a
// waiter uses to learn that a job (or a group of jobs) has finished.
//
// A Job is a header with a function pointer; the concrete job types embed it first. Heap jobs (submit,
// post, TaskGroup::spawn) delete themselves when they have run; a StackJob (join's second half) lives in the
// joining frame, which cannot return before the job has finished (its latch says when), so join allocates
// nothing.
#pragma once

#include <atomic>
#include <cstdint>
#include <exception>
#include <functional>
#include <optional>
#include <type_traits>
#include <utility>
#include <variant>

#include "weft/core/detail/shared_state.hpp"
#include "weft/core/errors.hpp"

namespace weft::detail {

/// Completion latch: a count of unfinished jobs and, in the same 64-bit word, who sleeps waiting for zero.
///
///   bits  0..31  count of unfinished jobs
///   bit   32     kWorker: a worker of the pool sleeps on it; its index is in bits 40..63
///   bit   33     kExternal: threads outside the pool sleep on the pool's external event count
///
/// The finisher learns who to wake from the value its own decrement returned, so it never touches the latch
/// after the decrement: the waiter may destroy the latch as soon as it sees the count reach zero.
class JobLatch {
 public:
  static constexpr std::uint64_t kCountMask = 0xffffffffu;
  static constexpr std::uint64_t kWorker = std::uint64_t{1} << 32;
  static constexpr std::uint64_t kExternal = std::uint64_t{1} << 33;
  static constexpr int kIndexShift = 40;
  static constexpr std::uint32_t kNoWorker = 0xffffffffu;
  static_assert((kCountMask & (kWorker | kExternal)) == 0 && (kWorker << 8) == (std::uint64_t{1} << kIndexShift));

  explicit JobLatch(std::uint32_t count = 0) noexcept : word_(count) {}
  JobLatch(const JobLatch&) = delete;
  JobLatch& operator=(const JobLatch&) = delete;

  /// Counts `n` more unfinished jobs. Call before the jobs are published (the publication orders it).
  void add(std::uint32_t n = 1) noexcept { word_.fetch_add(n, std::memory_order_relaxed); }

  /// True once the count is zero. acquire: pairs with the finisher's decrement, so the finished jobs'
  /// writes (their results) are visible.
  bool done() const noexcept { return (word_.load(std::memory_order_acquire) & kCountMask) == 0; }

  /// One job finished. Returns who must be woken: the prior word when this decrement reached zero with a
  /// sleeper registered, else 0. The caller must not touch the latch afterwards.
  [[nodiscard]] std::uint64_t count_down() noexcept {
    // acq_rel: releases the job's writes to the waiter; seq_cst orders it against arm()'s registration
    // (the waiter registers, then re-checks the count — Dekker, with both sides seq_cst RMWs).
    const std::uint64_t prev = word_.fetch_sub(1, std::memory_order_seq_cst);
    return (prev & kCountMask) == 1 ? (prev & ~kCountMask) : 0;
  }

  /// Registers worker `index` as the sleeper. False when the count is already zero (do not sleep), or when
  /// another worker is registered (only one worker may wait on a latch at a time; the caller then waits
  /// without registering).
  [[nodiscard]] bool arm_worker(std::uint32_t index) noexcept {
    // acquire (here and on CAS failure): a false return may be taken as "done" by a caller.
    std::uint64_t w = word_.load(std::memory_order_acquire);
    const std::uint64_t mine = kWorker | (std::uint64_t{index} << kIndexShift);
    for (;;) {
      if ((w & kCountMask) == 0) return false;
      if ((w & kWorker) != 0) return (w & ~(kCountMask | kExternal)) == mine;
      if (word_.compare_exchange_weak(w, w | mine, std::memory_order_seq_cst, std::memory_order_acquire)) {
        return true;
      }
    }
  }

  /// Removes this worker's registration (after waking, whatever woke it).
  void disarm_worker() noexcept {
    std::uint64_t w = word_.load(std::memory_order_relaxed);
    while ((w & kWorker) != 0 &&
           !word_.compare_exchange_weak(w, w & ~(kWorker | (std::uint64_t{0xffffff} << kIndexShift)),
                                        std::memory_order_relaxed, std::memory_order_relaxed)) {
    }
  }

  /// Registers a thread outside the pool. False when the count is already zero.
  [[nodiscard]] bool arm_external() noexcept {
    std::uint64_t w = word_.load(std::memory_order_acquire);
    for (;;) {
      if ((w & kCountMask) == 0) return false;
      if ((w & kExternal) != 0) return true;
      if (word_.compare_exchange_weak(w, w | kExternal, std::memory_order_seq_cst, std::memory_order_acquire)) {
        return true;
      }
    }
  }

  static std::uint32_t worker_of(std::uint64_t wake) noexcept {
    return (wake & kWorker) != 0 ? static_cast<std::uint32_t>(wake >> kIndexShift) : kNoWorker;
  }

 private:
  std::atomic<std::uint64_t> word_;
};

/// Run the job, or cancel it (only jobs marked cancellable are ever cancelled: shutdown(cancel_pending)).
enum class JobMode : std::uint8_t { run, cancel };
/// What running a job came to, for the pool's counters.
enum class JobOutcome : std::uint8_t { completed, failed, cancelled };

struct Job {
  using Entry = JobOutcome (*)(Job*, JobMode);
  explicit Job(Entry e) noexcept : entry(e) {}
  Job(const Job&) = delete;
  Job& operator=(const Job&) = delete;

  Entry entry;
  /// Counted down by the pool after entry returns (read before entry runs: a heap job is gone by then). The
  /// latch must outlive the job's run; whoever waits on it guarantees that.
  JobLatch* latch = nullptr;
  const char* name = nullptr;  ///< trace name; heap jobs only
  std::uint64_t stamp = 0;     ///< ticks() at submission when tracing was on, else 0
  bool cancellable = false;    ///< submit/post jobs: shutdown(cancel_pending) may cancel them
  bool traced = false;         ///< heap jobs: recorded as a trace span
};

/// Holds a callable's result, or std::monostate for void; join() and invoke() return through it.
template <class R>
using ResultOf = std::conditional_t<std::is_void_v<R>, std::monostate, R>;

/// What ForkJoinPool::join(a, b) returns: nothing when both return void, else the pair of their results.
template <class A, class B>
using JoinResult =
    std::conditional_t<std::is_void_v<std::invoke_result_t<A&>> && std::is_void_v<std::invoke_result_t<B&>>, void,
                       std::pair<ResultOf<std::invoke_result_t<A&>>, ResultOf<std::invoke_result_t<B&>>>>;

template <class F>
auto call_for_result(F& f) -> ResultOf<std::invoke_result_t<F&>> {
  if constexpr (std::is_void_v<std::invoke_result_t<F&>>) {
    std::invoke(f);
    return {};
  } else {
    return std::invoke(f);
  }
}

/// join()'s second half, queued in the joining worker's deque. Lives in the joining frame.
template <class F>
class StackJob final : public Job {
 public:
  using R = ResultOf<std::invoke_result_t<F&>>;

  explicit StackJob(F& f) noexcept : Job(&StackJob::execute), f_(f) { Job::latch = &latch_; }

  /// Runs the callable on the joining thread itself (it took the job back: nobody stole it).
  void run_inline() {
    try {
      result_.emplace(call_for_result(f_));
    } catch (...) {
      error_ = std::current_exception();
    }
  }

  JobLatch& completion() noexcept { return latch_; }
  std::exception_ptr& error() noexcept { return error_; }
  R take() { return std::move(*result_); }

  /// Run by a thief; the pool counts the latch down afterwards.
  static JobOutcome execute(Job* job, JobMode) {
    auto* self = static_cast<StackJob*>(job);
    self->run_inline();
    return self->error_ ? JobOutcome::failed : JobOutcome::completed;
  }

 private:
  F& f_;
  JobLatch latch_{1};
  std::exception_ptr error_;
  std::optional<R> result_;
};

/// A submitted task whose result goes to a Future. Owns one reference to the shared state.
template <class R, class Fn>
class FutureJob final : public Job {
 public:
  FutureJob(SharedState<R>* state, Fn&& f) : Job(&FutureJob::execute), state_(state), fn_(std::move(f)) {
    cancellable = true;
    traced = true;
  }

  static JobOutcome execute(Job* job, JobMode mode) {
    auto* self = static_cast<FutureJob*>(job);
    SharedState<R>* s = self->state_;
    JobOutcome outcome = JobOutcome::cancelled;
    if (mode == JobMode::run && s->try_start()) {
      s->set_from(self->fn_);
      outcome = s->has_exception() ? JobOutcome::failed : JobOutcome::completed;
    } else if (mode == JobMode::cancel) {
      s->cancel();
    }
    delete self;  // destroys the callable (and its captures) before the reference goes
    s->release();
    return outcome;
  }

  /// Gives up the job before it was queued (the pool refused it): the future gets `error`.
  static void discard(FutureJob* self, std::exception_ptr error) noexcept {
    SharedState<R>* s = self->state_;
    delete self;
    (void)s->set_exception(std::move(error));
    s->release();
  }

 private:
  SharedState<R>* state_;
  Fn fn_;
};

/// A detached task: its exception goes to the pool's error handler.
template <class Fn>
class PostJob final : public Job {
 public:
  PostJob(Fn&& f, const std::function<void(std::exception_ptr)>* on_error)
      : Job(&PostJob::execute), fn_(std::move(f)), on_error_(on_error) {
    cancellable = true;
    traced = true;
  }

  static JobOutcome execute(Job* job, JobMode mode) {
    auto* self = static_cast<PostJob*>(job);
    JobOutcome outcome = JobOutcome::cancelled;
    if (mode == JobMode::run) {
      try {
        self->fn_();
        outcome = JobOutcome::completed;
      } catch (...) {
        (*self->on_error_)(std::current_exception());
        outcome = JobOutcome::failed;
      }
    }
    delete self;
    return outcome;
  }

 private:
  Fn fn_;
  const std::function<void(std::exception_ptr)>* on_error_;
};

}  // namespace weft::detail
