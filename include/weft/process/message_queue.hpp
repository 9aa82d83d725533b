// weft/process/message_queue.hpp — POSIX message queues (mq_open): named, kernel-held queues of bounded
// messages with priorities, shared by unrelated processes.
//
//   auto q = weft::process::MessageQueue::create("jobs", {.max_messages = 10, .max_message_size = 8192});
//   q.send(job, /*priority=*/5);                     // higher priorities are received first
//   auto [bytes, priority] = q.recv_bytes(std::chrono::seconds(1));
//
// Limits. The kernel bounds queues: /proc/sys/fs/mqueue/msg_max (messages per queue, 10 by default for
// unprivileged processes), msgsize_max (bytes per message, 8192 by default), queues_max (queues in the system),
// and RLIMIT_MSGQUEUE (bytes of all of a user's queues). Asking for more is a std::system_error that names the
// settings and the values asked for.
// Names follow SharedMemory's rule: an optional leading '/', then 1 to 200 characters without '/'.
// Lifetime. The creator removes the name when it is destroyed unless keep() was called; processes that have the
// queue open keep using it, and a queue whose name is gone disappears once the last of them closes it.
// Timeouts are measured on the steady clock (the kernel's mq_timed* take a CLOCK_REALTIME time: it is
// recomputed from the steady deadline before each try, so a wall-clock step neither shortens nor extends them).
// Thread safety: every operation may be called from several threads at once (the kernel serialises them), but
// moving or destroying the object must not race with them.
#pragma once

#include <chrono>
#include <cstddef>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <utility>

#include "weft/process/errors.hpp"
#include "weft/process/serialize.hpp"

namespace weft::process {

struct MessageQueueOptions {
  long max_messages = 10;        ///< at most /proc/sys/fs/mqueue/msg_max (unless privileged)
  long max_message_size = 8192;  ///< bytes; at most /proc/sys/fs/mqueue/msgsize_max (unless privileged)
  unsigned mode = 0600;
};

/// A received message and its priority.
struct Received {
  std::string data;
  unsigned priority = 0;
};

/// The queue's attributes as the kernel reports them (mq_getattr).
struct MessageQueueAttributes {
  long max_messages = 0;
  long max_message_size = 0;
  long current_messages = 0;  ///< a snapshot: other processes may change it at once
};

class MessageQueue {
 public:
  /// Creates a new queue (O_CREAT|O_EXCL) that this object owns. Throws std::invalid_argument (bad name, sizes
  /// not above 0), std::system_error (EEXIST; EINVAL/EMFILE/ENOSPC/ENOMEM with a message naming the
  /// /proc/sys/fs/mqueue settings, their values and the values asked for).
  static MessageQueue create(std::string_view name, MessageQueueOptions options = {});
  /// Opens an existing queue for sending and receiving (not owned). Throws std::invalid_argument (bad name),
  /// std::system_error (ENOENT, EACCES...).
  static MessageQueue open(std::string_view name);
  /// Removes a queue's name (ENOENT is not an error). Throws std::invalid_argument, std::system_error.
  static void unlink(std::string_view name);

  MessageQueue(MessageQueue&& o) noexcept
      : mq_(std::exchange(o.mq_, -1)), name_(std::move(o.name_)), owner_(std::exchange(o.owner_, false)),
        max_size_(o.max_size_), max_messages_(o.max_messages_) {}
  MessageQueue& operator=(MessageQueue&& o) noexcept;
  MessageQueue(const MessageQueue&) = delete;
  MessageQueue& operator=(const MessageQueue&) = delete;
  /// Closes the queue and, if this object created it and keep() was not called, removes its name.
  ~MessageQueue();

  /// Sends `bytes` with `priority` (0 to 32767 on Linux: MQ_PRIO_MAX - 1). Waits while the queue is full until
  /// `timeout` (none: forever). Throws MessageTooLarge (above max_message_size(): nothing sent), weft::Timeout
  /// (still full: nothing sent), std::system_error (EINVAL for a priority out of range...).
  void send_bytes(std::string_view bytes, unsigned priority = 0,
                  std::optional<std::chrono::nanoseconds> timeout = std::nullopt);
  void send_bytes(std::span<const std::byte> bytes, unsigned priority = 0,
                  std::optional<std::chrono::nanoseconds> timeout = std::nullopt) {
    send_bytes(std::string_view(reinterpret_cast<const char*>(bytes.data()), bytes.size()), priority, timeout);
  }
  /// Sends pack(v); as send_bytes, plus SerializationError.
  template <class T>
  void send(const T& v, unsigned priority = 0, std::optional<std::chrono::nanoseconds> timeout = std::nullopt) {
    send_bytes(pack(v), priority, timeout);
  }

  /// Receives the oldest message of the highest priority; waits while the queue is empty until `timeout` (none:
  /// forever). Throws weft::Timeout (nothing came: nothing consumed), std::system_error.
  Received recv_bytes(std::optional<std::chrono::nanoseconds> timeout = std::nullopt);
  /// Receives and unpacks a value; as recv_bytes, plus SerializationError (the message is consumed).
  template <class T>
  T recv(std::optional<std::chrono::nanoseconds> timeout = std::nullopt) {
    return unpack<T>(recv_bytes(timeout).data);
  }

  /// mq_getattr. Throws std::system_error.
  MessageQueueAttributes attributes() const;
  long max_messages() const noexcept { return max_messages_; }
  long max_message_size() const noexcept { return max_size_; }
  /// Messages queued now (a snapshot). Throws std::system_error.
  long size() const { return attributes().current_messages; }
  /// The name with its leading '/', as mq_open saw it.
  const std::string& name() const noexcept { return name_; }
  /// Leaves the name in place when this object is destroyed.
  void keep() noexcept { owner_ = false; }

 private:
  MessageQueue(int mq, std::string name, bool owner);
  void reset() noexcept;
  int mq_;  // an mqd_t (a descriptor on Linux)
  std::string name_;
  bool owner_;
  long max_size_ = 0;
  long max_messages_ = 0;
};

}  // namespace weft::process
