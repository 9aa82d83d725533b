// weft/parallel/reduce.hpp — parallel reductions on a ForkJoinPool: an index form (fold chunks of an index
// range, combine the partial results) and iterator forms that mirror std::reduce and std::transform_reduce.
//
//   double sum = weft::parallel_reduce(pool, v.begin(), v.end(), 0.0);
//   double dot = weft::parallel_transform_reduce(pool, a.begin(), a.end(), b.begin(), 0.0,
//                                                std::plus<>(), std::multiplies<>());
//   long hits = weft::parallel_reduce(pool, 0, n, 0L,
//       [&](int lo, int hi, long acc) { for (int i = lo; i < hi; ++i) acc += test(i); return acc; },
//       std::plus<>());
//
// How it works: as parallel_for (parallel_for.hpp), the range is halved with pool.join() down to chunks;
// each chunk is folded sequentially, and the two halves' results are combined in order (left covers the
// lower indices) on the way back up.
//
// Reproducible: the split tree depends only on the number of elements, the grain and pool.threads(), never
// on timing or on which worker ran what, so the same call on a pool of the same size gives the same result
// every run, bit for bit, even for floating point. (It may differ from a sequential fold, and between pools
// of different sizes, by rounding.)
//
// Order: the operation may be non-commutative. Every partial result covers a contiguous run of elements,
// and combine(left, right) always gets the lower run on the left, so an associative operation such as
// string concatenation gives the same result as a left-to-right fold. Associativity is required (results
// are regrouped); commutativity is not.
//
// Chunk size: grain 0 (automatic) means about n / (8 * pool.threads()) elements per chunk, at least 1024
// (detail::kReduceMinGrain) for the iterator forms, whose per-element work is usually tiny (for expensive
// elements, use the index form with a grain), and at least 1 for the index form. The iterator forms always
// use the automatic grain.
//
// Where the work runs: on the pool's workers. Called from outside the pool, the caller blocks until the
// result is ready (pool.invoke); called from one of the pool's jobs, the calling worker takes part and runs
// other jobs while it waits, so reductions nest inside parallel_for bodies and other reductions.
//
// Speed: the iterator forms, for a floating-point T with std::plus (the sum of a range of doubles, a dot
// product), fold each chunk into eight independent accumulators, so a chunk is limited by memory bandwidth
// rather than by the latency of one chain of additions. The grouping is fixed by the chunk's bounds, so the
// result stays reproducible.
#pragma once

#include <concepts>
#include <cstddef>
#include <functional>
#include <iterator>
#include <type_traits>
#include <utility>

#include "weft/parallel/fork_join_pool.hpp"
#include "weft/parallel/parallel_for.hpp"

namespace weft {
namespace detail {

/// Smallest automatic chunk of the iterator forms. A chunk of 1024 doubles sums in well under a
/// microsecond, about what a stolen join costs. Must be at least 3: every chunk then has two elements or
/// more (a range longer than the grain is cut into halves of two or more), so a chunk starts from
/// op(x0, x1) and T need not be constructible from an element.
inline constexpr std::size_t kReduceMinGrain = 1024;
static_assert(kReduceMinGrain >= 3);

/// The result of folding the offsets [lo, hi) with leaf, then combining the halves with combine (left
/// first). Must run on a worker of `pool`.
template <class T, class C, class Leaf, class Combine>
T reduce_split(ForkJoinPool& pool, C lo, C hi, C grain, Leaf& leaf, Combine& combine) {
  if (hi - lo <= grain) return leaf(lo, hi);
  const C mid = lo + (hi - lo) / 2;
  auto [left, right] = pool.join([&]() -> T { return reduce_split<T>(pool, lo, mid, grain, leaf, combine); },
                                 [&]() -> T { return reduce_split<T>(pool, mid, hi, grain, leaf, combine); });
  return static_cast<T>(std::invoke(combine, std::move(left), std::move(right)));
}

/// True when a chunk may be summed with eight accumulators: T is floating point, the operation is
/// std::plus, and the elements are T already (so `a += x` rounds exactly as op(a, x) does).
template <class T, class Op, class E>
inline constexpr bool multi_accumulator_sum =
    std::floating_point<T> && (std::is_same_v<Op, std::plus<>> || std::is_same_v<Op, std::plus<T>>) &&
    std::is_same_v<std::remove_cvref_t<E>, T>;

/// Folds the elements elem(lo) .. elem(hi - 1), hi - lo >= 2, with op, left to right (or, on the
/// multi-accumulator path, in a grouping fixed by lo and hi). elem is called once per element, in order.
template <class T, class C, class Op, class Elem>
T reduce_chunk(Op& op, Elem& elem, C lo, C hi) {
  using E = decltype(elem(lo));
  if constexpr (multi_accumulator_sum<T, Op, E>) {
    if (hi - lo >= 16) {
      T a0 = elem(lo), a1 = elem(lo + 1), a2 = elem(lo + 2), a3 = elem(lo + 3);
      T a4 = elem(lo + 4), a5 = elem(lo + 5), a6 = elem(lo + 6), a7 = elem(lo + 7);
      C k = lo + 8;
      for (; hi - k >= 8; k += 8) {
        a0 += elem(k);
        a1 += elem(k + 1);
        a2 += elem(k + 2);
        a3 += elem(k + 3);
        a4 += elem(k + 4);
        a5 += elem(k + 5);
        a6 += elem(k + 6);
        a7 += elem(k + 7);
      }
      T sum = ((a0 + a1) + (a2 + a3)) + ((a4 + a5) + (a6 + a7));
      for (; k < hi; ++k) sum += elem(k);
      return sum;
    }
  }
  auto&& x0 = elem(lo);  // in order: the elements of a chunk are visited first to last
  auto&& x1 = elem(lo + 1);
  T acc = static_cast<T>(std::invoke(op, std::forward<decltype(x0)>(x0), std::forward<decltype(x1)>(x1)));
  for (C k = lo + 2; k < hi; ++k) acc = static_cast<T>(std::invoke(op, std::move(acc), elem(k)));
  return acc;
}

/// op(init, op(elem(0), ..., elem(n - 1))), the elements grouped by the split tree; on `pool`.
template <class T, class C, class Op, class Elem>
T reduce_elements(ForkJoinPool& pool, C n, T init, Op& op, Elem& elem) {
  if (n == 0) return init;
  const C g = loop_grain(n, 0, pool.threads(), C{kReduceMinGrain});
  auto leaf = [&](C lo, C hi) -> T { return reduce_chunk<T>(op, elem, lo, hi); };
  return pool.invoke([&]() -> T {
    if (n == 1) return static_cast<T>(std::invoke(op, std::move(init), elem(C{0})));
    T total = reduce_split<T>(pool, C{0}, n, g, leaf, op);
    return static_cast<T>(std::invoke(op, std::move(init), std::move(total)));
  });
}

/// The number of elements in [first, last) as a count type; 0 when last is before first.
template <class It>
using iter_count_t = loop_count_t<std::iter_difference_t<It>>;

template <class It>
constexpr iter_count_t<It> iter_count(const It& first, const It& last) {
  static_assert(std::integral<std::iter_difference_t<It>>, "weft reductions need an integral difference_type");
  const std::iter_difference_t<It> d = last - first;
  return d > 0 ? static_cast<iter_count_t<It>>(d) : 0;
}

}  // namespace detail

/// Folds the index range [first, last) in parallel on `pool`: each chunk [lo, hi) becomes
/// leaf(lo, hi, T acc) with acc a copy of `identity`, and partial results are merged with
/// combine(T left, T right), left covering the lower indices. Returns identity for an empty range
/// (first >= last; then nothing is called and the pool is not used). Chunks: grain > 0 makes them at most
/// grain long, grain 0 about n / (8 * pool.threads()), at least 1.
///
/// `identity` must be a neutral element of combine (it starts every chunk); combine must be associative,
/// need not be commutative. The split tree depends only on n, grain and pool.threads(), so the result is
/// reproducible run to run, also for floating point.
/// Thread safety: leaf and combine are called concurrently from several workers, as lvalues (not copied);
/// identity is copied concurrently (copying must not modify it).
/// Throws: the first exception leaf or combine throws, in split order (join rethrows its lower half's
/// exception before its upper half's), once the parts already running have finished; parts not started
/// are skipped. BrokenExecutor when called from outside a pool that was shut down.
/// Hazards: from outside the pool (including from a worker of another ForkJoinPool) the calling thread
/// blocks until the reduction is done.
template <std::integral I, class T, class Leaf, class Combine>
T parallel_reduce(ForkJoinPool& pool, I first, I last, T identity, Leaf&& leaf, Combine&& combine,
                  std::size_t grain = 0) {
  static_assert(!std::is_same_v<std::remove_cv_t<I>, bool>, "parallel_reduce: bool is not an index type");
  static_assert(std::is_invocable_v<Leaf&, I, I, T>, "parallel_reduce: leaf must be callable as leaf(lo, hi, T)");
  static_assert(std::is_invocable_v<Combine&, T, T>, "parallel_reduce: combine must be callable as combine(T, T)");
  using C = detail::loop_count_t<I>;
  const C n = detail::loop_count(first, last);
  if (n == 0) return identity;
  const C g = detail::loop_grain(n, grain, pool.threads(), C{1});
  auto chunk = [&](C lo, C hi) -> T {
    return static_cast<T>(std::invoke(leaf, detail::loop_index_at(first, lo), detail::loop_index_at(first, hi),
                                      T(std::as_const(identity))));
  };
  return pool.invoke([&]() -> T { return detail::reduce_split<T>(pool, C{0}, n, g, chunk, combine); });
}

/// Like std::reduce(first, last, init, op), in parallel on `pool`: op(init, x0 op x1 op ... op x(n-1)), the
/// elements grouped by the split tree (chunks of about n / (8 * pool.threads()), at least 1024).
/// Returns init for an empty range (last <= first; the pool is not used).
///
/// op must be associative and accept (T, T), (T, element) and (element, element), each returning something
/// convertible to T; it need not be commutative (the order of elements is kept). The result is
/// reproducible run to run on a pool of the same size. For a floating-point T with std::plus, chunks are
/// summed with eight accumulators (see the top of this file).
/// Thread safety: op is called concurrently from several workers (as an lvalue); elements are only read.
/// Throws: the first exception op throws, in split order, once the parts already running have finished;
/// parts not started are skipped. BrokenExecutor when called from outside a pool that was shut down.
/// Hazards: a caller outside the pool blocks until the reduction is done.
template <std::random_access_iterator It, class T, class Op = std::plus<>>
T parallel_reduce(ForkJoinPool& pool, It first, It last, T init, Op op = {}) {
  using C = detail::iter_count_t<It>;
  using D = std::iter_difference_t<It>;
  auto elem = [&first](C k) -> decltype(auto) { return first[static_cast<D>(k)]; };
  return detail::reduce_elements(pool, detail::iter_count(first, last), std::move(init), op, elem);
}

/// Like std::transform_reduce(first, last, init, reduce, transform), in parallel on `pool`:
/// init reduce transform(x0) reduce ... reduce transform(x(n-1)), grouped by the split tree. Returns init
/// for an empty range (the pool is not used).
///
/// reduce must be associative (not necessarily commutative) and accept any mix of T and transform's
/// result; transform is called exactly once per element. Reproducible on a pool of the same size; for a
/// floating-point T with std::plus and a transform returning T, chunks use eight accumulators.
/// Thread safety: reduce and transform are called concurrently from several workers (as lvalues).
/// Throws: the first exception reduce or transform throws, in split order, once the parts already running
/// have finished; parts not started are skipped. BrokenExecutor when called from outside a pool that was
/// shut down.
/// Hazards: a caller outside the pool blocks until the reduction is done. Chunks have at least 1024
/// elements: for a transform that takes microseconds per element, use the index form of parallel_reduce
/// with a small grain.
template <std::random_access_iterator It, class T, class Reduce, class Transform>
T parallel_transform_reduce(ForkJoinPool& pool, It first, It last, T init, Reduce reduce, Transform transform) {
  using C = detail::iter_count_t<It>;
  using D = std::iter_difference_t<It>;
  auto elem = [&first, &transform](C k) -> decltype(auto) {
    return std::invoke(transform, first[static_cast<D>(k)]);
  };
  return detail::reduce_elements(pool, detail::iter_count(first, last), std::move(init), reduce, elem);
}

/// Like std::transform_reduce(first1, last1, first2, init, reduce, transform) — an inner product when
/// reduce is std::plus<>() and transform std::multiplies<>() — in parallel on `pool`: init reduce
/// transform(a0, b0) reduce ... for the pairs of [first1, last1) and the same number of elements from
/// first2, grouped by the split tree. Returns init for an empty range (the pool is not used).
///
/// Same requirements, reproducibility, thread safety, exceptions and hazards as the one-range
/// parallel_transform_reduce; the second range must hold at least last1 - first1 elements.
template <std::random_access_iterator It1, std::random_access_iterator It2, class T, class Reduce, class Transform>
T parallel_transform_reduce(ForkJoinPool& pool, It1 first1, It1 last1, It2 first2, T init, Reduce reduce,
                            Transform transform) {
  using C = detail::iter_count_t<It1>;
  using D1 = std::iter_difference_t<It1>;
  using D2 = std::iter_difference_t<It2>;
  auto elem = [&first1, &first2, &transform](C k) -> decltype(auto) {
    return std::invoke(transform, first1[static_cast<D1>(k)], first2[static_cast<D2>(k)]);
  };
  return detail::reduce_elements(pool, detail::iter_count(first1, last1), std::move(init), reduce, elem);
}

/// The index-form parallel_reduce on current_or_default_pool() (the calling worker's pool, else
/// default_pool()); same contract as the overload taking a pool. An empty range returns identity at once,
/// without making the default pool.
template <std::integral I, class T, class Leaf, class Combine>
T parallel_reduce(I first, I last, T identity, Leaf&& leaf, Combine&& combine, std::size_t grain = 0) {
  if (!(first < last)) return identity;
  return parallel_reduce(current_or_default_pool(), first, last, std::move(identity), std::forward<Leaf>(leaf),
                         std::forward<Combine>(combine), grain);
}

/// parallel_reduce (like std::reduce) on current_or_default_pool(); same contract as the overload taking a
/// pool. An empty range returns init at once, without making the default pool.
template <std::random_access_iterator It, class T, class Op = std::plus<>>
T parallel_reduce(It first, It last, T init, Op op = {}) {
  if (!(first < last)) return init;
  return parallel_reduce(current_or_default_pool(), first, last, std::move(init), std::move(op));
}

/// parallel_transform_reduce (one range) on current_or_default_pool(); same contract as the overload taking
/// a pool. An empty range returns init at once, without making the default pool.
template <std::random_access_iterator It, class T, class Reduce, class Transform>
T parallel_transform_reduce(It first, It last, T init, Reduce reduce, Transform transform) {
  if (!(first < last)) return init;
  return parallel_transform_reduce(current_or_default_pool(), first, last, std::move(init), std::move(reduce),
                                   std::move(transform));
}

/// parallel_transform_reduce (two ranges, an inner product) on current_or_default_pool(); same contract as
/// the overload taking a pool. An empty range returns init at once, without making the default pool.
template <std::random_access_iterator It1, std::random_access_iterator It2, class T, class Reduce, class Transform>
T parallel_transform_reduce(It1 first1, It1 last1, It2 first2, T init, Reduce reduce, Transform transform) {
  if (!(first1 < last1)) return init;
  return parallel_transform_reduce(current_or_default_pool(), first1, last1, first2, std::move(init),
                                   std::move(reduce), std::move(transform));
}

}  // namespace weft
