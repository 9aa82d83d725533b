// weft/core/function.hpp — a move-only type-erased callable with inline storage.
//
// UniqueFunction<R(Args...)> is what std::move_only_function (C++23) is: it holds any callable that is
// move-constructible, including ones that capture move-only state (a Promise, a unique_ptr). Callables up to
// InlineSize bytes that are nothrow-movable live inside the object; larger ones are put on the heap.
// Executors store tasks as these, so a small lambda costs no allocation.
#pragma once

#include <cstddef>
#include <functional>
#include <new>
#include <type_traits>
#include <utility>

namespace weft {

template <class Sig, std::size_t InlineSize = 40>
class UniqueFunction;

/// A move-only callable. Not thread-safe: one object is used by one thread at a time.
/// Calling an empty UniqueFunction throws std::bad_function_call.
template <class R, class... Args, std::size_t InlineSize>
class UniqueFunction<R(Args...), InlineSize> {
  static_assert(InlineSize >= sizeof(void*) && InlineSize % sizeof(void*) == 0);

  struct Ops {
    R (*invoke)(void* self, Args&&... args);
    // Move-constructs the callable at dst from src and destroys src (relocation).
    void (*relocate)(void* dst, void* src) noexcept;
    void (*destroy)(void* self) noexcept;
  };

  // std::invoke_r (C++23): a callable whose result is discarded may be stored in a UniqueFunction<void(...)>
  // (the constructor accepts it), and `return f();` does not compile in a function returning void.
  template <class F>
  static R call(F& f, Args&&... args) {
    if constexpr (std::is_void_v<R>) {
      std::invoke(f, std::forward<Args>(args)...);
    } else {
      return std::invoke(f, std::forward<Args>(args)...);
    }
  }

  template <class F>
  static constexpr bool fits_inline =
      sizeof(F) <= InlineSize && alignof(F) <= alignof(std::max_align_t) &&
      alignof(F) <= alignof(void*) && std::is_nothrow_move_constructible_v<F>;

  template <class F>
  static constexpr Ops inline_ops{
      [](void* self, Args&&... args) -> R {
        return call(*static_cast<F*>(self), std::forward<Args>(args)...);
      },
      [](void* dst, void* src) noexcept {
        ::new (dst) F(std::move(*static_cast<F*>(src)));
        static_cast<F*>(src)->~F();
      },
      [](void* self) noexcept { static_cast<F*>(self)->~F(); }};

  template <class F>
  static constexpr Ops heap_ops{
      [](void* self, Args&&... args) -> R {
        return call(**static_cast<F**>(self), std::forward<Args>(args)...);
      },
      [](void* dst, void* src) noexcept { *static_cast<F**>(dst) = *static_cast<F**>(src); },
      [](void* self) noexcept { delete *static_cast<F**>(self); }};

 public:
  UniqueFunction() noexcept = default;
  UniqueFunction(std::nullptr_t) noexcept {}

  template <class F>
    requires(!std::is_same_v<std::remove_cvref_t<F>, UniqueFunction> &&
             std::is_invocable_r_v<R, std::decay_t<F>&, Args...> &&
             std::is_constructible_v<std::decay_t<F>, F>)
  UniqueFunction(F&& f) {  // NOLINT(google-explicit-constructor): a callable converts implicitly
    using D = std::decay_t<F>;
    if constexpr (std::is_pointer_v<D> || std::is_member_pointer_v<D>) {
      if (f == nullptr) return;
    }
    if constexpr (fits_inline<D>) {
      ::new (static_cast<void*>(storage_)) D(std::forward<F>(f));
      ops_ = &inline_ops<D>;
    } else {
      *reinterpret_cast<D**>(storage_) = new D(std::forward<F>(f));
      ops_ = &heap_ops<D>;
    }
  }

  UniqueFunction(UniqueFunction&& other) noexcept : ops_(other.ops_) {
    if (ops_ != nullptr) {
      ops_->relocate(storage_, other.storage_);
      other.ops_ = nullptr;
    }
  }

  UniqueFunction& operator=(UniqueFunction&& other) noexcept {
    if (this != &other) {
      reset();
      if (other.ops_ != nullptr) {
        other.ops_->relocate(storage_, other.storage_);
        ops_ = other.ops_;
        other.ops_ = nullptr;
      }
    }
    return *this;
  }

  UniqueFunction& operator=(std::nullptr_t) noexcept {
    reset();
    return *this;
  }

  UniqueFunction(const UniqueFunction&) = delete;
  UniqueFunction& operator=(const UniqueFunction&) = delete;

  ~UniqueFunction() { reset(); }

  /// Invokes the callable. Throws std::bad_function_call when empty; otherwise whatever the callable throws.
  R operator()(Args... args) {
    if (ops_ == nullptr) throw std::bad_function_call();
    return ops_->invoke(storage_, std::forward<Args>(args)...);
  }

  explicit operator bool() const noexcept { return ops_ != nullptr; }

  /// Destroys the held callable, leaving this empty.
  void reset() noexcept {
    if (ops_ != nullptr) {
      ops_->destroy(storage_);
      ops_ = nullptr;
    }
  }

 private:
  const Ops* ops_ = nullptr;
  alignas(void*) unsigned char storage_[InlineSize];
};

}  // namespace weft
