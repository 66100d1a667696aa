#include "local_platform.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>

namespace prescale {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;

TEST(ScaledClock, RunsScaleTimesFasterFromItsWallOrigin) {
  ManualClock real;
  real.advance(std::chrono::seconds(5));
  const Clock::WallTime origin(std::chrono::seconds(1'800'000'000));
  ScaledClock clock(real, 60, origin);
  const Clock::TimePoint start = clock.now();
  EXPECT_EQ(clock.wall_now(), origin);
  real.advance(std::chrono::seconds(2));
  EXPECT_EQ(clock.now() - start, std::chrono::minutes(2));
  EXPECT_EQ(clock.wall_now(), origin + std::chrono::minutes(2));
}

// The controller's startup time is the file's times --time-scale (up to 10000): a startup_time
// of 876000h (a century, the longest a file may give) times 3 is past what int64 nanoseconds
// hold, and the conversion of the product made a negative startup time.
TEST(ServiceSpec, AStartupTimeScaledPastWhatTheClockHoldsIsACenturyAtMost) {
  using namespace std::chrono_literals;
  ServiceConfig s;
  s.name = "web";
  s.startup_time = 30s;
  EXPECT_EQ(service_spec(s, 144).startup_time, 72min);
  s.startup_time = 876000h;
  EXPECT_EQ(service_spec(s, 1).startup_time, 876000h);
  EXPECT_EQ(service_spec(s, 3).startup_time, 876000h);
  EXPECT_EQ(service_spec(s, 10000).startup_time, 876000h);
}

TEST(PrescaleObserveInterval, IsARealSecondOfControllerTimeAtMostThePeriod) {
  using std::chrono::milliseconds;
  using std::chrono::seconds;
  EXPECT_EQ(prescale_observe_interval(1, seconds(5)), seconds(1));
  EXPECT_EQ(prescale_observe_interval(2.5, seconds(5)), milliseconds(2500));
  EXPECT_EQ(prescale_observe_interval(5, seconds(5)), seconds(5));
  EXPECT_EQ(prescale_observe_interval(144, seconds(5)), seconds(5));  // make demo
  EXPECT_EQ(prescale_observe_interval(1, milliseconds(500)), milliseconds(500));
}

ServiceConfig command_service(std::vector<std::string> argv, int max_replicas) {
  ServiceConfig s;
  s.name = "api";
  s.kind = ServiceKind::kCommand;
  s.command = std::move(argv);
  s.replicas.max = max_replicas;
  s.line = 7;
  return s;
}

TEST(Preflight, NamesTheFileLineAndFieldOfWhatWouldFailAfterStarting) {
  const ListenAddress gateway{"127.0.0.1", 8080}, ui{"127.0.0.1", 9090};
  Config config;
  config.services = {command_service({"/bin/sh", "-c", "exec server --port {port}"}, 3)};
  EXPECT_TRUE(preflight(config, "prescale.yaml", gateway, ui));

  config.services = {command_service({"no-such-program-here", "{port}"}, 3)};
  auto missing = preflight(config, "prescale.yaml", gateway, ui);
  ASSERT_FALSE(missing);
  EXPECT_THAT(missing.error().message, HasSubstr("prescale.yaml:7: services[0] (api).command: "));
  EXPECT_THAT(missing.error().message, HasSubstr("PATH"));

  // Several replicas of a command without "{port}" would all listen on one port; one is fine.
  config.services = {command_service({"/bin/sh", "-c", "exec server"}, 3)};
  auto no_port = preflight(config, "prescale.yaml", gateway, ui);
  ASSERT_FALSE(no_port);
  EXPECT_THAT(no_port.error().message, HasSubstr("no \"{port}\" argument"));
  config.services = {command_service({"/bin/sh", "-c", "exec server"}, 1)};
  EXPECT_TRUE(preflight(config, "prescale.yaml", gateway, ui));

  config.services = {command_service({"/bin/sh", "{port}"}, 3)};
  auto clash = preflight(config, "prescale.yaml", gateway, {"127.0.0.1", 8080});
  ASSERT_FALSE(clash);
  EXPECT_THAT(clash.error().message, HasSubstr("both use port 8080"));
}

TEST(Preflight, ARecommendServiceNeedsATrainedModelBesideItsFile) {
  const std::filesystem::path dir =
      std::filesystem::temp_directory_path() / ("preflight-" + std::to_string(::getpid()));
  std::filesystem::create_directories(dir / "models");
  ServiceConfig s;
  s.name = "recommend";
  s.kind = ServiceKind::kRecommend;
  s.line = 3;
  Config config;
  config.services = {s};
  const std::string file = (dir / "prescale.yaml").string();
  auto empty = preflight(config, file, {"127.0.0.1", 0}, {"127.0.0.1", 0});
  ASSERT_FALSE(empty);
  EXPECT_THAT(empty.error().message, HasSubstr("(recommend).model_dir: "));
  EXPECT_THAT(empty.error().message, HasSubstr("prescale train recommend"));
  std::ofstream(dir / "models" / "model-1.bin") << "x";
  EXPECT_TRUE(preflight(config, file, {"127.0.0.1", 0}, {"127.0.0.1", 0}));
  std::filesystem::remove_all(dir);
}

// Preflight checks <file's directory>/models for a recommend service that sets no model_dir, but
// its replica is started without --model-dir, so `prescale serve` reads "models" in the directory
// prescale up runs in (docs/config.md, model_dir). Run from anywhere else, the check passes and
// the replica finds no model (or the check refuses a model the replica would have found).
TEST(Preflight, ARecommendServiceIsCheckedForTheModelDirectoryItsReplicaReads) {
  const std::filesystem::path base =
      std::filesystem::temp_directory_path() / ("preflight-cwd-" + std::to_string(::getpid()));
  std::filesystem::remove_all(base);
  std::filesystem::create_directories(base / "project" / "models");
  std::filesystem::create_directories(base / "elsewhere");
  std::ofstream(base / "project" / "models" / "recommend-v1.bin") << "x";
  ServiceConfig s;
  s.name = "recommend";
  s.kind = ServiceKind::kRecommend;
  s.line = 3;
  Config config;
  config.services = {s};
  const std::filesystem::path cwd = std::filesystem::current_path();
  std::filesystem::current_path(base / "elsewhere");  // prescale up run from another directory
  const std::string file = (base / "project" / "prescale.yaml").string();
  const bool preflight_passed =
      preflight(config, file, {"127.0.0.1", 0}, {"127.0.0.1", 0}).has_value();
  const local::ReplicaTemplate t =
      replica_template(s, "/opt/prescale", "http://127.0.0.1:8080", base / "project");
  // The directory the replica's `prescale serve recommend` reads its model from.
  std::filesystem::path replica_dir = std::filesystem::current_path() / "models";
  for (size_t i = 0; i + 1 < t.argv.size(); ++i) {
    if (t.argv[i] == "--model-dir") replica_dir = t.argv[i + 1];
  }
  std::error_code ec;
  const bool replica_has_model =
      std::filesystem::is_directory(replica_dir, ec) && !std::filesystem::is_empty(replica_dir, ec);
  std::filesystem::current_path(cwd);
  std::filesystem::remove_all(base);
  EXPECT_EQ(preflight_passed, replica_has_model)
      << "preflight " << (preflight_passed ? "passed" : "failed") << " but the replica reads "
      << replica_dir;
}

// A replica reads no file: the http section's settings that differ from the defaults reach it as
// flags; with the defaults, none is added.
TEST(ReplicaTemplate, TheHttpSectionReachesABuiltInKindAsFlags) {
  ServiceConfig s;
  s.name = "echo";
  s.kind = ServiceKind::kEcho;
  const std::vector<std::string> plain =
      replica_template(s, "/opt/prescale", "http://g", "/srv/app").argv;
  HttpConfig http;
  http.max_body_bytes = 16 << 20;
  http.read_timeout = std::chrono::seconds(30);
  http.http2 = false;
  http.shutdown_grace = std::chrono::seconds(20);
  const std::vector<std::string> tuned =
      replica_template(s, "/opt/prescale", "http://g", "/srv/app", {}, http).argv;
  std::vector<std::string> expected = plain;
  for (const char* a : {"--max-body-bytes", "16777216", "--read-timeout-ms", "30000", "--no-http2",
                        "--shutdown-grace-ms", "20000"}) {
    expected.emplace_back(a);
  }
  EXPECT_EQ(tuned, expected);
  EXPECT_TRUE(serve_http_flags(HttpConfig()).empty());
}

TEST(ReplicaTemplate, BuiltInKindsRunThisBinarysServeWithTheirModelBesideTheFile) {
  ServiceConfig s;
  s.name = "fraud";
  s.kind = ServiceKind::kFraud;
  s.model_dir = "models/fraud";
  s.env = {{"MODE", "fast"}};
  const local::ReplicaTemplate t =
      replica_template(s, "/opt/prescale", "http://127.0.0.1:8080", "/srv/app");
  EXPECT_EQ(t.service, "fraud");
  ASSERT_GE(t.argv.size(), 3u);
  EXPECT_EQ(t.argv[0], "/opt/prescale");
  EXPECT_EQ(t.argv[1], "serve");
  EXPECT_EQ(t.argv[2], "fraud");
  EXPECT_THAT(t.argv, ::testing::Contains("{port_file}"));
  EXPECT_THAT(t.argv, ::testing::Contains("/srv/app/models/fraud"));
  EXPECT_THAT(t.env, ::testing::Contains(std::pair<std::string, std::string>("MODE", "fast")));
  EXPECT_THAT(t.env, ::testing::Contains(std::pair<std::string, std::string>(
                         "PRESCALE_GATEWAY_URL", "http://127.0.0.1:8080")));

  EXPECT_EQ(t.readiness_path, "/readyz");  // the runtime's
  EXPECT_EQ(t.liveness_path, "/healthz");
  EXPECT_EQ(t.liveness_interval, std::chrono::seconds(10));
  EXPECT_EQ(t.liveness_timeout, std::chrono::seconds(1));
  EXPECT_EQ(t.liveness_failure_threshold, 3);
  s.liveness = {.enabled = true,
                .path = "/alive",
                .interval = std::chrono::seconds(2),
                .timeout = std::chrono::milliseconds(100),
                .failure_threshold = 5};
  const local::ReplicaTemplate own = replica_template(s, "/opt/prescale", "http://g", "/srv/app");
  EXPECT_EQ(own.liveness_path, "/alive");
  EXPECT_EQ(own.liveness_interval, std::chrono::seconds(2));
  EXPECT_EQ(own.liveness_timeout, std::chrono::milliseconds(100));
  EXPECT_EQ(own.liveness_failure_threshold, 5);
  s.liveness.enabled = false;
  EXPECT_EQ(replica_template(s, "/opt/prescale", "http://g", "/srv/app").liveness_path, "")
      << "off: no liveness checks";
  EXPECT_EQ(t.memory_limit_bytes, 0u) << "no limit unless one is written";
  s.memory_limit = {512u << 20};
  EXPECT_EQ(replica_template(s, "/opt/prescale", "http://g", "/srv/app").memory_limit_bytes,
            512u << 20);

  ServiceConfig c = command_service({"./server", "--port", "{port}"}, 2);
  EXPECT_EQ(replica_template(c, "/opt/prescale", "http://g", "/srv/app").argv, c.command);
  c.readiness_path = "/health";  // a program of the user's with its own health path
  EXPECT_EQ(replica_template(c, "/opt/prescale", "http://g", "/srv/app").readiness_path, "/health");

  // HTTP/2 only; with a gRPC health service, asked about grpc_health_service.
  c.protocol = UpstreamProtocol::kHttp2;
  const local::ReplicaTemplate h2 = replica_template(c, "/opt/prescale", "http://g", "/srv/app");
  EXPECT_TRUE(h2.http2);
  EXPECT_FALSE(h2.grpc_health_service.has_value());
  c.protocol = UpstreamProtocol::kGrpc;
  c.grpc_health_service = "shop.Cart";
  const local::ReplicaTemplate grpc = replica_template(c, "/opt/prescale", "http://g", "/srv/app");
  EXPECT_TRUE(grpc.http2);
  EXPECT_EQ(grpc.grpc_health_service, "shop.Cart");
}

TEST(ReplicaTemplate, ReplicasAreToldWhereTheFileSendsSpansAndTheirServicesName) {
  using Env = std::pair<std::string, std::string>;
  ServiceConfig s;
  s.name = "fraud";
  s.kind = ServiceKind::kFraud;
  // Without tracing, the name only: a service's own OpenTelemetry SDK then names it right too.
  local::ReplicaTemplate t = replica_template(s, "/opt/prescale", "http://g", "/srv/app");
  EXPECT_THAT(t.env, ::testing::Contains(Env("OTEL_SERVICE_NAME", "fraud")));
  EXPECT_THAT(t.env, ::testing::Not(::testing::Contains(
                         ::testing::Field(&Env::first, "OTEL_EXPORTER_OTLP_ENDPOINT"))));
  TracingConfig tracing;
  tracing.otlp_endpoint = "http://127.0.0.1:4318";
  tracing.sample_ratio = 0.1;
  tracing.headers = {{"authorization", "Bearer a,b=c"}};
  t = replica_template(s, "/opt/prescale", "http://g", "/srv/app", tracing);
  EXPECT_THAT(t.env, ::testing::IsSupersetOf(
                         {Env("OTEL_EXPORTER_OTLP_ENDPOINT", "http://127.0.0.1:4318"),
                          Env("OTEL_TRACES_SAMPLER", "parentbased_traceidratio"),
                          Env("OTEL_TRACES_SAMPLER_ARG", "0.1"),
                          Env("OTEL_EXPORTER_OTLP_HEADERS", "authorization=Bearer%20a%2Cb%3Dc"),
                          Env("OTEL_SERVICE_NAME", "fraud")}));
  // The service's own env wins, once.
  s.env = {{"OTEL_SERVICE_NAME", "fraud-eu"}, {"OTEL_TRACES_SAMPLER", "always_off"}};
  t = replica_template(s, "/opt/prescale", "http://g", "/srv/app", tracing);
  EXPECT_EQ(std::count_if(t.env.begin(), t.env.end(),
                          [](const Env& e) { return e.first == "OTEL_SERVICE_NAME"; }),
            1);
  EXPECT_THAT(t.env, ::testing::Contains(Env("OTEL_SERVICE_NAME", "fraud-eu")));
  EXPECT_THAT(t.env, ::testing::Contains(Env("OTEL_TRACES_SAMPLER", "always_off")));
  EXPECT_THAT(
      t.env,
      ::testing::Not(::testing::Contains(Env("OTEL_TRACES_SAMPLER", "parentbased_traceidratio"))));
}

std::string log_file(const std::string& name, const std::string& content) {
  const auto path = std::filesystem::temp_directory_path() /
                    ("last_log_line_" + std::to_string(::getpid()) + "_" + name);
  std::ofstream(path, std::ios::binary) << content;
  return path.string();
}

// What a reload can apply while running (the gateway, the replicas' templates) and what needs a
// restart (what the policy, capacity model and admission control were made from).
// The gateway's health checks ask every replica of a service one question: turning gRPC health
// checks on or off, or changing what they ask about, would ask the old replicas the new one.
TEST(ChangesNeedingARestart, WhatTheGrpcHealthChecksAskAbout) {
  const std::string base = R"(version: 1
services:
  - {name: rpc, kind: command, command: [x, "{port}"], protocol: PROTOCOL}
)";
  auto load = [&](const std::string& protocol) {
    std::string yaml = base;
    yaml.replace(yaml.find("PROTOCOL"), 8, protocol);
    auto c = load_config_string(yaml);
    EXPECT_TRUE(c) << c.error().message;
    return *c;
  };
  EXPECT_THAT(changes_needing_a_restart(load("http1"), load("http2")), ::testing::IsEmpty());
  EXPECT_THAT(changes_needing_a_restart(load("http2"), load("grpc")),
              ::testing::ElementsAre("services[0] (rpc).protocol"));
  EXPECT_THAT(changes_needing_a_restart(load("grpc"), load("http1")),
              ::testing::ElementsAre("services[0] (rpc).protocol"));
  EXPECT_THAT(changes_needing_a_restart(load("grpc"), load("grpc, grpc_health_service: a")),
              ::testing::ElementsAre("services[0] (rpc).grpc_health_service"));
  EXPECT_THAT(changes_needing_a_restart(load("grpc, grpc_health_service: a"),
                                        load("grpc, grpc_health_service: a")),
              ::testing::IsEmpty());
}

TEST(ChangesNeedingARestart, AreTheFieldsThePolicyWasMadeFrom) {
  const std::string base = R"(version: 1
services:
  - name: web
    kind: builtin/echo
    replicas: {min: 1, max: 4}
  - name: api
    kind: builtin/echo
gateway:
  listen: "127.0.0.1:0"
  routes:
    - match: {path_prefix: /}
      service: web
)";
  auto load = [](const std::string& yaml) {
    auto c = load_config_string(yaml);
    EXPECT_TRUE(c) << c.error().message;
    return *c;
  };
  auto edited = [&](const std::string& from, const std::string& to) {
    std::string yaml = base;
    const size_t at = yaml.find(from);
    EXPECT_NE(at, std::string::npos) << from;
    return load(yaml.replace(at, from.size(), to));
  };
  const Config running = load(base);
  EXPECT_THAT(changes_needing_a_restart(running, running), ::testing::IsEmpty());
  // Rolled out, or reloaded by the gateway.
  for (const Config& next :
       {edited("    replicas: {min: 1, max: 4}\n",
               "    replicas: {min: 1, max: 4}\n    env: {A: b}\n"),
        edited("kind: builtin/echo\n    replicas",
               "kind: command\n    command: [x, \"{port}\"]\n    replicas"),
        edited("    replicas: {min: 1, max: 4}\n",
               "    replicas: {min: 1, max: 4}\n    memory_limit: 64Mi\n"),
        edited("path_prefix: /}", "path_prefix: /v1}"),
        edited("version: 1\n", "version: 1\nhealer: {rollout_analysis: false}\n"),
        edited("max: 4", "max: 8"),  // the controller takes new bounds at once
        edited("{min: 1, max: 4}", "{min: 2, max: 4, initial: 3}"),
        // ... and a new SLO, seeds and queue limit
        edited("    replicas: {min: 1, max: 4}\n",
               "    replicas: {min: 1, max: 4}\n    startup_time: 45s\n    capacity_rps: 30\n"
               "    queue_limit: 50ms\n    slo: {latency_p99_ms: 100, error_budget: 0.01}\n"),
        edited("version: 1\n", "version: 1\n\n\n")}) {  // its services on other lines
    EXPECT_THAT(changes_needing_a_restart(running, next), ::testing::IsEmpty());
  }
  // A live policy learns the call graph from the calls it counts: depends_on is the simulator's.
  EXPECT_THAT(changes_needing_a_restart(
                  running, edited("    replicas: {min: 1, max: 4}\n",
                                  "    replicas: {min: 1, max: 4}\n    depends_on: [api]\n")),
              ::testing::IsEmpty());
  EXPECT_THAT(changes_needing_a_restart(
                  running, edited("    replicas: {min: 1, max: 4}\n",
                                  "    replicas: {min: 1, max: 4}\n    concurrency: 8\n")),
              ::testing::ElementsAre("services[0] (web).concurrency"));
  EXPECT_THAT(changes_needing_a_restart(running, edited("kind: builtin/echo\n    replicas",
                                                        "kind: builtin/fraud\n    replicas")),
              ::testing::ElementsAre("services[0] (web).kind"))
      << "a fraud replica serves one request at a time: admission and capacity change";
  EXPECT_THAT(changes_needing_a_restart(
                  running, edited("version: 1\n", "version: 1\npolicy: {name: hpa}\n")),
              ::testing::ElementsAre("policy"));
  EXPECT_THAT(changes_needing_a_restart(
                  running, edited("version: 1\n",
                                  "version: 1\ntracing: {otlp_endpoint: \"http://c:4318\"}\n")),
              ::testing::ElementsAre("tracing"));
  // Services added, removed, renamed or reordered start and stop (service_changes); the others
  // are compared by name wherever they are listed.
  EXPECT_THAT(changes_needing_a_restart(running, edited("  - name: api\n", "  - name: api2\n")),
              ::testing::IsEmpty());
  const Config reordered = edited(
      "  - name: web\n    kind: builtin/echo\n    replicas: {min: 1, "
      "max: 4}\n  - name: api\n    kind: builtin/echo\n",
      "  - name: api\n    kind: builtin/echo\n    concurrency: 4\n"
      "  - name: web\n    kind: builtin/echo\n    replicas: {min: 1, "
      "max: 4}\n");
  EXPECT_THAT(changes_needing_a_restart(running, reordered),
              ::testing::ElementsAre("services[0] (api).concurrency"));
  EXPECT_TRUE(service_changes(running, reordered).empty());
  EXPECT_THAT(changes_needing_a_restart(running, edited("127.0.0.1:0", "127.0.0.1:8080")),
              ::testing::ElementsAre("gateway.listen"));
  // HTTPS turned on needs a restart; other certificate files are read at once.
  const std::string tls = "  tls: {cert_file: a.crt, key_file: a.key}\n  routes:";
  EXPECT_THAT(changes_needing_a_restart(running, edited("  routes:", tls)),
              ::testing::ElementsAre("gateway.tls"));
  EXPECT_THAT(changes_needing_a_restart(edited("  routes:", tls),
                                        edited("  routes:",
                                               "  tls: {cert_file: b.crt, key_file: "
                                               "b.key}\n  routes:")),
              ::testing::IsEmpty());
  EXPECT_THAT(changes_needing_a_restart(running, edited("    kind: builtin/echo\ngateway",
                                                        "    kind: builtin/echo\n"
                                                        "    readiness_path: /ok\ngateway")),
              ::testing::ElementsAre("services[1] (api).readiness_path"));
}

TEST(ServiceChanges, NameTheServicesAddedAndRemovedInTheFilesOrder) {
  auto load = [](const std::string& names) {
    std::string yaml = "version: 1\nservices:\n";
    for (char c : names) yaml += std::string("  - {name: s") + c + ", kind: builtin/echo}\n";
    auto config = load_config_string(yaml);
    EXPECT_TRUE(config) << config.error().message;
    return *config;
  };
  const ServiceChanges changed = service_changes(load("abcd"), load("dbxay"));
  EXPECT_THAT(changed.added, ::testing::ElementsAre("sx", "sy"));
  EXPECT_THAT(changed.removed, ::testing::ElementsAre("sc"));
  EXPECT_EQ(changed.said(), "added sx, sy; removed sc");
  EXPECT_EQ(service_changes(load("ab"), load("a")).said(), "removed sb");
  EXPECT_EQ(service_changes(load("a"), load("ab")).said(), "added sb");
  EXPECT_TRUE(service_changes(load("ab"), load("ba")).empty());
  EXPECT_EQ(find_service(load("ab"), "sb")->name, "sb");
  EXPECT_EQ(find_service(load("ab"), "sc"), nullptr);
}
// A file of one service and no routes sends it every request; a service added beside it took that
// route away (routes must name each of several), and the site answered 404 until a restart
// with routes.
TEST(CatchAllLost, ASecondServiceWithoutRoutesIsRefusedUntilTheFirstHasOne) {
  auto load = [](const std::string& yaml) {
    auto config = load_config_string("version: 1\n" + yaml);
    EXPECT_TRUE(config) << config.error().message;
    return *config;
  };
  const std::string web = "  - {name: web, kind: builtin/echo}\n";
  const std::string worker = "  - {name: worker, kind: builtin/echo}\n";
  const Config running = load("services:\n" + web);
  EXPECT_EQ(catch_all_lost(running, running), "");
  EXPECT_EQ(catch_all_lost(running, load("services:\n" + web + worker)),
            "gateway.routes: web gets every request as the file's one service; with worker "
            "beside it, no route would name web and the gateway would answer its requests 404: "
            "give it a route (`- {match: {path_prefix: /}, service: web}` takes every request no "
            "other route takes)");
  // With a route for web, or web renamed (its catch-all is the new one's), nothing is lost.
  const std::string routes = "gateway:\n  routes:\n    - {match: {path_prefix: /}, service: web}\n";
  EXPECT_EQ(catch_all_lost(running, load("services:\n" + web + worker + routes)), "");
  EXPECT_EQ(catch_all_lost(running, load("services:\n" + worker)), "");
  // A file that already had routes gave no catch-all.
  EXPECT_EQ(catch_all_lost(load("services:\n" + web + routes), load("services:\n" + web + worker)),
            "");
}

TEST(SpecChanges, SayWhatTheControllerTakesAtOnce) {
  auto load = [](const std::string& service) {
    auto c = load_config_string("version: 1\nservices:\n  - name: web\n    kind: builtin/echo\n" +
                                service);
    EXPECT_TRUE(c) << c.error().message;
    return c->services.at(0);
  };
  const ServiceConfig running = load("    replicas: {min: 1, max: 6}\n");
  EXPECT_THAT(spec_changes(running, running), ::testing::IsEmpty());
  EXPECT_THAT(spec_changes(running, load("    replicas: {min: 1, max: 6, initial: 2}\n")),
              ::testing::IsEmpty())
      << "the count of the next start";
  EXPECT_THAT(
      spec_changes(running, load("    replicas: {min: 3, max: 6}\n    capacity_rps: 30\n"
                                 "    startup_time: 5s\n")),
      ::testing::ElementsAre("replicas within [3, 6] (were [1, 6])", "capacity_rps 30 (was 100)",
                             "startup_time 5000 ms (was 30000 ms)"));
  // The automatic queue limit is half the SLO: a new SLO moves it.
  EXPECT_THAT(spec_changes(running, load("    replicas: {min: 1, max: 6}\n"
                                         "    slo: {latency_p99_ms: 100, error_budget: 0.01}\n")),
              ::testing::ElementsAre("slo.latency_p99_ms 100 (was 200)",
                                     "slo.error_budget 0.01 (was 0.001)",
                                     "queue_limit 50 ms (was 100 ms)"));
  EXPECT_THAT(spec_changes(running, load("    replicas: {min: 1, max: 6}\n    queue_limit: 0s\n")),
              ::testing::ElementsAre("queue_limit 0 ms (was 100 ms)"));
}

TEST(LastLogLine, TheLastLineThatIsNotBlank) {
  const std::string log = log_file("plain", "loading\r\nno model in /models/x\r\n \n\n");
  EXPECT_EQ(last_log_line(log), "no model in /models/x");
  std::filesystem::remove(log);
  EXPECT_EQ(last_log_line(log), "") << "no file";
}

// A long line is cut at a character boundary: the message that quotes it is valid UTF-8.
TEST(LastLogLine, ALongLineIsCutBetweenCharacters) {
  const std::string a196(196, 'a');
  std::string e100;
  for (int i = 0; i < 100; ++i) e100 += "\u00e9";  // 2 bytes each
  const std::string log = log_file("utf8", "first\n" + a196 + e100 + "\n");
  EXPECT_EQ(last_log_line(log), a196 + "...") << "not the first byte of the 'é' at 196";
  std::filesystem::remove(log);
}

// The last 4 KiB of a longer line may begin inside a character: that part is left out.
TEST(LastLogLine, ALineLongerThanTheTailReadStartsAtACharacter) {
  std::string e2500;
  for (int i = 0; i < 2500; ++i) e2500 += "\u00e9";
  const std::string log = log_file("tail", e2500 + "\n");  // 5001 bytes: the tail starts at 905
  std::string e98;
  for (int i = 0; i < 98; ++i) e98 += "\u00e9";
  EXPECT_EQ(last_log_line(log), e98 + "...");
  std::filesystem::remove(log);
}

// Replicas for unready_services(): "web" answers ready at once, "broken" exits with status 3,
// "slow" runs and never answers.
struct ScriptedReplicas final : local::ProcessLauncher, local::ReplicaProbe, local::EndpointSink {
  struct Proc final : local::Process {
    explicit Proc(std::optional<int> s) : status(s) {}
    int pid() const override { return 42; }
    void signal(int) override { status = 137; }
    std::optional<int> poll_exit() override { return status; }
    std::optional<int> status;
  };
  struct Answer final : local::ReadinessCheck {
    Answer(bool r, int s, std::string d = "") : ready(r), code(s), said(std::move(d)) {}
    std::optional<bool> answer() override { return ready; }
    int status() override { return code; }
    std::string detail() override { return said; }
    bool ready;
    int code;
    std::string said;
  };
  Result<std::unique_ptr<local::Process>> launch(const local::LaunchSpec& spec) override {
    const bool broken = spec.argv[0] == "broken";
    return std::unique_ptr<local::Process>(
        std::make_unique<Proc>(broken ? std::optional<int>(3) : std::nullopt));
  }
  Result<std::uint16_t> free_port() override { return next_port++; }
  std::optional<std::uint16_t> read_port_file(const std::string&) override { return {}; }
  std::unique_ptr<local::ReadinessCheck> check_ready(std::uint16_t port, const std::string&,
                                                     std::chrono::milliseconds) override {
    return std::make_unique<Answer>(port == web_port, port == web_port ? 200 : not_ready_status);
  }
  std::unique_ptr<local::ReadinessCheck> check_grpc_health(std::uint16_t,
                                                           const std::string& service,
                                                           std::chrono::milliseconds) override {
    grpc_asked.push_back(service);
    return std::make_unique<Answer>(false, 200, grpc_answer);
  }
  void add(const std::string&, const std::string&, std::uint16_t) override {}
  void remove(const std::string&, const std::string&) override {}
  std::int64_t in_flight(const std::string&, const std::string&) override { return 0; }
  std::uint16_t next_port = 9000;
  std::uint16_t web_port = 0;
  int not_ready_status = 0;  // what the others answer: 0, no answer
  std::string grpc_answer = "NOT_SERVING";  // what every gRPC health check says
  std::vector<std::string> grpc_asked;      // the services they asked about
};

// What unready_services() says 2 s after "web", "broken" and "slow" were asked for a replica each.
std::vector<std::string> unready_after_two_seconds(const local::SupervisorOptions& o) {
  ScriptedReplicas world;
  world.web_port = 9000;
  local::Supervisor supervisor(o, world, world, world);
  std::vector<ServiceConfig> services(3);
  const char* names[] = {"web", "broken", "slow"};
  for (size_t i = 0; i < 3; ++i) {
    services[i].name = names[i];
    services[i].replicas.initial = 1;
    EXPECT_TRUE(supervisor.add_service({names[i], {names[i], "{port}"}, {}}));
    EXPECT_TRUE(supervisor.set_desired(names[i], 1));
  }
  ManualClock clock;
  supervisor.tick(clock.now());
  clock.advance(std::chrono::seconds(2));
  supervisor.tick(clock.now());
  return unready_services(services, supervisor, clock.now());
}

TEST(UnreadyServices, NameEachServiceShortOfItsReplicasWhatTheyDoAndTheirLogsLastLine) {
  const auto logs =
      std::filesystem::temp_directory_path() / ("unready_" + std::to_string(::getpid()));
  std::filesystem::create_directories(logs);
  std::ofstream(logs / "broken-1.log") << "loading\nno model in /models/x\n\n";
  local::SupervisorOptions o;
  o.log_dir = logs.string();
  const std::vector<std::string> report = unready_after_two_seconds(o);
  ASSERT_EQ(report.size(), 2u) << "web is ready";
  EXPECT_EQ(report[0],
            "broken (0 of 1 ready); broken-1 crashed: exited with status 3, restarts "
            "in 10 s; its log " +
                (logs / "broken-1.log").string() + " ends \"no model in /models/x\"");
  EXPECT_EQ(report[1], "slow (0 of 1 ready); slow-1 starting for 2 s, not ready yet");
  std::filesystem::remove_all(logs);
}

// A gRPC server not yet serving is named with what its health service said; one without a
// health service is told what to do.
TEST(UnreadyServices, AGrpcServerSaysWhatItsHealthServiceAnswered) {
  for (const std::string answer :
       {"NOT_SERVING", "grpc-status 12 (UNIMPLEMENTED: Method not found: x)"}) {
    ScriptedReplicas world;
    world.grpc_answer = answer;
    local::Supervisor supervisor(local::SupervisorOptions{}, world, world, world);
    ServiceConfig rpc;
    rpc.name = "rpc";
    rpc.protocol = UpstreamProtocol::kGrpc;
    rpc.grpc_health_service = "shop.Cart";
    rpc.replicas.initial = 1;
    local::ReplicaTemplate t{"rpc", {"rpc", "{port}"}, {}};
    t.http2 = true;
    t.grpc_health_service = "shop.Cart";
    ASSERT_TRUE(supervisor.add_service(t));
    ASSERT_TRUE(supervisor.set_desired("rpc", 1));
    ManualClock clock;
    supervisor.tick(clock.now());
    clock.advance(std::chrono::seconds(2));
    supervisor.tick(clock.now());
    const std::vector<std::string> report = unready_services({rpc}, supervisor, clock.now());
    ASSERT_EQ(report.size(), 1u);
    std::string expected =
        "rpc (0 of 1 ready); rpc-1 starting for 2 s, not ready yet: "
        "grpc.health.v1.Health/Check for \"shop.Cart\" answered " +
        answer;
    if (answer.starts_with("grpc-status 12")) {
      expected +=
          " (the server has no health service: serve grpc.health.v1, or set "
          "services[].protocol: http2)";
    }
    EXPECT_EQ(report[0], expected);
    ASSERT_FALSE(world.grpc_asked.empty());
    EXPECT_EQ(world.grpc_asked.front(), "shop.Cart");
  }
}

// A log the supervisor moved aside (copied to <log>.1, then emptied) has its last line in the copy.
TEST(UnreadyServices, TheLastLineOfALogMovedAsideIsReadFromTheCopy) {
  const auto logs =
      std::filesystem::temp_directory_path() / ("unready_moved_" + std::to_string(::getpid()));
  std::filesystem::create_directories(logs);
  std::ofstream(logs / "broken-1.log") << "loading\nno model in /models/x\n";
  local::SupervisorOptions o;
  o.log_dir = logs.string();
  o.max_log_bytes = 8;  // moved aside before the replica starts
  const std::vector<std::string> report = unready_after_two_seconds(o);
  ASSERT_EQ(std::filesystem::file_size(logs / "broken-1.log"), 0u);
  ASSERT_EQ(report.size(), 2u) << "web is ready";
  EXPECT_EQ(report[0],
            "broken (0 of 1 ready); broken-1 crashed: exited with status 3, restarts "
            "in 10 s; its log " +
                (logs / "broken-1.log.1").string() + " ends \"no model in /models/x\"");
  std::filesystem::remove_all(logs);
}

// Renamed or removed in the file since the state was saved: their history and capacity are
// named, once each, in order; services the file still has are not.
TEST(ServicesNotInFile, NamesTheSavedServicesTheFileNoLongerHas) {
  const nlohmann::json state = {
      {"services", {{"web", nlohmann::json::object()}, {"api", nlohmann::json::object()}}},
      {"capacity", {{"services", {{{"name", "old"}}, {{"name", "api"}}, {{"name", "web"}}}}}}};
  ServiceConfig api;
  api.name = "api";
  EXPECT_EQ(services_not_in_file(state, {api}), (std::vector<std::string>{"old", "web"}));
  ServiceConfig web = api, old = api;
  web.name = "web";
  old.name = "old";
  EXPECT_TRUE(services_not_in_file(state, {api, web, old}).empty());
  EXPECT_TRUE(services_not_in_file(nlohmann::json::object(), {api}).empty());
}

// A program of the user's that answers, but not at the readiness path (python3 -m http.server:
// 404 at /readyz), was "starting for 3 s, not ready yet", the answer nowhere: said, with the
// setting that changes the path, as a Kubernetes probe's event says it.
TEST(UnreadyServices, AReplicaThatAnswersNotReadySaysWhatItAnswered) {
  ScriptedReplicas world;
  world.not_ready_status = 404;
  local::Supervisor supervisor({}, world, world, world);
  std::vector<ServiceConfig> services(1);
  services[0].name = "files";
  services[0].replicas.initial = 1;
  ASSERT_TRUE(supervisor.add_service({"files", {"files", "{port}"}, {}}));
  ASSERT_TRUE(supervisor.set_desired("files", 1));
  ManualClock clock;
  supervisor.tick(clock.now());
  clock.advance(std::chrono::seconds(2));
  supervisor.tick(clock.now());
  const std::vector<std::string> report = unready_services(services, supervisor, clock.now());
  ASSERT_EQ(report.size(), 1u);
  EXPECT_EQ(report[0],
            "files (0 of 1 ready); files-1 starting for 2 s, not ready yet: GET /readyz answered "
            "404 (services[].readiness_path sets the path)");
}

// A second `prescale up` on a state directory names the holder's pid from the lock file, which
// the holder writes just after taking the lock: read in between, it is empty, and the message
// said "(pid )".
TEST(StateDirInUse, ThePidIsReadAgainUntilTheHolderHasWrittenIt) {
  std::vector<std::string> reads = {"", "", "4242\n"};
  size_t next = 0;
  int pauses = 0;
  const std::string message = state_dir_in_use_message(
      "/tmp/s", [&] { return next < reads.size() ? reads[next++] : std::string(); },
      [&] { ++pauses; });
  EXPECT_EQ(message,
            "--state-dir /tmp/s is in use by another prescale up (pid 4242); stop it, or give "
            "another --state-dir");
  EXPECT_EQ(next, 3u);
  EXPECT_EQ(pauses, 2);
}

TEST(StateDirInUse, NoPidIsNamedWhenTheLockFileNeverSaysOne) {
  for (const std::string text : {"", "\n", "12a\n", "pid\n", "-5\n"}) {
    int reads = 0;
    int pauses = 0;
    const std::string message = state_dir_in_use_message(
        "/tmp/s",
        [&] {
          ++reads;
          return text;
        },
        [&] { ++pauses; });
    EXPECT_EQ(message,
              "--state-dir /tmp/s is in use by another prescale up; stop it, or give another "
              "--state-dir")
        << text;
    EXPECT_THAT(message, Not(HasSubstr("pid"))) << text;
    EXPECT_GT(reads, 1) << text;  // tried again, a bounded number of times
    EXPECT_EQ(pauses, reads - 1) << text;
  }
}

}  // namespace
}  // namespace prescale
