#include "local_platform.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>

namespace prescale {
namespace {

using ::testing::HasSubstr;

TEST(ScaledClock, RunsScaleTimesFasterFromItsWallOrigin) {
  ManualClock real;
  real.advance(std::chrono::seconds(5));
  const Clock::WallTime origin(std::chrono::seconds(1'800'000'000));
  ScaledClock clock(real, 60, origin);
  const Clock::TimePoint start = clock.now();
  EXPECT_EQ(clock.wall_now(), origin);
  real.advance(std::chrono::seconds(2));
  EXPECT_EQ(clock.now() - start, std::chrono::minutes(2));
  EXPECT_EQ(clock.wall_now(), origin + std::chrono::minutes(2));
}

ServiceConfig command_service(std::vector<std::string> argv, int max_replicas) {
  ServiceConfig s;
  s.name = "api";
  s.kind = ServiceKind::kCommand;
  s.command = std::move(argv);
  s.replicas.max = max_replicas;
  s.line = 7;
  return s;
}

TEST(Preflight, NamesTheFileLineAndFieldOfWhatWouldFailAfterStarting) {
  const ListenAddress gateway{"127.0.0.1", 8080}, ui{"127.0.0.1", 9090};
  Config config;
  config.services = {command_service({"/bin/sh", "-c", "exec server --port {port}"}, 3)};
  EXPECT_TRUE(preflight(config, "prescale.yaml", gateway, ui));

  config.services = {command_service({"no-such-program-here", "{port}"}, 3)};
  auto missing = preflight(config, "prescale.yaml", gateway, ui);
  ASSERT_FALSE(missing);
  EXPECT_THAT(missing.error().message, HasSubstr("prescale.yaml:7: services[0] (api).command: "));
  EXPECT_THAT(missing.error().message, HasSubstr("PATH"));

  // Several replicas of a command without "{port}" would all listen on one port; one is fine.
  config.services = {command_service({"/bin/sh", "-c", "exec server"}, 3)};
  auto no_port = preflight(config, "prescale.yaml", gateway, ui);
  ASSERT_FALSE(no_port);
  EXPECT_THAT(no_port.error().message, HasSubstr("no \"{port}\" argument"));
  config.services = {command_service({"/bin/sh", "-c", "exec server"}, 1)};
  EXPECT_TRUE(preflight(config, "prescale.yaml", gateway, ui));

  config.services = {command_service({"/bin/sh", "{port}"}, 3)};
  auto clash = preflight(config, "prescale.yaml", gateway, {"127.0.0.1", 8080});
  ASSERT_FALSE(clash);
  EXPECT_THAT(clash.error().message, HasSubstr("both use port 8080"));
}

TEST(Preflight, ARecommendServiceNeedsATrainedModelBesideItsFile) {
  const std::filesystem::path dir =
      std::filesystem::temp_directory_path() / ("preflight-" + std::to_string(::getpid()));
  std::filesystem::create_directories(dir / "models");
  ServiceConfig s;
  s.name = "recommend";
  s.kind = ServiceKind::kRecommend;
  s.line = 3;
  Config config;
  config.services = {s};
  const std::string file = (dir / "prescale.yaml").string();
  auto empty = preflight(config, file, {"127.0.0.1", 0}, {"127.0.0.1", 0});
  ASSERT_FALSE(empty);
  EXPECT_THAT(empty.error().message, HasSubstr("(recommend).model_dir: "));
  EXPECT_THAT(empty.error().message, HasSubstr("prescale train recommend"));
  std::ofstream(dir / "models" / "model-1.bin") << "x";
  EXPECT_TRUE(preflight(config, file, {"127.0.0.1", 0}, {"127.0.0.1", 0}));
  std::filesystem::remove_all(dir);
}

TEST(ReplicaTemplate, BuiltInKindsRunThisBinarysServeWithTheirModelBesideTheFile) {
  ServiceConfig s;
  s.name = "fraud";
  s.kind = ServiceKind::kFraud;
  s.model_dir = "models/fraud";
  s.env = {{"MODE", "fast"}};
  const local::ReplicaTemplate t =
      replica_template(s, "/opt/prescale", "http://127.0.0.1:8080", "/srv/app");
  EXPECT_EQ(t.service, "fraud");
  ASSERT_GE(t.argv.size(), 3u);
  EXPECT_EQ(t.argv[0], "/opt/prescale");
  EXPECT_EQ(t.argv[1], "serve");
  EXPECT_EQ(t.argv[2], "fraud");
  EXPECT_THAT(t.argv, ::testing::Contains("{port_file}"));
  EXPECT_THAT(t.argv, ::testing::Contains("/srv/app/models/fraud"));
  EXPECT_THAT(t.env, ::testing::Contains(std::pair<std::string, std::string>("MODE", "fast")));
  EXPECT_THAT(t.env, ::testing::Contains(std::pair<std::string, std::string>(
                         "PRESCALE_GATEWAY_URL", "http://127.0.0.1:8080")));

  const ServiceConfig c = command_service({"./server", "--port", "{port}"}, 2);
  EXPECT_EQ(replica_template(c, "/opt/prescale", "http://g", "/srv/app").argv, c.command);
}

}  // namespace
}  // namespace prescale
