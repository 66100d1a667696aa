// Parser for the Prometheus text format 0.0.4: what the controller scrapes from replicas.
//
// Follows the Go client's parser (expfmt.TextParser): blanks and tabs around tokens are
// accepted, a missing final newline is accepted; anything else malformed is an error naming the
// line and column, e.g. `line 7, column 23: expected '=' after label name "code"`.
// Samples named <f>_bucket/_sum/_count (histogram) or <f>_sum/_count (summary) are grouped
// under family <f> when a TYPE line declared it; samples with no TYPE form untyped families.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "core/result.h"
#include "telemetry/snapshot.h"

namespace prescale::telemetry {

using Labels = std::vector<std::pair<std::string, std::string>>;

struct ParsedSample {
  std::string name;  // the full sample name, e.g. "x_bucket"
  Labels labels;     // in the order written, escapes resolved
  double value = 0;
  std::optional<int64_t> timestamp_ms;
};

struct ParsedFamily {
  std::string name;
  std::string help;  // escapes resolved; empty when there was no HELP line
  MetricType type = MetricType::kUntyped;
  std::vector<ParsedSample> samples;
};

// Families in order of first appearance.
Result<std::vector<ParsedFamily>> parse_text(std::string_view text);

}  // namespace prescale::telemetry
