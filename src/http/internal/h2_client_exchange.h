// Internal to http::Client: one request over HTTP/2 in clear text with prior knowledge
// (ClientOptions::http2) — its frames, fields and flow control through libnghttp2. The caller
// owns the connection and its I/O: it writes output(), gives what it reads to input(), and ends
// the connection once finished(). A connection carries this one request.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "core/result.h"
#include "http/message.h"

struct nghttp2_session;

namespace prescale::http::internal {

class H2ClientExchange {
 public:
  // `head`: the request as append_request_head() writes it; `body` is sent after it (it must
  // outlive the exchange). A response over `max_header_bytes` of fields or `max_body_bytes` of
  // body fails.
  H2ClientExchange(std::string_view head, std::string_view body, size_t max_header_bytes,
                   size_t max_body_bytes);
  ~H2ClientExchange();
  H2ClientExchange(const H2ClientExchange&) = delete;
  H2ClientExchange& operator=(const H2ClientExchange&) = delete;

  // Appends what is to be written now (nothing: the exchange waits for input).
  void output(std::string& out);
  // Bytes read from the connection.
  void input(const uint8_t* data, size_t n);
  // The response is complete, or the exchange failed.
  bool finished() const { return failed_ || closed_; }
  // Once finished(): the response (trailers included), or why there is none (kUnavailable).
  Result<Response> result();

 private:
  friend struct H2ClientCallbacks;
  void fail(std::string why);

  nghttp2_session* session_ = nullptr;
  std::string_view body_;
  size_t body_off_ = 0;
  size_t max_header_bytes_;
  size_t max_body_bytes_;
  size_t header_bytes_ = 0;
  int32_t stream_ = -1;
  Response response_;
  bool interim_ = false;
  bool got_head_ = false;
  bool ended_ = false;   // END_STREAM came
  bool closed_ = false;  // the stream closed
  uint32_t close_code_ = 0;
  bool failed_ = false;
  std::string why_;
};

}  // namespace prescale::http::internal
