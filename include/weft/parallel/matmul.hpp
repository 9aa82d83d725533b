// weft/parallel/matmul.hpp — dense matrix multiplication on a ForkJoinPool (data decomposition).
//
//   std::vector<double> a(m * k), b(k * n), c(m * n);
//   weft::matmul(pool, m, n, k, 1.0, a.data(), k, b.data(), n, 0.0, c.data(), n);   // C = A * B
//
// C = alpha * A * B + beta * C with row-major matrices: A is m x k with leading dimension (row stride) lda,
// B is k x n with ldb, C is m x n with ldc.
//
// How it works (the classic blocked GEMM: Goto & van de Geijn, "Anatomy of High-Performance Matrix
// Multiplication", ACM TOMS 2008):
// - B is cut into panels of KC rows and NC columns, packed once per panel into a contiguous buffer shared by
//   all workers (sized for the shared L3); A into blocks of MC rows and KC columns, packed by each task into a
//   buffer of its own thread (sized for L2). Packing pads partial tiles with zeros, so the inner kernel
//   always computes a full MR x NR tile of C in registers, streaming an MR-tall sliver of A and an NR-wide
//   sliver of B (the latter stays in L1).
// - Parallelism is over blocks of C: the blocks of MC rows (and, when there are too few of them to keep
//   every worker busy, slices of the NC columns) are spread over the pool by binary splitting with join().
//   Each block is written by exactly one task, so no two tasks touch the same element of C.
// - The inner kernel is chosen at run time for the CPU (AVX2+FMA, or portable C++ that the compiler may
//   auto-vectorise); the library itself is built for the baseline instruction set. The environment
//   variable WEFT_MATMUL_KERNEL=portable|avx2, read once, overrides the choice (a kernel the CPU lacks
//   falls back to the best one it has).
//
// Results: the sum over k is accumulated in a fixed order that depends only on k and the kernel, never
// on the number of workers or on timing, so results are reproducible run to run on the same machine; they
// may differ in the last bits from a naive loop (different order of additions, fused multiply-add).
#pragma once

#include <cstddef>

#include "weft/parallel/fork_join_pool.hpp"

namespace weft {

/// C = alpha * A * B + beta * C (row-major; A m x k, B k x n, C m x n; leading dimensions lda >= k,
/// ldb >= n, ldc >= n). As in BLAS: when beta == 0, C is not read (NaN or garbage in C is overwritten);
/// when alpha == 0 or k == 0, A and B are not read and C becomes beta * C. Any of m, n, k may be 0 (then the
/// corresponding pointers may be null).
///
/// Runs on `pool` and returns when C is complete: called from outside the pool the caller blocks, from a
/// worker of the pool the worker takes part. Small products (under about half a million multiply-adds),
/// and every product on a one-worker pool, run on the calling thread instead. A and B must not overlap
/// C. Thread safety: concurrent calls are fine as long as they do not write the same C.
/// Throws std::invalid_argument when a leading dimension is too small, std::bad_alloc when the packing
/// buffers cannot be allocated, and BrokenExecutor when the pool has been shut down and the product is
/// large enough to need it; C is unchanged in all three cases.
void matmul(ForkJoinPool& pool, std::size_t m, std::size_t n, std::size_t k, double alpha, const double* a,
            std::size_t lda, const double* b, std::size_t ldb, double beta, double* c, std::size_t ldc);

/// Single precision; otherwise the same as the double overload.
void matmul(ForkJoinPool& pool, std::size_t m, std::size_t n, std::size_t k, float alpha, const float* a,
            std::size_t lda, const float* b, std::size_t ldb, float beta, float* c, std::size_t ldc);

/// matmul() on current_or_default_pool().
inline void matmul(std::size_t m, std::size_t n, std::size_t k, double alpha, const double* a, std::size_t lda,
                   const double* b, std::size_t ldb, double beta, double* c, std::size_t ldc) {
  matmul(current_or_default_pool(), m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
}

/// matmul() on current_or_default_pool().
inline void matmul(std::size_t m, std::size_t n, std::size_t k, float alpha, const float* a, std::size_t lda,
                   const float* b, std::size_t ldb, float beta, float* c, std::size_t ldc) {
  matmul(current_or_default_pool(), m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
}

namespace detail {

/// The inner kernels matmul() can use.
enum class MatmulKernel : int {
  automatic = 0,  ///< the best one this CPU supports (or WEFT_MATMUL_KERNEL's choice)
  portable = 1,   ///< plain C++, any x86-64 (or other) CPU
  avx2 = 2,       ///< AVX2 + FMA, 256-bit vectors (x86-64)
};

/// True when the CPU can run `kernel` (automatic and portable: always).
bool matmul_kernel_supported(MatmulKernel kernel) noexcept;

/// Forces the kernel for later calls, process-wide (for tests and benchmarks); automatic restores the
/// default. A kernel the CPU does not support is ignored (the best supported one is used). Calls already
/// running keep the kernel they started with.
void set_matmul_kernel(MatmulKernel kernel) noexcept;

/// The kernel the next call will use (never automatic).
MatmulKernel matmul_kernel() noexcept;

}  // namespace detail
}  // namespace weft
