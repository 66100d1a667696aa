// The gateway section of the config schema (docs/config.md): routes and their matches, retries
// and rate limits, health checks, outlier detection, circuit breakers and the retry budget.
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "core/config.h"
#include "core/internal/config_rules.h"
#include "core/internal/config_schema.h"
#include "core/internal/yaml_schema.h"

namespace prescale {

using internal::Checker;
using internal::endpoint_problem;
using internal::host_match_problem;
using internal::listen_problem;
using internal::lowercase;
using internal::path_pattern_problem;
using internal::quote;
using internal::rate_limit_key_problem;
using internal::request_path_problem;
using internal::Schema;
using internal::service_name_problem;
using internal::valid_header_name;

static void describe(Schema<RouteMatch>& s) {
  s.field("host", &RouteMatch::host).check(host_match_problem);
  s.field("path_prefix", &RouteMatch::path_prefix).check(request_path_problem);
  s.field("path", &RouteMatch::path).check(path_pattern_problem);
  s.field("headers", &RouteMatch::headers);
  s.field("headers_present", &RouteMatch::headers_present);
  s.check([](RouteMatch& m, const Checker& c) {
    if (c.has("path")) {
      if (c.has("path_prefix")) {
        c.at("path").error("set either path or path_prefix, not both");
      }
      m.path_prefix.clear();
    }
    // Field names are case-insensitive, so "X-Canary" and "x-canary" name one header.
    std::map<std::string, std::string> seen;  // lower-case name -> where it was first named
    auto note = [&](const std::string& name, const Checker& at, const std::string& where) {
      if (!valid_header_name(name)) {
        at.error("not a valid header name (letters, digits and !#$%&'*+-.^_`|~), got " +
                 quote(name));
      } else if (auto [it, inserted] = seen.emplace(lowercase(name), where); !inserted) {
        at.error("header " + quote(name) + " is already matched by " + it->second);
      }
    };
    for (const auto& [name, value] : m.headers) {
      note(name, c.at("headers").key(name), "headers." + name);
      if (value.find_first_of("\r\n") != std::string::npos || value.find('\0') != value.npos) {
        c.at("headers").at(name).error("header values cannot hold line breaks or NUL");
      }
    }
    for (std::size_t i = 0; i < m.headers_present.size(); ++i) {
      note(m.headers_present[i], c.at("headers_present").at(i),
           "headers_present[" + std::to_string(i) + "]");
    }
  });
}

static void describe(Schema<RetryPolicyConfig>& s) {
  s.field("num_retries", &RetryPolicyConfig::num_retries).at_least(0).at_most(10);
  s.field("retry_on", &RetryPolicyConfig::retry_on);
  s.field("retriable_status_codes", &RetryPolicyConfig::retriable_status_codes);
  s.field("retryable", &RetryPolicyConfig::retryable);
  s.check([](RetryPolicyConfig& r, const Checker& c) {
    for (std::size_t i = 0; i < r.retriable_status_codes.size(); ++i) {
      const int code = r.retriable_status_codes[i];
      if (code < 100 || code > 599) {
        c.at("retriable_status_codes")
            .at(i)
            .error("not an HTTP status code (100..599), got " + std::to_string(code));
      }
    }
    auto& on = r.retry_on;
    const bool by_code =
        std::find(on.begin(), on.end(), RetryOn::kRetriableStatusCodes) != on.end();
    if (by_code && r.retriable_status_codes.empty()) {
      c.at("retry_on")
          .error("lists \"retriable-status-codes\" but retriable_status_codes is empty");
    } else if (!by_code && !r.retriable_status_codes.empty()) {
      on.push_back(RetryOn::kRetriableStatusCodes);
    }
    std::sort(on.begin(), on.end());
    on.erase(std::unique(on.begin(), on.end()), on.end());
  });
}

// `retries` is either a mapping or, as in earlier files, just the number of retries.
// Found by ADL from the schema machinery, ahead of its generic reader.
static bool read_value(const internal::Site& site, RetryPolicyConfig& out,
                       internal::Diagnostics& diag) {
  if (!site.node.IsScalar()) return internal::schema_of<RetryPolicyConfig>().read(site, out, diag);
  const std::optional<std::int64_t> n = internal::parse_integer(site.node.Scalar());
  if (!n) {
    diag.report(site.mark, site.path,
                "expected a number of retries or a mapping (num_retries, retry_on, ...), got " +
                    quote(site.node.Scalar()));
    return false;
  }
  if (*n < 0 || *n > 10) {
    diag.report(site.mark, site.path, "must be 0..10, got " + std::to_string(*n));
    return false;
  }
  out.num_retries = static_cast<int>(*n);
  return true;
}

static void describe(Schema<RateLimitConfig>& s) {
  s.field("requests_per_second", &RateLimitConfig::requests_per_second)
      .at_least(0.0)
      .at_most(1e9);  // its one-second burst must fit an int
  s.field("burst", &RateLimitConfig::burst).at_least(0);
  s.field("key", &RateLimitConfig::key).check(rate_limit_key_problem);
  s.check([](RateLimitConfig& r, const Checker& c) {
    if (r.requests_per_second == 0 && r.burst > 0) {
      c.at("burst").error("has no effect without requests_per_second");
    } else if (r.requests_per_second > 0 && r.burst == 0) {
      r.burst = static_cast<int>(std::max(1.0, std::ceil(r.requests_per_second)));
    }
    // The gateway counts a bucket's debt in int64 nanoseconds (gateway/rate_limiter.h).
    if (r.requests_per_second > 0 && r.burst / r.requests_per_second > 1e9) {
      c.at("requests_per_second")
          .error("too low for a burst of " + std::to_string(r.burst) +
                 ": refilling the bucket must take at most 1e9 s (about 31 years), got " +
                 internal::format_number(r.requests_per_second));
    }
  });
}

static void describe(Schema<RouteConfig>& s) {
  using std::chrono::milliseconds;
  s.field("match", &RouteConfig::match);
  s.field("service", &RouteConfig::service).required();
  s.field("timeout", &RouteConfig::timeout).greater_than(milliseconds(0));
  s.field("per_try_timeout", &RouteConfig::per_try_timeout);
  s.field("websocket_idle_timeout", &RouteConfig::websocket_idle_timeout)
      .greater_than(milliseconds(0));
  s.field("retries", &RouteConfig::retries);
  s.field("rate_limit", &RouteConfig::rate_limit);
  s.check([](RouteConfig& r, const Checker& c) {
    if (r.per_try_timeout > r.timeout) {
      c.at("per_try_timeout")
          .error("must be <= timeout (" + internal::format_duration(r.timeout) + "), got " +
                 internal::format_duration(r.per_try_timeout));
    }
  });
}

static void describe(Schema<HealthCheckConfig>& s) {
  using std::chrono::milliseconds;
  s.field("path", &HealthCheckConfig::path).check(request_path_problem);
  s.field("interval", &HealthCheckConfig::interval).greater_than(milliseconds(0));
  s.field("timeout", &HealthCheckConfig::timeout).greater_than(milliseconds(0));
  s.field("healthy_threshold", &HealthCheckConfig::healthy_threshold).at_least(1);
  s.field("unhealthy_threshold", &HealthCheckConfig::unhealthy_threshold).at_least(1);
  s.check([](HealthCheckConfig& h, const Checker& c) {
    if (h.timeout > h.interval) {
      c.at("timeout").error("must be <= interval (" + internal::format_duration(h.interval) +
                            "), got " + internal::format_duration(h.timeout));
    }
  });
}

static void describe(Schema<OutlierDetectionConfig>& s) {
  using std::chrono::milliseconds;
  using O = OutlierDetectionConfig;
  s.field("consecutive_5xx", &O::consecutive_5xx).at_least(0);
  s.field("consecutive_gateway_failure", &O::consecutive_gateway_failure).at_least(0);
  s.field("interval", &O::interval).greater_than(milliseconds(0));
  s.field("base_ejection_time", &O::base_ejection_time).greater_than(milliseconds(0));
  s.field("max_ejection_time", &O::max_ejection_time);
  s.field("max_ejection_percent", &O::max_ejection_percent).at_least(0).at_most(100);
  s.check([](O& o, const Checker& c) {
    if (o.max_ejection_time < o.base_ejection_time) {
      c.at("max_ejection_time")
          .error("must be >= base_ejection_time (" +
                 internal::format_duration(o.base_ejection_time) + "), got " +
                 internal::format_duration(o.max_ejection_time));
    }
  });
}

static void describe(Schema<CircuitBreakerConfig>& s) {
  using std::chrono::milliseconds;
  using B = CircuitBreakerConfig;
  s.field("max_connections", &B::max_connections).at_least(1);
  s.field("max_pending_requests", &B::max_pending_requests).at_least(1);
  s.field("max_requests", &B::max_requests).at_least(1);
  s.field("max_retries", &B::max_retries).at_least(0);
  s.field("failure_rate_threshold", &B::failure_rate_threshold).greater_than(0.0).at_most(100.0);
  s.field("slow_call_duration", &B::slow_call_duration).greater_than(milliseconds(0));
  s.field("slow_call_rate_threshold", &B::slow_call_rate_threshold)
      .greater_than(0.0)
      .at_most(100.0);
  s.field("minimum_requests", &B::minimum_requests).at_least(1);
  s.field("window", &B::window).greater_than(milliseconds(0));
  s.field("open_duration", &B::open_duration).greater_than(milliseconds(0));
  s.field("half_open_trials", &B::half_open_trials).at_least(1);
}

static void describe(Schema<RetryBudgetConfig>& s) {
  s.field("budget_percent", &RetryBudgetConfig::budget_percent).at_least(0.0).at_most(100.0);
  s.field("min_retry_concurrency", &RetryBudgetConfig::min_retry_concurrency).at_least(0);
}

// One spelling per match, so that two routes written differently but matching the same
// requests are caught: lower-case host and header names, parameter names dropped.
static std::string canonical_match(const RouteMatch& m) {
  std::string key = lowercase(m.host) + '\n';
  if (m.path.empty()) {
    key += "prefix " + m.path_prefix;
  } else {
    key += "path ";
    for (std::size_t i = 0; i < m.path.size(); ++i) {
      if (m.path[i] != '{') {
        key += m.path[i];
        continue;
      }
      const std::size_t close = m.path.find('}', i);  // the pattern is valid: there is one
      key += m.path.compare(close - 3, 3, "...") == 0 ? "{...}" : "{}";
      i = close;
    }
  }
  std::vector<std::string> headers;
  for (const auto& [name, value] : m.headers) headers.push_back(lowercase(name) + ": " + value);
  for (const std::string& name : m.headers_present) headers.push_back(lowercase(name));
  std::sort(headers.begin(), headers.end());
  for (const std::string& h : headers) key += '\n' + h;
  return key;
}

static void describe(Schema<GatewayTlsConfig>& s) {
  s.field("cert_file", &GatewayTlsConfig::cert_file);
  s.field("key_file", &GatewayTlsConfig::key_file);
  s.check([](GatewayTlsConfig& t, const Checker& c) {
    if (t.cert_file.empty() != t.key_file.empty()) {
      c.at(t.cert_file.empty() ? "key_file" : "cert_file")
          .error(t.cert_file.empty() ? "needs cert_file beside it (the certificate it belongs to)"
                                     : "needs key_file beside it (the certificate's private key)");
    }
  });
}

void describe(Schema<GatewayConfig>& s) {
  s.field("listen", &GatewayConfig::listen).check(listen_problem);
  s.field("tls", &GatewayConfig::tls);
  s.field("threads", &GatewayConfig::threads).at_least(0);
  s.field("load_balancer", &GatewayConfig::load_balancer);
  s.field("load_balancer_tolerance", &GatewayConfig::load_balancer_tolerance).at_least(1.0);
  s.field("health_check", &GatewayConfig::health_check);
  s.field("outlier_detection", &GatewayConfig::outlier_detection);
  s.field("circuit_breakers", &GatewayConfig::circuit_breakers);
  s.field("retry_budget", &GatewayConfig::retry_budget);
  s.field("upstreams", &GatewayConfig::upstreams);
  s.field("dns_refresh_rate", &GatewayConfig::dns_refresh_rate)
      .at_least(std::chrono::milliseconds(100));
  s.field("routes", &GatewayConfig::routes);
  s.check([](GatewayConfig& g, const Checker& c) {
    for (const auto& [service, endpoints] : g.upstreams) {
      if (std::string problem = service_name_problem(service); !problem.empty()) {
        c.at("upstreams").key(service).error(problem);
      }
      for (std::size_t i = 0; i < endpoints.size(); ++i) {
        const Checker at = c.at("upstreams").at(service).at(i);
        if (std::string problem = endpoint_problem(endpoints[i]); !problem.empty()) {
          at.error(problem);
        } else if (std::find(endpoints.begin(), endpoints.begin() + static_cast<std::ptrdiff_t>(i),
                             endpoints[i]) != endpoints.begin() + static_cast<std::ptrdiff_t>(i)) {
          at.error("lists " + quote(endpoints[i]) + " twice");
        }
      }
    }
    std::vector<std::string> keys;
    for (std::size_t i = 0; i < g.routes.size(); ++i) {
      keys.push_back(canonical_match(g.routes[i].match));
      for (std::size_t j = 0; j < i; ++j) {
        if (keys[i] == keys[j]) {
          c.at("routes").at(i).error("same match as routes[" + std::to_string(j) +
                                     "]; only one of them can receive requests");
          break;
        }
      }
    }
  });
}

}  // namespace prescale
