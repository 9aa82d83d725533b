// io::serve: parked connections (protocol at the top of serve.hpp).
#include "weft/io/serve.hpp"

#include <cassert>
#include <cerrno>

#include "loop_core.hpp"
#include "weft/io/time.hpp"

namespace weft::io::detail {

// A parked connection: the read that waits for its data is the record's base, so the completion callback gets
// the record back with a static_cast.
struct ParkedServer::Conn : IoOp {
  explicit Conn(Stream s, ParkedServer* owner) noexcept : stream(std::move(s)), server(owner) {}
  Stream stream;
  Conn* prev = nullptr;
  Conn* next = nullptr;
  ParkedServer* server;
  std::int64_t parked_at = 0;
};

ParkedServer::~ParkedServer() { assert(pending_reads_ == 0 && parked_ == nullptr); }

// io_uring: a pooled read, whose buffer the kernel picks when data arrives. epoll: a readiness wait (poll_in);
// on_read then reads into a pool buffer and runs the handler at once, so a buffer is held only while a handler
// uses it — taking one at park time would hold buffers across turns for every connection that had data.
void ParkedServer::park(Conn* c) {
  auto& core = static_cast<LoopImpl&>(current_core());
  IoOp& op = *c;
  op = IoOp{};
  op.kind = core.backend().kernel_picks_buffers() ? OpKind::recv_pooled : OpKind::poll_in;
  op.fd = c->stream.native_handle();
  op.buffer_id = kHeapBuffer;
  op.on_complete = &ParkedServer::on_read;
  c->parked_at = core.now();
  c->prev = nullptr;
  c->next = parked_;
  if (parked_ != nullptr) parked_->prev = c;
  parked_ = c;
  ++pending_reads_;
  if (!core.start(op)) {
    // epoll found data (or the end) at once. Finish in a later turn: calling on_read here would start the
    // handler on this stack, which may park again, and so on without bound while data keeps arriving.
    core.call_soon([c] { on_read(c); });
  }
}

void ParkedServer::close(Conn* c) noexcept {
  --stats_->open;
  delete c;  // closes the stream
}

void ParkedServer::on_read(IoOp* op) {
  auto* c = static_cast<Conn*>(op);
  ParkedServer* s = c->server;
  if (op->kind == OpKind::poll_in && op->result >= 0 && !s->stopping_) {  // epoll: readable; read it now
    auto& core = static_cast<LoopImpl&>(current_core());
    op->kind = OpKind::recv_pooled;
    op->buffer_id = kHeapBuffer;
    op->buf = nullptr;
    if (!core.backend().try_now(*op)) {  // readiness was stale: wait again
      op->kind = OpKind::poll_in;
      op->state = OpState::pending;
      if (!core.start(*op)) core.call_soon([c] { on_read(c); });
      return;
    }
  }
  --s->pending_reads_;
  if (c->prev != nullptr) c->prev->next = c->next;
  else s->parked_ = c->next;
  if (c->next != nullptr) c->next->prev = c->prev;
  const std::int32_t r = op->result;
  Buffer data;
  if (op->kind == OpKind::poll_in) {  // a readiness wait that ended without a read (cancelled, or stopping)
    s->close(c);
    if (s->pending_reads_ == 0 && s->drained_) current_core().schedule(std::exchange(s->drained_, {}));
    return;
  }
  if (r <= 0 && op->buffer_id == kHeapBuffer && op->buf != nullptr) delete[] static_cast<char*>(op->buf);
  if (r > 0) {
    if (op->buffer_id == kHeapBuffer) {
      data = Buffer(std::unique_ptr<char[]>(static_cast<char*>(op->buf)), static_cast<std::size_t>(r));
    } else {
      LoopCore& core = current_core();
      data = Buffer(&core, op->buffer_id, core.buffer_data(op->buffer_id), static_cast<std::size_t>(r));
    }
  }
  if (r <= 0 || s->stopping_) {
    s->close(c);  // end of stream, reset, cancelled (stop or idle sweep)
  } else {
    ++s->stats_->handled;
    // Run it now: it usually answers and parks again before the next completion is looked at, so one pool
    // buffer serves a whole batch of events.
    s->group_->spawn_eager(s->handle(c, std::move(data)));
  }
  if (s->pending_reads_ == 0 && s->drained_) current_core().schedule(std::exchange(s->drained_, {}));
}

Task<void> ParkedServer::handle(Conn* c, Buffer data) {
  Next next = Next::close;
  try {
    next = co_await call_(ctx_, c->stream, std::move(data));
  } catch (const IoError&) {
  } catch (const Cancelled&) {
  } catch (...) {
    ++stats_->failed;
    report_unhandled_exception(std::current_exception(), "weft::io::serve handler");
  }
  if (next == Next::keep && !stopping_ && c->stream.is_open()) park(c);
  else close(c);
}

void ParkedServer::stop_all() noexcept {
  LoopCore& core = current_core();
  for (Conn* c = parked_; c != nullptr; c = c->next) core.cancel(*c);
}

void ParkedServer::sweep() noexcept {
  LoopCore& core = current_core();
  const std::int64_t limit = options_.idle_timeout.count();
  for (Conn* c = parked_; c != nullptr; c = c->next) {
    if (core.now() - c->parked_at >= limit && c->state == OpState::pending) {
      ++stats_->idle_closed;
      core.cancel(*c);
    }
  }
  if (!stopping_) {
    sweep_timer_.deadline = core.now() + std::max<std::int64_t>(limit / 4, 1'000'000);
    core.add_timer(sweep_timer_);
  }
}

namespace {
bool transient_accept_error(const IoError& e) {
  switch (e.code().value()) {
    case EMFILE: case ENFILE: case ENOBUFS: case ENOMEM: case ECONNABORTED: case EPERM: return true;
    default: return false;
  }
}
}  // namespace

Task<void> ParkedServer::run(Listener& listener) {
  LoopCore& core = current_core();
  std::exception_ptr error;
  try {
    co_await task_group([&](TaskGroup& g) -> Task<void> {
      group_ = &g;
      if (options_.idle_timeout.count() > 0) {
        sweep_timer_.fn = [](TimerNode* t) { static_cast<ParkedServer*>(t->ctx)->sweep(); };
        sweep_timer_.ctx = this;
        sweep_timer_.deadline = core.now() + std::max<std::int64_t>(options_.idle_timeout.count() / 4, 1'000'000);
        core.add_timer(sweep_timer_);
      }
      try {
        for (;;) {
          Stream s;
          try {
            s = co_await listener.accept();
          } catch (const IoError& e) {
            if (!transient_accept_error(e)) throw;
          }
          if (!s.is_open()) {  // out of descriptors or memory for a moment: back off, then accept again
            co_await sleep(std::chrono::milliseconds(10));
            continue;
          }
          if (stats_->open >= options_.max_connections) {
            ++stats_->rejected;
            continue;  // `s` closes here
          }
          ++stats_->open;
          ++stats_->accepted;
          park(new Conn(std::move(s), this));
        }
      } catch (...) {
        stopping_ = true;  // step 1
        stop_all();        // step 2
        throw;
      }
    });
  } catch (...) {
    error = std::current_exception();
  }
  stopping_ = true;
  stop_all();
  core.remove_timer(sweep_timer_);
  struct Drain {  // step 3
    ParkedServer* s;
    bool await_ready() const noexcept { return s->pending_reads_ == 0; }
    void await_suspend(std::coroutine_handle<> h) noexcept { s->drained_ = h; }
    void await_resume() const noexcept {}
  };
  co_await Drain{this};
  group_ = nullptr;
  if (error) std::rethrow_exception(error);  // step 4
}

}  // namespace weft::io::detail
