#include "dashboard_feed.h"

#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "control/controller.h"
#include "core/clock.h"
#include "dashboard/dashboard_model.h"
#include "telemetry/registry.h"
#include "worlds/local/local_world.h"
#include "worlds/local/test_util.h"

namespace prescale {
namespace {

using namespace std::chrono_literals;

// Observes every second, as prescale, kpa and aws do; decides every 5 s and never scales.
class EverySecond final : public scaling::Policy {
 public:
  std::string_view name() const override { return "every-second"; }
  Clock::Duration period() const override { return 5s; }
  Clock::Duration observe_interval() const override { return 1s; }
  void init(const std::vector<scaling::ServiceSpec>&) override {}
  scaling::Plan decide(const scaling::Snapshot&, Clock::TimePoint now) override {
    return {now, {}};
  }
};

// The model keeps 2880 points a service, "4 h of 5 s points" (docs/dashboard.md): a policy that
// observes every second adds a point every 5 s of the controller's time, not every tick. At
// --time-scale 1 a real second is a controller second, so the once-a-real-second limit alone would
// keep 48 minutes.
TEST(DashboardFeedTest, APolicyObservingEverySecondAddsAPointEveryFiveSeconds) {
  ManualClock clock;  // the controller's and the real one
  local::testing::NoProcesses none;
  local::Supervisor supervisor(local::SupervisorOptions{}, none, none, none);
  ASSERT_TRUE(supervisor.add_service({"web", {"server", "{port}"}, {}}));
  scaling::ServiceSpec spec;
  spec.name = "web";
  telemetry::Registry gateway_registry;
  local::LocalWorldOptions wo;
  wo.clock = &clock;
  wo.real_clock = &clock;
  local::LocalWorld world(supervisor, gateway_registry, {spec}, wo);
  EverySecond policy;
  control::Controller controller(world, policy, {spec}, clock);
  dashboard::DashboardModel model;
  model.set_services({{"web", "command", 200, 1, 4}});
  DashboardFeed feed(model, world, nullptr, {"every-second"}, clock);

  for (int s = 0; s < 60; ++s) {
    feed.after_tick(controller, controller.tick());
    clock.advance(1s);
  }
  // Points at 10, 15, ..., 55 s: the scrape at 0 s has an empty window, and the one at 5 s is the
  // base of the first point's rates. One a second, there were 54.
  EXPECT_EQ(model.services_json().at("services").at(0).at("points"), 10);
}

}  // namespace
}  // namespace prescale
