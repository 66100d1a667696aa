// PrometheusHistory: a service's per-minute demand as a Prometheus that scrapes the gateways has
// it, so that a controller starting without its state (a new pod with an emptyDir, a first
// start) forecasts at once, and one that was down for a while gets the minutes it missed
// (docs/kubernetes.md, "History from Prometheus").
//
// A service's demand is what the gateways count of the calls to it, prescale_calls_total{callee},
// as the controller reads it from the gateways itself (gateway_traffic.h): one range query per
// service and at most kMaxPointsPerQuery minutes,
//
//   sum by (caller) (rate(prescale_calls_total{<selector>,callee="<service>"}[<window>]))
//
// POSTed to <url>/api/v1/query_range at one-minute steps, each evaluated where its window is
// centred on the minute it stands for (a 2-minute window half a minute after the minute's end):
// a minute's value is the mean rate over the window, no later than the minute. The selector picks
// the gateways' series out of everything Prometheus scrapes (the services' own pods count their
// outgoing calls in the same family, and must not count twice). The arrivals are the sum over the
// callers; the requests from outside the call graph are caller="external" (or no caller label).
//
// backfill_history() fills in a PrescalePolicy the minutes it lacks (PrescalePolicy::fill_history:
// a minute it has keeps its value).
//
// Thread safety: PrometheusHistory may be used from one thread at a time; the functions are pure
// but for the policy they change.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "core/clock.h"
#include "core/host_port.h"
#include "core/result.h"

namespace prescale::http {
class Client;
class ClientTlsContext;
}  // namespace prescale::http

namespace prescale::scaling {
class PrescalePolicy;
}  // namespace prescale::scaling

namespace prescale::kube {

// Prometheus refuses a range query of more than 11,000 points a series.
inline constexpr std::size_t kMaxPointsPerQuery = 10'000;

// One series of a range query's answer.
struct RangeSeries {
  std::map<std::string, std::string> labels;
  std::vector<std::pair<double, double>> points;  // (Unix seconds, value); NaN, ±Inf as written
};

// The series of a /api/v1/query_range answer (`"resultType": "matrix"`). Errors: kUnavailable
// for Prometheus' own refusal (`"status": "error"`: its errorType and error), kInvalidArgument for
// an answer of another shape, naming the field ("data.result[2].values[7]: not a [time, "value"]
// pair").
Result<std::vector<RangeSeries>> parse_range_answer(std::string_view body);

// The label matchers that pick the gateways' series: `selector` as written, one pair of braces
// around it removed ("{job=\"gw\"}" and "job=\"gw\"" are the same). Errors (kInvalidArgument): an
// empty selector, or one with unbalanced braces or quotes.
Result<std::string> normalize_selector(std::string_view selector);

// The rate window of each minute, as `--history-window` writes it: whole seconds from 1 to 10
// minutes. Errors (kInvalidArgument) say what is expected.
Result<std::chrono::seconds> history_window(std::string_view text);

// The query for one service, as above. `selector` as normalize_selector() returns it.
std::string calls_by_caller_query(std::string_view selector, std::string_view service,
                                  std::chrono::seconds window);

// A service's minutes as Prometheus has them: index i is the minute evaluated at first_at + 60 i
// (Unix seconds). NaN where Prometheus has no value.
struct PrometheusMinutes {
  std::vector<double> arrivals;
  std::vector<double> external;  // the requests from outside the call graph
  bool called = false;           // some minute had calls from another service
};

// Sums a query's series into minutes: every caller into `arrivals`, caller="external" (or none)
// into `external` too. A point counts for the minute whose evaluation time is within half a minute
// of its timestamp (a Prometheus-compatible store may align the steps to its own grid).
PrometheusMinutes minutes_of(const std::vector<RangeSeries>& series, double first_at,
                             std::size_t count);

struct PrometheusHistoryOptions {
  HttpUrl url;           // Prometheus' base URL; its path is the API's prefix ("/prometheus")
  // With an https `url`: what the client reaching it verifies it by (the caller's http::Client
  // is made with it).
  std::shared_ptr<const http::ClientTlsContext> tls;
  std::string bearer_token;  // sent as Authorization: Bearer; "" = none
  std::string selector;  // as normalize_selector() returns it
  std::chrono::seconds rate_window{120};
  std::chrono::milliseconds timeout{10000};  // each query at most
  Clock* clock = &Clock::real();             // for a read's deadline
};

class PrometheusHistory {
 public:
  PrometheusHistory(PrometheusHistoryOptions options, http::Client& client);

  // `count` minutes of `service`, the first ending at `first_end` (Unix seconds), in queries of
  // at most kMaxPointsPerQuery minutes, all done by `deadline` (each query's timeout shortened to
  // it). Minutes whose window ends after options.clock's wall_now() are not asked (NaN). Errors:
  // kUnavailable (Prometheus cannot be reached, did not answer in time, or refused the query),
  // kInvalidArgument (an answer of another shape), kTimeout (the deadline came before all were
  // asked); the message names the URL.
  Result<PrometheusMinutes> read(std::string_view service, double first_end, std::size_t count,
                                 std::optional<Clock::TimePoint> deadline = std::nullopt);

  const PrometheusHistoryOptions& options() const { return options_; }

 private:
  PrometheusHistoryOptions options_;
  http::Client* client_;
};

// What backfill_history() did for one service.
struct BackfillOutcome {
  std::string service;
  std::size_t answered = 0;         // minutes Prometheus had a value for
  std::size_t filled = 0;           // minutes taken from Prometheus
  std::size_t external_filled = 0;  // of its external requests' series
  std::size_t minutes = 0;          // minutes of history the policy holds now
  std::optional<Error> error;       // the read failed; the policy's history is unchanged
};

using MinutesReader = std::function<Result<PrometheusMinutes>(std::string_view service,
                                                              double first_end, std::size_t count)>;

// For each service: reads the policy's history span (its options' max_history, up to the minute
// before `now`'s) from `read` and fills what the policy lacks (above). `now` and `wall_now` are
// the same instant on the policy's clock and in Unix time: they place its minutes in Prometheus'.
// A service whose read fails, or for which Prometheus has no minute the policy lacks, is left as
// it was.
std::vector<BackfillOutcome> backfill_history(scaling::PrescalePolicy& policy,
                                              const std::vector<std::string>& services,
                                              const MinutesReader& read, Clock::TimePoint now,
                                              Clock::WallTime wall_now);

}  // namespace prescale::kube
