#include "telemetry/exposition.h"

#include <vector>

#include "telemetry/internal/text.h"

namespace prescale::telemetry {
namespace {

// Writes `{a="x",b="y"` plus `extra` (already formatted, e.g. `le="0.5"`) and the closing brace;
// writes nothing when there are no labels at all.
void append_labels(std::string& out, const std::vector<std::string>& names,
                   const std::vector<std::string>& values, std::string_view extra = {}) {
  if (names.empty() && extra.empty()) return;
  out += '{';
  for (size_t i = 0; i < names.size(); ++i) {
    if (i > 0) out += ',';
    out += names[i];
    out += "=\"";
    internal::append_escaped_label_value(out, values[i]);
    out += '"';
  }
  if (!extra.empty()) {
    if (!names.empty()) out += ',';
    out += extra;
  }
  out += '}';
}

void append_sample(std::string& out, std::string_view name, std::string_view suffix,
                   const FamilySnapshot& family, const SeriesSnapshot& series, double value,
                   std::string_view extra_label = {}) {
  out += name;
  out += suffix;
  append_labels(out, family.label_names, series.label_values, extra_label);
  out += ' ';
  internal::append_value(out, value);
  out += '\n';
}

void append_family(std::string& out, const FamilySnapshot& family) {
  if (!family.help.empty()) {
    out += "# HELP ";
    out += family.name;
    out += ' ';
    internal::append_escaped_help(out, family.help);
    out += '\n';
  }
  out += "# TYPE ";
  out += family.name;
  out += ' ';
  out += to_string(family.type);
  out += '\n';

  std::string le;
  for (const SeriesSnapshot& series : family.series) {
    if (family.type != MetricType::kHistogram) {
      append_sample(out, family.name, "", family, series, series.value);
      continue;
    }
    const HistogramSnapshot& h = series.histogram;
    for (size_t i = 0; i < h.cumulative_counts.size(); ++i) {
      le = "le=\"";
      if (i < h.upper_bounds.size()) {
        internal::append_go_float(le, h.upper_bounds[i]);
      } else {
        le += "+Inf";
      }
      le += '"';
      append_sample(out, family.name, "_bucket", family, series,
                    static_cast<double>(h.cumulative_counts[i]), le);
    }
    append_sample(out, family.name, "_sum", family, series, h.sum);
    append_sample(out, family.name, "_count", family, series, static_cast<double>(h.count()));
  }
}

}  // namespace

std::string expose(const Registry& registry) {
  std::vector<FamilySnapshot> families = registry.collect();
  return expose(families);
}

std::string expose(std::span<const FamilySnapshot> families) {
  std::string out;
  size_t series = 0;
  for (const FamilySnapshot& family : families) series += family.series.size();
  out.reserve(families.size() * 128 + series * 96);
  for (const FamilySnapshot& family : families) {
    // Like the Go client, families without series are left out; summaries have no snapshot form.
    if (family.series.empty() || family.type == MetricType::kSummary) continue;
    append_family(out, family);
  }
  return out;
}

}  // namespace prescale::telemetry
