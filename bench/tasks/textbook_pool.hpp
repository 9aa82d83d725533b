// bench/tasks/textbook_pool.hpp — the baseline: the thread pool as a textbook writes it.
//
// One std::mutex, one std::condition_variable, an unbounded std::queue<std::function<void()>>, N workers.
// post() pushes under the lock and notifies one worker after unlocking; submit() wraps the callable in a
// shared std::packaged_task (std::function needs a copyable target) and returns its std::future. join()
// lets the workers drain the queue, then stops and joins them. Nothing here is tuned: it is the plain
// design the benchmark measures weft against.
#pragma once

#include <condition_variable>
#include <cstddef>
#include <functional>
#include <future>
#include <memory>
#include <mutex>
#include <queue>
#include <thread>
#include <type_traits>
#include <utility>
#include <vector>

namespace bench {

class TextbookPool {
 public:
  explicit TextbookPool(std::size_t threads) {
    workers_.reserve(threads);
    for (std::size_t i = 0; i < threads; ++i) workers_.emplace_back([this] { work(); });
  }
  TextbookPool(const TextbookPool&) = delete;
  TextbookPool& operator=(const TextbookPool&) = delete;
  ~TextbookPool() { join(); }

  void post(std::function<void()> task) {
    {
      std::lock_guard lock(mutex_);
      queue_.push(std::move(task));
    }
    cv_.notify_one();
  }

  template <class F>
  auto submit(F f) -> std::future<std::invoke_result_t<F>> {
    using R = std::invoke_result_t<F>;
    auto task = std::make_shared<std::packaged_task<R()>>(std::move(f));
    std::future<R> future = task->get_future();
    post([task] { (*task)(); });
    return future;
  }

  /// Runs everything queued, then stops the workers and joins them. Idempotent.
  void join() {
    {
      std::lock_guard lock(mutex_);
      stop_ = true;
    }
    cv_.notify_all();
    for (auto& t : workers_) {
      if (t.joinable()) t.join();
    }
  }

 private:
  void work() {
    for (;;) {
      std::function<void()> task;
      {
        std::unique_lock lock(mutex_);
        cv_.wait(lock, [this] { return stop_ || !queue_.empty(); });
        if (queue_.empty()) return;  // stop_ and drained
        task = std::move(queue_.front());
        queue_.pop();
      }
      task();
    }
  }

  std::mutex mutex_;
  std::condition_variable cv_;
  std::queue<std::function<void()>> queue_;
  bool stop_ = false;
  std::vector<std::thread> workers_;
};

}  // namespace bench
