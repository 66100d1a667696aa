#include "telemetry/trace_context.h"

#include <algorithm>
#include <bit>
#include <chrono>
#include <random>
#include <span>
#include <thread>

#include "core/splitmix.h"

namespace prescale::telemetry {
namespace {

// -1 for anything but 0-9 and a-f: the spec allows lower case only.
int hex_value(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  return -1;
}

// Reads 2 * out.size() hex digits from `text`.
bool parse_hex(std::string_view text, std::span<std::uint8_t> out) {
  for (std::size_t i = 0; i < out.size(); ++i) {
    const int hi = hex_value(text[2 * i]);
    const int lo = hex_value(text[2 * i + 1]);
    if (hi < 0 || lo < 0) return false;
    out[i] = static_cast<std::uint8_t>(hi << 4 | lo);
  }
  return true;
}

void append_hex(std::string& out, std::span<const std::uint8_t> bytes) {
  constexpr std::string_view kDigits = "0123456789abcdef";
  for (std::uint8_t b : bytes) {
    out += kDigits[b >> 4];
    out += kDigits[b & 0xf];
  }
}

template <std::size_t N>
bool all_zero(const std::array<std::uint8_t, N>& id) {
  return std::all_of(id.begin(), id.end(), [](std::uint8_t b) { return b == 0; });
}

// xoshiro256++ (Blackman and Vigna): fast, 256 bits of state, good enough for ids that need
// to be unique rather than secret.
class IdGenerator {
 public:
  IdGenerator() {
    std::random_device device;
    std::uint64_t seed = (std::uint64_t{device()} << 32) ^ device();
    // Mixed in too, in case random_device is deterministic on some platform.
    seed ^= static_cast<std::uint64_t>(std::chrono::steady_clock::now().time_since_epoch().count());
    seed ^= std::hash<std::thread::id>{}(std::this_thread::get_id());
    for (std::uint64_t& word : state_) word = splitmix64_next(seed);
  }

  std::uint64_t next() {
    const std::uint64_t result = std::rotl(state_[0] + state_[3], 23) + state_[0];
    const std::uint64_t t = state_[1] << 17;
    state_[2] ^= state_[0];
    state_[3] ^= state_[1];
    state_[1] ^= state_[2];
    state_[0] ^= state_[3];
    state_[2] ^= t;
    state_[3] = std::rotl(state_[3], 45);
    return result;
  }

  template <std::size_t N>
  void fill_non_zero(std::array<std::uint8_t, N>& id) {
    do {
      for (std::size_t i = 0; i < N; i += 8) {
        std::uint64_t word = next();
        for (std::size_t j = i; j < i + 8 && j < N; ++j, word >>= 8) {
          id[j] = static_cast<std::uint8_t>(word);
        }
      }
    } while (all_zero(id));
  }

 private:
  std::uint64_t state_[4];
};

IdGenerator& generator() {
  thread_local IdGenerator g;
  return g;
}

// tracestate grammar (trace-context section 3.3.1).
bool key_char(char c) {
  return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_' || c == '-' || c == '*' ||
         c == '/';
}

bool valid_key(std::string_view key) {
  const std::size_t at = key.find('@');
  if (at == std::string_view::npos) {  // simple-key: lcalpha 0*255(key chars)
    return !key.empty() && key.size() <= 256 && key.front() >= 'a' && key.front() <= 'z' &&
           std::all_of(key.begin(), key.end(), key_char);
  }
  // multi-tenant-key: tenant-id "@" system-id
  const std::string_view tenant = key.substr(0, at);
  const std::string_view system = key.substr(at + 1);
  auto lc_or_digit = [](char c) { return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9'); };
  return !tenant.empty() && tenant.size() <= 241 && lc_or_digit(tenant.front()) &&
         std::all_of(tenant.begin(), tenant.end(), key_char) && !system.empty() &&
         system.size() <= 14 && system.front() >= 'a' && system.front() <= 'z' &&
         std::all_of(system.begin(), system.end(), key_char);
}

bool valid_value(std::string_view value) {
  // 0*255(chr) nblk-chr; chr = %x20 / nblk-chr; nblk-chr = printable except ',' and '='.
  auto chr = [](char c) { return c >= 0x20 && c <= 0x7e && c != ',' && c != '='; };
  return !value.empty() && value.size() <= 256 && value.back() != ' ' &&
         std::all_of(value.begin(), value.end(), chr);
}

std::string_view trim_ows(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
  return s;
}

}  // namespace

std::optional<TraceContext> parse_traceparent(std::string_view header) {
  if (header.size() < kTraceparentSize) return std::nullopt;
  std::uint8_t version = 0;
  if (!parse_hex(header.substr(0, 2), std::span(&version, 1)) || version == 0xff) {
    return std::nullopt;
  }
  if (header[2] != '-' || header[35] != '-' || header[52] != '-') return std::nullopt;
  if (version == 0 ? header.size() != kTraceparentSize
                   : header.size() > kTraceparentSize && header[kTraceparentSize] != '-') {
    return std::nullopt;
  }
  TraceContext context;
  if (!parse_hex(header.substr(3, 32), context.trace_id) ||
      !parse_hex(header.substr(36, 16), context.span_id) ||
      !parse_hex(header.substr(53, 2), std::span(&context.flags, 1))) {
    return std::nullopt;
  }
  if (all_zero(context.trace_id) || all_zero(context.span_id)) return std::nullopt;
  if (version != 0) context.flags &= kTraceFlagSampled;
  return context;
}

TraceContext new_trace(bool sampled) {
  TraceContext context;
  generator().fill_non_zero(context.trace_id);
  generator().fill_non_zero(context.span_id);
  context.flags = sampled ? kTraceFlagSampled : 0;
  return context;
}

TraceContext child_of(const TraceContext& parent) {
  TraceContext child = parent;
  generator().fill_non_zero(child.span_id);
  return child;
}

std::string format_traceparent(const TraceContext& context) {
  std::string out;
  out.reserve(kTraceparentSize);
  out += "00-";
  append_hex(out, context.trace_id);
  out += '-';
  append_hex(out, context.span_id);
  out += '-';
  append_hex(out, std::span(&context.flags, 1));
  return out;
}

bool valid_tracestate(std::string_view header) {
  if (header.size() > 512) return false;
  std::array<std::string_view, 32> keys;
  std::size_t members = 0;
  std::size_t start = 0;
  while (start <= header.size()) {
    std::size_t comma = header.find(',', start);
    if (comma == std::string_view::npos) comma = header.size();
    const std::string_view member = trim_ows(header.substr(start, comma - start));
    start = comma + 1;
    if (member.empty()) continue;  // empty members are allowed and do not count
    const std::size_t eq = member.find('=');
    if (eq == std::string_view::npos || members == keys.size()) return false;
    const std::string_view key = member.substr(0, eq);
    if (!valid_key(key) || !valid_value(member.substr(eq + 1))) return false;
    if (std::find(keys.begin(), keys.begin() + static_cast<std::ptrdiff_t>(members), key) !=
        keys.begin() + static_cast<std::ptrdiff_t>(members)) {
      return false;
    }
    keys[members++] = key;
  }
  return true;
}

UpstreamTrace propagate(std::optional<std::string_view> traceparent,
                        std::optional<std::string_view> tracestate, bool sample_new_trace) {
  UpstreamTrace out;
  std::optional<TraceContext> incoming;
  if (traceparent) incoming = parse_traceparent(*traceparent);
  if (incoming) {
    out.context = child_of(*incoming);
    out.continued = true;
    out.parent_span_id = incoming->span_id;
    if (tracestate && valid_tracestate(*tracestate)) out.tracestate = *tracestate;
  } else {
    out.context = new_trace(sample_new_trace);
  }
  out.traceparent = format_traceparent(out.context);
  return out;
}

}  // namespace prescale::telemetry
