// bench/pipeline/seq.cpp — the three stages as one loop on the calling thread.
#include "common.hpp"

namespace bench {

void add_seq(std::vector<Case>& cases, const PipelineParams& p) {
  auto sink = std::make_shared<Sink>();
  add_contender(cases, "pipeline",
                {"sequential", "one loop: input, item_work, output, on the calling thread", false,
                 [sink] { *sink = Sink{}; },
                 [p, sink] {
                   for (std::uint64_t i = 0; i < p.items; ++i) sink->take(Item{i, item_work(i, p.work_iters)});
                 },
                 [p, sink] { return p.check(*sink); }});
}

}  // namespace bench
