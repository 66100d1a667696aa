#include "admission_feed.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <cmath>
#include <nlohmann/json.hpp>

#include "http/client.h"
#include "http/json.h"

namespace prescale {

namespace {

using Json = nlohmann::json;

// `j`'s field `key` as an integer from 1 to kMaxAdmissionPerReplica; `where` names it in the
// message.
Result<int> count_at(const Json& j, const char* key, const std::string& where) {
  const auto it = j.find(key);
  if (it == j.end()) {
    return make_error(ErrorCode::kInvalidArgument, where + "." + key + ": missing");
  }
  if (!it->is_number_integer() || it->get<std::int64_t>() < 1 ||
      it->get<std::int64_t>() > kMaxAdmissionPerReplica) {
    return make_error(ErrorCode::kInvalidArgument,
                      where + "." + key + ": expected an integer from 1 to " +
                          std::to_string(kMaxAdmissionPerReplica) + ", got " + it->dump());
  }
  return static_cast<int>(it->get<std::int64_t>());
}

}  // namespace

AdmissionLimits share_admission(const LearnedAdmission& admission,
                                const std::vector<ServiceConfig>& services, int gateways) {
  AdmissionLimits out;
  out.gateways = std::max(gateways, 1);
  for (const ServiceConfig& s : services) {
    const int n = std::min(admission.per_replica(s.name), kMaxAdmissionPerReplica);
    if (n <= 0) continue;
    // Rounded up, less a hair: an even share of 12 among 3 is 4, not 5 for 12 × (1/3).
    const int per_gateway =
        static_cast<int>(std::ceil(n / static_cast<double>(out.gateways) - 1e-9));
    out.services[s.name] = {.per_replica = n,
                            .per_gateway = std::clamp(per_gateway, 1, n),
                            .share = 1.0 / out.gateways,
                            .capacity_rps = admission.capacity_rps(s.name),
                            .queue_limit_ms = s.effective_queue_limit().count()};
  }
  return out;
}

std::vector<int> apportion(int n, std::vector<double>& shares) {
  const size_t k = shares.size();
  std::vector<int> parts(k, 0);
  if (k == 0) return parts;
  const double even = 1.0 / static_cast<double>(k);
  double total = 0;
  for (double& s : shares) {
    s = k == 1 ? 1.0 : std::clamp(std::isfinite(s) ? s : 0.0, even / 2, 1.0);
    total += s;
  }
  // The number the parts add up to: n where the shares add up to 1, more where the floors raised
  // them; each part its share's whole requests, and the rest, one each, to the largest remainders
  // (Hamilton's apportionment).
  const int target = static_cast<int>(std::ceil(n * total - 1e-9));
  std::vector<std::pair<double, size_t>> remainders;
  int given = 0;
  for (size_t i = 0; i < k; ++i) {
    const double exact = n * shares[i];
    parts[i] = static_cast<int>(std::floor(exact + 1e-9));
    given += parts[i];
    remainders.emplace_back(exact - parts[i], i);
  }
  std::stable_sort(remainders.begin(), remainders.end(),
                   [](const auto& a, const auto& b) { return a.first > b.first; });
  for (size_t j = 0; given < target && j < k; ++j, ++given) ++parts[remainders[j].second];
  for (int& p : parts) p = std::clamp(p, 1, std::max(n, 1));
  return parts;
}

std::string to_json(const AdmissionLimits& limits) {
  Json services = Json::object();
  for (const auto& [name, s] : limits.services) {
    services[name] = {{"per_replica", s.per_replica},
                      {"per_gateway", s.per_gateway},
                      {"share", s.share},
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
    if (const auto f = entry.find("share"); f != entry.end() && f->is_number()) {
      s.share = f->get<double>();
    }
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

void AdmissionBoard::publish(const LearnedAdmission& admission,
                             const std::vector<ServiceConfig>& services,
                             std::optional<std::vector<std::string>> gateways,
                             const SharesOf& shares_of) {
  if (!gateways) {
    std::lock_guard lock(mu_);
    if (!gateways_) return;
    gateways = gateways_;
  } else {
    shares_.clear();
    for (const ServiceConfig& s : services) {
      if (admission.per_replica(s.name) > 0) shares_[s.name] = shares_of(s.name);
    }
  }
  const int k = static_cast<int>(gateways->size());
  const AdmissionLimits even_limits = share_admission(admission, services, k);
  std::map<std::string, AdmissionLimits, std::less<>> limits;
  for (const std::string& g : *gateways) limits[g] = even_limits;
  for (const auto& [service, even_part] : even_limits.services) {
    const auto of = shares_.find(service);
    // No share known (none carried the service lately): an even share each.
    if (of == shares_.end() || of->second.empty() || k < 2) continue;
    std::vector<double> fractions;
    for (const std::string& g : *gateways) {
      const auto it = of->second.find(g);
      fractions.push_back(it == of->second.end() ? 0.0 : it->second);  // not read yet
    }
    const std::vector<int> parts = apportion(even_part.per_replica, fractions);
    for (size_t i = 0; i < gateways->size(); ++i) {
      AdmissionLimits::Service& mine = limits[(*gateways)[i]].services[service];
      mine.per_gateway = parts[i];
      mine.share = fractions[i];
    }
  }
  std::string even = to_json(even_limits);
  std::map<std::string, std::string, std::less<>> by_gateway;
  for (const auto& [g, l] : limits) by_gateway[g] = to_json(l);
  std::lock_guard lock(mu_);
  gateways_ = std::move(gateways);
  even_ = std::move(even);
  by_gateway_ = std::move(by_gateway);
}

std::optional<std::string> AdmissionBoard::document(std::string_view gateway) const {
  std::lock_guard lock(mu_);
  if (!gateways_) return std::nullopt;
  const auto it = by_gateway_.find(gateway);
  return it == by_gateway_.end() ? even_ : it->second;
}

AdmissionFeed::AdmissionFeed(HttpUrl url, std::chrono::milliseconds timeout)
    : url_(std::move(url)),
      timeout_(timeout),
      client_(std::make_unique<http::Client>(http::ClientOptions{.threads = 1})) {
  if (url_.path.empty()) url_.path = "/";
  url_text_ = "http://" + host_port(url_.host, url_.port) + url_.path;
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
  // A service no longer listed (its queue_limit now 0): the gateway's own number again.
  std::vector<std::string> gone;
  for (const auto& [name, n] : in_force_) {
    if (!limits->services.contains(name)) gone.push_back(name);
  }
  for (const std::string& name : gone) {
    if (auto applied = apply(name, 0); applied || applied.error().code == ErrorCode::kNotFound) {
      in_force_.erase(name);
      said_.erase(name);
      spdlog::info("{}: no admission limit from the controller any more; the file's applies", name);
    }
  }
  for (const auto& [name, s] : limits->services) {
    if (per_replica(name) == s.per_gateway) continue;
    if (apply_one(apply, name, s.per_gateway)) {
      // Said when the service's number or the gateways change; a share that moves, in debug.
      const std::pair<int, int> basis{s.per_replica, limits->gateways};
      const bool news = said_[name] != basis;
      said_[name] = basis;
      spdlog::log(news ? spdlog::level::info : spdlog::level::debug,
                  "{}: admission limit {} requests in flight per replica, from the controller ({} "
                  "for all {} gateways, {:.0f} % of the requests here; capacity {:.1f} req/s)",
                  name, s.per_gateway, s.per_replica, limits->gateways, 100 * s.share,
                  s.capacity_rps);
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
