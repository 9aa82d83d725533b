// merge_sort.cpp — divide and conquer on a work-stealing pool: a parallel, stable merge sort.
//
// Merge sort halves the range, sorts the halves — independently, so in parallel with pool.join — and merges
// them. If only the sorts were parallel, the final merge of all n elements would run on one worker and cap
// the speedup. So the merge is divided too: the middle element of the longer input splits it in two, a
// binary search finds where that element falls in the other input, and the two left parts and the two right
// parts are independent merges. Ties go to the first input, which keeps the sort stable.
//
// The halves are sorted into a scratch array and merged back into the data (and the other way round one
// level down), so every level moves each element once and nothing is copied back.
// weft::parallel_stable_sort (weft/parallel/sort.hpp) is the library's version; it is timed last.
//
// Usage: example_merge_sort [elements]     (default 4'000'000)
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

// A key and where it was in the input: sorting by key alone, a stable sort keeps equal keys in input order.
struct Item {
  std::uint32_t key;
  std::uint32_t position;
  bool operator==(const Item&) const = default;
};

bool by_key(const Item& a, const Item& b) { return a.key < b.key; }

// Sizes up to this are handled sequentially (a task's work then dwarfs the cost of a join).
constexpr std::size_t kCutoff = 1 << 14;

// Merges the sorted a[0, na) and b[0, nb) into out; on equal keys, a's elements come first.
void merge(weft::ForkJoinPool& pool, const Item* a, std::size_t na, const Item* b, std::size_t nb, Item* out) {
  if (na + nb <= kCutoff) {
    std::merge(a, a + na, b, b + nb, out, by_key);
    return;
  }
  std::size_t ia = 0, ib = 0;  // split points: a[0, ia) and b[0, ib) go left
  if (na >= nb) {
    ia = na / 2;
    ib = static_cast<std::size_t>(std::lower_bound(b, b + nb, a[ia], by_key) - b);  // b's equal keys go right
  } else {
    ib = nb / 2;
    ia = static_cast<std::size_t>(std::upper_bound(a, a + na, b[ib], by_key) - a);  // a's equal keys go left
  }
  pool.join([&] { merge(pool, a, ia, b, ib, out); },
            [&] { merge(pool, a + ia, na - ia, b + ib, nb - ib, out + ia + ib); });
}

void sort_into(weft::ForkJoinPool& pool, Item* in, Item* out, std::size_t n);

// Sorts data[0, n), with scratch[0, n) as room to merge from.
void sort_in_place(weft::ForkJoinPool& pool, Item* data, Item* scratch, std::size_t n) {
  if (n <= kCutoff) {
    std::stable_sort(data, data + n, by_key);
    return;
  }
  const std::size_t half = n / 2;
  pool.join([&] { sort_into(pool, data, scratch, half); },
            [&] { sort_into(pool, data + half, scratch + half, n - half); });
  merge(pool, scratch, half, scratch + half, n - half, data);
}

// Sorts in[0, n) into out[0, n); `in` is used as scratch.
void sort_into(weft::ForkJoinPool& pool, Item* in, Item* out, std::size_t n) {
  if (n <= kCutoff) {
    std::stable_sort(in, in + n, by_key);
    std::copy(in, in + n, out);
    return;
  }
  const std::size_t half = n / 2;
  pool.join([&] { sort_in_place(pool, in, out, half); },
            [&] { sort_in_place(pool, in + half, out + half, n - half); });
  merge(pool, in, half, in + half, n - half, out);
}

template <class F>
double seconds(F&& f) {
  const auto start = std::chrono::steady_clock::now();
  f();
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
}

}  // namespace

int main(int argc, char** argv) {
  const std::size_t n = argc > 1 ? std::strtoull(argv[1], nullptr, 10) : 4'000'000;
  std::vector<Item> input(n);
  std::mt19937 rng(2024);
  for (std::size_t i = 0; i < n; ++i) input[i] = {static_cast<std::uint32_t>(rng() % 100'000), static_cast<std::uint32_t>(i)};

  weft::ForkJoinPool pool;  // one worker per core
  std::printf("stable-sorting %zu records by a key with many duplicates, on %zu workers\n", n, pool.threads());

  std::vector<Item> expected = input;
  const double t_std = seconds([&] { std::stable_sort(expected.begin(), expected.end(), by_key); });

  std::vector<Item> v = input;
  std::vector<Item> scratch(n);
  const double t_merge = seconds([&] { pool.invoke([&] { sort_in_place(pool, v.data(), scratch.data(), n); }); });
  const bool ok = v == expected;  // same keys, and equal keys in the same (input) order

  std::vector<Item> w = input;
  const double t_weft = seconds([&] { weft::parallel_stable_sort(pool, w.begin(), w.end(), by_key); });
  const bool ok_weft = w == expected;

  std::printf("std::stable_sort            %7.3f s\n", t_std);
  std::printf("parallel merge sort         %7.3f s  speedup %.2fx  result %s\n", t_merge, t_std / t_merge,
              ok ? "matches std::stable_sort" : "WRONG");
  std::printf("weft::parallel_stable_sort  %7.3f s  speedup %.2fx  result %s\n", t_weft, t_std / t_weft,
              ok_weft ? "matches std::stable_sort" : "WRONG");
  return ok && ok_weft ? 0 : 1;
}
