// Supervisor: keeps each service of the local world at its desired number of replica
// processes.
//
// A replica's life: starting (launched; its port known from the port file it writes, or
// chosen for it; /readyz polled) -> ready (registered with the gateway) -> draining (removed
// from the gateway: no new requests; its in-flight requests finish) -> stopping (SIGTERM; the
// replica drains itself too) -> gone (SIGKILL after term_grace if it has not exited).
// A replica that exits on its own, or is not ready within ready_timeout, has crashed: it leaves
// the gateway at once and restarts under the same id after a back-off that starts at
// restart_backoff and doubles up to max_restart_backoff, reset once it has stayed ready for
// backoff_reset_after (Kubernetes' CrashLoopBackOff).
// Scale-down takes replicas that are not serving first (crashed, then starting), then the
// newest ready ones.
// Replica logs are bounded (SupervisorOptions::max_log_bytes, kept_logs_of_gone_replicas), and a
// replica that leaves takes its port file with it.
//
// All waiting is driven by tick(now): the Supervisor reads time only from its argument, so tests
// run it on a manual clock with a fake ProcessLauncher and ReplicaProbe.
//
// Thread safety: one thread calls everything, and it must be the thread that lives as long as
// the replicas (children are tied to their launching thread, see process.h).
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include "core/clock.h"
#include "core/result.h"
#include "worlds/local/process.h"

namespace prescale::local {

// How to start one replica of a service. In argv and env values, "{port}" becomes the port the
// replica must listen on and "{port_file}" a file where a replica that binds port 0 writes the
// port it got (then "{port}" must not appear); "{replica}" becomes the replica's id.
struct ReplicaTemplate {
  std::string service;
  std::vector<std::string> argv;
  std::vector<std::pair<std::string, std::string>> env;
  std::string readiness_path = "/readyz";  // GET before the replica gets traffic
  // The replica speaks HTTP/2 only (a gRPC server: ServiceConfig::protocol http2): its readiness
  // and liveness checks go over HTTP/2.
  bool http2 = false;
  // Set: a gRPC server with a health service (ServiceConfig::protocol grpc). Its readiness and
  // liveness checks ask grpc.health.v1.Health/Check about this name ("" = the server as a whole)
  // over HTTP/2 instead of GETting readiness_path and liveness_path: SERVING is ready, and any
  // gRPC answer (NOT_SERVING, UNIMPLEMENTED, ...) shows a live server. liveness_path "" still
  // turns liveness checks off; its value is not used.
  std::optional<std::string> grpc_health_service{};
  // Liveness (a Kubernetes liveness probe): while a replica is ready, GET `liveness_path` every
  // `liveness_interval`, each check answered within `liveness_timeout`. After
  // `liveness_failure_threshold` failures in a row the replica is killed and restarts as a crashed
  // one (with the back-off). A failure is no answer in time (refused, reset, timed out: a hung
  // process) or a 5xx; any other answer, a 404 included, shows the replica's server is alive, so a
  // program with no such path is never restarted for it. "" = no liveness checks.
  std::string liveness_path = "/healthz";
  Clock::Duration liveness_interval{std::chrono::seconds(10)};
  std::chrono::milliseconds liveness_timeout{1000};
  int liveness_failure_threshold = 3;
  // The most resident memory a replica's process group may hold (a Kubernetes memory limit),
  // looked at every SupervisorOptions::memory_check_interval: over it the replica is killed
  // (SIGKILL, not drained: a process past its limit is what the kernel's out-of-memory killer
  // would take) and restarts as a crashed one, with the back-off. 0 = no limit.
  std::uint64_t memory_limit_bytes = 0;
  // Not used to start replicas: which build of the program they run (its file's path, inode,
  // size and modification time: program_identity()), so that a template naming a rebuilt
  // program is a new one to update() to. "" = not known.
  std::string program{};

  friend bool operator==(const ReplicaTemplate&, const ReplicaTemplate&) = default;
};

// How a replica's checks at `path` are named in messages: "GET /readyz", or for a gRPC health
// check (ReplicaTemplate::grpc_health_service) http::grpc_health_check_name()'s
// `grpc.health.v1.Health/Check for "shop.Cart"`.
std::string check_name(const ReplicaTemplate& t, const std::string& path);

// The identity of the program file `name` runs (resolve_executable()): "<path> <inode> <size>
// <mtime ns>", following links; "" when it cannot be found. A rebuild or an upgrade changes it.
std::string program_identity(const std::string& name);

// One readiness check of a replica, answered or still in flight.
class ReadinessCheck {
 public:
  virtual ~ReadinessCheck() = default;
  // nullopt while the check is in flight; then whether the GET answered 200..399, as a
  // Kubernetes probe passes (a refused connection, a timeout or another status: false).
  virtual std::optional<bool> answer() = 0;
  // Once answered, the HTTP status of the answer; 0 when none came (refused, timed out).
  virtual int status() { return 0; }
  // Once answered without a status: why none came ("connect to 127.0.0.1:9000: Connection
  // refused"); "" when the check timed out, or the reason is not known.
  virtual std::string failure() { return ""; }
  // Once a gRPC health check (ReplicaProbe::check_grpc_health) is answered: what the answer
  // said ("SERVING", "NOT_SERVING", "grpc-status 12 (UNIMPLEMENTED: ...)", "HTTP 404"); ""
  // otherwise.
  virtual std::string detail() { return ""; }
};

// What the supervisor asks of the network: free ports, a replica's readiness.
class ReplicaProbe {
 public:
  virtual ~ReplicaProbe() = default;
  // A port nothing listens on now.
  virtual Result<std::uint16_t> free_port() = 0;
  // The port a replica wrote to `path`, once it has.
  virtual std::optional<std::uint16_t> read_port_file(const std::string& path) = 0;
  // Starts GET `path` (the service's readiness or liveness path) on 127.0.0.1:port and returns
  // without waiting for the answer (the supervisor's thread must not wait on a replica that
  // accepts and never answers), which comes within `timeout` or not at all (answer() false,
  // status() 0). Destroying the check abandons it.
  virtual std::unique_ptr<ReadinessCheck> check_ready(std::uint16_t port, const std::string& path,
                                                      std::chrono::milliseconds timeout) = 0;
  // The same over HTTP/2 in clear text (a replica that speaks only that: ReplicaTemplate::http2).
  // Default: check_ready().
  virtual std::unique_ptr<ReadinessCheck> check_ready_http2(std::uint16_t port,
                                                            const std::string& path,
                                                            std::chrono::milliseconds timeout) {
    return check_ready(port, path, timeout);
  }
  // Asks grpc.health.v1.Health/Check about `service` ("" = the server as a whole) on
  // 127.0.0.1:port over HTTP/2 (ReplicaTemplate::grpc_health_service), as check_ready() does its
  // GET: answer() is true for SERVING; status() is the HTTP status of any answer (200 for a gRPC
  // one), so a liveness check counts any answer below 500, a gRPC error included, as alive;
  // detail() says what it held.
  virtual std::unique_ptr<ReadinessCheck> check_grpc_health(std::uint16_t port,
                                                            const std::string& service,
                                                            std::chrono::milliseconds timeout) = 0;
};

// Where ready replicas are announced (the gateway).
class EndpointSink {
 public:
  virtual ~EndpointSink() = default;
  virtual void add(const std::string& service, const std::string& replica, std::uint16_t port) = 0;
  // Stops new requests to the replica; in-flight ones continue.
  virtual void remove(const std::string& service, const std::string& replica) = 0;
  // Requests to the replica still in flight (0 once removed and drained, or unknown).
  virtual std::int64_t in_flight(const std::string& service, const std::string& replica) = 0;
};

enum class ReplicaPhase { kStarting, kReady, kDraining, kStopping, kCrashed };
std::string_view to_string(ReplicaPhase phase);

struct ReplicaStatus {
  std::string id;  // "<service>-<n>"
  ReplicaPhase phase = ReplicaPhase::kStarting;
  int pid = 0;     // 0 while crashed
  std::uint16_t port = 0;
  Clock::TimePoint started_at;               // the current process's start
  std::optional<Clock::TimePoint> ready_at;  // its readiness
  int restarts = 0;                          // over the replica's life
  std::optional<Clock::TimePoint> restart_at;  // while crashed
  std::string last_crash;  // why it last crashed ("exited with status 3"); "" if it never has
  // While starting: the HTTP status of the last readiness check (not ready: 404, 503, ...); 0
  // when it got no answer or none was made.
  int readiness_status = 0;
  // Resident memory of the replica's process group (what it and what it started hold), as of
  // memory_at, the last look (SupervisorOptions::memory_check_interval); 0 and nullopt before
  // the first look at the current process.
  std::uint64_t memory_bytes = 0;
  std::optional<Clock::TimePoint> memory_at;
  // Replaced (Supervisor::replace): leaves once its replacement is ready or at once.
  bool retiring = false;
  // The service's template it was started from (Supervisor::update): 1 for the first.
  int revision = 1;
  // That template's memory limit (ReplicaTemplate::memory_limit_bytes): 0, none.
  std::uint64_t memory_limit_bytes = 0;
  // Draining or stopping: since when the gateway sends it no new requests (its drain's start, or
  // its start where it never joined the gateway); nullopt otherwise, or where not known (a crash).
  std::optional<Clock::TimePoint> no_requests_since = {};
  // While starting: what the last gRPC health check's answer said (ReadinessCheck::detail():
  // "NOT_SERVING", ...); "" for an HTTP check, or none.
  std::string readiness_detail = {};
};

// Where a service's rolling update stands (Supervisor::update).
struct RolloutStatus {
  int revision = 1;      // the template new replicas start from
  bool rolling = false;  // replicas of other revisions are still being replaced
  int updated = 0;       // replicas of `revision` starting or ready
  // The last revision every replica ran: what a rollback returns to (== revision while one does,
  // and once a rollout is complete).
  int stable = 1;
  int outdated = 0;      // replicas of other revisions not yet gone
  // The last rollout that failed and was rolled back, why: "revision 2 failed: ..."; "" if none
  // has since the last update().
  std::string failed;
};

// Something that happened to a replica, for the event timeline and logs.
struct ReplicaEvent {
  Clock::TimePoint time;
  // "start", "ready", "crash", "restart", "drain", "stop", "kill"; of a service's rolling update
  // (replica ""): "rollout" (begun), "rolled-out" (every replica updated), "rollback"
  std::string kind;
  std::string service;
  std::string replica;
  std::string message;
};

struct SupervisorOptions {
  std::string log_dir;  // replica logs: <log_dir>/<replica>.log; "" = discard
  // A replica's log past this many bytes is copied to <replica>.log.1 (replacing the one before)
  // and emptied in place, the replica writing on to it: looked at every log_check_interval and
  // before each start. A replica's logs hold at most about twice this plus what it writes in a
  // log_check_interval; what it writes during the copy (milliseconds) may be lost. 0 = unbounded.
  std::uint64_t max_log_bytes = 10u << 20;
  Clock::Duration log_check_interval{std::chrono::seconds(1)};
  // Per service, the logs of this many replicas that have left (scaled down or replaced) are
  // kept, the newest; older ones are deleted.
  std::size_t kept_logs_of_gone_replicas = 10;
  std::string run_dir;  // port files; required when a template uses {port_file}
  Clock::Duration ready_timeout{std::chrono::seconds(120)};
  Clock::Duration probe_interval{std::chrono::milliseconds(100)};
  // A readiness check not answered within this has failed (the next follows).
  std::chrono::milliseconds readiness_timeout{500};
  Clock::Duration restart_backoff{std::chrono::seconds(10)};
  Clock::Duration max_restart_backoff{std::chrono::minutes(5)};
  Clock::Duration backoff_reset_after{std::chrono::minutes(10)};
  // Longest wait for a draining replica's in-flight requests before SIGTERM.
  Clock::Duration drain_timeout{std::chrono::seconds(30)};
  // From SIGTERM to SIGKILL.
  Clock::Duration term_grace{std::chrono::seconds(15)};
  std::function<void(const ReplicaEvent&)> on_event;
  // The memory of the replicas' process groups (resident_memory_by_group(), which reads /proc),
  // asked for the groups of the replicas running, every memory_check_interval, for
  // ReplicaStatus::memory_bytes and the memory limits. Tests give their own; an empty function
  // looks at nothing.
  std::function<std::map<int, std::uint64_t>(const std::set<int>&)> read_memory =
      resident_memory_by_group;
  Clock::Duration memory_check_interval{std::chrono::seconds(1)};
  // A rolling update (Supervisor::update) starts at most this share of the service's desired
  // replicas ahead of the ones they replace, at least one (a Deployment's maxSurge: 25 %).
  double rollout_max_surge = 0.25;
  // An old replica leaves once its replacement has been ready this long (a Deployment's
  // minReadySeconds): time for the new revision to show it fails (failing()) before the old one
  // has gone.
  Clock::Duration rollout_min_ready{std::chrono::seconds(10)};
  // The new revision's replicas crashing this many times in all (exits, readiness or liveness
  // failures, memory kills) before the rollout ends fails it: it is rolled back.
  int rollout_failure_crashes = 2;
};

// How Supervisor::replace() takes the old replica out.
enum class ReplaceMode {
  kDrainNow,  // at once: it is failing, and every request it gets may fail too
  // Once the new one is ready: it still serves well, and leaving first would take its share of
  // the capacity away for a startup time (a Kubernetes rolling update's surge). If the new one
  // leaves before it is ready (scaled away, replaced in turn), the old one stays.
  kDrainWhenReplacementReady,
};

// Where the log at `log` is copied before it is emptied (SupervisorOptions::max_log_bytes):
// "<log>.1". Just after that, the log's last line is there.
std::string moved_aside_log_path(std::string_view log);

class Supervisor {
 public:
  Supervisor(SupervisorOptions options, ProcessLauncher& launcher, ReplicaProbe& probe,
             EndpointSink& sink);
  ~Supervisor();  // kills what still runs (shutdown() first for a graceful stop)
  Supervisor(const Supervisor&) = delete;
  Supervisor& operator=(const Supervisor&) = delete;

  // Declares a service (before scaling it). Errors: kInvalidArgument (empty argv, "{port_file}"
  // without a run_dir, both placeholders), a name declared twice. A service removed may be
  // declared again, its replicas still draining or not: they drain on, and new ones start from
  // the new template, numbered on from theirs.
  Result<void> add_service(ReplicaTemplate replica_template);
  // Removes a service while it runs: its replicas drain (as at a scale to zero, a rolling update
  // dropped) and stop. From now on it is no longer listed by services() and every call naming it
  // answers as for an unknown one; idle() waits for its replicas. What it keeps — its replicas'
  // numbering and the logs of those gone — is for a service declared again under its name, whose
  // replicas are numbered on. Errors: kNotFound.
  Result<void> remove_service(std::string_view service, Clock::TimePoint now);
  // The number of replicas to keep (starting, ready or waiting to restart). Errors: kNotFound.
  Result<void> set_desired(std::string_view service, int replicas);
  int desired(std::string_view service) const;
  // Replaces a replica: a new one starts, the old one drains, at once or once the new one is
  // ready (`mode`). Errors: kNotFound, also for a replica already being replaced.
  Result<void> replace(std::string_view replica_id, Clock::TimePoint now,
                       ReplaceMode mode = ReplaceMode::kDrainNow);

  // Rolls the service onto a new template, as a Kubernetes Deployment's rolling update with
  // maxUnavailable 0: replicas of the new revision start, at most rollout_max_surge ahead, and
  // each replica of an older one serves until its replacement has been ready for
  // rollout_min_ready. Old replicas not serving
  // (starting, waiting to restart) are replaced at once; scaling goes on meanwhile, new replicas
  // from the new template. When the new revision's replicas crash rollout_failure_crashes times
  // before the rollout ends, or one of them is found failing(), it is rolled back to the last
  // revision every replica ran, the same way. A template equal to the current one changes nothing;
  // one equal to that last complete revision rolls back to it. Errors: kNotFound, kInvalidArgument
  // (validate(); also for the template of the revision that last failed,
  // which is not rolled out again until another one comes: the message says why it failed).
  Result<void> update(ReplicaTemplate replica_template, Clock::TimePoint now);
  // What add_service() and update() refuse in a template: an empty command, both port
  // placeholders, "{port_file}" without a run_dir, bad readiness or liveness settings.
  Result<void> validate(const ReplicaTemplate& t) const;
  RolloutStatus rollout(std::string_view service) const;
  // A replica seen failing while it serves (the gateway's outlier detection ejected it for its
  // errors; not an open breaker, which overload causes too). During a rolling update, a replica of
  // the new revision seen so fails the rollout at once: a release that starts but answers errors is
  // rolled back (at the next tick). Otherwise nothing changes. Returns whether it failed one.
  bool failing(std::string_view replica_id, const std::string& why);

  // Advances every replica's life to `now`: reaps exits, reads readiness answers and starts new
  // checks (one in flight per starting replica, at most one per probe_interval), restarts,
  // drains, signals, and starts or stops replicas to meet the desired counts. Call it often
  // (every probe_interval); it never waits for a replica.
  void tick(Clock::TimePoint now);

  // Desired 0 everywhere; then tick() until idle() (or the caller's deadline).
  void stop_all();
  bool idle() const;  // no process left

  std::vector<ReplicaStatus> replicas(std::string_view service) const;
  std::vector<std::string> services() const;  // declared and not removed
  // Where a replica writes its output: <log_dir>/<replica>.log; "" when logs are discarded.
  // Once over max_log_bytes, its content moves to moved_aside_log_path() of it.
  std::string log_path(std::string_view replica_id) const;

 private:
  struct Replica;
  struct Service;
  Service* find(std::string_view name);
  const Service* find(std::string_view name) const;
  void event(Clock::TimePoint now, std::string kind, const Service& s, const Replica& r,
             std::string message);
  void start(Service& s, Replica& r, Clock::TimePoint now);
  void crashed(Service& s, Replica& r, Clock::TimePoint now, const std::string& why);
  void begin_drain(Service& s, Replica& r, Clock::TimePoint now);
  void advance(Service& s, Replica& r, Clock::TimePoint now);
  void check_liveness(Service& s, Replica& r, Clock::TimePoint now);
  // A readiness or liveness check of a replica of `t` at `path` (not used for a gRPC one).
  std::unique_ptr<ReadinessCheck> start_check(const ReplicaTemplate& t, std::uint16_t port,
                                              const std::string& path,
                                              std::chrono::milliseconds timeout);
  void check_memory(Service& s, Replica& r, Clock::TimePoint now,
                    const std::map<int, std::uint64_t>& memory);
  void reconcile(Service& s, Clock::TimePoint now);
  void roll(Service& s, Clock::TimePoint now);
  void roll_back(Service& s, Clock::TimePoint now, const std::string& why);
  void return_to_stable(Service& s, Clock::TimePoint now);
  void service_event(Clock::TimePoint now, std::string kind, const Service& s, std::string message);
  void gone(Service& s, const Replica& r);

  SupervisorOptions options_;
  ProcessLauncher& launcher_;
  ReplicaProbe& probe_;
  EndpointSink& sink_;
  std::vector<std::unique_ptr<Service>> services_;
  Clock::TimePoint next_log_check_{};
  Clock::TimePoint next_memory_check_{};
};

// The real probe: ports from the kernel, checks over HTTP, each answered (false at the latest)
// within its timeout, connecting included, on the probe's own I/O thread.
class HttpReplicaProbe final : public ReplicaProbe {
 public:
  HttpReplicaProbe();
  ~HttpReplicaProbe() override;
  Result<std::uint16_t> free_port() override;
  std::optional<std::uint16_t> read_port_file(const std::string& path) override;
  std::unique_ptr<ReadinessCheck> check_ready(std::uint16_t port, const std::string& path,
                                              std::chrono::milliseconds timeout) override;
  std::unique_ptr<ReadinessCheck> check_ready_http2(std::uint16_t port, const std::string& path,
                                                    std::chrono::milliseconds timeout) override;
  std::unique_ptr<ReadinessCheck> check_grpc_health(std::uint16_t port, const std::string& service,
                                                    std::chrono::milliseconds timeout) override;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace prescale::local
