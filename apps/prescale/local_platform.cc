#include "local_platform.h"

#include <fcntl.h>
#include <spdlog/spdlog.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cmath>
#include <cstring>
#include <fstream>
#include <set>
#include <string_view>

#include "http/grpc_health.h"
#include "learned_admission.h"
#include "scaling/prescale_policy.h"
#include "worlds/local/process.h"
#include "worlds/sim/experiment.h"

namespace prescale {

Clock::Duration prescale_observe_interval(double time_scale, Clock::Duration period) {
  const auto real_second =
      std::chrono::duration_cast<Clock::Duration>(std::chrono::duration<double>(time_scale));
  return std::min(real_second, period);
}

std::string self_executable() {
  std::error_code ec;
  auto p = std::filesystem::read_symlink("/proc/self/exe", ec);
  return ec ? std::string("prescale") : p.string();
}

local::ReplicaTemplate replica_template(const ServiceConfig& s, const std::string& self,
                                        const std::string& gateway_url,
                                        const std::filesystem::path& config_dir,
                                        const TracingConfig& tracing, const HttpConfig& http) {
  local::ReplicaTemplate t;
  t.service = s.name;
  if (s.kind == ServiceKind::kCommand) {
    t.argv = s.command;
  } else {
    std::string kind(to_string(s.kind));
    if (const size_t slash = kind.find('/'); slash != std::string::npos)
      kind = kind.substr(slash + 1);
    t.argv = {self,          "serve",     kind, "--port",      "0",   "--port-file",
              "{port_file}", "--threads", "1",  "--log-level", "warn"};
    // The file's http section, where it differs from the defaults (a replica reads no file).
    for (std::string& flag : serve_http_flags(http)) t.argv.push_back(std::move(flag));
    if (http.shutdown_grace != HttpConfig().shutdown_grace) {
      t.argv.push_back("--shutdown-grace-ms");
      t.argv.push_back(std::to_string(http.shutdown_grace.count()));
    }
    // Relative to the file's directory, as preflight() checks it; recommend and fraud read
    // "models" there when the file names none (forecast then runs without model files).
    const bool model_files = s.kind == ServiceKind::kRecommend || s.kind == ServiceKind::kFraud;
    if (!s.model_dir.empty() || model_files) {
      const std::filesystem::path dir(s.model_dir.empty() ? "models" : s.model_dir);
      t.argv.push_back("--model-dir");
      t.argv.push_back((dir.is_absolute() ? dir : config_dir / dir).lexically_normal().string());
    }
  }
  for (const auto& [k, v] : s.env) t.env.emplace_back(k, v);
  t.readiness_path = s.effective_readiness_path();
  t.http2 = s.speaks_http2();
  if (s.protocol == UpstreamProtocol::kGrpc) t.grpc_health_service = s.grpc_health_service;
  t.liveness_path = s.liveness.enabled ? s.liveness.path : std::string();
  t.liveness_interval = s.liveness.interval;
  t.liveness_timeout = s.liveness.timeout;
  t.liveness_failure_threshold = s.liveness.failure_threshold;
  t.memory_limit_bytes = s.memory_limit.bytes;
  t.program = local::program_identity(t.argv.at(0));
  t.env.emplace_back("PRESCALE_GATEWAY_URL", gateway_url);
  // Tracing (docs/tracing.md): where the file sends spans, and the service's name in them; what
  // the service's own env sets wins.
  auto unless_set = [&](const std::string& name, const std::string& value) {
    if (!s.env.contains(name)) t.env.emplace_back(name, value);
  };
  for (const auto& [name, value] : otel_environment(tracing)) unless_set(name, value);
  unless_set("OTEL_SERVICE_NAME", s.name);
  return t;
}

std::string last_log_line(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return {};
  in.seekg(0, std::ios::end);
  const std::streamoff size = in.tellg();
  const std::streamoff from = std::max<std::streamoff>(0, size - 4096);
  std::string tail(static_cast<size_t>(size - from), '\0');
  in.seekg(from);
  in.read(tail.data(), static_cast<std::streamsize>(tail.size()));
  tail.resize(static_cast<size_t>(in.gcount()));  // less when the log was emptied meanwhile
  while (!tail.empty() && (tail.back() == '\n' || tail.back() == '\r' || tail.back() == ' ')) {
    tail.pop_back();
  }
  // UTF-8's continuation bytes (10xxxxxx) are never the first of a character.
  auto inside_a_character = [](char c) { return (static_cast<unsigned char>(c) & 0xC0) == 0x80; };
  const size_t newline = tail.find_last_of('\n');
  size_t begin = newline == std::string::npos ? 0 : newline + 1;
  if (newline == std::string::npos && from > 0) {  // the tail began within the line
    while (begin < tail.size() && inside_a_character(tail[begin])) ++begin;
  }
  std::string line = tail.substr(begin);
  if (line.size() > 200) {
    size_t cut = 197;
    while (cut > 0 && inside_a_character(line[cut])) --cut;
    line = line.substr(0, cut) + "...";
  }
  return line;
}

std::string log_ending(const local::Supervisor& supervisor, const std::string& replica) {
  const std::string log = supervisor.log_path(replica);
  if (log.empty()) return {};
  for (const std::string& file : {log, local::moved_aside_log_path(log)}) {
    if (const std::string last = last_log_line(file); !last.empty()) {
      return "; its log " + file + " ends \"" + last + "\"";
    }
  }
  return {};
}

std::vector<std::string> services_not_in_file(const nlohmann::json& policy_state,
                                              const std::vector<ServiceConfig>& services) {
  std::set<std::string> saved;
  if (auto it = policy_state.find("services"); it != policy_state.end() && it->is_object()) {
    for (const auto& [name, s] : it->items()) saved.insert(name);
  }
  if (auto it = policy_state.find("capacity"); it != policy_state.end() && it->is_object()) {
    for (const auto& s : it->value("services", nlohmann::json::array())) {
      if (s.is_object() && s.contains("name") && s["name"].is_string()) saved.insert(s["name"]);
    }
  }
  for (const ServiceConfig& s : services) saved.erase(s.name);
  return {saved.begin(), saved.end()};
}

std::string state_dir_in_use_message(std::string_view state_dir,
                                     const std::function<std::string()>& read_lock_file,
                                     const std::function<void()>& pause) {
  // The holder writes its pid within microseconds of taking the lock; 5 reads 10 ms apart leave
  // it ample time without making this answer wait.
  constexpr int kReads = 5;
  std::string pid;
  for (int read = 0; read < kReads && pid.empty(); ++read) {
    if (read > 0) pause();
    const std::string text = read_lock_file();
    const std::string_view line = std::string_view(text).substr(0, text.find('\n'));
    const bool digits = !line.empty() && std::all_of(line.begin(), line.end(),
                                                     [](char c) { return c >= '0' && c <= '9'; });
    if (digits) pid = line;
  }
  const std::string holder =
      pid.empty() ? "another prescale up" : "another prescale up (pid " + pid + ")";
  return "--state-dir " + std::string(state_dir) + " is in use by " + holder +
         "; stop it, or give another --state-dir";
}

namespace {

// Writes this process's pid over the lock file's text, then cuts it to length: a reader sees the
// last holder's pid or this one on the first line, never an empty file.
bool write_pid(int fd) {
  const std::string pid = std::to_string(::getpid()) + "\n";
  return ::pwrite(fd, pid.data(), pid.size(), 0) == static_cast<ssize_t>(pid.size()) &&
         ::ftruncate(fd, static_cast<off_t>(pid.size())) == 0;
}

}  // namespace

Result<StateLock> StateLock::take(const std::filesystem::path& dir, std::string_view state_dir) {
  const std::string path = (dir / "lock").string();
  const int fd = ::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
  if (fd < 0) {
    const int err = errno;
    return make_error(ErrorCode::kInvalidArgument, "--state-dir " + std::string(state_dir) +
                                                       ": cannot open " + path + ": " +
                                                       std::strerror(err));
  }
  if (::flock(fd, LOCK_EX | LOCK_NB) != 0) {
    const int err = errno;
    ::close(fd);
    if (err != EWOULDBLOCK) {  // ENOLCK: not another platform's lock
      return make_error(ErrorCode::kInvalidArgument, "--state-dir " + std::string(state_dir) +
                                                         ": cannot lock " + path + ": " +
                                                         std::strerror(err));
    }
    auto read_lock_file = [&path] { return read_whole_file(path).value_or(""); };
    auto pause = [] {
      Clock::real().sleep_until(Clock::real().now() + std::chrono::milliseconds(10));
    };
    return make_error(ErrorCode::kUnavailable,
                      state_dir_in_use_message(state_dir, read_lock_file, pause));
  }
  if (!write_pid(fd)) spdlog::warn("cannot write this process's pid to {}", path);
  return StateLock(fd, path);
}

StateLock::~StateLock() {
  if (fd_ >= 0) ::close(fd_);
}

std::string StateLock::keep() {
  struct stat held {
  }, there{};
  if (fd_ < 0 || ::fstat(fd_, &held) != 0) return "";
  if (::stat(path_.c_str(), &there) == 0 && there.st_ino == held.st_ino &&
      there.st_dev == held.st_dev) {
    return "";
  }
  std::error_code ignored;
  std::filesystem::create_directories(std::filesystem::path(path_).parent_path(), ignored);
  const int fd = ::open(path_.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
  if (fd < 0) {
    const int err = errno;
    return path_ +
           " was removed while the platform ran, and cannot be made again: " + std::strerror(err) +
           "; another prescale up could take this state directory";
  }
  if (::flock(fd, LOCK_EX | LOCK_NB) != 0) {
    ::close(fd);
    if (lost_) return "";
    lost_ = true;
    const std::string holder = read_whole_file(path_).value_or("");
    return path_ + " was removed while the platform ran, and another prescale up (pid " +
           holder.substr(0, holder.find('\n')) +
           ") has taken the state directory since: both now write to it; stop one";
  }
  if (!write_pid(fd)) spdlog::warn("cannot write this process's pid to {}", path_);
  ::close(fd_);
  fd_ = fd;
  lost_ = false;
  return path_ + " was removed while the platform ran; made and locked again";
}

namespace {

long whole_seconds(Clock::Duration d) {
  return static_cast<long>(std::chrono::duration_cast<std::chrono::seconds>(d).count());
}

}  // namespace

std::vector<std::string> unready_services(const std::vector<ServiceConfig>& services,
                                          const local::Supervisor& supervisor,
                                          Clock::TimePoint now) {
  std::vector<std::string> out;
  for (const ServiceConfig& s : services) {
    const std::vector<local::ReplicaStatus> replicas = supervisor.replicas(s.name);
    const auto ready = std::count_if(replicas.begin(), replicas.end(), [](const auto& r) {
      return r.phase == local::ReplicaPhase::kReady;
    });
    if (ready >= s.replicas.initial) continue;
    std::string line = s.name + " (" + std::to_string(ready) + " of " +
                       std::to_string(s.replicas.initial) + " ready)";
    for (const local::ReplicaStatus& r : replicas) {
      if (r.phase == local::ReplicaPhase::kReady) continue;
      line += "; " + r.id + " ";
      if (r.phase == local::ReplicaPhase::kCrashed) {
        line += "crashed: " + r.last_crash;
        if (r.restart_at) {
          line += ", restarts in " + std::to_string(whole_seconds(*r.restart_at - now)) + " s";
        }
      } else if (r.phase == local::ReplicaPhase::kStarting) {
        line += "starting for " + std::to_string(whole_seconds(now - r.started_at)) +
                " s, not ready yet";
        if (s.protocol == UpstreamProtocol::kGrpc && !r.readiness_detail.empty()) {
          line += ": " + http::grpc_health_check_name(s.grpc_health_service) + " answered " +
                  r.readiness_detail;
          if (r.readiness_detail.starts_with("grpc-status 12 ")) {
            line +=
                " (the server has no health service: serve grpc.health.v1, or set "
                "services[].protocol: http2)";
          }
        } else if (r.readiness_status > 0) {
          line += ": GET " + std::string(s.effective_readiness_path()) + " answered " +
                  std::to_string(r.readiness_status);
          if (r.readiness_status == 404) line += " (services[].readiness_path sets the path)";
        }
        if (!r.last_crash.empty()) line += " (it last crashed: " + r.last_crash + ")";
      } else {
        line += std::string(local::to_string(r.phase));
      }
      line += log_ending(supervisor, r.id);
    }
    out.push_back(std::move(line));
  }
  return out;
}

void prepare_gateway(Config& config) {
  // Admission control is a property of each service (its queue_limit), enforced where its
  // requests enter: the gateway.
  config.gateway.max_requests_per_replica = admission_limits(config.services);
  // Its replicas are health-checked where the supervisor asked them whether they are ready.
  config.gateway.health_check_paths = health_check_paths(config.services);
  // One that scales to zero has its requests held until the replica they bring is ready.
  config.gateway.hold_for_replica = hold_for_replica(config.services);
  // One whose replicas speak HTTP/2 only (gRPC servers) is reached over HTTP/2.
  config.gateway.http2_upstreams = http2_upstreams(config.services);
  config.gateway.grpc_health_checks = grpc_health_checks(config.services);
  // Without routes, a gateway for one service sends it every request, as `prescale gateway`'s
  // does; else the gateway would refuse its replicas and answer 404.
  if (config.gateway.routes.empty() && config.services.size() == 1 &&
      std::all_of(config.gateway.upstreams.begin(), config.gateway.upstreams.end(),
                  [&](const auto& u) { return u.first == config.services[0].name; })) {
    RouteConfig all;
    all.service = config.services[0].name;
    config.gateway.routes.push_back(std::move(all));
  }
}

std::string catch_all_lost(const Config& running, const Config& next) {
  Config served = running;
  prepare_gateway(served);
  if (!running.gateway.routes.empty() || served.gateway.routes.empty()) return {};
  const std::string& one = served.gateway.routes[0].service;
  if (find_service(next, one) == nullptr) return {};  // removed: its route goes with it
  Config prepared = next;
  prepare_gateway(prepared);
  if (std::any_of(prepared.gateway.routes.begin(), prepared.gateway.routes.end(),
                  [&](const RouteConfig& r) { return r.service == one; })) {
    return {};
  }
  std::string others;
  for (const ServiceConfig& s : next.services) {
    if (s.name != one) others += (others.empty() ? "" : ", ") + s.name;
  }
  for (const auto& [service, endpoints] : next.gateway.upstreams) {
    if (service != one && find_service(next, service) == nullptr) {
      others += (others.empty() ? "" : ", ") + service;
    }
  }
  return "gateway.routes: " + one + " gets every request as the file's one service; with " +
         others + " beside it, no route would name " + one +
         " and the gateway would answer its requests 404: give it a route (`- {match: "
         "{path_prefix: /}, service: " +
         one + "}` takes every request no other route takes)";
}

std::vector<std::string> changes_needing_a_restart(const Config& running, const Config& next) {
  std::vector<std::string> out;
  if (next.world != running.world) out.push_back("world");
  if (!(next.http == running.http)) out.push_back("http");
  if (!(next.logging == running.logging)) out.push_back("logging");
  // The gateway's tracer is made at the start; the replicas would follow it by a rollout.
  if (!(next.tracing == running.tracing)) out.push_back("tracing");
  if (!(next.policy == running.policy)) out.push_back("policy");
  // The rollout analysis is looked up at each look: it may be switched at once (say after a
  // rollback it should not have made).
  HealerConfig next_healer = next.healer;
  next_healer.rollout_analysis = running.healer.rollout_analysis;
  if (!(next_healer == running.healer)) out.push_back("healer");
  if (next.gateway.listen != running.gateway.listen) out.push_back("gateway.listen");
  // Other certificate files are read at once; HTTPS itself is turned on or off by a restart.
  if (next.gateway.tls.enabled() != running.gateway.tls.enabled()) out.push_back("gateway.tls");
  if (next.gateway.threads != running.gateway.threads) out.push_back("gateway.threads");
  // A service added starts, one removed stops (service_changes); those in both are compared by
  // name, wherever they are listed.
  for (size_t i = 0; i < next.services.size(); ++i) {
    const ServiceConfig& b = next.services[i];
    const ServiceConfig* running_one = find_service(running, b.name);
    if (running_one == nullptr) continue;
    const ServiceConfig& a = *running_one;
    const std::string at = "services[" + std::to_string(i) + "] (" + a.name + ").";
    // What the policy's model of the replicas (its capacity model's workers, Knative's target)
    // was made from (the bounds, SLO, seeds and queue limit are not: the controller takes new
    // ones at once, spec_changes). `depends_on` is not: a live policy learns the call graph from
    // the calls it counts (the file's is the simulator's).
    if (a.effective_concurrency() != b.effective_concurrency()) {
      out.push_back(at + (a.concurrency != b.concurrency ? "concurrency" : "kind"));
    }
    // The gateway's health checks ask every replica of a service one path: the old replicas
    // would be asked the new one during a rollout, and after a rollback every replica.
    if (a.readiness_path != b.readiness_path) out.push_back(at + "readiness_path");
    // The same for the gRPC health checks: what they ask about, and whether they are made.
    if ((a.protocol == UpstreamProtocol::kGrpc) != (b.protocol == UpstreamProtocol::kGrpc)) {
      out.push_back(at + "protocol");
    } else if (a.grpc_health_service != b.grpc_health_service) {
      out.push_back(at + "grpc_health_service");
    }
  }
  return out;
}

const ServiceConfig* find_service(const Config& config, std::string_view name) {
  for (const ServiceConfig& s : config.services) {
    if (s.name == name) return &s;
  }
  return nullptr;
}

ServiceChanges service_changes(const Config& running, const Config& next) {
  ServiceChanges out;
  for (const ServiceConfig& s : next.services) {
    if (find_service(running, s.name) == nullptr) out.added.push_back(s.name);
  }
  for (const ServiceConfig& s : running.services) {
    if (find_service(next, s.name) == nullptr) out.removed.push_back(s.name);
  }
  return out;
}

std::string ServiceChanges::said() const {
  auto list = [](const std::vector<std::string>& names) {
    std::string out;
    for (const std::string& n : names) out += (out.empty() ? "" : ", ") + n;
    return out;
  };
  std::string out;
  if (!added.empty()) out = "added " + list(added);
  if (!removed.empty()) out += (out.empty() ? "" : "; ") + ("removed " + list(removed));
  return out;
}

std::vector<std::string> spec_changes(const ServiceConfig& running, const ServiceConfig& next) {
  std::vector<std::string> out;
  const ReplicaBounds& was = running.replicas;
  const ReplicaBounds& now = next.replicas;
  if (now.min != was.min || now.max != was.max) {
    out.push_back(fmt::format("replicas within [{}, {}] (were [{}, {}])", now.min, now.max, was.min,
                              was.max));
  }
  auto changed = [&](std::string_view field, auto before, auto after, std::string_view unit) {
    if (after != before)
      out.push_back(fmt::format("{} {}{} (was {}{})", field, after, unit, before, unit));
  };
  changed("slo.latency_p99_ms", running.slo.latency_p99_ms, next.slo.latency_p99_ms, "");
  changed("slo.error_budget", running.slo.error_budget, next.slo.error_budget, "");
  changed("capacity_rps", running.capacity_rps, next.capacity_rps, "");
  changed("startup_time", running.startup_time.count(), next.startup_time.count(), " ms");
  changed("queue_limit", running.effective_queue_limit().count(),
          next.effective_queue_limit().count(), " ms");
  return out;
}

void follow_respec(const Config& next, const std::vector<ServiceConfig>& respecified,
                   scaling::PrescalePolicy* prescale_policy, bool recommend_only,
                   LearnedAdmission& admission) {
  if (prescale_policy != nullptr && next.policy.steer_to_slo) {
    sim::PolicySettings steering;  // the tightest budget (sim::apply_policy_config)
    sim::apply_policy_config(next.policy, next.services, steering);
    prescale_policy->set_error_budget(steering.prescale.error_budget);
  }
  admission.respec(respecified, [&](std::string_view s) {
    return prescale_policy != nullptr && !recommend_only
               ? prescale_policy->capacity().capacity_rps(s)
               : NAN;
  });
}

std::vector<std::string> preflight_problems(const Config& config, const std::string& file,
                                            const ListenAddress& gateway, const ListenAddress& ui) {
  const std::filesystem::path config_dir = std::filesystem::absolute(file).parent_path();
  auto at = [&](size_t i, const std::string& field) {
    const ServiceConfig& s = config.services[i];
    return file + ":" + std::to_string(s.line) + ": services[" + std::to_string(i) + "] (" +
           s.name + ")." + field + ": ";
  };
  std::vector<std::string> problems;
  for (size_t i = 0; i < config.services.size(); ++i) {
    const ServiceConfig& s = config.services[i];
    if (s.kind == ServiceKind::kCommand) {
      if (auto exe = local::resolve_executable(s.command.at(0)); !exe) {
        problems.push_back(at(i, "command") + exe.error().message +
                           "; give the program's path, or add its directory to PATH");
      }
      const bool has_port = std::any_of(s.command.begin(), s.command.end(), [](const auto& a) {
        return a.find("{port}") != std::string::npos;
      });
      if (!has_port && s.replicas.max > 1) {
        problems.push_back(at(i, "command") +
                           "no \"{port}\" argument, so every replica would listen on the "
                           "same port; pass \"{port}\" where the program takes its port");
      }
    }
    if (s.kind == ServiceKind::kRecommend) {
      const std::filesystem::path dir = s.model_dir.empty() ? "models" : s.model_dir;
      const std::filesystem::path abs = dir.is_absolute() ? dir : config_dir / dir;
      std::error_code ec;
      if (!std::filesystem::is_directory(abs, ec) || std::filesystem::is_empty(abs, ec)) {
        problems.push_back(at(i, "model_dir") + abs.lexically_normal().string() +
                           " holds no model; train one: prescale train recommend --data "
                           "DIR_WITH_RATINGS_CSV --model-dir " +
                           abs.lexically_normal().string());
      }
    }
  }
  if (gateway.port != 0 && gateway.port == ui.port) {
    problems.push_back(file + ": gateway.listen and the dashboard (--ui) both use port " +
                       std::to_string(gateway.port) + "; give one of them another port");
  }
  return problems;
}

Result<void> preflight(const Config& config, const std::string& file, const ListenAddress& gateway,
                       const ListenAddress& ui) {
  const std::vector<std::string> problems = preflight_problems(config, file, gateway, ui);
  if (problems.empty()) return {};
  std::string message;
  for (const std::string& p : problems) message += (message.empty() ? "" : "\n") + p;
  return make_error(ErrorCode::kInvalidArgument, message);
}

std::vector<std::string> unrouted_warnings(const Config& config) {
  std::vector<std::string> lines;
  for (const ServiceConfig& s : config.services) {
    if (std::none_of(config.gateway.routes.begin(), config.gateway.routes.end(),
                     [&](const RouteConfig& r) { return r.service == s.name; })) {
      lines.push_back("service " + s.name +
                      ": no gateway route names it, so the gateway sends it no requests");
    }
  }
  return lines;
}

Result<std::string> live_policy_name(const Config& config, const std::string& flag) {
  const std::string name = flag.empty() ? std::string(to_string(config.policy.name)) : flag;
  if (name == "oracle" || name == "static") {
    return make_error(ErrorCode::kInvalidArgument,
                      "--policy " + name + " needs the future of a trace: use it in prescale sim");
  }
  // The config's policy.name is always known: this is --policy.
  if (std::find(std::begin(sim::kPolicyNames), std::end(sim::kPolicyNames), name) ==
      std::end(sim::kPolicyNames)) {
    std::string known;
    for (std::string_view n : sim::kPolicyNames) {
      if (n == "oracle" || n == "static") continue;
      known += (known.empty() ? "" : ", ") + std::string(n);
    }
    return make_error(ErrorCode::kInvalidArgument,
                      "--policy " + name + ": unknown policy; known: " + known);
  }
  return name;
}

}  // namespace prescale
