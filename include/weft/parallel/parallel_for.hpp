// weft/parallel/parallel_for.hpp — loops over an index range, run in parallel on a ForkJoinPool.
//
//   weft::parallel_for(pool, 0, n, [&](int i) { out[i] = f(in[i]); });
//   weft::parallel_for_range(pool, std::size_t{0}, v.size(), [&](std::size_t lo, std::size_t hi) {
//     for (std::size_t i = lo; i < hi; ++i) v[i] *= 2;   // one call per chunk: set-up costs paid per chunk
//   });
//
// How it works: the range is cut in halves with pool.join() until a piece is no longer than the chunk size
// (binary splitting, as in Cilk's cilk_for and rayon's bridge). The calling worker keeps the lower half and
// leaves the upper half in its deque, so an idle worker steals the largest piece still waiting and the load
// balances itself without a shared queue; a range that nobody steals costs one join per chunk.
//
// Chunk size (`grain`):
// - grain > 0: every chunk is at most `grain` indices long, and (since pieces are halved) at least grain / 2,
//   rounded down, unless the whole range is shorter.
// - grain == 0 (automatic): chunks of about n / (8 * pool.threads()) indices, at least 1. Eight chunks per
//   worker leave room for stealing to even out uneven bodies, and keep the number of joins small. Pass a
//   grain when the body is so cheap that a few hundred indices cost less than a join (about a microsecond
//   when the half is stolen, tens of nanoseconds when it is not).
//
// Index types: any integral type except bool, signed or unsigned. Sizes are computed in an unsigned type at
// least as wide as the index, so ranges up to the whole type ([INT64_MIN, INT64_MAX)) neither overflow nor
// wrap. first >= last is an empty range: the body is not called and the pool is not used.
//
// Where the body runs: always on the pool's workers. Called from outside the pool, the caller blocks until
// the loop has finished (pool.invoke); called from one of the pool's jobs, the calling worker takes part and
// runs other jobs while it waits, so loops nest to any depth, even on a one-worker pool.
#pragma once

#include <concepts>
#include <cstddef>
#include <functional>
#include <type_traits>
#include <utility>

#include "weft/parallel/fork_join_pool.hpp"

namespace weft {
namespace detail {

/// Unsigned type that counts the indices of a range of I: as wide as I, and never narrower than size_t.
template <class I>
using loop_count_t = std::common_type_t<std::make_unsigned_t<I>, std::size_t>;

/// The number of indices in [first, last), exactly; 0 when first >= last. The difference is taken in the
/// unsigned type of I's width, where it is exact for any first < last (even INT_MIN to INT_MAX).
template <class I>
constexpr loop_count_t<I> loop_count(I first, I last) noexcept {
  using U = std::make_unsigned_t<I>;
  if (!(first < last)) return 0;
  return static_cast<U>(static_cast<U>(last) - static_cast<U>(first));
}

/// first + offset, for 0 <= offset <= loop_count(first, last); computed in the unsigned type (conversion
/// back to a signed I is modular, so no intermediate value overflows).
template <class I, class C>
constexpr I loop_index_at(I first, C offset) noexcept {
  using U = std::make_unsigned_t<I>;
  return static_cast<I>(static_cast<U>(static_cast<U>(first) + static_cast<U>(offset)));
}

/// The chunk length for `n` indices (n > 0): `grain` when given, else about n / (8 * threads), at least
/// `min_grain`. Depends on nothing but its arguments: the split tree of a loop is fixed by n, grain and
/// the pool's size, never by timing.
template <class C>
constexpr C loop_grain(C n, std::size_t grain, std::size_t threads, C min_grain) noexcept {
  if (grain > 0) return static_cast<C>(grain);
  const C parts = C{8} * static_cast<C>(threads > 0 ? threads : 1);
  const C g = n / parts + (n % parts != 0 ? 1 : 0);
  return g < min_grain ? min_grain : g;
}

/// Calls leaf(lo, hi) on pieces of the offsets [lo, hi) no longer than `grain`, halving with pool.join().
/// Must run on a worker of `pool`.
template <class C, class Leaf>
void loop_split(ForkJoinPool& pool, C lo, C hi, C grain, Leaf& leaf) {
  if (hi - lo <= grain) {
    leaf(lo, hi);
    return;
  }
  const C mid = lo + (hi - lo) / 2;
  pool.join([&] { loop_split(pool, lo, mid, grain, leaf); }, [&] { loop_split(pool, mid, hi, grain, leaf); });
}

/// Smallest automatic chunk of parallel_for and parallel_for_range: one index, since a body may be heavy
/// (the number of chunks, 8 to 16 per worker, bounds the overhead).
inline constexpr std::size_t kLoopMinGrain = 1;

}  // namespace detail

/// Calls body(lo, hi) for disjoint chunks [lo, hi) that together cover [first, last), in parallel on `pool`.
/// With grain > 0 each chunk is at most `grain` long; grain 0 picks about n / (8 * pool.threads()) (see
/// the top of this file). first >= last is empty: nothing is called, the pool is not used.
///
/// Thread safety: body is called concurrently from several workers, as an lvalue (it is not copied), so it
/// must tolerate that; chunks are disjoint, so writing to per-index data needs no lock.
/// Throws: the first exception the body throws, in split order (the one from the lowest chunk among those
/// that threw, since join rethrows its first half's exception before its second's), once the chunks
/// already running have finished; chunks not started by then are skipped. BrokenExecutor when called from
/// outside a pool that was shut down.
/// Hazards: from outside the pool (including from a worker of another ForkJoinPool) the calling thread
/// blocks until the loop is done. A body that blocks on something only a later chunk provides can
/// deadlock: chunks run in no guaranteed order or concurrency.
template <std::integral I, class F>
void parallel_for_range(ForkJoinPool& pool, I first, I last, F&& body, std::size_t grain = 0) {
  static_assert(!std::is_same_v<std::remove_cv_t<I>, bool>, "parallel_for_range: bool is not an index type");
  static_assert(std::is_invocable_v<F&, I, I>, "parallel_for_range: body must be callable as body(I lo, I hi)");
  using C = detail::loop_count_t<I>;
  const C n = detail::loop_count(first, last);
  if (n == 0) return;
  const C g = detail::loop_grain(n, grain, pool.threads(), C{detail::kLoopMinGrain});
  auto leaf = [&](C lo, C hi) {
    std::invoke(body, detail::loop_index_at(first, lo), detail::loop_index_at(first, hi));
  };
  pool.invoke([&] { detail::loop_split(pool, C{0}, n, g, leaf); });
}

/// Calls body(i) for every i in [first, last), in parallel on `pool`, in chunks as parallel_for_range makes
/// them (grain 0: automatic). first >= last is empty: nothing is called, the pool is not used.
///
/// Thread safety: body is called concurrently from several workers, as an lvalue (it is not copied); each
/// index is passed exactly once, in no particular order across chunks (ascending within one).
/// Throws: the first exception the body throws, in split order (from the lowest chunk that threw), once
/// the chunks already running have finished; chunks not started by then are skipped, so some indices may
/// never be visited. BrokenExecutor when called from outside a pool that was shut down.
/// Hazards: as parallel_for_range — a caller outside the pool blocks until the loop is done, and a body
/// must not wait for another index's body to do something.
template <std::integral I, class F>
void parallel_for(ForkJoinPool& pool, I first, I last, F&& body, std::size_t grain = 0) {
  static_assert(!std::is_same_v<std::remove_cv_t<I>, bool>, "parallel_for: bool is not an index type");
  static_assert(std::is_invocable_v<F&, I>, "parallel_for: body must be callable as body(I i)");
  parallel_for_range(
      pool, first, last,
      [&body](I lo, I hi) {
        for (I i = lo; i != hi; ++i) std::invoke(body, i);
      },
      grain);
}

/// parallel_for_range on current_or_default_pool(): the pool the calling worker belongs to, else the
/// process-wide default_pool(); same contract as the overload taking a pool. An empty range returns at once
/// (without making the default pool).
template <std::integral I, class F>
void parallel_for_range(I first, I last, F&& body, std::size_t grain = 0) {
  if (!(first < last)) return;
  parallel_for_range(current_or_default_pool(), first, last, std::forward<F>(body), grain);
}

/// parallel_for on current_or_default_pool(): the pool the calling worker belongs to, else the process-wide
/// default_pool(); same contract as the overload taking a pool. An empty range returns at once (without
/// making the default pool).
template <std::integral I, class F>
void parallel_for(I first, I last, F&& body, std::size_t grain = 0) {
  if (!(first < last)) return;
  parallel_for(current_or_default_pool(), first, last, std::forward<F>(body), grain);
}

}  // namespace weft
