// End-to-end: `prescale load` against a real `prescale serve echo` on port 0. Real processes,
// sockets and time: the point is that the open-loop schedule and the latency accounting hold on
// the wire, including when the target is too slow for the offered load.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <chrono>
#include <cmath>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "support/subprocess.h"

namespace prescale {
namespace {

using namespace std::chrono_literals;
using ::testing::HasSubstr;
using testing::Subprocess;
using testing::TempDir;
using Json = nlohmann::json;

using testing::Outcome;

// Runs `prescale load ARGS...` with stdout and stderr captured apart.
Outcome run_load(const TempDir& dir, const std::string& tag, std::vector<std::string> args) {
  std::vector<std::string> argv{PRESCALE_BIN, "load"};
  argv.insert(argv.end(), args.begin(), args.end());
  return testing::run_captured(dir, tag, std::move(argv));
}

Json read_json(const std::string& path) {
  const std::string text = testing::read_file(path);
  Json j = Json::parse(text, nullptr, /*allow_exceptions=*/false);
  EXPECT_FALSE(j.is_discarded()) << path << " is not JSON:\n" << text;
  return j;
}

const Json& route(const Json& report, const std::string& name) {
  for (const Json& r : report["routes"]) {
    if (r["name"] == name) return r;
  }
  ADD_FAILURE() << "no route " << name << " in " << report["routes"].dump();
  static const Json kNone = Json::object();
  return kNone;
}

// `prescale serve echo` on a free port.
struct EchoServer {
  EchoServer() {
    const std::string port_file = dir.file("port");
    proc = std::make_unique<Subprocess>(
        std::vector<std::string>{PRESCALE_BIN, "serve", "echo", "--port", "0", "--threads", "2",
                                 "--port-file", port_file, "--log-level", "warn"},
        dir.file("echo.log"));
    EXPECT_TRUE(testing::wait_for([&] { return !testing::read_file(port_file).empty(); }, 10s));
    port = std::stoi(testing::read_file(port_file));
  }
  std::string url() const { return "http://127.0.0.1:" + std::to_string(port); }

  TempDir dir;
  std::unique_ptr<Subprocess> proc;
  int port = 0;
};

void expect_consistent(const Json& j) {
  const Json& n = j["requests"];
  const uint64_t scheduled = n["scheduled"];
  EXPECT_EQ(n["completed"].get<uint64_t>() + n["errors"].get<uint64_t>() +
                n["unfinished"].get<uint64_t>(),
            scheduled);
  EXPECT_LE(n["sent"].get<uint64_t>(), scheduled);
  EXPECT_LE(n["late"].get<uint64_t>(), n["sent"].get<uint64_t>());
  EXPECT_LE(n["queued"].get<uint64_t>(), scheduled);
  uint64_t per_second = 0;
  for (const Json& s : j["timeline"]) per_second += s["sent"].get<uint64_t>();
  EXPECT_EQ(per_second, scheduled);
  uint64_t per_route = 0;
  for (const Json& r : j["routes"]) per_route += r["scheduled"].get<uint64_t>();
  EXPECT_EQ(per_route, scheduled);
}

TEST(LoadCommandTest, ConstantRateAgainstEcho) {
  EchoServer echo;
  TempDir dir;
  const std::string json = dir.file("out.json");
  const Outcome o =
      run_load(dir, "rate",
               {"--rate", "200", "--duration", "2s", "--target", echo.url(), "--mix",
                "GET /echo:1,GET /delay/50:1,GET /status/503:1", "--slo", "40ms", "--json", json});
  ASSERT_EQ(o.exit_status, 0) << o.out << o.err;
  EXPECT_THAT(o.out, HasSubstr("latency"));
  const Json j = read_json(json);
  const Json& n = j["requests"];
  // Poisson arrivals: 400 expected, standard deviation 20.
  EXPECT_NEAR(n["scheduled"].get<double>(), 400, 80) << j.dump(2);
  EXPECT_EQ(n["completed"], n["scheduled"]);
  EXPECT_EQ(n["errors"], 0);
  EXPECT_EQ(n["unfinished"], 0);
  const Json& refused = route(j, "GET /status/503");
  EXPECT_EQ(n["ok"].get<int>(), n["scheduled"].get<int>() - refused["completed"].get<int>());
  EXPECT_EQ(j["status"]["200"], n["ok"]);
  EXPECT_EQ(j["status"]["503"], refused["completed"]);
  // Within the SLO: ok answers only (not the 503s), and none of the 50 ms ones.
  EXPECT_DOUBLE_EQ(j["slo_ms"].get<double>(), 40.0);
  EXPECT_GT(n["ok_within_slo"].get<int>(), 0);
  EXPECT_LE(n["ok_within_slo"].get<int>(), route(j, "GET /echo")["ok"].get<int>());
  EXPECT_EQ(j["latency_ok_ms"]["count"], n["ok"]);
  EXPECT_GE(j["latency_ok_ms"]["max"].get<double>(), 50.0);
  EXPECT_DOUBLE_EQ(j["duration_s"].get<double>(), 2.0);
  expect_consistent(j);
  const Json& delay = route(j, "GET /delay/50");
  const Json& plain = route(j, "GET /echo");
  EXPECT_GE(delay["latency_ms"]["p50"].get<double>(), 50.0);
  EXPECT_LT(plain["latency_ms"]["p50"].get<double>(), 50.0);
  EXPECT_GE(j["latency_ms"]["max"].get<double>(), 50.0);
  ASSERT_EQ(j["timeline"].size(), 2u);
}

TEST(LoadCommandTest, SlowUpstreamShowsQueueingInLatency) {
  // 50 req/s of a 300 ms route through 4 connections: the target side serves at most about
  // 13 req/s, so requests queue for a connection. Latency counts from the scheduled time, so it
  // grows with the queue — a closed-loop tool would report ~300 ms throughout.
  EchoServer echo;
  TempDir dir;
  const std::string json = dir.file("out.json");
  const Outcome o =
      run_load(dir, "slow",
               {"--rate", "50", "--duration", "2s", "--arrivals", "uniform", "--target", echo.url(),
                "--mix", "GET /delay/300:1", "--connections", "4", "--json", json});
  ASSERT_EQ(o.exit_status, 0) << o.out << o.err;
  const Json j = read_json(json);
  const Json& n = j["requests"];
  EXPECT_EQ(n["scheduled"], 100) << j.dump(2);
  EXPECT_EQ(n["completed"], 100);
  EXPECT_EQ(n["errors"], 0);
  EXPECT_TRUE(n["ok_within_slo"].is_null());  // no --slo
  EXPECT_TRUE(j["slo_ms"].is_null());
  expect_consistent(j);
  // All but the first four waited for a connection, and so started late.
  EXPECT_GE(n["queued"].get<int>(), 90);
  EXPECT_GE(n["late"].get<int>(), n["queued"].get<int>() - 2);
  const Json& latency = j["latency_ms"];
  const Json& delay = j["start_delay_ms"];
  EXPECT_GE(latency["p99"].get<double>(), 300.0);
  EXPECT_GE(latency["min"].get<double>(), 300.0);
  // Request k (of 100) waits about 300 ms × k/4 − 20 ms × k; the last about 5.5 s.
  EXPECT_GE(latency["max"].get<double>(), 4000.0);
  // Each latency is its start delay plus the ~300 ms the target takes. Both quantiles come from
  // histograms good to 0.4 % each (about 12 ms at 3 s), so the sum is checked to within 1 %.
  EXPECT_GE(latency["p50"].get<double>(), delay["p50"].get<double>() * 0.99 + 290);
  // (An upper bound a descheduled echo server on a busy machine still keeps.)
  EXPECT_GE(latency["max"].get<double>(), delay["max"].get<double>() + 290);
  EXPECT_LE(latency["max"].get<double>(), delay["max"].get<double>() + 1000);
  EXPECT_LT(j["achieved_rps"].get<double>(), 20.0);
}

TEST(LoadCommandTest, ReplaysATraceCompressedInTime) {
  EchoServer echo;
  TempDir dir;
  // Two one-minute steps (60 and 120 requests) compressed 60×: 2 s at 60 then 120 req/s.
  const std::string trace = dir.file("trace.csv");
  testing::write_file(trace, "step,requests\n0,60\n1,120\n");
  const std::string json = dir.file("out.json");
  const Outcome o = run_load(dir, "trace",
                             {"--trace", trace, "--speedup", "60", "--target", echo.url(), "--mix",
                              "GET /:1", "--json", json});
  ASSERT_EQ(o.exit_status, 0) << o.out << o.err;
  const Json j = read_json(json);
  EXPECT_DOUBLE_EQ(j["duration_s"].get<double>(), 2.0);
  ASSERT_EQ(j["timeline"].size(), 2u);
  EXPECT_NEAR(j["timeline"][0]["sent"].get<double>(), 60, 4 * std::sqrt(60.0));
  EXPECT_NEAR(j["timeline"][1]["sent"].get<double>(), 120, 4 * std::sqrt(120.0));
  EXPECT_EQ(j["requests"]["errors"], 0);
  expect_consistent(j);
}

TEST(LoadCommandTest, BadInputExitsTwoNamingTheFlag) {
  TempDir dir;
  struct Case {
    std::vector<std::string> args;
    std::string want;
  };
  const std::vector<Case> cases = {
      {{"--target", "http://127.0.0.1:1"}, "--trace, --rate: give one of them"},
      {{"--rate", "10", "--target", "http://127.0.0.1:1", "--mix", "GET /:1,FETCH /x"},
       "--mix: column 9: expected an HTTP method"},
      {{"--rate", "10", "--target", "ftp://127.0.0.1:1"}, "--target: only http:// and https://"},
      {{"--rate", "10", "--target", "http://h:1", "--duration", "soon"}, "--duration: expected"},
      {{"--rate", "10", "--target", "http://h:1", "--arrivals", "bursty"}, "--arrivals: expected"},
      {{"--rate", "10", "--target", "http://h:1", "--user-range", "9-1"}, "--user-range:"},
      {{"--rate", "10", "--target", "http://h:1", "--connections", "0"}, "--connections:"},
      // CLI11 read "-1" into the unsigned seed as 2^64 - 1.
      {{"--rate", "10", "--target", "http://h:1", "--seed", "-1"}, "--seed: Value -1 is negative"},
      {{"--rate", "10", "--target", "http://h:1", "--slo", "0ms"}, "--slo: must be > 0"},
      {{"--trace", dir.file("missing.csv"), "--target", "http://h:1"}, "--trace:"},
      // Refused before the run, not after it (the report lost, exit 1).
      {{"--rate", "10", "--target", "http://h:1", "--json", dir.file("no/such/dir/r.json")},
       "--json: cannot write"},
  };
  int i = 0;
  for (const Case& c : cases) {
    const Outcome o = run_load(dir, "bad" + std::to_string(i++), c.args);
    EXPECT_EQ(o.exit_status, 2) << c.want << "\n" << o.out << o.err;
    EXPECT_THAT(o.err, HasSubstr(c.want));
  }
}

// "inf" and "1e400" are numbers to the flag parser. An infinite live rate (--rate, or --scale
// times it) scheduled every arrival at the start, for ever: the run never ended and its queue
// grew without bound. One so high that 1/rate vanishes next to the arrival time did the same.
// Non-finite --speedup and --scale with a trace were refused, but as "--trace: speedup: ...".
// Each is refused, exit 2, naming its flag.
TEST(LoadCommandTest, RatesThatAreNotFiniteOrTooHighAreRefusedNamingTheFlag) {
  TempDir dir;
  const std::string trace = dir.file("trace.csv");
  testing::write_file(trace, "step,requests\n0,60\n1,120\n");
  struct Case {
    std::vector<std::string> args;
    std::string want;
  };
  const std::vector<Case> cases = {
      {{"--rate", "inf"}, "--rate: "},
      {{"--rate", "1e400"}, "--rate: "},
      {{"--rate", "1e300"}, "--rate, --scale: the live rate"},
      {{"--rate", "10", "--scale", "inf"}, "--scale: "},
      {{"--rate", "1e200", "--scale", "1e200"}, "--rate, --scale: the live rate"},
      {{"--trace", trace, "--speedup", "inf"}, "--speedup: "},
      {{"--trace", trace, "--scale", "inf"}, "--scale: "},
      {{"--trace", trace, "--scale", "1e300"}, "--speedup, --scale: the live rate"},
      // An infinite cap was taken as a cap (cli.md: nan and inf are refused for every number).
      {{"--rate", "10", "--max-rps", "inf"}, "--max-rps: expected a finite number >= 0"},
      {{"--trace", trace, "--max-rps", "1e400"}, "--max-rps: expected a finite number >= 0"},
  };
  int i = 0;
  for (Case c : cases) {
    c.args.insert(c.args.end(), {"--duration", "1s", "--target", "http://127.0.0.1:1"});
    const Outcome o = run_load(dir, "rate" + std::to_string(i++), c.args);
    EXPECT_EQ(o.exit_status, 2) << c.want << "\n" << o.out << o.err;
    EXPECT_THAT(o.err, HasSubstr(c.want));
  }
}

// A negative or NaN --rate was taken for no --rate at all: beside --trace it was ignored and the
// trace replayed, exit 0; alone it was answered "give one of them". Refused, naming --rate.
TEST(LoadCommandTest, ANegativeOrNanRateIsRefusedNotIgnored) {
  TempDir dir;
  const std::string trace = dir.file("trace.csv");
  testing::write_file(trace, "step,requests\n0,1\n");
  struct Case {
    std::vector<std::string> args;
    std::string want;
  };
  const std::vector<Case> cases = {
      {{"--rate", "-5"}, "--rate: expected a finite number >= 0"},
      {{"--rate", "nan"}, "--rate: expected a finite number >= 0"},
      {{"--rate", "-5", "--trace", trace}, "--trace, --rate: give one, not both"},
  };
  int i = 0;
  for (Case c : cases) {
    c.args.insert(c.args.end(),
                  {"--duration", "1s", "--timeout", "100ms", "--target", "http://127.0.0.1:1"});
    const Outcome o = run_load(dir, "negative" + std::to_string(i++), c.args);
    EXPECT_EQ(o.exit_status, 2) << c.want << "\n" << o.out << o.err;
    EXPECT_THAT(o.err, HasSubstr(c.want));
  }
}

}  // namespace
}  // namespace prescale
