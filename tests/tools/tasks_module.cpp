// A task module for the weft command's tests: `weft worker --load` registers these.
#include <chrono>
#include <stdexcept>
#include <string>
#include <thread>

#include "weft/io/time.hpp"
#include "weft/tasks/app.hpp"
#include "weft/tasks/worker.hpp"

namespace {
int add(int a, int b) { return a + b; }
long square(long x) { return x * x; }
std::string shout(std::string s) {
  for (char& c : s) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  return s + "!";
}
int fails(int) { throw std::invalid_argument("no good"); }
// Runs for `ms` milliseconds or until cancelled (the workload of the shutdown tests).
int takes(int ms) {
  const auto until = std::chrono::steady_clock::now() + std::chrono::milliseconds(ms);
  while (std::chrono::steady_clock::now() < until) {
    if (const auto* t = weft::tasks::current_task(); t != nullptr && t->cancelled()) return -1;
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  return ms;
}
// An async task: for `weft worker --pool async` (and it runs on the other pools too).
weft::io::Task<int> slow_add(int a, int b) {
  co_await weft::io::sleep(std::chrono::milliseconds(5));
  co_return a + b;
}
}  // namespace

WEFT_TASK_MODULE(app) {
  app.task<&slow_add>("test.slow_add");
  app.task<&add>("test.add");
  app.task<&square>("test.square");
  app.task<&shout>("test.shout");
  app.task<&fails>("test.fails");
  app.task<&takes>("test.takes");
}
