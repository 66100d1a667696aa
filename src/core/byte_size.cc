#include "core/byte_size.h"

#include <algorithm>
#include <charconv>
#include <cmath>
#include <cstdio>
#include <iterator>
#include <utility>

namespace prescale {

std::expected<ByteSize, std::string> parse_byte_size(std::string_view text) {
  auto fail = [&](std::string_view why) {
    return std::unexpected(std::string(why) + ", got \"" + std::string(text) + "\"");
  };
  constexpr std::string_view kHint =
      R"(expected bytes, or a size such as "512Mi", "1.5Gi" or "500M" (Ki, Mi, Gi, Ti: powers of )"
      R"(1024; k, M, G, T: powers of 1000))";
  if (text.starts_with('-')) return fail("sizes cannot be negative");
  std::size_t n = 0;
  while (n < text.size() && ((text[n] >= '0' && text[n] <= '9') || text[n] == '.')) ++n;
  double amount = 0;
  const auto [end, ec] = std::from_chars(text.data(), text.data() + n, amount);
  if (n == 0 || ec != std::errc() || end != text.data() + n) return fail(kHint);
  static constexpr std::pair<std::string_view, double> kUnits[] = {
      {"", 1},    {"Ki", 0x1p10}, {"Mi", 0x1p20}, {"Gi", 0x1p30}, {"Ti", 0x1p40},
      {"k", 1e3}, {"M", 1e6},     {"G", 1e9},     {"T", 1e12}};
  const std::string_view suffix = text.substr(n);
  const auto* unit = std::find_if(std::begin(kUnits), std::end(kUnits),
                                  [&](const auto& u) { return u.first == suffix; });
  if (unit == std::end(kUnits)) return fail(kHint);
  const double bytes = std::round(amount * unit->second);
  if (!(bytes <= 0x1p50)) return fail("sizes are at most 1Pi");
  return ByteSize{static_cast<std::uint64_t>(bytes)};
}

std::string format_byte_size(ByteSize size) {
  static constexpr std::pair<std::string_view, std::uint64_t> kUnits[] = {
      {"Ti", 1ULL << 40},          {"Gi", 1ULL << 30},      {"Mi", 1ULL << 20},
      {"Ki", 1ULL << 10},          {"T", 1'000'000'000'000}, {"G", 1'000'000'000},
      {"M", 1'000'000},            {"k", 1'000}};
  if (size.bytes == 0) return "0";
  for (const auto& [suffix, unit] : kUnits) {
    if (size.bytes % unit == 0) return std::to_string(size.bytes / unit) + std::string(suffix);
  }
  return std::to_string(size.bytes);
}

std::string format_mebibytes(std::uint64_t bytes) {
  char out[32];
  std::snprintf(out, sizeof out, "%.1f MiB", static_cast<double>(bytes) / 0x1p20);
  return out;
}

}  // namespace prescale
