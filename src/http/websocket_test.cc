#include "http/websocket.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <cstdint>
#include <initializer_list>
#include <string>
#include <vector>

namespace prescale::http::websocket {
namespace {

using ::testing::HasSubstr;
using Role = FrameParser::Role;

constexpr size_t kLimit = 1 << 20;
constexpr std::array<uint8_t, 4> kRfcMask = {0x37, 0xfa, 0x21, 0x3d};

std::string bytes(std::initializer_list<int> values) {
  std::string out;
  for (int v : values) out.push_back(static_cast<char>(v));
  return out;
}

// The frames of `data` given to a fresh parser at once; fails the test on an error.
std::vector<Frame> parse_all(Role role, std::string_view data, size_t limit = kLimit) {
  FrameParser parser(role, limit);
  std::vector<Frame> frames;
  auto result = parser.parse(data, frames);
  EXPECT_TRUE(result.has_value()) << result.error().message;
  return frames;
}

// The error of `data` given to a fresh parser at once.
Error parse_error(Role role, std::string_view data, size_t limit = kLimit) {
  FrameParser parser(role, limit);
  std::vector<Frame> frames;
  auto result = parser.parse(data, frames);
  EXPECT_FALSE(result.has_value());
  return result.has_value() ? Error{} : result.error();
}

// RFC 6455 section 1.3 (SHA-1 b37a4f2cc0624f1690f64606cf385945b2bec4ea).
TEST(WebSocketTest, AcceptKeyMatchesTheRfcExample) {
  EXPECT_EQ(accept_key("dGhlIHNhbXBsZSBub25jZQ=="), "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=");
}

TEST(WebSocketTest, ValidClientKeyAcceptsSixteenBytesInBase64) {
  EXPECT_TRUE(valid_client_key("dGhlIHNhbXBsZSBub25jZQ=="));
  EXPECT_TRUE(valid_client_key("AAAAAAAAAAAAAAAAAAAAAA=="));
  EXPECT_TRUE(valid_client_key("+/+/+/+/+/+/+/+/+/+/+w=="));
}

TEST(WebSocketTest, ValidClientKeyRejectsWhatIsNotSixteenBytesInBase64) {
  EXPECT_FALSE(valid_client_key(""));
  EXPECT_FALSE(valid_client_key("dGhlIHNhbXBsZSBub25jZQ="));       // 23 characters
  EXPECT_FALSE(valid_client_key("dGhlIHNhbXBsZSBub25jZQ==="));     // 25 characters
  EXPECT_FALSE(valid_client_key("dGhlIHNhbXBsZSBub25jZQ=A"));      // one '=': 17 bytes
  EXPECT_FALSE(valid_client_key("dGhlIHNhbXBsZSBub25jZQAA"));      // 18 bytes
  EXPECT_FALSE(valid_client_key("dGhlIHNhbXBsZSBub25jZXMhIQ=="));  // 20 bytes
  EXPECT_FALSE(valid_client_key("dGhlIHNhbXBsZSBub25j*Q=="));      // not a base64 digit
  EXPECT_FALSE(valid_client_key("dGhlIHNhbXBsZSBub25j=Q=="));      // padding inside
  EXPECT_FALSE(valid_client_key(" dGhlIHNhbXBsZSBub25jZQ="));
}

// RFC 6455 section 5.7: a single-frame unmasked text message.
TEST(WebSocketTest, RfcUnmaskedHelloParsesAndIsWrittenAlike) {
  const std::string wire = bytes({0x81, 0x05, 0x48, 0x65, 0x6c, 0x6c, 0x6f});
  auto frames = parse_all(Role::kClient, wire);
  ASSERT_EQ(frames.size(), 1u);
  EXPECT_EQ(frames[0].opcode, Opcode::kText);
  EXPECT_TRUE(frames[0].fin);
  EXPECT_EQ(frames[0].payload, "Hello");

  std::string out;
  append_frame(out, Opcode::kText, "Hello");
  EXPECT_EQ(out, wire);
}

// RFC 6455 section 5.7: a single-frame masked text message.
TEST(WebSocketTest, RfcMaskedHelloParsesAndIsWrittenAlike) {
  const std::string wire =
      bytes({0x81, 0x85, 0x37, 0xfa, 0x21, 0x3d, 0x7f, 0x9f, 0x4d, 0x51, 0x58});
  auto frames = parse_all(Role::kServer, wire);
  ASSERT_EQ(frames.size(), 1u);
  EXPECT_EQ(frames[0].opcode, Opcode::kText);
  EXPECT_EQ(frames[0].payload, "Hello");

  std::string out;
  append_frame(out, Opcode::kText, "Hello", true, kRfcMask);
  EXPECT_EQ(out, wire);
}

// RFC 6455 section 5.7: a fragmented unmasked text message, kept as its two fragments.
TEST(WebSocketTest, RfcFragmentedHelloParsesAsItsFragments) {
  const std::string wire = bytes({0x01, 0x03, 0x48, 0x65, 0x6c, 0x80, 0x02, 0x6c, 0x6f});
  auto frames = parse_all(Role::kClient, wire);
  ASSERT_EQ(frames.size(), 2u);
  EXPECT_EQ(frames[0].opcode, Opcode::kText);
  EXPECT_FALSE(frames[0].fin);
  EXPECT_EQ(frames[0].payload, "Hel");
  EXPECT_EQ(frames[1].opcode, Opcode::kContinuation);
  EXPECT_TRUE(frames[1].fin);
  EXPECT_EQ(frames[1].payload, "lo");

  std::string out;
  append_frame(out, Opcode::kText, "Hel", false);
  append_frame(out, Opcode::kContinuation, "lo");
  EXPECT_EQ(out, wire);
}

// RFC 6455 section 5.7: an unmasked ping and a masked pong, both with "Hello".
TEST(WebSocketTest, RfcPingAndPongParse) {
  auto ping = parse_all(Role::kClient, bytes({0x89, 0x05, 0x48, 0x65, 0x6c, 0x6c, 0x6f}));
  ASSERT_EQ(ping.size(), 1u);
  EXPECT_EQ(ping[0].opcode, Opcode::kPing);
  EXPECT_EQ(ping[0].payload, "Hello");

  auto pong = parse_all(Role::kServer,
                        bytes({0x8a, 0x85, 0x37, 0xfa, 0x21, 0x3d, 0x7f, 0x9f, 0x4d, 0x51, 0x58}));
  ASSERT_EQ(pong.size(), 1u);
  EXPECT_EQ(pong[0].opcode, Opcode::kPong);
  EXPECT_EQ(pong[0].payload, "Hello");
}

// RFC 6455 section 5.7: 256 bytes of binary data take the 16-bit length, 64 KiB the 64-bit one.
TEST(WebSocketTest, RfcBinaryHeadersOf256BytesAnd64KiB) {
  const std::string small(256, 'x');
  std::string out;
  append_frame(out, Opcode::kBinary, small);
  EXPECT_EQ(out.substr(0, 4), bytes({0x82, 0x7e, 0x01, 0x00}));
  EXPECT_EQ(out.size(), 4 + small.size());
  auto frames = parse_all(Role::kClient, out);
  ASSERT_EQ(frames.size(), 1u);
  EXPECT_EQ(frames[0].payload, small);

  const std::string large(65536, 'y');
  out.clear();
  append_frame(out, Opcode::kBinary, large);
  EXPECT_EQ(out.substr(0, 10), bytes({0x82, 0x7f, 0x00, 0x00, 0x00, 0x00, 0x00, 0x01, 0x00, 0x00}));
  EXPECT_EQ(out.size(), 10 + large.size());
  frames = parse_all(Role::kClient, out);
  ASSERT_EQ(frames.size(), 1u);
  EXPECT_EQ(frames[0].payload, large);
}

// Sizes at each edge of the 7-, 16- and 64-bit length encodings, both ways of masking.
TEST(WebSocketTest, FramesOfEverySizeRoundTripMaskedAndUnmasked) {
  struct Case {
    size_t payload_bytes;
    size_t header_bytes;
  };
  for (Case c :
       {Case{0, 2}, Case{125, 2}, Case{126, 4}, Case{65535, 4}, Case{65536, 10}, Case{70000, 10}}) {
    std::string payload(c.payload_bytes, '\0');
    for (size_t i = 0; i < payload.size(); ++i) payload[i] = static_cast<char>(i * 7 + i / 256);
    for (bool masked : {false, true}) {
      SCOPED_TRACE(std::to_string(c.payload_bytes) + (masked ? " bytes masked" : " bytes"));
      std::string wire;
      std::optional<std::array<uint8_t, 4>> mask;
      if (masked) mask = kRfcMask;
      append_frame(wire, Opcode::kBinary, payload, true, mask);
      EXPECT_EQ(wire.size(), c.header_bytes + (masked ? 4 : 0) + payload.size());
      if (masked && !payload.empty()) {
        EXPECT_NE(wire.substr(wire.size() - payload.size()), payload);
      }
      auto frames = parse_all(masked ? Role::kServer : Role::kClient, wire);
      ASSERT_EQ(frames.size(), 1u);
      EXPECT_EQ(frames[0].opcode, Opcode::kBinary);
      EXPECT_TRUE(frames[0].fin);
      EXPECT_EQ(frames[0].payload, payload);
    }
  }
}

std::string several_masked_frames() {
  std::string wire;
  append_frame(wire, Opcode::kText, "Hel", false, kRfcMask);
  append_frame(wire, Opcode::kPing, "", true, kRfcMask);
  append_frame(wire, Opcode::kContinuation, "lo", true, kRfcMask);
  append_frame(wire, Opcode::kBinary, std::string(300, 'b'), true, kRfcMask);
  append_frame(wire, Opcode::kBinary, std::string(70000, 'c'), true, kRfcMask);
  append_frame(wire, Opcode::kClose, close_payload(kCloseNormal, "bye"), true, kRfcMask);
  return wire;
}

void expect_several_masked_frames(const std::vector<Frame>& frames) {
  ASSERT_EQ(frames.size(), 6u);
  EXPECT_EQ(frames[0].payload, "Hel");
  EXPECT_FALSE(frames[0].fin);
  EXPECT_EQ(frames[1].opcode, Opcode::kPing);
  EXPECT_EQ(frames[1].payload, "");
  EXPECT_EQ(frames[2].opcode, Opcode::kContinuation);
  EXPECT_EQ(frames[2].payload, "lo");
  EXPECT_EQ(frames[3].payload, std::string(300, 'b'));
  EXPECT_EQ(frames[4].payload, std::string(70000, 'c'));
  EXPECT_EQ(frames[5].opcode, Opcode::kClose);
  EXPECT_EQ(frames[5].payload, bytes({0x03, 0xe8, 'b', 'y', 'e'}));
}

TEST(WebSocketTest, FramesFedOneByteAtATimeParseAsWhenFedAtOnce) {
  const std::string wire = several_masked_frames();
  FrameParser parser(Role::kServer, kLimit);
  std::vector<Frame> frames;
  for (char c : wire) {
    auto result = parser.parse(std::string_view(&c, 1), frames);
    ASSERT_TRUE(result.has_value()) << result.error().message;
  }
  expect_several_masked_frames(frames);
}

TEST(WebSocketTest, FramesSplitInTwoAnywhereParseAsWhenFedAtOnce) {
  std::string wire;
  append_frame(wire, Opcode::kText, "Hel", false, kRfcMask);
  append_frame(wire, Opcode::kPong, "p", true, kRfcMask);
  append_frame(wire, Opcode::kContinuation, std::string(200, 'l'), true, kRfcMask);
  for (size_t split = 0; split <= wire.size(); ++split) {
    SCOPED_TRACE("split at " + std::to_string(split));
    FrameParser parser(Role::kServer, kLimit);
    std::vector<Frame> frames;
    ASSERT_TRUE(parser.parse(std::string_view(wire).substr(0, split), frames).has_value());
    ASSERT_TRUE(parser.parse(std::string_view(wire).substr(split), frames).has_value());
    ASSERT_EQ(frames.size(), 3u);
    EXPECT_EQ(frames[0].payload, "Hel");
    EXPECT_EQ(frames[1].payload, "p");
    EXPECT_EQ(frames[2].payload, std::string(200, 'l'));
  }
}

// Section 5.2 asks for the minimal length encoding, but a longer one hurts no one.
TEST(WebSocketTest, NonMinimalLengthEncodingsAreAccepted) {
  auto in16 = parse_all(Role::kClient, bytes({0x81, 0x7e, 0x00, 0x02, 'h', 'i'}));
  ASSERT_EQ(in16.size(), 1u);
  EXPECT_EQ(in16[0].payload, "hi");
  auto in64 = parse_all(Role::kClient, bytes({0x81, 0x7f, 0, 0, 0, 0, 0, 0, 0, 0x02, 'h', 'i'}));
  ASSERT_EQ(in64.size(), 1u);
  EXPECT_EQ(in64[0].payload, "hi");
}

TEST(WebSocketTest, ControlFramesMayComeBetweenFragments) {
  std::string wire;
  append_frame(wire, Opcode::kBinary, "a", false);
  append_frame(wire, Opcode::kPing, "p");
  append_frame(wire, Opcode::kContinuation, "b", false);
  append_frame(wire, Opcode::kPong, "q");
  append_frame(wire, Opcode::kContinuation, "c", true);
  append_frame(wire, Opcode::kText, "next");
  auto frames = parse_all(Role::kClient, wire);
  ASSERT_EQ(frames.size(), 6u);
  EXPECT_EQ(frames[5].opcode, Opcode::kText);
  EXPECT_EQ(frames[5].payload, "next");
}

TEST(WebSocketTest, PayloadAtTheLimitIsAccepted) {
  std::string wire;
  append_frame(wire, Opcode::kBinary, std::string(1000, 'x'));
  EXPECT_EQ(parse_all(Role::kClient, wire, 1000).size(), 1u);
}

TEST(WebSocketTest, ReservedBitsAreAProtocolError) {
  for (int bit : {0x40, 0x20, 0x10}) {
    Error error = parse_error(Role::kClient, bytes({0x81 | bit, 0x00}));
    EXPECT_EQ(close_code(error), kCloseProtocolError);
    EXPECT_THAT(error.message, HasSubstr("reserved bits"));
    EXPECT_THAT(error.message, HasSubstr("at byte 0"));
  }
}

TEST(WebSocketTest, UnknownOpcodesAreAProtocolError) {
  for (int opcode : {3, 4, 5, 6, 7, 0xb, 0xc, 0xd, 0xe, 0xf}) {
    Error error = parse_error(Role::kClient, bytes({0x80 | opcode, 0x00}));
    EXPECT_EQ(close_code(error), kCloseProtocolError);
    EXPECT_THAT(error.message, HasSubstr("unknown opcode " + std::to_string(opcode)));
  }
}

TEST(WebSocketTest, ControlFrameOver125BytesIsAProtocolError) {
  for (int opcode : {0x8, 0x9, 0xa}) {
    Error error = parse_error(Role::kClient, bytes({0x80 | opcode, 0x7e, 0x00, 0x7e}));
    EXPECT_EQ(close_code(error), kCloseProtocolError);
    EXPECT_THAT(error.message, HasSubstr("longer than the 125 bytes"));
  }
}

TEST(WebSocketTest, FragmentedControlFrameIsAProtocolError) {
  Error error = parse_error(Role::kClient, bytes({0x09, 0x00}));
  EXPECT_EQ(close_code(error), kCloseProtocolError);
  EXPECT_THAT(error.message, HasSubstr("ping frame is fragmented"));
}

TEST(WebSocketTest, UnmaskedFrameToAServerIsAProtocolError) {
  Error error = parse_error(Role::kServer, bytes({0x81, 0x05, 0x48, 0x65, 0x6c, 0x6c, 0x6f}));
  EXPECT_EQ(close_code(error), kCloseProtocolError);
  EXPECT_THAT(error.message, HasSubstr("unmasked frame from a client"));
}

TEST(WebSocketTest, MaskedFrameToAClientIsAProtocolError) {
  Error error = parse_error(
      Role::kClient, bytes({0x81, 0x85, 0x37, 0xfa, 0x21, 0x3d, 0x7f, 0x9f, 0x4d, 0x51, 0x58}));
  EXPECT_EQ(close_code(error), kCloseProtocolError);
  EXPECT_THAT(error.message, HasSubstr("masked frame from a server"));
}

TEST(WebSocketTest, LengthWithItsTopBitSetIsAProtocolError) {
  Error error = parse_error(Role::kClient, bytes({0x82, 0x7f, 0x80, 0, 0, 0, 0, 0, 0, 0x01}));
  EXPECT_EQ(close_code(error), kCloseProtocolError);
  EXPECT_THAT(error.message, HasSubstr("most significant bit"));
}

// The header alone tells: the parser does not buffer a payload it is going to refuse.
TEST(WebSocketTest, PayloadOverTheLimitIsMessageTooBigFromItsHeader) {
  Error error = parse_error(Role::kClient, bytes({0x82, 0x7e, 0x03, 0xe9}), 1000);
  EXPECT_EQ(error.code, ErrorCode::kOutOfRange);
  EXPECT_EQ(close_code(error), kCloseMessageTooBig);
  EXPECT_THAT(error.message, HasSubstr("payload of 1001 bytes is over the limit of 1000"));
}

TEST(WebSocketTest, ContinuationWithNothingToContinueIsAProtocolError) {
  Error error = parse_error(Role::kClient, bytes({0x80, 0x00}));
  EXPECT_EQ(close_code(error), kCloseProtocolError);
  EXPECT_THAT(error.message, HasSubstr("continuation frame without an unfinished"));

  // Nor after a message that finished.
  std::string wire;
  append_frame(wire, Opcode::kText, "a", false);
  append_frame(wire, Opcode::kContinuation, "b", true);
  append_frame(wire, Opcode::kContinuation, "c", true);
  error = parse_error(Role::kClient, wire);
  EXPECT_THAT(error.message, HasSubstr("continuation frame without an unfinished"));
  EXPECT_THAT(error.message, HasSubstr("at byte 6"));
}

TEST(WebSocketTest, NewMessageInsideAnUnfinishedOneIsAProtocolError) {
  for (Opcode opcode : {Opcode::kText, Opcode::kBinary}) {
    std::string wire;
    append_frame(wire, Opcode::kBinary, "a", false);
    append_frame(wire, Opcode::kPing, "");
    append_frame(wire, opcode, "b");
    Error error = parse_error(Role::kClient, wire);
    EXPECT_EQ(close_code(error), kCloseProtocolError);
    EXPECT_THAT(error.message, HasSubstr("while a fragmented message is unfinished"));
    EXPECT_THAT(error.message, HasSubstr("at byte 5"));
  }
}

TEST(WebSocketTest, CloseWithAOneBytePayloadIsAProtocolError) {
  Error error = parse_error(Role::kClient, bytes({0x88, 0x01, 0x03}));
  EXPECT_EQ(close_code(error), kCloseProtocolError);
  EXPECT_THAT(error.message, HasSubstr("close frame's payload of 1 byte"));
}

// The frames before a bad one are given, so what the peer sent in good order is still answered
// no matter how the stream was cut into reads; the offset counts across calls.
TEST(WebSocketTest, ErrorNamesTheStreamOffsetAndKeepsTheFramesBeforeIt) {
  FrameParser parser(Role::kClient, kLimit);
  std::vector<Frame> frames;
  ASSERT_TRUE(parser.parse(bytes({0x81, 0x02, 'h'}), frames).has_value());
  EXPECT_TRUE(frames.empty());
  auto result = parser.parse(bytes({'i', 0x82, 0x00, 0xc2, 0x00}), frames);
  ASSERT_FALSE(result.has_value());
  EXPECT_THAT(result.error().message, HasSubstr("frame at byte 6: reserved bits"));
  ASSERT_EQ(frames.size(), 2u);
  EXPECT_EQ(frames[0].payload, "hi");
  EXPECT_EQ(frames[1].opcode, Opcode::kBinary);
}

TEST(WebSocketTest, ParserStaysFailedAfterAnError) {
  FrameParser parser(Role::kServer, kLimit);
  std::vector<Frame> frames;
  auto first = parser.parse(bytes({0x81, 0x00}), frames);
  ASSERT_FALSE(first.has_value());
  std::string good;
  append_frame(good, Opcode::kText, "ok", true, kRfcMask);
  auto second = parser.parse(good, frames);
  ASSERT_FALSE(second.has_value());
  EXPECT_EQ(second.error().message, first.error().message);
  EXPECT_TRUE(frames.empty());
}

// An error is reported from the first byte that shows it: a peer that then waits still hears.
TEST(WebSocketTest, ErrorIsReportedBeforeTheRestOfTheFrameArrives) {
  FrameParser parser(Role::kServer, kLimit);
  std::vector<Frame> frames;
  EXPECT_FALSE(parser.parse(bytes({0x83}), frames).has_value());
}

TEST(WebSocketTest, ClosePayloadIsTheCodeInNetworkOrderThenTheReason) {
  EXPECT_EQ(close_payload(kCloseNormal), bytes({0x03, 0xe8}));
  EXPECT_EQ(close_payload(kCloseMessageTooBig, "too big"), bytes({0x03, 0xf1}) + "too big");
}

TEST(WebSocketTest, ClosePayloadCutsALongReasonAtACharacterBoundary) {
  EXPECT_EQ(close_payload(kCloseNormal, std::string(200, 'a')).size(), 125u);
  // 61 two-byte characters end at byte 122; the 62nd would cross the 123 allowed.
  std::string reason;
  for (int i = 0; i < 70; ++i) reason += "\xc3\xa9";
  std::string payload = close_payload(kCloseNormal, reason);
  EXPECT_EQ(payload.size(), 2u + 122u);
  EXPECT_EQ(payload.substr(2), reason.substr(0, 122));
}

}  // namespace
}  // namespace prescale::http::websocket
