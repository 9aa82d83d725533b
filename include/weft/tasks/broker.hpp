// weft/tasks/broker.hpp — what carries task messages from clients to workers. Brokers are chosen by URL:
//   memory://[name]           one process (a named in-process broker: every connect with the same name shares it);
//                             memory://name?max_messages=N sets the most messages it holds (the first connect
//                             creates it; default and most kMaxMemoryMessages); a full broker throws BrokerFull
//   sqlite:///path/to/q.db    several processes on one machine, persistent, no server (the embedded default)
//
// Delivery is at-least-once, with leases:
//  1. publish() stores an envelope on a queue, ready at once or at `not_before` (countdown/eta).
//  2. reserve() hands the next ready message of the given queues (higher priority first, then oldest) to one
//     caller under a lease: it stays in the broker, invisible to other reservers, until the lease ends.
//  3. ack() removes it (the task finished: acks_late); release() makes it ready again (at once or later: a
//     retry, or a prefetched task handed back at shutdown); renew() extends the lease of a running task, so
//     that a slow task is not delivered twice.
//  4. A lease that ends (the worker died or stopped renewing) makes the message ready again; its
//     delivery_count grows, which the worker can see.
// Waiting never busy-polls: reserve() sleeps until a message may be ready (a publish, a release, the next
// not_before or lease end) or its deadline.
#pragma once

#include <chrono>
#include <cstddef>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "weft/tasks/message.hpp"

namespace weft::tasks {

/// A reserved message.
struct Delivery {
  std::string tag;        ///< identifies this delivery (changes each time the message is delivered)
  std::string envelope;   ///< as published
  std::string queue;
  int priority = 0;
  int delivery_count = 1; ///< 1 the first time; more after leases ran out or releases
  /// memory://: the message itself, as an App of this process sent it with publish_messages (`envelope` is
  /// then empty: nothing was encoded). envelope_of() gives the envelope either way.
  std::shared_ptr<const TaskMessage> message{};
};

/// The envelope of `d`: d.envelope, or d.message encoded. Throws like encode_envelope.
std::string envelope_of(const Delivery& d);

/// One message of a publish_many batch.
struct Outgoing {
  std::string_view queue;
  std::string_view envelope;
  int priority = 0;
  std::optional<SysTime> not_before{};
};

/// The most messages one publish_many takes, and one reserve_many hands out.
inline constexpr std::size_t kMaxPublishBatch = 10'000;
inline constexpr std::size_t kMaxReserveBatch = 1'000;

/// The broker interface. Implementations are thread-safe: any member from any thread at once.
class Broker {
 public:
  virtual ~Broker() = default;

  /// Stores `envelope` on `queue`. `priority` 0-9 (higher first; clamped). Throws MessageTooLarge
  /// (above kMaxEnvelope), BrokerFull (memory://: at its limits), std::invalid_argument (empty queue name), std::system_error / weft::Error for
  /// storage failures (nothing stored — except when the commit was made and only its sync failed: the error
  /// says so, and the message is queued but may not survive a power loss; sending it again may run it twice).
  virtual void publish(std::string_view queue, std::string_view envelope, int priority,
                       std::optional<SysTime> not_before) = 0;

  /// Stores every message of `batch` (in order, as publish would), all or none: the checks of publish are made
  /// for all of them first (its exceptions, for the first bad one; std::invalid_argument above
  /// kMaxPublishBatch messages), then they are stored in one go (sqlite://: one durable commit for the batch,
  /// instead of one per message). An empty batch does nothing.
  virtual void publish_many(std::span<const Outgoing> batch) = 0;

  /// Publishes whole messages (what an App sends), each on its queue with its priority and eta, all or none
  /// like publish_many. The default encodes them (encode_envelope) and calls publish_many; memory:// keeps
  /// them as they are, so that nothing is encoded or decoded within the process (its MessageTooLarge check
  /// then estimates the JSON size of the arguments instead of measuring an envelope, and arguments JSON
  /// text cannot hold — strings that are not UTF-8 — reach the task as they are instead of failing here). Throws what
  /// encode_envelope and publish_many throw.
  virtual void publish_messages(std::span<const std::shared_ptr<const TaskMessage>> messages);

  /// The next ready message of `queues` under a lease of `lease`; waits until `deadline` (none: until one
  /// comes or interrupt()). Returns nullopt on timeout or interrupt. Throws std::invalid_argument (no queues,
  /// lease not above 0), weft::Error for storage failures.
  virtual std::optional<Delivery> reserve(std::span<const std::string> queues, std::chrono::milliseconds lease,
                                          std::optional<std::chrono::steady_clock::time_point> deadline) = 0;

  /// Up to `max` ready messages at once (at least one unless it returns empty on timeout or interrupt), each
  /// under its own lease, in the order reserve() would hand them out: a worker's prefetch. sqlite://: one
  /// transaction for all of them. Throws like reserve(), and std::invalid_argument for max 0.
  virtual std::vector<Delivery> reserve_many(std::span<const std::string> queues, std::chrono::milliseconds lease,
                                             std::size_t max,
                                             std::optional<std::chrono::steady_clock::time_point> deadline) = 0;

  /// Removes a reserved message. False when this delivery no longer holds it: its lease ended and it was
  /// delivered again (possibly to another worker), or it was acknowledged or released already.
  virtual bool ack(const Delivery& d) = 0;
  /// ack() of each of `ds` (sqlite://: in one transaction); element i tells ack()'s answer for ds[i].
  virtual std::vector<bool> ack_many(std::span<const Delivery> ds) = 0;
  /// Makes a reserved message ready again, at `not_before` (none: now). False when the lease had ended.
  virtual bool release(const Delivery& d, std::optional<SysTime> not_before = std::nullopt) = 0;
  /// Extends the lease to now + `lease`. False when it had already ended (then stop the task if possible:
  /// another worker may run it).
  virtual bool renew(const Delivery& d, std::chrono::milliseconds lease) = 0;

  /// Removes every message of `queue` that is not reserved; returns how many.
  virtual std::size_t purge(std::string_view queue) = 0;
  /// Messages on `queue`: ready, scheduled and reserved.
  virtual std::size_t size(std::string_view queue) = 0;

  /// Makes every reserve() waiting in this process return nullopt now, and later ones return at once, until
  /// resume(). For shutdown.
  virtual void interrupt() = 0;
  virtual void resume() = 0;
};

namespace detail {
/// publish()'s checks, shared by the implementations: std::invalid_argument (empty queue), MessageTooLarge.
void check_outgoing(std::string_view queue, std::string_view envelope);
/// The same for every message of a batch, and its size.
void check_batch(std::span<const Outgoing> batch);
// Throws std::invalid_argument when a batch of `n` messages is above kMaxPublishBatch.
void check_batch_size(std::size_t n);
}  // namespace detail

/// Connects to the broker named by `url` (see the top of this file). Throws std::invalid_argument (unknown
/// scheme, malformed URL), weft::Error / std::system_error (cannot open it).
std::shared_ptr<Broker> connect_broker(std::string_view url);

}  // namespace weft::tasks
