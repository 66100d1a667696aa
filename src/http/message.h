// HTTP messages as the rest of Prescale sees them: plain structs with no Boost.Beast types,
// so that services, the gateway and the runtime include nothing heavy.
//
// A handler receives the request and a `Responder`. It may respond at once (the common case)
// or later from any thread (e.g. after an upstream call); the responder must be called exactly
// once. A handler must not block the I/O thread.
#pragma once

#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace prescale::http {

enum class Method { kGet, kHead, kPost, kPut, kPatch, kDelete, kOptions, kOther };

std::string_view to_string(Method m);
Method method_from_string(std::string_view s);

// Header fields in arrival order; names compare case-insensitively.
class Headers {
 public:
  void add(std::string name, std::string value);
  // Replaces every field with this name by one field.
  void set(std::string name, std::string value);
  void remove(std::string_view name);
  // Removes every field for which `pred(name, value)` is true; keeps the order of the rest.
  template <class Pred>
  void remove_if(Pred pred) {
    std::erase_if(fields_, [&](const auto& f) {
      return pred(std::string_view(f.first), std::string_view(f.second));
    });
  }
  std::optional<std::string_view> get(std::string_view name) const;
  const std::vector<std::pair<std::string, std::string>>& fields() const { return fields_; }
  bool empty() const { return fields_.empty(); }
  // Removes every field (keeps the capacity, so a connection can reuse the object).
  void clear();

 private:
  std::vector<std::pair<std::string, std::string>> fields_;
};

class BodyStream;   // http/body_stream.h
class RequestBody;  // http/request_body.h
class Tunnel;       // http/tunnel.h

struct Request {
  Method method = Method::kGet;
  std::string method_name;  // as received, e.g. "GET"
  std::string target;       // as received: path plus optional "?query"
  std::string path;         // target up to '?', percent-decoding not applied
  std::string query;        // after '?', without it
  Headers headers;
  std::string body;
  // Set, with `body` empty, when the server hands the request over before its body arrived
  // (ServerOptions::stream_request_body): the body is read from here as it comes.
  std::shared_ptr<RequestBody> body_stream;
  std::string remote_address;  // peer IP, e.g. "127.0.0.1"
  bool secure = false;         // it arrived over TLS (ServerOptions::tls)
  // Filled by the router: values of `{name}` segments in the matched pattern.
  std::vector<std::pair<std::string, std::string>> path_params;
  // The matched route pattern (e.g. "/v1/users/{id}"), for metrics labels; empty if none.
  std::string route;
  // For a handler that answers later (e.g. after an upstream call) and can stop early: when set,
  // the server calls it once, on the connection's I/O thread, if the client goes away before
  // the response is produced: the connection fails or is closed (also at the shutdown
  // deadline), or the client ends its input with no further request pending. The handler must
  // still call its Responder (the answer is written if the connection is still open, else
  // dropped). The server clears it once the response is produced.
  std::function<void()> on_client_gone;

  std::optional<std::string_view> param(std::string_view name) const;
  // Value of the first query parameter whose key, percent-decoded ('+' as a space), is `name`;
  // the value percent-decoded too. nullopt when absent.
  std::optional<std::string> query_param(std::string_view name) const;
};

struct Response {
  int status = 200;
  Headers headers;
  std::string body;
  // A body that follows in pieces after `body` (http/body_stream.h); null: `body` is all of it.
  std::shared_ptr<BodyStream> stream;
  // With status 101: the connection switches to the protocol the response's Upgrade field names
  // (http/tunnel.h); null otherwise.
  std::shared_ptr<Tunnel> tunnel;
  // Fields sent after the body (gRPC's grpc-status, a checksum): over HTTP/2 a trailing HEADERS
  // frame; over HTTP/1.1 the chunked body's trailer section (a response with trailers is sent
  // chunked); to HTTP/1.0, with no body (HEAD, 204, 304) or with a `stream` (BodyStream::end
  // gives its own), dropped. Framing, routing and hop-by-hop fields are never sent as trailers
  // (docs/http.md, "Trailers").
  Headers trailers;

  static Response text(int status, std::string body);
  static Response json(int status, std::string body);
};

// Call exactly once, from any thread.
class Responder {
 public:
  using Fn = std::function<void(Response)>;
  Responder() = default;
  explicit Responder(Fn fn) : fn_(std::make_shared<Fn>(std::move(fn))) {}
  void operator()(Response response) const { (*fn_)(std::move(response)); }
  explicit operator bool() const { return fn_ != nullptr; }

 private:
  std::shared_ptr<Fn> fn_;
};

using Handler = std::function<void(Request&, Responder)>;

}  // namespace prescale::http
