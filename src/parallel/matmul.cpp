// Blocked, packed GEMM on a ForkJoinPool (see include/weft/parallel/matmul.hpp for the contract).
//
// Loop nest for one call (Goto & van de Geijn, ACM TOMS 2008; the loop names are BLIS's):
//
//   for jc in steps of NC over the columns of C           (sequential)
//     for pc in steps of KC over k                        (sequential: each step adds into C)
//       pack B[pc:pc+kc, jc:jc+nc] into Bp                (parallel over NR-wide slivers; then a barrier)
//       for each block (ic, jr-slice) of C[:, jc:jc+nc]   (parallel: binary splitting with join)
//         pack A[ic:ic+mc, pc:pc+kc] into this worker's Ap
//         for jr over the slice's NR-wide slivers of Bp   (the sliver stays in L1)
//           for ir over the MR-tall slivers of Ap         (Ap stays in L2)
//             C[ir.., jr..] = alpha * Ap_ir * Bp_jr + beta' * C[ir.., jr..]    (the micro-kernel)
//
// beta' is the caller's beta for the first pc step and 1 afterwards, so C is read only when beta != 0.
// Every element of C is written by one task per pc step, and the pc steps are separated by the join
// barriers, so tasks never share an element of C. Packing pads partial slivers with zeros; a partial tile
// of C is copied into a small buffer, computed there and copied back, so the micro-kernels only ever see full
// MR x NR tiles.
//
// Buffers: one allocation per call holds Bp and one Ap per worker, indexed by the worker's index in the
// pool. A worker holds its Ap only while it runs one block, which never waits, so no other block can run
// on that worker in between.
//
// The micro-kernels are compiled with function-level target attributes; the rest of this file is built
// for the baseline instruction set, and the kernel is chosen at run time from what the CPU reports.
#include "weft/parallel/matmul.hpp"

#include <algorithm>
#include <atomic>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <new>
#include <stdexcept>
#include <string_view>
#include <type_traits>

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#define WEFT_MATMUL_X86 1
#else
#define WEFT_MATMUL_X86 0
#endif

namespace weft {
namespace {

using detail::MatmulKernel;

template <class T>
using KernelFn = void (*)(std::size_t kc, const T* a, const T* b, T* c, std::size_t ldc, T alpha, T beta);

// ---------------------------------------------------------------------------------------------------------
// Micro-kernels. Contract: a is an MR x kc sliver of A packed column by column (a[p * MR + i] = A[i][p]),
// b a kc x NR sliver of B packed row by row (b[p * NR + j] = B[p][j]), both 64-byte aligned; c points at an
// MR x NR tile of C with row stride ldc. They compute C = alpha * a * b + beta * C, and read C only when
// beta != 0.

/// Portable kernel: plain loops the compiler may vectorise for the baseline instruction set.
template <class T, int MR, int NR>
void kernel_portable(std::size_t kc, const T* a, const T* b, T* c, std::size_t ldc, T alpha, T beta) {
  T acc[MR][NR] = {};
  for (std::size_t p = 0; p < kc; ++p) {
    const T* ap = a + p * MR;
    const T* bp = b + p * NR;
    for (int i = 0; i < MR; ++i) {
      const T ai = ap[i];
      for (int j = 0; j < NR; ++j) acc[i][j] += ai * bp[j];
    }
  }
  for (int i = 0; i < MR; ++i) {
    T* ci = c + static_cast<std::size_t>(i) * ldc;
    if (beta == T(0)) {
      for (int j = 0; j < NR; ++j) ci[j] = alpha * acc[i][j];
    } else {
      for (int j = 0; j < NR; ++j) ci[j] = alpha * acc[i][j] + beta * ci[j];
    }
  }
}

#if WEFT_MATMUL_X86

#define WEFT_AVX2_INLINE __attribute__((target("avx2,fma"), always_inline)) inline

// The AVX2 vector operations the kernel needs, for double (4 lanes) and float (8 lanes).
template <class T>
struct Avx2;

template <>
struct Avx2<double> {
  using V = __m256d;
  static constexpr int kLanes = 4;
  WEFT_AVX2_INLINE static V zero() { return _mm256_setzero_pd(); }
  WEFT_AVX2_INLINE static V set1(double x) { return _mm256_set1_pd(x); }
  WEFT_AVX2_INLINE static V load_aligned(const double* p) { return _mm256_load_pd(p); }
  WEFT_AVX2_INLINE static V load(const double* p) { return _mm256_loadu_pd(p); }
  WEFT_AVX2_INLINE static void store(double* p, V v) { _mm256_storeu_pd(p, v); }
  WEFT_AVX2_INLINE static V broadcast(const double* p) { return _mm256_broadcast_sd(p); }
  WEFT_AVX2_INLINE static V mul(V a, V b) { return _mm256_mul_pd(a, b); }
  WEFT_AVX2_INLINE static V fmadd(V a, V b, V c) { return _mm256_fmadd_pd(a, b, c); }
};

template <>
struct Avx2<float> {
  using V = __m256;
  static constexpr int kLanes = 8;
  WEFT_AVX2_INLINE static V zero() { return _mm256_setzero_ps(); }
  WEFT_AVX2_INLINE static V set1(float x) { return _mm256_set1_ps(x); }
  WEFT_AVX2_INLINE static V load_aligned(const float* p) { return _mm256_load_ps(p); }
  WEFT_AVX2_INLINE static V load(const float* p) { return _mm256_loadu_ps(p); }
  WEFT_AVX2_INLINE static void store(float* p, V v) { _mm256_storeu_ps(p, v); }
  WEFT_AVX2_INLINE static V broadcast(const float* p) { return _mm256_broadcast_ss(p); }
  WEFT_AVX2_INLINE static V mul(V a, V b) { return _mm256_mul_ps(a, b); }
  WEFT_AVX2_INLINE static V fmadd(V a, V b, V c) { return _mm256_fmadd_ps(a, b, c); }
};

// Asks for the C tile's rows (first and last element: a row may straddle two cache lines) while the k loop
// runs, so the loads at the end do not stall on memory.
template <class T, int MR, int NR>
WEFT_AVX2_INLINE void prefetch_tile(const T* c, std::size_t ldc) {
  for (int i = 0; i < MR; ++i) {
    _mm_prefetch(reinterpret_cast<const char*>(c + i * ldc), _MM_HINT_T0);
    _mm_prefetch(reinterpret_cast<const char*>(c + i * ldc + NR - 1), _MM_HINT_T0);
  }
}

// AVX2 + FMA: a 6 x (2 vectors) tile — 6 x 8 for double, 6 x 16 for float — in 12 ymm accumulators, plus
// 2 registers for the row of B and 1 for the broadcast element of A: 15 of the 16 ymm registers. The
// accumulator array is indexed only by constants after full unrolling, so it lives in registers.
template <class T>
__attribute__((target("avx2,fma"))) void kernel_avx2(std::size_t kc, const T* a, const T* b, T* c, std::size_t ldc,
                                                     T alpha, T beta) {
  using X = Avx2<T>;
  constexpr int kRows = 6;
  constexpr int kWidth = 2 * X::kLanes;
  typename X::V acc[kRows][2];
#pragma GCC unroll 6
  for (int i = 0; i < kRows; ++i) acc[i][0] = acc[i][1] = X::zero();
  prefetch_tile<T, kRows, kWidth>(c, ldc);
#pragma GCC unroll 4
  for (std::size_t p = 0; p < kc; ++p) {
    const typename X::V b0 = X::load_aligned(b);
    const typename X::V b1 = X::load_aligned(b + X::kLanes);
#pragma GCC unroll 6
    for (int i = 0; i < kRows; ++i) {
      const typename X::V ai = X::broadcast(a + i);
      acc[i][0] = X::fmadd(ai, b0, acc[i][0]);
      acc[i][1] = X::fmadd(ai, b1, acc[i][1]);
    }
    a += kRows;
    b += kWidth;
  }
  // c = alpha * acc + beta * c, or alpha * acc without reading c (beta == 0: C may hold NaN).
  const typename X::V va = X::set1(alpha);
  const typename X::V vb = X::set1(beta);
  const bool read_c = beta != T(0);
#pragma GCC unroll 6
  for (int i = 0; i < kRows; ++i) {
#pragma GCC unroll 2
    for (int h = 0; h < 2; ++h) {
      T* ci = c + static_cast<std::size_t>(i) * ldc + h * X::kLanes;
      typename X::V v = X::mul(va, acc[i][h]);
      if (read_c) v = X::fmadd(vb, X::load(ci), v);
      X::store(ci, v);
    }
  }
}

#endif  // WEFT_MATMUL_X86

// ---------------------------------------------------------------------------------------------------------
// Packing.

/// Packs rows [0, mc) x columns [0, kc) of A (at `a`, row stride lda) into MR-tall slivers, zero-padding the
/// last sliver's missing rows.
template <class T, int MR>
void pack_a(std::size_t mc, std::size_t kc, const T* a, std::size_t lda, T* out) {
  for (std::size_t i0 = 0; i0 < mc; i0 += MR, out += MR * kc) {
    const std::size_t rows = std::min<std::size_t>(MR, mc - i0);
    if (rows == MR) {
      const T* src[MR];
      for (int i = 0; i < MR; ++i) src[i] = a + (i0 + i) * lda;
      for (std::size_t p = 0; p < kc; ++p) {
        for (int i = 0; i < MR; ++i) out[p * MR + i] = src[i][p];
      }
    } else {
      for (std::size_t p = 0; p < kc; ++p) {
        for (std::size_t i = 0; i < MR; ++i) out[p * MR + i] = i < rows ? a[(i0 + i) * lda + p] : T(0);
      }
    }
  }
}

/// Packs NR-wide slivers [s_lo, s_hi) of rows [0, kc) x columns [0, nc) of B (at `b`, row stride ldb),
/// zero-padding the last sliver's missing columns. Sliver s lands at out + s * NR * kc.
template <class T, int NR>
void pack_b(std::size_t s_lo, std::size_t s_hi, std::size_t kc, std::size_t nc, const T* b, std::size_t ldb,
            T* out) {
  for (std::size_t s = s_lo; s < s_hi; ++s) {
    const std::size_t j0 = s * NR;
    const std::size_t cols = std::min<std::size_t>(NR, nc - j0);
    T* dst = out + s * NR * kc;
    const T* src = b + j0;
    if (cols == NR) {
      for (std::size_t p = 0; p < kc; ++p) std::memcpy(dst + p * NR, src + p * ldb, NR * sizeof(T));
    } else {
      for (std::size_t p = 0; p < kc; ++p) {
        for (std::size_t j = 0; j < NR; ++j) dst[p * NR + j] = j < cols ? src[p * ldb + j] : T(0);
      }
    }
  }
}

// ---------------------------------------------------------------------------------------------------------
// Driver.

/// C = beta * C (alpha == 0 or k == 0); beta == 0 writes zeros without reading C.
template <class T>
void scale_c(std::size_t m, std::size_t n, T beta, T* c, std::size_t ldc) {
  if (beta == T(1)) return;
  for (std::size_t i = 0; i < m; ++i) {
    T* row = c + i * ldc;
    if (beta == T(0)) {
      std::fill(row, row + n, T(0));
    } else {
      for (std::size_t j = 0; j < n; ++j) row[j] *= beta;
    }
  }
}

constexpr std::size_t ceil_div(std::size_t a, std::size_t b) { return (a + b - 1) / b; }
constexpr std::size_t round_up(std::size_t a, std::size_t b) { return ceil_div(a, b) * b; }

/// Runs f(lo, hi) over pieces of [0, count) of at most `grain` items: split in halves with pool.join when
/// `parallel`, else one loop on the calling thread.
template <class F>
void split_range(ForkJoinPool& pool, bool parallel, std::size_t lo, std::size_t hi, std::size_t grain, const F& f) {
  if (!parallel) {
    for (std::size_t i = lo; i < hi; i += grain) f(i, std::min(hi, i + grain));
    return;
  }
  if (hi - lo <= grain) {
    f(lo, hi);
    return;
  }
  const std::size_t mid = lo + ceil_div(hi - lo, 2 * grain) * grain;  // halves, on a grain boundary
  pool.join([&] { split_range(pool, true, lo, mid, grain, f); }, [&] { split_range(pool, true, mid, hi, grain, f); });
}

/// Cache blocking for one kernel (upper bounds; the driver balances them to the problem).
struct Blocking {
  std::size_t mc;  ///< rows of an A block (MC x KC packed ≈ a quarter of L2)
  std::size_t kc;  ///< depth (an NR x KC sliver of B and an MR x KC sliver of A fit L1 together)
  std::size_t nc;  ///< columns of a B panel (KC x NC packed: a few MiB of the shared L3)
};

/// Products with fewer multiply-adds than this run on the calling thread.
constexpr double kParallelThreshold = 1 << 19;

/// Deleter for the per-call buffer.
struct AlignedFree {
  void operator()(void* p) const noexcept { ::operator delete(p, std::align_val_t{64}); }
};

template <class T, int MR, int NR>
void gemm(ForkJoinPool& pool, KernelFn<T> kernel, const Blocking& blk, std::size_t m, std::size_t n,
          std::size_t k, T alpha, const T* a, std::size_t lda, const T* b, std::size_t ldb, T beta, T* c,
          std::size_t ldc) {
  // Balanced block sizes: split each dimension into the fewest blocks within the bound, all about equal
  // (no thin last block). kc needs no rounding; nc rounds up to whole slivers.
  const std::size_t kb = ceil_div(k, blk.kc);
  const std::size_t kc_max = ceil_div(k, kb);
  const std::size_t nb = ceil_div(n, blk.nc);
  const std::size_t nc_max = round_up(ceil_div(n, nb), NR);

  const std::size_t threads = pool.threads();
  const bool parallel =
      threads > 1 && static_cast<double>(m) * static_cast<double>(n) * static_cast<double>(k) >= kParallelThreshold;

  // Blocks of C per (jc, pc) step: row blocks of mc rows, times slices of the panel's slivers when there
  // are too few row blocks to keep every worker busy. With enough row blocks their count is rounded up to
  // a multiple of the workers, so equal blocks share out evenly.
  std::size_t row_blocks = ceil_div(m, blk.mc);
  if (parallel && row_blocks >= 2 * threads) row_blocks = round_up(row_blocks, threads);
  const std::size_t mc = round_up(ceil_div(m, row_blocks), MR);
  row_blocks = ceil_div(m, mc);
  const std::size_t slivers_max = nc_max / NR;
  std::size_t slices = 1;
  if (parallel && row_blocks < 2 * threads) slices = std::min(slivers_max, ceil_div(2 * threads, row_blocks));
  const std::size_t slivers_per_slice = ceil_div(slivers_max, slices);

  // One allocation: Bp, then one Ap per worker (or one for the calling thread).
  const std::size_t bp_size = round_up(kc_max * nc_max, 64 / sizeof(T));
  const std::size_t ap_size = round_up(mc * kc_max, 64 / sizeof(T));
  const std::size_t workers = parallel ? threads : 1;
  std::unique_ptr<T, AlignedFree> buffer(
      static_cast<T*>(::operator new((bp_size + workers * ap_size) * sizeof(T), std::align_val_t{64})));
  T* const bp = buffer.get();

  const auto body = [&] {
    for (std::size_t jc = 0; jc < n; jc += nc_max) {
      const std::size_t nc = std::min(nc_max, n - jc);
      const std::size_t slivers = ceil_div(nc, NR);
      for (std::size_t pc = 0; pc < k; pc += kc_max) {
        const std::size_t kc = std::min(kc_max, k - pc);
        const T beta_step = pc == 0 ? beta : T(1);
        const T* b_panel = b + pc * ldb + jc;

        split_range(pool, parallel, 0, slivers, 16, [&](std::size_t lo, std::size_t hi) {
          pack_b<T, NR>(lo, hi, kc, nc, b_panel, ldb, bp);
        });

        const std::size_t tasks = row_blocks * slices;
        split_range(pool, parallel, 0, tasks, 1, [&](std::size_t t, std::size_t) {
          const std::size_t rb = t / slices;
          const std::size_t slice = t % slices;
          const std::size_t ic = rb * mc;
          if (ic >= m) return;
          const std::size_t s_lo = slice * slivers_per_slice;
          const std::size_t s_hi = std::min(slivers, s_lo + slivers_per_slice);
          if (s_lo >= s_hi) return;
          const std::size_t mcb = std::min(mc, m - ic);
          const int worker = parallel ? ForkJoinPool::current_worker_index() : 0;
          T* ap = bp + bp_size + static_cast<std::size_t>(worker) * ap_size;
          pack_a<T, MR>(mcb, kc, a + ic * lda + pc, lda, ap);

          for (std::size_t s = s_lo; s < s_hi; ++s) {
            const std::size_t j0 = s * NR;
            const std::size_t cols = std::min<std::size_t>(NR, nc - j0);
            const T* b_sliver = bp + s * NR * kc;
            for (std::size_t i0 = 0; i0 < mcb; i0 += MR) {
              const std::size_t rows = std::min<std::size_t>(MR, mcb - i0);
              const T* a_sliver = ap + i0 * kc;
              T* ct = c + (ic + i0) * ldc + jc + j0;
              if (rows == MR && cols == NR) {
                kernel(kc, a_sliver, b_sliver, ct, ldc, alpha, beta_step);
              } else {
                // A partial tile goes through a full one, computed by the same kernel with the same
                // arithmetic, so its elements get the same bits as they would in a full tile.
                alignas(64) T tile[MR * NR] = {};
                if (beta_step != T(0)) {
                  for (std::size_t i = 0; i < rows; ++i) std::copy_n(ct + i * ldc, cols, tile + i * NR);
                }
                kernel(kc, a_sliver, b_sliver, tile, NR, alpha, beta_step);
                for (std::size_t i = 0; i < rows; ++i) std::copy_n(tile + i * NR, cols, ct + i * ldc);
              }
            }
          }
        });
      }
    }
  };

  if (parallel) {
    pool.invoke(body);  // on a worker of this pool: a plain call
  } else {
    body();
  }
}

// ---------------------------------------------------------------------------------------------------------
// Kernel selection.

std::atomic<int> g_forced{static_cast<int>(MatmulKernel::automatic)};

MatmulKernel from_environment() noexcept {
  static const MatmulKernel chosen = [] {
    const char* v = std::getenv("WEFT_MATMUL_KERNEL");
    if (v == nullptr) return MatmulKernel::automatic;
    const std::string_view s(v);
    if (s == "portable") return MatmulKernel::portable;
    if (s == "avx2") return MatmulKernel::avx2;
    return MatmulKernel::automatic;
  }();
  return chosen;
}

MatmulKernel best_supported() noexcept {
  if (detail::matmul_kernel_supported(MatmulKernel::avx2)) return MatmulKernel::avx2;
  return MatmulKernel::portable;
}

MatmulKernel resolve() noexcept {
  auto kernel = static_cast<MatmulKernel>(g_forced.load(std::memory_order_relaxed));
  if (kernel == MatmulKernel::automatic) kernel = from_environment();
  if (kernel == MatmulKernel::automatic || !detail::matmul_kernel_supported(kernel)) kernel = best_supported();
  return kernel;
}

template <class T>
void check_and_run(ForkJoinPool& pool, std::size_t m, std::size_t n, std::size_t k, T alpha, const T* a,
                   std::size_t lda, const T* b, std::size_t ldb, T beta, T* c, std::size_t ldc) {
  if (m == 0 || n == 0) return;
  if (ldc < n) throw std::invalid_argument("weft::matmul: ldc is smaller than n");
  if (alpha == T(0) || k == 0) {
    scale_c(m, n, beta, c, ldc);
    return;
  }
  if (lda < k) throw std::invalid_argument("weft::matmul: lda is smaller than k");
  if (ldb < n) throw std::invalid_argument("weft::matmul: ldb is smaller than n");

  constexpr bool is_double = std::is_same_v<T, double>;
  switch (resolve()) {
#if WEFT_MATMUL_X86
    case MatmulKernel::avx2:
      if constexpr (is_double) {
        gemm<double, 6, 8>(pool, &kernel_avx2<double>, Blocking{120, 256, 2048}, m, n, k, alpha, a, lda, b, ldb,
                           beta, c, ldc);
      } else {
        gemm<float, 6, 16>(pool, &kernel_avx2<float>, Blocking{240, 256, 4096}, m, n, k, alpha, a, lda, b, ldb,
                           beta, c, ldc);
      }
      return;
#endif
    default:
      if constexpr (is_double) {
        gemm<double, 4, 4>(pool, &kernel_portable<double, 4, 4>, Blocking{128, 256, 2048}, m, n, k, alpha, a,
                           lda, b, ldb, beta, c, ldc);
      } else {
        gemm<float, 4, 8>(pool, &kernel_portable<float, 4, 8>, Blocking{128, 256, 4096}, m, n, k, alpha, a,
                           lda, b, ldb, beta, c, ldc);
      }
      return;
  }
}

}  // namespace

void matmul(ForkJoinPool& pool, std::size_t m, std::size_t n, std::size_t k, double alpha, const double* a,
            std::size_t lda, const double* b, std::size_t ldb, double beta, double* c, std::size_t ldc) {
  check_and_run<double>(pool, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
}

void matmul(ForkJoinPool& pool, std::size_t m, std::size_t n, std::size_t k, float alpha, const float* a,
            std::size_t lda, const float* b, std::size_t ldb, float beta, float* c, std::size_t ldc) {
  check_and_run<float>(pool, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
}

namespace detail {

bool matmul_kernel_supported(MatmulKernel kernel) noexcept {
  switch (kernel) {
    case MatmulKernel::automatic:
    case MatmulKernel::portable:
      return true;
#if WEFT_MATMUL_X86
    case MatmulKernel::avx2:
      return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
#endif
    default:
      return false;
  }
}

void set_matmul_kernel(MatmulKernel kernel) noexcept {
  g_forced.store(static_cast<int>(kernel), std::memory_order_relaxed);
}

MatmulKernel matmul_kernel() noexcept { return resolve(); }

}  // namespace detail
}  // namespace weft
