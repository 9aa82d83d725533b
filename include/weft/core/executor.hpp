// weft/core/executor.hpp — the executor contract every weft executor satisfies.
//
// An executor runs callables and hands back weft::Future results:
//   submit(f, args...) → Future<R>   f(args...) runs later; the arguments are decay-copied (like std::thread).
//   map(f, items[, chunk]) → std::vector<R> of f(item) in input order, or the first exception in input order.
//   shutdown(Shutdown::drain | Shutdown::cancel_pending): stop taking work; run the queued tasks, or cancel
//   them (their futures throw Cancelled); tasks already running always finish. Then submit() throws
//   BrokenExecutor.
// Destruction of an executor is shutdown(drain) followed by joining its workers, unless the executor
// documents otherwise.
//
// The typed contract test suite (tests/core/executor_contract.hpp) runs the same behaviour on every executor.
#pragma once

#include <algorithm>
#include <concepts>
#include <cstddef>
#include <exception>
#include <iterator>
#include <ranges>
#include <type_traits>
#include <vector>

#include "weft/core/future.hpp"

namespace weft {

/// What shutdown() does with tasks that are queued but not started.
enum class Shutdown {
  drain,           ///< run them all, then stop (concurrent.futures: shutdown(wait=True))
  cancel_pending,  ///< cancel them: their futures throw weft::Cancelled (shutdown(cancel_futures=True))
};

/// The executor contract.
template <class E>
concept Executor = requires(E& ex, int (*unary)(int), int (*nullary)(), const std::vector<int>& items) {
  { ex.submit(nullary) } -> std::same_as<Future<int>>;
  { ex.submit(unary, 1) } -> std::same_as<Future<int>>;
  { ex.map(unary, items) } -> std::same_as<std::vector<int>>;
  { ex.map(unary, items, std::size_t{4}) } -> std::same_as<std::vector<int>>;
  ex.shutdown(Shutdown::drain);
};

namespace detail {

/// map() for any executor with submit(): splits `items` into chunks of `chunk` items (0: about four chunks
/// per worker, as concurrent.futures does), runs each chunk as one task and gathers the results in order.
/// On the first exception (in input order) it cancels the chunks that have not started, waits for the ones
/// that have, and rethrows — so no task touches `items` or `f` after map returns. `f` is called concurrently
/// from several threads.
template <class Ex, class F, std::ranges::forward_range Range>
auto map_on(Ex& ex, std::size_t workers, F&& f, const Range& items, std::size_t chunk)
    -> std::vector<std::invoke_result_t<F&, std::ranges::range_reference_t<const Range>>> {
  using R = std::invoke_result_t<F&, std::ranges::range_reference_t<const Range>>;
  static_assert(!std::is_void_v<R>, "map(f, items): f must return a value; use submit() for void functions");
  using It = std::ranges::iterator_t<const Range>;

  const auto n = static_cast<std::size_t>(std::ranges::distance(items));
  std::vector<R> out;
  if (n == 0) return out;
  if (chunk == 0) chunk = std::max<std::size_t>(1, n / (4 * std::max<std::size_t>(workers, 1)));

  std::vector<Future<std::vector<R>>> parts;
  parts.reserve(n / chunk + (n % chunk != 0 ? 1 : 0));  // not (n + chunk - 1) / chunk: chunk may be huge
  auto* fn = &f;
  auto finish = [&parts](std::size_t from) {
    for (std::size_t i = from; i < parts.size(); ++i) parts[i].cancel();
    for (std::size_t i = from; i < parts.size(); ++i) parts[i].wait();
  };
  try {
    It it = std::ranges::begin(items);
    for (std::size_t begin = 0; begin < n; begin += chunk) {
      const std::size_t len = std::min(chunk, n - begin);
      It first = it;
      std::ranges::advance(it, static_cast<std::ptrdiff_t>(len));
      parts.push_back(ex.submit([fn, first, len] {
        std::vector<R> part;
        part.reserve(len);
        It cur = first;
        for (std::size_t k = 0; k < len; ++k, ++cur) part.push_back(std::invoke(*fn, *cur));
        return part;
      }));
    }
  } catch (...) {
    finish(0);
    throw;
  }
  out.reserve(n);
  for (std::size_t i = 0; i < parts.size(); ++i) {
    std::vector<R> part;
    try {
      part = parts[i].get();
    } catch (...) {
      finish(i + 1);
      throw;
    }
    std::move(part.begin(), part.end(), std::back_inserter(out));
  }
  return out;
}

}  // namespace detail
}  // namespace weft
