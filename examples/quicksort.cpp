// quicksort.cpp — divide and conquer on a work-stealing pool: a parallel quicksort in a dozen lines.
//
// Quicksort splits a range around a pivot into "below" and "above"; the two sides are independent, so they
// can be sorted at the same time. pool.join(a, b) runs a on the calling worker and offers b to the others:
// an idle worker steals it, and if none does, the caller runs b itself right after a. Every split creates
// more work to steal, so all workers are soon busy. Below a cutoff a side is not worth a task of its own,
// and std::sort finishes it.
//
// The partition of the whole range, the first step, still runs on one worker while the others wait: that
// sequential part caps the speedup (Amdahl's law). weft::parallel_sort (weft/parallel/sort.hpp) also
// partitions large ranges in parallel and uses a faster sequential sort at the leaves; it is timed last.
//
// Usage: example_quicksort [elements]     (default 10'000'000)
#include <algorithm>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <random>
#include <vector>

#include "weft/parallel/fork_join_pool.hpp"
#include "weft/parallel/sort.hpp"

namespace {

// Ranges up to this size are sorted sequentially: large enough that a task's work dwarfs the cost of a
// join (well under a microsecond), small enough to leave plenty of tasks to balance between the workers.
constexpr std::ptrdiff_t kCutoff = 1 << 15;

void quicksort(weft::ForkJoinPool& pool, std::uint32_t* first, std::uint32_t* last) {
  if (last - first <= kCutoff) {
    std::sort(first, last);
    return;
  }
  // Pivot: the median of the first, middle and last elements (sorted or reversed input splits evenly).
  std::uint32_t a = *first, b = first[(last - first) / 2], c = *(last - 1);
  const std::uint32_t pivot = std::max(std::min(a, b), std::min(std::max(a, b), c));
  // Three-way split — [first, lower) below the pivot, [lower, upper) equal to it, [upper, last) above —
  // so that many equal keys cannot make the recursion deep.
  std::uint32_t* lower = std::partition(first, last, [pivot](std::uint32_t x) { return x < pivot; });
  std::uint32_t* upper = std::partition(lower, last, [pivot](std::uint32_t x) { return x == pivot; });
  pool.join([&] { quicksort(pool, first, lower); }, [&] { quicksort(pool, upper, last); });
}

template <class F>
double seconds(F&& f) {
  const auto start = std::chrono::steady_clock::now();
  f();
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
}

}  // namespace

int main(int argc, char** argv) {
  const std::size_t n = argc > 1 ? std::strtoull(argv[1], nullptr, 10) : 10'000'000;
  std::vector<std::uint32_t> input(n);
  std::mt19937 rng(2024);
  for (std::uint32_t& x : input) x = static_cast<std::uint32_t>(rng());

  weft::ForkJoinPool pool;  // one worker per core
  std::printf("sorting %zu random 32-bit keys on %zu workers\n", n, pool.threads());

  std::vector<std::uint32_t> expected = input;
  const double t_std = seconds([&] { std::sort(expected.begin(), expected.end()); });

  std::vector<std::uint32_t> v = input;
  // From outside the pool, invoke() runs the call on a worker and waits; inside, join() forks and joins.
  const double t_quick = seconds([&] { pool.invoke([&] { quicksort(pool, v.data(), v.data() + v.size()); }); });
  const bool ok = v == expected;

  std::vector<std::uint32_t> w = input;
  const double t_weft = seconds([&] { weft::parallel_sort(pool, w.begin(), w.end()); });
  const bool ok_weft = w == expected;

  std::printf("std::sort            %7.3f s\n", t_std);
  std::printf("parallel quicksort   %7.3f s  speedup %.2fx  result %s\n", t_quick, t_std / t_quick,
              ok ? "matches std::sort" : "WRONG");
  std::printf("weft::parallel_sort  %7.3f s  speedup %.2fx  result %s\n", t_weft, t_std / t_weft,
              ok_weft ? "matches std::sort" : "WRONG");
  return ok && ok_weft ? 0 : 1;
}
