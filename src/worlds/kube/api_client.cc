#include "worlds/kube/api_client.h"

#include <openssl/ssl.h>
#include <openssl/x509_vfy.h>
#include <sys/socket.h>

#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/ssl.hpp>
#include <boost/beast/core/error.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/core/tcp_stream.hpp>
#include <boost/beast/http/error.hpp>
#include <boost/beast/http/parser.hpp>
#include <boost/beast/http/read.hpp>
#include <boost/beast/http/string_body.hpp>
#include <boost/beast/http/write.hpp>
#include <boost/beast/ssl.hpp>
#include <cctype>
#include <cerrno>
#include <cstdlib>
#include <filesystem>
#include <optional>
#include <utility>

#include "core/host_port.h"
#include "core/text_file.h"
#include "http/json.h"

// Asio's SSL part, compiled once for the program (the rest of Asio is compiled in
// src/http/asio_impl.cc).
#include <boost/asio/ssl/impl/src.hpp>

namespace prescale::kube {
namespace {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace bhttp = boost::beast::http;
using tcp = asio::ip::tcp;
using boost::system::error_code;

constexpr std::uint64_t kMaxBodyBytes = 64 * 1024 * 1024;
constexpr std::uint32_t kMaxHeaderBytes = 64 * 1024;
constexpr size_t kBodyExcerptBytes = 200;
// How often ApiConfig::token_file is read again (the kubelet renews a projected token well
// before it expires).
constexpr Clock::Duration kTokenReread = std::chrono::minutes(1);

std::string_view trim(std::string_view s) {
  constexpr std::string_view kSpace = " \t\r\n";
  const size_t begin = s.find_first_not_of(kSpace);
  if (begin == std::string_view::npos) return {};
  return s.substr(begin, s.find_last_not_of(kSpace) - begin + 1);
}

bool is_ip_address(const std::string& host) {
  error_code ec;
  asio::ip::make_address(host, ec);
  return !ec;
}

// The code a non-2xx answer gives (api_client.h says why 401 and 403 are kUnavailable).
ErrorCode code_of_status(unsigned status) {
  if (status == 404) return ErrorCode::kNotFound;
  if (status >= 400 && status < 500 && status != 401 && status != 403 && status != 429) {
    return ErrorCode::kInvalidArgument;
  }
  return ErrorCode::kUnavailable;
}

// What a failed call's message ends with: the message of a Kubernetes Status object, else the
// start of the body.
std::string why_refused(const std::string& body) {
  auto status = http::parse_json(body);
  if (status && status->is_object() && status->value("kind", "") == "Status") {
    if (auto m = status->find("message"); m != status->end() && m->is_string()) {
      return m->get<std::string>();
    }
  }
  return std::string(trim(std::string_view(body).substr(0, kBodyExcerptBytes)));
}

}  // namespace

Result<ApiConfig> in_cluster_config(std::string_view dir) {
  const char* host = std::getenv("KUBERNETES_SERVICE_HOST");
  const char* port = std::getenv("KUBERNETES_SERVICE_PORT");
  if (host == nullptr || *host == '\0' || port == nullptr || *port == '\0') {
    return make_error(ErrorCode::kUnavailable,
                      "not running in a Kubernetes pod: KUBERNETES_SERVICE_HOST and "
                      "KUBERNETES_SERVICE_PORT are not set");
  }
  ApiConfig config;
  config.scheme = "https";
  config.host = url_host(host);  // without brackets, should they be there
  const HostPortParts parts = split_host_port("h:" + std::string(port), 1);
  if (parts.fault != HostPortFault::kNone) {
    return make_error(
        ErrorCode::kInvalidArgument,
        "KUBERNETES_SERVICE_PORT must be 1..65535, got \"" + std::string(port) + "\"");
  }
  config.port = parts.port;
  const std::string base(dir);
  auto token = read_text_file(base + "/token");
  if (!token) {
    return make_error(ErrorCode::kUnavailable,
                      "cannot read the service account's token: " + token.error().message);
  }
  config.token = trim(*token);
  config.token_file = base + "/token";
  std::error_code ec;
  if (std::filesystem::exists(base + "/ca.crt", ec)) config.ca_file = base + "/ca.crt";
  auto name_space = read_text_file(base + "/namespace");
  config.name_space = name_space ? trim(*name_space) : "default";
  return config;
}

Result<ApiConfig> config_from_url(std::string_view url) {
  auto bad = [&](std::string why) {
    return make_error(ErrorCode::kInvalidArgument,
                      "API server URL \"" + std::string(url) + "\": " + std::move(why));
  };
  const size_t scheme_end = url.find("://");
  if (scheme_end == std::string_view::npos) return bad("must start with http:// or https://");
  std::string scheme(url.substr(0, scheme_end));
  for (char& c : scheme) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  if (scheme != "http" && scheme != "https") {
    return bad("the scheme must be http or https, not \"" + scheme + "\"");
  }
  // The rest as an http:// URL: the same rules for the authority, and no query or fragment.
  const std::string_view rest = url.substr(scheme_end + 3);
  auto parsed = parse_http_url("http://" + std::string(rest));
  if (!parsed) return bad(parsed.error().message);
  if (!parsed->path.empty() && parsed->path != "/") {
    return bad("no path is allowed (calls name the whole API path), got \"" + parsed->path + "\"");
  }
  const std::string_view authority = rest.substr(0, rest.find('/'));
  const bool has_port = authority.starts_with('[') ? authority.find("]:") != std::string_view::npos
                                                   : authority.find(':') != std::string_view::npos;
  ApiConfig config;
  config.scheme = scheme;
  config.host = parsed->host;
  config.port = has_port ? parsed->port : (scheme == "https" ? 443 : 80);
  return config;
}

struct ApiClient::Impl {
  Impl(ApiConfig c, std::chrono::milliseconds t, const Clock& k)
      : config(std::move(c)),
        timeout(t),
        clock(k),
        next_token_read(k.now() + kTokenReread),
        authority(host_port(config.host, config.port)),
        https(config.scheme == "https") {
    // The Host field names the server as a URL would: brackets around IPv6, no zone id, the
    // port left out when it is the scheme's default.
    append_without_zone(host_field, authority);
    if (config.port == (https ? 443 : 80)) host_field.erase(host_field.rfind(':'));
  }

  Result<nlohmann::json> call(bhttp::verb method, std::string_view path, std::string body);

  // Opens the connection (resolve, connect, TLS handshake) by `deadline`.
  Result<void> connect(std::chrono::steady_clock::time_point deadline);
  Result<asio::ssl::context*> tls_context();
  void close();
  // For a kept connection: false when the server closed it or sent something unasked.
  bool still_open();
  beast::tcp_stream& tcp_stream() { return https ? secure->next_layer() : *plain; }

  // Runs the io_context until the operation started by `start` (given a completion handler)
  // completes; returns its error.
  template <class Start>
  error_code run(Start start) {
    std::optional<error_code> result;
    start([&result](error_code ec, auto&&...) { result = ec; });
    io.restart();
    while (!result && io.run_one() > 0) {
    }
    return result.value_or(asio::error::operation_aborted);
  }

  ApiConfig config;
  std::chrono::milliseconds timeout;
  const Clock& clock;
  // When ApiConfig::token_file is next read (the token given was read just now).
  Clock::TimePoint next_token_read;
  std::string authority;   // "host:port" for messages
  std::string host_field;  // the Host field's value
  bool https;
  asio::io_context io;
  std::optional<asio::ssl::context> tls;
  std::optional<beast::tcp_stream> plain;
  std::optional<beast::ssl_stream<beast::tcp_stream>> secure;
  beast::flat_buffer buffer;
};

Result<asio::ssl::context*> ApiClient::Impl::tls_context() {
  if (tls) return &*tls;
  asio::ssl::context context(asio::ssl::context::tls_client);
  SSL_CTX_set_min_proto_version(context.native_handle(), TLS1_2_VERSION);
  context.set_verify_mode(asio::ssl::verify_peer);
  error_code ec;
  if (config.ca_file.empty()) {
    context.set_default_verify_paths(ec);
  } else {
    context.load_verify_file(config.ca_file, ec);
  }
  if (ec) {
    return make_error(ErrorCode::kUnavailable,
                      "cannot load the CA certificates " +
                          (config.ca_file.empty() ? "of the system" : "in " + config.ca_file) +
                          ": " + ec.message());
  }
  tls.emplace(std::move(context));
  return &*tls;
}

Result<void> ApiClient::Impl::connect(std::chrono::steady_clock::time_point deadline) {
  tcp::resolver resolver(io);
  tcp::resolver::results_type endpoints;
  std::optional<error_code> resolved;
  resolver.async_resolve(config.host, std::to_string(config.port),
                         [&](error_code ec, tcp::resolver::results_type r) {
                           resolved = ec;
                           endpoints = std::move(r);
                         });
  io.restart();
  while (!resolved && io.run_one_until(deadline) > 0) {
  }
  if (!resolved) {
    // The lookup runs on Asio's resolver thread and cannot be stopped: its handler, cancelled,
    // runs when it ends (bounded by the system resolver's own timeouts).
    resolver.cancel();
    while (!resolved && io.run_one() > 0) {
    }
    return make_error(ErrorCode::kTimeout, "looking up " + config.host + " timed out");
  }
  if (*resolved) {
    return make_error(ErrorCode::kUnavailable,
                      "cannot resolve " + config.host + ": " + resolved->message());
  }

  asio::ssl::context* context = nullptr;
  if (https) {
    auto c = tls_context();
    if (!c) return std::unexpected(c.error());
    context = *c;
    secure.emplace(io, *context);
  } else {
    plain.emplace(io);
  }
  tcp_stream().expires_at(deadline);
  error_code ec = run([&](auto done) { tcp_stream().async_connect(endpoints, std::move(done)); });
  if (ec == beast::error::timeout) {
    close();
    return make_error(ErrorCode::kTimeout, "connect to " + authority + " timed out");
  }
  if (ec) {
    close();
    return make_error(ErrorCode::kUnavailable, "connect to " + authority + ": " + ec.message());
  }
  tcp_stream().socket().set_option(tcp::no_delay(true), ec);
  if (!https) return {};

  SSL* ssl = secure->native_handle();
  X509_VERIFY_PARAM* param = SSL_get0_param(ssl);
  // OpenSSL's own name check rather than asio::ssl::host_name_verification: a mismatch then
  // shows in the verify result ("hostname mismatch", "IP address mismatch").
  if (is_ip_address(config.host)) {
    X509_VERIFY_PARAM_set1_ip_asc(param, config.host.c_str());
  } else {
    X509_VERIFY_PARAM_set1_host(param, config.host.c_str(), 0);
    SSL_set_tlsext_host_name(ssl, config.host.c_str());  // SNI: names only (RFC 6066)
  }
  ec = run([&](auto done) { secure->async_handshake(asio::ssl::stream_base::client, done); });
  if (!ec) return {};
  std::string why = ec == beast::error::timeout ? "timed out" : ec.message();
  if (const long verify = SSL_get_verify_result(ssl); verify != X509_V_OK) {
    why = std::string("certificate verify failed: ") + X509_verify_cert_error_string(verify) +
          " (CAs " + (config.ca_file.empty() ? "of the system" : "from " + config.ca_file) + ")";
  }
  close();
  return make_error(ec == beast::error::timeout ? ErrorCode::kTimeout : ErrorCode::kUnavailable,
                    "TLS handshake with " + authority + " failed: " + why);
}

void ApiClient::Impl::close() {
  // No TLS close_notify: the server learns of the end from the TCP connection's.
  error_code ignored;
  if (plain) plain->socket().close(ignored);
  if (secure) secure->next_layer().socket().close(ignored);
  plain.reset();
  secure.reset();
  buffer.clear();
}

bool ApiClient::Impl::still_open() {
  if (!plain && !secure) return false;
  char c;
  const ssize_t n = ::recv(tcp_stream().socket().native_handle(), &c, 1, MSG_PEEK | MSG_DONTWAIT);
  return n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK);
}

Result<nlohmann::json> ApiClient::Impl::call(bhttp::verb method, std::string_view path,
                                             std::string body) {
  const std::string what = std::string(bhttp::to_string(method)) + " " + std::string(path);
  if (!path.starts_with('/') || path.find_first_of(" \r\n\t") != std::string_view::npos) {
    return make_error(ErrorCode::kInvalidArgument,
                      what + ": the path must be absolute, without spaces or line breaks");
  }
  bhttp::request<bhttp::string_body> request(method, path, 11);
  request.set(bhttp::field::host, host_field);
  request.set(bhttp::field::user_agent, PRESCALE_KUBE_USER_AGENT);
  request.set(bhttp::field::accept, "application/json");
  if (!config.token_file.empty() && clock.now() >= next_token_read) {
    next_token_read = clock.now() + kTokenReread;
    if (auto token = read_text_file(config.token_file); token && !trim(*token).empty()) {
      config.token = trim(*token);
    }
  }
  if (!config.token.empty()) request.set(bhttp::field::authorization, "Bearer " + config.token);
  if (method == bhttp::verb::patch) {
    request.set(bhttp::field::content_type, "application/merge-patch+json");
  } else if (method == bhttp::verb::post) {
    request.set(bhttp::field::content_type, "application/json");
  }
  request.body() = std::move(body);
  request.prepare_payload();

  const auto deadline = std::chrono::steady_clock::now() + timeout;
  std::optional<bhttp::response_parser<bhttp::string_body>> parser;
  for (int attempt = 0;; ++attempt) {
    const bool reused = still_open();
    if (!reused) {
      close();
      if (auto opened = connect(deadline); !opened) {
        return make_error(opened.error().code, what + ": " + opened.error().message);
      }
    }
    tcp_stream().expires_at(deadline);
    parser.emplace();
    parser->header_limit(kMaxHeaderBytes);
    parser->body_limit(kMaxBodyBytes);
    error_code ec = run([&](auto done) {
      if (https) {
        bhttp::async_write(*secure, request, std::move(done));
      } else {
        bhttp::async_write(*plain, request, std::move(done));
      }
    });
    if (!ec) {
      ec = run([&](auto done) {
        if (https) {
          bhttp::async_read(*secure, buffer, *parser, std::move(done));
        } else {
          bhttp::async_read(*plain, buffer, *parser, std::move(done));
        }
      });
    }
    if (!ec) break;
    const bool nothing_back = !parser->got_some();
    close();
    if (ec == beast::error::timeout) {
      return make_error(ErrorCode::kTimeout, what + ": no answer from " + authority + " within " +
                                                 std::to_string(timeout.count()) + " ms");
    }
    if (ec == bhttp::error::body_limit) {
      return make_error(ErrorCode::kOutOfRange, what + ": the answer from " + authority +
                                                    " is over " +
                                                    std::to_string(kMaxBodyBytes >> 20) + " MiB");
    }
    // A kept connection the server closed meanwhile: once more on a new one.
    if (reused && nothing_back && attempt == 0) continue;
    return make_error(ErrorCode::kUnavailable,
                      what + ": connection to " + authority + " failed: " + ec.message());
  }

  const auto& response = parser->get();
  if (!response.keep_alive()) close();
  const unsigned status = response.result_int();
  if (status < 200 || status > 299) {
    std::string reason(response.reason());
    if (reason.empty()) reason = std::string(bhttp::obsolete_reason(response.result()));
    return make_error(code_of_status(status), what + ": " + std::to_string(status) + " " + reason +
                                                  ": " + why_refused(response.body()));
  }
  if (trim(response.body()).empty()) return nlohmann::json();
  auto json = http::parse_json(response.body());
  if (!json) {
    return make_error(ErrorCode::kUnavailable,
                      what + ": the answer is not JSON: " + json.error().message);
  }
  return json;
}

ApiClient::ApiClient(ApiConfig config, std::chrono::milliseconds timeout, const Clock& clock)
    : impl_(std::make_unique<Impl>(std::move(config), timeout, clock)) {}

ApiClient::~ApiClient() = default;

Result<nlohmann::json> ApiClient::get(std::string_view path) {
  return impl_->call(bhttp::verb::get, path, {});
}

Result<nlohmann::json> ApiClient::merge_patch(std::string_view path, const nlohmann::json& body) {
  return impl_->call(bhttp::verb::patch, path,
                     body.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace));
}

Result<nlohmann::json> ApiClient::create(std::string_view path, const nlohmann::json& body) {
  return impl_->call(bhttp::verb::post, path,
                     body.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace));
}

Result<nlohmann::json> ApiClient::remove(std::string_view path) {
  return impl_->call(bhttp::verb::delete_, path, {});
}

const ApiConfig& ApiClient::config() const { return impl_->config; }

}  // namespace prescale::kube
