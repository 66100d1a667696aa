#include "dashboard/sim_report.h"

#include <gtest/gtest.h>

namespace prescale::dashboard {
namespace {

TEST(SimReportTest, RendersLoadReplicasAndViolations) {
  SimReport r;
  r.title = "NASA <July>";
  r.step_seconds = 60;
  r.load_rps = {1, 5, 10, 5, 1};
  r.policies.push_back({"hpa", {1, 2, 4, 4, 2}, {false, true, false, false, false}, "slo 98%"});
  r.policies.push_back({"oracle", {1, 3, 5, 3, 1}, {false, false, false, false, false}, "lb"});
  std::string html = render_sim_report_html(r);
  EXPECT_NE(html.find("<title>NASA &lt;July&gt;</title>"), std::string::npos);
  EXPECT_NE(html.find("<b>hpa</b>"), std::string::npos);
  EXPECT_NE(html.find("<b>oracle</b>"), std::string::npos);
  // One violation mark (red) for hpa's second minute, none for the oracle.
  size_t marks = 0;
  for (size_t p = html.find("#d62728"); p != std::string::npos; p = html.find("#d62728", p + 1)) {
    ++marks;
  }
  EXPECT_EQ(marks, 1u);
  EXPECT_EQ(html.find("<script"), std::string::npos);
}

TEST(SimReportTest, DownsamplesLongRunsKeepingPeaks) {
  SimReport r;
  r.load_rps.assign(100000, 1.0);
  r.load_rps[54321] = 99.0;
  r.policies.push_back({"static", std::vector<double>(100000, 3.0), {}, ""});
  std::string html = render_sim_report_html(r);
  EXPECT_LT(html.size(), 200000u);
  // The y axis scales to the peak (99 * 1.05 at the top gridline).
  EXPECT_NE(html.find(">104<"), std::string::npos);
}

}  // namespace
}  // namespace prescale::dashboard
