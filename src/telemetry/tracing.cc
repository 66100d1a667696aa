#include "telemetry/tracing.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <charconv>
#include <cmath>
#include <cstdlib>

#include "core/host_port.h"
#include "core/splitmix.h"
#include "http/body_stream.h"
#include "http/client.h"
#include "http/tls.h"
#include "telemetry/registry.h"

namespace prescale::telemetry {
namespace {

constexpr std::string_view kScopeName = "prescale";
constexpr Clock::Duration kLook = std::chrono::milliseconds(10);
constexpr std::chrono::milliseconds kFirstBackoff{250};

std::unexpected<Error> bad(std::string_view variable, std::string_view value,
                           std::string_view what) {
  return make_error(
      ErrorCode::kInvalidArgument,
      std::string(variable) + "=\"" + std::string(value) + "\": " + std::string(what));
}

std::string_view trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
  return s;
}

std::string lower(std::string_view s) {
  std::string out(s);
  std::transform(out.begin(), out.end(), out.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  return out;
}

// "%XX" decoded (W3C Baggage's value encoding, which OpenTelemetry's list variables use);
// nullopt for a '%' not followed by two hex digits.
std::optional<std::string> percent_decoded(std::string_view s) {
  std::string out;
  for (std::size_t i = 0; i < s.size(); ++i) {
    if (s[i] != '%') {
      out += s[i];
      continue;
    }
    unsigned value = 0;
    if (i + 2 >= s.size()) return std::nullopt;
    const auto [end, ec] = std::from_chars(s.data() + i + 1, s.data() + i + 3, value, 16);
    if (ec != std::errc() || end != s.data() + i + 3) return std::nullopt;
    out += static_cast<char>(value);
    i += 2;
  }
  return out;
}

// "key1=value1,key2=value2" (OTEL_RESOURCE_ATTRIBUTES, OTEL_EXPORTER_OTLP_HEADERS): keys and
// values trimmed, values percent-decoded; empty members skipped.
Result<std::vector<std::pair<std::string, std::string>>> key_values(std::string_view variable,
                                                                    std::string_view text) {
  std::vector<std::pair<std::string, std::string>> out;
  std::size_t start = 0;
  while (start <= text.size()) {
    std::size_t comma = text.find(',', start);
    if (comma == std::string_view::npos) comma = text.size();
    const std::string_view member = trim(text.substr(start, comma - start));
    start = comma + 1;
    if (member.empty()) continue;
    const std::size_t eq = member.find('=');
    if (eq == std::string_view::npos || trim(member.substr(0, eq)).empty()) {
      return bad(variable, text,
                 "\"" + std::string(member) + "\" is not key=value (a comma-separated list)");
    }
    auto value = percent_decoded(trim(member.substr(eq + 1)));
    if (!value) {
      return bad(variable, text,
                 "the value of \"" + std::string(trim(member.substr(0, eq))) +
                     "\" has a '%' that is not followed by two hex digits");
    }
    out.emplace_back(std::string(trim(member.substr(0, eq))), std::move(*value));
  }
  return out;
}

// At most a day's milliseconds for times, a million spans for sizes: enough for anything that
// works, and far from where a time in nanoseconds would overflow.
constexpr std::uint64_t kMaxMillis = 86'400'000;
constexpr std::uint64_t kMaxSpans = 1'000'000;

Result<std::uint64_t> whole_number(std::string_view variable, std::string_view text,
                                   std::uint64_t min, std::uint64_t max) {
  std::uint64_t v = 0;
  const std::string_view t = trim(text);
  const auto [end, ec] = std::from_chars(t.data(), t.data() + t.size(), v);
  if (t.empty() || ec != std::errc() || end != t.data() + t.size() || v < min || v > max) {
    return bad(variable, text,
               "not a whole number from " + std::to_string(min) + " to " + std::to_string(max));
  }
  return v;
}

// RFC 9110's token: the characters a header field's name may have.
bool valid_field_name(std::string_view name) {
  constexpr std::string_view kSpecials = "!#$%&'*+-.^_`|~";
  return !name.empty() && std::all_of(name.begin(), name.end(), [&](char c) {
    return std::isalnum(static_cast<unsigned char>(c)) != 0 ||
           kSpecials.find(c) != std::string_view::npos;
  });
}

bool equals_ignoring_case(std::string_view a, std::string_view b) {
  return a.size() == b.size() && std::equal(a.begin(), a.end(), b.begin(), [](char x, char y) {
           return std::tolower(static_cast<unsigned char>(x)) ==
                  std::tolower(static_cast<unsigned char>(y));
         });
}

struct Variables {
  const Getenv& getenv;
  // The variable's value when set and not empty (OpenTelemetry reads an empty one as unset).
  std::optional<std::pair<std::string_view, std::string_view>> get(const char* name) const {
    const char* v = getenv(name);
    if (v == nullptr || *v == '\0') return std::nullopt;
    return std::pair<std::string_view, std::string_view>{name, v};
  }
  // The traces-specific variable, else the general one.
  std::optional<std::pair<std::string_view, std::string_view>> either(const char* specific,
                                                                      const char* general) const {
    if (auto v = get(specific)) return v;
    return get(general);
  }
};

}  // namespace

Result<std::optional<TracerOptions>> tracer_options_from_env(
    const Getenv& getenv, std::string_view default_service_name) {
  const Variables env{getenv};
  if (auto v = env.get("OTEL_SDK_DISABLED"); v && lower(trim(v->second)) == "true") {
    return std::nullopt;
  }
  bool exporter_named = false;
  if (auto v = env.get("OTEL_TRACES_EXPORTER")) {
    // A list: "otlp" among them sends spans; "none" alone sends none.
    bool otlp = false, none = false, other = false;
    std::string_view list = v->second;
    while (!list.empty()) {
      const std::size_t comma = std::min(list.find(','), list.size());
      const std::string e = lower(trim(list.substr(0, comma)));
      list.remove_prefix(std::min(comma + 1, list.size()));
      otlp = otlp || e == "otlp";
      none = none || e == "none";
      other = other || (e != "otlp" && e != "none" && !e.empty());
    }
    if (!otlp && none && !other) return std::nullopt;
    if (!otlp) {
      return bad(v->first, v->second,
                 "Prescale exports traces over OTLP only: \"otlp\" or \"none\"");
    }
    exporter_named = true;
  }
  TracerOptions o;
  std::string url = "http://localhost:4318/v1/traces";
  if (auto v = env.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")) {
    url = std::string(trim(v->second));  // used as it is
    auto parsed = parse_web_url(url);
    if (!parsed) return bad(v->first, v->second, parsed.error().message);
    o.host = parsed->host;
    o.port = parsed->port;
    o.https = parsed->https;
    o.path = parsed->path.empty() ? "/" : parsed->path;
  } else if (auto g = env.get("OTEL_EXPORTER_OTLP_ENDPOINT")) {
    auto parsed = parse_web_url(trim(g->second));
    if (!parsed) return bad(g->first, g->second, parsed.error().message);
    o.host = parsed->host;
    o.port = parsed->port;
    o.https = parsed->https;
    // The base URL: the signal's path is appended to whatever path it has.
    o.path = parsed->path;
    if (!o.path.ends_with('/')) o.path += '/';
    o.path += "v1/traces";
  } else if (exporter_named) {
    o.host = "localhost";
  } else {
    return std::nullopt;  // nowhere to send spans: tracing is off
  }
  if (auto v = env.either("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL", "OTEL_EXPORTER_OTLP_PROTOCOL")) {
    if (trim(v->second) != "http/protobuf") {
      return bad(v->first, v->second,
                 "Prescale sends OTLP over HTTP in binary protobuf only: \"http/protobuf\" (a "
                 "collector's port 4318)");
    }
  }
  if (auto v =
          env.either("OTEL_EXPORTER_OTLP_TRACES_COMPRESSION", "OTEL_EXPORTER_OTLP_COMPRESSION")) {
    if (lower(trim(v->second)) != "none") {
      return bad(v->first, v->second, "Prescale sends spans uncompressed: \"none\"");
    }
  }
  // TLS: the CAs the receiver's certificate is verified by (the system's when none is named); no
  // client certificate.
  if (auto v =
          env.either("OTEL_EXPORTER_OTLP_TRACES_CERTIFICATE", "OTEL_EXPORTER_OTLP_CERTIFICATE")) {
    o.ca_file = std::string(trim(v->second));
  }
  for (const char* mtls :
       {"OTEL_EXPORTER_OTLP_TRACES_CLIENT_CERTIFICATE", "OTEL_EXPORTER_OTLP_CLIENT_CERTIFICATE",
        "OTEL_EXPORTER_OTLP_TRACES_CLIENT_KEY", "OTEL_EXPORTER_OTLP_CLIENT_KEY"}) {
    if (auto v = env.get(mtls); v && !trim(v->second).empty()) {
      return bad(v->first, v->second,
                 "Prescale sends no client certificate (mTLS): a collector beside it can");
    }
  }
  if (auto v = env.either("OTEL_EXPORTER_OTLP_TRACES_HEADERS", "OTEL_EXPORTER_OTLP_HEADERS")) {
    auto headers = key_values(v->first, v->second);
    if (!headers) return std::unexpected(headers.error());
    for (const auto& [name, value] : *headers) {
      if (!valid_field_name(name)) {
        return bad(v->first, v->second, "\"" + name + "\" is not an HTTP header name");
      }
      if (value.find_first_of(std::string_view("\r\n\0", 3)) != std::string::npos) {
        return bad(v->first, v->second,
                   "the value of \"" + name + "\" holds a line break or NUL character");
      }
    }
    o.headers = std::move(*headers);
  }
  if (auto v = env.either("OTEL_EXPORTER_OTLP_TRACES_TIMEOUT", "OTEL_EXPORTER_OTLP_TIMEOUT")) {
    auto ms = whole_number(v->first, v->second, 1, kMaxMillis);
    if (!ms) return std::unexpected(ms.error());
    o.export_timeout = std::chrono::milliseconds(*ms);
  }
  // Samplers (OpenTelemetry's names); parentbased_always_on by default.
  std::string sampler = "parentbased_always_on";
  if (auto v = env.get("OTEL_TRACES_SAMPLER")) sampler = lower(trim(v->second));
  double ratio = 1.0;
  const bool ratio_sampler = sampler == "traceidratio" || sampler == "parentbased_traceidratio";
  if (auto v = env.get("OTEL_TRACES_SAMPLER_ARG"); v && ratio_sampler) {
    const std::string_view t = trim(v->second);
    const auto [end, ec] = std::from_chars(t.data(), t.data() + t.size(), ratio);
    if (ec != std::errc() || end != t.data() + t.size() || !(ratio >= 0.0 && ratio <= 1.0)) {
      return bad(v->first, v->second, "not a ratio from 0 to 1");
    }
  }
  if (sampler == "always_on" || sampler == "parentbased_always_on") {
    o.sampler.ratio = 1.0;
  } else if (sampler == "always_off" || sampler == "parentbased_always_off") {
    o.sampler.ratio = 0.0;
  } else if (sampler == "traceidratio" || sampler == "parentbased_traceidratio") {
    o.sampler.ratio = ratio;
  } else {
    return bad("OTEL_TRACES_SAMPLER", sampler,
               "not a sampler: always_on, always_off, traceidratio, parentbased_always_on, "
               "parentbased_always_off or parentbased_traceidratio");
  }
  o.sampler.parent_based = sampler.starts_with("parentbased_");
  // The resource: OTEL_RESOURCE_ATTRIBUTES, with OTEL_SERVICE_NAME over its service.name.
  std::string service_name(default_service_name);
  if (auto v = env.get("OTEL_RESOURCE_ATTRIBUTES")) {
    auto attributes = key_values(v->first, v->second);
    if (!attributes) return std::unexpected(attributes.error());
    for (auto& [k, value] : *attributes) {
      if (k == "service.name") {
        service_name = std::move(value);
      } else {
        o.resource.emplace_back(std::move(k), std::move(value));
      }
    }
  }
  if (auto v = env.get("OTEL_SERVICE_NAME")) service_name = std::string(trim(v->second));
  o.resource.insert(o.resource.begin(), {"service.name", std::move(service_name)});
  // The batch span processor's settings.
  auto number = [&](const char* name, std::uint64_t min,
                    std::uint64_t max) -> Result<std::optional<std::uint64_t>> {
    auto v = env.get(name);
    if (!v) return std::nullopt;
    auto n = whole_number(v->first, v->second, min, max);
    if (!n) return std::unexpected(n.error());
    return *n;
  };
  auto delay = number("OTEL_BSP_SCHEDULE_DELAY", 0, kMaxMillis);
  if (!delay) return std::unexpected(delay.error());
  if (*delay) o.schedule_delay = std::chrono::milliseconds(**delay);
  auto timeout = number("OTEL_BSP_EXPORT_TIMEOUT", 1, kMaxMillis);
  if (!timeout) return std::unexpected(timeout.error());
  if (*timeout) o.export_timeout = std::chrono::milliseconds(**timeout);
  auto queue = number("OTEL_BSP_MAX_QUEUE_SIZE", 1, kMaxSpans);
  if (!queue) return std::unexpected(queue.error());
  if (*queue) o.max_queue_size = **queue;
  auto batch = number("OTEL_BSP_MAX_EXPORT_BATCH_SIZE", 1, kMaxSpans);
  if (!batch) return std::unexpected(batch.error());
  if (*batch) o.max_export_batch_size = **batch;
  if (o.max_export_batch_size > o.max_queue_size) {
    return make_error(ErrorCode::kInvalidArgument,
                      "OTEL_BSP_MAX_EXPORT_BATCH_SIZE=" + std::to_string(o.max_export_batch_size) +
                          " is more than OTEL_BSP_MAX_QUEUE_SIZE=" +
                          std::to_string(o.max_queue_size) + ": a batch must fit in the queue");
  }
  return o;
}

std::unique_ptr<Tracer> tracer_from_env(
    std::string_view default_service_name, Registry* registry,
    const std::vector<std::pair<std::string, std::string>>& over) {
  auto options = tracer_options_from_env(
      [&over](const char* name) -> const char* {
        for (const auto& [k, v] : over) {
          if (k == name) return v.c_str();
        }
        // The file's tracing replaces where spans go, how, and which: the endpoints, protocol,
        // compression, exporter and sampler; the headers when it has some (else a token given
        // to the pod from a Secret still goes with them).
        const std::string_view n(name);
        const bool file_headers = std::any_of(over.begin(), over.end(), [](const auto& kv) {
          return kv.first == "OTEL_EXPORTER_OTLP_HEADERS";
        });
        const bool replaced =
            n.starts_with("OTEL_TRACES_") || n == "OTEL_SDK_DISABLED" ||
            (n.starts_with("OTEL_EXPORTER_OTLP_") &&
             (n.ends_with("ENDPOINT") || n.ends_with("PROTOCOL") || n.ends_with("COMPRESSION") ||
              (n.ends_with("HEADERS") && file_headers)));
        if (!over.empty() && replaced) return nullptr;
        return std::getenv(name);
      },
      default_service_name);
  if (!options) {
    spdlog::warn("tracing is off: {}", options.error().message);
    return nullptr;
  }
  if (!*options) return nullptr;
  const TracerOptions& o = **options;
  auto tracer = Tracer::create(**options, registry);
  if (!tracer) {
    spdlog::warn("tracing is off: {}", tracer.error().message);
    return nullptr;
  }
  spdlog::info("tracing: spans of {} to {}://{}{}, {} of new traces{}", o.resource.front().second,
               o.https ? "https" : "http", url_authority(o.host, o.port), o.path, o.sampler.ratio,
               o.sampler.parent_based ? ", a caller's decision followed" : "");
  return std::move(*tracer);
}

Result<std::unique_ptr<Tracer>> Tracer::create(TracerOptions options, Registry* registry) {
  if (options.host.empty()) return make_error(ErrorCode::kInvalidArgument, "tracing: no host");
  if (options.max_queue_size == 0 || options.max_export_batch_size == 0 ||
      options.max_export_batch_size > options.max_queue_size) {
    return make_error(ErrorCode::kInvalidArgument,
                      "tracing: the queue and the batch must hold a span, and the batch fit in "
                      "the queue");
  }
  if (!(options.sampler.ratio >= 0.0 && options.sampler.ratio <= 1.0)) {
    return make_error(ErrorCode::kInvalidArgument, "tracing: the ratio must be from 0 to 1");
  }
  if (options.path.empty() || options.path.front() != '/') options.path.insert(0, "/");
  std::shared_ptr<const http::ClientTlsContext> tls;
  if (options.https) {
    auto created = http::ClientTlsContext::create(options.ca_file);
    if (!created) {
      return make_error(created.error().code,
                        "tracing: the CAs to verify the receiver by: " + created.error().message);
    }
    tls = std::move(*created);
  }
  return std::unique_ptr<Tracer>(new Tracer(std::move(options), registry, std::move(tls)));
}

Tracer::Tracer(TracerOptions options, Registry* registry,
               std::shared_ptr<const http::ClientTlsContext> tls)
    : options_(std::move(options)) {
  constexpr double kRange = 72057594037927936.0;  // 2^56
  ratio_threshold_ = options_.sampler.ratio >= 1.0
                         ? std::uint64_t{1} << 56
                         : static_cast<std::uint64_t>(std::floor(options_.sampler.ratio * kRange));
  http::ClientOptions client_options;
  client_options.connect_timeout =
      std::min<std::chrono::milliseconds>(options_.export_timeout, std::chrono::milliseconds(2000));
  client_options.max_idle_per_host = 1;
  client_options.max_response_body_bytes = 1024 * 1024;
  client_options.tls = std::move(tls);
  client_ = std::make_unique<http::Client>(client_options);
  if (registry != nullptr) {
    exported_ =
        &registry->counter("prescale_tracing_spans_exported_total", "Spans the OTLP receiver took.")
             .with();
    auto& dropped = registry->counter(
        "prescale_tracing_spans_dropped_total",
        "Spans not exported: queue_full (recorded faster than sent), export_failed (the receiver "
        "could not be reached or refused the batch), rejected (the receiver refused them).",
        {"reason"});
    dropped_queue_full_ = &dropped.with({"queue_full"});
    dropped_export_failed_ = &dropped.with({"export_failed"});
    dropped_rejected_ = &dropped.with({"rejected"});
  }
  const TraceId seed = new_trace(false).trace_id;
  for (std::size_t i = 0; i < 8; ++i) jitter_state_ = jitter_state_ << 8 | seed[i];
  if (options_.start_thread) thread_ = std::thread([this] { run(); });
}

Tracer::~Tracer() {
  Clock& clock = *options_.clock;
  const Clock::TimePoint deadline = clock.now() + options_.export_timeout;
  {
    std::lock_guard lock(mu_);
    stopping_ = true;
  }
  if (thread_.joinable()) thread_.join();
  drain(deadline, /*yield_to_stop=*/false);  // what is left, one attempt a batch (stopping_)
}

bool Tracer::sample_new(const TraceId& trace_id) const {
  std::uint64_t low = 0;
  for (std::size_t i = 9; i < trace_id.size(); ++i) low = low << 8 | trace_id[i];
  return low < ratio_threshold_;
}

bool Tracer::sample_child(const TraceId& trace_id, bool parent_sampled) const {
  return options_.sampler.parent_based ? parent_sampled : sample_new(trace_id);
}

std::optional<ServerSpan> Tracer::server_span(UpstreamTrace& t, std::string_view method,
                                              std::string_view route) {
  const bool sampled = t.continued ? sample_child(t.context.trace_id, t.context.sampled())
                                   : sample_new(t.context.trace_id);
  if (sampled != t.context.sampled()) {
    t.context.flags = static_cast<std::uint8_t>(sampled ? t.context.flags | kTraceFlagSampled
                                                        : t.context.flags & ~kTraceFlagSampled);
    t.traceparent = format_traceparent(t.context);
  }
  if (!sampled) return std::nullopt;
  std::string name;
  name.reserve(method.size() + 1 + route.size());
  name.append(method).append(" ").append(route);
  return ServerSpan(*this, t.context, t.parent_span_id, t.continued, t.tracestate, std::move(name));
}

void Tracer::record(SpanRecord span) {
  {
    std::lock_guard lock(mu_);
    if (queue_.size() < options_.max_queue_size) {
      if (queue_.empty()) oldest_ = options_.clock->now();
      queue_.push_back(std::move(span));
      return;
    }
  }
  dropped(dropped_queue_full_, 1, [this] {
    return "the queue of " + std::to_string(options_.max_queue_size) +
           " spans is full: spans are recorded faster than the receiver takes them";
  });
}

void Tracer::flush() { drain(std::nullopt, /*yield_to_stop=*/false); }

void Tracer::drain(std::optional<Clock::TimePoint> deadline, bool yield_to_stop) {
  Clock& clock = *options_.clock;
  for (;;) {
    std::vector<SpanRecord> batch;
    {
      std::lock_guard lock(mu_);
      if (queue_.empty() || (yield_to_stop && stopping_)) return;
      if (deadline && clock.now() >= *deadline) {
        const std::size_t left = queue_.size();
        queue_.clear();
        oldest_.reset();
        dropped(dropped_export_failed_, left,
                [] { return std::string("the tracer stopped with no time left to send them"); });
        return;
      }
      const std::size_t n = std::min(queue_.size(), options_.max_export_batch_size);
      batch.reserve(n);
      for (std::size_t i = 0; i < n; ++i) {
        batch.push_back(std::move(queue_.front()));
        queue_.pop_front();
      }
      oldest_ = queue_.empty() ? std::nullopt : std::optional(clock.now());
    }
    send(std::move(batch), deadline ? *deadline : clock.now() + options_.export_timeout);
  }
}

void Tracer::run() {
  Clock& clock = *options_.clock;
  for (;;) {
    clock.sleep_until(clock.now() + kLook);
    bool due = false;
    {
      std::lock_guard lock(mu_);
      if (stopping_) return;
      due = queue_.size() >= options_.max_export_batch_size ||
            (oldest_ && clock.now() - *oldest_ >= options_.schedule_delay);
    }
    if (due) drain(std::nullopt, /*yield_to_stop=*/true);  // a stop leaves the rest to ~Tracer
  }
}

bool Tracer::send(std::vector<SpanRecord> batch, Clock::TimePoint deadline) {
  std::lock_guard send_lock(send_mu_);
  const std::size_t n = batch.size();
  http::Request request;
  request.method = http::Method::kPost;
  request.method_name = "POST";
  request.target = options_.path;
  request.headers.set("content-type", "application/x-protobuf");
  for (const auto& [k, v] : options_.headers) request.headers.set(k, v);
  request.body = encode_export_request(options_.resource, kScopeName, "", batch);
  batch.clear();

  Clock& clock = *options_.clock;
  auto stopping = [this] {
    std::lock_guard lock(mu_);
    return stopping_;
  };
  std::chrono::milliseconds backoff = kFirstBackoff;
  std::string why = "no answer within the export timeout";
  for (;;) {
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - clock.now());
    if (left <= std::chrono::milliseconds(0)) break;
    auto response = client_->request(options_.host, options_.port, request, left);
    bool retry = false;
    std::optional<std::chrono::milliseconds> retry_after;
    if (!response) {
      why = "could not send spans to " + url_authority(options_.host, options_.port) + ": " +
            response.error().message;
      retry = true;
    } else if (response->status >= 200 && response->status < 300) {
      const ExportPartialSuccess partial = read_export_response(response->body);
      const auto rejected = static_cast<std::size_t>(
          std::clamp<std::int64_t>(partial.rejected_spans, 0, static_cast<std::int64_t>(n)));
      if (exported_ != nullptr) exported_->inc(static_cast<double>(n - rejected));
      if (rejected > 0) {
        dropped(dropped_rejected_, rejected, [&] {
          return "the receiver refused " + std::to_string(rejected) + " of " + std::to_string(n) +
                 " spans" +
                 (partial.error_message.empty() ? std::string() : ": " + partial.error_message);
        });
      } else {
        warned_.store(false, std::memory_order_relaxed);
      }
      return true;
    } else {
      const int s = response->status;
      std::string message = read_rpc_status_message(response->body);
      why = "the receiver answered " + std::to_string(s) + " to " + options_.path +
            (message.empty() ? std::string() : ": " + message);
      retry = s == 429 || s == 502 || s == 503 || s == 504;
      // Retry-After in seconds: how long the receiver asks to wait, this time.
      if (auto after = response->headers.get("retry-after"); retry && after) {
        int seconds = 0;
        const auto [end, ec] =
            std::from_chars(after->data(), after->data() + after->size(), seconds);
        if (ec == std::errc() && end == after->data() + after->size() && seconds >= 0) {
          retry_after = std::chrono::milliseconds(seconds * 1000LL);
        }
      }
    }
    if (!retry || stopping()) break;
    // Up to 20 % less than the back-off, so that replicas that failed together retry apart; at
    // least the receiver's Retry-After.
    std::chrono::milliseconds wait =
        backoff - std::chrono::milliseconds(static_cast<std::int64_t>(
                      static_cast<double>(backoff.count()) * 0.2 * jitter_()));
    if (retry_after) wait = std::max(wait, *retry_after);
    backoff *= 2;
    if (clock.now() + wait >= deadline) break;
    // Woken within kLook by a stop.
    for (const Clock::TimePoint until = clock.now() + wait; clock.now() < until && !stopping();) {
      clock.sleep_until(std::min(until, clock.now() + kLook));
    }
    if (stopping()) break;
  }
  dropped(dropped_export_failed_, n, [&] { return why; });
  return false;
}

double Tracer::jitter_() {
  return static_cast<double>(splitmix64_next(jitter_state_) >> 11) * 0x1.0p-53;
}

void Tracer::dropped(Counter* counter, std::size_t n, const std::function<std::string()>& why) {
  if (counter != nullptr) counter->inc(static_cast<double>(n));
  if (!warned_.exchange(true, std::memory_order_relaxed)) {
    spdlog::warn("tracing: {} span{} dropped: {}", n, n == 1 ? "" : "s", why());
  }
}

ServerSpan::ServerSpan(Tracer& tracer, const TraceContext& context, const SpanId& parent,
                       bool parent_remote, std::string_view trace_state, std::string name)
    : tracer_(&tracer), started_(tracer.clock().now()) {
  span_.context = context;
  span_.parent_span_id = parent;
  span_.parent_remote = parent_remote;
  span_.trace_state.assign(trace_state);
  span_.name = std::move(name);
  span_.kind = SpanKind::kServer;
  span_.start_unix_nano = static_cast<std::uint64_t>(
      std::max<std::int64_t>(0, tracer.clock().wall_now().time_since_epoch().count()));
  span_.attributes.reserve(8);
}

void ServerSpan::attribute(std::string key, SpanAttribute::Value value) {
  span_.attributes.push_back({std::move(key), std::move(value)});
}

void ServerSpan::end(int http_status, std::string_view error) {
  if (ended_) return;
  ended_ = true;
  // What the server answers for a status it cannot send (http/server.h).
  if (http_status < 100 || http_status > 999) http_status = 500;
  const Clock::Duration took = tracer_->clock().now() - started_;
  span_.end_unix_nano =
      span_.start_unix_nano + static_cast<std::uint64_t>(std::max<std::int64_t>(0, took.count()));
  span_.attributes.push_back({"http.response.status_code", std::int64_t{http_status}});
  if (!error.empty()) {
    span_.attributes.push_back({"error.type", std::string(error)});
    span_.status = SpanStatus::kError;
    span_.status_message = std::string(error);
  } else if (http_status >= 500) {
    span_.status = SpanStatus::kError;
    span_.status_message = "HTTP " + std::to_string(http_status);
  }
  tracer_->record(std::move(span_));
}

namespace {

// A span ended by the Responder that answers its request, or at the latest when the last copy
// of that Responder goes: a handler that never answered (the server answers 500).
// A streamed answer's span is ended by its body's end; a body dropped unended (the server stopped
// before it told the stream its client was gone) ends it with the answer's status, as gone.
struct PendingSpan {
  explicit PendingSpan(ServerSpan s) : span(std::move(s)) {}
  ~PendingSpan() {
    if (streamed_status != 0) span.attribute("prescale.body_end", std::string("client_gone"));
    span.end(streamed_status != 0 ? streamed_status : 500);
  }
  PendingSpan(const PendingSpan&) = delete;
  PendingSpan& operator=(const PendingSpan&) = delete;
  ServerSpan span;
  int streamed_status = 0;  // the answer's, once its body streams
};

}  // namespace

http::Responder ending(ServerSpan span, http::Responder respond) {
  return http::Responder([pending = std::make_shared<PendingSpan>(std::move(span)),
                          inner = std::move(respond)](http::Response r) {
    if (r.stream == nullptr) {
      pending->span.end(r.status);
    } else {
      // The span covers the whole body, to its end; the stream calls back once it is over
      // (at once when it is already).
      pending->streamed_status = r.status;
      r.stream->set_on_over([pending, status = r.status](http::BodyEnd how) {
        pending->streamed_status = 0;  // ended here, not by the destructor
        ServerSpan& over = pending->span;
        switch (how) {
          case http::BodyEnd::kEnded:
            over.attribute("prescale.body_end", std::string("ended"));
            over.end(status);
            break;
          case http::BodyEnd::kAborted:
            over.attribute("prescale.body_end", std::string("aborted"));
            over.end(status, "body_aborted");
            break;
          case http::BodyEnd::kClientGone:
            over.attribute("prescale.body_end", std::string("client_gone"));
            over.end(status);
            break;
        }
      });
    }
    inner(std::move(r));
  });
}

UpstreamTrace continue_trace(const http::Headers& headers, std::string& joined) {
  joined.clear();
  std::optional<std::string_view> parent;
  bool several_parents = false;
  std::optional<std::string_view> state;
  for (const auto& [name, value] : headers.fields()) {
    if (equals_ignoring_case(name, "traceparent")) {
      several_parents = several_parents || parent.has_value();
      parent = value;
      continue;
    }
    if (!equals_ignoring_case(name, "tracestate")) continue;
    if (!state) {
      state = value;
      continue;
    }
    if (joined.empty()) joined.assign(*state);
    joined += ',';
    joined += value;
    state = joined;
  }
  // Two traceparent fields name two parents: neither is to be trusted, and a new trace starts
  // (the W3C trace-context test suite's test_traceparent_duplicated).
  if (several_parents) parent.reset();
  return propagate(parent, state, /*sample_new_trace=*/false);
}

void set_trace_headers(http::Headers& headers, UpstreamTrace t) {
  std::string tracestate(t.tracestate);  // a copy: it may point into `headers`
  headers.set("traceparent", std::move(t.traceparent));
  if (tracestate.empty()) {
    headers.remove("tracestate");
  } else {
    headers.set("tracestate", std::move(tracestate));
  }
}

}  // namespace prescale::telemetry
