// WebSocket (RFC 6455) on a raw byte tunnel: the opening handshake's key and the frames. The HTTP
// server does the upgrade itself; what it, the echo service and the tests need beyond that is
// here. No messages: fragments are handed over as they come, so an echo keeps their
// fragmentation. Text frames' UTF-8 and close frames' status codes are left to the caller.
//
// Thread safety: the free functions are pure. A FrameParser belongs to one connection and is used
// by one thread at a time.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "core/result.h"

namespace prescale::http::websocket {

inline constexpr std::string_view kGuid = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";

// Close codes (RFC 6455 section 7.4.1) that this module's callers send.
inline constexpr uint16_t kCloseNormal = 1000;
inline constexpr uint16_t kCloseProtocolError = 1002;
inline constexpr uint16_t kCloseMessageTooBig = 1009;

// Sec-WebSocket-Accept for a client's Sec-WebSocket-Key: base64 of SHA-1 of key + kGuid.
std::string accept_key(std::string_view client_key);

// A Sec-WebSocket-Key as RFC 6455 section 4.2.1 asks: base64 of 16 bytes (24 characters, the
// last two "=").
bool valid_client_key(std::string_view key);

enum class Opcode : uint8_t {
  kContinuation = 0,
  kText = 1,
  kBinary = 2,
  kClose = 8,
  kPing = 9,
  kPong = 10,
};

// Appends one frame to `out`. A client must mask what it sends (RFC 6455 section 5.3) and passes
// a fresh random 4-byte key; a server passes none. A control frame's payload is at most 125
// bytes and must not be fragmented: the caller keeps to that.
void append_frame(std::string& out, Opcode opcode, std::string_view payload, bool fin = true,
                  std::optional<std::array<uint8_t, 4>> mask = std::nullopt);

// A close frame's payload: the status code (network order), then the reason, cut to the 123
// bytes that fit a control frame (at a UTF-8 character boundary).
std::string close_payload(uint16_t code, std::string_view reason = {});

struct Frame {
  Opcode opcode = Opcode::kBinary;
  bool fin = true;
  std::string payload;  // unmasked
};

// The close code to send for a FrameParser's error: kCloseMessageTooBig for a frame over the
// limit (ErrorCode::kOutOfRange), kCloseProtocolError for any other.
uint16_t close_code(const Error& error);

// Frames out of the bytes of one connection, as they arrive (split anywhere).
class FrameParser {
 public:
  // A server takes only masked frames, a client only unmasked ones.
  enum class Role { kServer, kClient };

  FrameParser(Role role, size_t max_payload_bytes);

  // Appends to `frames` each frame that `data` completes, in order, and keeps the rest for the
  // next call. An error is what RFC 6455 section 5 forbids: a reserved bit or opcode, a control
  // frame over 125 bytes or fragmented, a mask the role does not expect, a continuation with
  // nothing to continue or a new message inside one, a 64-bit length with its top bit set, a
  // close frame's 1-byte payload (kInvalidArgument); or a payload over max_payload_bytes
  // (kOutOfRange). Its message says what and at which byte of the stream the frame began. The
  // frames before the bad one are still appended. Once failed, the parser returns that error.
  Result<void> parse(std::string_view data, std::vector<Frame>& frames);

 private:
  // A complete frame at the start of `bytes` is appended to `frames`: how many bytes it took, or
  // 0 while the frame is incomplete.
  Result<size_t> parse_frame(std::string_view bytes, std::vector<Frame>& frames);

  Role role_;
  size_t max_payload_bytes_;
  std::string buffer_;          // bytes of frames not complete yet
  uint64_t buffer_offset_ = 0;  // the stream offset of buffer_[0]
  bool in_message_ = false;     // a text or binary frame without fin awaits its continuation
  std::optional<Error> error_;
};

}  // namespace prescale::http::websocket
