// bench/tasks/textbook.cpp — the baseline pool of textbook_pool.hpp: post() then join(), and
// std::packaged_task + std::future.
#include <future>
#include <string>
#include <vector>

#include "common.hpp"
#include "textbook_pool.hpp"

namespace bench {
namespace {

Sample run_detached(const Config& cfg) {
  TextbookPool pool(cfg.threads);
  Meter meter;
  for (std::size_t i = 0; i < cfg.tasks; ++i) pool.post([] { tiny_task(); });
  pool.join();
  return meter.stop();
}

Sample run_futures(const Config& cfg) {
  TextbookPool pool(cfg.threads);
  std::vector<std::future<int>> futures(cfg.tasks);
  return time_futures(cfg, pool, futures);
}

}  // namespace

void add_textbook_contenders(const Config& cfg, std::vector<Contender>& out) {
  const std::string pool = "mutex + condition_variable + std::queue<std::function<void()>>, " +
                           std::to_string(cfg.threads) + " workers";
  out.push_back({"textbook pool", pool + "; post() then join()", Workload::detached, false, run_detached});
  out.push_back({"textbook pool + packaged_task", pool + "; shared std::packaged_task + std::future, get() each",
                 Workload::futures, false, run_futures});
}

}  // namespace bench
