// weft/process/detail/framing.hpp — messages over a byte-stream descriptor (a socket, a pipe, a FIFO).
//
// A frame is a 16-byte header {magic "WFT1" (little-endian u32), flags (u32), payload length (u64)}, then the
// payload. Works on blocking and non-blocking descriptors alike (EAGAIN waits in poll until the deadline).
// Deadlines apply only before a frame starts: a send that has written a byte, or a receive that has read
// one, finishes the frame (waiting for the peer as long as it takes), because half a frame cannot be taken
// back without losing the stream's framing.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace weft::process::detail {

inline constexpr std::uint32_t kFrameMagic = 0x31544657;  // "WFT1"
inline constexpr std::size_t kFrameHeader = 16;

/// Waits until `fd` is readable (or at EOF/error), or the deadline (null: forever) passes. False on timeout.
bool wait_readable(int fd, const std::chrono::steady_clock::time_point* deadline);
/// Same for writable.
bool wait_writable(int fd, const std::chrono::steady_clock::time_point* deadline);

/// Sends one frame. Throws MessageTooLarge (payload above `limit`: nothing sent), weft::Timeout (the deadline
/// passed before the first byte went out: nothing sent), weft::ChannelClosed (the reader is gone: EPIPE,
/// without a SIGPIPE — sockets use MSG_NOSIGNAL, pipes have SIGPIPE blocked on the thread around the write),
/// std::system_error for other failures.
void send_frame(int fd, std::uint32_t flags, std::string_view payload, std::size_t limit,
                const std::chrono::steady_clock::time_point* deadline);

struct Frame {
  std::uint32_t flags = 0;
  std::string payload;
};

/// Receives one frame into `out`. Returns false at a clean end of stream (the peer closed between frames).
/// Throws weft::Timeout (nothing arrived before the deadline: nothing consumed), ProtocolError (wrong magic,
/// or the stream ended inside a frame: the stream cannot be trusted any more), MessageTooLarge (the frame
/// announced more than `limit` bytes: its payload was read and dropped, so the next frame can be received),
/// std::system_error.
bool recv_frame(int fd, std::size_t limit, const std::chrono::steady_clock::time_point* deadline, Frame& out);

}  // namespace weft::process::detail
