// weft/parallel/task_group.hpp — spawn any number of tasks on a ForkJoinPool, then wait for all of them.
//
//   weft::TaskGroup group(pool);
//   for (auto& part : parts) group.spawn([&part] { process(part); });
//   group.wait();   // helps run the tasks; rethrows the first exception
//
// What a user relies on:
// - wait() returns when every spawned task has finished or was cancelled. On a worker of the pool it runs
//   tasks meanwhile (the group's own first), so a task may spawn a group and wait on it at any depth.
// - The first exception a task throws cancels the group: tasks that have not started are skipped, the ones
//   running finish, and then wait() rethrows that exception. Later exceptions are dropped (the first one
//   says what went wrong; the rest are usually consequences). cancel() does the same without an exception.
// - After wait() returns (or throws) the group is empty and not cancelled, and may be used again.
//
// Thread safety: spawn() and cancel() may be called from any thread, including from the group's own tasks;
// wait() from one thread at a time.
//
// Hazards:
// - Destroying a group with tasks still unfinished cancels those not started and waits for the running ones;
//   an exception nobody collected with wait() then goes to the unhandled-exception handler.
// - The pool must outlive the group.
#pragma once

#include <atomic>
#include <exception>
#include <memory>
#include <mutex>
#include <type_traits>
#include <utility>

#include "weft/parallel/fork_join_pool.hpp"

namespace weft {

class TaskGroup {
 public:
  /// A group whose tasks run on `pool`.
  explicit TaskGroup(ForkJoinPool& pool) noexcept : pool_(pool) {}
  /// A group on current_or_default_pool().
  TaskGroup() : pool_(current_or_default_pool()) {}
  TaskGroup(const TaskGroup&) = delete;
  TaskGroup& operator=(const TaskGroup&) = delete;

  /// Cancels the tasks not started, waits for the running ones, reports an uncollected exception.
  ~TaskGroup();

  /// Queues f() (decay-copied). From a worker of the pool it goes to that worker's deque. After cancel() or
  /// a failure the task is still queued but will be skipped. Throws BrokenExecutor when called from outside
  /// a pool that has been shut down.
  template <class F>
    requires std::is_invocable_v<std::decay_t<F>&>
  void spawn(F&& f) {
    spawn(JobOptions{}, std::forward<F>(f));
  }

  /// spawn() with a trace name.
  template <class F>
    requires std::is_invocable_v<std::decay_t<F>&>
  void spawn(JobOptions options, F&& f) {
    auto* job = new GroupJob<std::decay_t<F>>(*this, std::forward<F>(f));
    job->name = options.name;
    latch_.add();
    try {
      pool_.schedule(job, /*task=*/false);
    } catch (...) {
      delete job;
      (void)latch_.count_down();  // nobody waits on a job that was never queued
      throw;
    }
  }

  /// Waits until every spawned task has finished (helping on a worker of the pool), then rethrows the first
  /// exception a task threw, if any. Resets the group for reuse.
  void wait();

  /// Tasks spawned and not yet started will be skipped; running ones finish. wait() then returns normally
  /// unless a task threw.
  void cancel() noexcept { cancelled_.store(true, std::memory_order_release); }

  /// True after cancel() or a task's failure, until wait() returns.
  bool cancelled() const noexcept { return cancelled_.load(std::memory_order_acquire); }

  ForkJoinPool& pool() const noexcept { return pool_; }

 private:
  template <class Fn>
  class GroupJob final : public detail::Job {
   public:
    template <class G>
    GroupJob(TaskGroup& group, G&& f) : Job(&GroupJob::execute), group_(group), fn_(std::forward<G>(f)) {
      latch = &group.latch_;
      traced = true;
    }

    static detail::JobOutcome execute(Job* job, detail::JobMode) {
      auto* self = static_cast<GroupJob*>(job);
      TaskGroup& g = self->group_;
      detail::JobOutcome outcome = detail::JobOutcome::cancelled;
      if (!g.cancelled()) {
        try {
          self->fn_();
          outcome = detail::JobOutcome::completed;
        } catch (...) {
          g.fail(std::current_exception());
          outcome = detail::JobOutcome::failed;
        }
      }
      delete self;  // before the pool counts the latch down: the group may be gone right after
      return outcome;
    }

   private:
    TaskGroup& group_;
    Fn fn_;
  };

  void fail(std::exception_ptr e) noexcept;

  ForkJoinPool& pool_;
  detail::JobLatch latch_{0};
  std::atomic<bool> cancelled_{false};
  std::mutex error_mutex_;
  std::exception_ptr error_;  // the first failure; guarded by error_mutex_
};

}  // namespace weft
