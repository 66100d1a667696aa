#include "status_command.h"

#include <algorithm>
#include <array>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <ctime>
#include <iostream>
#include <string_view>
#include <vector>

#include "command_util.h"
#include "core/host_port.h"
#include "http/client.h"
#include "local_platform.h"

namespace prescale {
namespace {

using Json = nlohmann::json;

// A number of the API, or "-" where it is null (not known yet).
std::string number(const Json& v, int decimals) {
  return v.is_number() ? fixed(v.get<double>(), decimals) : "-";
}

// Text of the API for one cell or line: its first line, at most `max` bytes (whole characters).
std::string one_line(std::string text, size_t max) {
  bool cut = false;
  if (const size_t nl = text.find_first_of("\r\n"); nl != std::string::npos) {
    text.resize(nl);
    cut = true;
  }
  if (text.size() > max) {
    size_t at = max;
    while (at > 0 && (static_cast<unsigned char>(text[at]) & 0xC0) == 0x80) --at;  // UTF-8
    text.resize(at);
    cut = true;
  }
  return cut ? text + " …" : text;
}

// An SLO as written: "200", "2.5".
std::string slo_ms(const Json& v) {
  if (!v.is_number()) return "-";
  std::string text = fixed(v.get<double>(), 3);
  while (text.back() == '0') text.pop_back();
  if (text.back() == '.') text.pop_back();
  return text;
}

// 412345 as "412,345".
std::string grouped(double v) {
  std::string digits = std::to_string(static_cast<long long>(std::llround(v)));
  const size_t first = digits.front() == '-' ? 1 : 0;
  for (size_t i = digits.size(); i > first + 3; i -= 3) digits.insert(i - 3, ",");
  return digits;
}

std::string clock_time(double unix_seconds) {
  const std::time_t t = static_cast<std::time_t>(unix_seconds);
  std::tm tm{};
  gmtime_r(&t, &tm);
  std::array<char, 32> buf{};
  std::strftime(buf.data(), buf.size(), "%Y-%m-%d %H:%M:%S UTC", &tm);
  return buf.data();
}

std::string span(double seconds) {
  const long long s = std::max(0LL, static_cast<long long>(seconds));
  const long long d = s / 86400, h = s % 86400 / 3600, m = s % 3600 / 60;
  if (d > 0) return std::to_string(d) + "d " + std::to_string(h) + "h";
  if (h > 0) return std::to_string(h) + "h " + std::to_string(m) + "m";
  return std::to_string(m) + "m " + std::to_string(s % 60) + "s";
}

// Columns padded to their widest cell, two spaces apart; the last one unpadded.
std::string table(const std::vector<std::vector<std::string>>& rows) {
  std::vector<size_t> width;
  for (const auto& row : rows) {
    width.resize(std::max(width.size(), row.size()));
    for (size_t i = 0; i < row.size(); ++i) width[i] = std::max(width[i], row[i].size());
  }
  std::string out;
  for (const auto& row : rows) {
    std::string line;
    for (size_t i = 0; i < row.size(); ++i) {
      line += row[i];
      if (i + 1 < row.size()) line += std::string(width[i] - row[i].size() + 2, ' ');
    }
    while (!line.empty() && line.back() == ' ') line.pop_back();
    out += line + "\n";
  }
  return out;
}

}  // namespace

std::string status_text(const std::string& address, const Json& overview, const Json& services) {
  const std::string policy = overview.at("policy").get<std::string>();
  const double started = overview.at("started_at").get<double>();
  const double now = overview.at("now").get<double>();
  std::string out = address + ": ";
  if (policy.empty() || now <= 0) {
    out += "starting: the controller has not observed yet\n";  // the overview comes with its tick
  } else {
    out += "policy " + policy +
           (overview.at("recommend_only").get<bool>() ? " (recommending only)" : "") +
           ", up since " + clock_time(started) + " (" + span(now - started) +
           "): " + grouped(overview.at("requests").get<double>()) + " requests";
    if (const Json& within = overview.at("within_slo_share"); within.is_number()) {
      out += ", " + percent(within.get<double>(), 2) + " within SLO";
    }
    out += ", " + number(overview.at("replica_hours"), 2) + " replica-hours, " +
           grouped(overview.at("scaling_events").get<double>()) + " scaling events\n";
  }

  std::vector<std::vector<std::string>> rows = {
      {"SERVICE", "KIND", "READY", "PLANNED", "LOAD/S", "P99 MS", "SLO MS", "ERRORS/S", "NOTE"}};
  std::string decisions;
  for (const Json& s : services) {
    const std::string name = s.at("name").get<std::string>();
    const Json& latest = s.at("latest");
    auto at_latest = [&](const char* field) {
      return latest.is_object() && latest.contains(field) ? latest.at(field) : Json();
    };
    std::string note;
    if (const Json& i = s.at("incident"); i.is_object()) {
      note = "incident " + std::to_string(i.at("id").get<long long>()) + ": " +
             one_line(i.at("summary").get<std::string>(), 60);
    } else if (const Json& w = s.at("slowdown"); w.is_object()) {
      note = "slower: " + one_line(w.at("summary").get<std::string>(), 60);
    } else if (s.contains("rollout") && s.at("rollout").is_string()) {
      note = s.at("rollout").get<std::string>();
    }
    rows.push_back({name, s.at("kind").get<std::string>(), number(at_latest("ready_replicas"), 0),
                    number(at_latest("planned_replicas"), 0), number(at_latest("load_rps"), 1),
                    number(at_latest("p99_ms"), 1), slo_ms(s.at("slo_p99_ms")),
                    number(at_latest("errors_rps"), 2), note});
    if (const Json& d = s.at("decision"); d.is_object()) {
      decisions += "  " + name + ": " + number(d.at("planned_replicas"), 0) + " at " +
                   clock_time(d.at("t").get<double>()) + ": " +
                   one_line(d.at("reason").get<std::string>(), 300) + "\n";
    }
  }
  out += table(rows);
  if (!decisions.empty()) out += "latest decisions:\n" + decisions;
  return out;
}

struct StatusFlags {
  std::string ui_listen{kDefaultUiListen};
  bool json = false;
};

StatusCommand::StatusCommand(CLI::App& app) : flags_(std::make_unique<StatusFlags>()) {
  StatusFlags& f = *flags_;
  command_ = app.add_subcommand(
      "status",
      "Show what a running platform does: its services' replicas, load, latency and latest "
      "decisions (from prescale up's dashboard API, or prescale controller's admin port)");
  command_
      ->add_option("--ui", f.ui_listen, "Where the dashboard's API answers (prescale up's --ui)")
      ->capture_default_str();
  command_->add_flag("--json", f.json,
                     "The API's answers as one object: {\"overview\": ..., \"services\": [...]}");
}

StatusCommand::~StatusCommand() = default;

bool StatusCommand::parsed() const { return command_->parsed(); }

int StatusCommand::run() const {
  const StatusFlags& f = *flags_;
  auto address = parse_listen(f.ui_listen, "--ui");
  if (!address) {
    std::cerr << "prescale status: " << address.error().message << "\n";
    return 2;
  }
  if (address->port == 0) {
    std::cerr << "prescale status: --ui " << f.ui_listen
              << ": port 0 names no server; give the port the dashboard listens on\n";
    return 2;
  }
  const std::string where = host_port(address->host, address->port);
  http::Client client;
  auto get = [&](const std::string& target) -> Result<Json> {
    http::Request req;
    req.target = target;
    auto r = client.request(address->host, address->port, req, std::chrono::seconds(5));
    if (!r) {
      return make_error(r.error().code, "nothing answers at " + where + " (" + r.error().message +
                                            "): is prescale up running, with this --ui?");
    }
    if (r->status != 200) {
      return make_error(ErrorCode::kUnavailable,
                        where + target + " answered " + std::to_string(r->status) + ": " + r->body);
    }
    Json j = Json::parse(r->body, nullptr, /*allow_exceptions=*/false);
    if (j.is_discarded()) {
      return make_error(ErrorCode::kUnavailable,
                        where + target + " answered what is not JSON: is it Prescale's dashboard?");
    }
    return j;
  };
  auto overview = get("/api/v1/overview");
  auto services = overview ? get("/api/v1/services") : overview;
  if (!overview || !services) {
    std::cerr << "prescale status: " << (!overview ? overview : services).error().message << "\n";
    return 1;
  }
  try {
    const Json& list = services->at("services");
    if (f.json) {
      std::cout << Json{{"overview", *overview}, {"services", list}}.dump(2) << "\n";
    } else {
      std::cout << status_text(where, *overview, list);
    }
  } catch (const Json::exception& e) {
    std::cerr << "prescale status: " << where
              << " answered, but not as Prescale's dashboard API does: " << e.what() << "\n";
    return 1;
  }
  return std::cout ? 0 : 1;
}

}  // namespace prescale
