#include "telemetry/registry.h"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <functional>
#include <limits>
#include <set>
#include <stdexcept>
#include <type_traits>
#include <utility>

#include "telemetry/internal/text.h"

namespace prescale::telemetry {
namespace internal {

namespace {
template <typename Values>
size_t hash_values(const Values& values) {
  size_t h = values.size();
  for (const auto& v : values) {
    // boost::hash_combine's mixing step.
    h ^= std::hash<std::string_view>{}(std::string_view(v)) + 0x9e3779b97f4a7c15ULL + (h << 6) +
         (h >> 2);
  }
  return h;
}
}  // namespace

size_t LabelValuesHash::operator()(std::span<const std::string> values) const {
  return hash_values(values);
}
size_t LabelValuesHash::operator()(std::span<const std::string_view> values) const {
  return hash_values(values);
}

}  // namespace internal

namespace {

bool by_label_values(const SeriesSnapshot& a, const SeriesSnapshot& b) {
  return a.label_values < b.label_values;
}

bool ends_with_histogram_suffix(std::string_view name, std::string_view* base) {
  for (std::string_view suffix : {"_bucket", "_sum", "_count"}) {
    if (name.size() > suffix.size() && name.ends_with(suffix)) {
      *base = name.substr(0, name.size() - suffix.size());
      return true;
    }
  }
  return false;
}

// Why a family description is not acceptable, or empty when it is.
std::string family_problem(MetricType type, std::string_view name,
                           const std::vector<std::string>& label_names) {
  if (!internal::is_valid_metric_name(name)) {
    return fmt::format("invalid metric name \"{}\": must match [a-zA-Z_:][a-zA-Z0-9_:]*", name);
  }
  std::set<std::string_view> seen;
  for (const std::string& label : label_names) {
    if (!internal::is_valid_label_name(label)) {
      return fmt::format("metric {}: invalid label name \"{}\": must match [a-zA-Z_][a-zA-Z0-9_]*",
                         name, label);
    }
    if (label.starts_with("__")) {
      return fmt::format("metric {}: label name \"{}\" is reserved (starts with \"__\")", name,
                         label);
    }
    if (type == MetricType::kHistogram && label == "le") {
      return fmt::format("histogram {}: label name \"le\" is reserved for buckets", name);
    }
    if (!seen.insert(label).second) {
      return fmt::format("metric {}: duplicate label name \"{}\"", name, label);
    }
  }
  return {};
}

// Whether a collected histogram series renders as valid text: bounds finite or -Inf, strictly
// ascending (the +Inf bucket is implied, so an explicit one would be written twice), cumulative
// counts that never go down.
bool well_formed_histogram(const HistogramSnapshot& h) {
  if (h.cumulative_counts.size() != h.upper_bounds.size() + 1) return false;
  for (size_t i = 0; i < h.upper_bounds.size(); ++i) {
    const double bound = h.upper_bounds[i];
    if (std::isnan(bound) || bound == std::numeric_limits<double>::infinity()) return false;
    if (i > 0 && !(h.upper_bounds[i - 1] < bound)) return false;
  }
  return std::is_sorted(h.cumulative_counts.begin(), h.cumulative_counts.end());
}

// Whether a collected family can be exposed as it is (see Registry::add_collector()): what
// registration checks, plus series of the right arity, each label-value list once. Sorts the
// series by label values.
bool well_formed_collected(FamilySnapshot& family) {
  if (!family_problem(family.type, family.name, family.label_names).empty() ||
      family.type == MetricType::kSummary || !internal::is_valid_utf8(family.help)) {
    return false;
  }
  for (const SeriesSnapshot& s : family.series) {
    if (s.label_values.size() != family.label_names.size()) return false;
    if (family.type == MetricType::kHistogram && !well_formed_histogram(s.histogram)) {
      return false;
    }
  }
  std::sort(family.series.begin(), family.series.end(), by_label_values);
  return std::adjacent_find(family.series.begin(), family.series.end(),
                            [](const SeriesSnapshot& a, const SeriesSnapshot& b) {
                              return a.label_values == b.label_values;
                            }) == family.series.end();
}

}  // namespace

FamilyBase::FamilyBase(std::string name, std::string help, MetricType type,
                       std::vector<std::string> label_names, std::vector<double> upper_bounds)
    : name_(std::move(name)),
      help_(std::move(help)),
      type_(type),
      label_names_(std::move(label_names)),
      upper_bounds_(std::move(upper_bounds)) {}

template <typename Instrument>
Family<Instrument>::Family(std::string name, std::string help, MetricType type,
                           std::vector<std::string> label_names, std::vector<double> upper_bounds)
    : FamilyBase(std::move(name), std::move(help), type, std::move(label_names),
                 std::move(upper_bounds)) {
  if (this->label_names().empty()) {
    // Exposed from registration on (as `name 0`), and reached by with() without a lock.
    unlabelled_ = &find_or_create(std::span<const std::string_view>());
  }
}

template <typename Instrument>
Instrument& Family<Instrument>::with(std::initializer_list<std::string_view> label_values) {
  return find_or_create(
      std::span<const std::string_view>(label_values.begin(), label_values.size()));
}

template <typename Instrument>
Instrument& Family<Instrument>::with(std::span<const std::string_view> label_values) {
  return find_or_create(label_values);
}

template <typename Instrument>
Instrument& Family<Instrument>::with(std::span<const std::string> label_values) {
  return find_or_create(label_values);
}

template <typename Instrument>
template <typename Values>
Instrument& Family<Instrument>::find_or_create(const Values& label_values) {
  if (label_values.size() != label_names().size()) {
    throw std::invalid_argument(
        fmt::format("metric {} has {} label(s) ({}) but {} value(s) were given", name(),
                    label_names().size(), fmt::join(label_names(), ", "), label_values.size()));
  }
  if (unlabelled_ != nullptr) return *unlabelled_;
  {
    std::shared_lock lock(mu_);
    if (auto it = series_.find(label_values); it != series_.end()) return *it->second;
  }
  std::unique_lock lock(mu_);
  if (auto it = series_.find(label_values); it != series_.end()) return *it->second;
  std::unique_ptr<Instrument> instrument;
  if constexpr (std::is_same_v<Instrument, Histogram>) {
    instrument = std::make_unique<Histogram>(upper_bounds());
  } else {
    instrument = std::make_unique<Instrument>();
  }
  Instrument& result = *instrument;
  series_.emplace(std::vector<std::string>(label_values.begin(), label_values.end()),
                  std::move(instrument));
  return result;
}

template <typename Instrument>
FamilySnapshot Family<Instrument>::snapshot() const {
  FamilySnapshot out{name(), help(), type(), label_names(), {}};
  {
    std::shared_lock lock(mu_);
    out.series.reserve(series_.size());
    for (const auto& [label_values, instrument] : series_) {
      SeriesSnapshot& s = out.series.emplace_back();
      s.label_values = label_values;
      if constexpr (std::is_same_v<Instrument, Histogram>) {
        s.histogram = instrument->snapshot();
      } else {
        s.value = instrument->value();
      }
    }
  }
  std::sort(out.series.begin(), out.series.end(), by_label_values);
  return out;
}

template class Family<Counter>;
template class Family<Gauge>;
template class Family<Histogram>;

Registry::Registry() = default;
Registry::~Registry() = default;

Registry& Registry::global() {
  static Registry* const registry = new Registry();
  return *registry;
}

CounterFamily& Registry::counter(std::string_view name, std::string_view help,
                                 std::vector<std::string> label_names) {
  return add_family<Counter>(MetricType::kCounter, name, help, std::move(label_names), {});
}

GaugeFamily& Registry::gauge(std::string_view name, std::string_view help,
                             std::vector<std::string> label_names) {
  return add_family<Gauge>(MetricType::kGauge, name, help, std::move(label_names), {});
}

HistogramFamily& Registry::histogram(std::string_view name, std::string_view help,
                                     std::vector<std::string> label_names,
                                     std::vector<double> upper_bounds) {
  return add_family<Histogram>(MetricType::kHistogram, name, help, std::move(label_names),
                               internal::checked_upper_bounds(upper_bounds));
}

template <typename Instrument>
Family<Instrument>& Registry::add_family(MetricType type, std::string_view name,
                                         std::string_view help,
                                         std::vector<std::string> label_names,
                                         std::vector<double> upper_bounds) {
  if (std::string problem = family_problem(type, name, label_names); !problem.empty()) {
    throw std::invalid_argument(problem);
  }
  if (!internal::is_valid_utf8(help)) {
    throw std::invalid_argument(fmt::format("metric {}: help text is not valid UTF-8", name));
  }
  std::lock_guard lock(mu_);
  if (auto it = families_.find(name); it != families_.end()) {
    FamilyBase& existing = *it->second;
    if (existing.type() != type || existing.label_names() != label_names ||
        existing.help() != help || existing.upper_bounds() != upper_bounds) {
      throw std::invalid_argument(fmt::format(
          "metric {} is already registered as a {} with labels ({}) and a different "
          "definition; re-registration must repeat type, help, labels and buckets exactly",
          name, to_string(existing.type()), fmt::join(existing.label_names(), ", ")));
    }
    return static_cast<Family<Instrument>&>(existing);
  }
  // A histogram owns the sample names <name>_bucket, _sum and _count.
  std::string_view base;
  if (ends_with_histogram_suffix(name, &base)) {
    if (auto it = families_.find(base);
        it != families_.end() && it->second->type() == MetricType::kHistogram) {
      throw std::invalid_argument(
          fmt::format("metric {} collides with the samples of histogram {}", name, base));
    }
  }
  if (type == MetricType::kHistogram) {
    for (std::string_view suffix : {"_bucket", "_sum", "_count"}) {
      std::string sample = fmt::format("{}{}", name, suffix);
      if (families_.contains(sample)) {
        throw std::invalid_argument(fmt::format(
            "histogram {} would collide with the already registered metric {}", name, sample));
      }
    }
  }
  auto family = std::unique_ptr<Family<Instrument>>(new Family<Instrument>(
      std::string(name), std::string(help), type, std::move(label_names), std::move(upper_bounds)));
  Family<Instrument>& result = *family;
  families_.emplace(std::string(name), std::move(family));
  return result;
}

bool Registry::add_collector(Collector collector, std::string_view id) {
  std::lock_guard lock(mu_);
  if (!id.empty()) {
    for (const auto& [existing_id, unused] : collectors_) {
      if (existing_id == id) return false;
    }
  }
  collectors_.emplace_back(std::string(id), std::move(collector));
  return true;
}

std::vector<FamilySnapshot> Registry::collect() const {
  std::vector<const FamilyBase*> registered;
  std::vector<Collector> collectors;
  {
    std::lock_guard lock(mu_);
    registered.reserve(families_.size());
    for (const auto& [name, family] : families_) registered.push_back(family.get());
    for (const auto& [id, collector] : collectors_) collectors.push_back(collector);
  }

  std::vector<FamilySnapshot> out;
  out.reserve(registered.size());
  // Every sample name exposed so far: a family's name, and a histogram's three sample names.
  std::set<std::string, std::less<>> taken;
  auto sample_names = [](const std::string& name, MetricType type) {
    std::vector<std::string> names{name};
    if (type == MetricType::kHistogram) {
      for (std::string_view suffix : {"_bucket", "_sum", "_count"}) {
        names.push_back(name + std::string(suffix));
      }
    }
    return names;
  };
  for (const FamilyBase* family : registered) {
    out.push_back(family->snapshot());
    for (std::string& name : sample_names(family->name(), family->type())) {
      taken.insert(std::move(name));
    }
  }

  std::vector<FamilySnapshot> collected, batch;
  for (const Collector& collector : collectors) {
    batch.clear();
    collector(batch);
    for (FamilySnapshot& family : batch) {
      if (well_formed_collected(family)) collected.push_back(std::move(family));
    }
  }
  // Collected families clash only by one name, or by one's name being a histogram's _bucket, _sum
  // or _count. The histogram keeps its samples whatever the order they were collected in, so
  // histograms go first, by name ("x" before "x_count"); of one name the first collected stays.
  auto key = [](const FamilySnapshot& f) {
    const bool histogram = f.type == MetricType::kHistogram;
    return std::pair(!histogram, histogram ? std::string_view(f.name) : std::string_view());
  };
  std::stable_sort(
      collected.begin(), collected.end(),
      [&](const FamilySnapshot& a, const FamilySnapshot& b) { return key(a) < key(b); });
  for (FamilySnapshot& family : collected) {
    const std::vector<std::string> names = sample_names(family.name, family.type);
    if (std::any_of(names.begin(), names.end(),
                    [&](const std::string& n) { return taken.contains(n); })) {
      continue;
    }
    taken.insert(names.begin(), names.end());
    out.push_back(std::move(family));
  }
  std::sort(out.begin(), out.end(),
            [](const FamilySnapshot& a, const FamilySnapshot& b) { return a.name < b.name; });
  return out;
}

}  // namespace prescale::telemetry
