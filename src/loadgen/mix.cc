#include "loadgen/mix.h"

#include <algorithm>
#include <charconv>
#include <cmath>
#include <fstream>
#include <sstream>

namespace prescale::loadgen {

namespace {

constexpr std::string_view kMethods[] = {"GET",   "HEAD",   "POST",   "PUT",
                                         "PATCH", "DELETE", "OPTIONS"};
constexpr std::string_view kUserPlaceholder = "{user}";

std::unexpected<Error> error_at(size_t column, const std::string& what) {
  return make_error(ErrorCode::kInvalidArgument, "column " + std::to_string(column) + ": " + what);
}

std::string quoted(std::string_view s) { return "\"" + std::string(s) + "\""; }

bool is_space(char c) { return c == ' ' || c == '\t'; }

// A number made of digits and at most one '.', e.g. "3", "0.5".
bool looks_like_weight(std::string_view s) {
  if (s.empty()) return false;
  return std::all_of(s.begin(), s.end(), [](char c) { return (c >= '0' && c <= '9') || c == '.'; });
}

// One entry; `base` is the 0-based offset of `entry` in the whole text, for error columns.
Result<MixEntry> parse_entry(std::string_view entry, size_t base) {
  size_t begin = 0;
  while (begin < entry.size() && is_space(entry[begin])) ++begin;
  size_t end = entry.size();
  while (end > begin && is_space(entry[end - 1])) --end;
  if (begin == end) {
    return error_at(base + 1, "empty entry; expected METHOD PATH[@BODY_FILE][:WEIGHT]");
  }
  const std::string_view text = entry.substr(begin, end - begin);
  const size_t col = base + begin + 1;  // column of text[0]

  MixEntry out;
  const size_t space = text.find_first_of(" \t");
  const std::string_view method = text.substr(0, space);
  if (std::find(std::begin(kMethods), std::end(kMethods), method) == std::end(kMethods)) {
    return error_at(col,
                    "expected an HTTP method (GET, HEAD, POST, PUT, PATCH, DELETE, "
                    "OPTIONS), got " +
                        quoted(method));
  }
  out.method = std::string(method);
  if (space == std::string_view::npos) {
    return error_at(col + text.size(), "expected a path after " + quoted(method));
  }
  size_t rest_at = space;
  while (rest_at < text.size() && is_space(text[rest_at])) ++rest_at;
  std::string_view rest = text.substr(rest_at);

  const size_t colon = rest.rfind(':');
  if (colon != std::string_view::npos && looks_like_weight(rest.substr(colon + 1))) {
    const std::string_view w = rest.substr(colon + 1);
    double weight = 0;
    auto [ptr, ec] = std::from_chars(w.data(), w.data() + w.size(), weight);
    if (ec != std::errc() || ptr != w.data() + w.size() || !(weight > 0) ||
        !std::isfinite(weight)) {
      return error_at(col + rest_at + colon + 1, "weight must be a number > 0, got " + quoted(w));
    }
    out.weight = weight;
    rest = rest.substr(0, colon);
  } else if (colon != std::string_view::npos && colon + 1 == rest.size()) {
    return error_at(col + rest_at + colon, "expected a weight after ':'");
  }

  const size_t at = rest.rfind('@');
  if (at != std::string_view::npos) {
    if (at + 1 == rest.size()) return error_at(col + rest_at + at, "expected a file after '@'");
    out.body_file = std::string(rest.substr(at + 1));
    rest = rest.substr(0, at);
  }
  if (rest.empty() || rest.front() != '/') {
    return error_at(col + rest_at, "the path must start with '/', got " + quoted(rest));
  }
  if (rest.find_first_of(" \t") != std::string_view::npos) {
    return error_at(col + rest_at + rest.find_first_of(" \t"), "a space in the path");
  }
  out.path = std::string(rest);
  return out;
}

void replace_all(std::string& s, std::string_view from, std::string_view to) {
  for (size_t pos = s.find(from); pos != std::string::npos; pos = s.find(from, pos + to.size())) {
    s.replace(pos, from.size(), to);
  }
}

}  // namespace

std::string MixEntry::name() const { return method + " " + path; }

Result<Mix> parse_mix(std::string_view text) {
  Mix mix;
  size_t start = 0;
  while (true) {
    const size_t comma = text.find(',', start);
    const std::string_view piece = text.substr(
        start, comma == std::string_view::npos ? std::string_view::npos : comma - start);
    auto entry = parse_entry(piece, start);
    if (!entry) return std::unexpected(entry.error());
    mix.entries.push_back(std::move(*entry));
    if (comma == std::string_view::npos) break;
    start = comma + 1;
  }
  return mix;
}

Result<void> load_bodies(Mix& mix) {
  for (MixEntry& e : mix.entries) {
    if (e.body_file.empty()) continue;
    std::ifstream in(e.body_file, std::ios::binary);
    if (!in) {
      return make_error(ErrorCode::kNotFound,
                        "body file " + quoted(e.body_file) + " of " + e.name() + ": cannot read");
    }
    std::ostringstream body;
    body << in.rdbuf();
    e.body = body.str();
  }
  return {};
}

Result<UserRange> parse_user_range(std::string_view text) {
  auto bad = [&] {
    return make_error(
        ErrorCode::kInvalidArgument,
        "expected FIRST-LAST with 0 <= FIRST <= LAST, e.g. 1-610, got " + quoted(text));
  };
  auto number = [](std::string_view s) -> std::optional<int64_t> {
    int64_t v = 0;
    auto [ptr, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
    if (s.empty() || ec != std::errc() || ptr != s.data() + s.size() || v < 0) return std::nullopt;
    return v;
  };
  const size_t dash = text.find('-');
  const auto first = number(text.substr(0, dash));
  const auto last = dash == std::string_view::npos ? first : number(text.substr(dash + 1));
  if (!first || !last || *first > *last) return bad();
  return UserRange{*first, *last};
}

RequestPicker::RequestPicker(Mix mix, UserRange users, uint64_t seed)
    : mix_(std::move(mix)), users_(users), rng_(seed), user_(users.first, users.last) {
  std::vector<double> weights;
  for (const MixEntry& e : mix_.entries) {
    weights.push_back(e.weight);
    const bool json = e.body_file.ends_with(".json");
    content_types_.push_back(e.body_file.empty() ? ""
                             : json              ? "application/json"
                                                 : "application/octet-stream");
  }
  // Relative to the largest, so that finite weights never sum to +Inf (which would make every
  // probability 0 and the distribution pick only the last entry).
  const double largest = weights.empty() ? 0.0 : *std::max_element(weights.begin(), weights.end());
  if (largest > 0) {
    for (double& w : weights) w /= largest;
  }
  entry_ = std::discrete_distribution<size_t>(weights.begin(), weights.end());
}

RequestPicker::Picked RequestPicker::next() {
  Picked out;
  out.entry = mix_.entries.empty() ? 0 : entry_(rng_);
  if (mix_.entries.empty()) return out;
  const MixEntry& e = mix_.entries[out.entry];
  http::Request& req = out.request;
  req.method = http::method_from_string(e.method);
  req.method_name = e.method;
  req.target = e.path;
  req.body = e.body;
  const bool has_user = e.path.find(kUserPlaceholder) != std::string::npos ||
                        e.body.find(kUserPlaceholder) != std::string::npos;
  if (has_user) {
    const std::string user = std::to_string(user_(rng_));
    replace_all(req.target, kUserPlaceholder, user);
    replace_all(req.body, kUserPlaceholder, user);
  }
  if (!content_types_[out.entry].empty()) {
    req.headers.set("Content-Type", content_types_[out.entry]);
  }
  return out;
}

}  // namespace prescale::loadgen
