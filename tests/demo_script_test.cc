// scripts/demo (what `make demo` runs) with a stand-in prescale that only records how it was
// called: the script's own checks, which need neither the platform nor the shared data.
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <sys/stat.h>

#include <chrono>
#include <string>
#include <vector>

#include "support/subprocess.h"

namespace prescale {
namespace {

using namespace std::chrono_literals;
using ::testing::HasSubstr;
using testing::Subprocess;
using testing::TempDir;

struct Outcome {
  int exit_status = -1;
  std::string output;  // stdout and stderr
  std::string calls;   // the stand-in prescale's command lines
};

// Runs `scripts/demo PRESCALE [PORT]` (as `make demo DEMO_PORT=PORT` does) with `env`
// (NAME=VALUE...) set, a stand-in PRESCALE under dir/build/, and a data directory with an (empty)
// NASA trace in it.
Outcome run_demo(const TempDir& dir, const std::vector<std::string>& env,
                 const std::string& port = "", const std::string& stand_in_body = "") {
  ::mkdir(dir.file("build").c_str(), 0755);
  ::mkdir(dir.file("build/apps").c_str(), 0755);
  ::mkdir(dir.file("build/apps/prescale").c_str(), 0755);
  const std::string prescale = dir.file("build/apps/prescale/prescale");
  testing::write_file(prescale,
                      "#!/bin/sh\necho \"$@\" >> '" + dir.file("calls") + "'\n" + stand_in_body);
  ::chmod(prescale.c_str(), 0755);
  ::mkdir(dir.file("data").c_str(), 0755);
  ::mkdir(dir.file("data/traces").c_str(), 0755);
  testing::write_file(dir.file("data/traces/nasa-http-1995-07.csv"), "");
  std::vector<std::string> argv = {"/usr/bin/env", "PRESCALE_DATA_DIR=" + dir.file("data")};
  argv.insert(argv.end(), env.begin(), env.end());
  argv.insert(argv.end(), {"/bin/bash", PRESCALE_DEMO_SCRIPT, prescale});
  if (!port.empty()) argv.push_back(port);
  Subprocess demo(std::move(argv), dir.file("demo.log"));
  Outcome o;
  o.exit_status = demo.wait(30s).value_or(-1);
  o.output = demo.log();
  o.calls = testing::read_file(dir.file("calls"));
  return o;
}

// DEMO_MINUTES=0.5 ran the whole live replay (half a minute of it) and then died on the
// simulator's $((minutes * 144)) ("invalid arithmetic operator") without the summary; 010 was
// octal there (8 minutes simulated against 10 live). A DEMO_PORT that is no port, or whose
// next one (the dashboard's) is none, failed only once the platform was starting. Now each is
// refused before anything runs.
TEST(DemoScriptTest, BadMinutesOrPortAreRefusedBeforeAnythingRuns) {
  for (const std::string minutes : {"0.5", "3m", "010", "0"}) {
    TempDir dir;
    const Outcome o = run_demo(dir, {"DEMO_MINUTES=" + minutes});
    EXPECT_EQ(o.exit_status, 2) << minutes << ": " << o.output;
    EXPECT_THAT(o.output, HasSubstr("DEMO_MINUTES")) << minutes;
    EXPECT_EQ(o.calls, "") << minutes;
  }
  for (const std::string port : {"abc", "65535", "0", "80x"}) {
    TempDir dir;
    const Outcome o = run_demo(dir, {}, port);
    EXPECT_EQ(o.exit_status, 2) << port << ": " << o.output;
    EXPECT_THAT(o.output, HasSubstr("DEMO_PORT")) << port;
    EXPECT_EQ(o.calls, "") << port;
  }
  // Good ones go on to start the platform (which the stand-in does not, so it stops there).
  TempDir dir;
  const Outcome o = run_demo(dir, {"DEMO_MINUTES=3"}, "9000");
  EXPECT_THAT(o.calls, HasSubstr("up -f ")) << o.output;
  EXPECT_THAT(o.calls, HasSubstr("--port 9000 --ui 127.0.0.1:9001")) << o.output;
}

// prescale up stopping during the replay (a crash, the OOM killer) ended the script at
// `kill -INT $up` under set -e, with bash's "kill: (1234) - No such process" and nothing of why;
// now it says the platform stopped and shows the end of its log.
TEST(DemoScriptTest, APlatformThatStoppedDuringTheReplayIsReported) {
  TempDir dir;
  // The stand-in `up` becomes ready (the port file) and exits at once, its log saying why.
  const Outcome o = run_demo(dir, {"DEMO_MINUTES=1"}, "",
                             "if [ \"$1\" = up ]; then\n"
                             "  while [ $# -gt 0 ]; do\n"
                             "    [ \"$1\" = --port-file ] && echo 8080 > \"$2\"; shift\n"
                             "  done\n"
                             "  echo 'replica checkout-1: out of memory'; exit 1\n"
                             "fi\n"
                             "[ \"$1\" = load ] && sleep 1\n"
                             "exit 0\n");
  EXPECT_EQ(o.exit_status, 1) << o.output;
  EXPECT_THAT(o.calls, HasSubstr("load --trace")) << o.output;
  EXPECT_THAT(o.output, HasSubstr("prescale up stopped before the replay ended")) << o.output;
  EXPECT_THAT(o.output, HasSubstr("replica checkout-1: out of memory")) << o.output;
}

}  // namespace
}  // namespace prescale
