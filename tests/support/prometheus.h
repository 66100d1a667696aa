// A real Prometheus (Debian's package) holding history written beforehand: promtool turns
// OpenMetrics text into TSDB blocks, as Prometheus' own backfilling does, and Prometheus serves
// them. For tests of what reads a Prometheus' past (the controller's --history-from).
#pragma once

#include <functional>
#include <memory>
#include <optional>
#include <string>

#include "support/subprocess.h"

namespace prescale::testing {

class HistoryPrometheus {
 public:
  // Whether /usr/bin/prometheus and /usr/bin/promtool are installed (scripts/install-deps).
  static bool available();

  // Writes `openmetrics` (families, then "# EOF") as blocks under dir/prometheus-data and starts
  // Prometheus on them, on 127.0.0.1, scraping every second what `scrape_configs` (the YAML of
  // prometheus.yml's `scrape_configs:` key, if any) names; with `tls` (PEM files: a certificate
  // naming 127.0.0.1, its key) it serves HTTPS only (its web configuration's
  // tls_server_config). port() is 0 when it did not get ready; log() says why.
  struct Tls {
    std::string cert_file;
    std::string key_file;
  };
  HistoryPrometheus(const TempDir& dir, const std::string& openmetrics,
                    const std::string& scrape_configs = "", const std::optional<Tls>& tls = {});
  ~HistoryPrometheus();

  int port() const { return port_; }
  std::string log() const;

 private:
  const TempDir& dir_;
  std::unique_ptr<Subprocess> process_;
  int port_ = 0;
};

// The samples of one series, as OpenMetrics lines: `series` (a name and its labels, as
// `name{a="b"}`) at `value(t)`, every `step` seconds of [from, to) (Unix seconds).
std::string samples(const std::string& series, double from, double to, double step,
                    const std::function<double(double)>& value);

}  // namespace prescale::testing
