#pragma once
// The client's response parser (private to io/http): http-parser in response mode, one response at a time.
#include <http_parser.h>

#include <cstddef>
#include <cstdint>
#include <string>

#include "weft/io/http/message.hpp"

namespace weft::io::http::detail {

class ResponseParser {
 public:
  ResponseParser(std::size_t max_header_bytes, std::size_t max_body_bytes) noexcept;

  /// Gets ready for the response to a new request; `head_request`: it was HEAD (the response has no body
  /// whatever its headers say).
  void start(bool head_request) noexcept;
  /// Parses up to `size` bytes; returns how many were consumed (stops at the end of the response). Interim
  /// (1xx) responses are skipped.
  std::size_t feed(const char* data, std::size_t size);
  /// The stream ended: completes a body delimited by the end of the stream, or fails.
  void feed_eof();

  bool done() const noexcept { return done_; }
  bool failed() const noexcept { return error_ != nullptr; }
  const char* error() const noexcept { return error_; }
  /// After done(): whether the connection may carry another request.
  bool keep_alive() const noexcept { return keep_alive_; }
  /// The response (after done()).
  Response& response() noexcept { return response_; }

 private:
  struct Callbacks;
  void fail(const char* message) noexcept {
    if (error_ == nullptr) error_ = message;
  }

  http_parser parser_;
  Response response_;
  std::size_t max_header_bytes_;
  std::size_t max_body_bytes_;
  std::size_t header_bytes_ = 0;
  const char* error_ = nullptr;
  std::uint8_t last_ = 0;  // the last header callback: 0 none, 1 a name, 2 a value
  bool head_request_ = false;
  bool done_ = false;
  bool keep_alive_ = false;
};

}  // namespace weft::io::http::detail
