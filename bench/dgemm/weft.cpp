// bench/dgemm/weft.cpp — weft::matmul (double and float) on a weft::ForkJoinPool of `threads` workers.
#include <memory>

#include "common.hpp"
#include "weft/parallel/fork_join_pool.hpp"
#include "weft/parallel/matmul.hpp"

namespace bench {

void add_weft(std::vector<Case>& cases, const GemmInputs& in) {
  auto pool = std::make_shared<weft::ForkJoinPool>(in.d->threads);
  const std::string config = "weft::matmul(pool, n, n, n, 1, A, n, B, n, 0, C, n) on weft::ForkJoinPool(" +
                             std::to_string(in.d->threads) + ") (default options)";
  const auto d = in.d;
  const auto s = in.s;
  add_contender(cases, "dgemm",
                {"weft", config + ", double", true, [d] { d->prepare(); },
                 [d, pool] {
                   weft::matmul(*pool, d->n, d->n, d->n, 1.0, d->a.data(), d->n, d->b.data(), d->n, 0.0, d->c.data(),
                                d->n);
                 },
                 [d] { return d->check(); }});
  add_contender(cases, "sgemm",
                {"weft", config + ", float", true, [s] { s->prepare(); },
                 [s, pool] {
                   weft::matmul(*pool, s->n, s->n, s->n, 1.0f, s->a.data(), s->n, s->b.data(), s->n, 0.0f, s->c.data(),
                                s->n);
                 },
                 [s] { return s->check(); }});
}

}  // namespace bench
