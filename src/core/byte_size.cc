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
      R"(expected bytes, or a size such as "512Mi", "1.5Gi" or "500M" (Ki, Mi, Gi, Ti, Pi: powers )"
      R"(of 1024; k, M, G, T, P: powers of 1000; e3: times 10³))";
  constexpr std::string_view kTooLarge = "sizes are at most 1Pi";
  if (text.starts_with('-')) return fail("sizes cannot be negative");
  std::string_view rest = text;
  if (rest.starts_with('+')) rest.remove_prefix(1);
  std::size_t n = 0;
  while (n < rest.size() && ((rest[n] >= '0' && rest[n] <= '9') || rest[n] == '.')) ++n;
  double amount = 0;
  const auto [end, ec] = std::from_chars(rest.data(), rest.data() + n, amount);
  if (n == 0 || end != rest.data() + n) return fail(kHint);
  if (ec == std::errc::result_out_of_range) return fail(kTooLarge);
  if (ec != std::errc()) return fail(kHint);
  const std::string_view suffix = rest.substr(n);
  double unit = 0;
  if (suffix.size() > 1 && (suffix[0] == 'e' || suffix[0] == 'E')) {  // a decimal exponent
    int exponent = 0;
    const auto [at, bad] = std::from_chars(suffix.data() + 1 + (suffix[1] == '+' ? 1 : 0),
                                           suffix.data() + suffix.size(), exponent);
    if (bad != std::errc() || at != suffix.data() + suffix.size()) return fail(kHint);
    unit = std::pow(10.0, std::clamp(exponent, -400, 400));
  } else {
    static constexpr std::pair<std::string_view, double> kUnits[] = {
        {"", 1},    {"Ki", 0x1p10}, {"Mi", 0x1p20}, {"Gi", 0x1p30}, {"Ti", 0x1p40}, {"Pi", 0x1p50},
        {"k", 1e3}, {"M", 1e6},     {"G", 1e9},     {"T", 1e12},    {"P", 1e15}};
    const auto* found = std::find_if(std::begin(kUnits), std::end(kUnits),
                                     [&](const auto& u) { return u.first == suffix; });
    if (found == std::end(kUnits)) return fail(kHint);
    unit = found->second;
  }
  // Rounded up to whole bytes, as Kubernetes rounds a quantity; a product a rounding error away
  // from a whole number (0.3e1) is that number.
  const double exact = amount * unit;
  const double nearest = std::round(exact);
  const double bytes =
      std::abs(exact - nearest) <= 1e-9 * std::max(1.0, exact) ? nearest : std::ceil(exact);
  if (!(bytes <= 0x1p50)) return fail(kTooLarge);
  return ByteSize{static_cast<std::uint64_t>(std::max(0.0, bytes))};
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
