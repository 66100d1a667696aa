// Internal: Beast parsers that fill Prescale's Request/Response directly (no intermediate
// beast::http::message, so no per-field allocations beyond our own Headers), with the request
// framing checks Beast leaves to the application. Includes Boost; only .cc files of src/http
// (and of the gateway's upstream connections, src/gateway/upstream_pool.cc) may include it.
#pragma once

#include <boost/beast/http/basic_parser.hpp>
#include <cstdint>
#include <string>
#include <string_view>

#include "http/message.h"

namespace prescale::http::internal {

namespace beast_http = boost::beast::http;
using bsv = boost::beast::string_view;

// Parses one request into `req` (whose strings are assigned, so their capacity is reused).
// On top of Beast's checks it rejects, with a parse error: a second Content-Length field
// (equal or not) or one that is not a plain decimal number, Content-Length together with
// Transfer-Encoding, more than one Transfer-Encoding field, any Transfer-Encoding other than
// exactly "chunked", an HTTP/1.1 request without Host, any request with more than one Host
// field or a Host (or absolute-form authority) that is not host[:port], and a target that is
// neither a path, an absolute URI, nor "*" with OPTIONS (RFC 9112 section 3.2). Trailer fields of a
// chunked body are dropped, never merged into the headers (RFC 9110 section 6.5.1). An
// absolute-form target ("http://host/path?q") is split into the URI's path and query, and its
// authority replaces the Host field (RFC 9112 section 3.2.2); `target` keeps what was received.
// Whether `host` is uri-host [":" port] (RFC 9110 section 7.2), as Host and the authority of an
// absolute-form target (or HTTP/2's :authority) must be: a name or IPv4 address, or a bracketed
// IP literal (IPv6, with ':'), then optionally ':' and digits. Empty is allowed (a URI without an
// authority).
bool valid_host(std::string_view host);

class RequestParser final : public beast_http::basic_parser<true> {
 public:
  explicit RequestParser(Request& req) : req_(req) {}

  // The most bytes the request line and the header fields may take together. Hides Beast's
  // header_limit(), which bounds what each put() is given of the header (the request line and
  // the fields each on their own, and not the fields parsed by earlier calls), so that a request
  // could bring twice the limit.
  void header_limit(std::uint32_t bytes) {
    header_limit_bytes_ = bytes;
    basic_parser::header_limit(bytes);
  }

  // Beast's put(), keeping the header limit over all calls: what earlier calls consumed of the
  // header counts against it.
  std::size_t put(boost::asio::const_buffer buffer, boost::beast::error_code& ec) {
    const bool in_header = !is_header_done();
    const std::size_t used = basic_parser::put(buffer, ec);
    if (in_header && !is_header_done() && used > 0) {
      header_used_ += used;
      basic_parser::header_limit(
          header_used_ >= header_limit_bytes_
              ? 0
              : static_cast<std::uint32_t>(header_limit_bytes_ - header_used_));
    }
    return used;
  }

  int version() const { return version_; }  // 10 or 11
  bool expect_continue() const { return expect_continue_; }
  // Whether the request was framed by Transfer-Encoding (an HTTP/1.0 request framed so must
  // close its connection: RFC 9112 section 6.1).
  bool chunked() const { return saw_transfer_encoding_; }
  // Whether the request line has been read whole (a header over the limit before that is an
  // over-long target: 414).
  bool request_line_done() const { return request_line_done_; }
  // What the checks above found wrong, for the error answer ("more than one Host field"); empty
  // when the parse error is Beast's own, whose message then says it. No quotes or backslashes.
  std::string_view problem() const { return problem_; }

 private:
  void on_request_impl(beast_http::verb method, bsv method_str, bsv target, int version,
                       boost::beast::error_code& ec) override;
  void on_response_impl(int code, bsv reason, int version, boost::beast::error_code& ec) override;
  void on_field_impl(beast_http::field name, bsv name_string, bsv value,
                     boost::beast::error_code& ec) override;
  void on_header_impl(boost::beast::error_code& ec) override;
  void on_body_init_impl(const boost::optional<std::uint64_t>& content_length,
                         boost::beast::error_code& ec) override;
  std::size_t on_body_impl(bsv body, boost::beast::error_code& ec) override;
  void on_chunk_header_impl(std::uint64_t size, bsv extensions,
                            boost::beast::error_code& ec) override;
  std::size_t on_chunk_body_impl(std::uint64_t remain, bsv body,
                                 boost::beast::error_code& ec) override;
  void on_finish_impl(boost::beast::error_code& ec) override;

  Request& req_;
  int version_ = 11;
  bool saw_content_length_ = false;
  bool saw_transfer_encoding_ = false;
  bool expect_continue_ = false;
  int host_fields_ = 0;
  bool request_line_done_ = false;
  std::string_view problem_;                     // a string literal
  std::uint32_t header_limit_bytes_ = 8 * 1024;  // Beast's default for requests
  std::size_t header_used_ = 0;  // bytes of the header consumed by earlier put() calls
  std::string authority_;        // of an absolute-form target
};

// Parses one response into `resp`.
class ResponseParser final : public beast_http::basic_parser<false> {
 public:
  explicit ResponseParser(Response& resp) : resp_(resp), body_(&resp.body) {}

  // The rest of the body goes to `sink` instead of resp.body (a body streamed on as it comes,
  // after the response's head was handed on); `resp` is no longer touched.
  void body_to(std::string& sink) { body_ = &sink; }

 private:
  void on_request_impl(beast_http::verb method, bsv method_str, bsv target, int version,
                       boost::beast::error_code& ec) override;
  void on_response_impl(int code, bsv reason, int version, boost::beast::error_code& ec) override;
  void on_field_impl(beast_http::field name, bsv name_string, bsv value,
                     boost::beast::error_code& ec) override;
  void on_header_impl(boost::beast::error_code& ec) override;
  void on_body_init_impl(const boost::optional<std::uint64_t>& content_length,
                         boost::beast::error_code& ec) override;
  std::size_t on_body_impl(bsv body, boost::beast::error_code& ec) override;
  void on_chunk_header_impl(std::uint64_t size, bsv extensions,
                            boost::beast::error_code& ec) override;
  std::size_t on_chunk_body_impl(std::uint64_t remain, bsv body,
                                 boost::beast::error_code& ec) override;
  void on_finish_impl(boost::beast::error_code& ec) override;

  Response& resp_;
  std::string* body_;
};

}  // namespace prescale::http::internal
