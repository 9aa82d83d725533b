// bench/dgemm/omp.cpp — for context: the blocked triple loop a programmer writes by hand, parallel over
// blocks of rows of C with OpenMP. Blocks of kBlockK x kBlockJ of B (256 KiB in double) stay in cache while
// a block of rows of A runs over them; the innermost loop (over j) is contiguous and vectorised by the
// compiler at the common flags.
#include <omp.h>

#include <algorithm>

#include "common.hpp"

namespace bench {
namespace {

constexpr std::size_t kBlockI = 32;
constexpr std::size_t kBlockK = 128;
constexpr std::size_t kBlockJ = 256;

template <class T>
void blocked_gemm(GemmData<T>& m, int threads) {
  const std::size_t n = m.n;
  const T* a = m.a.data();
  const T* b = m.b.data();
  T* c = m.c.data();
  const auto row_blocks = static_cast<long>((n + kBlockI - 1) / kBlockI);
#pragma omp parallel for schedule(static) num_threads(threads)
  for (long blk = 0; blk < row_blocks; ++blk) {
    const std::size_t i0 = static_cast<std::size_t>(blk) * kBlockI, i1 = std::min(n, i0 + kBlockI);
    for (std::size_t i = i0; i < i1; ++i) std::fill(c + i * n, c + i * n + n, T(0));  // beta = 0
    for (std::size_t k0 = 0; k0 < n; k0 += kBlockK) {
      const std::size_t k1 = std::min(n, k0 + kBlockK);
      for (std::size_t j0 = 0; j0 < n; j0 += kBlockJ) {
        const std::size_t j1 = std::min(n, j0 + kBlockJ);
        for (std::size_t i = i0; i < i1; ++i) {
          T* ci = c + i * n;
          for (std::size_t k = k0; k < k1; ++k) {
            const T aik = a[i * n + k];
            const T* bk = b + k * n;
            for (std::size_t j = j0; j < j1; ++j) ci[j] += aik * bk[j];
          }
        }
      }
    }
  }
}

}  // namespace

void add_omp(std::vector<Case>& cases, const GemmInputs& in) {
  const int threads = static_cast<int>(in.d->threads);
  const std::string config = "blocked i-k-j loop (" + std::to_string(kBlockI) + " x " + std::to_string(kBlockK) +
                             " x " + std::to_string(kBlockJ) + "), #pragma omp parallel for num_threads(" +
                             std::to_string(threads) + ") over row blocks";
  const auto d = in.d;
  const auto s = in.s;
  add_contender(cases, "dgemm",
                {"OpenMP blocked loop", config, false, [d] { d->prepare(); },
                 [d, threads] { blocked_gemm(*d, threads); }, [d] { return d->check(); }});
  add_contender(cases, "sgemm",
                {"OpenMP blocked loop", config, false, [s] { s->prepare(); },
                 [s, threads] { blocked_gemm(*s, threads); }, [s] { return s->check(); }});
}

std::string omp_version() { return "GCC libgomp (OpenMP " + std::to_string(_OPENMP) + ")"; }

}  // namespace bench
