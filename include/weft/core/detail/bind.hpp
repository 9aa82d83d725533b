// weft/core/detail/bind.hpp — turns submit(f, args...) into one callable that owns decay-copies of both.
#pragma once

#include <functional>
#include <type_traits>
#include <utility>

namespace weft::detail {

/// f itself when there are no arguments; otherwise a lambda that owns f and the arguments and calls
/// f(std::move(args)...) once.
template <class F, class... Args>
auto bind_task(F&& f, Args&&... args) {
  if constexpr (sizeof...(Args) == 0) {
    return std::decay_t<F>(std::forward<F>(f));
  } else {
    return [f = std::forward<F>(f), ... args = std::forward<Args>(args)]() mutable -> decltype(auto) {
      return std::invoke(std::move(f), std::move(args)...);
    };
  }
}

}  // namespace weft::detail
