#include "support/prometheus.h"

#include <cinttypes>
#include <cstdio>
#include <cstdlib>
#include <filesystem>

#include "http/client.h"
#include "http/tls.h"

namespace prescale::testing {

using namespace std::chrono_literals;

bool HistoryPrometheus::available() {
  return std::filesystem::exists("/usr/bin/prometheus") &&
         std::filesystem::exists("/usr/bin/promtool");
}

HistoryPrometheus::HistoryPrometheus(const TempDir& dir, const std::string& openmetrics,
                                     const std::string& scrape_configs,
                                     const std::optional<Tls>& tls)
    : dir_(dir) {
  write_file(dir.file("history.om"), openmetrics);
  const std::string blocks = "/usr/bin/promtool tsdb create-blocks-from openmetrics -q " +
                             dir.file("history.om") + " " + dir.file("prometheus-data") + " > " +
                             dir.file("promtool.log") + " 2>&1";
  if (std::system(blocks.c_str()) != 0) return;
  write_file(dir.file("prometheus.yml"), "global:\n  scrape_interval: 1s\n" + scrape_configs);
  const int port = free_port();
  std::vector<std::string> argv{"/usr/bin/prometheus",
                                "--config.file=" + dir.file("prometheus.yml"),
                                "--storage.tsdb.path=" + dir.file("prometheus-data"),
                                "--web.listen-address=127.0.0.1:" + std::to_string(port)};
  http::ClientOptions client_options;
  if (tls) {
    write_file(dir.file("web.yml"), "tls_server_config:\n  cert_file: " + tls->cert_file +
                                        "\n  key_file: " + tls->key_file + "\n");
    argv.push_back("--web.config.file=" + dir.file("web.yml"));
    auto trusted = http::ClientTlsContext::create(tls->cert_file);
    if (!trusted) return;
    client_options.tls = *trusted;
  }
  process_ = std::make_unique<Subprocess>(argv, dir.file("prometheus.log"));
  http::Client client(client_options);
  http::Request ready;
  ready.method_name = "GET";
  ready.target = "/-/ready";
  if (wait_for(
          [&] {
            auto r = client.request("127.0.0.1", static_cast<uint16_t>(port), ready, 1s);
            return r && r->status == 200;
          },
          60s)) {
    port_ = port;
  }
}

HistoryPrometheus::~HistoryPrometheus() = default;

std::string HistoryPrometheus::log() const {
  return read_file(dir_.file("promtool.log")) + (process_ ? process_->log() : std::string());
}

std::string samples(const std::string& series, double from, double to, double step,
                    const std::function<double(double)>& value) {
  std::string out;
  char line[64];
  for (double t = from; t < to; t += step) {
    std::snprintf(line, sizeof line, " %.3f %" PRId64 "\n", value(t), static_cast<std::int64_t>(t));
    out += series;
    out += line;
  }
  return out;
}

}  // namespace prescale::testing
