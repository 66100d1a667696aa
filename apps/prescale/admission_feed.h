// Admission limits from the controller to the gateways of a cluster (docs/kubernetes.md,
// "Admission limits"). `prescale controller` learns each service's capacity as `prescale up` does
// (LearnedAdmission) and serves, on its admin port, what each gateway pod should let in flight
// per replica: the service's number shared among the gateway pods in service, each taking
// ceil(per_replica / gateways), so that N gateways do not let N times the service's queue_limit
// wait for it. `prescale gateway --admission-from URL` reads it every second and puts it in force.
//
// The document (GET /v1/admission, application/json; fields stable, docs/kubernetes.md):
//   {"gateways": 2,
//    "services": {"web": {"per_replica": 12, "per_gateway": 6, "capacity_rps": 21.3,
//                         "queue_limit_ms": 100}}}
// Only services with an admission limit (queue_limit not 0) are listed.
//
// Thread safety: the functions are pure; an AdmissionFeed is driven by one thread.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include "core/config.h"
#include "core/host_port.h"
#include "core/result.h"
#include "learned_admission.h"

namespace prescale {

namespace http {
class Client;
}  // namespace http

struct AdmissionLimits {
  struct Service {
    int per_replica = 0;      // what the service's replicas take in flight, all gateways together
    int per_gateway = 0;      // each gateway's share: ceil(per_replica / gateways), at least 1
    double capacity_rps = 0;  // the capacity per replica it was computed from
    std::int64_t queue_limit_ms = 0;
  };
  int gateways = 1;  // gateway pods in service it is shared among
  std::map<std::string, Service, std::less<>> services;
};

// The limits `admission` has in force for `services`, shared among `gateways` (fewer than one
// counts as one: with none in service yet, the first to come takes it all).
AdmissionLimits share_admission(const LearnedAdmission& admission,
                                const std::vector<ServiceConfig>& services, int gateways);

std::string to_json(const AdmissionLimits& limits);

// The document back. Errors (kInvalidArgument) name what is wrong and where: "invalid JSON at byte
// 7: ...", "services.web.per_gateway: expected an integer from 1 to 1000000, got \"6\"".
Result<AdmissionLimits> parse_admission_limits(std::string_view body);

// The gateway's side: reads the document and puts each service's per_gateway in force.
class AdmissionFeed {
 public:
  // Puts a number of requests in flight per replica in force for a service
  // (gateway::Gateway::set_max_requests_per_replica).
  using Apply = std::function<Result<void>(std::string_view service, int per_replica)>;

  AdmissionFeed(HttpUrl url, std::chrono::milliseconds timeout);
  ~AdmissionFeed();
  AdmissionFeed(const AdmissionFeed&) = delete;
  AdmissionFeed& operator=(const AdmissionFeed&) = delete;

  // GETs the document (blocking, up to the timeout) and applies every number that differs from
  // the one in force, each change logged. A failure (no answer, a status other than 200, a bad
  // document) changes nothing: the numbers in force stay. It is logged when it starts, and the
  // recovery when it ends. A service the gateway has no cluster for is left out, said once.
  // Returns whether the document was read.
  bool poll(const Apply& apply);

  // Puts every number read so far back in force (after a reload of the file reset them to the
  // file's).
  void reapply(const Apply& apply);

  // The number in force from the feed; 0 when it has given none for the service.
  int per_replica(std::string_view service) const;

 private:
  // Whether `apply` took it; a refusal is said once per service until one is taken.
  bool apply_one(const Apply& apply, const std::string& service, int n);

  HttpUrl url_;
  std::string url_text_;
  std::chrono::milliseconds timeout_;
  std::unique_ptr<http::Client> client_;
  std::map<std::string, int, std::less<>> in_force_;
  std::set<std::string, std::less<>> refused_said_;
  std::string problem_;  // the failure said last; "" while it reads
};

}  // namespace prescale
