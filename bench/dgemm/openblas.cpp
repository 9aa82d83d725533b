// bench/dgemm/openblas.cpp — OpenBLAS (the Debian package, pthreads build): cblas_dgemm / cblas_sgemm, row
// major, no transposition, with openblas_set_num_threads(threads) (the calling thread + threads - 1 of
// OpenBLAS's own).
#include <cblas.h>

#include "common.hpp"

namespace bench {

void add_openblas(std::vector<Case>& cases, const GemmInputs& in) {
  openblas_set_num_threads(static_cast<int>(in.d->threads));
  const std::string threads = ", openblas_set_num_threads(" + std::to_string(in.d->threads) + ")";
  const auto d = in.d;
  const auto s = in.s;
  add_contender(cases, "dgemm",
                {"OpenBLAS", "cblas_dgemm(RowMajor, NoTrans, NoTrans, alpha 1, beta 0)" + threads, false,
                 [d] { d->prepare(); },
                 [d] {
                   const int n = static_cast<int>(d->n);
                   cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, n, n, n, 1.0, d->a.data(), n, d->b.data(),
                               n, 0.0, d->c.data(), n);
                 },
                 [d] { return d->check(); }});
  add_contender(cases, "sgemm",
                {"OpenBLAS", "cblas_sgemm(RowMajor, NoTrans, NoTrans, alpha 1, beta 0)" + threads, false,
                 [s] { s->prepare(); },
                 [s] {
                   const int n = static_cast<int>(s->n);
                   cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, n, n, n, 1.0f, s->a.data(), n, s->b.data(),
                               n, 0.0f, s->c.data(), n);
                 },
                 [s] { return s->check(); }});
}

std::string openblas_version() {
  // "OpenBLAS 0.3.21 DYNAMIC_ARCH NO_AFFINITY Zen MAX_THREADS=64": the version, the build, the kernel chosen.
  return openblas_get_config();
}

}  // namespace bench
