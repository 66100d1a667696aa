// The pieces `prescale up` assembles the local platform from: the controller's clock when a demo
// compresses time, the world --recommend-only acts on, how each service's replicas start, and the
// checks made before any replica starts.
#pragma once

#include <filesystem>
#include <functional>
#include <nlohmann/json.hpp>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "command_util.h"
#include "control/world.h"
#include "core/clock.h"
#include "core/config.h"
#include "core/result.h"
#include "worlds/local/supervisor.h"

namespace prescale::scaling {
class PrescalePolicy;
}  // namespace prescale::scaling

namespace prescale {

class LearnedAdmission;

// The controller's clock when a demo compresses time: `scale` controller seconds per real one.
class ScaledClock final : public Clock {
 public:
  // `wall_origin`: the controller's wall time now (a restarted compressed run continues from
  // where the last one stopped, so the stored history stays in the past).
  ScaledClock(Clock& real, double scale, WallTime wall_origin)
      : real_(real), scale_(scale), origin_(real.now()), wall_origin_(wall_origin) {}
  TimePoint now() const override { return origin_ + scaled(real_.now() - origin_); }
  WallTime wall_now() const override { return wall_origin_ + scaled(real_.now() - origin_); }
  void sleep_until(TimePoint deadline) override {
    const Duration left = deadline - now();
    if (left > Duration::zero()) {
      real_.sleep_until(real_.now() + std::chrono::duration_cast<Duration>(
                                          std::chrono::duration<double, std::nano>(
                                              static_cast<double>(left.count()) / scale_)));
    }
  }

 private:
  Duration scaled(Duration d) const {
    return std::chrono::duration_cast<Duration>(
        std::chrono::duration<double, std::nano>(static_cast<double>(d.count()) * scale_));
  }
  Clock& real_;
  double scale_;
  TimePoint origin_;
  WallTime wall_origin_;
};

// How often `prescale up` has the prescale policy observe between its decisions every `period`
// on a clock running `time_scale` times real time: every real second (time_scale controller
// seconds), at most the period. The local world's last second is the gateway's last real second,
// so at --time-scale 1 a surge the replicas cannot serve is acted on within a second, as in the
// simulator; on a clock compressed past the period (the demo's 144x) it observes at its period.
Clock::Duration prescale_observe_interval(double time_scale, Clock::Duration period);

// The policy a live controller runs (`prescale up`, `prescale controller`): `flag` (--policy), or
// the file's policy.name. Errors name what is wrong: an unknown name, or one that needs the
// future of a trace (oracle, static).
Result<std::string> live_policy_name(const Config& config, const std::string& flag);

// --recommend-only: observes the real world and changes nothing; the controller still logs and
// the dashboard still shows every decision, as what the policy recommends.
class RecommendOnlyWorld final : public control::World {
 public:
  explicit RecommendOnlyWorld(control::World& inner) : inner_(inner) {}
  const scaling::Snapshot& observe(Clock::TimePoint now) override { return inner_.observe(now); }
  Result<void> scale(std::string_view, int) override { return {}; }
  Result<void> restart(std::string_view) override { return {}; }
  // What it recommends stays within the bounds the file gives, by its SLO.
  Result<void> respec(const scaling::ServiceSpec& spec) override { return inner_.respec(spec); }
  // A service added or removed is observed, or no longer, as the file says.
  Result<void> add_service(const scaling::ServiceSpec& spec) override {
    return inner_.add_service(spec);
  }
  Result<void> remove_service(std::string_view service) override {
    return inner_.remove_service(service);
  }

 private:
  control::World& inner_;
};

// This binary's path (replicas of the built-in kinds run its `serve`); "prescale" when unknown.
std::string self_executable();

// How a service's replicas start: the built-in kinds run this binary's `serve`; a command runs
// as given, "{port}" naming the port it must listen on. Every replica is told the gateway's URL
// (PRESCALE_GATEWAY_URL) and, for its spans, its service's name (OTEL_SERVICE_NAME) and where
// `tracing` sends them (otel_environment()), unless the service's env sets them itself. A
// built-in kind gets the settings of `http` that differ from the defaults as flags.
local::ReplicaTemplate replica_template(const ServiceConfig& s, const std::string& self,
                                        const std::string& gateway_url,
                                        const std::filesystem::path& config_dir,
                                        const TracingConfig& tracing = {},
                                        const HttpConfig& http = {});

// The last non-empty line of the log at `path` (within its last 4 KiB), at most 200 bytes, a longer
// one cut short and ended "..."; "" if there is none.
std::string last_log_line(const std::string& path);

// `; its log <file> ends "<last line>"` for the replica's log (or, just after the supervisor
// moved it aside and it is empty, the copy's); "" when the supervisor keeps no logs or the log
// holds no line. What a warning about the replica ends with.
std::string log_ending(const local::Supervisor& supervisor, const std::string& replica);

// What `prescale up` says of the services short of the replicas they start with when it stops
// waiting for them, one line per such service: "<service> (<ready> of <initial> ready)", then
// each replica not ready — starting for how long, or crashed, why, and when it restarts — and
// the last line of its log, if the supervisor keeps logs. Empty when every service has them.
std::vector<std::string> unready_services(const std::vector<ServiceConfig>& services,
                                          const local::Supervisor& supervisor,
                                          Clock::TimePoint now);

// The services `policy_state` (PrescalePolicy::export_state()'s, as stored) holds learned state
// of — history, capacity — that `services` no longer name (renamed or removed since the save), in
// name order: a restore skips them, and the next save forgets them.
std::vector<std::string> services_not_in_file(const nlohmann::json& policy_state,
                                              const std::vector<ServiceConfig>& services);

// What `prescale up` says when another one holds the lock of `state_dir`: "--state-dir D is in
// use by another prescale up (pid N); ...". `read_lock_file` gives the lock file's text, where
// the holder writes its pid just after taking the lock; read before that it holds none, so it
// is read again a few times with `pause` (10 ms, say) between, and the pid is left out if it
// still holds none.
std::string state_dir_in_use_message(std::string_view state_dir,
                                     const std::function<std::string()>& read_lock_file,
                                     const std::function<void()>& pause);

// The lock of a state directory (<dir>/lock, flock): one platform per directory, since two would
// share its replica logs, port files and history. Held until the process ends, however it ends
// (kill -9 included); not inherited by replicas. The holder's pid is the file's first line.
class StateLock {
 public:
  // Errors: kUnavailable with state_dir_in_use_message() when another process holds it (whose
  // pid the message names, read from the file); kInvalidArgument naming the file and the
  // system's reason when it cannot be opened or locked.
  static Result<StateLock> take(const std::filesystem::path& dir, std::string_view state_dir);
  StateLock(StateLock&& other) noexcept : fd_(std::exchange(other.fd_, -1)), path_(other.path_) {}
  StateLock& operator=(StateLock&&) = delete;
  ~StateLock();

  // A lock file removed or replaced while held — the directory deleted by hand or by a cleaner
  // of /tmp — keeps no second platform out: it is made and taken again. Returns what happened,
  // for a warning ("" when the file is still ours), said once for a lock another process took
  // meanwhile.
  std::string keep();

 private:
  StateLock(int fd, std::string path) : fd_(fd), path_(std::move(path)) {}
  int fd_ = -1;
  std::string path_;
  bool lost_ = false;  // another process holds the file at path_ now
};

// The gateway section as `prescale up` runs it: each service's admission limit and health check
// path filled in from its entry, and a gateway of one service with no routes given a route that
// takes every request (as `prescale gateway` sends one service every request).
void prepare_gateway(Config& config);

// What `prescale up` cannot apply while it runs (docs/local.md, "Changing a running platform"):
// the fields where `next` differs from `running` outside the services' replica templates
// (commands, kinds, models, environments, probes, memory limits: rolled out), what the
// controller takes at once (spec_changes), the gateway's reloadable settings and the services
// added or removed (service_changes), as "services[1] (web).concurrency", "policy" or
// "gateway.listen"; a service is compared with the one of its name, wherever it is listed. Empty
// when a reload can apply it all.
std::vector<std::string> changes_needing_a_restart(const Config& running, const Config& next);

// Why `prescale up` refuses a reload that would take away the route prepare_gateway() gave a
// file of one service and no routes: with a service added and still no route naming the one
// that got every request, the gateway would answer it all 404. Empty when nothing is lost.
std::string catch_all_lost(const Config& running, const Config& next);

// The service of `config` named `name`; nullptr when it has none.
const ServiceConfig* find_service(const Config& config, std::string_view name);

// The services a reload adds (in `next`, not in `running`) and removes, in the files' order; a
// service renamed is one removed and one added.
struct ServiceChanges {
  std::vector<std::string> added;
  std::vector<std::string> removed;
  bool empty() const { return added.empty() && removed.empty(); }
  // "added cart, search; removed legacy" ("" when empty).
  std::string said() const;
};
ServiceChanges service_changes(const Config& running, const Config& next);

// What the controller takes at once of a service's new settings (Controller::respec): each
// change of its replica bounds, SLO, capacity seed, startup time seed and queue limit, said as
// "replicas within [3, 6] (were [1, 6])", "slo.latency_p99_ms 100 (was 200)", "queue_limit
// 50 ms (was 100 ms)" (the limit in force: an automatic one follows the SLO). Empty when none
// changed.
std::vector<std::string> spec_changes(const ServiceConfig& running, const ServiceConfig& next);

// After a reload gave `respecified` new settings (their spec_changes, taken by the controller):
// with `next.policy.steer_to_slo`, the prescale policy is steered by the tightest new error
// budget, as at a start; their admission limits are counted again for their new queue limits,
// at the capacity at their new SLO (the prescale policy's, unless `recommend_only`; otherwise
// what LearnedAdmission has). `prescale_policy` may be null (another policy).
void follow_respec(const Config& next, const std::vector<ServiceConfig>& respecified,
                   scaling::PrescalePolicy* prescale_policy, bool recommend_only,
                   LearnedAdmission& admission);

// Where `prescale up` serves its dashboard unless --ui says otherwise.
inline constexpr std::string_view kDefaultUiListen = "127.0.0.1:9090";

// Checks what would otherwise fail after replicas started, naming the file and line and the fix:
// commands that cannot run, model services without a model, ports that clash. Every problem, a
// line each (empty: none).
std::vector<std::string> preflight_problems(const Config& config, const std::string& file,
                                            const ListenAddress& gateway, const ListenAddress& ui);
// The same as one error, its problems a line each.
Result<void> preflight(const Config& config, const std::string& file, const ListenAddress& gateway,
                       const ListenAddress& ui);

// Each service of `config` (as prepare_gateway() left it) that no gateway route names: the
// gateway sends it no requests (a worker may want that). A line each: "service worker: no
// gateway route names it, so the gateway sends it no requests".
std::vector<std::string> unrouted_warnings(const Config& config);

}  // namespace prescale
