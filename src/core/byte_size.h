// Amounts of memory as Kubernetes writes them ("512Mi", "1.5Gi", "500M"), for limits in config
// files and the messages that name them.
//
// Thread safety: pure functions.
#pragma once

#include <compare>
#include <cstdint>
#include <expected>
#include <string>
#include <string_view>

namespace prescale {

struct ByteSize {
  std::uint64_t bytes = 0;
  auto operator<=>(const ByteSize&) const = default;

  friend bool operator==(const ByteSize&, const ByteSize&) = default;
};

// A quantity as Kubernetes writes one: whole bytes ("536870912"), or a number with a binary
// ("Ki", "Mi", "Gi", "Ti", "Pi": powers of 1024) or decimal ("k", "M", "G", "T", "P": powers of
// 1000) suffix or a decimal exponent ("e6"): "512Mi", "1.5Gi", "500M", "128e6". At most 1Pi;
// fractions of a byte round up, as Kubernetes rounds them. The error is a sentence fragment for a
// message ("expected bytes, or a size such as ..., got \"12 MB\"").
std::expected<ByteSize, std::string> parse_byte_size(std::string_view text);

// The form it reads back from, the largest whole unit: "512Mi", "1536Mi", "500M", "1000" (bytes).
std::string format_byte_size(ByteSize size);

// For people: mebibytes with one decimal, "530.2 MiB" (what `ps` and `top` count in).
std::string format_mebibytes(std::uint64_t bytes);

}  // namespace prescale
