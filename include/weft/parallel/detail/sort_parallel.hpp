// weft/parallel/detail/sort_parallel.hpp — the recursions behind parallel_sort, parallel_stable_sort and
// parallel_merge, on the public interface of ForkJoinPool (join and threads()).
//
// parallel_sort is a quicksort whose two sides run in parallel (join), down to leaves of about
// n / (8 * threads) elements that the sequential pattern-defeating quicksort sorts:
// 0. First, a parallel scan (a few comparisons per chunk on unordered input) finds input that is already
//    in order, or strictly descending, which is then reversed. parallel_stable_sort does the same.
// 1. The pivot of a large range is the median of an evenly spaced sample (31, or 127 from 2^20 elements up),
//    so the parallel tree is well balanced and nearly sorted input is split at its true median.
// 2. While a range is larger than its share of the pool (5/4 of n / threads — the top level, and as many
//    levels below it as there are too few ranges to keep every worker busy), it is partitioned in parallel,
//    so no O(n) step runs on one worker:
//    a. the range is cut into up to 4 * threads chunks, each partitioned in place by a job of its own;
//    b. with m the total count of elements below the pivot, the chunks' "above" parts that lie before m and
//       their "below" parts that lie from m on are equally many: the two lists of misplaced intervals are
//       swapped against each other, in parallel pieces.
// 3. Equal keys and unbalanced partitions are handled as in the sequential quicksort (the equal elements of
//    a range are gathered by one — parallel — partition; log2(n) unbalanced partitions make a range fall
//    back to heap sort).
// Ranges are disjoint between jobs; the pivot of a partition stays at its place, and the right side reads
// it (as its predecessor) only after the partition's join, so jobs share no written memory.
//
// parallel_stable_sort is a merge sort that ping-pongs between the range and one buffer of n elements:
// a range whose result is wanted in "to" sorts its halves into the other array, then merges them into "to"
// (so each level moves every element once and nothing is copied back). Above about n / (8 * threads)
// elements the halves are sorted in parallel and the merge is the parallel merge; below, the same recursion
// runs sequentially down to blocks of kStableBlockBytes, which the bottom-up merge sort finishes in cache.
// Trivially copyable elements are sorted in place with the raw buffer as the other array; other elements are
// first moved into the buffer (constructing them there) and sorted back into the range.
//
// parallel_merge splits the larger input at its middle element, finds in the other input where that element
// goes (lower_bound when the middle is from the first input, upper_bound when from the second, so equal
// elements of the first input stay first), and merges the two pairs of halves in parallel.
#pragma once

#include <algorithm>
#include <array>
#include <cstddef>
#include <iterator>
#include <memory>
#include <new>
#include <type_traits>
#include <utility>

#include "weft/parallel/detail/sort_sequential.hpp"
#include "weft/parallel/fork_join_pool.hpp"

namespace weft::detail::sort {

/// Below this many elements a sort runs sequentially on the calling thread.
inline constexpr std::ptrdiff_t kSortLeafMin = 4096;
/// Smallest merge (total of both inputs) split further.
inline constexpr std::ptrdiff_t kMergeLeafMin = 4096;
/// Bytes of a block the stable sort sorts bottom-up (the block and its scratch fit in a core's L2 cache).
inline constexpr std::ptrdiff_t kStableBlockBytes = std::ptrdiff_t{1} << 17;
/// Smallest chunk of a parallel partition, and the most chunks.
inline constexpr std::ptrdiff_t kPartitionChunkMin = std::ptrdiff_t{1} << 14;
inline constexpr std::size_t kMaxPartitionChunks = 64;

/// About n / (8 * threads), never below `floor`.
inline std::ptrdiff_t automatic_grain(std::ptrdiff_t n, std::size_t threads, std::ptrdiff_t floor) {
  return std::max(n / static_cast<std::ptrdiff_t>(8 * std::max<std::size_t>(threads, 1)), floor);
}

/// f(i) for every i in [lo, hi), binary-split over the pool.
template <class F>
void for_each_index(ForkJoinPool& pool, std::size_t lo, std::size_t hi, F& f) {
  if (hi - lo == 1) {
    f(lo);
  } else if (hi - lo > 1) {
    const std::size_t mid = lo + (hi - lo) / 2;
    pool.join([&] { for_each_index(pool, lo, mid, f); }, [&] { for_each_index(pool, mid, hi, f); });
  }
}

/// Chunks for a parallel pass over n elements: up to 4 * threads, none under kPartitionChunkMin.
inline std::size_t chunk_count(std::ptrdiff_t n, std::size_t threads) {
  return std::clamp<std::size_t>(static_cast<std::size_t>(n / kPartitionChunkMin), 1,
                                 std::min(kMaxPartitionChunks, 4 * threads));
}

// --- parallel partition --------------------------------------------------------------------------------

/// A run of misplaced elements: offset from the start of the partitioned range, and length.
struct Span {
  std::ptrdiff_t begin = 0;
  std::ptrdiff_t length = 0;
};

/// Swaps the misplaced elements numbered [lo, hi) of list `a` with those of list `b` (both lists count
/// the same total; the k-th element of one is swapped with the k-th of the other).
template <class It>
void swap_misplaced(It first, const Span* a, const Span* b, std::ptrdiff_t lo, std::ptrdiff_t hi) {
  std::size_t ia = 0, ib = 0;
  std::ptrdiff_t oa = lo, ob = lo;  // offsets inside a[ia], b[ib]
  while (oa >= a[ia].length) oa -= a[ia++].length;
  while (ob >= b[ib].length) ob -= b[ib++].length;
  std::ptrdiff_t left = hi - lo;
  while (left > 0) {
    const std::ptrdiff_t k = std::min({a[ia].length - oa, b[ib].length - ob, left});
    std::swap_ranges(first + (a[ia].begin + oa), first + (a[ia].begin + oa + k), first + (b[ib].begin + ob));
    left -= k;
    oa += k;
    ob += k;
    if (oa == a[ia].length) ++ia, oa = 0;
    if (ob == b[ib].length) ++ib, ob = 0;
  }
}

/// Parallel partition of [first, last) by pred (see the protocol at the top of this file). Same contract as
/// partition_by: the boundary, and whether anything moved. pred is copied into each job.
template <class It, class Pred>
std::pair<It, bool> parallel_partition(ForkJoinPool& pool, It first, It last, const Pred& pred) {
  const std::ptrdiff_t n = last - first;
  const std::size_t chunks = chunk_count(n, pool.threads());
  if (chunks == 1) {
    Pred p = pred;
    return partition_by(first, last, p);
  }
  std::array<std::ptrdiff_t, kMaxPartitionChunks + 1> bound{};
  for (std::size_t i = 0; i <= chunks; ++i) bound[i] = static_cast<std::ptrdiff_t>(static_cast<std::size_t>(n) * i / chunks);
  std::array<std::ptrdiff_t, kMaxPartitionChunks> below{};  // elements of chunk i below the pivot
  std::array<bool, kMaxPartitionChunks> moved{};
  auto partition_chunk = [&](std::size_t i) {
    Pred p = pred;
    const auto [mid, chunk_moved] = partition_by(first + bound[i], first + bound[i + 1], p);
    below[i] = mid - (first + bound[i]);
    moved[i] = chunk_moved;
  };
  for_each_index(pool, 0, chunks, partition_chunk);

  std::ptrdiff_t m = 0;
  bool any_moved = false;
  for (std::size_t i = 0; i < chunks; ++i) {
    m += below[i];
    any_moved = any_moved || moved[i];
  }
  // Misplaced: "above" elements before m, "below" elements from m on.
  std::array<Span, kMaxPartitionChunks> wrong_above{}, wrong_below{};
  std::size_t n_above = 0, n_below = 0;
  std::ptrdiff_t misplaced = 0;
  for (std::size_t i = 0; i < chunks; ++i) {
    const std::ptrdiff_t split = bound[i] + below[i];
    if (split < m && split < bound[i + 1]) {
      wrong_above[n_above++] = {split, std::min(bound[i + 1], m) - split};
      misplaced += wrong_above[n_above - 1].length;
    }
    if (split > m && bound[i] < split) {
      const std::ptrdiff_t b = std::max(bound[i], m);
      wrong_below[n_below++] = {b, split - b};
    }
  }
  if (misplaced == 0) return {first + m, any_moved};
  const std::size_t pieces =
      std::clamp<std::size_t>(static_cast<std::size_t>(misplaced / kPartitionChunkMin), 1, chunks);
  auto swap_piece = [&](std::size_t j) {
    const auto lo = static_cast<std::ptrdiff_t>(static_cast<std::size_t>(misplaced) * j / pieces);
    const auto hi = static_cast<std::ptrdiff_t>(static_cast<std::size_t>(misplaced) * (j + 1) / pieces);
    swap_misplaced(first, wrong_above.data(), wrong_below.data(), lo, hi);
  };
  for_each_index(pool, 0, pieces, swap_piece);
  return {first + m, true};
}

// --- presorted input -------------------------------------------------------------------------------------

enum class RunOrder { ascending, strictly_descending, neither };

/// Whether [first, last) is already in order (no element below its predecessor) or strictly descending.
/// One comparison per adjacent pair, in parallel chunks that overlap by one element; a chunk stops at its
/// first evidence of "neither", so on unordered input the check costs a few comparisons per chunk.
template <class It, class Comp>
RunOrder parallel_run_order(ForkJoinPool& pool, It first, It last, Comp& comp) {
  const std::ptrdiff_t n = last - first;
  const std::size_t chunks = chunk_count(n, pool.threads());
  std::array<bool, kMaxPartitionChunks> ascending{}, descending{};
  auto check = [&](std::size_t i) {
    const auto lo = static_cast<std::ptrdiff_t>(static_cast<std::size_t>(n) * i / chunks);
    const auto hi = std::min(static_cast<std::ptrdiff_t>(static_cast<std::size_t>(n) * (i + 1) / chunks) + 1, n);
    bool up = true, down = true;
    for (It it = first + (lo + 1); it < first + hi && (up || down); ++it) {
      if (comp(*it, *(it - 1))) {
        up = false;
      } else {
        down = false;
      }
    }
    ascending[i] = up;
    descending[i] = down;
  };
  for_each_index(pool, 0, chunks, check);
  const bool up = std::all_of(ascending.begin(), ascending.begin() + chunks, [](bool b) { return b; });
  const bool down = std::all_of(descending.begin(), descending.begin() + chunks, [](bool b) { return b; });
  return up ? RunOrder::ascending : down ? RunOrder::strictly_descending : RunOrder::neither;
}

/// std::reverse in parallel pieces.
template <class It>
void parallel_reverse(ForkJoinPool& pool, It first, It last) {
  const std::ptrdiff_t half = (last - first) / 2;
  const std::size_t pieces = chunk_count(half, pool.threads());
  auto piece = [&](std::size_t j) {
    const auto lo = static_cast<std::ptrdiff_t>(static_cast<std::size_t>(half) * j / pieces);
    const auto hi = static_cast<std::ptrdiff_t>(static_cast<std::size_t>(half) * (j + 1) / pieces);
    std::swap_ranges(first + lo, first + hi, std::make_reverse_iterator(last - lo));
  };
  for_each_index(pool, 0, pieces, piece);
}

/// Finishes input that is already in order (true): nothing to do when ascending; strictly descending input
/// (no equal elements, so this is stable too) is reversed.
template <class It, class Comp>
bool finish_presorted(ForkJoinPool& pool, It first, It last, Comp& comp) {
  switch (parallel_run_order(pool, first, last, comp)) {
    case RunOrder::ascending:
      return true;
    case RunOrder::strictly_descending:
      parallel_reverse(pool, first, last);
      return true;
    case RunOrder::neither:
      break;
  }
  return false;
}

// --- parallel_sort ---------------------------------------------------------------------------------------

struct QuicksortPlan {
  std::ptrdiff_t leaf;            ///< ranges up to this size are sorted sequentially
  std::ptrdiff_t partition_min;   ///< ranges from this size on are partitioned in parallel
};

/// Moves the median of an evenly spaced sample of [first, first + n) to *first. The sample is gathered at
/// the front and insertion-sorted there. Needs n >= s * s for the sample size s picked (n > kSortLeafMin).
template <class It, class Comp>
void choose_sample_pivot(It first, std::ptrdiff_t n, Comp& comp) {
  const std::ptrdiff_t s = n >= (std::ptrdiff_t{1} << 20) ? 127 : 31;
  const std::ptrdiff_t step = n / s;
  for (std::ptrdiff_t k = 1; k < s; ++k) std::iter_swap(first + k, first + k * step);
  insertion_sort(first, first + s, comp);
  std::iter_swap(first, first + s / 2);
}

template <class It, class Comp>
void parallel_quicksort(ForkJoinPool& pool, It first, It last, Comp& comp, int bad_allowed, bool leftmost,
                        const QuicksortPlan& plan) {
  using T = std::iter_value_t<It>;
  auto partition = [&](It b, It e, const auto& pred) {
    if (e - b >= plan.partition_min) return parallel_partition(pool, b, e, pred);
    auto p = pred;
    return partition_by(b, e, p);
  };
  for (;;) {
    const std::ptrdiff_t n = last - first;
    if (n <= plan.leaf) {
      pdqsort_loop(first, last, comp, bad_allowed, leftmost);
      return;
    }
    choose_sample_pivot(first, n, comp);
    if (!leftmost && !comp(*(first - 1), *first)) {
      first = partition(first + 1, last, NotAbovePivot<T, Comp>{*first, comp}).first;
      continue;  // the elements equal to the pivot are done
    }
    const auto [mid, moved] = partition(first + 1, last, BelowPivot<T, Comp>{*first, comp});
    (void)moved;  // a parallel level does not try the insertion sort; its leaves will
    It pivot = place_pivot(first, mid);
    if (pivot - first < n / 8 || last - (pivot + 1) < n / 8) {
      if (--bad_allowed == 0) {
        heap_sort(first, last, comp);
        return;
      }
      break_patterns(first, pivot);
      break_patterns(pivot + 1, last);
    }
    pool.join([&] { parallel_quicksort(pool, first, pivot, comp, bad_allowed, leftmost, plan); },
              [&] { parallel_quicksort(pool, pivot + 1, last, comp, bad_allowed, false, plan); });
    return;
  }
}

template <class It, class Comp>
void parallel_sort(ForkJoinPool& pool, It first, It last, Comp& comp) {
  const std::ptrdiff_t n = last - first;
  const std::size_t threads = pool.threads();
  const QuicksortPlan plan{
      automatic_grain(n, threads, kSortLeafMin),
      std::max(n / static_cast<std::ptrdiff_t>(threads) + n / static_cast<std::ptrdiff_t>(4 * threads),
               2 * kPartitionChunkMin)};
  if (n <= plan.leaf) {
    pdqsort(first, last, comp);
    return;
  }
  pool.invoke([&] {
    if (!finish_presorted(pool, first, last, comp)) {
      parallel_quicksort(pool, first, last, comp, bad_partitions_allowed(n), true, plan);
    }
  });
}

// --- parallel_merge --------------------------------------------------------------------------------------

/// Stable merge of [first1, last1) and [first2, last2) into out, the halves in parallel above `grain`
/// elements. Copies, or moves when Move. Returns the end of the output.
template <bool Move, class It1, class It2, class Out, class Comp>
Out merge_recursive(ForkJoinPool& pool, It1 first1, It1 last1, It2 first2, It2 last2, Out out, Comp& comp,
                    std::ptrdiff_t grain) {
  const std::ptrdiff_t n1 = last1 - first1;
  const std::ptrdiff_t n2 = last2 - first2;
  if (n1 + n2 <= grain || n1 == 0 || n2 == 0) {
    return merge_sequential<Move>(first1, last1, first2, last2, out, comp);
  }
  It1 mid1;
  It2 mid2;
  if (n1 >= n2) {
    mid1 = first1 + n1 / 2;
    mid2 = std::lower_bound(first2, last2, *mid1, comp);  // equal elements of the second input go right
  } else {
    mid2 = first2 + n2 / 2;
    mid1 = std::upper_bound(first1, last1, *mid2, comp);  // equal elements of the first input go left
  }
  Out out_mid = out + ((mid1 - first1) + (mid2 - first2));
  pool.join([&] { merge_recursive<Move>(pool, first1, mid1, first2, mid2, out, comp, grain); },
            [&] { merge_recursive<Move>(pool, mid1, last1, mid2, last2, out_mid, comp, grain); });
  return out + (n1 + n2);
}

template <class It1, class It2, class Out, class Comp>
Out parallel_merge(ForkJoinPool& pool, It1 first1, It1 last1, It2 first2, It2 last2, Out out, Comp& comp) {
  const std::ptrdiff_t n = (last1 - first1) + (last2 - first2);
  const std::ptrdiff_t grain = automatic_grain(n, pool.threads(), kMergeLeafMin);
  if (n <= grain) return merge_sequential<false>(first1, last1, first2, last2, out, comp);
  return pool.invoke([&] { return merge_recursive<false>(pool, first1, last1, first2, last2, out, comp, grain); });
}

// --- parallel_stable_sort --------------------------------------------------------------------------------

struct MergeSortPlan {
  std::ptrdiff_t block;         ///< ranges up to this size are sorted by the bottom-up sequential merge sort
  std::ptrdiff_t parallel_min;  ///< ranges above this size sort their halves in parallel
  std::ptrdiff_t merge_grain;   ///< merges above this size are split in parallel
};

/// Sorts the n elements at src stably; the result ends at `other` when to_other, else at src. Both arrays
/// hold n live elements. The recursion goes on sequentially below the parallel leaves, down to blocks that
/// fit in a core's cache: a bottom-up merge sort of a large range would stream all of it through memory on
/// every pass, while top-down each merge below the cache size works on data the cache already holds.
template <class A, class B, class Comp>
void merge_sort_recursive(ForkJoinPool& pool, A src, B other, std::ptrdiff_t n, bool to_other, Comp& comp,
                          const MergeSortPlan& plan) {
  if (n <= plan.block) {
    stable_sort_sequential(src, other, n, to_other, comp);
    return;
  }
  const std::ptrdiff_t h = n / 2;
  // The halves go to the array this level does not end in, and are merged from there.
  auto left = [&] { merge_sort_recursive(pool, src, other, h, !to_other, comp, plan); };
  auto right = [&] { merge_sort_recursive(pool, src + h, other + h, n - h, !to_other, comp, plan); };
  if (n > plan.parallel_min) {
    pool.join(left, right);
  } else {
    left();
    right();
  }
  if (to_other) {
    merge_recursive<true>(pool, src, src + h, src + h, src + n, other, comp, plan.merge_grain);
  } else {
    merge_recursive<true>(pool, other, other + h, other + h, other + n, src, comp, plan.merge_grain);
  }
}

/// Raw storage for n elements of T, released on scope exit (the elements' lifetimes are managed apart).
template <class T>
struct RawBuffer {
  T* data = nullptr;
  explicit RawBuffer(std::size_t n)
      : data(static_cast<T*>(::operator new(n * sizeof(T), std::align_val_t{alignof(T)}, std::nothrow))) {}
  RawBuffer(const RawBuffer&) = delete;
  RawBuffer& operator=(const RawBuffer&) = delete;
  ~RawBuffer() {
    if (data != nullptr) ::operator delete(data, std::align_val_t{alignof(T)});
  }
};

/// Destroys the n elements constructed at `data` on scope exit.
template <class T>
struct DestroyGuard {
  T* data;
  std::size_t n;
  ~DestroyGuard() { std::destroy_n(data, n); }
};

template <class It, class Comp>
void parallel_stable_sort(ForkJoinPool& pool, It first, It last, Comp& comp) {
  using T = std::iter_value_t<It>;
  const std::ptrdiff_t n = last - first;
  if (n < 2) return;
  if (n <= kInsertionSortMax) {
    insertion_sort(first, last, comp);
    return;
  }
  const std::ptrdiff_t leaf = automatic_grain(n, pool.threads(), kSortLeafMin);
  const std::ptrdiff_t merge_grain = automatic_grain(n, pool.threads(), kMergeLeafMin);
  const MergeSortPlan plan{std::max<std::ptrdiff_t>(kStableBlockBytes / static_cast<std::ptrdiff_t>(sizeof(T)), 64),
                           leaf, merge_grain};
  auto sort = [&] {
    if (n > leaf && finish_presorted(pool, first, last, comp)) return;
    RawBuffer<T> buffer(static_cast<std::size_t>(n));
    if (buffer.data == nullptr) {
      std::stable_sort(first, last, comp);  // no memory for the buffer: the standard sort copes without one
      return;
    }
    if constexpr (std::is_trivially_copyable_v<T>) {
      // The buffer's elements need no construction: sort in place, with the buffer as the other array.
      merge_sort_recursive(pool, first, buffer.data, n, false, comp, plan);
    } else {
      // Move the elements into the buffer (constructing them there), sort from it back into the range, then
      // destroy the buffer's moved-from elements — also when the comparator throws.
      if constexpr (std::is_nothrow_move_constructible_v<T>) {
        const std::size_t pieces = static_cast<std::size_t>((n + merge_grain - 1) / merge_grain);
        auto construct = [&](std::size_t i) {
          const std::ptrdiff_t lo = static_cast<std::ptrdiff_t>(i) * merge_grain;
          std::uninitialized_move(first + lo, first + std::min(lo + merge_grain, n), buffer.data + lo);
        };
        for_each_index(pool, 0, pieces, construct);
      } else {
        std::uninitialized_move(first, last, buffer.data);  // rolls back by itself if a move throws
      }
      DestroyGuard<T> guard{buffer.data, static_cast<std::size_t>(n)};
      merge_sort_recursive(pool, buffer.data, first, n, true, comp, plan);
    }
  };
  // Everything that touches the range runs inside one invoke, so a pool that refuses work (shut down) throws
  // before anything has moved.
  if (n <= leaf) {
    sort();
  } else {
    pool.invoke(sort);
  }
}

}  // namespace weft::detail::sort
