// Admission limits from the controller to the gateways of a cluster (docs/kubernetes.md,
// "Admission limits"). `prescale controller` learns each service's capacity as `prescale up` does
// (LearnedAdmission) and serves, on its admin port, what each gateway pod should let in flight
// per replica: the service's number shared among the gateway pods in service, each taking its
// part by its share of the service's requests (apportion: the parts add up to the number; an even
// share where none is known), so that N gateways do not let N times the service's queue_limit
// wait for it. `prescale gateway --admission-from URL` reads it every second and puts it in
// force.
//
// The document (GET /v1/admission/GATEWAY_POD, or /v1/admission for an even share;
// application/json; fields stable, docs/kubernetes.md):
//   {"gateways": 2,
//    "services": {"web": {"per_replica": 12, "per_gateway": 7, "share": 0.62,
//                         "capacity_rps": 21.3, "queue_limit_ms": 100}}}
// Only services with an admission limit (queue_limit not 0) are listed.
//
// Thread safety: the functions are pure; an AdmissionBoard is published to by one thread and read
// by any; an AdmissionFeed is driven by one thread.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <utility>
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
    int per_gateway = 0;      // this gateway's part of per_replica (apportion), 1 at least
    double share = 0;         // of the service's requests, or 1 / gateways where none is known
    double capacity_rps = 0;  // the capacity per replica it was computed from
    std::int64_t queue_limit_ms = 0;
  };
  int gateways = 1;  // gateway pods in service it is shared among
  std::map<std::string, Service, std::less<>> services;
};

inline constexpr int kMaxAdmissionPerReplica = 1'000'000;

// The limits `admission` has in force for `services`, each shared evenly among `gateways` (fewer
// than one counts as one: with none in service yet, the first to come takes it all):
// ceil(per_replica / gateways) each. Numbers are at most kMaxAdmissionPerReplica.
AdmissionLimits share_admission(const LearnedAdmission& admission,
                                const std::vector<ServiceConfig>& services, int gateways);

// A service's `n` requests per replica in parts for gateways whose shares of its requests are
// `shares`. Each share is first raised to at least half an even share (a gateway the balancer
// starts sending to is not held to one request at a time until its share is seen; all of it for
// a gateway alone), in place; the parts are then the shares' whole requests, and the rest, one
// each, to the largest remainders, so that they add up to n where the shares add up to 1 (to
// ceil(n × their sum) where the raised floors made it more), each at least 1.
std::vector<int> apportion(int n, std::vector<double>& shares);

std::string to_json(const AdmissionLimits& limits);

// The document back. Errors (kInvalidArgument) name what is wrong and where: "invalid JSON at byte
// 7: ...", "services.web.per_gateway: expected an integer from 1 to 1000000, got \"6\"". Fields
// it does not know are left alone.
Result<AdmissionLimits> parse_admission_limits(std::string_view body);

// The controller's side: the documents the gateways read, made after each look (the controller's
// loop) and served from the admin port's thread.
class AdmissionBoard {
 public:
  // A service's shares by gateway pod name (KubeWorld::gateway_shares).
  using SharesOf = std::function<std::map<std::string, double>(std::string_view service)>;

  // After a look: the gateway pods in service (nullopt: not known now, the list of pods being
  // stale; the gateways and shares last known stand) and their shares of each service's requests.
  void publish(const LearnedAdmission& admission, const std::vector<ServiceConfig>& services,
               std::optional<std::vector<std::string>> gateways, const SharesOf& shares_of);

  // The document for the gateway pod `gateway` ("", or one not in service: an even share);
  // nullopt until the gateways in service have been known.
  std::optional<std::string> document(std::string_view gateway) const;

 private:
  // The shares of the last look that gave them, by service (looks with a stale list give none);
  // publish's thread only.
  std::map<std::string, std::map<std::string, double>, std::less<>> shares_;
  mutable std::mutex mu_;
  std::optional<std::vector<std::string>> gateways_;
  std::string even_;
  std::map<std::string, std::string, std::less<>> by_gateway_;
};

// The gateway's side: reads the document and puts each service's per_gateway in force.
class AdmissionFeed {
 public:
  // Puts a number of requests in flight per replica in force for a service
  // (gateway::Gateway::set_max_requests_per_replica); 0: the gateway's own again (the file's).
  using Apply = std::function<Result<void>(std::string_view service, int per_replica)>;

  AdmissionFeed(HttpUrl url, std::chrono::milliseconds timeout);
  ~AdmissionFeed();
  AdmissionFeed(const AdmissionFeed&) = delete;
  AdmissionFeed& operator=(const AdmissionFeed&) = delete;

  // GETs the document (blocking, up to the timeout) and applies every number that differs from
  // the one in force, each change logged; a service the document no longer lists gets the
  // gateway's own number back (0). A failure (no answer, a status other than 200, a bad
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
  // Per service: the number for all gateways and the gateways it was last said for.
  std::map<std::string, std::pair<int, int>, std::less<>> said_;
  std::string problem_;  // the failure said last; "" while it reads
};

}  // namespace prescale
