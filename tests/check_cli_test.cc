// End-to-end: `prescale check` as a CI step runs it, on files written here.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "http/test_util.h"
#include "support/subprocess.h"

namespace prescale {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;
using testing::Outcome;
using testing::TempDir;

Outcome check(const TempDir& dir, const std::string& tag, std::vector<std::string> args) {
  std::vector<std::string> argv{PRESCALE_BIN, "check"};
  argv.insert(argv.end(), args.begin(), args.end());
  return testing::run_captured(dir, tag, std::move(argv));
}

constexpr const char* kShop = R"(version: 1
services:
  - name: web
    kind: builtin/echo
    replicas: {min: 0, max: 4}
    startup_time: 20s
  - name: worker
    kind: builtin/echo
gateway:
  listen: "127.0.0.1:0"
  routes:
    - {match: {path_prefix: /}, service: web}
)";

// A file that runs: valid, with the warning a start would log; --strict makes that warning fail
// it; --json says the same in stable fields.
TEST(CheckCli, AValidFileIsSaidValidWithItsWarnings) {
  TempDir dir;
  testing::write_file(dir.file("shop.yaml"), kShop);
  const Outcome o = check(dir, "ok", {"-f", dir.file("shop.yaml")});
  EXPECT_EQ(o.exit_status, 0) << o.err;
  EXPECT_EQ(o.out, dir.file("shop.yaml") +
                       ": valid for prescale up (2 services, 1 route, policy prescale): 0 errors, "
                       "1 warning\n");
  EXPECT_EQ(o.err,
            "warning: service worker: no gateway route names it, so the gateway sends it no "
            "requests\n");

  const Outcome strict = check(dir, "strict", {"-f", dir.file("shop.yaml"), "--strict"});
  EXPECT_EQ(strict.exit_status, 1);
  EXPECT_THAT(strict.err, HasSubstr("not valid for prescale up"));
  EXPECT_THAT(strict.err, HasSubstr("(--strict)"));

  const Outcome json = check(dir, "json", {"-f", dir.file("shop.yaml"), "--json"});
  EXPECT_EQ(json.exit_status, 0) << json.err;
  const auto j = nlohmann::json::parse(json.out);
  EXPECT_EQ(j.at("file"), dir.file("shop.yaml"));
  EXPECT_EQ(j.at("valid"), true);
  EXPECT_EQ(j.at("target"), "local");
  EXPECT_TRUE(j.at("errors").empty());
  EXPECT_EQ(j.at("warnings").size(), 1u);
  EXPECT_EQ(j.at("services"), 2);
  EXPECT_EQ(j.at("routes"), 1);
  EXPECT_EQ(j.at("policy"), "prescale");
}

// Every problem at once, each naming where: the file's own (line and column), then, for a file
// that parses, what `prescale up` would refuse only at its start (a command that is not there).
TEST(CheckCli, AFileThatWouldNotRunIsSaidNotValidWithEveryProblem) {
  TempDir dir;
  testing::write_file(dir.file("bad.yaml"), R"(version: 1
policy: {name: prescal}
services:
  - name: web
    kind: builtin/echo
    replicas: {min: 3, max: 2}
)");
  const Outcome bad = check(dir, "bad", {"-f", dir.file("bad.yaml")});
  EXPECT_EQ(bad.exit_status, 1);
  EXPECT_THAT(bad.err, HasSubstr("error: " + dir.file("bad.yaml") + ":2:16: policy.name"));
  EXPECT_THAT(bad.err, HasSubstr("services[0].replicas.max: must be >= replicas.min (3), got 2"));
  EXPECT_THAT(bad.err, HasSubstr(dir.file("bad.yaml") + ": not valid: 2 errors, 0 warnings"));

  testing::write_file(dir.file("cmd.yaml"), R"(version: 1
services:
  - name: api
    kind: command
    command: [no-such-program-here, "{port}"]
  - name: batch
    kind: command
    command: [/bin/true]
    replicas: {max: 3}
gateway:
  routes:
    - {match: {path_prefix: /api}, service: api}
    - {match: {path_prefix: /}, service: batch}
)");
  const Outcome cmd = check(dir, "cmd", {"-f", dir.file("cmd.yaml"), "--json"});
  EXPECT_EQ(cmd.exit_status, 1);
  const auto j = nlohmann::json::parse(cmd.out);
  EXPECT_EQ(j.at("valid"), false);
  ASSERT_EQ(j.at("errors").size(), 2u) << j.dump(2);
  EXPECT_THAT(j.at("errors")[0].get<std::string>(),
              HasSubstr("services[0] (api).command: 'no-such-program-here' was not found in PATH"));
  EXPECT_THAT(j.at("errors")[1].get<std::string>(),
              HasSubstr("services[1] (batch).command: no \"{port}\" argument"));

  const Outcome missing = check(dir, "missing", {"-f", dir.file("none.yaml")});
  EXPECT_EQ(missing.exit_status, 1);
  EXPECT_THAT(missing.err, HasSubstr(dir.file("none.yaml")));
  const Outcome missing_kube =
      check(dir, "missing-kube", {"-f", dir.file("none.yaml"), "--kubernetes", "--json"});
  EXPECT_EQ(nlohmann::json::parse(missing_kube.out).at("target"), "kubernetes");

  // A policy that runs only in prescale sim, and a certificate that is not there: what up and
  // the controller refuse at their start.
  testing::write_file(dir.file("start.yaml"), R"(version: 1
policy: {name: static}
services:
  - name: web
    kind: builtin/echo
gateway:
  tls: {cert_file: missing.pem, key_file: missing.key}
)");
  const Outcome start = check(dir, "start", {"-f", dir.file("start.yaml"), "--json"});
  EXPECT_EQ(start.exit_status, 1);
  const auto s = nlohmann::json::parse(start.out);
  ASSERT_EQ(s.at("errors").size(), 2u) << s.dump(2);
  EXPECT_THAT(s.at("errors")[0].get<std::string>(),
              HasSubstr("--policy static needs the future of a trace"));
  EXPECT_THAT(s.at("errors")[1].get<std::string>(), HasSubstr("gateway.tls: "));
  EXPECT_THAT(s.at("errors")[1].get<std::string>(), HasSubstr("missing.pem"));
  const Outcome hpa = check(dir, "hpa", {"-f", dir.file("start.yaml"), "--policy", "hpa"});
  EXPECT_THAT(hpa.err, Not(HasSubstr("--policy")));
}

// A certificate that loads but expires within 14 days: valid, with the warning a start logs.
TEST(CheckCli, ACertificateThatExpiresSoonIsWarnedOf) {
  TempDir dir;
  const auto soon = http::testing::write_test_certificate(dir.path(), "soon", "shop.example", 3);
  testing::write_file(dir.file("tls.yaml"),
                      "version: 1\nservices:\n  - name: web\n"
                      "    kind: builtin/echo\ngateway:\n  tls: {cert_file: " +
                          soon.cert_file + ", key_file: " + soon.key_file + "}\n");
  const Outcome o = check(dir, "tls", {"-f", dir.file("tls.yaml")});
  EXPECT_EQ(o.exit_status, 0) << o.err;
  EXPECT_THAT(o.err, HasSubstr("warning: " + dir.file("tls.yaml") +
                               ": gateway.tls: serving the certificate of CN=shop.example"));
  EXPECT_THAT(o.err, HasSubstr("renew it"));
  EXPECT_THAT(o.out, HasSubstr("0 errors, 1 warning"));
}

// For Kubernetes: what the render refuses, and a route that a cold request there outlasts.
TEST(CheckCli, ForKubernetesItSaysWhatTheRenderWouldAndTheColdStartWait) {
  TempDir dir;
  testing::write_file(dir.file("shop.yaml"), kShop);
  const Outcome o = check(dir, "kube", {"-f", dir.file("shop.yaml"), "--kubernetes"});
  EXPECT_EQ(o.exit_status, 0) << o.err;
  EXPECT_THAT(o.out, HasSubstr("valid for Kubernetes"));
  EXPECT_THAT(o.err, HasSubstr("warning: gateway.routes[0] (/): service web scales to zero"));
  EXPECT_THAT(o.err, HasSubstr("give the route a timeout of at least 32 s"));

  testing::write_file(dir.file("local.yaml"), R"(version: 1
services:
  - name: api
    kind: command
    command: [/bin/true, "{port}"]
)");
  const Outcome no_image = check(dir, "noimage", {"-f", dir.file("local.yaml"), "--kubernetes"});
  EXPECT_EQ(no_image.exit_status, 1);
  EXPECT_THAT(no_image.err, HasSubstr("services[0] (api).image"));
}

}  // namespace
}  // namespace prescale
