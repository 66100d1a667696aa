#include "http/websocket.h"

#include <openssl/evp.h>
#include <openssl/sha.h>

#include <utility>

namespace prescale::http::websocket {
namespace {

constexpr size_t kMaxControlPayloadBytes = 125;
constexpr uint8_t kFin = 0x80;
constexpr uint8_t kReservedBits = 0x70;
constexpr uint8_t kMaskBit = 0x80;

bool is_control(uint8_t opcode) { return (opcode & 0x08) != 0; }

bool is_known(uint8_t opcode) {
  switch (static_cast<Opcode>(opcode)) {
    case Opcode::kContinuation:
    case Opcode::kText:
    case Opcode::kBinary:
    case Opcode::kClose:
    case Opcode::kPing:
    case Opcode::kPong:
      return true;
  }
  return false;
}

const char* name(Opcode opcode) {
  switch (opcode) {
    case Opcode::kContinuation:
      return "continuation";
    case Opcode::kText:
      return "text";
    case Opcode::kBinary:
      return "binary";
    case Opcode::kClose:
      return "close";
    case Opcode::kPing:
      return "ping";
    case Opcode::kPong:
      return "pong";
  }
  return "unknown";
}

bool is_base64_digit(char c) {
  return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '+' ||
         c == '/';
}

uint64_t read_big_endian(std::string_view bytes) {
  uint64_t value = 0;
  for (char c : bytes) value = (value << 8) | static_cast<uint8_t>(c);
  return value;
}

void append_big_endian(std::string& out, uint64_t value, int bytes) {
  for (int i = bytes - 1; i >= 0; --i) out.push_back(static_cast<char>((value >> (8 * i)) & 0xff));
}

}  // namespace

std::string accept_key(std::string_view client_key) {
  std::string input(client_key);
  input.append(kGuid);
  unsigned char digest[SHA_DIGEST_LENGTH];
  SHA1(reinterpret_cast<const unsigned char*>(input.data()), input.size(), digest);
  // 20 bytes take 28 base64 characters; EVP_EncodeBlock writes a NUL after them.
  unsigned char encoded[4 * ((SHA_DIGEST_LENGTH + 2) / 3) + 1];
  int length = EVP_EncodeBlock(encoded, digest, SHA_DIGEST_LENGTH);
  return std::string(reinterpret_cast<const char*>(encoded), static_cast<size_t>(length));
}

bool valid_client_key(std::string_view key) {
  if (key.size() != 24 || !key.ends_with("==")) return false;
  // The 4 bits that the 22nd digit carries past the 16 bytes are not checked to be zero: the key
  // is only hashed, never decoded, so a client's sloppy encoder harms nothing.
  for (char c : key.substr(0, 22)) {
    if (!is_base64_digit(c)) return false;
  }
  return true;
}

void append_frame(std::string& out, Opcode opcode, std::string_view payload, bool fin,
                  std::optional<std::array<uint8_t, 4>> mask) {
  out.push_back(static_cast<char>((fin ? kFin : 0) | static_cast<uint8_t>(opcode)));
  const uint8_t mask_bit = mask ? kMaskBit : 0;
  if (payload.size() <= kMaxControlPayloadBytes) {
    out.push_back(static_cast<char>(mask_bit | payload.size()));
  } else if (payload.size() <= 0xffff) {
    out.push_back(static_cast<char>(mask_bit | 126));
    append_big_endian(out, payload.size(), 2);
  } else {
    out.push_back(static_cast<char>(mask_bit | 127));
    append_big_endian(out, payload.size(), 8);
  }
  if (!mask) {
    out.append(payload);
    return;
  }
  out.append(reinterpret_cast<const char*>(mask->data()), mask->size());
  const size_t start = out.size();
  out.append(payload);
  for (size_t i = 0; i < payload.size(); ++i) out[start + i] ^= static_cast<char>((*mask)[i % 4]);
}

std::string close_payload(uint16_t code, std::string_view reason) {
  constexpr size_t kMaxReasonBytes = kMaxControlPayloadBytes - 2;
  if (reason.size() > kMaxReasonBytes) {
    size_t cut = kMaxReasonBytes;
    // A reason cut inside a character would be invalid UTF-8, which a peer must fail on.
    while (cut > 0 && (static_cast<uint8_t>(reason[cut]) & 0xc0) == 0x80) --cut;
    reason = reason.substr(0, cut);
  }
  std::string out;
  append_big_endian(out, code, 2);
  out.append(reason);
  return out;
}

uint16_t close_code(const Error& error) {
  return error.code == ErrorCode::kOutOfRange ? kCloseMessageTooBig : kCloseProtocolError;
}

FrameParser::FrameParser(Role role, size_t max_payload_bytes)
    : role_(role), max_payload_bytes_(max_payload_bytes) {}

Result<void> FrameParser::parse(std::string_view data, std::vector<Frame>& frames) {
  if (error_) return std::unexpected(*error_);
  buffer_.append(data);
  size_t pos = 0;
  while (pos < buffer_.size()) {
    Result<size_t> taken = parse_frame(std::string_view(buffer_).substr(pos), frames);
    if (!taken) {
      error_ = std::move(taken.error());
      buffer_ = std::string();
      return std::unexpected(*error_);
    }
    if (*taken == 0) break;
    pos += *taken;
    buffer_offset_ += *taken;
  }
  buffer_.erase(0, pos);
  return {};
}

Result<size_t> FrameParser::parse_frame(std::string_view bytes, std::vector<Frame>& frames) {
  auto fail = [&](ErrorCode code, std::string what) {
    return make_error(code, "frame at byte " + std::to_string(buffer_offset_) + ": " + what);
  };

  // Each check is made as soon as its bytes are here: a peer that stops sending mid-frame still
  // gets its error.
  const uint8_t first = static_cast<uint8_t>(bytes[0]);
  const bool fin = (first & kFin) != 0;
  const uint8_t opcode = first & 0x0f;
  if ((first & kReservedBits) != 0) {
    return fail(ErrorCode::kInvalidArgument,
                "reserved bits (RSV1-3) are set, and no extension was negotiated");
  }
  if (!is_known(opcode)) {
    return fail(ErrorCode::kInvalidArgument, "unknown opcode " + std::to_string(opcode));
  }
  const auto op = static_cast<Opcode>(opcode);
  if (is_control(opcode) && !fin) {
    return fail(ErrorCode::kInvalidArgument,
                std::string("a ") + name(op) +
                    " frame is fragmented (fin is 0), as no control frame may be");
  }
  if (op == Opcode::kContinuation && !in_message_) {
    return fail(ErrorCode::kInvalidArgument,
                "a continuation frame without an unfinished text or binary frame to continue");
  }
  if ((op == Opcode::kText || op == Opcode::kBinary) && in_message_) {
    return fail(ErrorCode::kInvalidArgument,
                std::string("a new ") + name(op) +
                    " frame while a fragmented message is unfinished (a continuation was due)");
  }
  if (bytes.size() < 2) return 0;

  const uint8_t second = static_cast<uint8_t>(bytes[1]);
  const bool masked = (second & kMaskBit) != 0;
  if (role_ == Role::kServer && !masked) {
    return fail(ErrorCode::kInvalidArgument, "an unmasked frame from a client, which must mask");
  }
  if (role_ == Role::kClient && masked) {
    return fail(ErrorCode::kInvalidArgument, "a masked frame from a server, which must not mask");
  }
  const uint8_t length_code = second & 0x7f;
  if (is_control(opcode) && length_code > kMaxControlPayloadBytes) {
    return fail(ErrorCode::kInvalidArgument,
                std::string("a ") + name(op) +
                    " frame's payload is longer than the 125 bytes allowed to a control frame");
  }

  size_t header_bytes = 2;
  uint64_t payload_bytes = length_code;
  // A length in more bytes than it needs is accepted: section 5.2 asks for the minimal one, but
  // rejecting it would fail peers for nothing.
  if (length_code == 126 || length_code == 127) {
    const size_t extended_bytes = length_code == 126 ? 2 : 8;
    if (bytes.size() < header_bytes + extended_bytes) return 0;
    payload_bytes = read_big_endian(bytes.substr(header_bytes, extended_bytes));
    header_bytes += extended_bytes;
    if ((payload_bytes >> 63) != 0) {
      return fail(ErrorCode::kInvalidArgument,
                  "the 64-bit payload length has its most significant bit set");
    }
  }
  if (payload_bytes > max_payload_bytes_) {
    return fail(ErrorCode::kOutOfRange, "a payload of " + std::to_string(payload_bytes) +
                                            " bytes is over the limit of " +
                                            std::to_string(max_payload_bytes_));
  }
  if (op == Opcode::kClose && payload_bytes == 1) {
    return fail(ErrorCode::kInvalidArgument,
                "a close frame's payload of 1 byte, where a status code takes 2");
  }

  std::array<uint8_t, 4> mask{};
  if (masked) {
    if (bytes.size() < header_bytes + mask.size()) return 0;
    for (size_t i = 0; i < mask.size(); ++i) {
      mask[i] = static_cast<uint8_t>(bytes[header_bytes + i]);
    }
    header_bytes += mask.size();
  }
  if (bytes.size() - header_bytes < payload_bytes) return 0;

  Frame frame{op, fin, std::string(bytes.substr(header_bytes, payload_bytes))};
  if (masked) {
    for (size_t i = 0; i < frame.payload.size(); ++i) {
      frame.payload[i] ^= static_cast<char>(mask[i % 4]);
    }
  }
  if (op == Opcode::kText || op == Opcode::kBinary) in_message_ = !fin;
  if (op == Opcode::kContinuation && fin) in_message_ = false;
  frames.push_back(std::move(frame));
  return header_bytes + payload_bytes;
}

}  // namespace prescale::http::websocket
