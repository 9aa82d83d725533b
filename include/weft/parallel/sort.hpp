// weft/parallel/sort.hpp — parallel sorting and merging on a ForkJoinPool.
//
//   weft::ForkJoinPool pool;
//   weft::parallel_sort(pool, v.begin(), v.end());                        // unstable, like std::sort
//   weft::parallel_stable_sort(pool, people.begin(), people.end(), by_age);  // stable, like std::stable_sort
//   weft::parallel_merge(pool, a.begin(), a.end(), b.begin(), b.end(), out.begin());  // like std::merge
//   weft::parallel_sort(v.begin(), v.end(), std::greater<>{});            // on current_or_default_pool()
//
// What a user relies on:
// - The results are those of std::sort, std::stable_sort and std::merge: parallel_stable_sort keeps equal
//   elements in their original order, and parallel_merge puts equal elements of the first input before
//   those of the second.
// - parallel_sort is a parallel quicksort whose large partitions are themselves parallel, with a
//   pattern-defeating quicksort at the leaves: O(n log n) comparisons in the worst case, close to linear on
//   sorted input, fast on many equal keys. It allocates nothing (the recursion uses the workers' stacks).
// - parallel_stable_sort is a parallel merge sort. It allocates one buffer of n elements; when that
//   allocation fails it falls back to std::stable_sort (sequential, and slower without memory, but correct).
// - Below a few thousand elements the work runs sequentially on the calling thread; otherwise it runs on
//   the pool's workers (pool.invoke), and a caller outside the pool blocks until it is done. The recursion
//   splits down to about n / (8 * pool.threads()) elements per leaf.
// - Element types may be move-only (parallel_sort, parallel_stable_sort); parallel_merge copies, like
//   std::merge. Iterators must be random access; merge's output must not overlap its inputs.
//
// Thread safety: the comparator is called concurrently from several workers (it must not modify shared
// state without synchronization), and the elements of a range are touched by several workers at once;
// nothing else may access the range during the call.
//
// Exceptions: an exception thrown by the comparator (or by an element's copy/move) stops the algorithm —
// jobs not yet started are skipped, running ones finish — and reaches the caller. The range is then in a
// valid but unspecified state: after parallel_sort it holds a permutation of its elements (unless the
// heap-sort fallback was running); after parallel_stable_sort some values may be moved-from, as with
// std::stable_sort; after parallel_merge part of the output is written. Nothing leaks. From outside a pool
// that has been shut down, BrokenExecutor is thrown before anything is touched.
//
// Hazard: a call made on a worker of a different pool blocks that worker until this pool has finished.
#pragma once

#include <concepts>
#include <functional>
#include <iterator>

#include "weft/parallel/detail/sort_parallel.hpp"
#include "weft/parallel/fork_join_pool.hpp"

namespace weft {

/// Sorts [first, last) into ascending order of comp (not stable), on `pool`. Equivalent to
/// std::sort(first, last, comp).
template <std::random_access_iterator It, class Comp = std::less<>>
  requires std::sortable<It, Comp>
void parallel_sort(ForkJoinPool& pool, It first, It last, Comp comp = {}) {
  detail::sort::parallel_sort(pool, first, last, comp);
}

/// parallel_sort on current_or_default_pool().
template <std::random_access_iterator It, class Comp = std::less<>>
  requires std::sortable<It, Comp>
void parallel_sort(It first, It last, Comp comp = {}) {
  detail::sort::parallel_sort(current_or_default_pool(), first, last, comp);
}

/// Sorts [first, last) into ascending order of comp, keeping equal elements in their original order, on
/// `pool`. Equivalent to std::stable_sort(first, last, comp). Uses a buffer of last - first elements;
/// without memory for it, runs std::stable_sort instead.
template <std::random_access_iterator It, class Comp = std::less<>>
  requires std::sortable<It, Comp>
void parallel_stable_sort(ForkJoinPool& pool, It first, It last, Comp comp = {}) {
  detail::sort::parallel_stable_sort(pool, first, last, comp);
}

/// parallel_stable_sort on current_or_default_pool().
template <std::random_access_iterator It, class Comp = std::less<>>
  requires std::sortable<It, Comp>
void parallel_stable_sort(It first, It last, Comp comp = {}) {
  detail::sort::parallel_stable_sort(current_or_default_pool(), first, last, comp);
}

/// Merges the sorted ranges [first1, last1) and [first2, last2) into the range starting at out, which must
/// not overlap them, on `pool`; of equal elements, those of the first range come first. Returns the end of
/// the output. Equivalent to std::merge(first1, last1, first2, last2, out, comp).
template <std::random_access_iterator It1, std::random_access_iterator It2, std::random_access_iterator Out,
          class Comp = std::less<>>
  requires std::mergeable<It1, It2, Out, Comp>
Out parallel_merge(ForkJoinPool& pool, It1 first1, It1 last1, It2 first2, It2 last2, Out out, Comp comp = {}) {
  return detail::sort::parallel_merge(pool, first1, last1, first2, last2, out, comp);
}

/// parallel_merge on current_or_default_pool().
template <std::random_access_iterator It1, std::random_access_iterator It2, std::random_access_iterator Out,
          class Comp = std::less<>>
  requires std::mergeable<It1, It2, Out, Comp>
Out parallel_merge(It1 first1, It1 last1, It2 first2, It2 last2, Out out, Comp comp = {}) {
  return detail::sort::parallel_merge(current_or_default_pool(), first1, last1, first2, last2, out, comp);
}

}  // namespace weft
