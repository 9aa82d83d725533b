// The executor contract (executor_contract.hpp) run on weft::ThreadPool.
#include "executor_contract.hpp"

#include "weft/thread/thread_pool.hpp"

#include <cstddef>
#include <memory>

namespace weft::test {

template <>
struct ExecutorFactory<ThreadPool> {
  static std::unique_ptr<ThreadPool> make(std::size_t threads) {
    return std::make_unique<ThreadPool>(ThreadPoolOptions{.threads = threads, .name = "contract"});
  }
};

INSTANTIATE_TYPED_TEST_SUITE_P(ThreadPool, ExecutorContract, ::testing::Types<ThreadPool>);

}  // namespace weft::test
