// parallel_pipeline: order, exclusion and in-flight bounds of the stage modes, any number of stages, failures,
// move-only values and nested use, on pools of 1, 2 and 8 workers.
#include "weft/parallel/pipeline.hpp"

#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <numeric>
#include <stdexcept>
#include <string>
#include <vector>

#include "weft/core/future.hpp"
#include "weft/parallel/fork_join_pool.hpp"

namespace weft {
namespace {

constexpr std::size_t kThreads[] = {1, 2, 8};

std::vector<std::unique_ptr<ForkJoinPool>> make_pools() {
  std::vector<std::unique_ptr<ForkJoinPool>> pools;
  for (std::size_t threads : kThreads) {
    pools.push_back(std::make_unique<ForkJoinPool>(ForkJoinPoolOptions{.threads = threads, .name = "pipeline"}));
  }
  return pools;
}

/// Work whose length depends on the item, so that items overtake each other in parallel stages.
std::uint64_t uneven_work(std::uint64_t i) {
  std::uint64_t v = i;
  const std::uint64_t rounds = (i * 7919) % 17 * 40;
  for (std::uint64_t r = 0; r < rounds; ++r) v = v * 6364136223846793005ull + 1442695040888963407ull;
  return v;
}

/// Input stage producing 0, 1, ..., n - 1 and then stopping.
auto counting_input(std::uint64_t& next, std::uint64_t n) {
  return stage(StageMode::serial_in_order, [&next, n](PipelineControl& control) -> std::uint64_t {
    if (next == n) {
      control.stop();
      return 0;
    }
    return next++;
  });
}

TEST(Pipeline, SerialInOrderStagesSeeInputOrder) {
  for (const auto& pool : make_pools()) {
    for (std::size_t tokens : {std::size_t{1}, std::size_t{2}, std::size_t{7}, std::size_t{64}}) {
      SCOPED_TRACE(std::to_string(pool->threads()) + " workers, " + std::to_string(tokens) + " tokens");
      constexpr std::uint64_t kItems = 3000;
      std::uint64_t next = 0;
      std::uint64_t middle_expect = 0, last_expect = 0;  // plain: serial stages need no locks
      std::size_t middle_errors = 0, last_errors = 0;
      std::uint64_t checksum = 0;
      parallel_pipeline(
          *pool, tokens, counting_input(next, kItems),
          stage(StageMode::parallel, [](std::uint64_t i) { return std::pair(i, uneven_work(i)); }),
          stage(StageMode::serial_in_order,
                [&](std::pair<std::uint64_t, std::uint64_t> p) {
                  if (p.first != middle_expect++) ++middle_errors;
                  return p;
                }),
          stage(StageMode::parallel,
                [](std::pair<std::uint64_t, std::uint64_t> p) {
                  p.second ^= uneven_work(p.first + 1);
                  return p;
                }),
          stage(StageMode::serial_in_order, [&](std::pair<std::uint64_t, std::uint64_t> p) {
            if (p.first != last_expect++) ++last_errors;
            checksum += p.second;
          }));
      EXPECT_EQ(middle_errors, 0u);
      EXPECT_EQ(last_errors, 0u);
      EXPECT_EQ(middle_expect, kItems);
      EXPECT_EQ(last_expect, kItems);
      std::uint64_t expect_sum = 0;
      for (std::uint64_t i = 0; i < kItems; ++i) expect_sum += uneven_work(i) ^ uneven_work(i + 1);
      EXPECT_EQ(checksum, expect_sum);
    }
  }
}

TEST(Pipeline, SerialAnyOrderStagesRunOneItemAtATime) {
  for (const auto& pool : make_pools()) {
    for (std::size_t tokens : {std::size_t{1}, std::size_t{3}, std::size_t{32}}) {
      SCOPED_TRACE(std::to_string(pool->threads()) + " workers, " + std::to_string(tokens) + " tokens");
      constexpr std::uint64_t kItems = 3000;
      std::uint64_t next = 0;
      std::atomic<int> inside[2] = {0, 0};  // per stage: two serial stages may run at the same time
      std::atomic<int> overlaps{0};
      std::vector<char> seen(kItems, 0);  // written only by the serial stages
      std::uint64_t last_count = 0;
      const auto exclusive = [&](int stage_index, std::uint64_t i) {
        if (inside[stage_index].fetch_add(1) != 0) overlaps.fetch_add(1);
        const std::uint64_t v = uneven_work(i);
        if (inside[stage_index].fetch_sub(1) != 1) overlaps.fetch_add(1);
        return v;
      };
      parallel_pipeline(
          *pool, tokens, counting_input(next, kItems),
          stage(StageMode::parallel, [](std::uint64_t i) { return std::pair(i, uneven_work(i)); }),
          stage(StageMode::serial_any_order,
                [&](std::pair<std::uint64_t, std::uint64_t> p) {
                  (void)exclusive(0, p.first);
                  ++seen[p.first];
                  return p.first;
                }),
          stage(StageMode::parallel, [](std::uint64_t i) { return i + uneven_work(i) * 0; }),
          stage(StageMode::serial_any_order, [&](std::uint64_t i) {
            (void)exclusive(1, i);
            ++seen[i];
            ++last_count;
          }));
      EXPECT_EQ(overlaps.load(), 0);
      EXPECT_EQ(last_count, kItems);
      EXPECT_TRUE(std::all_of(seen.begin(), seen.end(), [](char c) { return c == 2; }));
    }
  }
}

TEST(Pipeline, AtMostMaxInFlightItems) {
  for (const auto& pool : make_pools()) {
    for (std::size_t tokens : {std::size_t{1}, std::size_t{2}, std::size_t{5}}) {
      for (StageMode last : {StageMode::serial_in_order, StageMode::serial_any_order, StageMode::parallel}) {
        SCOPED_TRACE(std::to_string(pool->threads()) + " workers, " + std::to_string(tokens) + " tokens, last mode " +
                     std::to_string(static_cast<int>(last)));
        constexpr std::uint64_t kItems = 2000;
        std::uint64_t next = 0;
        std::atomic<std::size_t> in_flight{0};
        std::atomic<std::size_t> most{0};
        std::atomic<std::uint64_t> done{0};
        parallel_pipeline(
            *pool, tokens,
            stage(StageMode::serial_in_order,
                  [&](PipelineControl& control) -> std::uint64_t {
                    if (next == kItems) {
                      control.stop();
                      return 0;
                    }
                    const std::size_t now = in_flight.fetch_add(1) + 1;  // the item exists from here
                    std::size_t m = most.load();
                    while (now > m && !most.compare_exchange_weak(m, now)) {
                    }
                    return next++;
                  }),
            // Later items finish sooner, so they pile up in front of the serial stage: the bound is tested.
            stage(StageMode::parallel,
                  [](std::uint64_t i) {
                    std::uint64_t v = i | 1;
                    for (std::uint64_t r = 0; r < (8 - i % 8) * 100; ++r) v = v * 6364136223846793005ull + 1;
                    return v | 1;
                  }),
            stage(last, [&](std::uint64_t v) {
              EXPECT_NE(uneven_work(v) | 1, 0u);
              done.fetch_add(1);
              in_flight.fetch_sub(1);  // ... to here
            }));
        EXPECT_EQ(done.load(), kItems);
        EXPECT_EQ(in_flight.load(), 0u);
        EXPECT_LE(most.load(), tokens);
        EXPECT_GE(most.load(), 1u);
      }
    }
  }
}

TEST(Pipeline, OneStageIsJustTheInput) {
  for (const auto& pool : make_pools()) {
    int calls = 0;
    parallel_pipeline(*pool, 4, stage(StageMode::parallel, [&](PipelineControl& control) {
                        if (++calls == 100) control.stop();
                      }));
    EXPECT_EQ(calls, 100);
  }
}

TEST(Pipeline, TwoStages) {
  for (const auto& pool : make_pools()) {
    for (StageMode mode : {StageMode::serial_in_order, StageMode::serial_any_order, StageMode::parallel}) {
      std::uint64_t next = 0;
      std::atomic<std::uint64_t> sum{0};
      parallel_pipeline(*pool, 8, counting_input(next, 1000), stage(mode, [&](std::uint64_t i) { sum += i; }));
      EXPECT_EQ(sum.load(), 999u * 1000u / 2);
    }
  }
}

TEST(Pipeline, ManyStagesOfEveryMode) {
  for (const auto& pool : make_pools()) {
    SCOPED_TRACE(std::to_string(pool->threads()) + " workers");
    std::uint64_t next = 0;
    std::uint64_t expect = 0;
    std::size_t disorder = 0;
    std::uint64_t total = 0;
    const auto add = [](std::uint64_t x) { return x + 1; };
    parallel_pipeline(*pool, 6, counting_input(next, 2000), stage(StageMode::parallel, add),
                      stage(StageMode::serial_any_order, add), stage(StageMode::parallel, add),
                      stage(StageMode::serial_in_order, add), stage(StageMode::serial_any_order, add),
                      stage(StageMode::parallel, [](std::uint64_t x) { return x + uneven_work(x) * 0; }),
                      stage(StageMode::serial_in_order, [&](std::uint64_t x) {
                        if (x != expect + 5) ++disorder;
                        ++expect;
                        total += x;
                      }));
    EXPECT_EQ(disorder, 0u);
    EXPECT_EQ(expect, 2000u);
    EXPECT_EQ(total, 1999u * 2000u / 2 + 5u * 2000u);
  }
}

TEST(Pipeline, ZeroItemsStopsAtOnce) {
  for (const auto& pool : make_pools()) {
    int input_calls = 0;
    std::atomic<int> later_calls{0};
    parallel_pipeline(*pool, 4,
                      stage(StageMode::serial_in_order,
                            [&](PipelineControl& control) {
                              ++input_calls;
                              control.stop();
                              return std::string("ignored");
                            }),
                      stage(StageMode::parallel, [&](std::string s) { ++later_calls; return s; }),
                      stage(StageMode::serial_in_order, [&](std::string) { ++later_calls; }));
    EXPECT_EQ(input_calls, 1);
    EXPECT_EQ(later_calls.load(), 0);
  }
}

/// Counts live instances, to check that dropped items' values are destroyed.
struct Tracked {
  static std::atomic<int> live;
  std::unique_ptr<std::uint64_t> value;  // move-only
  explicit Tracked(std::uint64_t v) : value(std::make_unique<std::uint64_t>(v)) { ++live; }
  Tracked(Tracked&& other) noexcept : value(std::move(other.value)) { ++live; }
  Tracked& operator=(Tracked&&) = delete;
  ~Tracked() { --live; }
};
std::atomic<int> Tracked::live{0};

struct StageFailure : std::runtime_error {
  using std::runtime_error::runtime_error;
};

TEST(Pipeline, ExceptionFromAnyStageReachesCallerAndStopsInput) {
  constexpr std::uint64_t kItems = 100000;
  constexpr std::uint64_t kFailAt = 300;
  for (const auto& pool : make_pools()) {
    for (std::size_t failing = 0; failing < 4; ++failing) {
      for (std::size_t tokens : {std::size_t{1}, std::size_t{4}}) {
        SCOPED_TRACE(std::to_string(pool->threads()) + " workers, stage " + std::to_string(failing) + ", " +
                     std::to_string(tokens) + " tokens");
        std::uint64_t produced = 0;
        std::atomic<std::uint64_t> finished{0};
        const auto maybe_fail = [&](std::size_t stage_index, std::uint64_t v) {
          if (stage_index == failing && v == kFailAt) {
            // Slowly, so that the items behind this one catch up (and must then be dropped).
            for (std::uint64_t r = 0; r < 200; ++r) (void)uneven_work(r);
            throw StageFailure("stage " + std::to_string(stage_index));
          }
        };
        try {
          parallel_pipeline(
              *pool, tokens,
              stage(StageMode::serial_in_order,
                    [&](PipelineControl& control) {
                      if (produced == kItems) control.stop();
                      maybe_fail(0, produced);
                      return Tracked(produced++);
                    }),
              stage(StageMode::parallel,
                    [&](Tracked t) {
                      maybe_fail(1, *t.value);
                      return t;
                    }),
              stage(StageMode::serial_any_order,
                    [&](Tracked t) {
                      maybe_fail(2, *t.value);
                      return t;
                    }),
              stage(StageMode::serial_in_order, [&](Tracked t) {
                maybe_fail(3, *t.value);
                finished.fetch_add(1);
              }));
          ADD_FAILURE() << "no exception";
        } catch (const StageFailure& e) {
          EXPECT_EQ(std::string(e.what()), "stage " + std::to_string(failing));
        }
        // The input stopped soon after the failure: at most the items in flight and one more call.
        EXPECT_LE(produced, kFailAt + tokens + 1);
        // No stage runs after the failure: the items behind the failed one reach the in-order last stage
        // only after it, and are dropped.
        EXPECT_LE(finished.load(), kFailAt);
        EXPECT_EQ(Tracked::live.load(), 0);  // dropped values were destroyed
      }
    }
  }
}

TEST(Pipeline, ManyFailuresOneRethrown) {
  for (const auto& pool : make_pools()) {
    std::uint64_t next = 0;
    EXPECT_THROW(parallel_pipeline(*pool, 16, counting_input(next, 10000),
                                   stage(StageMode::parallel,
                                         [](std::uint64_t i) -> std::uint64_t {
                                           if (i >= 10) throw StageFailure("many");
                                           return i;
                                         }),
                                   stage(StageMode::serial_in_order, [](std::uint64_t) {})),
                 StageFailure);
    EXPECT_LT(next, 10000u);
  }
}

TEST(Pipeline, MoveOnlyValues) {
  for (const auto& pool : make_pools()) {
    std::uint64_t next = 0;
    std::uint64_t expect = 0;
    std::size_t disorder = 0;
    parallel_pipeline(*pool, 5,
                      stage(StageMode::serial_in_order,
                            [&](PipelineControl& control) {
                              if (next == 1000) control.stop();
                              return std::make_unique<std::uint64_t>(next++);
                            }),
                      stage(StageMode::parallel, [](std::unique_ptr<std::uint64_t> p) { return Tracked(*p * 3); }),
                      stage(StageMode::serial_in_order, [&](Tracked t) {
                        if (*t.value != 3 * expect) ++disorder;
                        ++expect;
                      }));
    EXPECT_EQ(expect, 1000u);
    EXPECT_EQ(disorder, 0u);
    EXPECT_EQ(Tracked::live.load(), 0);
  }
}

// From a task of the pool (the worker takes part), and a pipeline inside a parallel stage of another.
TEST(Pipeline, NestedInPoolTasks) {
  for (const auto& pool : make_pools()) {
    SCOPED_TRACE(std::to_string(pool->threads()) + " workers");
    std::atomic<std::uint64_t> inner_total{0};
    auto outer = pool->submit([&] {
      std::uint64_t next = 0;
      std::uint64_t expect = 0;
      std::size_t disorder = 0;
      parallel_pipeline(*pool, 4, counting_input(next, 40),
                        stage(StageMode::parallel,
                              [&](std::uint64_t i) {
                                std::uint64_t inner_next = 0;
                                std::uint64_t sum = 0;
                                parallel_pipeline(  // on the current pool: this one
                                    4, counting_input(inner_next, 50),
                                    stage(StageMode::parallel, [](std::uint64_t x) { return x * 2; }),
                                    stage(StageMode::serial_in_order, [&](std::uint64_t x) { sum += x; }));
                                inner_total += sum;
                                return i;
                              }),
                        stage(StageMode::serial_in_order, [&](std::uint64_t i) {
                          if (i != expect++) ++disorder;
                        }));
      return disorder;
    });
    EXPECT_EQ(outer.get(), 0u);
    EXPECT_EQ(inner_total.load(), 40u * (49u * 50u));
  }
}

TEST(Pipeline, ConcurrentPipelinesOnOnePool) {
  ForkJoinPool pool(std::size_t{8});
  std::vector<Future<std::uint64_t>> runs;
  for (int r = 0; r < 6; ++r) {
    runs.push_back(pool.submit([&pool] {
      std::uint64_t next = 0, expect = 0, disorder = 0;
      parallel_pipeline(pool, 3, counting_input(next, 500),
                        stage(StageMode::parallel, [](std::uint64_t i) { return i + uneven_work(i) * 0; }),
                        stage(StageMode::serial_in_order, [&](std::uint64_t i) { disorder += i != expect++; }));
      return disorder + (expect == 500 ? 0 : 1000);
    }));
  }
  for (auto& f : runs) EXPECT_EQ(f.get(), 0u);
}

TEST(Pipeline, FromOutsideAndOnTheDefaultPool) {
  std::uint64_t next = 0;
  std::uint64_t sum = 0;
  parallel_pipeline(8, counting_input(next, 100), stage(StageMode::parallel, [](std::uint64_t i) { return i * i; }),
                    stage(StageMode::serial_any_order, [&](std::uint64_t v) { sum += v; }));
  EXPECT_EQ(sum, 99u * 100u * 199u / 6);
}

TEST(Pipeline, RejectsZeroTokens) {
  ForkJoinPool pool(std::size_t{2});
  int calls = 0;
  EXPECT_THROW(parallel_pipeline(pool, 0, stage(StageMode::serial_in_order, [&](PipelineControl& c) {
                                   ++calls;
                                   c.stop();
                                 })),
               std::invalid_argument);
  EXPECT_EQ(calls, 0);
}

// Many short pipelines with few tokens: the hand-overs of the input and of the serial stages race often.
TEST(Pipeline, ShortPipelinesStress) {
  for (const auto& pool : make_pools()) {
    for (int round = 0; round < 200; ++round) {
      const std::size_t tokens = 1 + static_cast<std::size_t>(round % 4);
      std::uint64_t next = 0, expect = 0, disorder = 0;
      std::atomic<int> inside{0};
      std::atomic<int> overlaps{0};
      parallel_pipeline(*pool, tokens, counting_input(next, 1 + static_cast<std::uint64_t>(round % 23)),
                        stage(StageMode::parallel, [](std::uint64_t i) { return i; }),
                        stage(StageMode::serial_any_order,
                              [&](std::uint64_t i) {
                                if (inside.fetch_add(1) != 0) overlaps.fetch_add(1);
                                inside.fetch_sub(1);
                                return i;
                              }),
                        stage(StageMode::serial_in_order, [&](std::uint64_t i) { disorder += i != expect++; }));
      ASSERT_EQ(disorder, 0u) << "round " << round;
      ASSERT_EQ(expect, 1 + static_cast<std::uint64_t>(round % 23)) << "round " << round;
      ASSERT_EQ(overlaps.load(), 0) << "round " << round;
    }
  }
}

}  // namespace
}  // namespace weft
