// weft/parallel/detail/sort_sequential.hpp — the sequential pieces the parallel sorts are built from: a
// pattern-defeating quicksort (the leaf of parallel_sort), partitioning, and the stable merge sort and merge
// used by parallel_stable_sort and parallel_merge.
//
// The quicksort follows the ideas of Peters' pattern-defeating quicksort (pdqsort, 2021) and Edelkamp &
// Weiß's BlockQuicksort (ESA 2016):
// 1. Ranges under kInsertionSortMax elements are insertion-sorted.
// 2. The pivot is the median of three, or above kNintherMin the median of three medians of three (Tukey's
//    ninther), moved to the front of the range, where it stays while the rest is partitioned.
// 3. Partitioning puts the elements below the pivot first. For elements that are cheap to copy it is
//    branch-free: a block of kBlock elements is scanned and the offsets of misplaced elements recorded with
//    a conditional increment instead of a branch, then the misplaced elements of a left and a right block are
//    swapped in pairs. On random keys a branchy partition mispredicts about half of its comparisons.
// 4. Many equal keys: when the pivot equals the element just before the range (which, in a right part, is
//    not greater than any element of it), every element not greater than the pivot equals it and is already
//    in its final place, so one partition removes all of them.
// 5. An unbalanced partition (a side under n/8) shuffles a few elements to break the pattern that caused
//    it; after log2(n) of them the range is heap-sorted, so the worst case stays O(n log n). A partition that
//    moved nothing (already partitioned, e.g. sorted input) tries an insertion sort that gives up after
//    kPartialInsertionMoves moves, which makes sorted and nearly sorted input linear.
//
// Exception safety: comparisons happen only while no element is displaced (elements are swapped, and the one
// insertion sort keeps out of the range is written back by a guard), so when the comparator throws the range
// still holds a permutation of its elements. The heap-sort fallback (std::make_heap/std::sort_heap) gives
// only the basic guarantee.
#pragma once

#include <algorithm>
#include <bit>
#include <cstddef>
#include <iterator>
#include <type_traits>
#include <utility>

namespace weft::detail::sort {

inline constexpr std::ptrdiff_t kInsertionSortMax = 24;
inline constexpr std::ptrdiff_t kNintherMin = 128;
inline constexpr std::ptrdiff_t kPartialInsertionMoves = 8;
inline constexpr int kBlock = 64;  // offsets fit in an unsigned char; two blocks of offsets fill two cache lines

/// Elements that are cheap to copy: the pivot is held by value (the comparisons then read a register, not a
/// location the compiler must assume every store may change), and partitioning is branch-free.
template <class T>
inline constexpr bool kCheapToCopy = std::is_trivially_copyable_v<T> && sizeof(T) <= 4 * sizeof(void*);

/// How a partition holds its pivot: a copy of a cheap element, else a reference to the element in place.
template <class T>
using PivotRef = std::conditional_t<kCheapToCopy<T>, const T, const T&>;

/// Keeps one element outside its range while the others shift, and writes it into the hole when it goes out
/// of scope — also when a comparison throws, so the range always holds all of its elements.
template <class It>
class Hole {
 public:
  explicit Hole(It at) : pos(at), value(std::move(*at)) {}
  Hole(const Hole&) = delete;
  Hole& operator=(const Hole&) = delete;
  ~Hole() { *pos = std::move(value); }

  It pos;
  std::iter_value_t<It> value;
};

/// Stable insertion sort of [first, last).
template <class It, class Comp>
void insertion_sort(It first, It last, Comp& comp) {
  if (first == last) return;
  for (It i = first + 1; i != last; ++i) {
    if (!comp(*i, *(i - 1))) continue;
    Hole<It> hole(i);
    do {
      *hole.pos = std::move(*(hole.pos - 1));
      --hole.pos;
    } while (hole.pos != first && comp(hole.value, *(hole.pos - 1)));
  }
}

/// insertion_sort without the bound check: *(first - 1) must not be greater than any element of the range.
template <class It, class Comp>
void unguarded_insertion_sort(It first, It last, Comp& comp) {
  if (first == last) return;
  for (It i = first + 1; i != last; ++i) {
    if (!comp(*i, *(i - 1))) continue;
    Hole<It> hole(i);
    do {
      *hole.pos = std::move(*(hole.pos - 1));
      --hole.pos;
    } while (comp(hole.value, *(hole.pos - 1)));
  }
}

/// Insertion sort that gives up (returning false, the range permuted but not sorted) once it has moved more
/// than kPartialInsertionMoves elements: cheap proof that a range is (nearly) sorted.
template <class It, class Comp>
bool partial_insertion_sort(It first, It last, Comp& comp) {
  if (first == last) return true;
  std::ptrdiff_t moves = 0;
  for (It i = first + 1; i != last; ++i) {
    if (!comp(*i, *(i - 1))) continue;
    {
      Hole<It> hole(i);
      do {
        *hole.pos = std::move(*(hole.pos - 1));
        --hole.pos;
      } while (hole.pos != first && comp(hole.value, *(hole.pos - 1)));
      moves += i - hole.pos;
    }
    if (moves > kPartialInsertionMoves) return false;
  }
  return true;
}

template <class It, class Comp>
void sort2(It a, It b, Comp& comp) {
  if (comp(*b, *a)) std::iter_swap(a, b);
}

/// Orders *a <= *b <= *c.
template <class It, class Comp>
void sort3(It a, It b, It c, Comp& comp) {
  sort2(a, b, comp);
  sort2(b, c, comp);
  sort2(a, b, comp);
}

/// Moves a pivot to *first: the median of three, or for larger ranges the ninther. n >= kInsertionSortMax.
template <class It, class Comp>
void choose_pivot(It first, std::iter_difference_t<It> n, Comp& comp) {
  const auto half = n / 2;
  It last = first + n;
  if (n > kNintherMin) {
    sort3(first, first + half, last - 1, comp);
    sort3(first + 1, first + (half - 1), last - 2, comp);
    sort3(first + 2, first + (half + 1), last - 3, comp);
    sort3(first + (half - 1), first + half, first + (half + 1), comp);
    std::iter_swap(first, first + half);
  } else {
    sort3(first + half, first, last - 1, comp);
  }
}

/// Hoare partition: the elements for which pred holds first. Returns the boundary, and whether anything
/// moved (false: the range was already partitioned).
template <class It, class Pred>
std::pair<It, bool> hoare_partition(It l, It r, Pred& pred) {
  bool moved = false;
  for (;;) {
    while (l < r && pred(*l)) ++l;
    while (l < r && !pred(*(r - 1))) --r;
    if (l == r) return {l, moved};
    // *l fails pred and *(r - 1) holds it, so they are different elements: l < r - 1.
    std::iter_swap(l, r - 1);
    moved = true;
    ++l;
    --r;
  }
}

/// Branch-free block partition (BlockQuicksort), same contract as hoare_partition. The unscanned middle is
/// [l, r); the left block is [l, l + kBlock), the right block [r - kBlock, r). Each block's misplaced
/// elements are recorded as offsets; pairs are swapped until one block has none left, which is then
/// consumed and refilled from the middle. Under 2 * kBlock unscanned elements, Hoare finishes (re-testing
/// the leftover block is cheaper than tracking it).
template <class It, class Pred>
std::pair<It, bool> block_partition(It l, It r, Pred& pred) {
  alignas(64) unsigned char offsets_l[kBlock];
  alignas(64) unsigned char offsets_r[kBlock];
  int num_l = 0, num_r = 0, start_l = 0, start_r = 0;
  bool moved = false;
  while (r - l > 2 * kBlock) {
    if (num_l == 0) {
      start_l = 0;
      for (int i = 0; i < kBlock; i += 4) {  // a store and an add per element; no branch on the key
        offsets_l[num_l] = static_cast<unsigned char>(i);
        num_l += !pred(l[i]);
        offsets_l[num_l] = static_cast<unsigned char>(i + 1);
        num_l += !pred(l[i + 1]);
        offsets_l[num_l] = static_cast<unsigned char>(i + 2);
        num_l += !pred(l[i + 2]);
        offsets_l[num_l] = static_cast<unsigned char>(i + 3);
        num_l += !pred(l[i + 3]);
      }
    }
    if (num_r == 0) {
      start_r = 0;
      It back = r - 1;
      for (int i = 0; i < kBlock; i += 4) {
        offsets_r[num_r] = static_cast<unsigned char>(i);
        num_r += pred(*(back - i));
        offsets_r[num_r] = static_cast<unsigned char>(i + 1);
        num_r += pred(*(back - (i + 1)));
        offsets_r[num_r] = static_cast<unsigned char>(i + 2);
        num_r += pred(*(back - (i + 2)));
        offsets_r[num_r] = static_cast<unsigned char>(i + 3);
        num_r += pred(*(back - (i + 3)));
      }
    }
    const int num = std::min(num_l, num_r);
    if (num > 0) {
      moved = true;
      It back = r - 1;
      for (int k = 0; k < num; ++k) {
        std::iter_swap(l + offsets_l[start_l + k], back - offsets_r[start_r + k]);
      }
      num_l -= num;
      num_r -= num;
      start_l += num;
      start_r += num;
    }
    if (num_l == 0) l += kBlock;
    if (num_r == 0) r -= kBlock;
  }
  auto [mid, tail_moved] = hoare_partition(l, r, pred);
  return {mid, moved || tail_moved};
}

/// The partition for elements of type T: branch-free for cheap elements, Hoare otherwise (for expensive
/// comparisons the mispredictions are a small part of the cost).
template <class It, class Pred>
std::pair<It, bool> partition_by(It first, It last, Pred& pred) {
  if constexpr (kCheapToCopy<std::iter_value_t<It>>) {
    return block_partition(first, last, pred);
  } else {
    return hoare_partition(first, last, pred);
  }
}

/// Predicate "goes left of the pivot": elements below it (strict, for the normal partition).
template <class T, class Comp>
struct BelowPivot {
  PivotRef<T> pivot;
  Comp& comp;
  bool operator()(const T& x) const { return comp(x, pivot); }
};

/// Predicate "not above the pivot" (for the partition that gathers the elements equal to the pivot).
template <class T, class Comp>
struct NotAbovePivot {
  PivotRef<T> pivot;
  Comp& comp;
  bool operator()(const T& x) const { return !comp(pivot, x); }
};

/// After the partition of (first, last) around the pivot at *first, with `mid` the boundary: moves the pivot
/// between the two sides and returns its final position.
template <class It>
It place_pivot(It first, It mid) {
  It pos = mid - 1;
  if (pos != first) std::iter_swap(first, pos);
  return pos;
}

/// A few swaps that break the pattern which made a partition unbalanced.
template <class It>
void break_patterns(It first, It last) {
  const auto n = last - first;
  if (n < kInsertionSortMax) return;
  const auto q = n / 4;
  std::iter_swap(first, first + q);
  std::iter_swap(last - 1, last - q);
  if (n > kNintherMin) {
    std::iter_swap(first + 1, first + (q + 1));
    std::iter_swap(first + 2, first + (q + 2));
    std::iter_swap(last - 2, last - (q + 1));
    std::iter_swap(last - 3, last - (q + 2));
  }
}

template <class It, class Comp>
void heap_sort(It first, It last, Comp& comp) {
  std::make_heap(first, last, comp);
  std::sort_heap(first, last, comp);
}

/// Number of unbalanced partitions tolerated before heap sort: log2(n).
template <class Diff>
int bad_partitions_allowed(Diff n) {
  return static_cast<int>(std::bit_width(static_cast<std::make_unsigned_t<Diff>>(n)));
}

/// The pattern-defeating quicksort of [first, last). `leftmost`: nothing precedes the range; otherwise
/// *(first - 1) is not greater than any element of it (it serves as a sentinel and detects equal keys).
template <class It, class Comp>
void pdqsort_loop(It first, It last, Comp& comp, int bad_allowed, bool leftmost) {
  using T = std::iter_value_t<It>;
  for (;;) {
    const auto n = last - first;
    if (n < kInsertionSortMax) {
      if (leftmost) {
        insertion_sort(first, last, comp);
      } else {
        unguarded_insertion_sort(first, last, comp);
      }
      return;
    }
    choose_pivot(first, n, comp);
    if (!leftmost && !comp(*(first - 1), *first)) {
      // The pivot equals the predecessor: gather the elements equal to it; they are done.
      NotAbovePivot<T, Comp> pred{*first, comp};
      first = partition_by(first + 1, last, pred).first;
      continue;
    }
    BelowPivot<T, Comp> pred{*first, comp};
    const auto [mid, moved] = partition_by(first + 1, last, pred);
    It pivot = place_pivot(first, mid);
    const auto left_n = pivot - first;
    const auto right_n = last - (pivot + 1);
    if (left_n < n / 8 || right_n < n / 8) {
      if (--bad_allowed == 0) {
        heap_sort(first, last, comp);
        return;
      }
      break_patterns(first, pivot);
      break_patterns(pivot + 1, last);
    } else if (!moved && partial_insertion_sort(first, pivot, comp) &&
               partial_insertion_sort(pivot + 1, last, comp)) {
      return;
    }
    // Recurse into the smaller side and loop on the larger one: the stack stays O(log n).
    if (left_n < right_n) {
      pdqsort_loop(first, pivot, comp, bad_allowed, leftmost);
      first = pivot + 1;
      leftmost = false;
    } else {
      pdqsort_loop(pivot + 1, last, comp, bad_allowed, false);
      last = pivot;
    }
  }
}

/// Sequential unstable sort of [first, last).
template <class It, class Comp>
void pdqsort(It first, It last, Comp& comp) {
  if (last - first < 2) return;
  pdqsort_loop(first, last, comp, bad_partitions_allowed(last - first), true);
}

// --- merging ------------------------------------------------------------------------------------------

/// `x` as an rvalue when Move (merge sort moves elements between the range and its buffer), else as is.
template <bool Move, class T>
decltype(auto) take(T& x) {
  if constexpr (Move) {
    return std::move(x);
  } else {
    return static_cast<T&>(x);
  }
}

/// Stable sequential merge, like std::merge: of equal elements, those of the first range come first.
/// Copies (or moves, when Move) into `out`; returns the end of the output.
template <bool Move, class It1, class It2, class Out, class Comp>
Out merge_sequential(It1 first1, It1 last1, It2 first2, It2 last2, Out out, Comp& comp) {
  using T = std::iter_value_t<It1>;
  if (first1 != last1 && first2 != last2) {
    // Inputs already in order (sorted, equal or reversed runs): two comparisons turn the merge into copies.
    if (!comp(*first2, *(last1 - 1))) {
      for (; first1 != last1; ++first1, ++out) *out = take<Move>(*first1);
      for (; first2 != last2; ++first2, ++out) *out = take<Move>(*first2);
      return out;
    }
    if (comp(*(last2 - 1), *first1)) {
      for (; first2 != last2; ++first2, ++out) *out = take<Move>(*first2);
      for (; first1 != last1; ++first1, ++out) *out = take<Move>(*first1);
      return out;
    }
  }
  if constexpr (kCheapToCopy<T> && std::is_same_v<T, std::iter_value_t<It2>>) {
    // Branch-free: on random keys which input goes next is unpredictable, and copying a cheap element from
    // either through a conditional move costs less than a mispredicted branch. But then each step waits for
    // the previous one (its load depends on which pointer moved), so two independent chains run at once:
    // one from the front taking the smallest elements, one from the back taking the largest. Each runs
    // min(n1, n2) steps, so neither can read past its inputs nor reach what the other one outputs; a
    // single chain merges what is left in the middle.
    const Out end = out + ((last1 - first1) + (last2 - first2));
    Out back = end;
    for (auto k = std::min<std::ptrdiff_t>(last1 - first1, last2 - first2); k > 0; --k) {
      const T& x1 = *first1;
      const T& x2 = *first2;
      const bool second = comp(x2, x1);
      *out = second ? x2 : x1;
      ++out;
      first2 += second;
      first1 += !second;
      const T& y1 = *(last1 - 1);
      const T& y2 = *(last2 - 1);
      const bool first_last = comp(y2, y1);  // on equal keys the second input's element goes last
      --back;
      *back = first_last ? y1 : y2;
      last1 -= first_last;
      last2 -= !first_last;
    }
    // `<`, not `!=`: with a comparator that is not a strict weak order the chains may cross, and the output is
    // then wrong but nothing is read or written out of bounds.
    while (first1 < last1 && first2 < last2) {
      const T& x1 = *first1;
      const T& x2 = *first2;
      const bool second = comp(x2, x1);
      *out = second ? x2 : x1;
      ++out;
      first2 += second;
      first1 += !second;
    }
    for (; first1 < last1; ++first1, ++out) *out = *first1;
    for (; first2 < last2; ++first2, ++out) *out = *first2;
    return end;
  } else if (first1 != last1 && first2 != last2) {
    for (;;) {
      if (comp(*first2, *first1)) {
        *out = take<Move>(*first2);
        ++out;
        if (++first2 == last2) break;
      } else {
        *out = take<Move>(*first1);
        ++out;
        if (++first1 == last1) break;
      }
    }
  }
  for (; first1 != last1; ++first1, ++out) *out = take<Move>(*first1);
  for (; first2 != last2; ++first2, ++out) *out = take<Move>(*first2);
  return out;
}

/// Bottom-up merge passes of runs of `width`, moving from `from` to `to`, then back, until one run is left.
template <class A, class B, class Comp>
void merge_passes(A from, B to, std::ptrdiff_t n, std::ptrdiff_t width, Comp& comp) {
  if (width >= n) return;
  for (std::ptrdiff_t lo = 0; lo < n; lo += 2 * width) {
    const std::ptrdiff_t mid = std::min(lo + width, n);
    const std::ptrdiff_t hi = std::min(lo + 2 * width, n);
    merge_sequential<true>(from + lo, from + mid, from + mid, from + hi, to + lo, comp);
  }
  merge_passes(to, from, n, 2 * width, comp);
}

/// Stable sequential sort of the n elements at `src`, using the n elements at `other` as scratch; the result
/// ends at `other` when to_other, else at `src`. Both ranges hold n live elements throughout.
/// Runs of up to 8 elements are insertion-sorted, then merged in passes that alternate between the two
/// ranges; the run length (8 or 4) is picked so that the last pass lands where the result is wanted.
template <class A, class B, class Comp>
void stable_sort_sequential(A src, B other, std::ptrdiff_t n, bool to_other, Comp& comp) {
  std::ptrdiff_t run = 8;
  int passes = 0;
  for (std::ptrdiff_t w = run; w < n; w *= 2) ++passes;
  if (n > run / 2 && (passes % 2 == 1) != to_other) run /= 2;  // one more pass flips where it ends
  for (std::ptrdiff_t lo = 0; lo < n; lo += run) insertion_sort(src + lo, src + std::min(lo + run, n), comp);
  merge_passes(src, other, n, run, comp);
  if (n <= run && to_other) std::move(src, src + n, other);
}

}  // namespace weft::detail::sort
