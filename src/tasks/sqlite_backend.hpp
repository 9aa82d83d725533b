// src/tasks/sqlite_backend.hpp — the sqlite:///path result backend: task states in a SQLite database file
// that several processes on one machine share (it may be the broker's file).
#pragma once

#include <memory>
#include <string>

#include "sqlite_db.hpp"
#include "weft/tasks/backend.hpp"

namespace weft::tasks::detail {

/// Opens (creates) the result database at `path`; its directory must exist. Throws std::invalid_argument
/// (empty path), weft::Error (cannot open it, or it holds another schema version).
std::shared_ptr<ResultBackend> make_sqlite_backend(const std::string& path);
std::shared_ptr<ResultBackend> make_sqlite_backend(const std::string& path, const SqliteOptions& options);

}  // namespace weft::tasks::detail
