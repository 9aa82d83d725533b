// tools/weft/primes.hpp — the demo's CPU workload: counting primes by trial division.
//
// Trial division by the primes up to √n is deliberately not the fastest way to count primes (a sieve is);
// it is chosen because every chunk of numbers is real, independent CPU work whose cost grows with the
// numbers, which is what a thread-pool demo needs to show a speedup.
#pragma once

#include <cstdint>
#include <optional>
#include <vector>

namespace weft::cli {

/// The primes p with p * p < limit, ascending: enough to test every number below `limit` by trial division.
/// `limit` must be at most 2^32.
std::vector<std::uint32_t> base_primes(std::uint64_t limit);

/// How many primes lie in [lo, hi). `base` must come from base_primes(L) with hi <= L <= 2^32.
/// Pure; safe to call from many threads on the same `base`.
std::uint64_t count_primes(std::uint64_t lo, std::uint64_t hi, const std::vector<std::uint32_t>& base);

/// π(limit): the published number of primes below `limit`, when `limit` is one the demo knows
/// (the powers of ten up to 10^9, and 200,000), for checking a count.
std::optional<std::uint64_t> known_prime_count(std::uint64_t limit);

}  // namespace weft::cli
