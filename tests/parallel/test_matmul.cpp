// matmul: every result is checked against a naive triple loop (accumulated in long double), with an error
// bound that grows with k, on pools of 1, 2 and 8 workers and with every kernel the CPU can run (the
// portable one always).
#include "weft/parallel/matmul.hpp"

#include <gtest/gtest.h>

#include <cmath>
#include <cstddef>
#include <limits>
#include <memory>
#include <random>
#include <stdexcept>
#include <string>
#include <vector>

#include "weft/parallel/fork_join_pool.hpp"

namespace weft {
namespace {

using detail::MatmulKernel;

/// Forces a kernel for the lifetime of the object.
class ForceKernel {
 public:
  explicit ForceKernel(MatmulKernel k) { detail::set_matmul_kernel(k); }
  ~ForceKernel() { detail::set_matmul_kernel(MatmulKernel::automatic); }
  ForceKernel(const ForceKernel&) = delete;
  ForceKernel& operator=(const ForceKernel&) = delete;
};

std::vector<MatmulKernel> kernels() {
  std::vector<MatmulKernel> out{MatmulKernel::portable};
  if (detail::matmul_kernel_supported(MatmulKernel::avx2)) out.push_back(MatmulKernel::avx2);
  return out;
}

const char* kernel_name(MatmulKernel k) {
  switch (k) {
    case MatmulKernel::portable: return "portable";
    case MatmulKernel::avx2: return "avx2";
    default: return "automatic";
  }
}

/// A problem with its own storage: matrices with leading dimensions possibly larger than their widths.
/// The padding of C holds a sentinel that must survive.
template <class T>
struct Problem {
  std::size_t m, n, k, lda, ldb, ldc;
  std::vector<T> a, b, c;
  static constexpr T kSentinel = T(12345);

  Problem(std::size_t m_, std::size_t n_, std::size_t k_, std::size_t pad_a, std::size_t pad_b, std::size_t pad_c,
          unsigned seed, bool nan_c = false)
      : m(m_), n(n_), k(k_), lda(k_ + pad_a), ldb(n_ + pad_b), ldc(n_ + pad_c) {
    std::mt19937 rng(seed);
    std::uniform_real_distribution<double> dist(-1.0, 1.0);
    a.assign(m * lda, T(0));
    b.assign(k * ldb, T(0));
    c.assign(m * ldc, kSentinel);
    for (std::size_t i = 0; i < m; ++i)
      for (std::size_t p = 0; p < k; ++p) a[i * lda + p] = static_cast<T>(dist(rng));
    for (std::size_t p = 0; p < k; ++p)
      for (std::size_t j = 0; j < n; ++j) b[p * ldb + j] = static_cast<T>(dist(rng));
    for (std::size_t i = 0; i < m; ++i)
      for (std::size_t j = 0; j < n; ++j)
        c[i * ldc + j] = nan_c ? std::numeric_limits<T>::quiet_NaN() : static_cast<T>(dist(rng));
  }

  /// alpha * A * B + beta * C0 (C0 = this->c) from a naive triple loop, with the error each element may
  /// carry: a few units of rounding per term of the sum.
  struct Expected {
    std::vector<long double> value, tolerance;
  };

  Expected expect(T alpha, T beta) const {
    const long double eps = std::numeric_limits<T>::epsilon();
    Expected e;
    e.value.resize(m * n);
    e.tolerance.resize(m * n);
    for (std::size_t i = 0; i < m; ++i) {
      for (std::size_t j = 0; j < n; ++j) {
        long double sum = 0, mag = 0;
        for (std::size_t p = 0; p < k; ++p) {
          const long double prod = static_cast<long double>(a[i * lda + p]) * b[p * ldb + j];
          sum += prod;
          mag += std::fabs(prod);
        }
        const T c0 = c[i * ldc + j];
        long double value = static_cast<long double>(alpha) * sum;
        long double scale = std::fabs(static_cast<long double>(alpha)) * mag;
        if (beta != T(0)) {  // beta == 0: C0 (perhaps NaN) plays no part
          value += static_cast<long double>(beta) * c0;
          scale += std::fabs(static_cast<long double>(beta) * c0);
        }
        e.value[i * n + j] = value;
        e.tolerance[i * n + j] = 2 * (static_cast<long double>(k) + 2) * eps * scale + std::numeric_limits<T>::min();
      }
    }
    return e;
  }

  /// Checks `out` (C after the call) against `e`, and that the padding of C was left alone.
  void check(const std::vector<T>& out, const Expected& e) const {
    ASSERT_EQ(out.size(), c.size());
    std::size_t bad = 0;
    for (std::size_t i = 0; i < m; ++i) {
      for (std::size_t j = 0; j < n; ++j) {
        const long double got = out[i * ldc + j];
        const long double want = e.value[i * n + j];
        const long double tol = e.tolerance[i * n + j];
        if (!(std::fabs(got - want) <= tol) && ++bad <= 5) {  // the negation also catches NaN
          ADD_FAILURE() << "C[" << i << "][" << j << "] = " << static_cast<double>(got) << ", expected "
                        << static_cast<double>(want) << " (tolerance " << static_cast<double>(tol) << ")";
        }
      }
      for (std::size_t j = n; j < ldc; ++j) {
        if (out[i * ldc + j] != kSentinel && ++bad <= 5) {
          ADD_FAILURE() << "padding C[" << i << "][" << j << "] was overwritten";
        }
      }
    }
    EXPECT_EQ(bad, 0u) << "m=" << m << " n=" << n << " k=" << k;
  }

  void check(const std::vector<T>& out, T alpha, T beta) const { check(out, expect(alpha, beta)); }

  std::vector<T> run(ForkJoinPool& pool, T alpha, T beta) const {
    std::vector<T> out = c;
    matmul(pool, m, n, k, alpha, a.data(), lda, b.data(), ldb, beta, out.data(), ldc);
    return out;
  }
};

struct Shape {
  std::size_t m, n, k;
};

// Empty, one, odd sizes that are not multiples of any tile, tall/skinny both ways, sizes around the tile and
// block boundaries, more than one k block, and one large enough to be split over the workers.
const Shape kShapes[] = {
    {0, 5, 7},    {5, 0, 7},     {5, 7, 0},     {0, 0, 0},     {1, 1, 1},   {2, 3, 1},    {37, 53, 29},
    {6, 8, 256},  {7, 9, 257},   {5, 17, 3},    {1, 300, 200}, {300, 1, 200}, {3, 2, 700}, {1000, 3, 5},
    {4, 1000, 6}, {64, 64, 64},  {121, 33, 519}, {300, 257, 513}};

const std::size_t kThreads[] = {1, 2, 8};

/// Pools of 1, 2 and 8 workers.
std::vector<std::unique_ptr<ForkJoinPool>> make_pools() {
  std::vector<std::unique_ptr<ForkJoinPool>> pools;
  for (std::size_t threads : kThreads) {
    pools.push_back(std::make_unique<ForkJoinPool>(ForkJoinPoolOptions{.threads = threads, .name = "matmul"}));
  }
  return pools;
}

/// Every shape, with every kernel on every pool, against one reference per shape.
template <class T>
void check_shapes(T alpha, T beta, bool nan_c, std::size_t pad) {
  const auto pools = make_pools();
  unsigned seed = 1;
  for (const Shape& s : kShapes) {
    Problem<T> p(s.m, s.n, s.k, pad, pad * 2 + 1, pad * 3, seed++, nan_c);
    const auto expected = p.expect(alpha, beta);
    for (MatmulKernel kernel : kernels()) {
      ForceKernel force(kernel);
      for (const auto& pool : pools) {
        SCOPED_TRACE("m=" + std::to_string(s.m) + " n=" + std::to_string(s.n) + " k=" + std::to_string(s.k) +
                     ", kernel " + kernel_name(kernel) + ", " + std::to_string(pool->threads()) + " workers");
        p.check(p.run(*pool, alpha, beta), expected);
      }
    }
  }
}

TEST(Matmul, ShapesDouble) { check_shapes<double>(1.0, 0.0, false, 0); }
TEST(Matmul, ShapesFloat) { check_shapes<float>(1.0f, 0.0f, false, 0); }
TEST(Matmul, AlphaBetaDouble) {
  check_shapes<double>(-1.5, 0.75, false, 0);
  check_shapes<double>(2.0, 1.0, false, 0);
}
TEST(Matmul, AlphaBetaFloat) {
  check_shapes<float>(-1.5f, 0.75f, false, 0);
  check_shapes<float>(2.0f, 1.0f, false, 0);
}
TEST(Matmul, LeadingDimensionsDouble) {
  check_shapes<double>(0.5, -2.0, false, 3);
  check_shapes<double>(1.0, 0.0, false, 17);
}
TEST(Matmul, LeadingDimensionsFloat) {
  check_shapes<float>(0.5f, -2.0f, false, 3);
  check_shapes<float>(1.0f, 0.0f, false, 17);
}
TEST(Matmul, BetaZeroOverwritesNaNDouble) { check_shapes<double>(-3.0, 0.0, true, 2); }
TEST(Matmul, BetaZeroOverwritesNaNFloat) { check_shapes<float>(-3.0f, 0.0f, true, 2); }

// alpha == 0 or k == 0: C = beta * C, and A, B are not read (null pointers are fine).
template <class T>
void check_scale_only() {
  for (const auto& pool : make_pools()) {
    SCOPED_TRACE(std::to_string(pool->threads()) + " workers");
    const T* none = nullptr;
    Problem<T> p(13, 9, 0, 0, 0, 2, 7);
    std::vector<T> out = p.c;
    matmul(*pool, p.m, p.n, std::size_t{0}, T(1), none, 1, none, p.ldb, T(3), out.data(), p.ldc);
    p.check(out, T(1), T(3));

    Problem<T> q(13, 9, 5, 0, 0, 2, 8);
    out = q.c;
    matmul(*pool, q.m, q.n, q.k, T(0), none, q.lda, none, q.ldb, T(-2), out.data(), q.ldc);
    q.check(out, T(0), T(-2));

    Problem<T> z(13, 9, 5, 0, 0, 2, 9, /*nan_c=*/true);
    out = z.c;
    matmul(*pool, z.m, z.n, z.k, T(0), z.a.data(), z.lda, z.b.data(), z.ldb, T(0), out.data(), z.ldc);
    z.check(out, T(0), T(0));  // all zeros: the NaNs are gone
  }
}

TEST(Matmul, AlphaZeroOrEmptyKOnlyScalesC) {
  check_scale_only<double>();
  check_scale_only<float>();
}

// The order of the additions depends only on k and the kernel: any number of workers gives the same bits,
// although the blocks of C (and so which tiles are partial) differ with the number of workers.
TEST(Matmul, SameBitsOnAnyNumberOfWorkers) {
  for (MatmulKernel kernel : kernels()) {
    ForceKernel force(kernel);
    SCOPED_TRACE(kernel_name(kernel));
    Problem<double> p(500, 70, 300, 1, 0, 4, 11);
    ForkJoinPool one(std::size_t{1});
    const std::vector<double> expect = p.run(one, 1.25, -0.5);
    p.check(expect, 1.25, -0.5);
    for (std::size_t threads : {std::size_t{2}, std::size_t{3}, std::size_t{8}}) {
      ForkJoinPool pool(threads);
      EXPECT_EQ(p.run(pool, 1.25, -0.5), expect) << threads << " workers";
    }
  }
}

TEST(Matmul, RejectsSmallLeadingDimensions) {
  ForkJoinPool pool(std::size_t{2});
  std::vector<double> a(16, 1.0), b(16, 1.0), c(16, 7.0);
  EXPECT_THROW(matmul(pool, 4, 4, 4, 1.0, a.data(), 3, b.data(), 4, 0.0, c.data(), 4), std::invalid_argument);
  EXPECT_THROW(matmul(pool, 4, 4, 4, 1.0, a.data(), 4, b.data(), 3, 0.0, c.data(), 4), std::invalid_argument);
  EXPECT_THROW(matmul(pool, 4, 4, 4, 1.0, a.data(), 4, b.data(), 4, 0.0, c.data(), 3), std::invalid_argument);
  EXPECT_EQ(c, std::vector<double>(16, 7.0));  // unchanged
}

// From inside a pool task (the worker helps), several products at once on one pool, and the overloads
// without a pool.
TEST(Matmul, NestedAndConcurrentCalls) {
  for (std::size_t threads : kThreads) {
    SCOPED_TRACE(std::to_string(threads) + " workers");
    ForkJoinPool pool(threads);
    std::vector<Problem<double>> problems;
    for (unsigned i = 0; i < 6; ++i) problems.emplace_back(90 + 13 * i, 120 - 7 * i, 150 + 11 * i, i, i, i, 20 + i);
    std::vector<std::vector<double>> outs(problems.size());
    for (std::size_t i = 0; i < problems.size(); ++i) outs[i] = problems[i].c;
    std::vector<Future<void>> futures;
    for (std::size_t i = 0; i < problems.size(); ++i) {
      futures.push_back(pool.submit([&, i] {
        const Problem<double>& p = problems[i];
        if (i % 2 == 0) {
          matmul(pool, p.m, p.n, p.k, 1.0, p.a.data(), p.lda, p.b.data(), p.ldb, 0.5, outs[i].data(), p.ldc);
        } else {  // current_or_default_pool(): this pool, since we run on one of its workers
          matmul(p.m, p.n, p.k, 1.0, p.a.data(), p.lda, p.b.data(), p.ldb, 0.5, outs[i].data(), p.ldc);
        }
      }));
    }
    for (auto& f : futures) f.get();
    for (std::size_t i = 0; i < problems.size(); ++i) problems[i].check(outs[i], 1.0, 0.5);
  }
}

TEST(Matmul, DefaultPoolOverloads) {
  Problem<float> p(70, 90, 110, 0, 1, 2, 5);
  std::vector<float> out = p.c;
  matmul(p.m, p.n, p.k, 2.0f, p.a.data(), p.lda, p.b.data(), p.ldb, 1.0f, out.data(), p.ldc);
  p.check(out, 2.0f, 1.0f);
}

TEST(Matmul, KernelSelection) {
  EXPECT_TRUE(detail::matmul_kernel_supported(MatmulKernel::portable));
  EXPECT_NE(detail::matmul_kernel(), MatmulKernel::automatic);
  {
    ForceKernel force(MatmulKernel::portable);
    EXPECT_EQ(detail::matmul_kernel(), MatmulKernel::portable);
  }
  for (MatmulKernel k : kernels()) {
    ForceKernel force(k);
    EXPECT_EQ(detail::matmul_kernel(), k);
  }
}

}  // namespace
}  // namespace weft
