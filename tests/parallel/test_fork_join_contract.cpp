// The executor contract (tests/core/executor_contract.hpp) run on weft::ForkJoinPool.
//
// The contract holds workers still with tasks blocked on a std::latch, which never helps: a ForkJoinPool
// worker inside such a task runs nothing else, exactly as the contract needs.
#include "../core/executor_contract.hpp"

#include "weft/parallel/fork_join_pool.hpp"

#include <cstddef>
#include <memory>

namespace weft::test {

template <>
struct ExecutorFactory<ForkJoinPool> {
  static std::unique_ptr<ForkJoinPool> make(std::size_t threads) {
    return std::make_unique<ForkJoinPool>(ForkJoinPoolOptions{.threads = threads, .name = "contract"});
  }
};

INSTANTIATE_TYPED_TEST_SUITE_P(ForkJoinPool, ExecutorContract, ::testing::Types<ForkJoinPool>);

}  // namespace weft::test
