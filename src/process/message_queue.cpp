#include "weft/process/message_queue.hpp"

#include <fcntl.h>
#include <mqueue.h>
#include <time.h>

#include <algorithm>
#include <cerrno>
#include <fstream>
#include <stdexcept>

#include "weft/core/errors.hpp"
#include "weft/process/detail/framing.hpp"

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

using Clock = std::chrono::steady_clock;

// mq_timedsend/receive take an absolute CLOCK_REALTIME time, which steps when the wall clock is set. Each try
// waits at most kSlice towards the steady deadline: a step forward ends a try early (the caller tries again
// while the steady deadline has not passed), a step backward lengthens the wait by at most kSlice.
constexpr std::chrono::seconds kSlice{1};

timespec realtime_for_next_try(Clock::time_point deadline) {
  const auto left = std::max(Clock::duration::zero(), std::min<Clock::duration>(deadline - Clock::now(), kSlice));
  timespec now{};
  ::clock_gettime(CLOCK_REALTIME, &now);
  const long long ns = now.tv_nsec + std::chrono::duration_cast<std::chrono::nanoseconds>(left).count();
  return timespec{now.tv_sec + static_cast<time_t>(ns / 1'000'000'000), static_cast<long>(ns % 1'000'000'000)};
}
}  // namespace

MessageQueue::MessageQueue(int mq, std::string name, bool owner) : mq_(mq), name_(std::move(name)), owner_(owner) {
  mq_attr a{};
  if (::mq_getattr(mq_, &a) != 0) {
    const int e = errno;
    reset();
    throw_errno(e, "mq_getattr on '" + name_ + "'");
  }
  max_size_ = a.mq_msgsize;
  max_messages_ = a.mq_maxmsg;
}

void MessageQueue::reset() noexcept {
  if (mq_ >= 0) ::mq_close(std::exchange(mq_, -1));
  if (owner_) ::mq_unlink(name_.c_str());
  owner_ = false;
}

MessageQueue& MessageQueue::operator=(MessageQueue&& o) noexcept {
  if (this != &o) {
    reset();
    mq_ = std::exchange(o.mq_, -1);
    name_ = std::move(o.name_);
    owner_ = std::exchange(o.owner_, false);
    max_size_ = o.max_size_;
    max_messages_ = o.max_messages_;
  }
  return *this;
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
      // Name the setting most likely at fault first, then all of them.
      const char* culprit = e == ENOSPC ? "queues_max (queues in the system)"
                            : e == EMFILE || e == ENOMEM
                                ? "RLIMIT_MSGQUEUE (bytes of all of this user's queues; see ulimit -q)"
                                : "msg_max or msgsize_max (per queue)";
      why += " with max_messages = " + std::to_string(o.max_messages) + " and max_message_size = " +
             std::to_string(o.max_message_size) + ": over a kernel limit, probably " + culprit +
             " (/proc/sys/fs/mqueue/msg_max = " + proc_value("msg_max") + ", /proc/sys/fs/mqueue/msgsize_max = " +
             proc_value("msgsize_max") + ", /proc/sys/fs/mqueue/queues_max = " + proc_value("queues_max") + ")";
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

MessageQueue::~MessageQueue() { reset(); }

void MessageQueue::send_bytes(std::string_view bytes, unsigned priority, std::optional<std::chrono::nanoseconds> timeout) {
  if (bytes.size() > static_cast<std::size_t>(max_size_)) {
    throw MessageTooLarge(bytes.size(), static_cast<std::size_t>(max_size_));
  }
  const Clock::time_point deadline = timeout ? detail::deadline_after(*timeout) : Clock::time_point{};
  for (;;) {
    int rc;
    if (timeout) {
      const timespec at = realtime_for_next_try(deadline);
      rc = ::mq_timedsend(mq_, bytes.data(), bytes.size(), priority, &at);
    } else {
      rc = ::mq_send(mq_, bytes.data(), bytes.size(), priority);
    }
    if (rc == 0) return;
    if (errno == EINTR) continue;
    if (errno == ETIMEDOUT) {
      if (Clock::now() < deadline) continue;  // a slice ended, or the wall clock stepped forward
      throw weft::Timeout("weft: message queue '" + name_ + "' stayed full");
    }
    throw_errno(errno, "sending on message queue '" + name_ + "'");
  }
}

Received MessageQueue::recv_bytes(std::optional<std::chrono::nanoseconds> timeout) {
  Received r;
  r.data.resize(static_cast<std::size_t>(max_size_));  // mq_receive needs room for the largest message
  const Clock::time_point deadline = timeout ? detail::deadline_after(*timeout) : Clock::time_point{};
  for (;;) {
    ssize_t k;
    if (timeout) {
      const timespec at = realtime_for_next_try(deadline);
      k = ::mq_timedreceive(mq_, r.data.data(), r.data.size(), &r.priority, &at);
    } else {
      k = ::mq_receive(mq_, r.data.data(), r.data.size(), &r.priority);
    }
    if (k >= 0) {
      r.data.resize(static_cast<std::size_t>(k));
      return r;
    }
    if (errno == EINTR) continue;
    if (errno == ETIMEDOUT) {
      if (Clock::now() < deadline) continue;  // a slice ended, or the wall clock stepped forward
      throw weft::Timeout("weft: message queue '" + name_ + "' stayed empty");
    }
    throw_errno(errno, "receiving on message queue '" + name_ + "'");
  }
}

MessageQueueAttributes MessageQueue::attributes() const {
  mq_attr a{};
  if (::mq_getattr(mq_, &a) != 0) throw_errno(errno, "mq_getattr on '" + name_ + "'");
  return MessageQueueAttributes{a.mq_maxmsg, a.mq_msgsize, a.mq_curmsgs};
}

}  // namespace weft::process
