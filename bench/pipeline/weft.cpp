// bench/pipeline/weft.cpp — weft::parallel_pipeline(pool, in_flight, serial_in_order, parallel,
// serial_in_order stages) on a weft::ForkJoinPool of `threads` workers, called from outside the pool.
#include <memory>

#include "common.hpp"
#include "weft/parallel/fork_join_pool.hpp"
#include "weft/parallel/pipeline.hpp"

namespace bench {

void add_weft(std::vector<Case>& cases, const PipelineParams& p) {
  auto pool = std::make_shared<weft::ForkJoinPool>(p.threads);
  auto sink = std::make_shared<Sink>();
  add_contender(
      cases, "pipeline",
      {"weft",
       "weft::parallel_pipeline(pool, " + std::to_string(p.in_flight) +
           ", serial_in_order, parallel, serial_in_order) on weft::ForkJoinPool(" + std::to_string(p.threads) +
           ") (default options)",
       true, [sink] { *sink = Sink{}; },
       [p, pool, sink] {
         std::uint64_t next = 0;
         weft::parallel_pipeline(
             *pool, p.in_flight,
             weft::stage(weft::StageMode::serial_in_order,
                         [&](weft::PipelineControl& control) -> Item {
                           if (next == p.items) {
                             control.stop();
                             return {};
                           }
                           return Item{next++, 0};
                         }),
             weft::stage(weft::StageMode::parallel,
                         [&](Item it) {
                           it.value = item_work(it.index, p.work_iters);
                           return it;
                         }),
             weft::stage(weft::StageMode::serial_in_order, [&](const Item& it) { sink->take(it); }));
       },
       [p, sink] { return p.check(*sink); }});
}

}  // namespace bench
