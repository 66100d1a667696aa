// DnsUpstreams: the static upstreams (gateway.upstreams) in the gateway's endpoint table. An IP
// address is an endpoint as written; a host name is followed as Envoy's STRICT_DNS clusters
// follow theirs: the name is resolved every refresh and each address it resolves to is an
// endpoint of its own, balanced, health-checked, ejected and counted for admission as one
// replica. A Kubernetes headless Service's name resolves to its ready pods, so the gateway sees
// every replica (docs/kubernetes.md).
//
// - Until its first answer, a name is one endpoint named by it ("fraud:8080"), resolved at each
//   new connection, as before this class: nothing waits for DNS at start.
// - An answer makes the addresses the name's endpoints ("10.0.0.7:8080"): new ones are added,
//   ones no longer in the answer drain. IPv4 addresses are preferred: where the name has any,
//   its IPv6 ones are left out (Envoy's V4_PREFERRED).
// - A name that does not exist (NXDOMAIN: a headless Service with no ready pod) has no
//   endpoints; a failed lookup (timeout, SERVFAIL) keeps the last answer's, and is reported.
// - An address written, and any names resolving to it, share its endpoint, which stays while
//   any of them lists it.
//
// Thread safety: every member may be called from any thread; resolving happens outside the lock
// (refresh() blocks on the resolver; follow() never does).
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <mutex>
#include <string>
#include <tuple>
#include <vector>

#include "gateway/endpoint_table.h"

namespace prescale::gateway {

struct DnsAnswer {
  enum class Kind { kAddresses, kNoSuchName, kFailed };
  Kind kind = Kind::kAddresses;
  std::vector<std::string> addresses;  // kAddresses: IP addresses, IPv6 without brackets
  std::string error;                   // kFailed: what went wrong
};

// getaddrinfo(): the addresses of `host`, IPv4 only where it has any, sorted, without repeats.
DnsAnswer resolve_host(const std::string& host);

// Whether `host` is an IPv4 or IPv6 address (no brackets), which needs no resolving.
bool is_ip_literal(const std::string& host);

class DnsUpstreams {
 public:
  using Resolve = std::function<DnsAnswer(const std::string& host)>;
  explicit DnsUpstreams(EndpointTable& table, Resolve resolve = resolve_host);

  static constexpr std::size_t kLookupsAtOnce = 16;

  // The entries of `upstreams` ("host:port" by service; what parse_endpoint() refuses is
  // skipped) that their services have from now on: a service listed has exactly its entries
  // there, a service not listed keeps its own. An entry no longer listed takes its endpoints with
  // it (they drain).
  void follow(const std::map<std::string, std::vector<std::string>>& upstreams);

  // Resolves every followed name once, kLookupsAtOnce at a time on threads of their own, and
  // applies the answers. Returns one line per failed lookup or name that does not exist
  // ("fraud:8080: ..."), for the caller to log. `stop`, asked before each round of lookups, ends
  // it early with nothing applied (a lookup may block for seconds). `resolve` may be called from
  // several threads at once.
  std::vector<std::string> refresh(const std::function<bool()>& stop = nullptr);

 private:
  struct Target {
    std::string service;
    std::string host;
    std::uint16_t port = 0;
    bool literal = false;          // an IP address: its own endpoint, never looked up
    bool answered = false;         // the placeholder endpoint (named by the host) is gone
    std::vector<std::string> ids;  // the address endpoints it lists now
  };
  using Key = std::tuple<std::string, std::string, std::uint16_t>;  // service, host, port

  // With mu_ held.
  void add_locked(const std::string& service, const EndpointSpec& spec);
  void remove_locked(const std::string& service, const std::string& id);
  void drop_locked(Target& target);

  EndpointTable& table_;
  const Resolve resolve_;
  std::mutex mu_;
  std::map<Key, Target> targets_;                             // guarded by mu_
  std::map<std::pair<std::string, std::string>, int> users_;  // (service, id) -> targets listing it
};

}  // namespace prescale::gateway
