// bench/channel/moodycamel.cpp — the competitor: moodycamel::BlockingConcurrentQueue as it is commonly used
// (default-constructed, so unbounded; enqueue() and wait_dequeue() without producer/consumer tokens).
//
// Same shape as weft.cpp: `producers` threads send kMessages 8-byte values in total, `consumers` threads
// receive until everything arrived. The queue has no close(), and it is FIFO per producer only, so a stop
// value from another thread could overtake values still queued. Instead each producer ends its share with
// one stop value per consumer, and each consumer stops after `producers` stop values: a producer's stop
// values come out after all its values, the P*C stop values are shared out exactly P per consumer, so
// when the last consumer stops every value has been taken. Each iteration builds a fresh queue and fresh
// threads (thread start-up is ~0.01% of an iteration). The consumers' checksum verifies the delivery.
#include <benchmark/benchmark.h>

#include <atomic>
#include <concurrentqueue/blockingconcurrentqueue.h>
#include <cstdint>
#include <latch>
#include <limits>
#include <thread>
#include <vector>

namespace {

constexpr std::uint64_t kMessages = 10'000'000;
constexpr std::uint64_t kStop = std::numeric_limits<std::uint64_t>::max();

void moodycamel_queue(benchmark::State& state) {
  const auto producers = static_cast<int>(state.range(0));
  const auto consumers = static_cast<int>(state.range(1));
  const std::uint64_t share = kMessages / static_cast<std::uint64_t>(producers);
  const std::uint64_t total = share * static_cast<std::uint64_t>(producers);
  for (auto _ : state) {
    moodycamel::BlockingConcurrentQueue<std::uint64_t> queue;
    std::atomic<std::uint64_t> checksum{0};
    std::latch start(producers + consumers);
    std::vector<std::thread> senders;
    std::vector<std::thread> receivers;
    for (int p = 0; p < producers; ++p) {
      senders.emplace_back([&, p] {
        start.arrive_and_wait();
        const std::uint64_t first = share * static_cast<std::uint64_t>(p);
        for (std::uint64_t v = first; v < first + share; ++v) queue.enqueue(v);
        for (int c = 0; c < consumers; ++c) queue.enqueue(kStop);
      });
    }
    for (int c = 0; c < consumers; ++c) {
      receivers.emplace_back([&] {
        start.arrive_and_wait();
        std::uint64_t sum = 0;
        std::uint64_t v = 0;
        for (int stops = 0; stops < producers;) {
          queue.wait_dequeue(v);
          if (v == kStop) {
            ++stops;
          } else {
            sum += v;
          }
        }
        checksum.fetch_add(sum, std::memory_order_relaxed);
      });
    }
    for (auto& t : senders) t.join();
    for (auto& t : receivers) t.join();
    if (checksum.load() != total * (total - 1) / 2) state.SkipWithError("moodycamel: a value was lost");
  }
  state.SetItemsProcessed(static_cast<std::int64_t>(state.iterations() * total));
}

// The cases must match weft.cpp's: main() pairs runs by their arguments.
BENCHMARK(moodycamel_queue)
    ->Name("moodycamel")
    ->ArgNames({"producers", "consumers"})
    ->Args({1, 1})
    ->Args({2, 2})
    ->Args({4, 4})
    ->Iterations(1)
    ->UseRealTime()
    ->Unit(benchmark::kMillisecond);

}  // namespace
