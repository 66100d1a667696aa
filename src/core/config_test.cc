#include "core/config.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>

#include "core/internal/config_scalars.h"

namespace prescale {
namespace {

using std::chrono::milliseconds;
using namespace std::chrono_literals;
using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::Pair;

// The repository root: ctest sets PRESCALE_SOURCE_DIR; a direct run falls back to this file's.
std::filesystem::path source_dir() {
  if (const char* src = std::getenv("PRESCALE_SOURCE_DIR")) return src;
  return std::filesystem::path(__FILE__).parent_path().parent_path().parent_path();
}

// The error message of a load that must fail.
std::string error_of(std::string_view yaml) {
  Result<Config> r = load_config_string(yaml, "prescale.yaml");
  if (r.has_value()) return "<loaded without error>";
  EXPECT_EQ(r.error().code, ErrorCode::kInvalidArgument);
  return r.error().message;
}

// ---- Valid files ---------------------------------------------------------------------------

TEST(ConfigLoad, FullFileLoadsWithExpectedValues) {
  const std::string path = (source_dir() / "src/core/testdata/full.yaml").string();
  Result<Config> r = load_config_file(path);
  ASSERT_TRUE(r.has_value()) << r.error().message;
  const Config& c = *r;

  EXPECT_EQ(c.version, 1);
  EXPECT_EQ(c.world, WorldKind::kLocal);
  EXPECT_EQ(c.http.threads, 4);
  EXPECT_EQ(c.http.max_header_bytes, 32768);
  EXPECT_EQ(c.http.max_body_bytes, 1048576);
  EXPECT_EQ(c.http.read_timeout, 5s);
  EXPECT_EQ(c.http.idle_timeout, 2min);
  EXPECT_EQ(c.http.max_connections, 2000);
  EXPECT_EQ(c.http.shutdown_grace, 15s);
  EXPECT_EQ(c.logging.level, LogLevel::kDebug);
  EXPECT_EQ(c.logging.format, LogFormat::kJson);
  EXPECT_EQ(c.policy.name, PolicyName::kPrescale);
  EXPECT_EQ(c.policy.period, 10s);

  ASSERT_EQ(c.services.size(), 3u);
  const ServiceConfig& rec = c.services[0];
  EXPECT_EQ(rec.name, "recommend");
  EXPECT_EQ(rec.kind, ServiceKind::kRecommend);
  EXPECT_TRUE(rec.command.empty());
  EXPECT_EQ(rec.replicas.min, 2);
  EXPECT_EQ(rec.replicas.max, 20);
  EXPECT_EQ(rec.replicas.initial, 3);
  EXPECT_EQ(rec.startup_time, 45s);
  EXPECT_DOUBLE_EQ(rec.capacity_rps, 150);
  EXPECT_DOUBLE_EQ(rec.slo.latency_p99_ms, 200);
  EXPECT_DOUBLE_EQ(rec.slo.error_budget, 0.001);
  EXPECT_THAT(rec.depends_on, ElementsAre("fraud"));

  const ServiceConfig& fraud = c.services[1];
  EXPECT_EQ(fraud.kind, ServiceKind::kFraud);
  EXPECT_EQ(fraud.replicas.initial, 1);  // defaults to min
  EXPECT_DOUBLE_EQ(fraud.slo.error_budget, 0.0005);

  const ServiceConfig& checkout = c.services[2];
  EXPECT_EQ(checkout.kind, ServiceKind::kCommand);
  EXPECT_THAT(checkout.command, ElementsAre("./checkout", "--port", "{port}"));
  EXPECT_THAT(checkout.env, ElementsAre(Pair("CHECKOUT_MODE", "fast"), Pair("WORKERS", "4")));
  EXPECT_EQ(checkout.replicas.min, 0);
  EXPECT_EQ(checkout.startup_time, 1500ms);
  EXPECT_DOUBLE_EQ(checkout.capacity_rps, 75.5);
  EXPECT_THAT(checkout.depends_on, ElementsAre("fraud", "recommend"));

  EXPECT_EQ(c.gateway.listen, "0.0.0.0:8080");
  ASSERT_EQ(c.gateway.routes.size(), 3u);
  EXPECT_EQ(c.gateway.routes[0].match.path_prefix, "/v1/recommend");
  EXPECT_EQ(c.gateway.routes[0].service, "recommend");
  EXPECT_EQ(c.gateway.routes[0].timeout, 2s);
  EXPECT_EQ(c.gateway.routes[0].retries, 1);
  EXPECT_EQ(c.gateway.routes[1].match.host, "shop.example.com");
  EXPECT_THAT(c.gateway.routes[1].match.headers, ElementsAre(Pair("x-tenant", "acme")));
  EXPECT_EQ(c.gateway.routes[1].retries, 0);
  EXPECT_EQ(c.gateway.routes[2].service, "fraud");
  EXPECT_EQ(c.gateway.routes[2].timeout, 15s);  // default
  EXPECT_EQ(c.gateway.routes[2].retries, 2);    // default
}

TEST(ConfigLoad, DocsCompleteExampleLoads) {
  // The complete example in docs/config.md is the YAML block after this marker.
  std::ifstream in(source_dir() / "docs/config.md");
  ASSERT_TRUE(in) << "docs/config.md not found";
  std::ostringstream text;
  text << in.rdbuf();
  const std::string doc = text.str();
  const std::size_t marker = doc.find("<!-- example: complete -->\n```yaml\n");
  ASSERT_NE(marker, std::string::npos);
  const std::size_t begin = doc.find('\n', doc.find("```yaml", marker)) + 1;
  const std::size_t end = doc.find("```", begin);
  ASSERT_NE(end, std::string::npos);

  Result<Config> r = load_config_string(doc.substr(begin, end - begin), "docs/config.md");
  ASSERT_TRUE(r.has_value()) << r.error().message;
  EXPECT_EQ(r->services.size(), 4u);
  EXPECT_EQ(r->gateway.routes.size(), 3u);
}

TEST(ConfigLoad, MinimalFileGetsDefaults) {
  Result<Config> r = load_config_string("version: 1\n");
  ASSERT_TRUE(r.has_value()) << r.error().message;
  const Config& c = *r;
  EXPECT_EQ(c.world, WorldKind::kLocal);
  EXPECT_EQ(c.http.threads, 0);
  EXPECT_EQ(c.http.max_header_bytes, 16384);
  EXPECT_EQ(c.http.max_body_bytes, 4194304);
  EXPECT_EQ(c.http.read_timeout, 10s);
  EXPECT_EQ(c.http.idle_timeout, 60s);
  EXPECT_EQ(c.http.max_connections, 10000);
  EXPECT_EQ(c.http.shutdown_grace, 10s);
  EXPECT_EQ(c.logging.level, LogLevel::kInfo);
  EXPECT_EQ(c.logging.format, LogFormat::kText);
  EXPECT_EQ(c.policy.name, PolicyName::kPrescale);
  EXPECT_EQ(c.policy.period, 15s);
  EXPECT_TRUE(c.services.empty());
  EXPECT_EQ(c.gateway.listen, "127.0.0.1:8080");
  EXPECT_TRUE(c.gateway.routes.empty());
}

TEST(ConfigLoad, ServiceDefaults) {
  Result<Config> r = load_config_string(R"(
version: 1
services:
  - name: echo
    kind: builtin/echo
  - name: big
    kind: builtin/echo
    replicas: {min: 3}
gateway:
  routes:
    - service: echo
)");
  ASSERT_TRUE(r.has_value()) << r.error().message;
  const ServiceConfig& s = r->services[0];
  EXPECT_EQ(s.replicas.min, 1);
  EXPECT_EQ(s.replicas.max, 10);
  EXPECT_EQ(s.replicas.initial, 1);
  EXPECT_EQ(s.startup_time, 30s);
  EXPECT_DOUBLE_EQ(s.capacity_rps, 100);
  EXPECT_DOUBLE_EQ(s.slo.latency_p99_ms, 200);
  EXPECT_DOUBLE_EQ(s.slo.error_budget, 0.001);
  EXPECT_TRUE(s.env.empty());
  EXPECT_TRUE(s.depends_on.empty());
  EXPECT_EQ(r->services[1].replicas.initial, 3);  // follows min when not written
  EXPECT_EQ(r->gateway.routes[0].match.path_prefix, "/");
  EXPECT_EQ(r->gateway.routes[0].match.host, "");
}

TEST(ConfigLoad, EmptyValueMeansDefault) {
  Result<Config> r = load_config_string("version: 1\nhttp:\nlogging:\n  level: ~\nservices:\n");
  ASSERT_TRUE(r.has_value()) << r.error().message;
  EXPECT_EQ(r->http.max_connections, 10000);
  EXPECT_EQ(r->logging.level, LogLevel::kInfo);
}

TEST(ConfigLoad, DurationForms) {
  Result<Config> r = load_config_string(R"(
version: 1
http: {read_timeout: 500ms, idle_timeout: 5m, shutdown_grace: 0}
policy: {period: 1h}
services:
  - {name: a, kind: builtin/echo, startup_time: 90}
  - {name: b, kind: builtin/echo, startup_time: 0.25}
  - {name: c, kind: builtin/echo, startup_time: 1m30s}
)");
  ASSERT_TRUE(r.has_value()) << r.error().message;
  EXPECT_EQ(r->http.read_timeout, 500ms);
  EXPECT_EQ(r->http.idle_timeout, 5min);
  EXPECT_EQ(r->http.shutdown_grace, 0s);
  EXPECT_EQ(r->policy.period, 1h);
  EXPECT_EQ(r->services[0].startup_time, 90s);  // bare number = seconds
  EXPECT_EQ(r->services[1].startup_time, 250ms);
  EXPECT_EQ(r->services[2].startup_time, 90s);
}

TEST(ConfigLoad, EnumNamesRoundTrip) {
  EXPECT_EQ(to_string(WorldKind::kKube), "kube");
  EXPECT_EQ(to_string(LogLevel::kWarn), "warn");
  EXPECT_EQ(to_string(LogFormat::kJson), "json");
  EXPECT_EQ(to_string(PolicyName::kHpa), "hpa");
  EXPECT_EQ(to_string(ServiceKind::kRecommend), "builtin/recommend");
  EXPECT_EQ(to_string(ServiceKind::kCommand), "command");
}

// ---- Errors: each names file:line:column, the field path and what is wrong -----------------

TEST(ConfigError, UnknownKeyWithSuggestion) {
  EXPECT_EQ(error_of(R"(version: 1
services:
  - name: a
    replcas: {min: 1}
    kind: builtin/echo
)"),
            R"(prescale.yaml:4:5: services[0]: unknown key "replcas"; did you mean "replicas"?)");
}

TEST(ConfigError, UnknownTopLevelKey) {
  EXPECT_EQ(error_of("version: 1\nsevices: []\n"),
            R"(prescale.yaml:2:1: unknown key "sevices"; did you mean "services"?)");
}

TEST(ConfigError, UnknownKeyFarFromAnyListsValidKeys) {
  EXPECT_EQ(error_of("version: 1\nlogging: {colour: red}\n"),
            R"(prescale.yaml:2:11: logging: unknown key "colour"; valid keys: level, format)");
}

TEST(ConfigError, WrongType) {
  EXPECT_EQ(error_of("version: 1\nhttp:\n  threads: abc\n"),
            R"(prescale.yaml:3:12: http.threads: expected an integer, got "abc")");
  EXPECT_EQ(error_of("version: 1\nhttp: [1, 2]\n"),
            "prescale.yaml:2:7: http: expected a mapping, got a list");
  EXPECT_EQ(error_of("version: 1\nservices: {name: a}\n"),
            "prescale.yaml:2:11: services: expected a list, got a mapping");
  EXPECT_EQ(error_of("version: 1\nservices:\n  - name: [a]\n    kind: builtin/echo\n"),
            "prescale.yaml:3:11: services[0].name: expected a string, got a list");
  EXPECT_EQ(error_of("version: 1\nservices:\n  - {name: a, kind: builtin/echo, capacity_rps: "
                     "lots}\n"),
            R"(prescale.yaml:3:49: services[0].capacity_rps: expected a number, got "lots")");
}

TEST(ConfigError, OutOfRange) {
  EXPECT_EQ(error_of(R"(version: 1
services:
  - name: a
    kind: builtin/echo
  - name: b
    kind: builtin/echo
    slo:
      latency_p99_ms: 0
)"),
            "prescale.yaml:8:23: services[1].slo.latency_p99_ms: must be > 0, got 0");
  EXPECT_EQ(error_of("version: 1\nservices:\n  - {name: a, kind: builtin/echo, slo: "
                     "{error_budget: 1.5}}\n"),
            "prescale.yaml:3:55: services[0].slo.error_budget: must be < 1, got 1.5");
  EXPECT_EQ(error_of("version: 1\nhttp: {threads: -1}\n"),
            "prescale.yaml:2:17: http.threads: must be >= 0, got -1");
  EXPECT_EQ(error_of("version: 1\nhttp: {threads: 99999999999}\n"),
            R"(prescale.yaml:2:17: http.threads: expected an integer between -2147483648 and )"
            R"(2147483647, got "99999999999")");
}

TEST(ConfigError, ReplicaBounds) {
  EXPECT_EQ(error_of(R"(version: 1
services:
  - name: a
    kind: builtin/echo
  - name: b
    kind: builtin/echo
    replicas:
      min: 2
      max: 1
)"),
            "prescale.yaml:9:12: services[1].replicas.max: must be >= replicas.min (2), got 1");
  EXPECT_EQ(error_of("version: 1\nservices:\n  - {name: a, kind: builtin/echo, replicas: "
                     "{min: 12}}\n"),
            "prescale.yaml:3:45: services[0].replicas.max: must be >= replicas.min (12), got 10 "
            "(the default)");
  EXPECT_EQ(error_of("version: 1\nservices:\n  - {name: a, kind: builtin/echo, replicas: "
                     "{max: 3, initial: 4}}\n"),
            "prescale.yaml:3:63: services[0].replicas.initial: must be between replicas.min (1) "
            "and replicas.max (3), got 4");
  EXPECT_EQ(error_of("version: 1\nservices:\n  - {name: a, kind: builtin/echo, replicas: "
                     "{min: 0, max: 0}}\n"),
            "prescale.yaml:3:59: services[0].replicas.max: must be >= 1, got 0");
}

TEST(ConfigError, BadEnumListsAllowedValues) {
  EXPECT_EQ(error_of("version: 1\nworld: cloud\n"),
            R"(prescale.yaml:2:8: world: must be one of sim, local, kube; got "cloud")");
  EXPECT_EQ(error_of("version: 1\nservices:\n  - name: a\n    kind: builtin/recomend\n"),
            "prescale.yaml:4:11: services[0].kind: must be one of builtin/recommend, "
            "builtin/fraud, builtin/forecast, builtin/echo, command; got \"builtin/recomend\"");
}

TEST(ConfigError, BadDuration) {
  EXPECT_EQ(error_of("version: 1\npolicy:\n  period: 15 seconds\n"),
            R"(prescale.yaml:3:11: policy.period: expected a duration such as "500ms", "60s", )"
            R"("5m" or "1h" (a bare number means seconds), got "15 seconds")");
  EXPECT_EQ(error_of("version: 1\npolicy:\n  period: -5s\n"),
            R"(prescale.yaml:3:11: policy.period: durations cannot be negative, got "-5s")");
  EXPECT_EQ(error_of("version: 1\npolicy:\n  period: 0s\n"),
            "prescale.yaml:3:11: policy.period: must be > 0s, got 0s");
}

TEST(ConfigError, DuplicateServiceName) {
  EXPECT_EQ(error_of(R"(version: 1
services:
  - name: fraud
    kind: builtin/fraud
  - name: fraud
    kind: builtin/echo
)"),
            R"(prescale.yaml:5:11: services[1].name: duplicate service name "fraud" )"
            R"((first defined at services[0].name, line 3))");
}

TEST(ConfigError, DependsOnUnknownService) {
  EXPECT_EQ(error_of(R"(version: 1
services:
  - name: fraud
    kind: builtin/fraud
  - name: recommend
    kind: builtin/recommend
    depends_on: [fruad]
)"),
            R"(prescale.yaml:7:18: services[1].depends_on[0]: unknown service "fruad"; )"
            R"(did you mean "fraud"?)");
  EXPECT_EQ(error_of("version: 1\nservices:\n  - {name: a, kind: builtin/echo, depends_on: "
                     "[a]}\n"),
            "prescale.yaml:3:48: services[0].depends_on[0]: a service cannot depend on itself");
}

TEST(ConfigError, RouteToUnknownService) {
  EXPECT_EQ(error_of(R"(version: 1
services:
  - name: recommend
    kind: builtin/recommend
gateway:
  routes:
    - match: {path_prefix: /v1/recommend}
      service: recomend
)"),
            R"(prescale.yaml:8:16: gateway.routes[0].service: unknown service "recomend"; )"
            R"(did you mean "recommend"?)");
  EXPECT_EQ(error_of("version: 1\ngateway: {routes: [{service: x}]}\n"),
            R"(prescale.yaml:2:30: gateway.routes[0].service: unknown service "x"; )"
            "no services are defined");
}

TEST(ConfigError, MissingRequiredField) {
  EXPECT_EQ(error_of("world: sim\n"), "prescale.yaml:1:1: version: required field is missing");
  EXPECT_EQ(error_of(""), "prescale.yaml:1:1: version: required field is missing");
  EXPECT_EQ(error_of("version: 1\nservices:\n  - kind: builtin/echo\n"),
            "prescale.yaml:3:5: services[0].name: required field is missing");
  EXPECT_EQ(error_of("version: 1\nservices:\n  - name: a\n    kind:\n"),
            "prescale.yaml:4:5: services[0].kind: required field is missing");
}

TEST(ConfigError, CommandRequiredIffKindCommand) {
  EXPECT_EQ(error_of("version: 1\nservices:\n  - name: a\n    kind: command\n"),
            R"(prescale.yaml:3:5: services[0].command: required when kind is "command")");
  EXPECT_EQ(error_of("version: 1\nservices:\n  - name: a\n    kind: builtin/echo\n"
                     "    command: [x]\n"),
            R"(prescale.yaml:5:14: services[0].command: only allowed when kind is "command" )"
            R"((kind is "builtin/echo"))");
}

TEST(ConfigError, MalformedYamlReportsItsLine) {
  EXPECT_EQ(error_of("version: 1\nservices: [a, b\nworld: sim\n"),
            "prescale.yaml:3:6: invalid YAML: end of sequence flow not found");
  EXPECT_THAT(error_of("version: 1\n  bad indent: 2\n"), HasSubstr("prescale.yaml:2:"));
}

TEST(ConfigError, OtherRules) {
  EXPECT_EQ(error_of("version: 2\n"),
            "prescale.yaml:1:10: version: unsupported version 2; this Prescale reads version 1");
  EXPECT_EQ(error_of("version: 1\nservices:\n  - {name: Recommend, kind: builtin/echo}\n"),
            "prescale.yaml:3:12: services[0].name: must be 1 to 63 characters of a-z, 0-9 and "
            "\"-\", starting and ending with a letter or digit, got \"Recommend\"");
  EXPECT_EQ(error_of("version: 1\ngateway: {listen: \"localhost:70000\"}\n"),
            R"(prescale.yaml:2:19: gateway.listen: port must be 0..65535, got "70000")");
  EXPECT_EQ(error_of("version: 1\ngateway: {listen: \"8080\"}\n"),
            R"(prescale.yaml:2:19: gateway.listen: must be "host:port" (e.g. "127.0.0.1:8080", )"
            R"("[::]:8080"), got "8080")");
  EXPECT_EQ(error_of("version: 1\ngateway:\n  routes:\n    - {match: {path_prefix: v1}, service: "
                     "a}\n"),
            R"(prescale.yaml:4:29: gateway.routes[0].match.path_prefix: must start with "/", )"
            R"(got "v1")");
  EXPECT_EQ(error_of("version: 1\nversion: 1\n"), "prescale.yaml:2:1: version: duplicate key");
  EXPECT_EQ(error_of("version: 1\nservices:\n  - {name: a, kind: builtin/echo, env: {1X: y}}\n"),
            "prescale.yaml:3:41: services[0].env.1X: not a valid environment variable name "
            "(letters, digits and \"_\", not starting with a digit)");
}

TEST(ConfigError, DuplicateRouteAndDependency) {
  EXPECT_EQ(error_of(R"(version: 1
services:
  - {name: a, kind: builtin/echo}
  - {name: b, kind: builtin/echo, depends_on: [a, a]}
)"),
            R"(prescale.yaml:4:51: services[1].depends_on[1]: lists "a" twice)");
  EXPECT_EQ(error_of(R"(version: 1
services:
  - {name: a, kind: builtin/echo}
gateway:
  routes:
    - {match: {path_prefix: /x}, service: a}
    - {match: {path_prefix: /x}, service: a, timeout: 1s}
)"),
            "prescale.yaml:7:7: gateway.routes[1]: same match as routes[0]; only one of them can "
            "receive requests");
}

TEST(ConfigError, OneDocumentOnly) {
  EXPECT_EQ(error_of("version: 1\n---\nversion: 1\n"),
            "prescale.yaml:3:1: a config file holds one YAML document, found 2");
}

TEST(ConfigError, CollectsEveryProblem) {
  EXPECT_EQ(error_of(R"(version: 1
world: cloud
http:
  threads: many
  max_connections: 0
services:
  - name: a
    kind: builtin/echo
    replicas: {min: 3, max: 2}
)"),
            "prescale.yaml:2:8: world: must be one of sim, local, kube; got \"cloud\"\n"
            "prescale.yaml:4:12: http.threads: expected an integer, got \"many\"\n"
            "prescale.yaml:5:20: http.max_connections: must be > 0, got 0\n"
            "prescale.yaml:9:29: services[0].replicas.max: must be >= replicas.min (3), got 2");
}

TEST(ConfigError, NeverThrowsOnGarbage) {
  for (std::string_view text :
       {"\t\x01\x02", "[[[[[[[[[[", "{a: b", "- - - -", "*alias", "version: 1\n? [a, b]\n: c\n"}) {
    Result<Config> r = load_config_string(text);
    EXPECT_FALSE(r.has_value()) << text;
  }
  EXPECT_FALSE(load_config_string(std::string(100000, '[')).has_value());
}

// ---- Files ---------------------------------------------------------------------------------

TEST(ConfigFile, ErrorsNameTheFile) {
  const std::filesystem::path path =
      std::filesystem::path(testing::TempDir()) / "config_test_bad_prescale.yaml";
  {
    std::ofstream out(path);
    out << "version: 1\nlogging:\n  level: loud\n";
  }
  Result<Config> r = load_config_file(path.string());
  std::filesystem::remove(path);
  ASSERT_FALSE(r.has_value());
  EXPECT_EQ(r.error().message, path.string() +
                                   ":3:10: logging.level: must be one of trace, "
                                   "debug, info, warn, error; got \"loud\"");
}

TEST(ConfigFile, MissingFileIsNotFound) {
  Result<Config> r = load_config_file("/nonexistent/prescale.yaml");
  ASSERT_FALSE(r.has_value());
  EXPECT_EQ(r.error().code, ErrorCode::kNotFound);
  EXPECT_THAT(r.error().message, HasSubstr("/nonexistent/prescale.yaml"));
}

// ---- Scalars -------------------------------------------------------------------------------

TEST(ConfigScalars, Durations) {
  using internal::parse_duration;
  EXPECT_EQ(parse_duration("60s").value(), 60s);
  EXPECT_EQ(parse_duration("500ms").value(), 500ms);
  EXPECT_EQ(parse_duration("5m").value(), 5min);
  EXPECT_EQ(parse_duration("1h").value(), 1h);
  EXPECT_EQ(parse_duration("1.5s").value(), 1500ms);
  EXPECT_EQ(parse_duration("1h30m").value(), 90min);
  EXPECT_EQ(parse_duration("15").value(), 15s);
  EXPECT_FALSE(parse_duration("").has_value());
  EXPECT_FALSE(parse_duration("s").has_value());
  EXPECT_FALSE(parse_duration("5 s").has_value());
  EXPECT_FALSE(parse_duration("5d").has_value());
  EXPECT_FALSE(parse_duration("-1s").has_value());
  EXPECT_FALSE(parse_duration("0.5ms").has_value());
  EXPECT_FALSE(parse_duration("1e300h").has_value());
  EXPECT_EQ(internal::format_duration(1500ms), "1500ms");
  EXPECT_EQ(internal::format_duration(120s), "2m");
}

TEST(ConfigScalars, Numbers) {
  EXPECT_EQ(internal::parse_integer("42"), 42);
  EXPECT_EQ(internal::parse_integer("+7"), 7);
  EXPECT_EQ(internal::parse_integer("-3"), -3);
  EXPECT_FALSE(internal::parse_integer("4.0"));
  EXPECT_FALSE(internal::parse_integer("++4"));
  EXPECT_FALSE(internal::parse_integer("0x10"));
  EXPECT_EQ(internal::parse_number("0.001"), 0.001);
  EXPECT_FALSE(internal::parse_number("nan"));
  EXPECT_FALSE(internal::parse_number("inf"));
  EXPECT_FALSE(internal::parse_number(".inf"));
  EXPECT_EQ(internal::parse_bool("true"), true);
  EXPECT_EQ(internal::parse_bool("off"), false);
  EXPECT_FALSE(internal::parse_bool("1"));
}

TEST(ConfigScalars, Suggestions) {
  const std::vector<std::string> keys = {"min", "max", "initial", "replicas", "latency_p99_ms"};
  EXPECT_EQ(internal::closest_match("replcas", keys), "replicas");
  EXPECT_EQ(internal::closest_match("replicsa", keys), "replicas");  // transposition
  EXPECT_EQ(internal::closest_match("latency_p99", keys), "latency_p99_ms");
  EXPECT_EQ(internal::closest_match("mn", keys), "min");
  EXPECT_FALSE(internal::closest_match("colour", keys));
  EXPECT_EQ(internal::edit_distance("kitten", "sitting"), 3u);
}

}  // namespace
}  // namespace prescale
