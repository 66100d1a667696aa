#include "dashboard/sim_report.h"

#include <gtest/gtest.h>

#include <set>
#include <sstream>
#include <string>
#include <utility>
#include <vector>

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

// The x positions of the `n` time labels under the first chart, and their texts.
std::vector<std::pair<double, std::string>> time_ticks(const std::string& html, size_t n) {
  std::vector<std::pair<double, std::string>> out;
  const std::string anchor = "' text-anchor='middle'>";
  for (size_t p = html.find(anchor); p != std::string::npos && out.size() < n;
       p = html.find(anchor, p + 1)) {
    const size_t x_at = html.rfind("<text x='", p) + 9;
    const size_t text_at = p + anchor.size();
    out.emplace_back(std::stod(html.substr(x_at)),
                     html.substr(text_at, html.find('<', text_at) - text_at));
  }
  return out;
}

// The x coordinates of the first polyline (the load).
std::vector<double> load_xs(const std::string& html) {
  const size_t at = html.find("points='", html.find("<polyline")) + 8;
  std::istringstream in(html.substr(at, html.find('\'', at) - at));
  std::vector<double> xs;
  std::string pair;
  while (in >> pair) xs.push_back(std::stod(pair.substr(0, pair.find(','))));
  return xs;
}

TEST(SimReportTest, ALoadSampleIsDrawnWhereTheTimeAxisShowsItsTime) {
  // Six one-minute samples, at 0..5 min. Wherever the axis ends, the last sample (5 min) must
  // sit where the axis reads 5 min: at 5/6 of an axis labelled "6 min" at its right end.
  SimReport r;
  r.step_seconds = 60;
  r.load_rps = {1, 2, 3, 4, 5, 6};
  r.policies.push_back({"hpa", {1, 1, 1, 1, 1, 1}, {}, ""});
  const std::string html = render_sim_report_html(r);
  const auto ticks = time_ticks(html, 7);
  ASSERT_EQ(ticks.size(), 7u);
  ASSERT_EQ(ticks[0].second, "0 min");
  const double axis_end_min = std::stod(ticks[6].second);  // "6 min" -> 6
  ASSERT_GT(axis_end_min, 0);
  const auto xs = load_xs(html);
  ASSERT_EQ(xs.size(), 6u);
  const double want = ticks[0].first + (ticks[6].first - ticks[0].first) * 5.0 / axis_end_min;
  EXPECT_NEAR(xs[5], want, 1.0) << "axis 0.." << ticks[6].second;
}

TEST(SimReportTest, AViolationOfTheLastPartialMinuteIsDrawnAtThatMinute) {
  // 90 s of 1 s steps: minute 0 is 0-60 s, minute 1 the last 30 s. Minute 1's red mark must
  // start where the load of second 60 is drawn, not halfway across.
  SimReport r;
  r.step_seconds = 1;
  r.load_rps.assign(90, 1.0);
  r.policies.push_back({"hpa", std::vector<double>(90, 1.0), {false, true}, ""});
  const std::string html = render_sim_report_html(r);
  const auto xs = load_xs(html);
  ASSERT_EQ(xs.size(), 90u);
  const size_t mark = html.find("fill='#d62728'");
  ASSERT_NE(mark, std::string::npos);
  const size_t x_at = html.rfind("<rect x='", mark) + 9;
  EXPECT_NEAR(std::stod(html.substr(x_at)), xs[60], 1.0);
}

TEST(SimReportTest, TimeAxisLabelsOfAShortRunAreDistinct) {
  // A 5-minute run: seven labels, 50 s apart. Rounded to whole minutes two of them both read
  // "2 min" (100 s and 150 s), and 50 s reads "1 min".
  SimReport r;
  r.step_seconds = 1;
  r.load_rps.assign(300, 1.0);
  const auto ticks = time_ticks(render_sim_report_html(r), 7);
  ASSERT_EQ(ticks.size(), 7u);
  std::set<std::string> labels;
  for (const auto& [x, text] : ticks) labels.insert(text);
  EXPECT_EQ(labels.size(), 7u) << ticks[0].second << ", " << ticks[1].second << ", "
                               << ticks[2].second << ", " << ticks[3].second << ", "
                               << ticks[4].second << ", " << ticks[5].second << ", "
                               << ticks[6].second;
}

}  // namespace
}  // namespace prescale::dashboard
