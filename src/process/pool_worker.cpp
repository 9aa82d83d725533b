// A ProcessPool worker process: takes tasks from its inbox, runs them, puts results in its outbox. The
// protocol is in weft/process/detail/pool_protocol.hpp; the pool's side is pool.cpp.
#include <dlfcn.h>
#include <fcntl.h>
#include <sys/mman.h>
#include <unistd.h>

#include <chrono>
#include <cstring>
#include <mutex>
#include <set>
#include <string>
#include <unordered_map>

#include "weft/core/detail/clock.hpp"
#include "weft/core/detail/futex.hpp"
#include "weft/process/detail/pool_protocol.hpp"
#include "weft/process/queue.hpp"
#include "weft/trace/trace.hpp"

namespace weft::process::detail {

namespace {

std::mutex& registry_mu() {
  static std::mutex m;
  return m;
}
std::set<PoolTrampoline>& trampolines() {
  static std::set<PoolTrampoline> s;
  return s;
}
std::unordered_map<std::string, NamedFunction>& named() {
  static std::unordered_map<std::string, NamedFunction> m;
  return m;
}

std::int64_t now_ns() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

// Resolves and runs one task; appends the encoded result to `out`. Throws what the task throws.
void run_task(const TaskHeader& h, std::string_view rest, std::string& out) {
  PoolTrampoline t = nullptr;
  void* fn = nullptr;
  if (h.kind == TaskKind::call_by_name) {
    if (rest.size() < h.name_length) throw ProtocolError("weft: a task message is shorter than its header says");
    std::string_view name = rest.substr(0, h.name_length);
    rest.remove_prefix(h.name_length);
    const NamedFunction* f = find_named(name);
    if (f == nullptr) throw weft::Error("weft: no function is registered as '" + std::string(name) + "' in the worker");
    t = f->trampoline;
    fn = f->fn;
  } else if (h.kind == TaskKind::call) {
    t = reinterpret_cast<PoolTrampoline>(h.trampoline);
    fn = reinterpret_cast<void*>(h.fn);
    // Only data crosses: the trampoline must be one this image registered, the function code that is mapped.
    if (!known_pool_trampoline(t)) throw weft::Error("weft: the task names a call form this worker does not know");
    Dl_info info{};
    if (::dladdr(fn, &info) == 0) {
      throw weft::Error("weft: the task's function is not in the worker's image (loaded after the fork server?)");
    }
  } else {
    throw ProtocolError("weft: unknown task kind " + std::to_string(static_cast<std::uint32_t>(h.kind)));
  }
  t(fn, rest, out);
}

void encode_error(std::string& out, std::size_t keep, const std::string& type, const std::string& what) {
  out.resize(keep);
  pack_into(out, std::make_tuple(type, what));
}

// The spans user code recorded in this worker while the task ran: [name, submit, start, end, worker, failed].
std::string take_spans() {
  std::vector<trace::Span> spans = trace::snapshot();
  trace::clear();
  std::vector<std::tuple<std::string, std::uint64_t, std::uint64_t, std::uint64_t, std::uint32_t, bool>> rows;
  rows.reserve(spans.size());
  for (const auto& s : spans) {
    rows.emplace_back(s.name != nullptr ? s.name : "", s.submit, s.start, s.end, s.worker, s.failed);
  }
  return rows.empty() ? std::string() : pack(rows);
}

}  // namespace

bool register_pool_trampoline(PoolTrampoline t) noexcept {
  std::lock_guard lock(registry_mu());
  trampolines().insert(t);
  return true;
}

bool known_pool_trampoline(PoolTrampoline t) noexcept {
  std::lock_guard lock(registry_mu());
  return trampolines().count(t) != 0;
}

void register_named(std::string_view name, NamedFunction f) {
  if (name.empty()) throw std::invalid_argument("weft: a registered function needs a name");
  std::lock_guard lock(registry_mu());
  if (!named().emplace(std::string(name), f).second) {
    throw std::invalid_argument("weft: a function is already registered as '" + std::string(name) + "'");
  }
}

const NamedFunction* find_named(std::string_view name) noexcept {
  std::lock_guard lock(registry_mu());
  auto it = named().find(std::string(name));
  return it == named().end() ? nullptr : &it->second;
}

Fd& Fd::operator=(Fd&& o) noexcept {
  if (this != &o) {
    if (fd_ >= 0) ::close(fd_);
    fd_ = std::exchange(o.fd_, -1);
  }
  return *this;
}

Fd::~Fd() {
  if (fd_ >= 0) ::close(fd_);
}

std::shared_ptr<std::vector<Fd>> dup_all(const std::vector<int>& fds) {
  auto out = std::make_shared<std::vector<Fd>>();
  for (int fd : fds) {
    int d = ::fcntl(fd, F_DUPFD_CLOEXEC, 0);
    if (d < 0) throw_errno(errno, "dup of a descriptor for a ProcessPool initializer");
    out->emplace_back(d);
  }
  return out;
}

void pool_worker_main(Queue inbox, Queue outbox, Fd control, Fd wake, WorkerConfig cfg, std::vector<Fd> init_fds) {
  void* mem = ::mmap(nullptr, sizeof(ControlBlock), PROT_READ | PROT_WRITE, MAP_SHARED, control.get(), 0);
  if (mem == MAP_FAILED) throw_errno(errno, "mapping the pool's control block in a worker");
  auto* cb = static_cast<ControlBlock*>(mem);
  WorkerSlot& slot = cb->slots[cfg.index];
  const int wake_fd = wake.get();
  auto notify = [cb, wake_fd] {
    // Dekker pair with the collector's (or a waiter's) announcement of its sleep before its last look at the
    // outboxes.
    std::atomic_thread_fence(std::memory_order_seq_cst);
    if (cb->waiters_sleeping.load(std::memory_order_relaxed) != 0) {
      cb->results.fetch_add(1, std::memory_order_release);
      weft::detail::futex_wake_shared(cb->results, INT32_MAX);
    }
    if (cb->collector_sleeping.load(std::memory_order_relaxed) != 0 &&
        cb->helpers_active.load(std::memory_order_relaxed) == 0) {
      const std::uint64_t one = 1;
      [[maybe_unused]] ssize_t k = ::write(wake_fd, &one, sizeof one);
    }
  };
  if (cfg.trace) trace::enable();

  std::string out;
  if (cfg.init_trampoline != 0) {
    TaskHeader h{0, cfg.init_trampoline, cfg.init_fn, TaskKind::call, 0};
    std::vector<int> raw;
    for (auto& f : init_fds) raw.push_back(f.release());
    try {
      FdImport scope(raw);  // the initializer's handles find their descriptors here
      run_task(h, cfg.init_args, out);
      for (int fd : raw) {
        if (fd >= 0) ::close(fd);
      }
    } catch (const std::exception& e) {
      out.assign(sizeof(ResultHeader), '\0');
      encode_error(out, sizeof(ResultHeader), type_name(typeid(e)), e.what());
      ResultHeader r{0, 0, 0, ResultStatus::initializer_failed, 0};
      std::memcpy(out.data(), &r, sizeof r);
      outbox.put_bytes(out);
      notify();
      ::_exit(3);
    }
  }
  slot.ready.store(1, std::memory_order_release);

  std::string msg;
  for (std::uint64_t done = 0; cfg.max_tasks == 0 || done < cfg.max_tasks; ++done) {
    try {
      inbox.get_bytes_into(msg);
    } catch (const weft::ChannelClosed&) {
      break;  // the pool is shutting down and the inbox is drained
    }
    if (msg.size() < sizeof(TaskHeader)) continue;  // cannot even name its task: nothing to answer
    TaskHeader h;
    std::memcpy(&h, msg.data(), sizeof h);
    slot.started_ns.store(now_ns(), std::memory_order_relaxed);
    slot.current.store(h.id, std::memory_order_release);
    const std::uint64_t start = weft::detail::ticks();
    out.assign(sizeof(ResultHeader), '\0');
    ResultStatus status = ResultStatus::ok;
    try {
      run_task(h, std::string_view(msg).substr(sizeof h), out);
    } catch (const std::exception& e) {
      encode_error(out, sizeof(ResultHeader), type_name(typeid(e)), e.what());
      status = ResultStatus::error;
    } catch (...) {
      encode_error(out, sizeof(ResultHeader), "unknown", "the task threw something that is not a std::exception");
      status = ResultStatus::error;
    }
    const std::uint64_t end = weft::detail::ticks();
    std::string spans = cfg.trace ? take_spans() : std::string();
    if (out.size() + spans.size() > outbox.max_message()) {
      const std::size_t size = out.size() + spans.size() - sizeof(ResultHeader);
      spans.clear();
      encode_error(out, sizeof(ResultHeader), "weft::process::MessageTooLarge",
                   MessageTooLarge(size, outbox.max_message() - sizeof(ResultHeader)).what());
      status = ResultStatus::error;
    }
    if (!spans.empty()) out.insert(sizeof(ResultHeader), spans);
    ResultHeader r{h.id, start, end, status, static_cast<std::uint32_t>(spans.size())};
    std::memcpy(out.data(), &r, sizeof r);
    outbox.put_bytes(out);
    slot.current.store(0, std::memory_order_release);
    notify();
  }
  ::munmap(mem, sizeof(ControlBlock));
}

}  // namespace weft::process::detail
