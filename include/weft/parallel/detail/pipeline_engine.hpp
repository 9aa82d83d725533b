// weft/parallel/detail/pipeline_engine.hpp — the type-erased scheduler behind weft::parallel_pipeline.
//
// Items carry a sequence number (the order the input produced them) and a value; a task carries one item
// through as many stages as it can, the way oneTBB's pipeline does, and no thread ever waits for anything:
// an item that cannot enter a serial stage is parked there and the task moves on; whoever leaves the stage
// later continues the parked item. The typed part (the values and the user's functions) is in
// weft/parallel/pipeline.hpp; this file only moves item pointers around.
//
// Protocol.
//
// 1. Input and tokens. One word, input_, holds the number of items in flight (bits 2..), kOwned (someone owns
//    the input stage: it is running it, or a task that will run it is queued) and kDone (the input is
//    finished: it called stop(), or something failed; once set, never unset). Only the owner calls the
//    input function, so it runs one call at a time, and it does so only while fewer than max_in_flight
//    items are in flight. Ownership changes hands only by CAS on input_ (acquire when taken, release when
//    given up), which orders one owner's calls, the sequence counter and the owner's free list before the
//    next owner's.
//    a. After producing an item the owner counts it in (+1) and gives ownership up, in one CAS. Then, when
//       tokens remain, fewer tasks are active than the pool has workers and no recruit is pending, it
//       spawns a "recruit" task, so that an idle worker can join in: the recruit takes the input if it is
//       free (c) and otherwise just ends.
//    b. Whoever finishes an item (it left the last stage, or was dropped) counts it out (-1) and, in the
//       same CAS, takes ownership when nobody has it and the input is not done. It then runs the input
//       itself: in steady state each worker finishes an item and produces the next one, with no task
//       spawned and nothing stolen.
//    c. A task that is about to end (its item parked) first tries to take ownership (b without the -1).
//    Liveness: a task ends only after failing to take the input, i.e. when someone else owns it, or the
//    input is done, or max_in_flight items are in flight. An owner that gave ownership up in (a) is itself
//    still running and will try again in (b) or (c), so free tokens are never left unused with every task
//    gone (recruits only add parallelism; nothing waits for one); and with all tokens in flight, the
//    oldest item can always move (4, 5), so some task runs.
//
// 2. Items. At most max_in_flight item objects exist. A finished item goes to the input owner's private free
//    list when its finisher takes the input (1b), else on a shared free stack (pushed by anyone, taken whole
//    by the owner with one exchange, so no ABA) before its token is counted out: either way the owner finds
//    it before it could need a new one, and never makes more than max_in_flight.
//
// 3. Carrying. A task carries its item from stage to stage: parallel stages are simply called; a serial
//    stage must be entered (4, 5) and left. Leaving returns the parked item that now holds the stage, if
//    any: for the last stage the leaving task runs it right there (and the next, ...: a drain); for a middle
//    stage it spawns a task that continues that item, holding the stage. So a parked item is always picked
//    up by whoever delivers what it waits for, never by a thread that waited.
//
// 4. serial_in_order stage: one word, state_ = (next sequence number << 1) | busy, and a ring of
//    max_in_flight slots indexed by sequence number. Item q enters when it can CAS state_ from (q, free) to
//    (q, busy). Otherwise it is stored in slot q and re-reads state_; the stage's leaver stores (q, free)
//    and then reads slot q. Both sides use seq_cst for the store and the load (Dekker), so at least one of
//    them sees the other and tries the CAS; exactly one wins, and the winner empties the slot. Window: the
//    items between the stage's next number and q are all in flight, so q < next + max_in_flight and
//    slots never collide; a slot holds only q's item once (q, free) is stored (q - max_in_flight's was
//    emptied before its leaver released the stage, and q + max_in_flight does not exist yet).
//    state_ only grows, so its CAS has no ABA.
// 5. serial_any_order stage: a busy flag and a Treiber stack of parked items. Enter: CAS busy false->true;
//    else push the item, then re-read busy (seq_cst, against the leaver's seq_cst store of false and load
//    of the stack), and claim it if free. Whoever holds busy takes the whole stack at once into a private
//    FIFO and hands out items from it; it clears busy only with the FIFO and the stack empty.
//
// 6. Failure. The first exception (from any stage function, or allocating an item) is kept, and kDone is
//    set: the input stops. From then on no stage function is called; items in flight still travel through
//    the stages (so the orders above stay consistent) and their values are destroyed. Tasks never throw,
//    so the TaskGroup never cancels one; run() waits for all of them and rethrows the kept exception.
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <exception>
#include <memory>
#include <mutex>
#include <new>
#include <vector>

#include "weft/parallel/fork_join_pool.hpp"
#include "weft/parallel/task_group.hpp"

namespace weft::detail {

/// The part of an item the engine knows: its place in the input order and a link for the free list and
/// the any-order stacks (an item is on at most one of them at a time).
struct PipelineItem {
  std::uint64_t seq = 0;
  PipelineItem* next = nullptr;
};

/// How a stage runs: serial (one item at a time) or not, and for serial stages whether in input order.
struct PipelineStageSpec {
  bool serial = false;
  bool in_order = false;
};

class PipelineEngine {
 public:
  /// More tokens than this are not used (each in-order stage keeps one slot per token).
  static constexpr std::size_t kMaxTokens = std::size_t{1} << 16;

  PipelineEngine(const PipelineEngine&) = delete;
  PipelineEngine& operator=(const PipelineEngine&) = delete;

  /// Runs the pipeline to the end on a worker of `pool` (the caller must be one), then rethrows the first
  /// exception, if any.
  void run(ForkJoinPool& pool) {
    TaskGroup group(pool);
    group_ = &group;
    threads_ = pool.threads();
    input_.store(kOwned, std::memory_order_relaxed);  // the caller starts as the input's owner
    work(nullptr, 0, false);
    group.wait();  // every task; none throws (6)
    if (error_) std::rethrow_exception(error_);
  }

 protected:
  /// `stages` specs (stage 0 is the input and always runs serially, in call order).
  PipelineEngine(const PipelineStageSpec* specs, std::size_t stages, std::size_t max_in_flight)
      : stage_count_(stages), tokens_(max_in_flight < kMaxTokens ? max_in_flight : kMaxTokens) {
    stages_ = std::make_unique<Stage[]>(stages);
    std::size_t ring = 1;
    while (ring < tokens_) ring <<= 1;
    for (std::size_t s = 1; s < stages; ++s) {
      stages_[s].serial = specs[s].serial;
      stages_[s].in_order = specs[s].serial && specs[s].in_order;
      if (stages_[s].in_order) {
        stages_[s].slots = std::make_unique<std::atomic<PipelineItem*>[]>(ring);
        stages_[s].mask = ring - 1;
      }
    }
  }

  ~PipelineEngine() = default;

  /// Frees every item; the derived class calls it from its destructor (run() has returned or thrown, so
  /// nothing is in flight).
  void destroy_items() noexcept {
    for (PipelineItem* item : items_) destroy_item(item);
    items_.clear();
  }

  /// Calls the input function into `item`; false when it called stop() (the value is then ignored).
  virtual bool produce(PipelineItem& item) = 0;
  /// Calls stage `stage` (>= 1) on `item`.
  virtual void process(std::size_t stage, PipelineItem& item) = 0;
  /// A new item with an empty value; destroy_item() frees it.
  virtual PipelineItem* make_item() = 0;
  /// Destroys the item's value (leaves it empty, ready for reuse).
  virtual void clear_item(PipelineItem& item) noexcept = 0;
  virtual void destroy_item(PipelineItem* item) noexcept = 0;

 private:
  // input_ bits (1).
  static constexpr std::uint64_t kOwned = 1;  // someone owns the input stage
  static constexpr std::uint64_t kDone = 2;   // the input is finished; once set, never unset
  static constexpr std::uint64_t kOne = 4;    // one item in flight
  static_assert((kOwned & kDone) == 0 && kOne > (kOwned | kDone));

  struct Stage {
    bool serial = false;
    bool in_order = false;
    std::size_t mask = 0;
    std::unique_ptr<std::atomic<PipelineItem*>[]> slots;  // in-order ring (4)
    alignas(64) std::atomic<std::uint64_t> state{0};       // in-order: (next seq << 1) | busy (4)
    alignas(64) std::atomic<bool> busy{false};             // any-order (5)
    std::atomic<PipelineItem*> parked{nullptr};            // any-order: pushed by anyone (5)
    PipelineItem* pending = nullptr;                       // any-order: FIFO, private to the busy holder
  };

  static std::uint64_t in_flight(std::uint64_t w) noexcept { return w / kOne; }

  // The body of every task (and of the caller): carry `item` from stage `stage` (holding that stage when
  // `holds`), or, with no item, run the input (the caller owns it); then keep going for as long as this
  // thread can take the input (1b, 1c).
  void work(PipelineItem* item, std::size_t stage, bool holds) noexcept {
    active_.fetch_add(1, std::memory_order_relaxed);  // a heuristic for recruiting (1a): relaxed is enough
    for (;;) {
      if (item == nullptr) {
        item = produce_next();
        if (item == nullptr) break;  // the input is done
        stage = 1;
        holds = false;
      }
      const bool took_input = carry(item, stage, holds);
      item = nullptr;
      if (!took_input && !try_take_input()) break;
    }
    active_.fetch_sub(1, std::memory_order_relaxed);
  }

  // Carries `item` through stages [stage, n). True when this thread took the input on the way (finishing
  // an item, 1b); false when it did not, or when the item was parked.
  bool carry(PipelineItem* item, std::size_t stage, bool holds) noexcept {
    for (; stage < stage_count_; ++stage) {
      Stage& st = stages_[stage];
      if (st.serial && !holds) {
        item = st.in_order ? enter_in_order(st, item) : enter_any_order(st, item);
        if (item == nullptr) return false;  // parked: the stage's leaver continues it
      }
      holds = false;
      call(stage, *item);
      if (st.serial) {
        PipelineItem* next = st.in_order ? leave_in_order(st, *item) : next_or_release(st);
        if (next != nullptr) {
          if (stage + 1 == stage_count_) return drain(st, stage, item, next);
          hand_off(next, stage);
        }
      }
    }
    return finish(item);
  }

  // The last stage is serial and `next` now holds it: run it here for `next` and every item after it that
  // is already waiting (3). The finished items' tokens are returned at once, but the input is taken only
  // afterwards, so another thread may run it meanwhile. True when this thread took the input.
  bool drain(Stage& st, std::size_t stage, PipelineItem* done, PipelineItem* next) noexcept {
    finish(done, /*may_take=*/false);
    while (next != nullptr) {
      call(stage, *next);
      PipelineItem* after = st.in_order ? leave_in_order(st, *next) : next_or_release(st);
      finish(next, /*may_take=*/false);
      next = after;
    }
    return try_take_input();
  }

  // A middle serial stage passed to `item`: a new task continues it from that stage (3).
  void hand_off(PipelineItem* item, std::size_t stage) noexcept {
    try {
      group_->spawn(JobOptions{"pipeline"}, [this, item, stage] { work(item, stage, true); });
    } catch (...) {
      work(item, stage, true);  // could not queue a task (out of memory): continue it here
    }
  }

  void call(std::size_t stage, PipelineItem& item) noexcept {
    if (failed_.load(std::memory_order_relaxed)) return;  // 6: drop the item
    try {
      process(stage, item);
    } catch (...) {
      fail(std::current_exception());
    }
  }

  // --- input (1, 2) ----------------------------------------------------------------------------------

  // The caller owns the input: produce the next item, count it in, and keep (recruiting) or give up the
  // input (1a). Null when the input is done; ownership is then given up.
  PipelineItem* produce_next() noexcept {
    std::uint64_t w = input_.load(std::memory_order_relaxed);
    if ((w & kDone) != 0) {
      release_input();
      return nullptr;
    }
    PipelineItem* item = nullptr;
    bool more = false;
    try {
      item = take_free_item();
      more = produce(*item);
    } catch (...) {
      fail(std::current_exception());
    }
    if (!more) {  // stop() (or failure): the value, if any, is ignored
      if (item != nullptr) {
        clear_item(*item);
        item->next = local_free_;
        local_free_ = item;
      }
      input_.fetch_or(kDone, std::memory_order_relaxed);
      release_input();
      return nullptr;
    }
    item->seq = next_seq_++;
    // +1 item, and kOwned (set: we own it) cleared, in one add. release: hands the input (its function's
    // state, next_seq_, local_free_) to the next owner.
    w = input_.fetch_add(kOne - kOwned, std::memory_order_release) + kOne - kOwned;
    if ((w & kDone) == 0 && in_flight(w) < tokens_ && active_.load(std::memory_order_relaxed) < threads_ &&
        !recruiting_.load(std::memory_order_relaxed) && !recruiting_.exchange(true, std::memory_order_relaxed)) {
      try {
        group_->spawn(JobOptions{"pipeline"}, [this] { recruit(); });
      } catch (...) {
        recruiting_.store(false, std::memory_order_relaxed);  // no recruit: only less parallelism
      }
    }
    return item;
  }

  // 1a: a task spawned to bring another worker in. It runs the input if it is still free.
  void recruit() noexcept {
    recruiting_.store(false, std::memory_order_relaxed);
    if (try_take_input()) work(nullptr, 0, false);
  }

  // Gives up ownership of the input. release: pairs with the acquire CAS of the next owner.
  void release_input() noexcept { input_.fetch_and(~kOwned, std::memory_order_release); }

  // 1c: takes the input if nobody owns it, it is not done and a token is free.
  bool try_take_input() noexcept {
    std::uint64_t w = input_.load(std::memory_order_relaxed);
    for (;;) {
      if ((w & (kOwned | kDone)) != 0 || in_flight(w) >= tokens_) return false;
      // acquire: pairs with the release by which the previous owner gave the input up.
      if (input_.compare_exchange_weak(w, w | kOwned, std::memory_order_acquire, std::memory_order_relaxed)) {
        return true;
      }
    }
  }

  // 1b: the item has left the pipeline. Frees it, counts it out, and (when `may_take`) takes the input when
  // free; true when it did.
  bool finish(PipelineItem* item, bool may_take = true) noexcept {
    clear_item(*item);
    std::uint64_t w = input_.load(std::memory_order_relaxed);
    bool pushed = false;
    bool take = false;
    for (;;) {
      take = may_take && (w & (kOwned | kDone)) == 0;
      if (!take && !pushed) {
        // 2: someone else owns the input (or nobody will): the item goes on the shared free stack before
        // its token is counted out. release: the owner's exchange acquires it.
        PipelineItem* head = free_.load(std::memory_order_relaxed);
        do {
          item->next = head;
        } while (!free_.compare_exchange_weak(head, item, std::memory_order_release, std::memory_order_relaxed));
        pushed = true;
      }
      const std::uint64_t nw = (w - kOne) | (take ? kOwned : 0);
      // acq_rel: acquire when taking the input (1); release orders the free-stack push before the count.
      if (input_.compare_exchange_weak(w, nw, std::memory_order_acq_rel, std::memory_order_relaxed)) break;
    }
    if (take && !pushed) {  // the new owner keeps the item for its next production: no shared traffic
      item->next = local_free_;
      local_free_ = item;
    }
    return take;
  }

  // The owner's next item: its private list, else the whole shared stack, else a new one (at most
  // max_in_flight are ever made, 2).
  PipelineItem* take_free_item() {
    if (local_free_ == nullptr) local_free_ = free_.exchange(nullptr, std::memory_order_acquire);
    if (local_free_ != nullptr) {
      PipelineItem* item = local_free_;
      local_free_ = item->next;
      return item;
    }
    items_.reserve(items_.size() + 1);  // may throw here, before the item exists
    PipelineItem* item = make_item();
    items_.push_back(item);
    return item;
  }

  // --- serial_in_order stages (4) --------------------------------------------------------------------

  PipelineItem* enter_in_order(Stage& st, PipelineItem* item) noexcept {
    const std::uint64_t free_word = item->seq << 1;
    std::uint64_t expected = free_word;
    // acquire: pairs with the previous leaver's store, so its run of the stage happens before ours.
    if (st.state.compare_exchange_strong(expected, free_word | 1, std::memory_order_acquire,
                                         std::memory_order_relaxed)) {
      return item;  // our turn already
    }
    std::atomic<PipelineItem*>& slot = st.slots[item->seq & st.mask];
    slot.store(item, std::memory_order_seq_cst);  // Dekker with leave_in_order: store, then load
    expected = free_word;
    if (st.state.load(std::memory_order_seq_cst) == free_word &&
        st.state.compare_exchange_strong(expected, free_word | 1, std::memory_order_seq_cst,
                                         std::memory_order_relaxed)) {
      slot.store(nullptr, std::memory_order_relaxed);  // won against the leaver: the winner empties the slot
      return item;
    }
    return nullptr;  // parked; the leaver of item->seq - 1 takes it
  }

  // Releases the stage to the next sequence number; returns that item when it is already parked and this
  // thread won it.
  PipelineItem* leave_in_order(Stage& st, const PipelineItem& item) noexcept {
    const std::uint64_t next = item.seq + 1;
    const std::uint64_t free_word = next << 1;
    st.state.store(free_word, std::memory_order_seq_cst);  // release: our run before the next one's
    std::atomic<PipelineItem*>& slot = st.slots[next & st.mask];
    if (slot.load(std::memory_order_seq_cst) == nullptr) return nullptr;  // not here yet: it will enter itself
    std::uint64_t expected = free_word;
    if (!st.state.compare_exchange_strong(expected, free_word | 1, std::memory_order_acq_rel,
                                          std::memory_order_relaxed)) {
      return nullptr;  // its own thread (or the fast path) won
    }
    // Only the winner empties the slot, so it still holds item `next` (acquire: pairs with its store).
    return slot.exchange(nullptr, std::memory_order_acquire);
  }

  // --- serial_any_order stages (5) -------------------------------------------------------------------

  PipelineItem* enter_any_order(Stage& st, PipelineItem* item) noexcept {
    bool expected = false;
    // acquire: pairs with the release of busy by the previous holder.
    if (st.busy.compare_exchange_strong(expected, true, std::memory_order_acquire, std::memory_order_relaxed)) {
      return item;
    }
    PipelineItem* head = st.parked.load(std::memory_order_relaxed);
    do {
      item->next = head;
    } while (!st.parked.compare_exchange_weak(head, item, std::memory_order_seq_cst, std::memory_order_relaxed));
    // Dekker with next_or_release: push, then load busy.
    if (st.busy.load(std::memory_order_seq_cst)) return nullptr;
    if (st.busy.exchange(true, std::memory_order_acq_rel)) return nullptr;
    return next_or_release(st);  // perhaps another item than ours: any order
  }

  // The caller holds busy: returns the next parked item (busy stays held for it), or releases the stage.
  PipelineItem* next_or_release(Stage& st) noexcept {
    for (;;) {
      if (st.pending != nullptr) {
        PipelineItem* item = st.pending;
        st.pending = item->next;
        return item;
      }
      // acquire: pairs with the pushes (their item->next links).
      PipelineItem* list = st.parked.exchange(nullptr, std::memory_order_acquire);
      if (list != nullptr) {
        PipelineItem* fifo = nullptr;  // the stack is newest first: reverse it
        while (list != nullptr) {
          PipelineItem* n = list->next;
          list->next = fifo;
          fifo = list;
          list = n;
        }
        st.pending = fifo;
        continue;
      }
      st.busy.store(false, std::memory_order_seq_cst);  // release; Dekker with enter_any_order
      if (st.parked.load(std::memory_order_seq_cst) == nullptr) return nullptr;
      if (st.busy.exchange(true, std::memory_order_acq_rel)) return nullptr;  // an arrival took the stage
    }
  }

  // --- failure (6) -----------------------------------------------------------------------------------

  void fail(std::exception_ptr e) noexcept {
    {
      std::scoped_lock lock(error_mutex_);
      if (!error_) error_ = std::move(e);
    }
    failed_.store(true, std::memory_order_relaxed);
    input_.fetch_or(kDone, std::memory_order_relaxed);
  }

  const std::size_t stage_count_;
  const std::size_t tokens_;
  std::unique_ptr<Stage[]> stages_;
  TaskGroup* group_ = nullptr;
  std::size_t threads_ = 1;

  alignas(64) std::atomic<std::uint64_t> input_{0};   // 1
  alignas(64) std::atomic<std::size_t> active_{0};    // tasks running work(); a recruiting heuristic
  std::atomic<bool> recruiting_{false};                 // a recruit task is queued (1a); a heuristic too
  alignas(64) std::atomic<PipelineItem*> free_{nullptr};  // 2
  // The input owner's private state (1): ordered by the hand-over of ownership.
  alignas(64) PipelineItem* local_free_ = nullptr;
  std::uint64_t next_seq_ = 0;
  std::vector<PipelineItem*> items_;  // every item made, freed by the destructor
  alignas(64) std::atomic<bool> failed_{false};
  std::mutex error_mutex_;
  std::exception_ptr error_;  // the first failure; guarded by error_mutex_, read after all tasks ended
};

}  // namespace weft::detail
