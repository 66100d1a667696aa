#include "http/internal/h2_client_exchange.h"

#include <nghttp2/nghttp2.h>

#include <algorithm>
#include <charconv>
#include <cstring>
#include <utility>
#include <vector>

#include "http/internal/h2_fields.h"
#include "http/internal/wire.h"

namespace prescale::http::internal {

struct H2ClientCallbacks {
  static H2ClientExchange& of(void* user) { return *static_cast<H2ClientExchange*>(user); }

  static int header(nghttp2_session*, const nghttp2_frame* frame, const uint8_t* name,
                    size_t namelen, const uint8_t* value, size_t valuelen, uint8_t, void* user) {
    H2ClientExchange& self = of(user);
    if (frame->hd.stream_id != self.stream_) return 0;
    self.header_bytes_ += namelen + valuelen + 4;
    if (self.header_bytes_ > self.max_header_bytes_) {
      self.fail("response fields over " + std::to_string(self.max_header_bytes_) + " bytes");
      return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE;
    }
    const std::string_view n(reinterpret_cast<const char*>(name), namelen);
    const std::string_view v(reinterpret_cast<const char*>(value), valuelen);
    if (n == ":status") {
      int status = 0;
      std::from_chars(v.data(), v.data() + v.size(), status);
      self.interim_ = status < 200;
      if (!self.interim_) self.response_.status = status;
      return 0;
    }
    if (self.interim_) return 0;
    (self.got_head_ ? self.response_.trailers : self.response_.headers)
        .add(std::string(n), std::string(v));
    return 0;
  }

  static int frame_recv(nghttp2_session*, const nghttp2_frame* frame, void* user) {
    H2ClientExchange& self = of(user);
    if (frame->hd.stream_id != self.stream_) return 0;
    if (frame->hd.type == NGHTTP2_HEADERS) {
      if (self.interim_) {
        self.interim_ = false;
        return 0;
      }
      self.got_head_ = true;
    }
    if ((frame->hd.flags & NGHTTP2_FLAG_END_STREAM) != 0) self.ended_ = true;
    return 0;
  }

  static int data_chunk(nghttp2_session*, uint8_t, int32_t id, const uint8_t* data, size_t len,
                        void* user) {
    H2ClientExchange& self = of(user);
    if (id != self.stream_ || self.failed_) return 0;
    if (self.response_.body.size() + len > self.max_body_bytes_) {
      self.fail("response body over " + std::to_string(self.max_body_bytes_) + " bytes");
      return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE;
    }
    self.response_.body.append(reinterpret_cast<const char*>(data), len);
    return 0;
  }

  static int stream_close(nghttp2_session*, int32_t id, uint32_t code, void* user) {
    H2ClientExchange& self = of(user);
    if (id != self.stream_) return 0;
    self.closed_ = true;
    self.close_code_ = code;
    return 0;
  }

  static ssize_t read_body(nghttp2_session*, int32_t, uint8_t* buf, size_t length, uint32_t* flags,
                           nghttp2_data_source*, void* user) {
    H2ClientExchange& self = of(user);
    const size_t n = std::min(length, self.body_.size() - self.body_off_);
    std::memcpy(buf, self.body_.data() + self.body_off_, n);
    self.body_off_ += n;
    if (self.body_off_ == self.body_.size()) *flags |= NGHTTP2_DATA_FLAG_EOF;
    return static_cast<ssize_t>(n);
  }
};

H2ClientExchange::H2ClientExchange(std::string_view head, std::string_view body,
                                   size_t max_header_bytes, size_t max_body_bytes)
    : body_(body), max_header_bytes_(max_header_bytes), max_body_bytes_(max_body_bytes) {
  std::string names;
  std::vector<std::pair<std::string_view, std::string_view>> fields;
  if (!h2_request_fields(head, names, fields)) {
    fail("the request cannot be sent over HTTP/2");
    return;
  }
  nghttp2_session_callbacks* cb = nullptr;
  nghttp2_session_callbacks_new(&cb);
  nghttp2_session_callbacks_set_on_header_callback(cb, H2ClientCallbacks::header);
  nghttp2_session_callbacks_set_on_frame_recv_callback(cb, H2ClientCallbacks::frame_recv);
  nghttp2_session_callbacks_set_on_data_chunk_recv_callback(cb, H2ClientCallbacks::data_chunk);
  nghttp2_session_callbacks_set_on_stream_close_callback(cb, H2ClientCallbacks::stream_close);
  const int rv = nghttp2_session_client_new(&session_, cb, this);
  nghttp2_session_callbacks_del(cb);
  if (rv != 0) {
    session_ = nullptr;
    fail("cannot start an HTTP/2 session");
    return;
  }
  const nghttp2_settings_entry settings[] = {{NGHTTP2_SETTINGS_ENABLE_PUSH, 0}};
  nghttp2_submit_settings(session_, NGHTTP2_FLAG_NONE, settings, std::size(settings));
  std::vector<nghttp2_nv> nva;
  nva.reserve(fields.size());
  for (const auto& [name, value] : fields) nva.push_back(h2_field(name, value));
  nghttp2_data_provider provider{};
  provider.read_callback = H2ClientCallbacks::read_body;
  stream_ = nghttp2_submit_request(session_, nullptr, nva.data(), nva.size(),
                                   body_.empty() ? nullptr : &provider, nullptr);
  if (stream_ < 0) fail("cannot submit the request");
}

H2ClientExchange::~H2ClientExchange() {
  if (session_ != nullptr) nghttp2_session_del(session_);
}

void H2ClientExchange::fail(std::string why) {
  if (failed_) return;
  failed_ = true;
  why_ = std::move(why);
}

void H2ClientExchange::output(std::string& out) {
  if (session_ == nullptr || failed_) return;
  for (;;) {
    const uint8_t* data = nullptr;
    const ssize_t n = nghttp2_session_mem_send(session_, &data);
    if (n < 0) {
      fail(std::string("HTTP/2: ") + nghttp2_strerror(static_cast<int>(n)));
      return;
    }
    if (n == 0) return;
    out.append(reinterpret_cast<const char*>(data), static_cast<size_t>(n));
  }
}

void H2ClientExchange::input(const uint8_t* data, size_t n) {
  if (session_ == nullptr || failed_) return;
  const ssize_t rv = nghttp2_session_mem_recv(session_, data, n);
  if (rv < 0) fail(std::string("malformed HTTP/2: ") + nghttp2_strerror(static_cast<int>(rv)));
}

Result<Response> H2ClientExchange::result() {
  if (failed_) return make_error(ErrorCode::kUnavailable, why_);
  if (!closed_ || close_code_ != NGHTTP2_NO_ERROR || !ended_ || !got_head_) {
    return make_error(ErrorCode::kUnavailable, std::string("the server reset the HTTP/2 stream (") +
                                                   nghttp2_http2_strerror(close_code_) + ")");
  }
  return std::move(response_);
}

}  // namespace prescale::http::internal
