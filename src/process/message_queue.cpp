#include "weft/process/message_queue.hpp"

#include <fcntl.h>
#include <mqueue.h>
#include <time.h>

#include <cerrno>
#include <fstream>
#include <stdexcept>

#include "weft/core/errors.hpp"

namespace weft::process {

namespace {
std::string checked_name(std::string_view name) {
  if (!name.empty() && name.front() == '/') name.remove_prefix(1);
  if (name.empty() || name.size() > 200 || name.find('/') != std::string_view::npos) {
    throw std::invalid_argument("weft: a message queue name has 1 to 200 characters and no '/' (after an optional "
                                "leading one), not '" + std::string(name) + "'");
  }
  std::string out(1, '/');  // (not "/" + std::string(name): g++ 12 warns a false -Wrestrict on that)
  out.append(name);
  return out;
}

std::string proc_value(const char* file) {
  std::ifstream in(std::string("/proc/sys/fs/mqueue/") + file);
  std::string v;
  in >> v;
  return v.empty() ? "?" : v;
}

// mq_timedsend/receive take an absolute CLOCK_REALTIME time.
timespec realtime_after(std::chrono::nanoseconds d) {
  timespec now{};
  clock_gettime(CLOCK_REALTIME, &now);
  const long long ns = now.tv_nsec + (d.count() > 0 ? d.count() : 0);
  return timespec{now.tv_sec + static_cast<time_t>(ns / 1'000'000'000), static_cast<long>(ns % 1'000'000'000)};
}
}  // namespace

MessageQueue::MessageQueue(int mq, std::string name, bool owner) : mq_(mq), name_(std::move(name)), owner_(owner) {
  mq_attr a{};
  if (::mq_getattr(mq_, &a) == 0) {
    max_size_ = a.mq_msgsize;
    max_messages_ = a.mq_maxmsg;
  }
}

MessageQueue MessageQueue::create(std::string_view name, MessageQueueOptions o) {
  const std::string n = checked_name(name);
  if (o.max_messages <= 0 || o.max_message_size <= 0) {
    throw std::invalid_argument("weft: a message queue needs max_messages and max_message_size above 0");
  }
  mq_attr a{};
  a.mq_maxmsg = o.max_messages;
  a.mq_msgsize = o.max_message_size;
  const mqd_t q = ::mq_open(n.c_str(), O_CREAT | O_EXCL | O_RDWR | O_CLOEXEC, static_cast<mode_t>(o.mode), &a);
  if (q == static_cast<mqd_t>(-1)) {
    const int e = errno;
    std::string why = "creating message queue '" + n + "'";
    if (e == EINVAL || e == EMFILE || e == ENOSPC || e == ENOMEM) {
      why += " with " + std::to_string(o.max_messages) + " messages of " + std::to_string(o.max_message_size) +
             " bytes (limits: /proc/sys/fs/mqueue/msg_max = " + proc_value("msg_max") +
             ", msgsize_max = " + proc_value("msgsize_max") + ", queues_max = " + proc_value("queues_max") +
             "; RLIMIT_MSGQUEUE bounds the bytes of all of a user's queues)";
    }
    throw_errno(e, why);
  }
  return MessageQueue(q, n, true);
}

MessageQueue MessageQueue::open(std::string_view name) {
  const std::string n = checked_name(name);
  const mqd_t q = ::mq_open(n.c_str(), O_RDWR | O_CLOEXEC);
  if (q == static_cast<mqd_t>(-1)) throw_errno(errno, "opening message queue '" + n + "'");
  return MessageQueue(q, n, false);
}

void MessageQueue::unlink(std::string_view name) {
  const std::string n = checked_name(name);
  if (::mq_unlink(n.c_str()) != 0 && errno != ENOENT) throw_errno(errno, "removing message queue '" + n + "'");
}

MessageQueue::~MessageQueue() {
  if (mq_ >= 0) ::mq_close(mq_);
  if (owner_) ::mq_unlink(name_.c_str());
}

void MessageQueue::send_bytes(std::string_view bytes, unsigned priority, std::optional<std::chrono::nanoseconds> timeout) {
  if (static_cast<long>(bytes.size()) > max_size_) throw MessageTooLarge(bytes.size(), static_cast<std::size_t>(max_size_));
  for (;;) {
    int rc;
    if (timeout) {
      const timespec at = realtime_after(*timeout);
      rc = ::mq_timedsend(mq_, bytes.data(), bytes.size(), priority, &at);
    } else {
      rc = ::mq_send(mq_, bytes.data(), bytes.size(), priority);
    }
    if (rc == 0) return;
    if (errno == EINTR) continue;
    if (errno == ETIMEDOUT) throw weft::Timeout("weft: message queue '" + name_ + "' stayed full");
    throw_errno(errno, "sending on message queue '" + name_ + "'");
  }
}

Received MessageQueue::recv_bytes(std::optional<std::chrono::nanoseconds> timeout) {
  Received r;
  r.data.resize(static_cast<std::size_t>(max_size_));  // mq_receive needs room for the largest message
  for (;;) {
    ssize_t k;
    if (timeout) {
      const timespec at = realtime_after(*timeout);
      k = ::mq_timedreceive(mq_, r.data.data(), r.data.size(), &r.priority, &at);
    } else {
      k = ::mq_receive(mq_, r.data.data(), r.data.size(), &r.priority);
    }
    if (k >= 0) {
      r.data.resize(static_cast<std::size_t>(k));
      return r;
    }
    if (errno == EINTR) continue;
    if (errno == ETIMEDOUT) throw weft::Timeout("weft: message queue '" + name_ + "' stayed empty");
    throw_errno(errno, "receiving on message queue '" + name_ + "'");
  }
}

long MessageQueue::size() const {
  mq_attr a{};
  if (::mq_getattr(mq_, &a) != 0) throw_errno(errno, "mq_getattr on '" + name_ + "'");
  return a.mq_curmsgs;
}

}  // namespace weft::process
