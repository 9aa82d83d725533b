// bench/tasks/tbb.cpp — oneTBB: task_group::run() + wait() inside a task_arena of `threads` slots.
//
// The arena has `threads` slots with one reserved for the calling thread (oneTBB's default), so the thread
// that runs the tasks in also works in task_group::wait(): `threads` threads in all, as with the pools.
#include <future>
#include <string>
#include <vector>

#include <oneapi/tbb/task_arena.h>
#include <oneapi/tbb/task_group.h>
#include <oneapi/tbb/version.h>

#include "common.hpp"

namespace bench {
namespace {

// task_group runs its functors as const; the promise is the task's own, so setting it through a mutable
// member is sound.
struct PromiseTask {
  std::size_t i;
  mutable std::promise<int> p;
  void operator()() const {
    tiny_task();
    p.set_value(task_result(i));
  }
};

Sample run_detached(const Config& cfg) {
  tbb::task_arena arena(static_cast<int>(cfg.threads));
  arena.initialize();
  Sample s;
  arena.execute([&] {
    tbb::task_group group;
    Meter meter;
    for (std::size_t i = 0; i < cfg.tasks; ++i) group.run([] { tiny_task(); });
    group.wait();
    s = meter.stop();
  });
  return s;
}

Sample run_futures(const Config& cfg) {
  tbb::task_arena arena(static_cast<int>(cfg.threads));
  arena.initialize();
  std::vector<std::future<int>> futures(cfg.tasks);
  Sample s;
  arena.execute([&] {
    tbb::task_group group;
    Meter meter;
    for (std::size_t i = 0; i < cfg.tasks; ++i) {
      std::promise<int> p;
      futures[i] = p.get_future();
      group.run(PromiseTask{i, std::move(p)});
    }
    group.wait();  // the calling thread helps here; get() alone would leave one slot idle
    std::int64_t sum = 0;
    for (auto& f : futures) sum += f.get();
    s = meter.stop();
    s.result_sum = sum;
  });
  return s;
}

}  // namespace

void add_tbb_contenders(const Config& cfg, std::vector<Contender>& out) {
  const std::string arena = "tbb::task_arena(" + std::to_string(cfg.threads) + ") (the caller + " +
                            std::to_string(cfg.threads - 1) + " worker), task_group";
  out.push_back({"oneTBB", arena + "; run() then wait()", Workload::detached, false, run_detached});
  out.push_back({"oneTBB + std::promise", arena + "; run() with a std::promise each, wait(), then get() each",
                 Workload::futures, false, run_futures});
}

std::string tbb_version() { return std::string("oneTBB ") + TBB_VERSION_STRING; }

}  // namespace bench
