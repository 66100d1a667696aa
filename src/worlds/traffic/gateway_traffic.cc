#include "worlds/traffic/gateway_traffic.h"

#include <algorithm>
#include <cmath>

namespace prescale::traffic {

namespace {

size_t label_index(const telemetry::FamilySnapshot& family, std::string_view name) {
  for (size_t i = 0; i < family.label_names.size(); ++i) {
    if (family.label_names[i] == name) return i;
  }
  return family.label_names.size();
}

bool is_5xx(const telemetry::FamilySnapshot& family, const telemetry::SeriesSnapshot& series,
            size_t code_at) {
  return code_at < family.label_names.size() && !series.label_values[code_at].empty() &&
         series.label_values[code_at][0] == '5';
}

// The bucket-by-bucket sum of two histograms with the same bounds; one that is empty is none.
telemetry::HistogramData sum(const telemetry::HistogramData& a, const telemetry::HistogramData& b) {
  if (a.buckets.empty()) return b;
  if (b.buckets.empty()) return a;
  telemetry::HistogramData out = a;
  out.sum += b.sum;
  out.count += b.count;
  for (const auto& [bound, count] : b.buckets) {
    auto it = std::find_if(out.buckets.begin(), out.buckets.end(),
                           [&](const auto& bucket) { return bucket.first == bound; });
    if (it != out.buckets.end()) {
      it->second += count;
    } else {
      out.buckets.insert(
          std::upper_bound(out.buckets.begin(), out.buckets.end(), std::make_pair(bound, count)),
          {bound, count});
    }
  }
  return out;
}

double increase(double now, double before) { return now >= before ? now - before : now; }

}  // namespace

void add_gateway(std::span<const telemetry::FamilySnapshot> families,
                 const std::map<std::string, std::string>& route_service, GatewayReading& reading) {
  auto& out = reading.services;
  for (const auto& family : families) {
    if (family.name == "prescale_calls_total") {
      const size_t caller_at = label_index(family, "caller");
      const size_t callee_at = label_index(family, "callee");
      if (callee_at >= family.label_names.size()) continue;
      for (const auto& series : family.series) {
        const std::string& callee = series.label_values[callee_at];
        out[callee].arrivals += series.value;
        if (caller_at >= family.label_names.size() ||
            series.label_values[caller_at] == "external") {
          out[callee].external += series.value;
        } else {
          reading.edges[{series.label_values[caller_at], callee}] += series.value;
        }
      }
      continue;
    }
    if (family.name == "prescale_gateway_route_busy_seconds_total") {
      const size_t route_at = label_index(family, "route");
      if (route_at >= family.label_names.size()) continue;
      for (const auto& series : family.series) {
        auto route = route_service.find(series.label_values[route_at]);
        if (route != route_service.end()) out[route->second].busy_seconds += series.value;
      }
      continue;
    }
    if (family.name == "prescale_gateway_ejections_total") {
      const size_t service_at = label_index(family, "service");
      if (service_at >= family.label_names.size()) continue;
      for (const auto& series : family.series) {
        out[series.label_values[service_at]].ejections += series.value;
      }
      continue;
    }
    const bool requests = family.name == "prescale_requests_total";
    const bool durations = family.name == "prescale_request_duration_seconds";
    if (!requests && !durations) continue;
    const size_t route_at = label_index(family, "route");
    const size_t code_at = label_index(family, "code");
    if (route_at >= family.label_names.size()) continue;
    for (const auto& series : family.series) {
      auto route = route_service.find(series.label_values[route_at]);
      if (route == route_service.end()) continue;
      GatewayCounts& c = out[route->second];
      if (requests) {
        c.responses += series.value;
        if (is_5xx(family, series, code_at)) c.errors += series.value;
      } else {
        telemetry::add_histogram(c.latency, series.histogram);
      }
    }
  }
}

GatewayReading growth(const GatewayReading& now, const GatewayReading& before) {
  GatewayReading out;
  static const GatewayCounts kNone;
  for (const auto& [service, n] : now.services) {
    const auto b = before.services.find(service);
    const GatewayCounts& base = b == before.services.end() ? kNone : b->second;
    GatewayCounts& d = out.services[service];
    d.arrivals = increase(n.arrivals, base.arrivals);
    d.external = increase(n.external, base.external);
    d.responses = increase(n.responses, base.responses);
    d.errors = increase(n.errors, base.errors);
    d.ejections = increase(n.ejections, base.ejections);
    d.busy_seconds = increase(n.busy_seconds, base.busy_seconds);
    d.latency = telemetry::histogram_delta(n.latency, base.latency);
  }
  for (const auto& [edge, calls] : now.edges) {
    const auto b = before.edges.find(edge);
    out.edges[edge] = increase(calls, b == before.edges.end() ? 0 : b->second);
  }
  return out;
}

bool went_down(const GatewayReading& now, const GatewayReading& before) {
  for (const auto& [service, b] : before.services) {
    const auto n = now.services.find(service);
    const double arrivals = n == now.services.end() ? 0 : n->second.arrivals;
    const double responses = n == now.services.end() ? 0 : n->second.responses;
    if (arrivals < b.arrivals || responses < b.responses) return true;
  }
  return false;
}

void add(GatewayCounts& total, const GatewayCounts& more) {
  total.arrivals += more.arrivals;
  total.external += more.external;
  total.responses += more.responses;
  total.errors += more.errors;
  total.ejections += more.ejections;
  total.busy_seconds += more.busy_seconds;
  total.latency = sum(total.latency, more.latency);
}

void add(GatewayReading& total, const GatewayReading& more) {
  for (const auto& [service, m] : more.services) add(total.services[service], m);
  for (const auto& [edge, calls] : more.edges) total.edges[edge] += calls;
}

void TrafficWindow::add_to_base(const GatewayCounts& counted) {
  for (Sample& s : samples_) add(s.counts, counted);
  add(last_, counted);
}

std::vector<scaling::EdgeObservation> edges_of(const GatewayReading& reading) {
  std::vector<scaling::EdgeObservation> out;
  out.reserve(reading.edges.size());
  for (const auto& [edge, calls] : reading.edges) {
    out.push_back(scaling::EdgeObservation{edge.first, edge.second, calls});
  }
  return out;
}

RequestDelta request_delta(double slo_latency_seconds, const GatewayCounts& now,
                           const GatewayCounts& base) {
  RequestDelta d;
  d.arrived = std::max(0.0, now.arrivals - base.arrivals);
  d.external = std::clamp(now.external - base.external, 0.0, d.arrived);
  d.answered = std::max(0.0, now.responses - base.responses);
  d.failed = std::max(0.0, now.errors - base.errors);
  d.ejected = std::max(0.0, now.ejections - base.ejections);
  d.served = std::max(0.0, d.answered - d.failed);
  const telemetry::HistogramData latency = telemetry::histogram_delta(now.latency, base.latency);
  d.busy_seconds = std::max(0.0, now.busy_seconds - base.busy_seconds);
  // NaN when there are no buckets to tell (no latency recorded): none known to be slow.
  const double slow = telemetry::histogram_count_above(slo_latency_seconds, latency.buckets);
  d.slow = std::isnan(slow) ? 0 : std::min(d.served, slow);
  if (d.answered > 0) d.p99_seconds = telemetry::histogram_quantile(0.99, latency.buckets);
  return d;
}

RequestDelta TrafficWindow::record(Clock::TimePoint real, Clock::TimePoint now,
                                   const GatewayCounts& counts) {
  const RequestDelta since_previous = request_delta(slo_, counts, last_);
  last_ = counts;
  served_total_ += since_previous.served;
  samples_.push_back({real, now, counts});
  while (samples_.size() > 1 && samples_[1].now <= now - metric_window_) samples_.pop_front();
  return since_previous;
}

namespace {

// The last second reaches back to the newest sample at least this much real time old: a real
// second, less the slack of a controller that observes every second and wakes a few milliseconds
// either side of it (the sample before would make it two). Rates divide by the time covered.
constexpr Clock::Duration kLastSecondSpan = std::chrono::milliseconds(950);

}  // namespace

// Since the newest sample a real second back, or since the window's base when the window is
// shorter than a real second (a clock compressed more than 30x for the default 30 s window, as
// `prescale up --time-scale 144`): never longer than the window the policies compare it with.
//
// Concurrency is the mean number of the service's requests in the gateway over that second: the
// growth of its routes' busy seconds, which count a request's time while it is in flight, not
// once it is answered (Knative's queue-proxy averages its concurrency over the second the same
// way). A gauge read once would be an instant, not the second's mean.
scaling::SecondMetrics TrafficWindow::last_second(Clock::TimePoint now,
                                                  Clock::TimePoint real_now) const {
  if (samples_.empty()) return {};
  const GatewayCounts& latest = samples_.back().counts;
  for (auto base = samples_.rbegin(); base != samples_.rend(); ++base) {
    if (real_now - base->real < kLastSecondSpan && base->now > now - metric_window_) continue;
    const double span = std::chrono::duration<double>(real_now - base->real).count();
    if (!(span > 0)) return {};
    const double arrived = std::max(0.0, latest.arrivals - base->counts.arrivals);
    const double busy = std::max(0.0, latest.busy_seconds - base->counts.busy_seconds);
    return scaling::SecondMetrics{now, busy / span, arrived / span, true};
  }
  return {};  // not a real second of samples yet
}

void TrafficWindow::fill(scaling::WindowMetrics& w, Clock::TimePoint now,
                         Clock::TimePoint real_now) const {
  if (samples_.empty()) return;
  const Sample& base = samples_.front();
  const RequestDelta in_window = request_delta(slo_, samples_.back().counts, base.counts);
  const double window_real = std::chrono::duration<double>(real_now - base.real).count();
  w.sampled_at = now;
  w.length = now - base.now;
  w.served_total = served_total_;
  w.traffic_seconds = window_real;
  if (window_real > 0) {
    w.arrival_rps = in_window.arrived / window_real;
    w.external_rps = in_window.external / window_real;
    w.served_rps = in_window.served / window_real;
    w.dropped_rps = in_window.failed / window_real;
    w.slow_rps = in_window.slow / window_real;
    // Mean requests in the service over the window: the time its requests spent in flight in
    // it, per second. A gauge read once per window is a sample, not a mean, and too noisy at one
    // request at a time.
    w.concurrency = in_window.busy_seconds / window_real;
    w.latency_p99_seconds = in_window.answered > 0 ? in_window.p99_seconds : NAN;
  }
}

}  // namespace prescale::traffic
