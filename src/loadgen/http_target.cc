#include "loadgen/http_target.h"

#include "core/host_port.h"

namespace prescale::loadgen {

Result<TargetUrl> parse_target_url(std::string_view url) {
  Result<HttpUrl> parsed = parse_web_url(url);
  if (!parsed) {
    return make_error(ErrorCode::kInvalidArgument,
                      parsed.error().message + " (expected http[s]://HOST[:PORT][/PREFIX], got \"" +
                          std::string(url) + "\")");
  }
  TargetUrl out{std::move(parsed->host), parsed->port, std::move(parsed->path), parsed->https};
  while (!out.path_prefix.empty() && out.path_prefix.back() == '/') out.path_prefix.pop_back();
  return out;
}

HttpTarget::HttpTarget(TargetUrl url, HttpTargetOptions options)
    : url_(std::move(url)),
      client_(http::ClientOptions{.connect_timeout = options.connect_timeout,
                                  .max_idle_per_host = options.max_idle_connections,
                                  .threads = std::max(1, options.io_threads),
                                  .tls = std::move(options.tls)}) {}

void HttpTarget::send(http::Request req, std::chrono::milliseconds timeout,
                      std::function<void(Result<int>)> done) {
  if (!url_.path_prefix.empty()) req.target = url_.path_prefix + req.target;
  client_.async_request(
      url_.host, url_.port, std::move(req),
      [done = std::move(done)](Result<http::Response> r) {
        if (r) {
          done(r->status);
        } else {
          done(std::unexpected(r.error()));
        }
      },
      timeout);
}

}  // namespace prescale::loadgen
