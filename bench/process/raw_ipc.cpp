// bench/process/raw_ipc.cpp — what two processes on this machine get without weft: the raw baselines of the
// process benchmarks (scripts/bench_process.py), printed as one JSON object. Plain C++20 and Linux calls.
//
//   shm_ring_spin         a single-producer single-consumer ring of 64-byte slots in MAP_SHARED anonymous
//                         memory between a forked producer and this process, both spinning: messages/s
//   pipe_64               64-byte write()s through a pipe from a forked producer, read() here: messages/s
//   pipe_1mib             1 MiB write()s through a pipe of the kernel's default capacity: GB/s; and
//                         big_pipe_gb_per_s, through a pipe enlarged to 1 MiB with F_SETPIPE_SZ (if allowed)
//   memcpy_1mib           memcpy of one 1 MiB buffer into another, repeated, in one thread (both stay in the
//                         cache): GB/s; and cold_gb_per_s, the same through 64 pairs of 1 MiB buffers in turn
//                         (128 MiB: from memory, not the cache)
//   futex_pingpong_spin   round trips between two processes through shared words: spin up to 20 µs, then
//                         FUTEX_WAIT (process-shared futex): p50/p99 µs
//   futex_pingpong_block  the same, FUTEX_WAIT at once (no spin): the cost of a blocking hand-off: p50/p99 µs
//   futex_pingpong_idle   the same, each round trip after 50 ms of sleep on both sides (40 round trips; 5 with
//                         --quick): a blocking hand-off each way to CPUs that have been idle: p50/p99 µs
//
// Every throughput is the median of --rounds rounds (3; 1 with --quick) of a bounded count; the latencies are
// the percentiles of one run of at most 200,000 round trips that also stops after 1 s. GB/s is 10^9 bytes/s.
// Clocks start when the first message has arrived (the producer is running) and stop at the last.
// With two or more CPUs in the affinity mask, this process runs on the first and every child on the second
// (--no-pin: wherever the scheduler puts them): spinning sides that share a core measure the scheduler, not
// the hand-off, and where the scheduler first places a forked child varies from run to run.
#include <fcntl.h>
#include <linux/futex.h>
#include <sched.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <new>
#include <string>
#include <vector>

namespace {

using Clock = std::chrono::steady_clock;

constexpr std::size_t kMessage = 64;
constexpr std::size_t kMiB = std::size_t{1} << 20;
constexpr std::size_t kLine = 64;              // cache line: the ring's indices live on lines of their own
constexpr std::size_t kRingSlots = 4096;       // 256 KiB of 64-byte slots: fits in L2 with room to spare
constexpr int kSpinsBeforeYield = 4096;        // a ring side that finds nothing this often yields its core
constexpr auto kFutexSpin = std::chrono::microseconds(20);
constexpr auto kPingPongBudget = std::chrono::seconds(1);
constexpr auto kIdleGap = std::chrono::milliseconds(50);  // as bench_process_weft's idle round trips

[[noreturn]] void die(const std::string& what) {
  std::fprintf(stderr, "bench_process_raw: %s: %s\n", what.c_str(), std::strerror(errno));
  std::exit(2);
}

double seconds_since(Clock::time_point t0) { return std::chrono::duration<double>(Clock::now() - t0).count(); }

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}

inline void cpu_relax() {
#if defined(__x86_64__) || defined(__i386__)
  __builtin_ia32_pause();
#elif defined(__aarch64__)
  asm volatile("yield" ::: "memory");
#endif
}

// Zeroed MAP_SHARED anonymous memory: a fork()ed child sees the same pages.
void* map_shared(std::size_t bytes) {
  void* p = mmap(nullptr, bytes, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
  if (p == MAP_FAILED) die("mmap");
  return p;
}

int g_child_cpu = -1;  // the CPU every child is pinned to, or -1: not pinned

// Pins this process to the first CPU of its affinity mask and records the second for the children; returns
// "first,second", or "no" when the mask has fewer than two CPUs.
std::string pin_parent() {
  cpu_set_t mask;
  if (sched_getaffinity(0, sizeof mask, &mask) != 0) die("sched_getaffinity");
  int cpus[2], found = 0;
  for (int c = 0; c < CPU_SETSIZE && found < 2; ++c) {
    if (CPU_ISSET(c, &mask)) cpus[found++] = c;
  }
  if (found < 2) return "no";
  CPU_ZERO(&mask);
  CPU_SET(cpus[0], &mask);
  if (sched_setaffinity(0, sizeof mask, &mask) != 0) die("sched_setaffinity");
  g_child_cpu = cpus[1];
  return std::to_string(cpus[0]) + "," + std::to_string(cpus[1]);
}

// Forks a child that runs `body` and _exit()s with its status (no destructors, no stdio flush in the child).
pid_t fork_child(const std::function<int()>& body) {
  const pid_t pid = fork();
  if (pid < 0) die("fork");
  if (pid == 0) {
    if (g_child_cpu >= 0) {
      cpu_set_t mask;
      CPU_ZERO(&mask);
      CPU_SET(g_child_cpu, &mask);
      if (sched_setaffinity(0, sizeof mask, &mask) != 0) die("sched_setaffinity");
    }
    _exit(body());
  }
  return pid;
}

void reap(pid_t pid, const char* what) {
  int status = 0;
  while (waitpid(pid, &status, 0) < 0) {
    if (errno != EINTR) die("waitpid");
  }
  if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
    std::fprintf(stderr, "bench_process_raw: %s: child failed (status %d)\n", what, status);
    std::exit(2);
  }
}

void write_all(int fd, const char* p, std::size_t n) {
  while (n > 0) {
    const ssize_t k = write(fd, p, n);
    if (k < 0 && errno == EINTR) continue;
    if (k <= 0) die("write");
    p += k;
    n -= static_cast<std::size_t>(k);
  }
}

// Reads exactly n bytes; false at end of file before the first byte.
bool read_all(int fd, char* p, std::size_t n) {
  std::size_t got = 0;
  while (got < n) {
    const ssize_t k = read(fd, p + got, n - got);
    if (k < 0 && errno == EINTR) continue;
    if (k < 0) die("read");
    if (k == 0) {
      if (got == 0) return false;
      errno = EPIPE;
      die("read: short message");
    }
    got += static_cast<std::size_t>(k);
  }
  return true;
}

// --- shm_ring_spin ----------------------------------------------------------------------------------------
// A Lamport ring: the producer alone writes `tail`, the consumer alone writes `head`; both only ever grow, and
// a slot's index is the count modulo kRingSlots. Each side keeps a private copy of the other's index and reads
// the shared one only when its copy says the ring is full (producer) or empty (consumer), so in steady state
// the two cache lines change hands once per batch, not once per message.
struct alignas(kLine) Ring {
  alignas(kLine) std::atomic<std::uint64_t> tail;  // messages written; release-stored after the slot's bytes
  alignas(kLine) std::atomic<std::uint64_t> head;  // messages read; release-stored after the slot is copied out
  alignas(kLine) unsigned char slots[kRingSlots][kMessage];
};
static_assert(std::atomic<std::uint64_t>::is_always_lock_free, "the ring's indices must be lock-free to share");

int ring_produce(Ring* ring, std::uint64_t count) {
  unsigned char message[kMessage];
  std::memset(message, 'm', sizeof message);
  std::uint64_t head_seen = 0;
  for (std::uint64_t i = 0; i < count; ++i) {
    int spins = 0;
    while (i - head_seen == kRingSlots) {
      // Acquire: pairs with the consumer's release store of head, so its copy-out of the slot we are about to
      // overwrite has happened.
      head_seen = ring->head.load(std::memory_order_acquire);
      if (i - head_seen < kRingSlots) break;
      cpu_relax();
      if (++spins == kSpinsBeforeYield) { spins = 0; sched_yield(); }
    }
    std::memcpy(message, &i, sizeof i);  // a sequence number the consumer checks
    std::memcpy(ring->slots[i % kRingSlots], message, kMessage);
    ring->tail.store(i + 1, std::memory_order_release);  // publishes the slot's bytes
  }
  return 0;
}

double ring_once(std::uint64_t count) {
  auto* ring = new (map_shared(sizeof(Ring))) Ring{};
  const pid_t child = fork_child([&] { return ring_produce(ring, count); });
  unsigned char out[kMessage];
  std::uint64_t tail_seen = 0;
  Clock::time_point t0;
  for (std::uint64_t i = 0; i < count; ++i) {
    int spins = 0;
    while (i == tail_seen) {
      tail_seen = ring->tail.load(std::memory_order_acquire);  // pairs with the producer's release of tail
      if (i < tail_seen) break;
      cpu_relax();
      if (++spins == kSpinsBeforeYield) { spins = 0; sched_yield(); }
    }
    std::memcpy(out, ring->slots[i % kRingSlots], kMessage);
    ring->head.store(i + 1, std::memory_order_release);  // the slot is free again
    std::uint64_t seq;
    std::memcpy(&seq, out, sizeof seq);
    if (seq != i) {
      std::fprintf(stderr, "bench_process_raw: ring: message %llu carried %llu\n",
                   static_cast<unsigned long long>(i), static_cast<unsigned long long>(seq));
      std::exit(2);
    }
    if (i == 0) t0 = Clock::now();
  }
  const double s = seconds_since(t0);
  reap(child, "shm_ring_spin");
  munmap(ring, sizeof(Ring));
  return static_cast<double>(count - 1) / s;
}

// --- pipes ------------------------------------------------------------------------------------------------
// Returns messages/s for small messages, bytes/s for large ones. The pipe's capacity is raised to `want`
// bytes if that is more than the default and the system allows it; `capacity` receives what it became.
double pipe_once(std::uint64_t count, std::size_t size, long want, long* capacity) {
  int fds[2];
  if (pipe2(fds, O_CLOEXEC) != 0) die("pipe2");
  if (want > fcntl(fds[0], F_GETPIPE_SZ)) (void)fcntl(fds[0], F_SETPIPE_SZ, want);  // EPERM: keep the default
  *capacity = fcntl(fds[0], F_GETPIPE_SZ);
  const pid_t child = fork_child([&] {
    close(fds[0]);
    std::vector<char> m(size, 'm');
    for (std::uint64_t i = 0; i < count; ++i) write_all(fds[1], m.data(), size);
    close(fds[1]);
    return 0;
  });
  close(fds[1]);
  std::vector<char> buffer(size);
  if (!read_all(fds[0], buffer.data(), size)) die("pipe: no first message");
  const auto t0 = Clock::now();
  std::uint64_t got = 1;
  while (read_all(fds[0], buffer.data(), size)) ++got;
  const double s = seconds_since(t0);
  close(fds[0]);
  reap(child, "pipe");
  if (got != count || buffer[size - 1] != 'm') {
    std::fprintf(stderr, "bench_process_raw: pipe: %llu of %llu messages\n", static_cast<unsigned long long>(got),
                 static_cast<unsigned long long>(count));
    std::exit(2);
  }
  return static_cast<double>(count - 1) * (size >= 4096 ? static_cast<double>(size) : 1.0) / s;
}

// --- memcpy -----------------------------------------------------------------------------------------------
// Bytes/s of `reps` memcpys of 1 MiB, from and to the buffers of `pairs` distinct 1 MiB pairs in turn.
double memcpy_once(std::size_t pairs, std::size_t reps) {
  std::vector<char> src(pairs * kMiB), dst(pairs * kMiB);
  for (std::size_t i = 0; i < src.size(); ++i) src[i] = static_cast<char>(i * 131u);
  std::memset(dst.data(), 0, dst.size());  // every page mapped before the clock starts
  for (std::size_t p = 0; p < pairs; ++p) std::memcpy(dst.data() + p * kMiB, src.data() + p * kMiB, kMiB);
  const auto t0 = Clock::now();
  for (std::size_t r = 0; r < reps; ++r) {
    const std::size_t p = r % pairs;
    std::memcpy(dst.data() + p * kMiB, src.data() + p * kMiB, kMiB);
    asm volatile("" : : "r"(dst.data()) : "memory");  // every copy is observable: none may be elided
  }
  const double s = seconds_since(t0);
  if (std::memcmp(src.data(), dst.data(), kMiB) != 0) {
    std::fprintf(stderr, "bench_process_raw: memcpy: copy differs\n");
    std::exit(2);
  }
  return static_cast<double>(reps) * static_cast<double>(kMiB) / s;
}

// --- futex ping-pong --------------------------------------------------------------------------------------
// Two words in shared memory, one per direction. A word holds (sequence << 1) | sleeping:
//   1. The waker stores the next sequence with an exchange (clearing the sleeping bit) and calls FUTEX_WAKE
//      only if the exchange returned the bit set: a waiter that is still spinning costs the waker no call.
//   2. The waiter spins (up to the spin budget) for the word to leave the value it knows; then it CASes the
//      sleeping bit in and FUTEX_WAITs on the value with the bit. If the CAS fails the word has moved on.
//      FUTEX_WAIT returns at once if the word is no longer that value, so a wake between the CAS and the
//      call is not lost: the exchange in step 1 changed the word first.
// The futex is process-shared (no FUTEX_PRIVATE_FLAG): the words live in a MAP_SHARED mapping.
struct alignas(kLine) PingPong {
  alignas(kLine) std::atomic<std::uint32_t> ping;  // parent -> child
  alignas(kLine) std::atomic<std::uint32_t> pong;  // child -> parent
  alignas(kLine) std::atomic<std::uint32_t> stop;  // set by the parent before its last ping
};
static_assert(sizeof(std::atomic<std::uint32_t>) == sizeof(std::uint32_t), "a futex is a plain 32-bit word");

constexpr std::uint32_t kSleeping = 1;

long futex(std::atomic<std::uint32_t>* word, int op, std::uint32_t value) {
  return syscall(SYS_futex, reinterpret_cast<std::uint32_t*>(word), op, value, nullptr, nullptr, 0);
}

void signal_word(std::atomic<std::uint32_t>* word, std::uint32_t seq) {
  // acq_rel: releases what was written before the hand-off; the acquire half orders the sleeping-bit read.
  if (word->exchange(seq << 1, std::memory_order_acq_rel) & kSleeping) {
    if (futex(word, FUTEX_WAKE, 1) < 0) die("FUTEX_WAKE");
  }
}

// Waits until *word carries a sequence other than `seq`.
void wait_word(std::atomic<std::uint32_t>* word, std::uint32_t seq, bool spin) {
  const std::uint32_t idle = seq << 1;
  if (spin) {
    const auto deadline = Clock::now() + kFutexSpin;
    for (int i = 0;; ++i) {
      if (word->load(std::memory_order_acquire) != idle) return;  // pairs with the exchange in signal_word
      cpu_relax();
      if ((i & 63) == 63 && Clock::now() >= deadline) break;
    }
  }
  for (;;) {
    std::uint32_t expected = idle;
    if (!word->compare_exchange_strong(expected, idle | kSleeping, std::memory_order_acquire) &&
        expected != (idle | kSleeping)) {
      return;  // the word moved on (expected now holds the new sequence)
    }
    if (futex(word, FUTEX_WAIT, idle | kSleeping) < 0 && errno != EAGAIN && errno != EINTR) die("FUTEX_WAIT");
    if (word->load(std::memory_order_acquire) >> 1 != seq) return;
  }
}

struct Latency {
  std::size_t samples;
  double p50_us, p99_us;
};

// With a gap, each round trip starts after the parent has slept that long (the child asleep in FUTEX_WAIT):
// a hand-off to a process whose CPU has been idle, as to a pool that had no work.
Latency pingpong(bool spin, std::size_t max_samples, std::chrono::milliseconds gap = {}) {
  auto* pp = new (map_shared(sizeof(PingPong))) PingPong{};
  const pid_t child = fork_child([&] {
    for (std::uint32_t seq = 0;; ++seq) {
      wait_word(&pp->ping, seq, spin);
      const bool last = pp->stop.load(std::memory_order_relaxed) != 0;  // ordered by the ping's acquire
      signal_word(&pp->pong, seq + 1);
      if (last) return 0;
    }
  });
  std::vector<double> lat;
  lat.reserve(max_samples);
  const auto deadline = Clock::now() + kPingPongBudget;
  for (std::uint32_t seq = 0;; ++seq) {
    const bool last = lat.size() + 1 == max_samples || (gap.count() == 0 && Clock::now() >= deadline);
    if (last) pp->stop.store(1, std::memory_order_relaxed);  // released by the ping below
    if (gap.count() > 0) {
      const timespec ts{0, static_cast<long>(std::chrono::nanoseconds(gap).count())};
      ::nanosleep(&ts, nullptr);
    }
    const auto t0 = Clock::now();
    signal_word(&pp->ping, seq + 1);
    wait_word(&pp->pong, seq, spin);
    lat.push_back(std::chrono::duration<double, std::micro>(Clock::now() - t0).count());
    if (last) break;
  }
  reap(child, gap.count() > 0 ? "futex_pingpong_idle" : spin ? "futex_pingpong_spin" : "futex_pingpong_block");
  munmap(pp, sizeof(PingPong));
  // The first round trips include the child's first scheduling and page faults: drop the first 1%.
  lat.erase(lat.begin(), lat.begin() + static_cast<std::ptrdiff_t>(lat.size() / 100));
  std::sort(lat.begin(), lat.end());
  return {lat.size(), lat[lat.size() / 2], lat[lat.size() * 99 / 100]};
}

}  // namespace

int main(int argc, char** argv) {
  bool quick = false, pin = true;
  int rounds = 0;
  for (int i = 1; i < argc; ++i) {
    if (std::strcmp(argv[i], "--quick") == 0) {
      quick = true;
    } else if (std::strcmp(argv[i], "--no-pin") == 0) {
      pin = false;
    } else if (std::strcmp(argv[i], "--rounds") == 0 && i + 1 < argc) {
      rounds = std::atoi(argv[++i]);
    } else {
      std::fprintf(stderr, "usage: %s [--quick] [--no-pin] [--rounds N]\n", argv[0]);
      return 2;
    }
  }
  if (rounds <= 0) rounds = quick ? 1 : 3;
  const std::string pinned = pin ? pin_parent() : "no";
  std::setvbuf(stdout, nullptr, _IOFBF, 1 << 16);  // one write at the end: the children inherit nothing

  const std::uint64_t ring_count = quick ? 2'000'000 : 20'000'000;
  const std::uint64_t pipe_small = quick ? 50'000 : 400'000, pipe_big = quick ? 200 : 2'000;
  const std::size_t memcpy_reps = quick ? 200 : 2'000, cold_pairs = 64;
  const std::size_t pingpong_max = quick ? 20'000 : 200'000;

  std::vector<double> ring, p64, p1m, pbig, mhot, mcold;
  long capacity = 0, big_capacity = 0;
  for (int r = 0; r < rounds; ++r) {
    ring.push_back(ring_once(ring_count));
    p64.push_back(pipe_once(pipe_small, kMessage, 0, &capacity));
    p1m.push_back(pipe_once(pipe_big, kMiB, 0, &capacity) / 1e9);
    pbig.push_back(pipe_once(pipe_big, kMiB, static_cast<long>(kMiB), &big_capacity) / 1e9);
    mhot.push_back(memcpy_once(1, memcpy_reps) / 1e9);
    mcold.push_back(memcpy_once(cold_pairs, memcpy_reps) / 1e9);
  }
  const Latency spin = pingpong(true, pingpong_max);
  const Latency block = pingpong(false, pingpong_max);
  const Latency idle = pingpong(false, quick ? 5 : 40, kIdleGap);

  std::printf("{\n  \"rounds\": %d,\n  \"cpus\": %ld,\n  \"pinned\": \"%s\",\n", rounds,
              sysconf(_SC_NPROCESSORS_ONLN), pinned.c_str());
  std::printf("  \"shm_ring_spin\": {\"messages\": %llu, \"slots\": %zu, \"messages_per_s\": %.0f},\n",
              static_cast<unsigned long long>(ring_count), kRingSlots, median(ring));
  std::printf("  \"pipe_64\": {\"messages\": %llu, \"messages_per_s\": %.0f},\n",
              static_cast<unsigned long long>(pipe_small), median(p64));
  std::printf("  \"pipe_1mib\": {\"messages\": %llu, \"pipe_capacity\": %ld, \"gb_per_s\": %.3f, "
              "\"big_pipe_capacity\": %ld, \"big_pipe_gb_per_s\": %.3f},\n",
              static_cast<unsigned long long>(pipe_big), capacity, median(p1m), big_capacity, median(pbig));
  std::printf("  \"memcpy_1mib\": {\"copies\": %zu, \"gb_per_s\": %.3f, \"cold_mib\": %zu, \"cold_gb_per_s\": %.3f},\n",
              memcpy_reps, median(mhot), 2 * cold_pairs, median(mcold));
  std::printf("  \"futex_pingpong_spin\": {\"spin_us\": %lld, \"samples\": %zu, \"p50_us\": %.2f, \"p99_us\": %.2f},\n",
              static_cast<long long>(kFutexSpin.count()), spin.samples, spin.p50_us, spin.p99_us);
  std::printf("  \"futex_pingpong_block\": {\"samples\": %zu, \"p50_us\": %.2f, \"p99_us\": %.2f},\n",
              block.samples, block.p50_us, block.p99_us);
  std::printf("  \"futex_pingpong_idle\": {\"gap_ms\": %lld, \"samples\": %zu, \"p50_us\": %.2f, \"p99_us\": %.2f}\n}\n",
              static_cast<long long>(kIdleGap.count()), idle.samples, idle.p50_us, idle.p99_us);
  return std::fflush(stdout) == 0 ? 0 : 2;
}
