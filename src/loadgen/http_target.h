// HttpTarget: the load generator's Target over the project's asynchronous http::Client, for a
// base URL such as http://127.0.0.1:8080, http://gateway:8080/api (the path is a prefix put
// before every mix path) or https://shop.example.com (HttpTargetOptions::tls).
//
// Thread safety: send() may be called from any thread; completions run on client I/O threads.
// Destroying the target completes requests still out with kCancelled.
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>

#include "core/result.h"
#include "http/client.h"
#include "loadgen/load_generator.h"

namespace prescale::loadgen {

struct TargetUrl {
  std::string host;  // name or IP literal (without brackets)
  uint16_t port = 80;
  std::string path_prefix;  // "" or "/api" (no trailing '/')
  bool https = false;       // port 443 unless written
};

// "http://HOST[:PORT][/PREFIX]" or "https://...". Errors: kInvalidArgument saying what is wrong
// (other schemes are not supported).
Result<TargetUrl> parse_target_url(std::string_view url);

struct HttpTargetOptions {
  std::chrono::milliseconds connect_timeout{2000};
  size_t max_idle_connections = 64;  // keep-alive connections kept for reuse
  int io_threads = 2;
  // For an https target: what its certificate is verified by (http/tls.h).
  std::shared_ptr<const http::ClientTlsContext> tls = nullptr;
};

class HttpTarget final : public Target {
 public:
  HttpTarget(TargetUrl url, HttpTargetOptions options);
  void send(http::Request req, std::chrono::milliseconds timeout,
            std::function<void(Result<int>)> done) override;
  http::Client::Stats stats() const { return client_.stats(); }

 private:
  TargetUrl url_;
  http::Client client_;
};

}  // namespace prescale::loadgen
