// bench/tasks/asio.cpp — standalone Asio: asio::post() to an asio::thread_pool, then join().
//
// join() without stop() returns once the pool has run out of work, which is how asio waits for a batch.
#include <future>
#include <string>
#include <vector>

#include <asio/post.hpp>
#include <asio/thread_pool.hpp>
#include <asio/version.hpp>

#include "common.hpp"

namespace bench {
namespace {

Sample run_detached(const Config& cfg) {
  asio::thread_pool pool(cfg.threads);
  Meter meter;
  for (std::size_t i = 0; i < cfg.tasks; ++i) asio::post(pool, [] { tiny_task(); });
  pool.join();
  return meter.stop();
}

Sample run_futures(const Config& cfg) {
  asio::thread_pool pool(cfg.threads);
  std::vector<std::future<int>> futures(cfg.tasks);
  Meter meter;
  for (std::size_t i = 0; i < cfg.tasks; ++i) {
    std::promise<int> p;
    futures[i] = p.get_future();
    asio::post(pool, [i, p = std::move(p)]() mutable {
      tiny_task();
      p.set_value(task_result(i));
    });
  }
  std::int64_t sum = 0;
  for (auto& f : futures) sum += f.get();
  Sample s = meter.stop();
  s.result_sum = sum;
  pool.join();
  return s;
}

}  // namespace

void add_asio_contenders(const Config& cfg, std::vector<Contender>& out) {
  const std::string pool = "asio::thread_pool(" + std::to_string(cfg.threads) + ")";
  out.push_back({"Asio", pool + "; asio::post() then join()", Workload::detached, false, run_detached});
  out.push_back({"Asio + std::promise", pool + "; asio::post() with a std::promise each, then get() each",
                 Workload::futures, false, run_futures});
}

std::string asio_version() {
  return "Asio " + std::to_string(ASIO_VERSION / 100000) + "." + std::to_string(ASIO_VERSION / 100 % 1000) + "." +
         std::to_string(ASIO_VERSION % 100) + " (standalone)";
}

}  // namespace bench
