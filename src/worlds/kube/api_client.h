// ApiClient: a small synchronous client of the Kubernetes API server, for what Prescale reads
// and changes there (Deployments and their scale, Pods): GET, merge PATCH and DELETE of JSON
// objects by API path ("/apis/apps/v1/namespaces/shop/deployments/web").
//
// Where the server is comes from an ApiConfig: in_cluster_config() inside a pod (the service
// account, as client-go's rest.InClusterConfig), config_from_url() for `kubectl proxy`
// ("http://127.0.0.1:8001") or an API server URL.
//
// One keep-alive connection is kept and reused across calls; one the server closed is opened
// again, and a call that fails on a reused connection before any byte of the answer arrived is
// sent once more on a new one (safe: GET and DELETE are idempotent, and so is a merge patch that
// sets fields; an eviction asked twice evicts once). HTTPS is
// TLS 1.2 or later, the server's certificate verified against ApiConfig::ca_file (the system's CAs
// when empty) and its name or IP address checked. Each call's whole exchange — name lookup,
// connect, TLS handshake, request and answer — must finish within the client's timeout (a name
// lookup that hangs returns when the system's resolver gives up: getaddrinfo cannot be
// interrupted).
//
// Errors (Result): a non-2xx answer is an error whose message reads
//   "<METHOD> <path>: <status> <reason>: <the Status object's message, or the body's start>"
// with the code kNotFound for 404; kUnavailable for 5xx, 429, 401 and 403 (the API server
// refused: an expired token, which the client reads again from ApiConfig::token_file as the
// kubelet renews it, a Role not yet bound — retrying later may help; there is no
// permission-denied code)
// and for connection and TLS failures ("TLS handshake with HOST:PORT failed: certificate verify
// failed: ..."), or an answer that is not JSON; kInvalidArgument for the other 4xx (409 Conflict
// included) and for a path that is not an absolute path; kTimeout when the timeout elapsed;
// kOutOfRange for an answer over 64 MiB.
//
// Thread safety: an ApiClient is used by one thread at a time (calls block that thread);
// in_cluster_config() and config_from_url() are thread-safe.
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <string_view>

#include "core/clock.h"
#include "core/result.h"

namespace prescale::kube {

struct ApiConfig {
  std::string scheme;  // "https" or "http"
  std::string host;    // a name or an IP address; an IPv6 one without brackets
  std::uint16_t port = 443;
  std::string token;  // bearer token; "" = none sent
  // Where the token is read again from, at most once a minute, so that a token the kubelet
  // renews (a projected service account token lives an hour) is followed; "" = never. A read
  // that fails keeps the token before it.
  std::string token_file;
  std::string ca_file;     // PEM bundle to verify the server by; "" = the system's CAs
  std::string name_space;  // the namespace to work in; "" = not known
};

// Where the service account's files are mounted in a pod.
inline constexpr std::string_view kServiceAccountDir =
    "/var/run/secrets/kubernetes.io/serviceaccount";

// The API server as seen from inside a pod: https to KUBERNETES_SERVICE_HOST and
// KUBERNETES_SERVICE_PORT, the token `dir`/token, the CA `dir`/ca.crt (the system's CAs when
// that file does not exist) and the namespace `dir`/namespace ("default" when it does not exist),
// their whitespace trimmed. Errors: kUnavailable when either variable is unset or empty (not in
// a pod) or the token cannot be read, kInvalidArgument for a bad port.
Result<ApiConfig> in_cluster_config(std::string_view dir = kServiceAccountDir);

// "http://HOST[:PORT]" or "https://HOST[:PORT]" (ports 80 and 443 by default; an IPv6 host in
// brackets; a trailing "/" allowed, no other path), with no token, CA file or namespace.
// Errors: kInvalidArgument saying what is wrong.
Result<ApiConfig> config_from_url(std::string_view url);

class ApiClient {
 public:
  // `clock` times the token file's re-reads (the calls' timeouts are the system's steady time);
  // it must outlive the client.
  explicit ApiClient(ApiConfig config, std::chrono::milliseconds timeout = std::chrono::seconds(5),
                     const Clock& clock = Clock::real());
  ~ApiClient();
  ApiClient(const ApiClient&) = delete;
  ApiClient& operator=(const ApiClient&) = delete;

  // The object at `path` (absolute, with its query if any).
  Result<nlohmann::json> get(std::string_view path);
  // Applies `body` as a JSON merge patch (RFC 7386; Content-Type: application/merge-patch+json)
  // and returns the object as changed.
  Result<nlohmann::json> merge_patch(std::string_view path, const nlohmann::json& body);
  // POSTs `body` (Content-Type: application/json) to `path`: a subresource such as a pod's
  // eviction; returns what the server answered.
  Result<nlohmann::json> create(std::string_view path, const nlohmann::json& body);
  // Deletes the object at `path`; returns what the server answered (the object or a Status).
  Result<nlohmann::json> remove(std::string_view path);

  const ApiConfig& config() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace prescale::kube
