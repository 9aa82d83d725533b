// Uses the installed headers and libraries through the umbrella target weft::weft.
#include <weft/weft.hpp>

#include <cstdio>

int main() {
  weft::ThreadPool pool(2);
  auto answer = pool.submit([](int a, int b) { return a * b; }, 6, 7).then([](int v) { return v; });
  std::printf("consumer: %d\n", answer.get());
  return 0;
}
