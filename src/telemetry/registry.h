// Registry: the one place a process's metrics live, organised as Prometheus families.
//
//   Registry& registry = Registry::global();  // or an instance per test / per service
//   CounterFamily& requests = registry.counter("prescale_requests_total", "Requests handled.",
//                                              {"service", "route", "code"});
//   Counter& ok = requests.with({"echo", "/echo", "200"});  // cache it: ok.inc() is one atomic add
//
// Registration (counter/gauge/histogram) happens at startup: it validates names against the
// Prometheus grammar and throws std::invalid_argument on bad input or on a conflicting
// re-registration; registering the same family again (same type, help, labels, buckets)
// returns the existing one. Families and series are never removed, so every reference handed out
// stays valid for the registry's lifetime.
//
// Thread safety: everything may be called from any thread. `with()` takes the family's shared
// lock (exclusive only when it creates a series); instrument updates take no lock.
#pragma once

#include <cstddef>
#include <initializer_list>
#include <map>
#include <memory>
#include <mutex>
#include <shared_mutex>
#include <span>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "telemetry/metric.h"
#include "telemetry/snapshot.h"

namespace prescale::telemetry {

class Registry;

namespace internal {
// Hashes and compares label-value lists of std::string or std::string_view alike, so that
// `with()` looks series up without allocating.
struct LabelValuesHash {
  using is_transparent = void;
  size_t operator()(std::span<const std::string> values) const;
  size_t operator()(std::span<const std::string_view> values) const;
};
struct LabelValuesEqual {
  using is_transparent = void;
  template <typename A, typename B>
  bool operator()(const A& a, const B& b) const {
    if (a.size() != b.size()) return false;
    for (size_t i = 0; i < a.size(); ++i) {
      if (std::string_view(a[i]) != std::string_view(b[i])) return false;
    }
    return true;
  }
};
}  // namespace internal

// What all families share: identity and the scrape-time snapshot.
class FamilyBase {
 public:
  virtual ~FamilyBase() = default;
  FamilyBase(const FamilyBase&) = delete;
  FamilyBase& operator=(const FamilyBase&) = delete;

  const std::string& name() const { return name_; }
  const std::string& help() const { return help_; }
  MetricType type() const { return type_; }
  const std::vector<std::string>& label_names() const { return label_names_; }
  // Histogram bucket upper bounds (without +Inf); empty for other types.
  const std::vector<double>& upper_bounds() const { return upper_bounds_; }

  // Every series, sorted by label values.
  virtual FamilySnapshot snapshot() const = 0;

 protected:
  FamilyBase(std::string name, std::string help, MetricType type,
             std::vector<std::string> label_names, std::vector<double> upper_bounds);

 private:
  std::string name_;
  std::string help_;
  MetricType type_;
  std::vector<std::string> label_names_;
  std::vector<double> upper_bounds_;
};

// A family of one instrument type (Counter, Gauge or Histogram), one series per label values.
template <typename Instrument>
class Family final : public FamilyBase {
 public:
  // The series with these label values, given in the order of the family's label names;
  // created on first use. A family without labels is used as `with()`. Throws
  // std::invalid_argument when the number of values differs from the number of label names.
  Instrument& with(std::initializer_list<std::string_view> label_values = {});
  Instrument& with(std::span<const std::string_view> label_values);
  Instrument& with(std::span<const std::string> label_values);

  FamilySnapshot snapshot() const override;

 private:
  friend class Registry;
  Family(std::string name, std::string help, MetricType type, std::vector<std::string> label_names,
         std::vector<double> upper_bounds);

  template <typename Values>
  Instrument& find_or_create(const Values& label_values);

  mutable std::shared_mutex mu_;
  std::unordered_map<std::vector<std::string>, std::unique_ptr<Instrument>,
                     internal::LabelValuesHash, internal::LabelValuesEqual>
      series_;
  Instrument* unlabelled_ = nullptr;  // the only series of a family without labels
};

using CounterFamily = Family<Counter>;
using GaugeFamily = Family<Gauge>;
using HistogramFamily = Family<Histogram>;

extern template class Family<Counter>;
extern template class Family<Gauge>;
extern template class Family<Histogram>;

class Registry {
 public:
  Registry();
  ~Registry();
  Registry(const Registry&) = delete;
  Registry& operator=(const Registry&) = delete;

  // The process-wide registry (never destroyed, so it outlives every static user).
  static Registry& global();

  // Metric names follow [a-zA-Z_:][a-zA-Z0-9_:]*, label names [a-zA-Z_][a-zA-Z0-9_]* and may
  // not start with "__". Counters should end in `_total` and names should carry their unit
  // (`_seconds`, `_bytes`); that is convention, not enforced.
  CounterFamily& counter(std::string_view name, std::string_view help,
                         std::vector<std::string> label_names = {});
  GaugeFamily& gauge(std::string_view name, std::string_view help,
                     std::vector<std::string> label_names = {});
  // `upper_bounds`: ascending bucket bounds (seconds for latencies); the +Inf bucket is implied.
  // The label name "le" is reserved.
  HistogramFamily& histogram(std::string_view name, std::string_view help,
                             std::vector<std::string> label_names = {},
                             std::vector<double> upper_bounds = default_latency_buckets());

  // Adds a collector run at every collect(). With a non-empty `id`, a second collector with the
  // same id is not added (returns false), so e.g. process metrics can be registered idempotently.
  // A collected family is left out of the scrape when it is malformed (a bad name or help text,
  // a label count that differs, the same label values twice, histogram bounds not strictly
  // ascending and finite, or counts that go down) or when one of its sample names (its name, and
  // a histogram's _bucket, _sum and _count) is taken: by a registered family; by a collected
  // histogram, whatever the order they are collected in ("h_count" gives way to the histogram
  // "h"); or by a collected family of the same name collected before it.
  bool add_collector(Collector collector, std::string_view id = {});

  // All families, registered and collected, sorted by name; series sorted by label values.
  std::vector<FamilySnapshot> collect() const;

 private:
  template <typename Instrument>
  Family<Instrument>& add_family(MetricType type, std::string_view name, std::string_view help,
                                 std::vector<std::string> label_names,
                                 std::vector<double> upper_bounds);

  mutable std::mutex mu_;
  std::map<std::string, std::unique_ptr<FamilyBase>, std::less<>> families_;
  std::vector<std::pair<std::string, Collector>> collectors_;
};

}  // namespace prescale::telemetry
