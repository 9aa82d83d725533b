// Brokers and result backends by URL.
#include <stdexcept>
#include <string>
#include <vector>

#include "memory.hpp"
#include "sqlite_backend.hpp"
#include "sqlite_broker.hpp"
#include "weft/tasks/backend.hpp"
#include "weft/tasks/broker.hpp"

namespace weft::tasks {

void detail::check_outgoing(std::string_view queue, std::string_view envelope) {
  if (queue.empty()) throw std::invalid_argument("weft: an empty queue name");
  if (envelope.size() > kMaxEnvelope) {
    throw MessageTooLarge("weft: a message of " + std::to_string(envelope.size()) + " bytes is above the limit of " +
                          std::to_string(kMaxEnvelope));
  }
}

void detail::check_batch_size(std::size_t n) {
  if (n > kMaxPublishBatch) {
    throw std::invalid_argument("weft: a batch of " + std::to_string(n) + " messages is above the limit of " +
                                std::to_string(kMaxPublishBatch));
  }
}

void detail::check_batch(std::span<const Outgoing> batch) {
  check_batch_size(batch.size());
  for (const Outgoing& o : batch) check_outgoing(o.queue, o.envelope);
}

void Broker::publish_messages(std::span<const std::shared_ptr<const TaskMessage>> messages) {
  detail::check_batch_size(messages.size());
  std::vector<std::string> envelopes;
  envelopes.reserve(messages.size());
  for (const auto& m : messages) envelopes.push_back(encode_envelope(*m));
  std::vector<Outgoing> batch;
  batch.reserve(messages.size());
  for (std::size_t i = 0; i < messages.size(); ++i) {
    const TaskMessage& m = *messages[i];
    batch.push_back(Outgoing{m.queue, envelopes[i], m.priority, m.eta});
  }
  publish_many(batch);
}

std::string envelope_of(const Delivery& d) { return d.message ? encode_envelope(*d.message) : d.envelope; }

namespace {
struct Url {
  std::string scheme, rest;
};
Url split(std::string_view url) {
  const auto at = url.find("://");
  if (at == std::string_view::npos || at == 0) {
    throw std::invalid_argument("weft: '" + std::string(url) + "' is not a URL (memory://name or sqlite:///path)");
  }
  return Url{std::string(url.substr(0, at)), std::string(url.substr(at + 3))};
}
// sqlite:///abs/path → "/abs/path"; sqlite://rel/path → "rel/path".
std::string sqlite_path(const std::string& rest, std::string_view url) {
  if (rest.empty()) throw std::invalid_argument("weft: '" + std::string(url) + "' names no database file");
  return rest;
}
}  // namespace

std::shared_ptr<Broker> connect_broker(std::string_view url) {
  const Url u = split(url);
  if (u.scheme == "memory") return detail::memory_broker(u.rest);
  if (u.scheme == "sqlite") return detail::make_sqlite_broker(sqlite_path(u.rest, url));
  throw std::invalid_argument("weft: no broker for '" + u.scheme + "://' (memory://, sqlite:///path)");
}

std::shared_ptr<ResultBackend> connect_backend(std::string_view url) {
  const Url u = split(url);
  if (u.scheme == "memory") return detail::memory_backend(u.rest);
  if (u.scheme == "sqlite") return detail::make_sqlite_backend(sqlite_path(u.rest, url));
  throw std::invalid_argument("weft: no result backend for '" + u.scheme + "://' (memory://, sqlite:///path)");
}

}  // namespace weft::tasks
