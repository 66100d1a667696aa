#include "scaling/static_policy.h"

#include <algorithm>
#include <array>
#include <cmath>
#include <cstdio>
#include <limits>
#include <utility>

namespace prescale::scaling {
namespace {

std::string num(double v) {
  std::array<char, 32> buf{};
  std::snprintf(buf.data(), buf.size(), "%g", v);
  return buf.data();
}

}  // namespace

StaticPolicy::StaticPolicy(std::map<std::string, double, std::less<>> peak_rps, double headroom)
    : peak_rps_(std::move(peak_rps)), headroom_(headroom) {}

void StaticPolicy::init(const std::vector<ServiceSpec>& services) {
  services_ = services;
  decided_ = false;
}

void StaticPolicy::respec(const ServiceSpec& spec) {
  for (ServiceSpec& s : services_) {
    if (s.name != spec.name) continue;
    s = spec;
    decided_ = false;  // sized again, within the new bounds, by the new capacity
  }
}

Result<void> StaticPolicy::add_service(const ServiceSpec& spec) {
  for (const ServiceSpec& s : services_) {
    if (s.name == spec.name) {
      return make_error(ErrorCode::kInvalidArgument,
                        spec.name + ": the static policy has it already");
    }
  }
  services_.push_back(spec);
  decided_ = false;
  return {};
}

void StaticPolicy::remove_service(std::string_view service) {
  std::erase_if(services_, [&](const ServiceSpec& s) { return s.name == service; });
}

int StaticPolicy::replicas_for(const ServiceSpec& spec) const {
  auto it = peak_rps_.find(spec.name);
  int n = 0;
  if (it != peak_rps_.end() && spec.capacity_rps > 0) {
    // ceil() that does not turn 300.00000000000006 / 100 into 4.
    const double x = std::ceil(it->second * headroom_ / spec.capacity_rps - 1e-9);
    n = x >= static_cast<double>(std::numeric_limits<int>::max())
            ? std::numeric_limits<int>::max()
            : static_cast<int>(std::max(0.0, x));
  }
  return std::clamp(n, spec.min_replicas, std::max(spec.min_replicas, spec.max_replicas));
}

Plan StaticPolicy::decide(const Snapshot& snapshot, Clock::TimePoint now) {
  (void)snapshot;
  Plan plan;
  plan.time = now;
  if (decided_) return plan;
  decided_ = true;
  for (const auto& spec : services_) {
    const int n = replicas_for(spec);
    std::string reason;
    auto it = peak_rps_.find(spec.name);
    if (it == peak_rps_.end()) {
      reason = "static: no peak given, min replicas " + std::to_string(n);
    } else {
      reason = "static: peak " + num(it->second) + " rps x headroom " + num(headroom_) + " / " +
               num(spec.capacity_rps) + " rps per replica = " + std::to_string(n);
      const double raw = it->second * headroom_ / spec.capacity_rps;
      if (n > std::ceil(raw - 1e-9)) reason += " (min replicas)";
      if (n < std::ceil(raw - 1e-9)) reason += " (clamped to max)";
    }
    plan.decisions.push_back(Decision{spec.name, n, std::move(reason)});
  }
  return plan;
}

}  // namespace prescale::scaling
