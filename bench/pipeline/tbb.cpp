// bench/pipeline/tbb.cpp — oneTBB: tbb::parallel_pipeline(in_flight tokens, serial_in_order & parallel &
// serial_in_order filters) inside a task_arena of `threads` slots (the caller + threads - 1 workers).
#include <oneapi/tbb/parallel_pipeline.h>
#include <oneapi/tbb/task_arena.h>
#include <oneapi/tbb/version.h>

#include "common.hpp"

namespace bench {

void add_tbb(std::vector<Case>& cases, const PipelineParams& p) {
  auto arena = std::make_shared<tbb::task_arena>(static_cast<int>(p.threads));
  arena->initialize();
  auto sink = std::make_shared<Sink>();
  add_contender(
      cases, "pipeline",
      {"oneTBB",
       "tbb::parallel_pipeline(" + std::to_string(p.in_flight) +
           " tokens, serial_in_order & parallel & serial_in_order) in tbb::task_arena(" + std::to_string(p.threads) +
           ")",
       false, [sink] { *sink = Sink{}; },
       [p, arena, sink] {
         arena->execute([&] {
           std::uint64_t next = 0;
           tbb::parallel_pipeline(
               p.in_flight,
               tbb::make_filter<void, Item>(tbb::filter_mode::serial_in_order,
                                            [&](tbb::flow_control& fc) -> Item {
                                              if (next == p.items) {
                                                fc.stop();
                                                return {};
                                              }
                                              return Item{next++, 0};
                                            }) &
                   tbb::make_filter<Item, Item>(tbb::filter_mode::parallel,
                                                [&](Item it) {
                                                  it.value = item_work(it.index, p.work_iters);
                                                  return it;
                                                }) &
                   tbb::make_filter<Item, void>(tbb::filter_mode::serial_in_order,
                                                [&](const Item& it) { sink->take(it); }));
         });
       },
       [p, sink] { return p.check(*sink); }});
}

std::string tbb_version() { return std::string("oneTBB ") + TBB_VERSION_STRING; }

}  // namespace bench
