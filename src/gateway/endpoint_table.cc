#include "gateway/endpoint_table.h"

#include <algorithm>
#include <set>
#include <utility>

#include "core/host_port.h"

namespace prescale::gateway {
namespace {

std::string address_of(const EndpointSpec& spec) { return host_port(spec.host, spec.port); }

bool same_address(const EndpointSpec& a, const EndpointSpec& b) {
  return a.host == b.host && a.port == b.port;
}

Error address_conflict(std::string_view service, const EndpointState& known,
                       const EndpointSpec& spec) {
  return Error{ErrorCode::kInvalidArgument, std::string(service) + ": endpoint \"" + spec.id +
                                                "\" is already " + known.address + ", not " +
                                                address_of(spec)};
}

}  // namespace

Result<EndpointSpec> parse_endpoint(std::string_view host_port) {
  const HostPortParts parts = split_host_port(host_port, 1);
  if (parts.fault == HostPortFault::kNone) {
    return EndpointSpec{std::string(host_port), std::string(parts.host), parts.port};
  }
  std::string why = "endpoint must be \"host:port\" or \"[ipv6]:port\" with port 1..65535";
  if (parts.fault == HostPortFault::kNotIpv6) why += ", an IPv6 address in the brackets";
  if (parts.fault == HostPortFault::kLeadingZero) why += " without leading zeros";
  return make_error(ErrorCode::kInvalidArgument, why + ", got \"" + std::string(host_port) + "\"");
}

EndpointState::EndpointState(EndpointSpec s) : spec(std::move(s)), address(address_of(spec)) {}

bool EndpointState::try_acquire() {
  // Both seq_cst, like the writer's store to `draining` and reap()'s load of `outstanding`:
  // either reap() sees this request, or this request sees the drain.
  outstanding.fetch_add(1, std::memory_order_seq_cst);
  if (draining.load(std::memory_order_seq_cst)) {
    outstanding.fetch_sub(1, std::memory_order_seq_cst);
    return false;
  }
  return true;
}

bool EndpointState::release() {
  const std::int64_t left = outstanding.fetch_sub(1, std::memory_order_seq_cst) - 1;
  return left == 0 && draining.load(std::memory_order_seq_cst);
}

const ServiceEndpoints* EndpointSnapshot::find(std::string_view service) const {
  const auto it = std::lower_bound(
      services.begin(), services.end(), service,
      [](const ServiceEndpoints& s, std::string_view name) { return s.service < name; });
  return it != services.end() && it->service == service ? &*it : nullptr;
}

EndpointTable::EndpointTable(const Clock& clock, std::chrono::milliseconds drain_timeout)
    : clock_(clock),
      drain_timeout_(drain_timeout),
      snapshot_(std::make_shared<const EndpointSnapshot>()) {}

std::shared_ptr<const EndpointSnapshot> EndpointTable::snapshot() const {
  return snapshot_.load(std::memory_order_acquire);
}

Result<void> EndpointTable::add_locked(std::string_view name, Service& service, EndpointSpec spec,
                                       bool& changed) {
  if (auto it = service.find(spec.id); it != service.end()) {
    EndpointState& state = *it->second.state;
    if (!same_address(state.spec, spec)) {
      return std::unexpected(address_conflict(name, state, spec));
    }
    if (state.draining.load(std::memory_order_relaxed)) {
      state.draining.store(false, std::memory_order_seq_cst);
      changed = true;
    }
    return {};
  }
  std::string id = spec.id;
  service.emplace(std::move(id), Entry{std::make_shared<EndpointState>(std::move(spec)), {}});
  changed = true;
  return {};
}

void EndpointTable::drain_locked(Entry& entry) {
  if (entry.state->draining.load(std::memory_order_relaxed)) return;
  entry.state->draining.store(true, std::memory_order_seq_cst);
  entry.drain_deadline = clock_.now() + drain_timeout_;
}

Result<void> EndpointTable::add(std::string_view service, EndpointSpec spec) {
  std::lock_guard lock(mu_);
  auto it = services_.find(service);
  if (it == services_.end()) it = services_.emplace(std::string(service), Service{}).first;
  bool changed = false;
  if (Result<void> r = add_locked(service, it->second, std::move(spec), changed); !r) return r;
  if (changed) publish_locked();
  return {};
}

Result<void> EndpointTable::add_static(std::string_view service, EndpointSpec spec) {
  std::lock_guard lock(mu_);
  auto it = services_.find(service);
  if (it == services_.end()) it = services_.emplace(std::string(service), Service{}).first;
  const std::string id = spec.id;
  bool changed = false;
  if (Result<void> r = add_locked(service, it->second, std::move(spec), changed); !r) return r;
  it->second.find(id)->second.is_static = true;
  if (changed) publish_locked();
  return {};
}

Result<void> add_upstreams(EndpointTable& table,
                           const std::map<std::string, std::vector<std::string>>& upstreams) {
  for (const auto& [service, endpoints] : upstreams) {
    for (const std::string& text : endpoints) {
      Result<EndpointSpec> spec = parse_endpoint(text);
      if (!spec) return std::unexpected(spec.error());
      if (Result<void> r = table.add_static(service, std::move(*spec)); !r) return r;
    }
  }
  return {};
}

bool EndpointTable::remove(std::string_view service, std::string_view id) {
  std::lock_guard lock(mu_);
  const auto s = services_.find(service);
  if (s == services_.end()) return false;
  const auto e = s->second.find(id);
  if (e == s->second.end()) return false;
  if (!e->second.state->draining.load(std::memory_order_relaxed)) {
    drain_locked(e->second);
    publish_locked();
  }
  return true;
}

Result<void> EndpointTable::set(std::string_view service, std::vector<EndpointSpec> specs) {
  std::lock_guard lock(mu_);
  auto it = services_.find(service);
  // Check everything first, so that a bad list changes nothing.
  std::set<std::string_view> listed;
  for (const EndpointSpec& spec : specs) {
    if (!listed.insert(spec.id).second) {
      return make_error(ErrorCode::kInvalidArgument,
                        std::string(service) + ": endpoint \"" + spec.id + "\" listed twice");
    }
    if (it == services_.end()) continue;
    if (auto e = it->second.find(spec.id);
        e != it->second.end() && !same_address(e->second.state->spec, spec)) {
      return std::unexpected(address_conflict(service, *e->second.state, spec));
    }
  }
  if (it == services_.end()) {
    if (specs.empty()) return {};
    it = services_.emplace(std::string(service), Service{}).first;
  }
  bool changed = false;
  for (auto& [id, entry] : it->second) {
    if (!listed.contains(id) && !entry.is_static &&
        !entry.state->draining.load(std::memory_order_relaxed)) {
      drain_locked(entry);
      changed = true;
    }
  }
  for (EndpointSpec& spec : specs) {
    (void)add_locked(service, it->second, std::move(spec), changed);  // checked above
  }
  if (changed) publish_locked();
  return {};
}

std::size_t EndpointTable::reap() {
  std::lock_guard lock(mu_);
  const Clock::TimePoint now = clock_.now();
  std::size_t dropped = 0;
  for (auto s = services_.begin(); s != services_.end();) {
    dropped += std::erase_if(s->second, [&](const auto& item) {
      const Entry& entry = item.second;
      return entry.state->draining.load(std::memory_order_seq_cst) &&
             (entry.state->outstanding.load(std::memory_order_seq_cst) == 0 ||
              now >= entry.drain_deadline);
    });
    s = s->second.empty() ? services_.erase(s) : std::next(s);
  }
  if (dropped > 0) publish_locked();
  return dropped;
}

void EndpointTable::publish_locked() {
  auto snap = std::make_shared<EndpointSnapshot>();
  snap->version = next_version_++;
  snap->services.reserve(services_.size());
  for (const auto& [name, service] : services_) {
    ServiceEndpoints& out = snap->services.emplace_back();
    out.service = name;
    out.endpoints.reserve(service.size());
    for (const bool draining : {false, true}) {
      for (const auto& [id, entry] : service) {
        if (entry.state->draining.load(std::memory_order_relaxed) == draining) {
          out.endpoints.push_back(Endpoint{entry.state, draining});
        }
      }
      if (!draining) out.ready_count = out.endpoints.size();
    }
  }
  const std::uint64_t version = snap->version;
  // (ThreadSanitizer reports a race inside std::atomic<std::shared_ptr> here: libstdc++ 12
  // guards the pointer with a lock bit that TSan cannot see. The race is not real.)
  snapshot_.store(std::move(snap), std::memory_order_release);
  version_.store(version, std::memory_order_release);
}

EndpointTable::Reader::Reader(const EndpointTable& table)
    : table_(&table), snapshot_(table.snapshot()) {}

const EndpointSnapshot& EndpointTable::Reader::current() {
  if (table_->version_.load(std::memory_order_acquire) != snapshot_->version) {
    snapshot_ = table_->snapshot();
  }
  return *snapshot_;
}

}  // namespace prescale::gateway
