// libFuzzer target: arbitrary bytes into io::http::RequestParser, fed in pieces of varying sizes, the way a
// server feeds what each read brings. Run by scripts/fuzz.sh.
//
// Input layout: byte 0 picks the limits (small ones reach the 431/413 paths quickly), byte 1 seeds the piece
// sizes, the rest is the byte stream of one connection.
//
// Invariants checked (a violation aborts, which libFuzzer reports as a crash):
//  - feed() never consumes more than it is given, and consumes nothing once done() or failed();
//  - a complete request's method, target, header names and values are bytes of the input (copied, not
//    invented), its header count and body size are within the limits, and a (non-chunked) body is input bytes;
//  - an error is reported as a status among 400, 413, 431, 505, with a message, and is final;
//  - copies and moves of a Request keep the same fields.
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <string_view>

#include "weft/io/http/request_parser.hpp"

namespace http = weft::io::http;

namespace {

void check(bool ok, const char* what) {
  if (!ok) {
    std::fprintf(stderr, "http_request_fuzz: invariant broken: %s\n", what);
    std::abort();
  }
}

http::ParserLimits limits_for(std::uint8_t pick) {
  http::ParserLimits l;
  switch (pick % 4) {
    case 0: break;  // the defaults
    case 1: l.max_header_bytes = 64; l.max_body_bytes = 16; l.max_headers = 3; break;
    case 2: l.max_header_bytes = 256; l.max_body_bytes = 0; l.max_headers = 1; break;
    default: l.max_header_bytes = 1; l.max_body_bytes = 1; l.max_headers = 0; break;
  }
  return l;
}

// The input with every line break that is followed by a space or a tab (a header folded over lines) removed.
std::string unfold(std::string_view input) {
  std::string out;
  out.reserve(input.size());
  for (std::size_t i = 0; i < input.size(); ++i) {
    std::size_t n = input[i] == '\n' ? 1 : (input.substr(i, 2) == "\r\n" ? 2 : 0);
    if (n > 0 && i + n < input.size() && (input[i + n] == ' ' || input[i + n] == '\t')) {
      i += n - 1;
      continue;
    }
    out.push_back(input[i]);
  }
  return out;
}

void check_request(const http::Request& r, std::string_view input, const std::string& unfolded,
                   const http::ParserLimits& limits) {
  check(!r.method().empty(), "empty method");
  check(input.find(r.target()) != std::string_view::npos, "target not from the input");
  check(r.header_count() <= limits.max_headers, "more headers than the limit");
  for (std::size_t i = 0; i < r.header_count(); ++i) {
    http::Header h = r.header_at(i);
    check(input.find(h.name) != std::string_view::npos, "header name not from the input");
    // A value folded over several lines (obs-fold) arrives with its line breaks dropped, its leading
    // whitespace kept (RFC 9112 allows replacing each fold by whitespace).
    check(input.find(h.value) != std::string_view::npos || unfolded.find(h.value) != std::string::npos,
          "header value not from the input");
    check(r.header(h.name).has_value(), "a header that header() cannot find");
  }
  check(r.body().size() <= limits.max_body_bytes, "body above the limit");
  bool chunked = false;  // any Transfer-Encoding line may name it (header() finds only the first)
  for (std::size_t i = 0; i < r.header_count(); ++i) {
    http::Header h = r.header_at(i);
    if (http::iequals(h.name, "transfer-encoding") && h.value.find_first_of("cC") != std::string_view::npos) {
      chunked = true;
    }
  }
  if (!chunked) check(input.find(r.body()) != std::string_view::npos, "body not from the input");
  http::Request copy = r;
  check(copy.method() == r.method() && copy.target() == r.target() && copy.body() == r.body() &&
            copy.header_count() == r.header_count(),
        "a copy differs");
  http::Request moved = std::move(copy);
  check(moved.target() == r.target(), "a move differs");
  (void)r.keep_alive();
  (void)r.path();
  (void)r.query();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size < 2) return 0;
  const http::ParserLimits limits = limits_for(data[0]);
  std::uint32_t rng = data[1] * 2654435761u + 1;
  std::string_view input(reinterpret_cast<const char*>(data + 2), size - 2);

  http::RequestParser parser(limits);
  std::string unfolded;  // made on the first complete request
  std::size_t at = 0;
  std::size_t requests = 0;
  for (std::size_t rounds = 0; at < input.size() && rounds < 2 * input.size() + 4; ++rounds) {
    rng = rng * 1664525u + 1013904223u;  // piece sizes 1..64, from the seed byte
    std::size_t piece = std::min<std::size_t>(1 + (rng >> 26), input.size() - at);
    std::size_t used = parser.feed(input.data() + at, piece);
    check(used <= piece, "consumed more than given");
    at += used;
    if (parser.failed()) {
      int status = parser.error().status();
      check(status == 400 || status == 413 || status == 431 || status == 505, "unexpected error status");
      check(parser.error().message != nullptr && parser.error().message[0] != '\0', "error without a message");
      check(parser.feed(input.data(), input.size()) == 0, "an error is not final");
      break;
    }
    if (parser.done()) {
      check(parser.feed(input.data() + at, input.size() - at) == 0, "consumed past a complete request");
      if (unfolded.empty()) unfolded = unfold(input);
      check_request(parser.request(), input, unfolded, limits);
      // Alternate the two ways of going on.
      if (++requests % 2 == 0) {
        http::Request r = parser.take();
        check_request(r, input, unfolded, limits);
      } else {
        parser.next();
      }
      check(parser.idle(), "not idle after a complete request");
    } else {
      check(used == piece, "stopped early without a request or an error");
    }
  }
  return 0;
}
