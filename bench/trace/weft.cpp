// bench/trace/weft.cpp — what tracing costs an executor per task.
//
// Goal: at most 50 ns per task when tracing is on (three ticks() reads and one record()), nothing
// measurable when it is off (one relaxed load and a branch). Compare, in the same run:
//   BM_TaskTracedOff   against BM_EmptyLoop   — the whole cost of tracing when off;
//   BM_Record          — record() alone, the span already built;
//   BM_TaskTracedOn    — what an executor adds per task when on (submit/start/end stamps plus record()).
// The *_On benchmarks also run on several threads at once: each thread has its own buffer, so the cost
// per span should not grow with the thread count.
//
// Reproduce:
//   cmake --preset bench && cmake --build --preset bench --target bench_trace
//   build/bench/bench/trace/bench_trace --benchmark_repetitions=5 --benchmark_report_aggregates_only=true
#include "weft/trace/trace.hpp"

#include "weft/core/detail/clock.hpp"

#include <benchmark/benchmark.h>

#include <cstdint>

namespace {

namespace tr = weft::trace;

// Spans between two clear() calls on one thread: keeps each buffer in a few chunks, well under the limit,
// so the benchmark measures appends, not drops.
constexpr std::uint64_t kClearEvery = std::uint64_t{1} << 16;

void start_tracing(const benchmark::State& state) {
  tr::enable();  // Idempotent; every thread calls it so none records while still off.
  if (state.thread_index() == 0) tr::clear();
}

void finish_tracing(benchmark::State& state) {
  if (state.thread_index() == 0) {
    state.counters["dropped"] = static_cast<double>(tr::dropped());
    tr::clear();
  }
  state.SetItemsProcessed(state.iterations());
}

// Runs clear() outside the timed region from time to time. clear() is race-free with the other threads'
// record(); the first record() after it takes the registry lock once (the reset step of the protocol).
void maybe_clear(benchmark::State& state, std::uint64_t i) {
  if (i % kClearEvery == kClearEvery - 1) {
    state.PauseTiming();
    tr::clear();
    state.ResumeTiming();
  }
}

void BM_EmptyLoop(benchmark::State& state) {
  std::uint64_t i = 0;
  for (auto _ : state) {
    benchmark::DoNotOptimize(i);
    ++i;
  }
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_EmptyLoop);

// The executor's hot path with tracing off: the stamps and record() sit behind enabled().
void BM_TaskTracedOff(benchmark::State& state) {
  tr::disable();
  std::uint64_t i = 0;
  for (auto _ : state) {
    benchmark::DoNotOptimize(i);
    if (tr::enabled()) {
      const std::uint64_t t = weft::detail::ticks();
      tr::record(tr::Span{"task", i, t, t, t, 1, 0, false});
    }
    ++i;
  }
  state.SetItemsProcessed(state.iterations());
  tr::enable();
}
BENCHMARK(BM_TaskTracedOff);

// record() alone.
void BM_Record(benchmark::State& state) {
  start_tracing(state);
  tr::Span span{"task", 0, 1000, 2000, 3000, 1, static_cast<std::uint32_t>(state.thread_index()), false};
  std::uint64_t i = 0;
  for (auto _ : state) {
    span.id = i;
    tr::record(span);
    maybe_clear(state, i++);
  }
  finish_tracing(state);
}
BENCHMARK(BM_Record)->Threads(1)->Threads(2)->Threads(4)->UseRealTime();

// What an executor adds per task when on: a stamp at submit, start and end, then record().
void BM_TaskTracedOn(benchmark::State& state) {
  start_tracing(state);
  const auto worker = static_cast<std::uint32_t>(state.thread_index());
  std::uint64_t i = 0;
  for (auto _ : state) {
    if (tr::enabled()) {
      const std::uint64_t submit = weft::detail::ticks();
      const std::uint64_t start = weft::detail::ticks();
      const std::uint64_t end = weft::detail::ticks();
      tr::record(tr::Span{"task", i, submit, start, end, 1, worker, false});
    }
    maybe_clear(state, i++);
  }
  finish_tracing(state);
}
BENCHMARK(BM_TaskTracedOn)->Threads(1)->Threads(2)->Threads(4)->UseRealTime();

}  // namespace

BENCHMARK_MAIN();
