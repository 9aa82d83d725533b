// priorities_and_aging.cpp — urgent work first, without starving the rest.
//
// Python's concurrent.futures has no priorities; the usual tool is a queue.PriorityQueue feeding your own
// worker threads, which starves low-priority items while high-priority ones keep arriving. weft::ThreadPool
// has five priority levels and *aging*: a task that has waited `aging` counts one level higher, so old
// low-priority work eventually beats fresh high-priority work. (Operating-system schedulers age priorities
// for the same reason.)
//
// To make the order visible, the pool here has one worker, and we keep it busy behind a gate while we
// queue tasks; then we open the gate and watch the order in which the queued tasks run.
#include <chrono>
#include <cstdio>
#include <latch>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "weft/thread/thread_pool.hpp"

namespace {

// Occupies the pool's only worker until open() is called.
class Gate {
 public:
  explicit Gate(weft::ThreadPool& pool) {
    // A std::latch, not a weft future: a pool worker waiting on a weft future would run the queued tasks
    // meanwhile (it "helps"), which is exactly what we do not want here.
    pool.post([this] {
      started_.count_down();
      open_.wait();
    });
    started_.wait();  // the worker is inside the gate task, so everything queued from now on waits
  }
  void open() { open_.count_down(); }

 private:
  std::latch started_{1};
  std::latch open_{1};
};

struct Log {
  std::mutex mutex;
  std::vector<std::string> order;
  void add(std::string name) {
    std::lock_guard lock(mutex);
    order.push_back(std::move(name));
  }
  void print(const char* title) {
    std::lock_guard lock(mutex);
    std::printf("%s:", title);
    for (const auto& name : order) std::printf(" %s", name.c_str());
    std::printf("\n");
    order.clear();
  }
};

}  // namespace

int main() {
  Log log;

  // 1. Priorities: queued in the order low, normal, high — run in the order high, normal, low.
  {
    weft::ThreadPoolOptions options;
    options.threads = 1;
    weft::ThreadPool pool(options);
    Gate gate(pool);
    pool.post({.priority = weft::Priority::low, .name = "low"}, [&log] { log.add("low"); });
    pool.post({.priority = weft::Priority::normal, .name = "normal"}, [&log] { log.add("normal"); });
    pool.post({.priority = weft::Priority::high, .name = "high"}, [&log] { log.add("high"); });
    pool.post({.priority = weft::Priority::high, .name = "high2"}, [&log] { log.add("high2"); });
    gate.open();
    pool.wait_idle();
    log.print("priorities (queued low, normal, high, high2)");  // high, high2, normal, low
  }

  // 2. Aging: with aging = 2 ms, a low task that has already waited 30 ms counts 15 levels higher, so it
  //    runs before high-priority tasks that arrived just now. Without aging it would wait behind them all.
  {
    weft::ThreadPoolOptions options;
    options.threads = 1;
    options.aging = std::chrono::milliseconds(2);
    weft::ThreadPool pool(options);
    Gate gate(pool);
    pool.post({.priority = weft::Priority::lowest, .name = "old-lowest"}, [&log] { log.add("old-lowest"); });
    std::this_thread::sleep_for(std::chrono::milliseconds(30));  // the passing of time is the point here
    for (int i = 1; i <= 3; ++i) {
      pool.post({.priority = weft::Priority::highest, .name = "new-highest"},
                [&log, i] { log.add("new-highest-" + std::to_string(i)); });
    }
    gate.open();
    pool.wait_idle();
    log.print("aging (an old lowest-priority task vs new highest ones)");  // old-lowest runs first
  }
  return 0;
}
