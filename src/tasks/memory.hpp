// src/tasks/memory.hpp — the memory:// broker and result backend (one process), private to src/tasks.
#pragma once

#include <memory>
#include <string>

#include "weft/tasks/backend.hpp"
#include "weft/tasks/broker.hpp"

namespace weft::tasks::detail {

/// A connection to the process's broker named `name` (the broker is created on first use and lives until the
/// process ends, so a client and a
/// worker that connect at different times share it).
std::shared_ptr<Broker> memory_broker(const std::string& name);
/// The process's result backend named `name` (same lifetime rule).
std::shared_ptr<ResultBackend> memory_backend(const std::string& name);

}  // namespace weft::tasks::detail
