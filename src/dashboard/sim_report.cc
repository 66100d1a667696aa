#include "dashboard/sim_report.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <string_view>

namespace prescale::dashboard {
namespace {

constexpr int kWidth = 1100;
constexpr int kChartHeight = 220;
constexpr int kLeft = 70;
constexpr int kRight = 20;
constexpr size_t kMaxPoints = 1500;  // per line; more would only bloat the file

// Colour-blind-safe palette (Okabe-Ito).
constexpr std::string_view kColors[] = {"#0072B2", "#D55E00", "#009E73", "#CC79A7",
                                        "#E69F00", "#56B4E9", "#000000", "#F0E442"};

std::string escape(std::string_view s) {
  std::string out;
  for (char c : s) {
    switch (c) {
      case '<': out += "&lt;"; break;
      case '>': out += "&gt;"; break;
      case '&': out += "&amp;"; break;
      case '"': out += "&quot;"; break;
      default: out += c;
    }
  }
  return out;
}

std::string num(double v, int decimals = 1) {
  char buf[64];
  std::snprintf(buf, sizeof buf, "%.*f", decimals, v);
  return buf;
}

// Downsamples by taking the maximum of each bucket, so peaks stay visible.
std::vector<double> bucket_max(const std::vector<double>& v, size_t points) {
  if (v.size() <= points) return v;
  std::vector<double> out(points, 0.0);
  for (size_t i = 0; i < points; ++i) {
    size_t a = i * v.size() / points;
    size_t b = std::max(a + 1, (i + 1) * v.size() / points);
    out[i] = *std::max_element(v.begin() + static_cast<long>(a), v.begin() + static_cast<long>(b));
  }
  return out;
}

std::string time_label(double seconds) {
  if (seconds >= 86400 * 2) return num(seconds / 86400, 1) + " d";
  if (seconds >= 7200) return num(seconds / 3600, 1) + " h";
  // Whole minutes as such; the ticks of a short run fall between them (50 s: "0.8 min").
  const bool whole = std::abs(seconds / 60 - std::round(seconds / 60)) < 1e-9;
  return num(seconds / 60, whole ? 0 : 1) + " min";
}

struct Axis {
  double duration_seconds;
  double y_max;
  int top;
};

std::string frame(const Axis& ax, std::string_view y_title) {
  std::string s;
  const int plot_w = kWidth - kLeft - kRight;
  for (int i = 0; i <= 4; ++i) {
    double frac = i / 4.0;
    int y = ax.top + kChartHeight - static_cast<int>(frac * kChartHeight);
    s += "<line x1='" + std::to_string(kLeft) + "' x2='" + std::to_string(kLeft + plot_w) +
         "' y1='" + std::to_string(y) + "' y2='" + std::to_string(y) +
         "' stroke='#ddd'/><text x='" + std::to_string(kLeft - 6) + "' y='" +
         std::to_string(y + 4) + "' text-anchor='end'>" + num(ax.y_max * frac, ax.y_max < 10 ? 1 : 0) +
         "</text>";
  }
  for (int i = 0; i <= 6; ++i) {
    int x = kLeft + i * plot_w / 6;
    s += "<text x='" + std::to_string(x) + "' y='" + std::to_string(ax.top + kChartHeight + 16) +
         "' text-anchor='middle'>" + time_label(ax.duration_seconds * i / 6) + "</text>";
  }
  s += "<text x='14' y='" + std::to_string(ax.top + kChartHeight / 2) +
       "' transform='rotate(-90 14 " + std::to_string(ax.top + kChartHeight / 2) +
       ")' text-anchor='middle'>" + escape(y_title) + "</text>";
  return s;
}

// Sample i (of a step's width) is drawn where the axis shows its time, i × step; the axis runs
// to the end of the last step.
std::string polyline(const std::vector<double>& values, const Axis& ax, std::string_view color) {
  auto pts = bucket_max(values, kMaxPoints);
  if (pts.empty() || ax.y_max <= 0) return "";
  const double plot_w = kWidth - kLeft - kRight;
  std::string s = "<polyline fill='none' stroke-width='1.3' stroke='" + std::string(color) +
                  "' points='";
  for (size_t i = 0; i < pts.size(); ++i) {
    double x = kLeft + plot_w * static_cast<double>(i) / static_cast<double>(pts.size());
    double y = ax.top + kChartHeight - kChartHeight * std::min(1.0, pts[i] / ax.y_max);
    s += num(x, 1) + "," + num(y, 1) + " ";
  }
  s += "'/>";
  return s;
}

double max_of(const std::vector<double>& v) {
  double m = 0;
  for (double x : v) {
    if (std::isfinite(x)) m = std::max(m, x);
  }
  return m;
}

}  // namespace

std::string render_sim_report_html(const SimReport& r) {
  const double duration = static_cast<double>(r.load_rps.size()) * r.step_seconds;
  double replicas_max = 1;
  for (const auto& p : r.policies) replicas_max = std::max(replicas_max, max_of(p.replicas));
  const int strip_h = 14;
  const int load_top = 20;
  const int rep_top = load_top + kChartHeight + 50;
  const int strips_top = rep_top + kChartHeight + 40;
  const int height = strips_top + static_cast<int>(r.policies.size()) * (strip_h + 6) + 20;

  std::string svg = "<svg xmlns='http://www.w3.org/2000/svg' width='" + std::to_string(kWidth) +
                    "' height='" + std::to_string(height) +
                    "' font-family='sans-serif' font-size='11'>";
  Axis load_ax{duration, max_of(r.load_rps) * 1.05, load_top};
  svg += "<text x='" + std::to_string(kLeft) + "' y='" + std::to_string(load_top - 6) +
         "' font-weight='bold'>Load at the entry services (req/s)</text>";
  svg += frame(load_ax, "req/s");
  svg += polyline(r.load_rps, load_ax, "#444");

  Axis rep_ax{duration, replicas_max * 1.05, rep_top};
  svg += "<text x='" + std::to_string(kLeft) + "' y='" + std::to_string(rep_top - 6) +
         "' font-weight='bold'>Replicas (all services; starting ones included)</text>";
  svg += frame(rep_ax, "replicas");
  for (size_t i = 0; i < r.policies.size(); ++i) {
    svg += polyline(r.policies[i].replicas, rep_ax, kColors[i % std::size(kColors)]);
  }

  svg += "<text x='" + std::to_string(kLeft) + "' y='" + std::to_string(strips_top - 8) +
         "' font-weight='bold'>Minutes with SLO violations (p99 above SLO or drops), in red</text>";
  const double plot_w = kWidth - kLeft - kRight;
  for (size_t i = 0; i < r.policies.size(); ++i) {
    const auto& p = r.policies[i];
    int y = strips_top + static_cast<int>(i) * (strip_h + 6);
    svg += "<text x='" + std::to_string(kLeft - 6) + "' y='" + std::to_string(y + 11) +
           "' text-anchor='end' fill='" + std::string(kColors[i % std::size(kColors)]) + "'>" +
           escape(p.policy) + "</text>";
    svg += "<rect x='" + std::to_string(kLeft) + "' y='" + std::to_string(y) + "' width='" +
           num(plot_w, 0) + "' height='" + std::to_string(strip_h) + "' fill='#eef5ee'/>";
    // Minute m covers 60 m s to 60 (m + 1) s of the same axis (the last one may be partial).
    for (size_t m = 0; m < p.slo_violated_minute.size() && duration > 0; ++m) {
      if (!p.slo_violated_minute[m]) continue;
      const double start = 60.0 * static_cast<double>(m);
      if (start >= duration) break;
      double x = kLeft + plot_w * start / duration;
      double w = std::max(1.0, plot_w * std::min(60.0, duration - start) / duration);
      svg += "<rect x='" + num(x, 1) + "' y='" + std::to_string(y) + "' width='" + num(w, 1) +
             "' height='" + std::to_string(strip_h) + "' fill='#d62728'/>";
    }
  }
  svg += "</svg>";

  std::string legend;
  for (size_t i = 0; i < r.policies.size(); ++i) {
    legend += "<li><span style='color:" + std::string(kColors[i % std::size(kColors)]) +
              "'>&#9632;</span> <b>" + escape(r.policies[i].policy) + "</b> — " +
              escape(r.policies[i].summary) + "</li>";
  }
  return "<!doctype html><html><head><meta charset='utf-8'><title>" + escape(r.title) +
         "</title><style>body{font-family:sans-serif;margin:24px;color:#222}ul{list-style:none;"
         "padding:0}li{margin:2px 0}</style></head><body><h2>" +
         escape(r.title) + "</h2><p>" + escape(r.subtitle) + "</p><ul>" + legend + "</ul>" + svg +
         "</body></html>\n";
}

}  // namespace prescale::dashboard
