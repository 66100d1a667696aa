#include "telemetry/process_metrics.h"

#include <fcntl.h>
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <sys/resource.h>
#include <unistd.h>

#include "telemetry/exposition.h"

namespace prescale::telemetry {
namespace {

using ::testing::HasSubstr;

// proc(5) fields: 14 utime=250, 15 stime=150, 22 starttime=5000, 23 vsize, 24 rss=2560 pages.
constexpr std::string_view kSelfStat =
    "1234 (my (weird) proc) S 1 1234 1234 0 -1 4194560 1000 0 0 0 250 150 0 0 20 0 4 0 5000 "
    "104857600 2560 18446744073709551615 1 1 0 0 0 0 0 0 0 0 0 0 17 3 0 0 0 0 0\n";
constexpr std::string_view kSystemStat =
    "cpu  1 2 3 4 5 6 7 0 0 0\n"
    "intr 123 0 0\n"
    "btime 1700000000\n"
    "processes 4242\n";

TEST(ProcessMetrics, ParsesProcStat) {
  auto stats = parse_process_stats(kSelfStat, kSystemStat, 100, 4096);
  ASSERT_TRUE(stats.has_value()) << stats.error().to_string();
  EXPECT_DOUBLE_EQ(stats->cpu_seconds, 4.0);
  EXPECT_EQ(stats->resident_memory_bytes, 2560.0 * 4096);
  EXPECT_EQ(stats->virtual_memory_bytes, 104857600);
  EXPECT_DOUBLE_EQ(stats->start_time_seconds, 1700000050);
}

TEST(ProcessMetrics, RejectsMalformedProcStat) {
  EXPECT_FALSE(parse_process_stats("1234 no parens S 1", kSystemStat, 100, 4096).has_value());
  EXPECT_FALSE(parse_process_stats("1234 (short) S 1 2 3", kSystemStat, 100, 4096).has_value());
  auto no_btime = parse_process_stats(kSelfStat, "cpu 1 2 3\n", 100, 4096);
  ASSERT_FALSE(no_btime.has_value());
  EXPECT_THAT(no_btime.error().message, HasSubstr("btime"));
  EXPECT_FALSE(parse_process_stats(kSelfStat, kSystemStat, 0, 4096).has_value());
}

TEST(ProcessMetrics, ReadsThisProcess) {
  auto stats = read_process_stats();
  ASSERT_TRUE(stats.has_value()) << stats.error().to_string();
  EXPECT_GE(stats->cpu_seconds, 0);
  EXPECT_GT(stats->resident_memory_bytes, 0);
  EXPECT_GE(stats->virtual_memory_bytes, stats->resident_memory_bytes);
  EXPECT_GT(stats->start_time_seconds, 1.5e9);  // after 2017: derived from boot time, not a clock
}

TEST(ProcessMetrics, CountsOpenFileDescriptors) {
  auto before = count_open_fds();
  ASSERT_TRUE(before.has_value());
  int fd = ::open("/dev/null", O_RDONLY | O_CLOEXEC);
  ASSERT_GE(fd, 0);
  auto during = count_open_fds();
  ::close(fd);
  ASSERT_TRUE(during.has_value());
  EXPECT_EQ(*during, *before + 1);
}

TEST(ProcessMetrics, MaxFdsIsTheSoftLimit) {
  rlimit limit{};
  ASSERT_EQ(::getrlimit(RLIMIT_NOFILE, &limit), 0);
  auto max = max_fds();
  ASSERT_TRUE(max.has_value());
  EXPECT_EQ(*max, static_cast<double>(limit.rlim_cur));
}

TEST(ProcessMetrics, ExposesTheStandardNamesOnce) {
  Registry r;
  register_process_metrics(r);
  register_process_metrics(r);  // idempotent
  std::string text = expose(r);
  for (const char* type_line :
       {"# TYPE process_cpu_seconds_total counter\n",
        "# TYPE process_resident_memory_bytes gauge\n",
        "# TYPE process_virtual_memory_bytes gauge\n", "# TYPE process_start_time_seconds gauge\n",
        "# TYPE process_open_fds gauge\n", "# TYPE process_max_fds gauge\n"}) {
    EXPECT_THAT(text, HasSubstr(type_line));
    EXPECT_EQ(text.find(type_line), text.rfind(type_line)) << "twice: " << type_line;
  }
  EXPECT_THAT(text, HasSubstr("# HELP process_cpu_seconds_total Total user and system CPU time "
                              "spent in seconds.\n"));
  EXPECT_THAT(text, HasSubstr("# HELP process_start_time_seconds Start time of the process since "
                              "unix epoch in seconds.\n"));
}

}  // namespace
}  // namespace prescale::telemetry
