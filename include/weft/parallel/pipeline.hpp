// weft/parallel/pipeline.hpp — a pipeline of stages over a stream of items, on a ForkJoinPool.
//
//   std::size_t next = 0;
//   weft::parallel_pipeline(pool, 16,
//       weft::stage(weft::StageMode::serial_in_order, [&](weft::PipelineControl& control) {
//         if (next == lines.size()) control.stop();               // no more input
//         return next < lines.size() ? lines[next++] : std::string{};
//       }),
//       weft::stage(weft::StageMode::parallel, [](std::string line) { return parse(line); }),
//       weft::stage(weft::StageMode::serial_in_order, [&](Record r) { out.push_back(std::move(r)); }));
//
// What a user relies on:
// - The first stage is the input: f(PipelineControl&) is called repeatedly, one call at a time, until it
//   calls stop(); the value returned by the call that stopped is ignored. Its mode does not matter: the
//   input always runs serially, and the order of its calls is the input order.
// - Each later stage gets the previous stage's value (moved, so move-only types work) and returns the next
//   one; the last stage's result is ignored. A stage is
//     serial_in_order:  one item at a time, in input order;
//     serial_any_order: one item at a time, in any order;
//     parallel:         any number of items at once.
//   Calls of a serial stage are ordered one after another (each happens before the next), so it may keep
//   state without locks. A parallel stage's function is called concurrently on the same object.
// - At most max_in_flight items exist at once between the input and the end of the last stage (values
//   above 65536 count as 65536; memory grows with it: one slot per token for every in-order stage).
// - No thread waits for a token or for a stage: an item that cannot enter a serial stage is parked and
//   later continued by whoever leaves that stage; the thread moves on to other items or to the input. The
//   protocol is at the top of weft/parallel/detail/pipeline_engine.hpp.
// - Exceptions: the first exception a stage throws stops the input, and stage functions are no longer
//   called (calls running, or starting at that very moment on other threads, still finish; a serial
//   in-order stage after the failing one never sees an item that came after the failed one). The values
//   of items in flight are destroyed, and once everything has stopped the exception is rethrown from
//   parallel_pipeline. Later exceptions are dropped.
//
// Thread safety: parallel_pipeline may be called from any thread, including from a task of the pool
// (nested: the calling worker takes part and helps). Outside the pool the caller blocks until the end.
//
// Hazards: the stage functions must not wait for something only a later item would provide (for example a
// parallel stage waiting for the output of a serial stage downstream): with every token taken by waiting
// items, nothing would move. The stages are used by reference, not copied.
#pragma once

#include <cstddef>
#include <functional>
#include <memory>
#include <stdexcept>
#include <tuple>
#include <type_traits>
#include <utility>
#include <variant>

#include "weft/parallel/detail/pipeline_engine.hpp"
#include "weft/parallel/fork_join_pool.hpp"

namespace weft {

/// How a stage may run its items.
enum class StageMode {
  serial_in_order,   ///< one item at a time, in the order the input produced them
  serial_any_order,  ///< one item at a time, in any order
  parallel,          ///< any number at a time
};

namespace detail {
template <class... F>
class PipelineRunner;
}  // namespace detail

/// Handed to the input stage on each call: stop() ends the input.
class PipelineControl {
 public:
  PipelineControl(const PipelineControl&) = delete;
  PipelineControl& operator=(const PipelineControl&) = delete;

  /// No more input: the value returned by the current call is ignored and the input is not called again.
  /// Call it only from within the input function (it is not synchronised with anything else).
  void stop() noexcept { stopped_ = true; }
  /// True once stop() was called.
  bool stopped() const noexcept { return stopped_; }

 private:
  template <class... F>
  friend class detail::PipelineRunner;
  PipelineControl() = default;
  bool stopped_ = false;
};

/// One stage: its mode and its function. Make it with stage().
template <class F>
struct Stage {
  StageMode mode;
  F f;
};

/// A stage running `f` in `mode`.
template <class F>
auto stage(StageMode mode, F f) -> Stage<F> {
  return Stage<F>{mode, std::move(f)};
}

namespace detail {

template <class T>
struct IsStage : std::false_type {};
template <class F>
struct IsStage<Stage<F>> : std::true_type {};

/// The values that travel between stages: Results<In, F1, ..., Fk>::type is the tuple of what F1 (given
/// In) returns, what F2 (given that) returns, and so on, without the last stage's result.
template <class In, class... F>
struct Results {
  using type = std::tuple<>;
};
template <class In, class F>
struct Results<In, F> {
  static_assert(std::is_invocable_v<F&, In&&>,
                "weft::parallel_pipeline: a stage cannot take the previous stage's value");
  using type = std::tuple<>;
};
template <class In, class F, class G, class... H>
struct Results<In, F, G, H...> {
  static_assert(std::is_invocable_v<F&, In&&>,
                "weft::parallel_pipeline: a stage cannot take the previous stage's value");
  using R = std::remove_cvref_t<std::invoke_result_t<F&, In&&>>;
  static_assert(!std::is_void_v<R>, "weft::parallel_pipeline: only the last stage may return void");
  using type =
      decltype(std::tuple_cat(std::declval<std::tuple<R>>(), std::declval<typename Results<R, G, H...>::type>()));
};

/// Everything the input and the middle stages return (nothing for a one-stage pipeline).
template <class R0, class... F>
struct Chain {
  using type =
      decltype(std::tuple_cat(std::declval<std::tuple<R0>>(), std::declval<typename Results<R0, F...>::type>()));
};
template <class R0>
struct Chain<R0> {
  using type = std::tuple<>;
};

template <class Tuple>
struct ValueOf;
template <class... R>
struct ValueOf<std::tuple<R...>> {
  using type = std::variant<std::monostate, R...>;  // alternative i + 1: the input of stage i + 1
};

/// The typed side of a pipeline: the stage functions and the item values.
template <class F0, class... F>
class PipelineRunner<F0, F...> final : public PipelineEngine {
 public:
  static constexpr std::size_t kStages = 1 + sizeof...(F);

  PipelineRunner(const PipelineStageSpec* specs, std::size_t max_in_flight, F0& input, F&... rest)
      : PipelineEngine(specs, kStages, max_in_flight), fns_(input, rest...) {}

  ~PipelineRunner() { destroy_items(); }

 private:
  static_assert(std::is_invocable_v<F0&, PipelineControl&>,
                "weft::parallel_pipeline: the first stage must be callable as f(PipelineControl&)");
  using R0 = std::remove_cvref_t<std::invoke_result_t<F0&, PipelineControl&>>;
  static_assert(kStages == 1 || !std::is_void_v<R0>, "weft::parallel_pipeline: only the last stage may return void");
  using Value = typename ValueOf<typename Chain<R0, F...>::type>::type;

  struct Item final : PipelineItem {
    Value value;
  };

  bool produce(PipelineItem& base) override {
    auto& item = static_cast<Item&>(base);
    if constexpr (kStages == 1) {
      (void)std::invoke(std::get<0>(fns_), control_);
    } else {
      item.value.template emplace<1>(std::invoke(std::get<0>(fns_), control_));
    }
    return !control_.stopped();
  }

  void process(std::size_t stage, PipelineItem& base) override {
    process_at(stage, static_cast<Item&>(base), std::make_index_sequence<kStages>{});
  }

  template <std::size_t... I>
  void process_at(std::size_t stage, Item& item, std::index_sequence<I...>) {
    ((stage == I ? (call<I>(item), 0) : 0), ...);
  }

  template <std::size_t I>
  void call(Item& item) {
    if constexpr (I > 0) {
      auto& f = std::get<I>(fns_);
      if constexpr (I + 1 == kStages) {
        (void)std::invoke(f, std::get<I>(std::move(item.value)));
      } else {
        item.value.template emplace<I + 1>(std::invoke(f, std::get<I>(std::move(item.value))));
      }
    }
  }

  PipelineItem* make_item() override { return new Item(); }
  void clear_item(PipelineItem& base) noexcept override { static_cast<Item&>(base).value.template emplace<0>(); }
  void destroy_item(PipelineItem* base) noexcept override { delete static_cast<Item*>(base); }

  std::tuple<F0&, F&...> fns_;
  PipelineControl control_;  // used by the input's owner only (its hand-over orders the uses)
};

inline PipelineStageSpec spec_of(StageMode mode) noexcept {
  return PipelineStageSpec{mode != StageMode::parallel, mode == StageMode::serial_in_order};
}

template <class... S>
void run_pipeline(ForkJoinPool& pool, std::size_t max_in_flight, S&... stages) {
  const PipelineStageSpec specs[] = {spec_of(stages.mode)...};
  PipelineRunner<std::remove_reference_t<decltype((stages.f))>...> runner(specs, max_in_flight, stages.f...);
  runner.run(pool);
}

}  // namespace detail

/// Runs the pipeline `stages` (the first is the input, see the top of this file) on `pool` with at most
/// `max_in_flight` items at once, and returns when the input has stopped and every item has left the
/// last stage. Rethrows the first exception a stage threw, after everything has stopped. Throws
/// std::invalid_argument when max_in_flight is 0, BrokenExecutor when called from outside a pool that has
/// been shut down. Called from a worker of `pool` the worker takes part; elsewhere the caller blocks.
template <class... S>
  requires(sizeof...(S) >= 1 && (detail::IsStage<std::remove_cvref_t<S>>::value && ...))
void parallel_pipeline(ForkJoinPool& pool, std::size_t max_in_flight, S&&... stages) {
  if (max_in_flight == 0) throw std::invalid_argument("weft::parallel_pipeline: max_in_flight must be at least 1");
  if (pool.in_pool()) {
    detail::run_pipeline(pool, max_in_flight, stages...);
  } else {
    pool.invoke([&] { detail::run_pipeline(pool, max_in_flight, stages...); });
  }
}

/// parallel_pipeline() on current_or_default_pool().
template <class... S>
  requires(sizeof...(S) >= 1 && (detail::IsStage<std::remove_cvref_t<S>>::value && ...))
void parallel_pipeline(std::size_t max_in_flight, S&&... stages) {
  parallel_pipeline(current_or_default_pool(), max_in_flight, std::forward<S>(stages)...);
}

}  // namespace weft
