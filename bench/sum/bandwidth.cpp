// bench/sum/bandwidth.cpp — the reference: `threads` std::threads, each summing the 64-bit words of its
// contiguous part of the array (integer addition, which the compiler vectorises freely), started and joined
// inside the timed region (thread start-up is some tens of microseconds of a run of tens of milliseconds).
// It does no floating-point work: it measures how fast these threads can stream the array from memory.
#include <bit>
#include <thread>

#include "common.hpp"

namespace bench {

std::uint64_t sum_words(const double* a, std::size_t lo, std::size_t hi) {
  std::uint64_t s = 0;
  for (std::size_t i = lo; i < hi; ++i) s += std::bit_cast<std::uint64_t>(a[i]);
  return s;
}

void add_bandwidth(std::vector<Case>& cases, const SumDataPtr& d) {
  auto result = std::make_shared<std::uint64_t>(0);
  add_contender(
      cases, "sum",
      {"streaming read",
       "the reference: " + std::to_string(d->threads) +
           " std::threads (started and joined in the timed region), each summing the 64-bit words of its part as "
           "integers (vectorised); no floating point",
       false, {},
       [d, result] {
         std::vector<std::uint64_t> part(d->threads);
         std::vector<std::thread> readers;
         for (std::size_t t = 0; t < d->threads; ++t) {
           readers.emplace_back([&, t] {
             part[t] = sum_words(d->a.get(), d->n * t / d->threads, d->n * (t + 1) / d->threads);
           });
         }
         for (auto& r : readers) r.join();
         std::uint64_t s = 0;
         for (const std::uint64_t p : part) s += p;
         *result = s;
       },
       [d, result] {
         return *result == d->expected_words ? std::string() : std::string("word sum differs");
       }});
}

}  // namespace bench
