// weft/process/detail/framing.hpp — messages over a byte-stream descriptor (a socket, a pipe, a FIFO).
//
// A frame is a 16-byte header, then the payload:
//   bytes 0..3   magic "WFT1" (the u32 0x31544657, little-endian)
//   bytes 4..7   flags (u32, little-endian; bit 0 = the payload is a serialized value, else raw bytes — the
//                framing passes flags through untouched)
//   bytes 8..15  payload length (u64, little-endian)
//
// Descriptors may be blocking or O_NONBLOCK: EAGAIN waits in poll() until the deadline.
//
// Deadlines (a null deadline: wait as long as it takes) apply only before a frame starts:
//   1. A send waits for room until the deadline; if none came, weft::Timeout and nothing was written.
//   2. Once its first byte is written, the send finishes the frame, waiting for the reader as long as it takes
//      (half a frame cannot be taken back without breaking the stream for every later frame).
//   3. A receive waits for a first byte until the deadline; if none came, weft::Timeout and nothing was read.
//   4. Once a byte of a frame is read, the receive reads the rest, waiting for the writer as long as it takes.
// So a deadline bounds the wait for a peer that is idle, not for one that stops in the middle of a frame.
//
// SIGPIPE: sockets are written with sendmsg(MSG_NOSIGNAL). Pipes and FIFOs have no such flag, so SIGPIPE is
// blocked on the calling thread around the write; a SIGPIPE the write raised is taken back with a zero-timeout
// sigtimedwait() before the old mask returns (unless one was already pending: that one belongs to the program
// and stays). EPIPE then becomes weft::ChannelClosed. Hazard: a process-directed SIGPIPE sent by kill() while
// the write is in progress is taken back too.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace weft::process::detail {

/// steady_clock::now() + t, saturating (a timeout of nanoseconds::max() means "practically forever").
inline std::chrono::steady_clock::time_point deadline_after(std::chrono::nanoseconds t) {
  using Clock = std::chrono::steady_clock;
  const auto now = Clock::now();
  const auto room = std::chrono::duration_cast<std::chrono::nanoseconds>(Clock::time_point::max() - now);
  return t >= room ? Clock::time_point::max() : now + std::chrono::duration_cast<Clock::duration>(t);
}

inline constexpr std::uint32_t kFrameMagic = 0x31544657;  // "WFT1" read as little-endian bytes
inline constexpr std::size_t kFrameHeader = 16;
inline constexpr std::uint32_t kFrameSerialized = 1;  // flags bit 0: the payload is a pack()ed value

/// Waits until `fd` is readable (or at end-of-file, or in error) or the deadline (null: none) passes.
/// Returns false on timeout. Retries EINTR. Thread-safe. Throws std::system_error (poll failed).
bool wait_readable(int fd, const std::chrono::steady_clock::time_point* deadline);
/// Same as wait_readable, for room to write.
bool wait_writable(int fd, const std::chrono::steady_clock::time_point* deadline);

/// Sends one frame (header and payload in one writev/sendmsg, looping over partial writes and EINTR).
/// Throws MessageTooLarge (payload above `limit`: nothing sent), weft::Timeout (no room before the deadline:
/// nothing sent), weft::ChannelClosed (the reader is gone: EPIPE/ECONNRESET, the process is not killed),
/// std::system_error (other failures). Thread safety: one sender per descriptor at a time (frames of
/// concurrent senders interleave).
void send_frame(int fd, std::uint32_t flags, std::string_view payload, std::size_t limit,
                const std::chrono::steady_clock::time_point* deadline);

struct Frame {
  std::uint32_t flags = 0;
  std::string payload;
};

/// Receives one frame. Returns nullopt at a clean end of stream (the peer closed between frames; callers turn
/// it into weft::ChannelClosed). Throws weft::Timeout (nothing arrived before the deadline: nothing consumed),
/// ProtocolError (wrong magic, or the stream ended inside a frame ("truncated"): the stream cannot be trusted
/// any more), MessageTooLarge (the frame announced more than `limit` bytes: its payload was read and dropped in
/// bounded chunks, so the next frame can be received), std::system_error. One receiver per descriptor at a time.
std::optional<Frame> recv_frame(int fd, std::size_t limit, const std::chrono::steady_clock::time_point* deadline);

/// The same as the optional-returning recv_frame, into `out` (its buffer is reused); false at end of stream.
bool recv_frame(int fd, std::size_t limit, const std::chrono::steady_clock::time_point* deadline, Frame& out);

}  // namespace weft::process::detail
