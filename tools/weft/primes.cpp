// tools/weft/primes.cpp — trial-division prime counting for the demo workload.
#include "primes.hpp"

#include <array>
#include <utility>

namespace weft::cli {

std::vector<std::uint32_t> base_primes(std::uint64_t limit) {
  // Sieve of Eratosthenes up to √limit (at most 65,536 for limit <= 2^32): tiny, done once per run.
  std::uint64_t root = 0;
  while ((root + 1) * (root + 1) < limit) ++root;
  std::vector<bool> composite(root + 1, false);
  std::vector<std::uint32_t> primes;
  for (std::uint64_t i = 2; i <= root; ++i) {
    if (composite[i]) continue;
    primes.push_back(static_cast<std::uint32_t>(i));
    for (std::uint64_t j = i * i; j <= root; j += i) composite[j] = true;
  }
  return primes;
}

std::uint64_t count_primes(std::uint64_t lo, std::uint64_t hi, const std::vector<std::uint32_t>& base) {
  std::uint64_t count = 0;
  if (lo <= 2 && hi > 2) ++count;  // the only even prime
  std::uint64_t n = lo < 3 ? 3 : (lo | 1);  // first odd number >= max(lo, 3)
  for (; n < hi; n += 2) {
    // 32-bit division: n < 2^32 and it is several times faster than 64-bit division.
    const auto m = static_cast<std::uint32_t>(n);
    bool prime = true;
    for (std::size_t k = 1; k < base.size(); ++k) {  // base[0] == 2: odd numbers skip it
      const std::uint32_t p = base[k];
      if (std::uint64_t{p} * p > m) break;
      if (m % p == 0) {
        prime = false;
        break;
      }
    }
    count += prime ? 1 : 0;
  }
  return count;
}

std::optional<std::uint64_t> known_prime_count(std::uint64_t limit) {
  static constexpr std::array<std::pair<std::uint64_t, std::uint64_t>, 10> kKnown{{
      {10, 4},
      {100, 25},
      {1'000, 168},
      {10'000, 1'229},
      {100'000, 9'592},
      {200'000, 17'984},
      {1'000'000, 78'498},
      {10'000'000, 664'579},
      {100'000'000, 5'761'455},
      {1'000'000'000, 50'847'534},
  }};
  for (const auto& [x, pi] : kKnown) {
    if (x == limit) return pi;
  }
  return std::nullopt;
}

}  // namespace weft::cli
