// weft/process/message_queue.hpp — POSIX message queues (mq_open): named, kernel-held queues of bounded
// messages with priorities, shared by unrelated processes.
//
//   auto q = weft::process::MessageQueue::create("jobs", {.max_messages = 10, .max_message_size = 8192});
//   q.send(job, /*priority=*/5);                     // higher priorities are received first
//   auto [bytes, priority] = q.recv_bytes(std::chrono::seconds(1));
//
// The kernel bounds them: /proc/sys/fs/mqueue/msg_max (messages per queue, default 10 for unprivileged
// processes), msgsize_max (bytes per message, default 8192) and queues_max; asking for more is an error naming
// the setting. The creator removes the name when it is destroyed unless keep() was called.
// Thread-safe (the kernel serialises operations). Move-only.
#pragma once

#include <chrono>
#include <cstddef>
#include <optional>
#include <string>
#include <string_view>
#include <utility>

#include "weft/process/errors.hpp"
#include "weft/process/serialize.hpp"

namespace weft::process {

struct MessageQueueOptions {
  long max_messages = 10;       ///< at most /proc/sys/fs/mqueue/msg_max (unless privileged)
  long max_message_size = 8192; ///< at most /proc/sys/fs/mqueue/msgsize_max
  unsigned mode = 0600;
};

struct Received {
  std::string data;
  unsigned priority = 0;
};

class MessageQueue {
 public:
  /// Creates a new queue (O_EXCL). Names as for SharedMemory. Throws std::invalid_argument (bad name or
  /// sizes), std::system_error (EEXIST; EINVAL/EMFILE/ENOSPC naming the /proc/sys/fs/mqueue limit).
  static MessageQueue create(std::string_view name, MessageQueueOptions options = {});
  /// Opens an existing queue. Throws std::system_error (ENOENT).
  static MessageQueue open(std::string_view name);
  /// Removes a queue's name (ENOENT is not an error). Throws std::system_error.
  static void unlink(std::string_view name);

  MessageQueue(MessageQueue&& o) noexcept
      : mq_(std::exchange(o.mq_, -1)), name_(std::move(o.name_)), owner_(std::exchange(o.owner_, false)),
        max_size_(o.max_size_), max_messages_(o.max_messages_) {}
  MessageQueue& operator=(MessageQueue&&) = delete;
  MessageQueue(const MessageQueue&) = delete;
  ~MessageQueue();

  /// Sends; waits while the queue is full until `timeout` (Timeout: nothing sent). Throws MessageTooLarge.
  void send_bytes(std::string_view bytes, unsigned priority = 0,
                  std::optional<std::chrono::nanoseconds> timeout = std::nullopt);
  template <class T>
  void send(const T& v, unsigned priority = 0, std::optional<std::chrono::nanoseconds> timeout = std::nullopt) {
    send_bytes(pack(v), priority, timeout);
  }
  /// Receives the oldest message of the highest priority; waits while empty until `timeout` (Timeout).
  Received recv_bytes(std::optional<std::chrono::nanoseconds> timeout = std::nullopt);
  template <class T>
  T recv(std::optional<std::chrono::nanoseconds> timeout = std::nullopt) {
    return unpack<T>(recv_bytes(timeout).data);
  }

  long max_messages() const noexcept { return max_messages_; }
  long max_message_size() const noexcept { return max_size_; }
  /// Messages queued now.
  long size() const;
  const std::string& name() const noexcept { return name_; }
  void keep() noexcept { owner_ = false; }

 private:
  MessageQueue(int mq, std::string name, bool owner);
  int mq_;
  std::string name_;
  bool owner_;
  long max_size_ = 0;
  long max_messages_ = 0;
};

}  // namespace weft::process
