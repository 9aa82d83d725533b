// bench/dgemm/common.hpp — what the contenders of the matrix-multiplication benchmark share.
//
// C = 1 * A * B + 0 * C for square n x n row-major matrices (leading dimension n), in double (case dgemm)
// and float (case sgemm). A and B hold uniform values in [-1, 1) from std::mt19937 with a fixed seed, made
// once. Before each run C is filled with 7 (untimed), so a contender that ignored beta = 0 would fail the
// check; after it, 64 entries of C at fixed pseudo-random places are compared with a dot product in long
// double, allowed an error of 2 n epsilon times sum_k |a_ik b_kj|. The rate is 2 n^3 floating-point
// operations over the time, in GFLOP/s.
#pragma once

#include <cmath>
#include <cstddef>
#include <cstdint>
#include <limits>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "harness.hpp"

namespace bench {

template <class T>
struct GemmData {
  std::size_t n = 0;
  std::size_t threads = 2;
  std::vector<T> a, b, c;

  GemmData(std::size_t size, std::size_t thread_count, unsigned seed) : n(size), threads(thread_count) {
    std::mt19937 gen(seed);
    std::uniform_real_distribution<T> dist(T(-1), T(1));
    a.resize(n * n);
    b.resize(n * n);
    c.resize(n * n);
    for (auto& x : a) x = dist(gen);
    for (auto& x : b) x = dist(gen);
  }

  void prepare() { std::fill(c.begin(), c.end(), T(7)); }

  std::string check() const {
    std::mt19937 gen(12345);
    for (int s = 0; s < 64; ++s) {
      const std::size_t i = gen() % n, j = gen() % n;
      long double ref = 0, mag = 0;
      for (std::size_t k = 0; k < n; ++k) {
        const long double p = static_cast<long double>(a[i * n + k]) * b[k * n + j];
        ref += p;
        mag += std::fabs(p);
      }
      const long double tol = 2.0L * n * std::numeric_limits<T>::epsilon() * mag + 1e-30L;
      if (!(std::fabs(static_cast<long double>(c[i * n + j]) - ref) <= tol)) {
        return "C[" + std::to_string(i) + "][" + std::to_string(j) + "] = " + std::to_string(c[i * n + j]) +
               ", expected " + std::to_string(static_cast<double>(ref));
      }
    }
    return {};
  }
};

template <class T>
using GemmPtr = std::shared_ptr<GemmData<T>>;

struct GemmInputs {
  GemmPtr<double> d;
  GemmPtr<float> s;
};

void add_weft(std::vector<Case>& cases, const GemmInputs& in);
void add_openblas(std::vector<Case>& cases, const GemmInputs& in);
void add_omp(std::vector<Case>& cases, const GemmInputs& in);

std::string openblas_version();

}  // namespace bench
