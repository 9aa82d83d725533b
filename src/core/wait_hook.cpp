#include "weft/core/detail/wait_hook.hpp"

#include <utility>

namespace weft::detail {

namespace {
thread_local WaitHook* current_hook = nullptr;
}

WaitHook* current_wait_hook() noexcept { return current_hook; }

WaitHook* exchange_wait_hook(WaitHook* hook) noexcept { return std::exchange(current_hook, hook); }

}  // namespace weft::detail
