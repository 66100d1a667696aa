// `prescale sim` run in-process, as main.cc wires it, on a small generated trace and
// prescale.yaml.
#include "sim_command.h"
#include "cli_test_util.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

namespace prescale {
namespace {

namespace fs = std::filesystem;

class SimCommandTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() /
           ("sim_command_" + std::to_string(::getpid()) + "_" +
            ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(dir_);
    fs::create_directories(dir_);
    std::ofstream trace(trace_path());
    trace << "timestamp,count\n";
    for (int m = 0; m < 30; ++m) trace << 1'700'000'040 + 60 * m << "," << 600 + 60 * m << "\n";
    std::ofstream config(config_path());
    config << "version: 1\nservices:\n  - name: app\n    kind: builtin/echo\n"
              "    replicas: {min: 1, max: 20}\n    startup_time: 30s\n    capacity_rps: 40\n"
              "    slo: {latency_p99_ms: 250}\n";
  }
  void TearDown() override { fs::remove_all(dir_); }

  std::string trace_path() const { return (dir_ / "trace.csv").string(); }
  std::string config_path() const { return (dir_ / "prescale.yaml").string(); }

  // Runs `prescale sim -f prescale.yaml --trace trace.csv ARGS...`.
  int run_sim(const std::vector<std::string>& args) {
    CLI::App app{"prescale"};
    SimCommand sim(app);
    std::vector<std::string> all = {"sim",      "-f",         config_path(), "--trace",   trace_path(),
                                    "--policies", "static", "--progress",  "never"};
    all.insert(all.end(), args.begin(), args.end());
    if (auto status = prescale::testing::parse_command_line(app, all)) return *status;
    return sim.parsed() ? sim.run() : -1;
  }

  fs::path dir_;
};

// The file sets each service's SLO, startup time, capacity and replica bounds; these flags were
// taken and the run went on without them (the same figures with --slo-ms 20 as without).
TEST_F(SimCommandTest, FlagsTheConfigFileOverridesAreRefusedWithIt) {
  ASSERT_EQ(run_sim({}), 0);
  for (const auto& [flag, value] : std::vector<std::pair<std::string, std::string>>{
           {"--slo-ms", "20"},
           {"--startup", "10m"},
           {"--service-time-ms", "500"},
           {"--min-replicas", "3"},
           {"--max-replicas", "3"}}) {
    EXPECT_EQ(run_sim({flag, value}), 2) << flag;
  }
  // What the file does not say still comes from the flags.
  EXPECT_EQ(run_sim({"--workers", "2", "--startup-jitter", "0.1"}), 0);
}

// Where --json, --timeline or --plot cannot be written was found only once the run was over (the
// NASA trace on a topology: minutes), its results then lost, and it exited 1 (a failed run), not 2.
TEST_F(SimCommandTest, AnOutputFileThatCannotBeWrittenIsRefusedBeforeTheRun) {
  const std::string nowhere = (dir_ / "missing" / "out").string();
  for (const std::string flag : {"--json", "--timeline", "--plot"}) {
    for (const std::string& path : {nowhere, dir_.string()}) {
      ::testing::internal::CaptureStdout();
      EXPECT_EQ(run_sim({flag, path}), 2) << flag << " " << path;
      EXPECT_EQ(::testing::internal::GetCapturedStdout(), "") << flag << " " << path;
    }
  }
  ASSERT_EQ(run_sim({"--json", (dir_ / "out.json").string()}), 0);
  // Through a link to a file, or to a device, as before.
  fs::create_symlink(dir_ / "out.json", dir_ / "link.json");
  EXPECT_EQ(run_sim({"--json", (dir_ / "link.json").string()}), 0);
  EXPECT_EQ(run_sim({"--plot", "/dev/null"}), 0);
}

// cli.md: --peak-rps, --scale, --slo-ms, --service-time-ms and --static-headroom take a number
// > 0. 0 or -3 was refused as "Value 0 not in range 0.000000 to 17976931348623157...000000" (the
// largest double in full, 300 digits), a range that holds 0.
TEST_F(SimCommandTest, ANumberThatMustBePositiveIsRefusedSayingSo) {
  for (const std::string flag :
       {"--peak-rps", "--scale", "--slo-ms", "--service-time-ms", "--static-headroom"}) {
    for (const std::string value : {"0", "-3"}) {
      ::testing::internal::CaptureStderr();
      EXPECT_EQ(run_sim({flag, value}), 2) << flag << " " << value;
      const std::string err = ::testing::internal::GetCapturedStderr();
      EXPECT_NE(err.find(flag + ": Value " + value + " is not a number > 0"), std::string::npos)
          << err;
      EXPECT_EQ(err.find("17976931348623157"), std::string::npos) << err;
    }
  }
}

// A --release of a service that is not simulated said only 'no service "single" in the graph':
// the built-in single topology's service is "app", which nothing prints. The names are listed.
TEST_F(SimCommandTest, AReleaseOfAnUnknownServiceNamesTheServices) {
  ::testing::internal::CaptureStderr();
  EXPECT_EQ(run_sim({"--release", "single:1m:2"}), 2);
  const std::string err = ::testing::internal::GetCapturedStderr();
  EXPECT_NE(err.find("--release single:1m:2: no service \"single\" in the graph (services: app)"),
            std::string::npos)
      << err;
}

}  // namespace
}  // namespace prescale
