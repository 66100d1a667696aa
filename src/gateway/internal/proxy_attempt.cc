// The proxy's attempt loop: each attempt's pick, head and upstream exchange; its report,
// metrics and retry; and the answer the request ends with.
#include <algorithm>
#include <optional>
#include <string>
#include <utility>

#include "core/host_port.h"
#include "gateway/internal/grpc_reply.h"
#include "gateway/internal/proxy_core.h"
#include "gateway/internal/proxy_thread.h"
#include "gateway/internal/upstream_head.h"
#include "http/json.h"

namespace prescale::gateway::internal {
namespace {

constexpr int kClientClosedRequest = 499;  // nginx's code: the client left; nobody reads it

bool idempotent(http::Method m) {
  using http::Method;
  return m == Method::kGet || m == Method::kHead || m == Method::kPut || m == Method::kDelete ||
         m == Method::kOptions;
}

// The attempt's upstream metrics. File-local: its one caller, on_attempt_done, gets it inlined.
void record_attempt(const ProxyCore& p, Call& c, Clock::Duration latency) {
  UpstreamSeries* series = c.ts_.upstream_series(c);
  if (series == nullptr) return;
  // An attempt the gateway refused itself (its connection limits) or cut short (stopping, the
  // client gone) took no time of the upstream's: counted, but not as a duration.
  if (c.error != ExchangeError::kOverflow && c.error != ExchangeError::kCancelled) {
    series->duration->observe(to_seconds(latency));
  }
  telemetry::Counter* counter = nullptr;
  if (c.error == ExchangeError::kNone) {
    const int status = c.response.status;
    for (const auto& [s, ctr] : series->by_status) {
      if (s == status) counter = ctr;
    }
    if (counter == nullptr) {
      counter = &p.upstream_requests->with(
          {c.route->route.name, c.upstream_label, std::to_string(status)});
      series->by_status.emplace_back(status, counter);
    }
  } else {
    auto& slot = series->by_error[static_cast<size_t>(c.error)];
    if (slot == nullptr) {
      slot =
          &p.upstream_requests->with({c.route->route.name, c.upstream_label, to_string(c.error)});
    }
    counter = slot;
  }
  counter->inc();
}

}  // namespace

std::string_view to_string(HoldOutcome o) {
  switch (o) {
    case HoldOutcome::kSent:
      return "sent";
    case HoldOutcome::kTimedOut:
      return "timed_out";
    case HoldOutcome::kSuperseded:
      return "superseded";
    case HoldOutcome::kRefused:
      return "refused";
    case HoldOutcome::kCancelled:
      return "cancelled";
  }
  return "refused";
}

void Call::on_complete() { ts_.proxy().on_attempt_done(*this); }

bool Call::stream_body(const http::Response& answer) {
  // A streamed answer is relayed at once, so only one that is not retried: below 500 and not a
  // status the route retries (any other body is read whole, as the retry may replace it).
  return !head_request && !client_gone && answer.status < 500 &&
         !route->route.selector->retries_status(answer.status);
}

void Call::on_stream_end(bool complete) { ts_.proxy().end_stream(*this, complete); }

bool ProxyCore::hold(Call& c) {
  const Clock::TimePoint t = now();
  if (!c.route->route.hold_for_upstream || c.attempt != 0 || c.ts_.stopped() ||
      t + Proxy::kHoldPoll >= c.route_deadline ||
      (!c.held && c.ts_.waiting() >= Proxy::kMaxWaitingPerThread)) {
    return false;
  }
  if (!c.held) {
    // Counted before whoever embeds the gateway is told, so that what it reads then shows it.
    if (c.route->hold.held != nullptr) c.route->hold.held->inc();
    c.held_since = t;
    c.held = true;
    if (options.on_hold) options.on_hold(c.route->route.service);
  }
  c.ts_.wait_backoff(c, Proxy::kHoldPoll);
  return true;
}

void HoldSeries::ended(HoldOutcome outcome, Clock::TimePoint since, Clock::TimePoint t) const {
  if (held == nullptr) return;
  held->dec();
  by_outcome[static_cast<size_t>(outcome)]->inc();
  if (outcome == HoldOutcome::kSent) duration->observe(to_seconds(t - since));
}

void ProxyCore::end_hold(Call& c, HoldOutcome outcome) {
  if (!c.held) return;
  c.held = false;
  c.route->hold.ended(outcome, c.held_since, now());
}

void ProxyCore::start_attempt(Call& c) {
  RouteState& route = *c.route;
  if (c.held) {
    // A reload gave its service a new cluster (which the endpoints now reach instead of the one
    // it watches), or dropped it, while it waited: it is answered, to be sent again. (A route
    // removed or edited with its cluster kept goes on: the replica still comes to that cluster.)
    if (route.route.selector->superseded()) {
      end_hold(c, HoldOutcome::kSuperseded);
      fail(c, 503, "no_healthy_upstream",
           "the gateway's configuration changed while the request waited for a replica of "
           "service " +
               route.route.service + ": send it again");
      return;
    }
    // Held while the service lists no endpoint it could pick: select() is asked once it does.
    if (!route.route.selector->has_usable_upstream()) {
      if (!hold(c)) refuse(c, NoPick{});
      return;
    }
  }
  const UpstreamPick* previous = c.pick ? &*c.pick : nullptr;
  UpstreamSelection pick = route.route.selector->select(*c.req, c.attempt, previous);
  if (!pick) {
    if (c.attempt == 0) {
      // A service scaled to zero: the request waits for the replica its load brings, looking
      // again every kHoldPoll, within its route's timeout and the thread's bound.
      if (pick.error().reason == NoPick::Reason::kNoHealthyUpstream && hold(c)) return;
      refuse(c, pick.error());
    } else {
      finish_failed(c);  // the previous attempt's answer
    }
    return;
  }
  // A retry is counted once the pool has taken it: one the selector or the pool refuses was never
  // made. (The counter lives in the registry: the call may be over when start() returns.)
  telemetry::Counter* const retry_counter = c.attempt > 0 ? route.retries : nullptr;
  if (c.attempt > 0) {
    c.previous.error = c.error;
    c.previous.detail = std::move(c.detail);
    c.previous.response = std::move(c.response);
    c.previous.deadline = c.deadline;
    c.previous.upstream_label = c.upstream_label;
  }
  // Held until now: sent once the pool takes it (a connection limit may refuse it). Counted
  // through the registry's series, as the call may be over when start() returns.
  const std::optional<HoldSeries> was_held =
      c.held ? std::optional<HoldSeries>(route.hold) : std::nullopt;
  const Clock::TimePoint held_since = c.held_since;
  c.held = false;  // nor is a retry ever held
  c.pick = std::move(*pick);
  c.upstream_label.clear();
  append_host_port(c.upstream_label, c.pick->host, c.pick->port);

  const Clock::TimePoint t = now();
  c.attempt_started = t;
  c.deadline = c.route_deadline;
  if (route.route.per_try_timeout.count() > 0) {
    c.deadline = std::min(c.deadline, t + route.route.per_try_timeout);
  }
  write_upstream_head(*c.req, c.upstream_label, c.request_id, c.ts_.request_ids(), c.head_buf);
  c.head = c.head_buf;
  c.body = c.req->body;
  c.head_request = c.req->method == http::Method::kHead;
  c.idempotent = idempotent(c.req->method);
  c.stream_idle_timeout = route.route.timeout;
  c.http2 = route.route.upstream_http2;
  c.body_stream = c.http2 ? c.req->body_stream : nullptr;
  c.upgrade = !c.http2 && asks_websocket(*c.req);
  c.tunnel_idle_timeout = route.route.websocket_idle_timeout;
  c.admission = c.pick->admission;
  c.phase = Call::Phase::kRunning;
  if (!c.ts_.pool().start(c.pick->host, c.pick->port, c)) {
    if (was_held) {
      // As the answer below: a connection limit's refusal, or the gateway stopping.
      was_held->ended(
          c.error == ExchangeError::kOverflow ? HoldOutcome::kRefused : HoldOutcome::kCancelled,
          held_since, now());
    }
    c.phase = Call::Phase::kIdle;
    if (c.error != ExchangeError::kOverflow) c.detail = "the gateway is shutting down";
    c.retry_refused = c.attempt > 0;
    on_attempt_done(c);
    return;
  }
  if (was_held) was_held->ended(HoldOutcome::kSent, held_since, now());
  if (retry_counter != nullptr) retry_counter->inc();
}

void ProxyCore::on_attempt_done(Call& c) {
  c.phase = Call::Phase::kIdle;
  const Clock::TimePoint t = now();
  const Clock::Duration latency = t - c.attempt_started;
  UpstreamOutcome outcome;
  switch (c.error) {
    case ExchangeError::kNone:
      outcome = UpstreamOutcome::response(c.response.status);
      break;
    case ExchangeError::kConnectFailed:
    case ExchangeError::kConnectTimeout:
      outcome = UpstreamOutcome::failure(UpstreamError::kConnectFailure);
      break;
    case ExchangeError::kReset:
    case ExchangeError::kMalformed:
      outcome = UpstreamOutcome::failure(UpstreamError::kReset);
      break;
    case ExchangeError::kTimeout:
      outcome = UpstreamOutcome::failure(UpstreamError::kTimeout);
      break;
    case ExchangeError::kCancelled:
    case ExchangeError::kOverflow:
      break;
  }
  const AttemptReport report{
      .pick = *c.pick,
      .attempt = c.attempt,
      .outcome = outcome,
      .cancelled = c.error == ExchangeError::kCancelled || c.error == ExchangeError::kOverflow,
      .request_sent = c.request_sent,
      .streaming = c.error == ExchangeError::kNone &&
                   (c.response.stream != nullptr || c.response.tunnel != nullptr),
      .latency = latency,
      .finished_at = t,
      .detail = c.detail};
  record_attempt(*this, c, latency);
  UpstreamSelector& selector = *c.route->route.selector;
  selector.report(*c.req, report);
  if (c.retry_refused) {
    c.retry_refused = false;
    c.error = c.previous.error;
    c.detail = std::move(c.previous.detail);
    c.response = std::move(c.previous.response);
    c.deadline = c.previous.deadline;
    c.upstream_label = std::move(c.previous.upstream_label);
    finish_failed(c);
    return;
  }
  // A streamed answer is relayed whatever its status: it was streamed because it would be.
  if (c.error == ExchangeError::kNone &&
      (report.streaming ||
       (c.response.status < 500 && !selector.retries_status(c.response.status)))) {
    relay(c);
    return;
  }
  // Nor one whose streamed body was read in part: what was sent is gone.
  if (!report.cancelled && c.attempt + 1 < options.max_attempts && t < c.route_deadline &&
      !c.ts_.stopped() && !c.body_stream_read) {
    const RetryDecision decision = selector.retry(*c.req, report);
    if (decision.retry && t + decision.backoff < c.route_deadline) {
      ++c.attempt;
      if (decision.backoff > Clock::Duration::zero()) {
        c.ts_.wait_backoff(c, decision.backoff);
      } else {
        start_attempt(c);
      }
      return;
    }
  }
  finish_failed(c);
}

void ProxyCore::finish_failed(Call& c) {
  const ProxyRoute& route = c.route->route;
  switch (c.error) {
    case ExchangeError::kNone:
      relay(c);  // the upstream's own 5xx
      return;
    case ExchangeError::kConnectFailed:
      fail(c, 503, "upstream_unavailable",
           "no upstream of service " + route.service + " could be reached: " + c.detail);
      return;
    case ExchangeError::kConnectTimeout:
      fail(c, 504, "upstream_timeout", c.detail);
      return;
    case ExchangeError::kTimeout: {
      // A deadline passed: a gRPC client is told DEADLINE_EXCEEDED, not UNAVAILABLE (which it
      // would retry), as Envoy's and Linkerd's timeouts answer.
      http::Response r;
      if (c.deadline < c.route_deadline) {
        r = http::error_response(504, "upstream_timeout",
                                 "upstream " + c.upstream_label +
                                     " did not answer within the per-try timeout of " +
                                     format_millis(route.per_try_timeout));
      } else if (c.grpc_timeout) {
        r = http::error_response(504, "upstream_timeout",
                                 "the call's grpc-timeout of " + format_millis(*c.grpc_timeout) +
                                     " passed (" + c.detail + ")");
      } else {
        r = http::error_response(504, "upstream_timeout",
                                 "route " + route.name + " timed out after " +
                                     format_millis(route.timeout) + " (" + c.detail + ")");
      }
      if (is_grpc_request(*c.req)) r.headers.set(std::string(kGrpcStatusOverride), "4");
      finish(c, std::move(r));
      return;
    }
    case ExchangeError::kReset:
    case ExchangeError::kMalformed:
      fail(c, 502, "bad_gateway", c.detail);
      return;
    case ExchangeError::kOverflow:
      fail(c, 503, "upstream_overflow", "service " + route.service + ": " + c.detail);
      return;
    case ExchangeError::kCancelled:
      if (c.client_gone) {
        fail(c, kClientClosedRequest, "client_closed_request", "the client went away");
      } else {
        fail(c, 503, "shutting_down", "the gateway is shutting down");
      }
      return;
  }
}

void ProxyCore::relay(Call& c) {
  // `Upgrade` is hop-by-hop, but a 426 must name the protocols it requires (RFC 9110 section
  // 15.5.22), the client's to switch to: relayed. A switch to WebSocket names its own; the server
  // adds `Connection: upgrade`.
  std::optional<std::string> upgrade;
  if (c.response.status == 426) {
    if (auto u = c.response.headers.get("Upgrade")) upgrade = std::string(*u);
  }
  strip_hop_by_hop(c.response.headers);
  if (c.response.tunnel != nullptr) upgrade = "websocket";
  if (upgrade) c.response.headers.set("Upgrade", std::move(*upgrade));
  finish(c, std::move(c.response));
}

void ProxyCore::refuse(Call& c, const NoPick& why) {
  const ProxyRoute& route = c.route->route;
  switch (why.reason) {
    case NoPick::Reason::kNoHealthyUpstream:
      if (c.held) {
        end_hold(c, HoldOutcome::kTimedOut);
        fail(c, 503, "no_healthy_upstream",
             "no replica of service " + route.service + " came into service within route " +
                 route.name + "'s timeout of " + format_millis(route.timeout) +
                 " (the request waited for one)");
        return;
      }
      fail(c, 503, "no_healthy_upstream",
           !why.message.empty() ? why.message
                                : "no healthy upstream for route " + route.name + " (service " +
                                      route.service + ")");
      return;
    case NoPick::Reason::kOverflow:
      fail(c, 503, "upstream_overflow",
           !why.message.empty() ? why.message : "service " + route.service + ": limit reached");
      return;
    case NoPick::Reason::kOverloaded: {
      http::Response r = http::error_response(
          503, "overloaded",
          !why.message.empty() ? why.message : "service " + route.service + " is overloaded");
      // Retry-After counts whole seconds and 1 is the shortest: the admitted queue drains
      // within queue_limit, well under it. Clients that honour it come back once there is room
      // instead of at once, adding to the overload.
      r.headers.set("Retry-After", "1");
      finish(c, std::move(r));
      return;
    }
  }
}

void ProxyCore::fail(Call& c, int status, std::string_view code, const std::string& message) {
  finish(c, http::error_response(status, code, message));
}

void ProxyCore::finish(Call& c, http::Response&& response) {
  // Still held: answered while waiting, by what the call sites above did not name (the cluster
  // refused it once an upstream came; the gateway stopping; the client gone).
  if (c.held) {
    end_hold(c, response.status == kClientClosedRequest || c.ts_.stopped() ? HoldOutcome::kCancelled
                                                                           : HoldOutcome::kRefused);
  }
  RouteState& route = *c.route;
  route.count(response.status);
  if (response.stream != nullptr || response.tunnel != nullptr) {
    // The body streams on from the upstream connection, or the WebSocket runs over it: the
    // request is in flight until it ends (end_stream()), and the call lives until then; its
    // request does not (it is the server's until respond()). Its duration is the wait for its
    // head, its first piece (a model's time to first token): what an SLO judges; a stream's
    // length is its content's.
    if (route.duration != nullptr) route.duration->observe(to_seconds(now() - c.started));
    c.streaming = true;
    c.req->on_client_gone = nullptr;
    c.req = nullptr;
    http::Responder respond = std::move(c.respond);
    c.respond = http::Responder();
    respond(std::move(response));
    return;
  }
  const Clock::TimePoint ended = now();
  if (route.duration != nullptr) route.duration->observe(to_seconds(ended - c.started));
  (*route.load)[c.ts_.load_slot()].change(ended, -1);
  // Nothing of the call may be used after respond(): it may run the next pipelined request,
  // which takes this Call from the pool again.
  c.req->on_client_gone = nullptr;
  http::Responder respond = std::move(c.respond);
  ThreadState& ts = c.ts_;
  ts.inflight().add(-1);
  http::Response r = std::move(response);
  ts.release(c);
  respond(std::move(r));
}

void ProxyCore::end_stream(Call& c, bool /*complete*/) {
  (*c.route->load)[c.ts_.load_slot()].change(now(), -1);
  c.streaming = false;
  c.ts_.inflight().add(-1);
  c.ts_.release(c);
}

void ProxyCore::client_gone(Call& c) {
  c.client_gone = true;
  switch (c.phase) {
    case Call::Phase::kRunning:
      c.ts_.pool().cancel(c);
      c.error = ExchangeError::kCancelled;
      c.detail = "the client went away";
      on_attempt_done(c);  // reports the attempt as cancelled, answers 499
      return;
    case Call::Phase::kBackoff:
      c.ts_.cancel_backoff(c);
      c.phase = Call::Phase::kIdle;
      fail(c, kClientClosedRequest, "client_closed_request", "the client went away");
      return;
    case Call::Phase::kIdle:
      return;
  }
}

}  // namespace prescale::gateway::internal
