// StaticPolicy ("static"): a fixed replica count per service, sized once for the trace's peak
// load: ceil(peak_rps × headroom / capacity_rps), clamped to [min, max]. It is the "provision
// for the peak and never scale" baseline: it meets the SLO whenever the peak estimate holds and
// costs the most.
//
// Thread safety: none; a Policy is driven by one controller thread.
#pragma once

#include <functional>
#include <map>
#include <string>
#include <string_view>
#include <vector>

#include "core/clock.h"
#include "scaling/policy.h"

namespace prescale::scaling {

class StaticPolicy final : public Policy {
 public:
  // `peak_rps`: per service name, the highest load the trace sends it (req/s). `headroom`
  // multiplies it (1.0 = exactly the peak; 1.2 = 20 % spare). A service without a peak gets its
  // min replicas.
  explicit StaticPolicy(std::map<std::string, double, std::less<>> peak_rps, double headroom = 1.0);

  std::string_view name() const override { return "static"; }
  // It decides once, at its first decide(); the period only says how often it is asked again.
  Clock::Duration period() const override { return std::chrono::hours(1); }
  void init(const std::vector<ServiceSpec>& services) override;
  // The first call returns a decision per service; later calls return an empty plan, until a
  // service's spec changes (the next call decides again).
  Plan decide(const Snapshot& snapshot, Clock::TimePoint now) override;
  void respec(const ServiceSpec& spec) override;
  // A new service is sized at the next call (its peak, if the trace gave one); a removed one is
  // no longer decided on.
  Result<void> add_service(const ServiceSpec& spec) override;
  void remove_service(std::string_view service) override;

  // The replica count sized for `spec` (what the first decide() asks for).
  int replicas_for(const ServiceSpec& spec) const;

 private:
  std::map<std::string, double, std::less<>> peak_rps_;
  double headroom_;
  std::vector<ServiceSpec> services_;
  bool decided_ = false;
};

}  // namespace prescale::scaling
