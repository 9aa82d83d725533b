// src/tasks/sqlite_broker.hpp — the sqlite:///path broker: messages in a SQLite database file that several
// processes on one machine share (the protocol is in sqlite_broker.cpp).
#pragma once

#include <memory>
#include <string>

#include "sqlite_db.hpp"
#include "weft/tasks/broker.hpp"

namespace weft::tasks::detail {

/// Opens (creates) the broker database at `path`; its directory must exist. Throws std::invalid_argument
/// (empty path), weft::Error (cannot open it, or it holds another schema version).
std::shared_ptr<Broker> make_sqlite_broker(const std::string& path);
std::shared_ptr<Broker> make_sqlite_broker(const std::string& path, const SqliteOptions& options);

}  // namespace weft::tasks::detail
