// EndpointWatch: says when the gateway takes a replica out of service by itself — its health
// checks fail (a hung replica, one whose readiness turned off), outlier detection ejects it, or
// its failure-rate breaker opens — and when it is back. The supervisor sees a replica exit, not
// these: a replica stopped with SIGSTOP stays ready to it while the gateway sends it nothing.
//
// Thread safety: one thread calls poll(); the gateway serves and checks meanwhile.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <utility>
#include <vector>

#include "core/clock.h"
#include "gateway/gateway.h"

namespace prescale {

struct EndpointChange {
  std::string service;
  std::string replica;  // the endpoint's id up to its '@' (`<replica>@<port>`)
  std::string kind;     // "unhealthy", "eject" (out of service), "healthy" (back)
  std::string message;  // why it is out, or that it is back
  // An "eject" by the failure-rate breaker, not the outlier detection. An open breaker is no
  // verdict on a release (a rollout fails on outlier ejections only; the rollout analysis judges
  // error rates), and overload opens breakers too; the healer counts its openings as ejections
  // once per 30 s at most (Healer::breaker_opened).
  bool breaker = false;
};

class EndpointWatch {
 public:
  // `health_check_path`: gateway.health_check.path, asked of replicas without a path of their own.
  EndpointWatch(const gateway::Gateway& gateway, std::string health_check_path)
      : gateway_(gateway), health_check_path_(std::move(health_check_path)) {}

  // What changed since the last call, as of `now` on the gateway's clock: an "eject" for each
  // poll that finds a replica ejected anew, even when it was out at the last one too (back and
  // ejected again in between). An endpoint draining
  // (a replica leaving or crashed: the supervisor says why) or gone is no longer watched.
  std::vector<EndpointChange> poll(Clock::TimePoint now);

 private:
  const gateway::Gateway& gateway_;
  const std::string health_check_path_;
  std::map<std::string, std::string> out_;  // endpoint id -> why it is out of service
  std::map<std::string, std::uint64_t> ejections_;  // endpoint id -> its times_ejected() then
  std::map<std::string, std::uint64_t> openings_;   // endpoint id -> its breaker's openings then
};

}  // namespace prescale
