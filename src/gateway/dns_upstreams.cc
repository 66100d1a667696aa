#include "gateway/dns_upstreams.h"

#include <arpa/inet.h>
#include <netdb.h>
#include <sys/socket.h>

#include <algorithm>
#include <future>
#include <set>

#include "core/host_port.h"

namespace prescale::gateway {

bool is_ip_literal(const std::string& host) {
  unsigned char buffer[sizeof(in6_addr)];
  return inet_pton(AF_INET, host.c_str(), buffer) == 1 ||
         inet_pton(AF_INET6, host.c_str(), buffer) == 1;
}

DnsAnswer resolve_host(const std::string& host) {
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  addrinfo* found = nullptr;
  const int rc = getaddrinfo(host.c_str(), nullptr, &hints, &found);
  DnsAnswer answer;
  if (rc == EAI_NONAME || rc == EAI_NODATA) {
    answer.kind = DnsAnswer::Kind::kNoSuchName;
    return answer;
  }
  if (rc != 0) {
    answer.kind = DnsAnswer::Kind::kFailed;
    answer.error = gai_strerror(rc);
    return answer;
  }
  std::set<std::string> v4, v6;
  for (const addrinfo* a = found; a != nullptr; a = a->ai_next) {
    char text[INET6_ADDRSTRLEN] = {};
    if (a->ai_family == AF_INET) {
      const auto* in = reinterpret_cast<const sockaddr_in*>(a->ai_addr);
      if (inet_ntop(AF_INET, &in->sin_addr, text, sizeof text) != nullptr) v4.insert(text);
    } else if (a->ai_family == AF_INET6) {
      const auto* in6 = reinterpret_cast<const sockaddr_in6*>(a->ai_addr);
      if (inet_ntop(AF_INET6, &in6->sin6_addr, text, sizeof text) != nullptr) v6.insert(text);
    }
  }
  freeaddrinfo(found);
  const std::set<std::string>& chosen = v4.empty() ? v6 : v4;
  answer.addresses.assign(chosen.begin(), chosen.end());
  if (answer.addresses.empty()) answer.kind = DnsAnswer::Kind::kNoSuchName;
  return answer;
}

DnsUpstreams::DnsUpstreams(EndpointTable& table, Resolve resolve)
    : table_(table), resolve_(std::move(resolve)) {}

void DnsUpstreams::add_locked(const std::string& service, const EndpointSpec& spec) {
  if (users_[{service, spec.id}]++ == 0) (void)table_.add_static(service, spec);
}

void DnsUpstreams::remove_locked(const std::string& service, const std::string& id) {
  const auto it = users_.find({service, id});
  if (it == users_.end()) return;
  if (--it->second == 0) {
    users_.erase(it);
    table_.remove(service, id);
  }
}

void DnsUpstreams::drop_locked(Target& t) {
  if (!t.answered) {
    remove_locked(t.service, host_port(t.host, t.port));
    return;
  }
  for (const std::string& id : t.ids) remove_locked(t.service, id);
  t.ids.clear();
}

void DnsUpstreams::follow(const std::map<std::string, std::vector<std::string>>& upstreams) {
  std::lock_guard lock(mu_);
  std::set<Key> wanted;
  for (const auto& [service, endpoints] : upstreams) {
    for (const std::string& text : endpoints) {
      if (auto spec = parse_endpoint(text)) wanted.insert({service, spec->host, spec->port});
    }
  }
  for (auto it = targets_.begin(); it != targets_.end();) {
    if (upstreams.contains(std::get<0>(it->first)) && !wanted.contains(it->first)) {
      drop_locked(it->second);
      it = targets_.erase(it);
    } else {
      ++it;
    }
  }
  for (const Key& key : wanted) {
    if (targets_.contains(key)) continue;
    const auto& [service, host, port] = key;
    Target t;
    t.service = service;
    t.host = host;
    t.port = port;
    // An address is its own endpoint for good; a name is until its first answer (resolved per
    // connection meanwhile).
    t.literal = is_ip_literal(host);
    add_locked(service, EndpointSpec{host_port(host, port), host, port});
    if (t.literal) {
      t.answered = true;
      t.ids = {host_port(host, port)};
    }
    targets_.emplace(key, std::move(t));
  }
}

std::vector<std::string> DnsUpstreams::refresh(const std::function<bool()>& stop) {
  std::vector<Key> keys;
  {
    std::lock_guard lock(mu_);
    for (const auto& [key, t] : targets_) {
      if (!t.literal) keys.push_back(key);
    }
  }
  std::set<std::string> hosts;  // each looked up once
  for (const Key& key : keys) hosts.insert(std::get<1>(key));
  // At once, kLookupsAtOnce at a time: a name whose server does not answer holds up the others
  // by no more than its own timeout.
  std::map<std::string, DnsAnswer> answers;
  for (auto next = hosts.begin(); next != hosts.end();) {
    if (stop && stop()) return {};
    std::vector<std::pair<std::string, std::future<DnsAnswer>>> lookups;
    for (; next != hosts.end() && lookups.size() < kLookupsAtOnce; ++next) {
      lookups.emplace_back(*next, std::async(std::launch::async, resolve_, *next));
    }
    for (auto& [host, answer] : lookups) answers.emplace(host, answer.get());
  }

  std::vector<std::string> problems;
  std::lock_guard lock(mu_);
  for (const Key& key : keys) {
    const auto it = targets_.find(key);
    if (it == targets_.end()) continue;  // no longer followed
    Target& t = it->second;
    const DnsAnswer& answer = answers.at(t.host);
    const std::string name = host_port(t.host, t.port);
    if (answer.kind == DnsAnswer::Kind::kFailed) {
      problems.push_back(name + ": lookup failed (" + answer.error + "); keeping " +
                         (t.answered ? std::to_string(t.ids.size()) + " endpoints it had"
                                     : std::string("the name as its endpoint")));
      continue;
    }
    if (answer.kind == DnsAnswer::Kind::kNoSuchName) {
      problems.push_back(name + ": no such name; service " + t.service +
                         " has no endpoints from it");
    }
    std::vector<std::string> ids;
    for (const std::string& address : answer.addresses) {
      const std::string id = host_port(address, t.port);
      ids.push_back(id);
      if (!t.answered || std::find(t.ids.begin(), t.ids.end(), id) == t.ids.end()) {
        add_locked(t.service, EndpointSpec{id, address, t.port});
      }
    }
    if (!t.answered) {
      remove_locked(t.service, name);
      t.answered = true;
    } else {
      for (const std::string& id : t.ids) {
        if (std::find(ids.begin(), ids.end(), id) == ids.end()) remove_locked(t.service, id);
      }
    }
    t.ids = std::move(ids);
  }
  return problems;
}

}  // namespace prescale::gateway
