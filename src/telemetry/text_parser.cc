#include "telemetry/text_parser.h"

#include <fmt/format.h>

#include <charconv>
#include <functional>
#include <unordered_map>

#include "telemetry/internal/text.h"

namespace prescale::telemetry {
namespace {

bool is_blank(char c) { return c == ' ' || c == '\t'; }

bool parse_int64(std::string_view s, int64_t* out) {
  if (!s.empty() && s[0] == '+') {
    s.remove_prefix(1);
    if (s.empty() || s[0] == '-') return false;
  }
  auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), *out);
  return ec == std::errc() && end == s.data() + s.size() && !s.empty();
}

// How a character appears in an error message.
std::string describe(char c) {
  if (c >= 0x20 && c < 0x7F) return fmt::format("'{}'", c);
  return fmt::format("byte 0x{:02X}", static_cast<unsigned char>(c));
}

bool is_histogram_sample_suffix(std::string_view suffix) {
  return suffix == "_bucket" || suffix == "_sum" || suffix == "_count";
}

const std::string* find_label(const Labels& labels, std::string_view name) {
  for (const auto& [n, v] : labels) {
    if (n == name) return &v;
  }
  return nullptr;
}

struct NameHash {
  using is_transparent = void;
  size_t operator()(std::string_view s) const { return std::hash<std::string_view>{}(s); }
};

class Parser {
 public:
  explicit Parser(std::string_view text) : text_(text) {}

  Result<std::vector<ParsedFamily>> parse() {
    size_t start = 0;
    while (start < text_.size()) {
      size_t newline = text_.find('\n', start);
      size_t end = newline == std::string_view::npos ? text_.size() : newline;
      line_ = text_.substr(start, end - start);
      pos_ = 0;
      ++line_number_;
      if (!parse_line()) return make_error(ErrorCode::kInvalidArgument, std::move(error_));
      start = end + 1;
    }
    return std::move(families_);
  }

 private:
  struct FamilyState {
    bool has_help = false;
    bool has_type = false;
  };

  bool at_end() const { return pos_ >= line_.size(); }
  char peek() const { return line_[pos_]; }
  void skip_blanks() {
    while (!at_end() && is_blank(peek())) ++pos_;
  }
  std::string_view read_until_blank() {
    size_t start = pos_;
    while (!at_end() && !is_blank(peek())) ++pos_;
    return line_.substr(start, pos_ - start);
  }
  std::string_view read_metric_name() {
    size_t start = pos_;
    if (!at_end() && internal::is_metric_name_start(peek())) {
      while (!at_end() && internal::is_metric_name_char(peek())) ++pos_;
    }
    return line_.substr(start, pos_ - start);
  }
  std::string_view read_label_name() {
    size_t start = pos_;
    if (!at_end() && internal::is_label_name_start(peek())) {
      while (!at_end() && internal::is_label_name_char(peek())) ++pos_;
    }
    return line_.substr(start, pos_ - start);
  }
  std::string found() const { return at_end() ? "end of line" : describe(peek()); }

  bool fail(size_t pos, std::string_view message) {
    error_ = fmt::format("line {}, column {}: {}", line_number_, pos + 1, message);
    return false;
  }

  bool parse_line() {
    if (!line_.empty() && line_.back() == '\r') {
      return fail(line_.size() - 1, "carriage return at end of line (lines end with \\n only)");
    }
    skip_blanks();
    if (at_end()) return true;
    if (peek() == '#') return parse_comment();
    return parse_sample();
  }

  // "# HELP name text", "# TYPE name type", or any other comment (ignored). As in the Go
  // parser, a HELP or TYPE line that stops after the keyword or the name is a plain comment.
  bool parse_comment() {
    ++pos_;
    skip_blanks();
    std::string_view keyword = read_until_blank();
    if (keyword != "HELP" && keyword != "TYPE") return true;
    skip_blanks();
    if (at_end()) return true;
    size_t name_pos = pos_;
    std::string_view name = read_metric_name();
    if (name.empty()) {
      return fail(pos_, fmt::format("expected metric name after {}, found {}", keyword, found()));
    }
    if (!at_end() && !is_blank(peek())) {
      return fail(pos_, fmt::format("invalid character {} in metric name", found()));
    }
    skip_blanks();
    if (at_end()) return true;
    size_t index = family_index(name);
    if (keyword == "HELP") {
      if (states_[index].has_help) {
        return fail(name_pos, fmt::format("second HELP line for metric \"{}\"", name));
      }
      states_[index].has_help = true;
      return read_help(&families_[index].help);
    }
    if (states_[index].has_type) {
      return fail(name_pos, fmt::format("second TYPE line for metric \"{}\"", name));
    }
    if (!families_[index].samples.empty()) {
      return fail(name_pos,
                  fmt::format("TYPE line for metric \"{}\" must come before its samples", name));
    }
    size_t type_pos = pos_;
    std::string_view type_name = read_until_blank();
    skip_blanks();
    if (!at_end()) {
      return fail(pos_, fmt::format("unexpected {} after metric type \"{}\"", found(), type_name));
    }
    static constexpr MetricType kTypes[] = {MetricType::kCounter, MetricType::kGauge,
                                            MetricType::kHistogram, MetricType::kSummary,
                                            MetricType::kUntyped};
    for (MetricType type : kTypes) {
      if (type_name == to_string(type)) {
        families_[index].type = type;
        states_[index].has_type = true;
        return true;
      }
    }
    return fail(type_pos, fmt::format("unknown metric type \"{}\" (expected counter, gauge, "
                                      "histogram, summary or untyped)",
                                      type_name));
  }

  // The rest of the line, with \\ and \n resolved.
  bool read_help(std::string* out) {
    size_t start = pos_;
    for (; !at_end(); ++pos_) {
      char c = peek();
      if (c != '\\') {
        *out += c;
        continue;
      }
      size_t escape_pos = pos_++;
      if (at_end()) return fail(escape_pos, "unterminated escape sequence at end of help text");
      if (peek() == '\\') {
        *out += '\\';
      } else if (peek() == 'n') {
        *out += '\n';
      } else {
        return fail(escape_pos, fmt::format("invalid escape sequence \\{} in help text "
                                            "(only \\\\ and \\n are allowed)",
                                            peek()));
      }
    }
    if (!internal::is_valid_utf8(*out)) return fail(start, "help text is not valid UTF-8");
    return true;
  }

  bool parse_sample() {
    size_t name_pos = pos_;
    std::string_view name = read_metric_name();
    if (name.empty()) return fail(pos_, fmt::format("expected metric name, found {}", found()));
    if (!at_end() && !is_blank(peek()) && peek() != '{') {
      return fail(pos_, fmt::format("invalid character {} in metric name", found()));
    }
    ParsedSample sample;
    sample.name = std::string(name);
    skip_blanks();
    if (!at_end() && peek() == '{') {
      if (!parse_labels(&sample.labels)) return false;
      skip_blanks();
    }

    size_t value_pos = pos_;
    std::string_view value = read_until_blank();
    if (value.empty()) return fail(pos_, fmt::format("expected value after \"{}\"", name));
    if (!internal::parse_float(value, &sample.value)) {
      return fail(value_pos, fmt::format("invalid value \"{}\": expected a float, +Inf, -Inf or "
                                         "NaN",
                                         value));
    }
    skip_blanks();
    if (!at_end()) {
      size_t timestamp_pos = pos_;
      std::string_view timestamp = read_until_blank();
      int64_t ms = 0;
      if (!parse_int64(timestamp, &ms)) {
        return fail(
            timestamp_pos,
            fmt::format("invalid timestamp \"{}\": expected integer milliseconds", timestamp));
      }
      sample.timestamp_ms = ms;
      skip_blanks();
      if (!at_end()) return fail(pos_, fmt::format("unexpected {} after timestamp", found()));
    }
    return add_sample(name_pos, std::move(sample));
  }

  // From '{' to just past '}'.
  bool parse_labels(Labels* labels) {
    ++pos_;
    for (;;) {
      skip_blanks();
      if (!at_end() && peek() == '}') break;
      size_t label_pos = pos_;
      std::string_view label = read_label_name();
      if (label.empty()) {
        return fail(pos_, fmt::format("expected label name or '}}', found {}", found()));
      }
      skip_blanks();
      if (at_end() || peek() != '=') {
        return fail(pos_,
                    fmt::format("expected '=' after label name \"{}\", found {}", label, found()));
      }
      ++pos_;
      skip_blanks();
      if (at_end() || peek() != '"') {
        return fail(pos_, fmt::format("expected '\"' to open the value of label \"{}\", found {}",
                                      label, found()));
      }
      ++pos_;
      std::string value;
      if (!read_label_value(label, &value)) return false;
      if (label == "__name__") {
        return fail(label_pos, "label name \"__name__\" is reserved");
      }
      if (find_label(*labels, label) != nullptr) {
        return fail(label_pos, fmt::format("duplicate label name \"{}\"", label));
      }
      labels->emplace_back(std::string(label), std::move(value));
      skip_blanks();
      if (!at_end() && peek() == ',') {
        ++pos_;
        continue;
      }
      if (!at_end() && peek() == '}') break;
      return fail(
          pos_, fmt::format("expected ',' or '}}' after the value of label \"{}\", found {}", label,
                            found()));
    }
    ++pos_;  // '}'
    return true;
  }

  // After the opening quote, to just past the closing one.
  bool read_label_value(std::string_view label, std::string* out) {
    size_t start = pos_;
    for (; !at_end(); ++pos_) {
      char c = peek();
      if (c == '"') {
        ++pos_;
        if (!internal::is_valid_utf8(*out)) {
          return fail(start, fmt::format("value of label \"{}\" is not valid UTF-8", label));
        }
        return true;
      }
      if (c != '\\') {
        *out += c;
        continue;
      }
      size_t escape_pos = pos_++;
      if (at_end()) break;
      switch (peek()) {
        case '\\':
          *out += '\\';
          break;
        case '"':
          *out += '"';
          break;
        case 'n':
          *out += '\n';
          break;
        default:
          return fail(escape_pos,
                      fmt::format("invalid escape sequence \\{} in value of label \"{}\" (only "
                                  "\\\\, \\\" and \\n are allowed)",
                                  peek(), label));
      }
    }
    return fail(start - 1, fmt::format("unterminated value of label \"{}\"", label));
  }

  // The family of `name` for HELP and TYPE lines: exactly that name, created if new.
  size_t family_index(std::string_view name) {
    if (auto it = by_name_.find(name); it != by_name_.end()) return it->second;
    families_.push_back(ParsedFamily{std::string(name), {}, MetricType::kUntyped, {}});
    states_.emplace_back();
    by_name_.emplace(std::string(name), families_.size() - 1);
    return families_.size() - 1;
  }

  std::optional<size_t> existing_family(std::string_view name) const {
    if (auto it = by_name_.find(name); it != by_name_.end()) return it->second;
    return std::nullopt;
  }

  // Groups the sample under its family (see the header) and checks what the family's type
  // requires of it: `le` on histogram buckets, `quantile` on summary quantiles.
  bool add_sample(size_t name_pos, ParsedSample sample) {
    const std::string& name = sample.name;
    std::optional<size_t> index = existing_family(name);
    if (!index) {
      for (std::string_view suffix : {"_bucket", "_sum", "_count"}) {
        if (name.size() <= suffix.size() || !name.ends_with(suffix)) continue;
        std::string_view base = std::string_view(name).substr(0, name.size() - suffix.size());
        std::optional<size_t> candidate = existing_family(base);
        if (!candidate) continue;
        MetricType type = families_[*candidate].type;
        if (type == MetricType::kHistogram ||
            (type == MetricType::kSummary && suffix != "_bucket")) {
          index = candidate;
        }
        break;
      }
    }
    if (!index) index = family_index(name);
    ParsedFamily& family = families_[*index];

    std::string_view suffix = std::string_view(name).substr(family.name.size());
    if (family.type == MetricType::kHistogram) {
      if (!is_histogram_sample_suffix(suffix)) {
        return fail(name_pos, fmt::format("sample \"{0}\" of histogram \"{1}\" must be named "
                                          "{1}_bucket, {1}_sum or {1}_count",
                                          name, family.name));
      }
      if (suffix == "_bucket" && !has_float_label(sample.labels, "le")) {
        return fail(name_pos, fmt::format("histogram bucket \"{}\" needs an \"le\" label with a "
                                          "float value",
                                          name));
      }
    } else if (family.type == MetricType::kSummary && suffix.empty() &&
               !has_float_label(sample.labels, "quantile")) {
      return fail(name_pos, fmt::format("summary sample \"{}\" needs a \"quantile\" label with a "
                                        "float value",
                                        name));
    }
    family.samples.push_back(std::move(sample));
    return true;
  }

  static bool has_float_label(const Labels& labels, std::string_view label) {
    const std::string* value = find_label(labels, label);
    double unused = 0;
    return value != nullptr && internal::parse_float(*value, &unused);
  }

  std::string_view text_;
  std::string_view line_;
  size_t pos_ = 0;
  int line_number_ = 0;
  std::string error_;
  std::vector<ParsedFamily> families_;
  std::vector<FamilyState> states_;
  std::unordered_map<std::string, size_t, NameHash, std::equal_to<>> by_name_;
};

}  // namespace

Result<std::vector<ParsedFamily>> parse_text(std::string_view text) { return Parser(text).parse(); }

}  // namespace prescale::telemetry
