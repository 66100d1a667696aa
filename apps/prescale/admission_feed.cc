#include "admission_feed.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <nlohmann/json.hpp>

#include "http/client.h"
#include "http/json.h"

namespace prescale {

namespace {

using Json = nlohmann::json;

constexpr std::int64_t kMaxPerReplica = 1'000'000;

// `j`'s field `key` as an integer from 1 to kMaxPerReplica; `where` names it in the message.
Result<int> count_at(const Json& j, const char* key, const std::string& where) {
  const auto it = j.find(key);
  if (it == j.end()) {
    return make_error(ErrorCode::kInvalidArgument, where + "." + key + ": missing");
  }
  if (!it->is_number_integer() || it->get<std::int64_t>() < 1 ||
      it->get<std::int64_t>() > kMaxPerReplica) {
    return make_error(ErrorCode::kInvalidArgument,
                      where + "." + key + ": expected an integer from 1 to " +
                          std::to_string(kMaxPerReplica) + ", got " + it->dump());
  }
  return static_cast<int>(it->get<std::int64_t>());
}

}  // namespace

AdmissionLimits share_admission(const LearnedAdmission& admission,
                                const std::vector<ServiceConfig>& services, int gateways) {
  AdmissionLimits out;
  out.gateways = std::max(gateways, 1);
  for (const ServiceConfig& s : services) {
    const int n = admission.per_replica(s.name);
    if (n <= 0) continue;
    out.services[s.name] = {.per_replica = n,
                            .per_gateway = std::max(1, (n + out.gateways - 1) / out.gateways),
                            .capacity_rps = admission.capacity_rps(s.name),
                            .queue_limit_ms = s.effective_queue_limit().count()};
  }
  return out;
}

std::string to_json(const AdmissionLimits& limits) {
  Json services = Json::object();
  for (const auto& [name, s] : limits.services) {
    services[name] = {{"per_replica", s.per_replica},
                      {"per_gateway", s.per_gateway},
                      {"capacity_rps", s.capacity_rps},
                      {"queue_limit_ms", s.queue_limit_ms}};
  }
  return Json{{"gateways", limits.gateways}, {"services", std::move(services)}}.dump();
}

Result<AdmissionLimits> parse_admission_limits(std::string_view body) {
  auto parsed = http::parse_json(body);
  if (!parsed) return std::unexpected(parsed.error());
  const Json& j = *parsed;
  if (!j.is_object()) {
    return make_error(ErrorCode::kInvalidArgument, "expected a JSON object, got " + j.dump());
  }
  AdmissionLimits out;
  auto gateways = count_at(j, "gateways", "admission limits");
  if (!gateways) return std::unexpected(gateways.error());
  out.gateways = *gateways;
  const auto services = j.find("services");
  if (services == j.end() || !services->is_object()) {
    return make_error(ErrorCode::kInvalidArgument, "services: expected an object");
  }
  for (const auto& [name, entry] : services->items()) {
    const std::string where = "services." + name;
    if (!entry.is_object()) {
      return make_error(ErrorCode::kInvalidArgument, where + ": expected an object");
    }
    AdmissionLimits::Service s;
    auto per_gateway = count_at(entry, "per_gateway", where);
    if (!per_gateway) return std::unexpected(per_gateway.error());
    s.per_gateway = *per_gateway;
    auto per_replica = count_at(entry, "per_replica", where);
    if (!per_replica) return std::unexpected(per_replica.error());
    s.per_replica = *per_replica;
    if (const auto c = entry.find("capacity_rps"); c != entry.end() && c->is_number()) {
      s.capacity_rps = c->get<double>();
    }
    if (const auto q = entry.find("queue_limit_ms"); q != entry.end() && q->is_number_integer()) {
      s.queue_limit_ms = q->get<std::int64_t>();
    }
    out.services.emplace(name, s);
  }
  return out;
}

AdmissionFeed::AdmissionFeed(HttpUrl url, std::chrono::milliseconds timeout)
    : url_(std::move(url)),
      url_text_("http://" + host_port(url_.host, url_.port) + url_.path),
      timeout_(timeout),
      client_(std::make_unique<http::Client>(http::ClientOptions{.threads = 1})) {
  if (url_.path.empty()) url_.path = "/";
}

AdmissionFeed::~AdmissionFeed() = default;

bool AdmissionFeed::poll(const Apply& apply) {
  http::Request req;
  req.method = http::Method::kGet;
  req.path = url_.path;
  req.headers.set("Accept", "application/json");
  auto fail = [&](const std::string& why) {
    if (why != problem_) {
      spdlog::warn("admission limits from {}: {}; the limits in force stay", url_text_, why);
    }
    problem_ = why;
    return false;
  };
  auto response = client_->request(url_.host, url_.port, std::move(req), timeout_);
  if (!response) return fail(response.error().message);
  if (response->status != 200) {
    std::string body = response->body.substr(0, 200);
    return fail("HTTP " + std::to_string(response->status) + (body.empty() ? "" : ": " + body));
  }
  auto limits = parse_admission_limits(response->body);
  if (!limits) return fail(limits.error().message);
  if (!problem_.empty()) spdlog::info("admission limits from {} are read again", url_text_);
  problem_.clear();
  for (const auto& [name, s] : limits->services) {
    if (per_replica(name) == s.per_gateway) continue;
    if (apply_one(apply, name, s.per_gateway)) {
      spdlog::info(
          "{}: admission limit {} requests in flight per replica, from the controller ({} for "
          "all gateways, shared among {}; capacity {:.1f} req/s)",
          name, s.per_gateway, s.per_replica, limits->gateways, s.capacity_rps);
    }
  }
  return true;
}

bool AdmissionFeed::apply_one(const Apply& apply, const std::string& service, int n) {
  if (auto applied = apply(service, n); !applied) {
    if (refused_said_.insert(service).second) {
      spdlog::warn("admission limits from {}: service {}: {}", url_text_, service,
                   applied.error().message);
    }
    return false;  // not in force: tried again at the next poll
  }
  refused_said_.erase(service);
  in_force_[service] = n;
  return true;
}

void AdmissionFeed::reapply(const Apply& apply) {
  const std::map<std::string, int, std::less<>> read = in_force_;
  for (const auto& [service, n] : read) apply_one(apply, service, n);
}

int AdmissionFeed::per_replica(std::string_view service) const {
  const auto it = in_force_.find(service);
  return it == in_force_.end() ? 0 : it->second;
}

}  // namespace prescale
