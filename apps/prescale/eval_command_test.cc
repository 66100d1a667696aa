// `prescale eval forecast` run in-process, as main.cc wires it, on a small generated trace.
#include "eval_command.h"
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

class EvalForecastCommandTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() /
           ("eval_command_" + std::to_string(::getpid()) + "_" +
            ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(dir_);
    fs::create_directories(dir_);
    std::ofstream trace(trace_path());
    trace << "timestamp,count\n";
    for (int m = 0; m < 600; ++m) trace << 1'700'000'040 + 60 * m << "," << 600 + m % 60 << "\n";
  }
  void TearDown() override { fs::remove_all(dir_); }

  std::string trace_path() const { return (dir_ / "trace.csv").string(); }

  // Runs `prescale eval forecast --trace trace.csv --horizons 1m ARGS...`.
  int run_eval(const std::vector<std::string>& args) {
    CLI::App app{"prescale"};
    EvalCommand eval(app);
    std::vector<std::string> all = {"eval", "forecast", "--trace", trace_path(), "--horizons", "1m"};
    all.insert(all.end(), args.begin(), args.end());
    if (auto status = prescale::testing::parse_command_line(app, all)) return *status;
    return eval.parsed() ? eval.run() : -1;
  }

  fs::path dir_;
};

// Where --json cannot be written was found only after every backtest (minutes on a long trace
// with every model), the scores then lost, and it exited 1; now before them, exit 2, as a bad
// flag value.
TEST_F(EvalForecastCommandTest, AJsonFileItCannotWriteIsRefusedBeforeItRuns) {
  for (const std::string& path : {(dir_ / "missing" / "out.json").string(), dir_.string()}) {
    ::testing::internal::CaptureStdout();
    EXPECT_EQ(run_eval({"--models", "naive", "--json", path}), 2) << path;
    EXPECT_EQ(::testing::internal::GetCapturedStdout(), "") << path;
  }
  EXPECT_EQ(run_eval({"--models", "naive", "--json", (dir_ / "out.json").string()}), 0);
  EXPECT_TRUE(fs::exists(dir_ / "out.json"));
}

// An unknown model in --models was found only after the models before it were scored (minutes
// each on a long trace), their scores then lost; a model listed twice was scored twice, its rows
// twice in the JSON.
TEST_F(EvalForecastCommandTest, ModelsAreCheckedBeforeAnyBacktest) {
  for (const std::string models : {"naive,nosuch", "naive,naive"}) {
    ::testing::internal::CaptureStdout();
    EXPECT_EQ(run_eval({"--models", models}), 2) << models;
    EXPECT_EQ(::testing::internal::GetCapturedStdout(), "") << models;
  }
  EXPECT_EQ(run_eval({"--models", "naive,selected"}), 0);
}

// A trace too short to fit a model on (two rows: cli.md's "any format of traces.md") printed the
// table's header and then "naive: forecaster: 1 observed values; need at least 32", naming
// neither the trace nor what to change. Refused before the table, naming both.
TEST_F(EvalForecastCommandTest, ATraceTooShortToFitIsRefusedNamingItBeforeTheTable) {
  {
    std::ofstream trace(trace_path());
    trace << "timestamp,count\n1700000040,5\n1700000100,6\n";
  }
  ::testing::internal::CaptureStdout();
  ::testing::internal::CaptureStderr();
  EXPECT_EQ(run_eval({"--models", "naive"}), 2);
  EXPECT_EQ(::testing::internal::GetCapturedStdout(), "");
  const std::string err = ::testing::internal::GetCapturedStderr();
  EXPECT_NE(err.find("--trace " + trace_path() + ": the fitted part (1 of 2 steps of 1m) is "
                     "shorter than the 32 steps a model needs"),
            std::string::npos)
      << err;
  // The step is the trace's own: a finer --step is refused ("finer than the trace's own step"),
  // so it is no advice to give.
  EXPECT_EQ(err.find("finer --step"), std::string::npos) << err;
}

// cli.md: --trace is any format of traces.md, --horizons defaults to 1m,5m,15m and --step to the
// trace's own when coarser than a minute. On a 5-minute trace (NAB's tweet volumes) the defaults
// were refused, '"1m" is not a whole number of 5m steps (≥ 1); set --step', and --step 1m then
// as finer than the trace. Left out, the horizons are the defaults that are whole steps (5m and
// 15m here); given, one that is not says to give whole steps of the trace's.
TEST_F(EvalForecastCommandTest, DefaultHorizonsFitATraceCoarserThanAMinute) {
  {
    std::ofstream trace(trace_path());
    trace << "timestamp,count\n";
    for (int i = 0; i < 600; ++i) trace << 1'700'000'100 + 300 * i << "," << 600 + i % 12 << "\n";
  }
  auto run = [&](const std::vector<std::string>& args) {
    CLI::App app{"prescale"};
    EvalCommand eval(app);
    std::vector<std::string> all = {"eval", "forecast", "--trace", trace_path(), "--models",
                                    "naive"};
    all.insert(all.end(), args.begin(), args.end());
    if (auto status = prescale::testing::parse_command_line(app, all)) return *status;
    return eval.parsed() ? eval.run() : -1;
  };
  ::testing::internal::CaptureStdout();
  EXPECT_EQ(run({}), 0);
  const std::string out = ::testing::internal::GetCapturedStdout();
  EXPECT_NE(out.find("naive                      5m"), std::string::npos) << out;
  EXPECT_NE(out.find("naive                     15m"), std::string::npos) << out;
  EXPECT_EQ(out.find(" 1m "), std::string::npos) << out;

  ::testing::internal::CaptureStderr();
  EXPECT_EQ(run({"--horizons", "1m"}), 2);
  const std::string err = ::testing::internal::GetCapturedStderr();
  EXPECT_NE(err.find("--horizons: \"1m\" is not a whole number of the trace's 5m steps"),
            std::string::npos)
      << err;
  EXPECT_EQ(err.find("set --step"), std::string::npos) << err;
}

}  // namespace
}  // namespace prescale
