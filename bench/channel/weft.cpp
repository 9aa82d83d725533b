// bench/channel/weft.cpp — weft::Channel<std::uint64_t> throughput, and bench_channel's main().
//
// Shape (the same in moodycamel.cpp): `producers` threads send kMessages 8-byte values in total (an equal
// share each), `consumers` threads receive until the channel is closed and drained; the main thread closes
// it once every producer has finished. Capacity kCapacity (bounded, unlike the competitor's queue). Each
// iteration builds a fresh channel and fresh threads (thread start-up is ~0.01% of an iteration). The
// consumers' checksum verifies that every value arrived exactly once.
//
// main() runs every registered contender in the same process, in random order per repetition (so a noisy
// neighbour hurts both alike), five repetitions by default, then prints per case the median messages/s of
// each contender and the ratio weft/moodycamel. Google Benchmark flags given on the command line override
// these defaults.
//
// Reproduce: cmake --preset bench && cmake --build --preset bench --target bench_channel
//            && build/bench/bench/channel/bench_channel
#include <benchmark/benchmark.h>

#include <algorithm>
#include <atomic>
#include <cstdint>
#include <cstdio>
#include <latch>
#include <map>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "weft/sync/channel.hpp"

namespace {

constexpr std::uint64_t kMessages = 10'000'000;
constexpr std::size_t kCapacity = 1024;

void weft_channel(benchmark::State& state) {
  const auto producers = static_cast<int>(state.range(0));
  const auto consumers = static_cast<int>(state.range(1));
  const std::uint64_t share = kMessages / static_cast<std::uint64_t>(producers);
  const std::uint64_t total = share * static_cast<std::uint64_t>(producers);
  for (auto _ : state) {
    weft::Channel<std::uint64_t> channel(kCapacity);
    std::atomic<std::uint64_t> checksum{0};
    std::latch start(producers + consumers);
    std::vector<std::thread> senders;
    std::vector<std::thread> receivers;
    for (int p = 0; p < producers; ++p) {
      senders.emplace_back([&, p] {
        start.arrive_and_wait();
        const std::uint64_t first = share * static_cast<std::uint64_t>(p);
        for (std::uint64_t v = first; v < first + share; ++v) channel.send(v);
      });
    }
    for (int c = 0; c < consumers; ++c) {
      receivers.emplace_back([&] {
        start.arrive_and_wait();
        std::uint64_t sum = 0;
        while (const std::optional<std::uint64_t> v = channel.recv()) sum += *v;
        checksum.fetch_add(sum, std::memory_order_relaxed);
      });
    }
    for (auto& t : senders) t.join();
    channel.close();
    for (auto& t : receivers) t.join();
    if (checksum.load() != total * (total - 1) / 2) state.SkipWithError("weft: a value was lost");
  }
  state.SetItemsProcessed(static_cast<std::int64_t>(state.iterations() * total));
}

// The cases must match moodycamel.cpp's: main() pairs runs by their arguments.
BENCHMARK(weft_channel)
    ->Name("weft")
    ->ArgNames({"producers", "consumers"})
    ->Args({1, 1})
    ->Args({2, 2})
    ->Args({4, 4})
    ->Iterations(1)
    ->UseRealTime()
    ->Unit(benchmark::kMillisecond);

// The usual console output, then a table with one line per case: median messages/s of each contender over
// the repetitions, and their ratio.
class RatioReporter : public benchmark::ConsoleReporter {
 public:
  explicit RatioReporter(std::string command) : command_(std::move(command)) {}

  bool ReportContext(const Context& context) override {
    cpus_ = context.cpu_info.num_cpus;
    return ConsoleReporter::ReportContext(context);
  }

  void ReportRuns(const std::vector<Run>& runs) override {
    // With --benchmark_display_aggregates_only only the aggregates arrive here: take the "median" one when
    // there is one, else the single runs.
    for (const Run& run : runs) {
      const auto rate = run.counters.find("items_per_second");
      if (run.error_occurred || rate == run.counters.end()) continue;
      Rates& r = rates_[run.run_name.args][run.run_name.function_name];
      if (run.run_type == Run::RT_Iteration) r.runs.push_back(rate->second.value);
      if (run.run_type == Run::RT_Aggregate && run.aggregate_name == "median") r.median = rate->second.value;
    }
    ConsoleReporter::ReportRuns(runs);
  }

  void Finalize() override {
    ConsoleReporter::Finalize();
    std::FILE* out = stdout;
    std::fflush(out);
    std::fprintf(out, "\nChannel throughput, 8-byte messages, %d CPUs (median of the repetitions)\n", cpus_);
    std::fprintf(out, "command: %s\n", command_.c_str());
    std::fprintf(out, "%-26s %16s %16s %16s\n", "case", "weft Mmsg/s", "moodycamel Mmsg/s", "weft/moodycamel");
    for (auto& [args, by_contender] : rates_) {
      const double weft = by_contender["weft"].get();
      const double moody = by_contender["moodycamel"].get();
      std::fprintf(out, "%-26s %16.2f %16.2f %16.2f\n", args.c_str(), weft / 1e6, moody / 1e6,
                   moody > 0 ? weft / moody : 0.0);
    }
  }

 private:
  struct Rates {
    std::vector<double> runs;
    double median = -1;
    double get() {
      if (median >= 0) return median;
      if (runs.empty()) return 0;
      std::sort(runs.begin(), runs.end());
      const std::size_t n = runs.size();
      return n % 2 == 1 ? runs[n / 2] : (runs[n / 2 - 1] + runs[n / 2]) / 2;
    }
  };

  std::string command_;
  int cpus_ = 0;
  std::map<std::string, std::map<std::string, Rates>> rates_;  // args → contender → messages/s
};

}  // namespace

int main(int argc, char** argv) {
  // Defaults first, so that the same flags given on the command line win.
  std::vector<char*> args{argv[0]};
  std::string repetitions = "--benchmark_repetitions=5";
  std::string interleave = "--benchmark_enable_random_interleaving=true";
  std::string aggregates = "--benchmark_display_aggregates_only=true";
  args.push_back(repetitions.data());
  args.push_back(interleave.data());
  args.push_back(aggregates.data());
  args.insert(args.end(), argv + 1, argv + argc);
  int count = static_cast<int>(args.size());
  benchmark::Initialize(&count, args.data());
  if (benchmark::ReportUnrecognizedArguments(count, args.data())) return 1;
  std::string command = "bench_channel";
  for (int i = 1; i < argc; ++i) command += std::string(" ") + argv[i];
  RatioReporter reporter(command);
  benchmark::RunSpecifiedBenchmarks(&reporter);
  benchmark::Shutdown();
  return 0;
}
