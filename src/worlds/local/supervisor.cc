#include "worlds/local/supervisor.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <signal.h>
#include <spdlog/spdlog.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <charconv>
#include <cmath>
#include <cstring>
#include <deque>
#include <filesystem>
#include <fstream>
#include <memory>
#include <mutex>
#include <set>
#include <sstream>
#include <utility>

#include "core/byte_size.h"
#include "http/client.h"
#include "http/grpc_health.h"

namespace prescale::local {

std::string_view to_string(ReplicaPhase phase) {
  switch (phase) {
    case ReplicaPhase::kStarting: return "starting";
    case ReplicaPhase::kReady: return "ready";
    case ReplicaPhase::kDraining: return "draining";
    case ReplicaPhase::kStopping: return "stopping";
    case ReplicaPhase::kCrashed: return "crashed";
  }
  return "unknown";
}

struct Supervisor::Replica {
  std::string id;
  // What it was started from: its service's template when it was made, kept through restarts.
  std::shared_ptr<const ReplicaTemplate> tmpl;
  int revision = 1;
  ReplicaPhase phase = ReplicaPhase::kStarting;
  std::unique_ptr<Process> process;
  std::uint16_t port = 0;
  std::string port_file;
  Clock::TimePoint started_at{};
  std::optional<Clock::TimePoint> ready_at;
  Clock::TimePoint next_probe{};
  std::unique_ptr<ReadinessCheck> check;  // in flight while starting
  std::unique_ptr<ReadinessCheck> liveness;  // in flight while ready
  Clock::TimePoint next_liveness{};
  int liveness_failures = 0;       // in a row
  std::string
      liveness_failure;  // the last one's answer ("got no answer within 1000 ms", "answered 500")
  Clock::TimePoint phase_since{};  // when draining or stopping began
  // Since when the gateway sends it no new requests (its drain's start; its start, where it never
  // joined the gateway); nullopt while it may get them, or where that is not known.
  std::optional<Clock::TimePoint> no_requests_since;
  bool registered = false;         // announced to the sink
  int restarts = 0;
  int crash_streak = 0;            // consecutive crashes, for the back-off
  std::optional<Clock::TimePoint> restart_at;
  std::string last_crash;
  int readiness_status = 0;        // ReplicaStatus::readiness_status
  std::string readiness_detail;    // ReplicaStatus::readiness_detail
  bool retiring = false;           // leaves once stopped, whatever its phase
  // Why we sent this process SIGKILL, once we have ("still running after SIGTERM", "over its
  // memory limit: ..."); its exit is then not blamed on kill -9 or the kernel.
  std::string killed_for;
  // The replacement whose readiness starts this replica's drain (ReplaceMode::
  // kDrainWhenReplacementReady); "" otherwise.
  std::string drain_after;
  bool rolled = false;  // replaced by a rolling update (Supervisor::roll), waiting for drain_after
  std::uint64_t memory_bytes = 0;  // ReplicaStatus::memory_bytes
  std::optional<Clock::TimePoint> memory_at;
};

struct Supervisor::Service {
  std::string name;
  std::shared_ptr<const ReplicaTemplate> tmpl;  // new replicas start from it
  int revision = 1;
  int next_revision = 2;
  // The last revision every replica ran: a failed rollout returns to it.
  std::shared_ptr<const ReplicaTemplate> stable;
  int stable_revision = 1;
  bool rolling = false;     // replicas of other revisions than `revision` remain
  int rollout_crashes = 0;  // of `revision`'s replicas since its rollout began
  std::string failed;       // RolloutStatus::failed
  std::shared_ptr<const ReplicaTemplate> failed_tmpl;  // that revision's template
  std::string roll_back;    // why the rollout fails, to roll it back at the end of this tick
  int desired = 0;
  // remove_service(): its replicas drain; it stays, unlisted, for its numbering and old logs.
  bool removed = false;
  int next_index = 1;
  std::vector<std::unique_ptr<Replica>> replicas;
  std::deque<std::string> gone_logs;  // of replicas that left, the oldest first
};

namespace {

std::string substitute(std::string s, std::string_view key, std::string_view value) {
  for (size_t at = s.find(key); at != std::string::npos; at = s.find(key, at + value.size())) {
    s.replace(at, key.size(), value);
  }
  return s;
}

bool mentions(const ReplicaTemplate& t, std::string_view key) {
  auto has = [&](const std::string& s) { return s.find(key) != std::string::npos; };
  return std::any_of(t.argv.begin(), t.argv.end(), has) ||
         std::any_of(t.env.begin(), t.env.end(), [&](const auto& kv) { return has(kv.second); });
}

// Moves `log` aside to `log`.1 once it is over `max_bytes`: copied, then emptied in place (as
// logrotate's copytruncate), since the replica keeps writing to it; its writes append, so the
// next one lands at the start of the emptied file.
void bound_log(const std::string& log, std::uint64_t max_bytes) {
  std::error_code ec;
  const std::uintmax_t size = std::filesystem::file_size(log, ec);
  if (ec || size <= max_bytes) return;
  const std::string previous = moved_aside_log_path(log);
  std::filesystem::remove(previous, ec);  // a new file, not written through whatever was there
  if (!std::filesystem::copy_file(log, previous, ec) || ::truncate(log.c_str(), 0) != 0) {
    spdlog::warn("replica log {} ({} bytes) not moved aside: {}", log, size,
                 ec ? ec.message() : std::strerror(errno));
  }
}

}  // namespace

std::string program_identity(const std::string& name) {
  const Result<std::string> path = resolve_executable(name);
  struct stat st {};
  if (!path || ::stat(path->c_str(), &st) != 0) return "";
  return *path + " " + std::to_string(st.st_ino) + " " + std::to_string(st.st_size) + " " +
         std::to_string(static_cast<long long>(st.st_mtim.tv_sec) * 1'000'000'000LL +
                        st.st_mtim.tv_nsec);
}

namespace {

// How many times a free port is asked for before a start gives up (Supervisor::start()).
constexpr int kFreePortAsks = 8;

// Whether the replica is of a new revision being rolled out (not of a rollback's).
bool of_a_rollout(const auto& s, const auto& r) {
  return s.rolling && r.revision == s.revision && s.revision != s.stable_revision;
}

bool serving(ReplicaPhase p) {
  return p == ReplicaPhase::kStarting || p == ReplicaPhase::kReady || p == ReplicaPhase::kCrashed;
}

}  // namespace

Supervisor::Supervisor(SupervisorOptions options, ProcessLauncher& launcher, ReplicaProbe& probe,
                       EndpointSink& sink)
    : options_(std::move(options)), launcher_(launcher), probe_(probe), sink_(sink) {}

Supervisor::~Supervisor() = default;  // each Process kills its child's group

Result<void> Supervisor::validate(const ReplicaTemplate& t) const {
  if (t.argv.empty()) {
    return make_error(ErrorCode::kInvalidArgument, "service " + t.service + ": empty command");
  }
  if (!t.readiness_path.starts_with('/')) {
    return make_error(ErrorCode::kInvalidArgument, "service " + t.service +
                                                       ": the readiness path must start with \"/\"");
  }
  if (!t.liveness_path.empty() &&
      (!t.liveness_path.starts_with('/') || t.liveness_interval <= Clock::Duration::zero() ||
       t.liveness_timeout <= std::chrono::milliseconds(0) ||
       t.liveness_timeout >= t.liveness_interval || t.liveness_failure_threshold < 1)) {
    return make_error(ErrorCode::kInvalidArgument,
                      "service " + t.service +
                          ": liveness needs a path starting with \"/\", a timeout > 0 and "
                          "shorter than its interval, and a failure threshold >= 1");
  }
  const bool uses_port_file = mentions(t, "{port_file}");
  if (uses_port_file && mentions(t, "{port}")) {
    return make_error(ErrorCode::kInvalidArgument,
                      "service " + t.service + ": use either {port} or {port_file}, not both");
  }
  if (uses_port_file && options_.run_dir.empty()) {
    return make_error(ErrorCode::kInvalidArgument,
                      "service " + t.service + ": {port_file} needs the supervisor's run_dir");
  }
  return {};
}

Result<void> Supervisor::add_service(ReplicaTemplate t) {
  if (auto valid = validate(t); !valid) return valid;
  if (find(t.service) != nullptr) {
    return make_error(ErrorCode::kInvalidArgument, "service " + t.service + " declared twice");
  }
  for (auto& draining : services_) {
    if (draining->name != t.service) continue;
    // Removed (its replicas draining, or gone): declared again, from the new template.
    Service& s = *draining;
    s.removed = false;
    s.tmpl = std::make_shared<const ReplicaTemplate>(std::move(t));
    s.stable = s.tmpl;
    s.revision = s.stable_revision = s.next_revision++;
    s.failed.clear();
    s.failed_tmpl.reset();
    return {};
  }
  auto s = std::make_unique<Service>();
  s->name = t.service;
  s->tmpl = std::make_shared<const ReplicaTemplate>(std::move(t));
  s->stable = s->tmpl;
  services_.push_back(std::move(s));
  return {};
}

Result<void> Supervisor::update(ReplicaTemplate t, Clock::TimePoint now) {
  Service* s = find(t.service);
  if (s == nullptr) return make_error(ErrorCode::kNotFound, "no service named " + t.service);
  if (auto valid = validate(t); !valid) return valid;
  if (t == *s->tmpl) return {};
  if (s->failed_tmpl && t == *s->failed_tmpl) {
    return make_error(ErrorCode::kInvalidArgument,
                      "service " + s->name + ": " + s->failed +
                          "; it is not rolled out again until the service's entry changes");
  }
  s->roll_back.clear();  // a failure seen in the revision this one replaces is not this one's
  s->failed.clear();
  s->failed_tmpl.reset();
  if (s->rolling && t == *s->stable) {  // back to what every replica ran
    service_event(
        now, "rollout", *s,
        "back to revision " + std::to_string(s->stable_revision) + ", which every replica ran");
    return_to_stable(*s, now);
    return {};
  }
  if (!s->rolling) {
    s->stable = s->tmpl;
    s->stable_revision = s->revision;
  }
  s->tmpl = std::make_shared<const ReplicaTemplate>(std::move(t));
  s->revision = s->next_revision++;
  s->rolling = true;
  s->rollout_crashes = 0;
  service_event(now, "rollout", *s,
                "revision " + std::to_string(s->revision) +
                    ": replacing the replicas of revision " + std::to_string(s->stable_revision) +
                    ", each once its replacement is ready");
  roll(*s, now);
  return {};
}

RolloutStatus Supervisor::rollout(std::string_view service) const {
  RolloutStatus out;
  const Service* s = find(service);
  if (s == nullptr) return out;
  out.revision = s->revision;
  out.stable = s->stable_revision;
  out.rolling = s->rolling;
  out.failed = s->failed;
  for (const auto& r : s->replicas) {
    if (r->revision != s->revision) {
      ++out.outdated;
    } else if (!r->retiring &&
               (r->phase == ReplicaPhase::kStarting || r->phase == ReplicaPhase::kReady)) {
      ++out.updated;
    }
  }
  return out;
}

// One step of a rolling update: outdated replicas that serve nothing go at once; ready ones are
// replaced, each serving until its replacement is ready, at most max surge at a time.
void Supervisor::roll(Service& s, Clock::TimePoint now) {
  if (!s.rolling) return;
  const int surge = std::max(
      1, static_cast<int>(std::ceil(options_.rollout_max_surge * static_cast<double>(s.desired))));
  int replacing = 0;
  std::vector<Replica*> ready;
  bool outdated = false;
  for (auto& r : s.replicas) {
    if (r->revision == s.revision) continue;
    outdated = true;
    if (r->retiring) {
      replacing += r->drain_after.empty() ? 0 : 1;
    } else if (r->phase == ReplicaPhase::kReady && r->process) {
      ready.push_back(r.get());
    } else {
      begin_drain(s, *r, now);
    }
  }
  for (Replica* r : ready) {
    if (replacing >= surge) break;
    (void)replace(r->id, now, ReplaceMode::kDrainWhenReplacementReady);
    r->rolled = true;
    ++replacing;
  }
  if (!outdated) {
    s.rolling = false;
    s.stable = s.tmpl;
    s.stable_revision = s.revision;
    if (s.failed.empty()) {
      service_event(now, "rolled-out", s,
                    "revision " + std::to_string(s.revision) + ": every replica updated");
    }
  }
}

void Supervisor::roll_back(Service& s, Clock::TimePoint now, const std::string& why) {
  s.failed = "revision " + std::to_string(s.revision) + " failed: " + why;
  s.failed_tmpl = s.tmpl;
  // A revision that differs only by its program's build (a rebuild, then a reload) cannot be
  // undone here: replicas start from the file, which holds the failed build.
  ReplicaTemplate rebuilt = *s.tmpl;
  rebuilt.program = s.stable->program;
  service_event(now, "rollback", s,
                s.failed + "; back to revision " + std::to_string(s.stable_revision) +
                    ", which every replica ran" +
                    (rebuilt == *s.stable && s.tmpl->program != s.stable->program
                         ? ", but its program file holds the failed build: a replica that starts "
                           "runs it, until the old build is put back"
                         : ""));
  return_to_stable(s, now);
}

// The service runs its last complete revision again: replicas of it that a rolling update was
// replacing stay (their replacements, of the revision given up, are outdated now).
void Supervisor::return_to_stable(Service& s, Clock::TimePoint now) {
  s.tmpl = s.stable;
  s.revision = s.stable_revision;
  s.rollout_crashes = 0;
  for (auto& r : s.replicas) {
    if (r->rolled && r->revision == s.revision && !r->drain_after.empty()) {
      r->rolled = false;
      r->retiring = false;
      r->drain_after.clear();
    }
  }
  roll(s, now);
}

Supervisor::Service* Supervisor::find(std::string_view name) {
  for (auto& s : services_) {
    if (s->name == name && !s->removed) return s.get();
  }
  return nullptr;
}

const Supervisor::Service* Supervisor::find(std::string_view name) const {
  for (const auto& s : services_) {
    if (s->name == name && !s->removed) return s.get();
  }
  return nullptr;
}

Result<void> Supervisor::remove_service(std::string_view service, Clock::TimePoint now) {
  Service* s = find(service);
  if (s == nullptr) {
    return make_error(ErrorCode::kNotFound, "no service named " + std::string(service));
  }
  s->removed = true;
  s->desired = 0;
  // A rolling update under way ends here: every replica, of whichever revision, drains.
  s->rolling = false;
  s->roll_back.clear();
  reconcile(*s, now);
  return {};
}

Result<void> Supervisor::set_desired(std::string_view service, int replicas) {
  Service* s = find(service);
  if (s == nullptr) {
    return make_error(ErrorCode::kNotFound, "no service named " + std::string(service));
  }
  if (replicas < 0) {
    return make_error(ErrorCode::kInvalidArgument, "replicas must be >= 0");
  }
  s->desired = replicas;
  return {};
}

int Supervisor::desired(std::string_view service) const {
  const Service* s = find(service);
  return s != nullptr ? s->desired : 0;
}

Result<void> Supervisor::replace(std::string_view replica_id, Clock::TimePoint now,
                                 ReplaceMode mode) {
  for (auto& s : services_) {
    for (auto& r : s->replicas) {
      if (r->id != replica_id || r->retiring) continue;
      Replica& old = *r;  // `r` is an element of the list reconcile() grows
      old.retiring = true;
      const bool wait = mode == ReplaceMode::kDrainWhenReplacementReady &&
                        old.phase == ReplicaPhase::kReady && old.process;
      const size_t before = s->replicas.size();
      if (wait) {
        old.drain_after = s->name + "-" + std::to_string(s->next_index);  // reconcile's next
      } else {
        begin_drain(*s, old, now);
      }
      reconcile(*s, now);  // the replacement starts now, before the old one has gone
      if (wait && s->replicas.size() == before) {
        // None started: the others already make the desired count (a scale-down under way).
        old.drain_after.clear();
        begin_drain(*s, old, now);
      }
      return {};
    }
  }
  return make_error(ErrorCode::kNotFound, "no replica named " + std::string(replica_id));
}

void Supervisor::event(Clock::TimePoint now, std::string kind, const Service& s, const Replica& r,
                       std::string message) {
  if (options_.on_event) {
    options_.on_event(ReplicaEvent{now, std::move(kind), s.name, r.id, std::move(message)});
  }
}

void Supervisor::service_event(Clock::TimePoint now, std::string kind, const Service& s,
                               std::string message) {
  if (options_.on_event) {
    options_.on_event(ReplicaEvent{now, std::move(kind), s.name, "", std::move(message)});
  }
}

void Supervisor::start(Service& s, Replica& r, Clock::TimePoint now) {
  LaunchSpec spec;
  std::string port_text;
  r.port = 0;
  r.port_file.clear();
  r.readiness_status = 0;
  r.readiness_detail.clear();
  // Made again when they have gone while the platform ran (the state directory deleted by hand
  // or by a cleaner of /tmp): without them no replica could start again. What fails here fails
  // the launch or the replica, saying why.
  std::error_code ignored;
  const ReplicaTemplate& t = *r.tmpl;
  const bool uses_port_file = mentions(t, "{port_file}");
  if (uses_port_file) std::filesystem::create_directories(options_.run_dir, ignored);
  if (!options_.log_dir.empty()) std::filesystem::create_directories(options_.log_dir, ignored);
  if (uses_port_file) {
    r.port_file = options_.run_dir + "/" + r.id + ".port";
    ::unlink(r.port_file.c_str());
  } else {
    // A free port is one nothing listens on yet, and a replica just started does not listen yet:
    // the kernel may offer its port again. A port a process of ours was given is asked again for,
    // not handed to a second replica (one of the two would crash on its bind, perhaps announced on
    // the other's port first).
    auto given = [&](std::uint16_t port) {
      for (const auto& other_service : services_) {
        for (const auto& other : other_service->replicas) {
          if (other.get() != &r && other->process && other->port == port) return true;
        }
      }
      return false;
    };
    auto port = probe_.free_port();
    for (int asked = 1; port && given(*port) && asked < kFreePortAsks; ++asked) {
      port = probe_.free_port();
    }
    if (port && given(*port)) {
      port = make_error(ErrorCode::kUnavailable, "port " + std::to_string(*port) +
                                                     " offered again, held by another replica");
    }
    if (!port) {
      crashed(s, r, now, "no free port: " + port.error().message);
      return;
    }
    r.port = *port;
    port_text = std::to_string(*port);
  }
  auto expand = [&](std::string v) {
    v = substitute(std::move(v), "{port_file}", r.port_file);
    v = substitute(std::move(v), "{port}", port_text);
    return substitute(std::move(v), "{replica}", r.id);
  };
  for (const auto& a : t.argv) spec.argv.push_back(expand(a));
  for (const auto& [k, v] : t.env) spec.env.emplace_back(k, expand(v));
  spec.env.emplace_back("PRESCALE_REPLICA", r.id);
  spec.env.emplace_back("PRESCALE_SERVICE", s.name);
  spec.log_path = log_path(r.id);
  if (!spec.log_path.empty() && options_.max_log_bytes > 0) {
    bound_log(spec.log_path, options_.max_log_bytes);
  }
  r.phase = ReplicaPhase::kStarting;
  r.started_at = now;
  r.ready_at.reset();
  r.restart_at.reset();
  r.next_probe = now;
  r.check.reset();  // the previous process's
  r.liveness.reset();
  r.liveness_failures = 0;
  r.killed_for.clear();
  r.memory_bytes = 0;
  r.memory_at.reset();
  auto process = launcher_.launch(spec);
  if (!process) {
    r.process.reset();
    crashed(s, r, now, process.error().message);
    return;
  }
  r.process = std::move(*process);
  event(now, r.restarts > 0 ? "restart" : "start", s, r,
        "pid " + std::to_string(r.process->pid()) +
            (r.port != 0 ? ", port " + std::to_string(r.port) : std::string()));
}

void Supervisor::crashed(Service& s, Replica& r, Clock::TimePoint now, const std::string& why) {
  if (r.registered) {
    sink_.remove(s.name, r.id);
    r.registered = false;
  }
  if (r.retiring) {  // leaving anyway (replaced, waiting for its replacement): it ends here
    r.process.reset();
    r.drain_after.clear();
    r.phase = ReplicaPhase::kStopping;
    event(now, "stop", s, r, why);
    return;
  }
  if (r.ready_at && now - *r.ready_at >= options_.backoff_reset_after) r.crash_streak = 0;
  ++r.crash_streak;
  Clock::Duration delay = options_.restart_backoff;
  for (int i = 1; i < r.crash_streak && delay < options_.max_restart_backoff; ++i) delay *= 2;
  delay = std::min(delay, options_.max_restart_backoff);
  r.phase = ReplicaPhase::kCrashed;
  r.ready_at.reset();
  r.restart_at = now + delay;
  r.last_crash = why;
  event(now, "crash", s, r,
        why + "; restarting in " + std::to_string(std::chrono::duration_cast<std::chrono::seconds>(delay).count()) + " s");
  // A new revision whose replicas keep crashing is rolled back (at the end of a tick's pass over
  // the replicas: that changes the list).
  if (of_a_rollout(s, r) && ++s.rollout_crashes >= options_.rollout_failure_crashes &&
      s.roll_back.empty()) {
    s.roll_back = "its replicas crashed " + std::to_string(s.rollout_crashes) +
                  " times, the last " + r.id + ": " + why;
  }
}

bool Supervisor::failing(std::string_view replica_id, const std::string& why) {
  for (auto& s : services_) {
    for (const auto& r : s->replicas) {
      if (r->id != replica_id) continue;
      if (!of_a_rollout(*s, *r)) return false;
      if (s->roll_back.empty()) s->roll_back = r->id + " " + why;
      return true;
    }
  }
  return false;
}

void Supervisor::begin_drain(Service& s, Replica& r, Clock::TimePoint now) {
  r.retiring = true;
  if (r.phase == ReplicaPhase::kCrashed || !r.process) {
    r.phase = ReplicaPhase::kStopping;
    r.process.reset();
    return;
  }
  if (r.registered) sink_.remove(s.name, r.id);
  r.no_requests_since = r.registered ? now : r.started_at;
  r.phase = ReplicaPhase::kDraining;
  r.phase_since = now;
  event(now, "drain", s, r, r.registered ? "no new requests; in-flight ones finish" : "never ready");
}

void Supervisor::advance(Service& s, Replica& r, Clock::TimePoint now) {
  if (r.process) {
    if (std::optional<int> status = r.process->poll_exit()) {
      const int signal = r.process->ended_by_signal();
      // Our own SIGKILL is not blamed on kill -9 or the out-of-memory killer.
      const std::string how = !r.killed_for.empty() && signal == SIGKILL
                                  ? "killed by signal " + std::to_string(SIGKILL) +
                                        " (SIGKILL, sent by the supervisor: " + r.killed_for + ")"
                                  : describe_exit(*status, signal);
      r.process.reset();
      if (r.retiring) {
        if (r.registered) sink_.remove(s.name, r.id);
        r.registered = false;
        event(now, "stop", s, r, how);
        r.phase = ReplicaPhase::kStopping;  // reaped below
        return;
      }
      crashed(s, r, now, how);
      return;
    }
  }
  switch (r.phase) {
    case ReplicaPhase::kCrashed:
      if (r.restart_at && now >= *r.restart_at) {
        ++r.restarts;
        start(s, r, now);
      }
      return;
    case ReplicaPhase::kStarting: {
      // A new check once the last one has answered, at most one per probe_interval; the answer
      // is read on every tick, so a ready replica is seen as soon as it says so.
      if (!r.check && now >= r.next_probe) {
        r.next_probe = now + options_.probe_interval;
        if (r.port == 0 && !r.port_file.empty()) {
          if (auto port = probe_.read_port_file(r.port_file)) r.port = *port;
        }
        if (r.port != 0) {
          r.check =
              start_check(*r.tmpl, r.port, r.tmpl->readiness_path, options_.readiness_timeout);
        }
      }
      std::optional<bool> answer;
      if (r.check && (answer = r.check->answer())) {
        r.readiness_status = r.check->status();
        r.readiness_detail = r.check->detail();
        r.check.reset();
      }
      if (answer.value_or(false)) {
        r.phase = ReplicaPhase::kReady;
        r.ready_at = now;
        r.next_liveness = now + r.tmpl->liveness_interval;
        sink_.add(s.name, r.id, r.port);
        r.registered = true;
        event(now, "ready", s, r,
              "port " + std::to_string(r.port) + ", ready after " +
                  format_millis(now - r.started_at));
        return;
      }
      if (now - r.started_at >= options_.ready_timeout) {
        r.check.reset();
        r.process->signal(SIGKILL);
        r.process.reset();
        crashed(s, r, now, "not ready within the ready timeout");
      }
      return;
    }
    case ReplicaPhase::kReady:
      if (r.ready_at && now - *r.ready_at >= options_.backoff_reset_after) r.crash_streak = 0;
      if (!r.drain_after.empty()) {
        const auto next =
            std::find_if(s.replicas.begin(), s.replicas.end(),
                         [&](const auto& other) { return other->id == r.drain_after; });
        const bool ready = next != s.replicas.end() && (*next)->phase == ReplicaPhase::kReady;
        const bool left = !ready && (next == s.replicas.end() || (*next)->retiring);
        if (left && r.rolled) {
          // A rolling update's replacement left before it was ready (scaled away, or outdated by
          // another update or a rollback): this replica stays, and is replaced again if it must
          // (a scale-down takes an outdated one first).
          r.retiring = false;
          r.rolled = false;
          r.drain_after.clear();
        } else if (left || (ready && (!r.rolled ||
                                      now - *(*next)->ready_at >= options_.rollout_min_ready))) {
          // Replaced (a rolling update's replacement must also have stayed ready a while), or
          // a replacement asked for otherwise (the healer's) gone: it leaves, and the count
          // is made up as for any replica that leaves.
          r.drain_after.clear();
          begin_drain(s, r, now);
          return;
        }
      }
      check_liveness(s, r, now);
      return;
    case ReplicaPhase::kDraining:
      if ((r.registered ? sink_.in_flight(s.name, r.id) : 0) <= 0 ||
          now - r.phase_since >= options_.drain_timeout) {
        r.registered = false;
        r.process->signal(SIGTERM);
        r.phase = ReplicaPhase::kStopping;
        r.phase_since = now;
      }
      return;
    case ReplicaPhase::kStopping:
      if (r.process && r.killed_for.empty() && now - r.phase_since >= options_.term_grace) {
        r.process->signal(SIGKILL);
        r.killed_for = "still running after SIGTERM";
        event(now, "kill", s, r, "still running after SIGTERM; SIGKILL");
        r.phase_since = now + std::chrono::hours(24);  // once
      }
      return;
  }
}

std::unique_ptr<ReadinessCheck> Supervisor::start_check(const ReplicaTemplate& t,
                                                        std::uint16_t port, const std::string& path,
                                                        std::chrono::milliseconds timeout) {
  if (t.grpc_health_service) return probe_.check_grpc_health(port, *t.grpc_health_service, timeout);
  return t.http2 ? probe_.check_ready_http2(port, path, timeout)
                 : probe_.check_ready(port, path, timeout);
}

std::string check_name(const ReplicaTemplate& t, const std::string& path) {
  return t.grpc_health_service ? http::grpc_health_check_name(*t.grpc_health_service)
                               : "GET " + path;
}

// A ready replica's liveness: one check in flight at most, one per liveness_interval; a check
// still unanswered when the next is due has failed (the real probe answers within its timeout,
// shorter than any sensible interval).
void Supervisor::check_liveness(Service& s, Replica& r, Clock::TimePoint now) {
  const ReplicaTemplate& t = *r.tmpl;
  if (t.liveness_path.empty()) return;
  std::optional<bool> alive;
  if (r.liveness) {
    if (r.liveness->answer()) {
      const int status = r.liveness->status();
      alive = status > 0 && status < 500;
      if (!*alive) {
        const std::string failure = status > 0 ? std::string() : r.liveness->failure();
        if (status > 0) {
          r.liveness_failure = "answered " + std::to_string(status);
        } else if (!failure.empty()) {
          r.liveness_failure = "got no answer (" + failure + ")";
        } else {
          r.liveness_failure = "got no answer within " + format_millis(t.liveness_timeout);
        }
      }
    } else if (now >= r.next_liveness) {
      alive = false;
      r.liveness_failure = "got no answer within " + format_millis(t.liveness_timeout);
    }
    if (alive) r.liveness.reset();
  }
  if (alive) r.liveness_failures = *alive ? 0 : r.liveness_failures + 1;
  if (r.liveness_failures >= t.liveness_failure_threshold) {
    // Not drained: a replica that does not answer its liveness path cannot be trusted to finish
    // what it holds, and SIGKILL is the one signal a stopped (SIGSTOP) process does not hold.
    const std::string why = "not alive: " + check_name(t, t.liveness_path) + " " +
                            r.liveness_failure + ", " + std::to_string(r.liveness_failures) +
                            " checks in a row (services[].liveness); killed";
    r.liveness_failures = 0;
    r.process->signal(SIGKILL);
    r.process.reset();
    crashed(s, r, now, why);
    return;
  }
  if (!r.liveness && now >= r.next_liveness) {
    r.next_liveness = now + t.liveness_interval;
    r.liveness = start_check(t, r.port, t.liveness_path, t.liveness_timeout);
  }
}

// The replica's memory as of the last look, and its limit.
void Supervisor::check_memory(Service& s, Replica& r, Clock::TimePoint now,
                              const std::map<int, std::uint64_t>& memory) {
  const auto found = memory.find(r.process->pid());
  if (found == memory.end()) return;  // ended since, or not yet in /proc
  r.memory_bytes = found->second;
  r.memory_at = now;
  const std::uint64_t limit = r.tmpl->memory_limit_bytes;
  if (limit == 0 || r.memory_bytes <= limit || !r.killed_for.empty()) return;
  const std::string why = "over its memory limit: " + format_mebibytes(r.memory_bytes) + " of " +
                          format_byte_size({limit}) + " (services[].memory_limit); killed";
  r.process->signal(SIGKILL);
  r.process.reset();
  crashed(s, r, now, why);  // a replica leaving anyway stops here, saying so
}

void Supervisor::reconcile(Service& s, Clock::TimePoint now) {
  int active = 0;
  for (const auto& r : s.replicas) active += !r->retiring && serving(r->phase) ? 1 : 0;
  while (active < s.desired) {
    auto r = std::make_unique<Replica>();
    r->id = s.name + "-" + std::to_string(s.next_index++);
    r->tmpl = s.tmpl;
    r->revision = s.revision;
    Replica& ref = *r;
    s.replicas.push_back(std::move(r));
    start(s, ref, now);
    ++active;
  }
  // Fewest losses first: a replica waiting to restart, then one still starting, then a ready one
  // of an older revision (a rolling update would replace it), then the newest ready one (the
  // oldest have proven themselves).
  auto rank = [&](const Replica& r) {
    switch (r.phase) {
      case ReplicaPhase::kCrashed:
        return 0;
      case ReplicaPhase::kStarting:
        return 1;
      default:
        return r.revision != s.revision ? 2 : 3;
    }
  };
  while (active > s.desired) {
    Replica* victim = nullptr;
    for (auto& r : s.replicas) {
      if (r->retiring || !serving(r->phase)) continue;
      if (victim == nullptr || rank(*r) < rank(*victim) ||
          (rank(*r) == rank(*victim) && r->started_at >= victim->started_at)) {
        victim = r.get();
      }
    }
    if (victim == nullptr) break;
    begin_drain(s, *victim, now);
    --active;
  }
}

std::string moved_aside_log_path(std::string_view log) { return std::string(log) + ".1"; }

std::string Supervisor::log_path(std::string_view replica_id) const {
  return options_.log_dir.empty() ? std::string()
                                  : options_.log_dir + "/" + std::string(replica_id) + ".log";
}

// A replica has left for good: its port file goes, and its log joins the gone ones, of which the
// oldest beyond kept_logs_of_gone_replicas are deleted.
void Supervisor::gone(Service& s, const Replica& r) {
  if (!r.port_file.empty()) ::unlink(r.port_file.c_str());
  if (options_.log_dir.empty()) return;
  s.gone_logs.push_back(log_path(r.id));
  while (s.gone_logs.size() > options_.kept_logs_of_gone_replicas) {
    std::error_code ec;
    std::filesystem::remove(s.gone_logs.front(), ec);
    std::filesystem::remove(moved_aside_log_path(s.gone_logs.front()), ec);
    s.gone_logs.pop_front();
  }
}

void Supervisor::tick(Clock::TimePoint now) {
  const bool check_logs =
      !options_.log_dir.empty() && options_.max_log_bytes > 0 && now >= next_log_check_;
  if (check_logs) next_log_check_ = now + options_.log_check_interval;
  std::map<int, std::uint64_t> memory;
  const bool check_memory = options_.read_memory && now >= next_memory_check_;
  if (check_memory) {
    next_memory_check_ = now + options_.memory_check_interval;
    std::set<int> groups;  // a replica's group is its pid
    for (const auto& s : services_) {
      for (const auto& r : s->replicas) {
        if (r->process) groups.insert(r->process->pid());
      }
    }
    memory = options_.read_memory(groups);
  }
  for (auto& s : services_) {
    for (auto& r : s->replicas) {
      if (check_memory && r->process) this->check_memory(*s, *r, now, memory);
      advance(*s, *r, now);
      if (check_logs && r->process) bound_log(log_path(r->id), options_.max_log_bytes);
    }
    std::erase_if(s->replicas, [&](const std::unique_ptr<Replica>& r) {
      const bool left = r->retiring && r->phase == ReplicaPhase::kStopping && !r->process;
      if (left) gone(*s, *r);
      return left;
    });
    if (!s->roll_back.empty()) {
      roll_back(*s, now, std::exchange(s->roll_back, {}));
    } else {
      roll(*s, now);
    }
    reconcile(*s, now);
  }
}

void Supervisor::stop_all() {
  for (auto& s : services_) s->desired = 0;
}

bool Supervisor::idle() const {
  for (const auto& s : services_) {
    if (!s->replicas.empty()) return false;
  }
  return true;
}

std::vector<ReplicaStatus> Supervisor::replicas(std::string_view service) const {
  std::vector<ReplicaStatus> out;
  const Service* s = find(service);
  if (s == nullptr) return out;
  for (const auto& r : s->replicas) {
    out.push_back(ReplicaStatus{r->id, r->phase, r->process ? r->process->pid() : 0, r->port,
                                r->started_at, r->ready_at, r->restarts, r->restart_at,
                                r->last_crash, r->readiness_status, r->memory_bytes, r->memory_at,
                                r->retiring, r->revision, r->tmpl->memory_limit_bytes,
                                r->no_requests_since, r->readiness_detail});
  }
  return out;
}

std::vector<std::string> Supervisor::services() const {
  std::vector<std::string> out;
  for (const auto& s : services_) {
    if (!s->removed) out.push_back(s->name);
  }
  return out;
}

// --- HttpReplicaProbe -----------------------------------------------------------------------

namespace {

// Written by the client's I/O thread, read by the supervisor's: `failure`, `serving` and
// `detail` before `status` (release), read after it (acquire), and never again written; `grpc`
// before the request starts.
struct CheckState {
  std::atomic<int> status{0};  // 0: in flight, -1: no answer, else the answer's status
  std::string failure;         // with -1: the client's error, "" for a timeout
  bool grpc = false;           // a gRPC health check (set before it starts)
  bool serving = false;        // with grpc: the answer said SERVING
  std::string detail;          // with grpc: what the answer said
};

class HttpReadinessCheck final : public ReadinessCheck {
 public:
  std::shared_ptr<CheckState> state = std::make_shared<CheckState>();
  std::optional<bool> answer() override {
    const int s = state->status.load(std::memory_order_acquire);
    if (s == 0) return std::nullopt;
    return state->grpc ? state->serving : s >= 200 && s <= 399;
  }
  int status() override { return std::max(0, state->status.load(std::memory_order_acquire)); }
  std::string failure() override {
    return state->status.load(std::memory_order_acquire) == -1 ? state->failure : std::string();
  }
  std::string detail() override {
    return state->status.load(std::memory_order_acquire) > 0 ? state->detail : std::string();
  }
};

}  // namespace

struct HttpReplicaProbe::Impl {
  // Connecting to a replica on this machine takes microseconds, or is refused at once; each
  // check's own timeout bounds the whole of it.
  http::Client client{
      http::ClientOptions{.connect_timeout = std::chrono::milliseconds(500), .threads = 1}};
  // For replicas that speak HTTP/2 only; made at the first.
  std::once_flag http2_made;
  std::unique_ptr<http::Client> http2;
  http::Client& http2_client() {
    std::call_once(http2_made, [this] {
      http2 = std::make_unique<http::Client>(http::ClientOptions{
          .connect_timeout = std::chrono::milliseconds(500), .threads = 1, .http2 = true});
    });
    return *http2;
  }
  std::unique_ptr<ReadinessCheck> check(http::Client& with, std::uint16_t port,
                                        const std::string& path,
                                        std::chrono::milliseconds timeout);
};

HttpReplicaProbe::HttpReplicaProbe() : impl_(std::make_unique<Impl>()) {}
HttpReplicaProbe::~HttpReplicaProbe() = default;

Result<std::uint16_t> HttpReplicaProbe::free_port() {
  // Why, in the crash reason the user reads: most often the platform is out of descriptors.
  auto failed = [](std::string_view what) {
    return make_error(ErrorCode::kUnavailable, std::string(what) + ": " + std::strerror(errno));
  };
  const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return failed("socket()");
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof addr;
  if (::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0 ||
      ::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len) != 0) {
    auto error = failed("binding 127.0.0.1:0");
    ::close(fd);
    return error;
  }
  ::close(fd);
  return static_cast<std::uint16_t>(ntohs(addr.sin_port));
}

std::optional<std::uint16_t> HttpReplicaProbe::read_port_file(const std::string& path) {
  std::ifstream in(path);
  std::string text;
  if (!(in >> text)) return std::nullopt;
  unsigned value = 0;
  const auto [p, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
  if (ec != std::errc() || p != text.data() + text.size() || value == 0 || value > 65535) {
    return std::nullopt;
  }
  return static_cast<std::uint16_t>(value);
}

std::unique_ptr<ReadinessCheck> HttpReplicaProbe::check_ready(std::uint16_t port,
                                                              const std::string& path,
                                                              std::chrono::milliseconds timeout) {
  return impl_->check(impl_->client, port, path, timeout);
}

std::unique_ptr<ReadinessCheck> HttpReplicaProbe::check_ready_http2(
    std::uint16_t port, const std::string& path, std::chrono::milliseconds timeout) {
  return impl_->check(impl_->http2_client(), port, path, timeout);
}

std::unique_ptr<ReadinessCheck> HttpReplicaProbe::check_grpc_health(
    std::uint16_t port, const std::string& service, std::chrono::milliseconds timeout) {
  auto check = std::make_unique<HttpReadinessCheck>();
  check->state->grpc = true;
  impl_->http2_client().async_request(
      "127.0.0.1", port, http::grpc_health_request(service),
      [state = check->state](Result<http::Response> r) {
        if (!r && r.error().code != ErrorCode::kTimeout) state->failure = r.error().message;
        if (r) {
          const http::GrpcHealth health = http::read_grpc_health(*r);
          state->serving = health.serving();
          state->detail = health.describe(r->status);
        }
        state->status.store(r && r->status > 0 ? r->status : -1, std::memory_order_release);
      },
      timeout);
  return check;
}

std::unique_ptr<ReadinessCheck> HttpReplicaProbe::Impl::check(http::Client& with,
                                                              std::uint16_t port,
                                                              const std::string& path,
                                                              std::chrono::milliseconds timeout) {
  auto check = std::make_unique<HttpReadinessCheck>();
  http::Request req;
  req.method = http::Method::kGet;
  req.method_name = "GET";
  req.target = path;
  // The state outlives an abandoned check: the answer may come after.
  with.async_request(
      "127.0.0.1", port, std::move(req),
      [state = check->state](Result<http::Response> r) {
        if (!r && r.error().code != ErrorCode::kTimeout) state->failure = r.error().message;
        state->status.store(r && r->status > 0 ? r->status : -1, std::memory_order_release);
      },
      timeout);
  return check;
}

}  // namespace prescale::local
