// Test doubles for the local world: a supervisor's process launcher, readiness probe and endpoint
// sink with nothing to run, for tests whose request figures come from the gateway's metrics alone.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>

#include "worlds/local/supervisor.h"

namespace prescale::local::testing {

struct NoProcesses final : ProcessLauncher, ReplicaProbe, EndpointSink {
  Result<std::unique_ptr<Process>> launch(const LaunchSpec&) override {
    return make_error(ErrorCode::kInternal, "no processes in this test");
  }
  Result<std::uint16_t> free_port() override { return 9000; }
  std::optional<std::uint16_t> read_port_file(const std::string&) override { return {}; }
  struct Answer final : ReadinessCheck {
    std::optional<bool> answer() override { return false; }
  };
  std::unique_ptr<ReadinessCheck> check_ready(std::uint16_t, const std::string&,
                                              std::chrono::milliseconds) override {
    return std::make_unique<Answer>();
  }
  std::unique_ptr<ReadinessCheck> check_grpc_health(std::uint16_t, const std::string&,
                                                    std::chrono::milliseconds) override {
    return std::make_unique<Answer>();
  }
  void add(const std::string&, const std::string&, std::uint16_t) override {}
  void remove(const std::string&, const std::string&) override {}
  std::int64_t in_flight(const std::string&, const std::string&) override { return 0; }
};

}  // namespace prescale::local::testing
