// io::SignalSet: signals as awaitable loop events — delivered to a waiting task whatever thread the kernel
// picks, one per wait() in signal-number order, no double watching, and the previous disposition restored.
#include <csignal>
#include <thread>

#include "io_test_support.hpp"
#include "weft/io/signal.hpp"

namespace weft::test::iotest {
namespace {

class IoSignal : public BackendTest {};
WEFT_IO_INSTANTIATE(IoSignal);

TEST_P(IoSignal, ASignalSentFromAnotherThreadWakesTheWaitingTask) {
  int got = run([]() -> io::Task<int> {
    io::SignalSet set{SIGUSR1};
    std::jthread sender;
    int sig = 0;
    co_await io::task_group([&](io::TaskGroup& g) -> io::Task<void> {
      g.spawn([](io::SignalSet& s, int& out) -> io::Task<void> { out = co_await s.wait(); }(set, sig));
      co_await io::sleep(0ms);  // the waiter is now suspended in wait()
      sender = std::jthread([] { ::kill(::getpid(), SIGUSR1); });
    });
    co_return sig;
  }());
  EXPECT_EQ(got, SIGUSR1);
}

TEST_P(IoSignal, PendingSignalsComeOnePerWaitInNumberOrder) {
  run([]() -> io::Task<void> {
    io::SignalSet set{SIGUSR2, SIGUSR1};
    EXPECT_EQ(set.poll(), 0);
    ::raise(SIGUSR2);
    ::raise(SIGUSR1);
    EXPECT_EQ(co_await set.wait(), SIGUSR1);  // SIGUSR1 (10) < SIGUSR2 (12)
    EXPECT_EQ(co_await set.wait(), SIGUSR2);
    EXPECT_EQ(set.poll(), 0);
  }());
}

TEST_P(IoSignal, WaitingIsCancellable) {
  run([]() -> io::Task<void> {
    io::SignalSet set{SIGUSR1};
    std::exception_ptr err = co_await error_of(io::wait_for(set.wait(), 20ms));
    EXPECT_TRUE(is_error<weft::Timeout>(err));
  }());
}

TEST_P(IoSignal, ASignalCanBeWatchedByOneSetAtATime) {
  run([]() -> io::Task<void> {
    io::SignalSet first{SIGUSR1};
    EXPECT_THROW(io::SignalSet({SIGUSR1}), weft::Error);
    EXPECT_THROW(io::SignalSet({SIGKILL}), weft::Error);
    EXPECT_THROW(io::SignalSet({0}), weft::Error);
    co_return;
  }());
  run([]() -> io::Task<void> {
    io::SignalSet again{SIGUSR1};  // free again once the first set is gone
    co_return;
  }());
}

volatile std::sig_atomic_t g_previous_handler_ran = 0;

TEST_P(IoSignal, ThePreviousDispositionComesBack) {
  g_previous_handler_ran = 0;
  struct sigaction mine{}, old{};
  mine.sa_handler = [](int) { g_previous_handler_ran = 1; };
  sigemptyset(&mine.sa_mask);
  ASSERT_EQ(::sigaction(SIGUSR2, &mine, &old), 0);
  run([]() -> io::Task<void> {
    io::SignalSet set{SIGUSR2};
    ::raise(SIGUSR2);
    EXPECT_EQ(co_await set.wait(), SIGUSR2);
  }());
  EXPECT_EQ(g_previous_handler_ran, 0) << "the signal reached the old handler while the set watched it";
  ::raise(SIGUSR2);
  EXPECT_EQ(g_previous_handler_ran, 1) << "the old handler was not restored";
  ::sigaction(SIGUSR2, &old, nullptr);
}

}  // namespace
}  // namespace weft::test::iotest
