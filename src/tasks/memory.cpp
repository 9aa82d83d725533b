// memory:// — the broker and result backend of one process.
//
// Broker: one mutex guards everything; waiters sleep on one condition variable.
//  1. A message is in exactly one of: ready_[queue] (ordered by priority, then publish order), scheduled_
//     (by not_before, wall clock), leased_ (by delivery tag, with its lease end on the steady clock).
//  2. reserve() first moves due scheduled messages and expired leases back to ready_ (an expired lease counts
//     one more delivery), then takes the best ready messages of its queues (up to the asked number) and leases each under a new
//     tag.
//     With nothing ready it sleeps until the earliest of: its deadline, the next not_before, the next lease
//     end, a notify (publish, release, interrupt).
//  3. ack/release/renew find the delivery by tag; a tag that is gone (its lease ended and the message was
//     delivered again or is ready again) makes them return false.
#include "memory.hpp"

#include <algorithm>
#include <optional>
#include <functional>
#include <charconv>
#include <condition_variable>
#include <cstdint>
#include <map>
#include <mutex>
#include <set>
#include <stdexcept>
#include <unordered_map>

namespace weft::tasks::detail {
namespace {

using Steady = std::chrono::steady_clock;

void check_queue(std::string_view q) {
  if (q.empty()) throw std::invalid_argument("weft: an empty queue name");
}

// About the size of `j` as compact JSON, without encoding it: texts (with their quotes) and keys as they are,
// 8 bytes per other scalar, the brackets and separators. What memory:// checks against kMaxEnvelope for a
// message kept as an object. Iterative: arguments nested deeply are no reason to run out of stack.
std::size_t estimated_json_size(const Json& root) {
  std::size_t n = 0;
  std::vector<const Json*> todo{&root};
  while (!todo.empty()) {
    const Json* j = todo.back();
    todo.pop_back();
    if (j->is_string()) {
      n += j->get_ref<const std::string&>().size() + 2;
    } else if (j->is_object()) {
      n += 2;
      for (auto it = j->begin(); it != j->end(); ++it) {
        n += it.key().size() + 4;
        todo.push_back(&it.value());
      }
    } else if (j->is_array()) {
      n += 2;
      for (const Json& e : *j) {
        n += 1;
        todo.push_back(&e);
      }
    } else if (j->is_binary()) {
      n += j->get_binary().size();
    } else {
      n += 8;
    }
  }
  return n;
}

// A message kept as an object: its arguments, canvas and headers, and the fixed part of an envelope.
std::size_t estimated_size(const TaskMessage& m) {
  constexpr std::size_t kEnvelope = 512;  // headers, properties and delivery info around the body
  return kEnvelope + m.id.size() + m.task.size() + m.root_id.size() + m.parent_id.size() + m.group.size() +
         m.origin.size() + estimated_json_size(m.args) + estimated_json_size(m.kwargs) +
         estimated_json_size(m.callbacks) + estimated_json_size(m.errbacks) + estimated_json_size(m.chain) +
         estimated_json_size(m.chord) + estimated_json_size(m.extra_headers);
}

// The broker's state, shared by every connection to the same name.
class MemoryBrokerCore {
 public:
  explicit MemoryBrokerCore(std::size_t max_messages) : max_messages_(max_messages) {}
  std::size_t max_messages() const noexcept { return max_messages_; }

  void publish(std::string_view queue, std::string_view envelope, int priority,
               std::optional<SysTime> not_before) {
    check_outgoing(queue, envelope);
    {
      std::lock_guard lock(mu_);
      check_room_locked(1, envelope.size());
      store_locked(queue, envelope, priority, not_before);
    }
    cv_.notify_all();
  }

  // Messages kept as objects (App's sends): their size is estimated, not measured (nothing is encoded).
  void publish_messages(std::span<const std::shared_ptr<const TaskMessage>> ms) {
    check_batch_size(ms.size());
    std::vector<std::size_t> sizes;
    sizes.reserve(ms.size());
    std::size_t bytes = 0;
    for (const auto& m : ms) {
      if (m == nullptr) throw std::invalid_argument("weft: publish_messages of a null message");
      if (m->queue.empty()) throw std::invalid_argument("weft: an empty queue name");
      const std::size_t size = estimated_size(*m);
      if (size > kMaxEnvelope) {
        throw MessageTooLarge("weft: a message of about " + std::to_string(size) +
                              " bytes (its arguments as JSON) is above the limit of " + std::to_string(kMaxEnvelope));
      }
      sizes.push_back(size);
      bytes += size;
    }
    if (ms.empty()) return;
    {
      std::lock_guard lock(mu_);
      check_room_locked(ms.size(), bytes);  // all or none
      for (std::size_t i = 0; i < ms.size(); ++i) {
        const TaskMessage& m = *ms[i];
        Msg& stored = store_locked(m.queue, {}, m.priority, m.eta);
        stored.message = ms[i];
        stored.bytes = sizes[i];
        bytes_ += sizes[i];
      }
    }
    cv_.notify_all();
  }

  void publish_many(std::span<const Outgoing> batch) {
    check_batch(batch);
    if (batch.empty()) return;
    {
      std::lock_guard lock(mu_);
      std::size_t bytes = 0;
      for (const Outgoing& o : batch) bytes += o.envelope.size();
      check_room_locked(batch.size(), bytes);  // all or none
      for (const Outgoing& o : batch) store_locked(o.queue, o.envelope, o.priority, o.not_before);
    }
    cv_.notify_all();
  }

  // `interrupted` and `interrupts` belong to the calling connection; guarded by mu_.
  // Up to `max` messages (empty: deadline or interrupt).
  std::vector<Delivery> reserve(std::span<const std::string> queues, std::chrono::milliseconds lease,
                                std::size_t max, std::optional<Steady::time_point> deadline, const bool& interrupted,
                                const std::uint64_t& interrupts) {
    if (queues.empty()) throw std::invalid_argument("weft: reserve from no queue");
    if (lease.count() <= 0) throw std::invalid_argument("weft: a lease must be above 0");
    if (max == 0) throw std::invalid_argument("weft: reserve_many of 0 messages");
    for (const auto& q : queues) check_queue(q);
    max = std::min(max, kMaxReserveBatch);
    std::vector<Delivery> out;
    std::unique_lock lock(mu_);
    const std::uint64_t generation = interrupts;
    for (;;) {
      if (interrupted || interrupts != generation) return out;
      const auto now_sys = std::chrono::system_clock::now();
      const auto now = Steady::now();
      promote_locked(now_sys, now);
      while (out.size() < max) {
        // The best ready message of the given queues: highest priority, then oldest.
        std::set<std::pair<int, std::uint64_t>>* best_set = nullptr;
        for (const auto& q : queues) {
          auto it = ready_.find(q);
          if (it == ready_.end() || it->second.empty()) continue;
          if (best_set == nullptr || *it->second.begin() < *best_set->begin()) best_set = &it->second;
        }
        if (best_set == nullptr) break;
        const std::uint64_t seq = best_set->begin()->second;
        best_set->erase(best_set->begin());
        Msg& m = msgs_[seq];
        ++m.deliveries;
        Delivery& d = out.emplace_back(Delivery{next_tag(), m.envelope, m.queue, m.priority, m.deliveries, m.message});
        m.tag = d.tag;
        m.lease_until = now + lease;
        leased_.emplace(d.tag, seq);
        lease_ends_.emplace(m.lease_until, d.tag);
      }
      if (!out.empty()) return out;
      // Sleep until something may become ready by itself, a notify, or the deadline.
      auto until = deadline.value_or(Steady::time_point::max());
      if (!scheduled_.empty()) {
        const auto wait = std::chrono::duration_cast<Steady::duration>(scheduled_.begin()->first - now_sys);
        until = std::min(until, now + std::max(wait, Steady::duration::zero()));
      }
      if (!lease_ends_.empty()) until = std::min(until, lease_ends_.begin()->first);
      if (deadline && now >= *deadline) return out;
      if (until == Steady::time_point::max()) {
        cv_.wait(lock);
      } else {
        cv_.wait_until(lock, until);
      }
    }
  }

  bool ack(const Delivery& d) {
    std::lock_guard lock(mu_);
    return ack_locked(d);
  }

  std::vector<bool> ack_many(std::span<const Delivery> ds) {
    std::vector<bool> out;
    out.reserve(ds.size());
    std::lock_guard lock(mu_);
    for (const Delivery& d : ds) out.push_back(ack_locked(d));
    return out;
  }

  bool release(const Delivery& d, std::optional<SysTime> not_before) {
    {
      std::lock_guard lock(mu_);
      auto it = leased_.find(d.tag);
      if (it == leased_.end()) return false;
      const std::uint64_t seq = it->second;
      erase_lease_locked(it);
      Msg& m = msgs_[seq];
      if (not_before && *not_before > std::chrono::system_clock::now()) {
        scheduled_.emplace(*not_before, seq);
      } else {
        ready_[m.queue].insert({-m.priority, seq});
      }
    }
    cv_.notify_all();
    return true;
  }

  bool renew(const Delivery& d, std::chrono::milliseconds lease) {
    std::lock_guard lock(mu_);
    auto it = leased_.find(d.tag);
    if (it == leased_.end()) return false;
    Msg& m = msgs_[it->second];
    remove_lease_end_locked(m.lease_until, d.tag);
    m.lease_until = Steady::now() + lease;
    lease_ends_.emplace(m.lease_until, d.tag);
    return true;
  }

  std::size_t purge(std::string_view queue) {
    std::lock_guard lock(mu_);
    std::size_t n = 0;
    if (auto it = ready_.find(std::string(queue)); it != ready_.end()) {
      for (const auto& [p, seq] : it->second) forget_locked(seq);
      n += it->second.size();
      it->second.clear();
    }
    for (auto it = scheduled_.begin(); it != scheduled_.end();) {
      if (msgs_[it->second].queue == queue) {
        forget_locked(it->second);
        it = scheduled_.erase(it);
        ++n;
      } else {
        ++it;
      }
    }
    return n;
  }

  std::size_t size(std::string_view queue) {
    std::lock_guard lock(mu_);
    std::size_t n = 0;
    for (const auto& [seq, m] : msgs_) n += m.queue == queue ? 1 : 0;
    return n;
  }

  void interrupt(bool& interrupted, std::uint64_t& interrupts) {
    {
      std::lock_guard lock(mu_);
      interrupted = true;
      ++interrupts;
    }
    cv_.notify_all();
  }
  void resume(bool& interrupted) {
    std::lock_guard lock(mu_);
    interrupted = false;
  }

 private:
  struct Msg {
    std::string queue, envelope, tag;
    std::shared_ptr<const TaskMessage> message;  // publish_messages: the message itself, no envelope
    std::size_t bytes = 0;                        // counted against kMaxMemoryBytes
    int priority = 0;
    int deliveries = 0;
    Steady::time_point lease_until{};
  };

  bool ack_locked(const Delivery& d) {
    auto it = leased_.find(d.tag);
    if (it == leased_.end()) return false;
    const std::uint64_t seq = it->second;
    erase_lease_locked(it);
    forget_locked(seq);
    return true;
  }
  // Throws BrokerFull when `n` more messages of `bytes` would pass the broker's limits.
  void check_room_locked(std::size_t n, std::size_t bytes) const {
    if (msgs_.size() + n > max_messages_ || bytes_ + bytes > kMaxMemoryBytes) {
      throw BrokerFull("weft: the memory broker holds " + std::to_string(msgs_.size()) + " messages (" +
                       std::to_string(bytes_) + " bytes); " + std::to_string(n) + " more would pass its limit of " +
                       std::to_string(max_messages_) + " messages or " + std::to_string(kMaxMemoryBytes) +
                       " bytes");
    }
  }
  void forget_locked(std::uint64_t seq) {
    auto it = msgs_.find(seq);
    if (it == msgs_.end()) return;
    bytes_ -= it->second.bytes;
    msgs_.erase(it);
  }
  // A tag unique within this broker ("m<n>"): delivery tags only need to tell deliveries apart.
  std::string next_tag() { return "m" + std::to_string(++tags_); }

  Msg& store_locked(std::string_view queue, std::string_view envelope, int priority, std::optional<SysTime> not_before) {
    const std::uint64_t seq = ++seq_;
    Msg& m = msgs_[seq];
    m.queue = std::string(queue);
    m.envelope = std::string(envelope);
    m.bytes = m.envelope.size();
    bytes_ += m.bytes;
    m.priority = std::clamp(priority, 0, 9);
    if (not_before && *not_before > std::chrono::system_clock::now()) {
      scheduled_.emplace(*not_before, seq);
    } else {
      ready_[m.queue].insert({-m.priority, seq});
    }
    return m;
  }


  void remove_lease_end_locked(Steady::time_point at, const std::string& tag) {
    auto [lo, hi] = lease_ends_.equal_range(at);
    for (auto it = lo; it != hi; ++it) {
      if (it->second == tag) {
        lease_ends_.erase(it);
        return;
      }
    }
  }
  void erase_lease_locked(std::unordered_map<std::string, std::uint64_t>::iterator it) {
    remove_lease_end_locked(msgs_[it->second].lease_until, it->first);
    msgs_[it->second].tag.clear();
    leased_.erase(it);
  }
  // Protocol step 2: due scheduled messages and expired leases become ready.
  void promote_locked(SysTime now_sys, Steady::time_point now) {
    while (!scheduled_.empty() && scheduled_.begin()->first <= now_sys) {
      const std::uint64_t seq = scheduled_.begin()->second;
      scheduled_.erase(scheduled_.begin());
      ready_[msgs_[seq].queue].insert({-msgs_[seq].priority, seq});
    }
    while (!lease_ends_.empty() && lease_ends_.begin()->first <= now) {
      const std::string tag = lease_ends_.begin()->second;
      lease_ends_.erase(lease_ends_.begin());
      auto it = leased_.find(tag);
      if (it == leased_.end()) continue;
      const std::uint64_t seq = it->second;
      leased_.erase(it);
      msgs_[seq].tag.clear();
      ready_[msgs_[seq].queue].insert({-msgs_[seq].priority, seq});
    }
  }

  std::mutex mu_;
  std::condition_variable cv_;
  std::uint64_t seq_ = 0;
  std::uint64_t tags_ = 0;
  std::size_t bytes_ = 0;  // envelope bytes held
  const std::size_t max_messages_;
  std::unordered_map<std::uint64_t, Msg> msgs_;
  std::unordered_map<std::string, std::set<std::pair<int, std::uint64_t>>> ready_;
  std::multimap<SysTime, std::uint64_t> scheduled_;
  std::unordered_map<std::string, std::uint64_t> leased_;
  std::multimap<Steady::time_point, std::string> lease_ends_;
};

// A connection: the core plus its own interrupt state (interrupting one worker's connection leaves the
// others that share the broker alone).
class MemoryBroker final : public Broker {
 public:
  explicit MemoryBroker(std::shared_ptr<MemoryBrokerCore> core) : core_(std::move(core)) {}
  void publish(std::string_view queue, std::string_view envelope, int priority,
               std::optional<SysTime> not_before) override {
    core_->publish(queue, envelope, priority, not_before);
  }
  void publish_many(std::span<const Outgoing> batch) override { core_->publish_many(batch); }
  void publish_messages(std::span<const std::shared_ptr<const TaskMessage>> ms) override {
    core_->publish_messages(ms);
  }
  std::optional<Delivery> reserve(std::span<const std::string> queues, std::chrono::milliseconds lease,
                                  std::optional<Steady::time_point> deadline) override {
    auto ds = core_->reserve(queues, lease, 1, deadline, interrupted_, interrupts_);
    if (ds.empty()) return std::nullopt;
    return std::move(ds.front());
  }
  std::vector<Delivery> reserve_many(std::span<const std::string> queues, std::chrono::milliseconds lease,
                                     std::size_t max, std::optional<Steady::time_point> deadline) override {
    return core_->reserve(queues, lease, max, deadline, interrupted_, interrupts_);
  }
  bool ack(const Delivery& d) override { return core_->ack(d); }
  std::vector<bool> ack_many(std::span<const Delivery> ds) override { return core_->ack_many(ds); }
  bool release(const Delivery& d, std::optional<SysTime> not_before) override { return core_->release(d, not_before); }
  bool renew(const Delivery& d, std::chrono::milliseconds lease) override { return core_->renew(d, lease); }
  std::size_t purge(std::string_view queue) override { return core_->purge(queue); }
  std::size_t size(std::string_view queue) override { return core_->size(queue); }
  void interrupt() override { core_->interrupt(interrupted_, interrupts_); }
  void resume() override { core_->resume(interrupted_); }

 private:
  std::shared_ptr<MemoryBrokerCore> core_;
  bool interrupted_ = false;     // guarded by the core's mutex
  std::uint64_t interrupts_ = 0;  // guarded by the core's mutex
};

class MemoryBackend final : public ResultBackend {
 public:
  bool store(const ResultMeta& m) override {
    std::lock_guard lock(mu_);
    auto it = results_.find(m.task_id);
    if (it != results_.end() && is_ready(it->second.state)) return false;  // the first final state wins
    results_[m.task_id] = m;
    // Only the callers waiting for this id wake (under mu_: a waiter is registered or has seen the result).
    for (Waiter* w : waiters_) {
      if (w->id == m.task_id) w->cv.notify_one();
    }
    return true;
  }
  std::optional<ResultMeta> get(std::string_view id) override {
    std::lock_guard lock(mu_);
    auto it = results_.find(std::string(id));
    if (it == results_.end()) return std::nullopt;
    return it->second;
  }
  std::optional<ResultMeta> wait(std::string_view id, std::optional<Steady::time_point> deadline) override {
    std::unique_lock lock(mu_);
    Waiter self{std::string(id), {}};
    for (;;) {
      auto it = results_.find(self.id);
      if (it != results_.end() && is_ready(it->second.state)) return it->second;
      if (deadline && Steady::now() >= *deadline) {
        if (it == results_.end()) return std::nullopt;
        return it->second;
      }
      // Registered only while it sleeps: store() of this id wakes this caller alone.
      waiters_.push_back(&self);
      if (deadline) {
        self.cv.wait_until(lock, *deadline);
      } else {
        self.cv.wait(lock);
      }
      waiters_.erase(std::find(waiters_.begin(), waiters_.end(), &self));
    }
  }
  void forget(std::string_view id) override {
    std::lock_guard lock(mu_);
    results_.erase(std::string(id));
  }
  std::size_t expire_results(SysTime done_before, std::size_t limit) override {
    if (limit == 0) throw std::invalid_argument("weft: expire_results with a limit of 0");
    std::lock_guard lock(mu_);
    std::size_t n = 0;
    for (auto it = results_.begin(); it != results_.end() && n < limit;) {
      if (it->second.date_done && *it->second.date_done < done_before) {
        it = results_.erase(it);
        ++n;
      } else {
        ++it;
      }
    }
    return n;
  }

  void put(std::string_view key, std::string_view value, std::optional<std::chrono::milliseconds> ttl) override {
    check_entry(key, value, ttl);
    std::lock_guard lock(mu_);
    set_locked(key, value, ttl);
  }
  bool put_if_absent(std::string_view key, std::string_view value,
                     std::optional<std::chrono::milliseconds> ttl) override {
    check_entry(key, value, ttl);
    std::lock_guard lock(mu_);
    if (live_locked(key) != nullptr) return false;
    set_locked(key, value, ttl);
    return true;
  }
  std::optional<std::string> read(std::string_view key) override {
    std::lock_guard lock(mu_);
    const Entry* e = live_locked(key);
    if (e == nullptr) return std::nullopt;
    return e->value;
  }
  std::vector<std::pair<std::string, std::string>> scan(std::string_view prefix, std::size_t limit) override {
    std::vector<std::pair<std::string, std::string>> out;
    const auto now = std::chrono::system_clock::now();
    std::lock_guard lock(mu_);
    for (auto it = kv_.lower_bound(prefix); it != kv_.end() && out.size() < limit; ++it) {
      if (it->first.compare(0, prefix.size(), prefix) != 0) break;
      if (it->second.expires && *it->second.expires <= now) continue;
      out.emplace_back(it->first, it->second.value);
    }
    return out;
  }
  std::int64_t incr(std::string_view key, std::int64_t by, std::optional<std::chrono::milliseconds> ttl) override {
    check_entry(key, {}, ttl);
    std::lock_guard lock(mu_);
    const Entry* e = live_locked(key);
    std::int64_t n = e == nullptr ? 0 : parse_counter(key, e->value);
    n += by;
    std::optional<SysTime> expires = e == nullptr ? std::nullopt : e->expires;
    set_locked(key, std::to_string(n), ttl);
    if (!ttl) kv_.find(key)->second.expires = expires;
    return n;
  }
  bool erase(std::string_view key) override {
    std::lock_guard lock(mu_);
    const bool live = live_locked(key) != nullptr;
    if (auto it = kv_.find(key); it != kv_.end()) kv_.erase(it);
    return live;
  }

 private:
  struct Entry {
    std::string value;
    std::optional<SysTime> expires;
  };
  // The entry at `key` unless absent or expired.
  const Entry* live_locked(std::string_view key) const {
    auto it = kv_.find(key);
    if (it == kv_.end()) return nullptr;
    if (it->second.expires && *it->second.expires <= std::chrono::system_clock::now()) return nullptr;
    return &it->second;
  }
  void set_locked(std::string_view key, std::string_view value, std::optional<std::chrono::milliseconds> ttl) {
    const auto now = std::chrono::system_clock::now();
    // Expired entries nobody reads again go at the latest when the map has doubled since the last sweep.
    if (kv_.size() >= sweep_at_) {
      std::erase_if(kv_, [&](const auto& kv) { return kv.second.expires && *kv.second.expires <= now; });
      sweep_at_ = std::max<std::size_t>(1024, kv_.size() * 2);
    }
    Entry& e = kv_[std::string(key)];
    e.value = std::string(value);
    e.expires = ttl ? std::optional<SysTime>(now + *ttl) : std::nullopt;
  }

  // A caller of wait(), registered while it sleeps.
  struct Waiter {
    std::string id;
    std::condition_variable cv;
  };

  std::mutex mu_;
  std::vector<Waiter*> waiters_;  // guarded by mu_; one per sleeping wait()
  std::unordered_map<std::string, ResultMeta> results_;
  std::map<std::string, Entry, std::less<>> kv_;
  std::size_t sweep_at_ = 1024;
};

// The process's objects by name: created on first use, living as long as the process.
template <class T>
std::shared_ptr<T> named(const std::string& name, const std::function<std::shared_ptr<T>()>& make) {
  static std::mutex mu;
  static auto* all = new std::unordered_map<std::string, std::shared_ptr<T>>;
  std::lock_guard lock(mu);
  auto& slot = (*all)[name];
  if (!slot) slot = make();
  return slot;
}

// "name?max_messages=N" → name and N (none: kMaxMemoryMessages).
std::pair<std::string, std::optional<std::size_t>> parse_name(const std::string& rest) {
  const auto q = rest.find('?');
  if (q == std::string::npos) return {rest, std::nullopt};
  const std::string name = rest.substr(0, q);
  const std::string query = rest.substr(q + 1);
  constexpr std::string_view kKey = "max_messages=";
  std::size_t n = 0;
  const char* b = query.data() + kKey.size();
  const char* e = query.data() + query.size();
  const auto [end, ec] = query.starts_with(kKey) ? std::from_chars(b, e, n) : std::from_chars_result{b, std::errc::invalid_argument};
  if (ec != std::errc() || end != e || n < 1 || n > kMaxMemoryMessages) {
    throw std::invalid_argument("weft: memory://" + rest + ": the one option is max_messages=N, N from 1 to " +
                                std::to_string(kMaxMemoryMessages));
  }
  return {name, n};
}

}  // namespace

std::shared_ptr<Broker> memory_broker(const std::string& rest) {
  const auto [name, max] = parse_name(rest);
  const std::size_t limit = max.value_or(kMaxMemoryMessages);
  auto core = named<MemoryBrokerCore>(name, [&] { return std::make_shared<MemoryBrokerCore>(limit); });
  if (max && core->max_messages() != *max) {
    throw std::invalid_argument("weft: memory://" + name + " exists already, with max_messages=" +
                                std::to_string(core->max_messages()));
  }
  return std::make_shared<MemoryBroker>(std::move(core));
}
std::shared_ptr<ResultBackend> memory_backend(const std::string& rest) {
  const std::string name = parse_name(rest).first;  // the broker's options mean nothing to the backend
  return named<ResultBackend>(name, [] { return std::make_shared<MemoryBackend>(); });
}

}  // namespace weft::tasks::detail
