// channel_pipeline.cpp — threads that share nothing but messages: a three-stage pipeline over channels.
//
// Python: queue.Queue(maxsize=n) between threads (put/get, with a sentinel or Queue.shutdown() to end the
// stream); Go: a buffered channel with close() and `for v := range ch`. weft::Channel<T> is both:
//   ch.send(v)              q.put(v)           blocks while the channel is full (back-pressure)
//   ch.recv() → optional    q.get()            blocks while empty; nullopt once closed and drained
//   for (T& v : ch)         for v in iter(q.get, SENTINEL)
//   ch.close()              q.shutdown()       later sends throw ChannelClosed; receivers drain, then stop
//
// The pipeline: a generator sends the numbers 2..N; three workers each take numbers, keep the primes and
// send them on; the main thread collects them. Each stage runs on its own weft::Thread. (Blocking on a
// channel inside a bounded pool's task is possible but hazardous: if every worker waits for a value that only
// a still-queued task would send, the pool deadlocks. Threads of their own avoid that.)
#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <optional>
#include <vector>

#include "weft/core/errors.hpp"
#include "weft/sync/channel.hpp"
#include "weft/thread/thread.hpp"

namespace {

bool is_prime(int n) {
  if (n < 2) return false;
  for (int d = 2; d * d <= n; ++d) {
    if (n % d == 0) return false;
  }
  return true;
}

}  // namespace

int main() {
  constexpr int kLimit = 100;
  constexpr int kWorkers = 3;

  // Small capacities: the generator can run at most 8 numbers ahead of the workers, whatever N is.
  weft::Channel<int> numbers(8);
  weft::Channel<int> primes(8);

  // Stage 1: the generator. Closing the channel is how it says "no more numbers".
  weft::Thread generator("generator", [&numbers] {
    for (int n = 2; n < kLimit; ++n) numbers.send(n);
    numbers.close();
  });

  // Stage 2: workers share one input channel (each number goes to exactly one of them). The last worker
  // to finish closes the output channel — Go's WaitGroup-then-close, with an atomic count.
  std::atomic<int> running{kWorkers};
  std::vector<weft::Thread> workers;
  for (int w = 0; w < kWorkers; ++w) {
    workers.emplace_back("sieve", [&numbers, &primes, &running] {
      for (int n : numbers) {  // recv() until numbers is closed and drained
        if (is_prime(n)) primes.send(n);
      }
      if (running.fetch_sub(1) == 1) primes.close();
    });
  }

  // Stage 3: this thread collects. The workers interleave, so the order varies; sort for printing.
  std::vector<int> found;
  for (int p : primes) found.push_back(p);
  std::sort(found.begin(), found.end());
  std::printf("pipeline: %zu primes below %d:", found.size(), kLimit);
  for (int p : found) std::printf(" %d", p);
  std::printf("\n");

  generator.join();  // rethrows an exception of the thread, if it had one
  for (auto& w : workers) w.join();

  // Non-blocking and timed variants.
  weft::Channel<int> small(1);
  std::printf("try_send into an empty channel of 1: %s\n", small.try_send(1) ? "sent" : "full");
  std::printf("try_send again: %s\n", small.try_send(2) ? "sent" : "full (nothing blocked)");
  std::printf("try_recv: %d\n", small.try_recv().value_or(-1));
  const std::optional<int> none = small.recv_for(std::chrono::milliseconds(10));
  std::printf("recv_for(10 ms) on an empty channel: %s\n", none ? "a value" : "timed out (nullopt)");

  // After close: receivers still get what was sent before, senders get ChannelClosed.
  small.send(3);
  small.close();
  try {
    small.send(4);
  } catch (const weft::ChannelClosed&) {
    std::printf("send after close: threw ChannelClosed\n");
  }
  const std::optional<int> last = small.recv();
  const std::optional<int> end = small.recv();
  std::printf("recv after close: %d, then %s\n", last.value_or(-1), end ? "a value" : "nullopt (drained)");
  return 0;
}
