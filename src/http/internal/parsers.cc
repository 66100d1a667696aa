#include "http/internal/parsers.h"

#include <algorithm>
#include <array>
#include <boost/beast/http/error.hpp>

#include "http/internal/wire.h"

namespace prescale::http::internal {
namespace {

// Up-front reservation for a body of known length is capped, so a client that announces a
// large Content-Length and sends nothing does not make us allocate it.
constexpr std::uint64_t kMaxBodyReserve = 1024 * 1024;

// The characters of a reg-name or an IPv4 address (RFC 3986 section 3.2.2): unreserved,
// sub-delims, and '%' of an escape. A table: this runs for every byte of every Host field.
constexpr std::array<bool, 256> kHostChar = [] {
  std::array<bool, 256> t{};
  for (int c = '0'; c <= '9'; ++c) t[c] = true;
  for (int c = 'a'; c <= 'z'; ++c) t[c] = true;
  for (int c = 'A'; c <= 'Z'; ++c) t[c] = true;
  for (char c : std::string_view("-._~%!$&'()*+,;=")) t[static_cast<unsigned char>(c)] = true;
  return t;
}();

bool is_host_char(char c) { return kHostChar[static_cast<unsigned char>(c)]; }

}  // namespace

bool valid_host(std::string_view host) {
  size_t end = 0;
  if (host.starts_with('[')) {
    end = host.find(']');
    if (end == std::string_view::npos) return false;
    for (char c : host.substr(1, end - 1)) {
      if (!is_host_char(c) && c != ':') return false;
    }
    ++end;
  } else {
    while (end < host.size() && is_host_char(host[end])) ++end;
  }
  if (end == host.size()) return true;
  if (host[end] != ':') return false;
  const std::string_view port = host.substr(end + 1);
  return port.find_first_not_of("0123456789") == std::string_view::npos;
}

void RequestParser::on_request_impl(beast_http::verb /*method*/, bsv method_str, bsv target,
                                    int version, boost::beast::error_code& ec) {
  req_.method_name.assign(method_str);
  req_.method = method_from_string(method_str);
  req_.target.assign(target);
  const std::string_view origin = origin_form(target);
  split_target(origin, req_.path, req_.query);
  // RFC 9112 section 3.2: a path (origin-form), a URI (absolute-form), or "*" for a server-wide
  // OPTIONS (asterisk-form, section 3.2.4). The authority-form is CONNECT's, which nothing here
  // serves; anything else names no resource.
  const bool absolute = origin.size() != target.size() || origin.data() != target.data();
  if (!absolute && !origin.starts_with('/') &&
      !(target == "*" && req_.method == Method::kOptions)) {
    problem_ = "request target is neither a path, an absolute URI, nor * with OPTIONS";
    ec = beast_http::error::bad_target;
    return;
  }
  if (req_.path.empty()) req_.path = "/";  // an absolute-form target with no path
  // An absolute-form target names the host: the Host field is ignored for it (RFC 9112 section
  // 3.2.2), so routing and what is forwarded use the same host.
  authority_.clear();
  if (absolute) {
    const std::string_view rest = target.substr(target.find("://") + 3);
    authority_.assign(rest.substr(0, rest.find_first_of("/?")));
    if (!valid_host(authority_)) {  // e.g. userinfo ("http://user@host/")
      problem_ = "request target's authority is not host[:port]";
      ec = beast_http::error::bad_target;
      return;
    }
  }
  version_ = version;
  request_line_done_ = true;
  // What the fields may still take: Beast counts them apart from the request line ("METHOD SP
  // target SP HTTP/1.x CRLF", which it has checked to be exactly that).
  const size_t line_bytes = method_str.size() + target.size() + 12;
  basic_parser::header_limit(line_bytes >= header_limit_bytes_
                                 ? 0
                                 : static_cast<std::uint32_t>(header_limit_bytes_ - line_bytes));
}

void RequestParser::on_response_impl(int, bsv, int, boost::beast::error_code& ec) {
  ec = beast_http::error::bad_method;  // unreachable for a request parser
}

void RequestParser::on_field_impl(beast_http::field name, bsv name_string, bsv value,
                                  boost::beast::error_code& ec) {
  if (is_header_done()) return;  // a trailer field: not part of the header section
  // Request smuggling defences (RFC 9112 section 6.3): one unambiguous framing or none.
  if (name == beast_http::field::content_length) {
    // Beast also takes a list of equal lengths ("5, 5"); only a plain number is unambiguous.
    if (saw_content_length_ || saw_transfer_encoding_ ||
        value.find_first_not_of("0123456789") != bsv::npos) {
      problem_ = saw_content_length_      ? "more than one Content-Length field"
                 : saw_transfer_encoding_ ? "both Content-Length and Transfer-Encoding"
                                          : "Content-Length is not a plain decimal number";
      ec = beast_http::error::bad_content_length;
      return;
    }
    saw_content_length_ = true;
  } else if (name == beast_http::field::transfer_encoding) {
    if (saw_transfer_encoding_ || saw_content_length_ || !iequals(trim(value), "chunked")) {
      problem_ = saw_transfer_encoding_ ? "more than one Transfer-Encoding field"
                 : saw_content_length_  ? "both Content-Length and Transfer-Encoding"
                                        : "Transfer-Encoding other than chunked";
      ec = beast_http::error::bad_transfer_encoding;
      return;
    }
    saw_transfer_encoding_ = true;
  } else if (name == beast_http::field::expect) {
    expect_continue_ = iequals(trim(value), "100-continue");
  } else if (name == beast_http::field::host) {
    // RFC 9112 section 3.2: a Host that is not a valid host[:port] MUST be answered 400.
    if (!valid_host(value)) {
      problem_ = "Host is not host[:port]";
      ec = beast_http::error::bad_value;
      return;
    }
    ++host_fields_;
  }
  req_.headers.add(std::string(name_string), std::string(value));
}

void RequestParser::on_header_impl(boost::beast::error_code& ec) {
  // The host that routing relies on must be unambiguous: exactly one Host in HTTP/1.1, at
  // most one in HTTP/1.0.
  if (host_fields_ > 1 || (host_fields_ == 0 && version_ >= 11)) {
    problem_ = host_fields_ > 1 ? "more than one Host field" : "HTTP/1.1 request without Host";
    ec = beast_http::error::bad_field;
    return;
  }
  if (!authority_.empty()) req_.headers.set("Host", authority_);
}

void RequestParser::on_body_init_impl(const boost::optional<std::uint64_t>& content_length,
                                      boost::beast::error_code& /*ec*/) {
  if (content_length) {
    req_.body.reserve(static_cast<size_t>(std::min(*content_length, kMaxBodyReserve)));
  }
}

std::size_t RequestParser::on_body_impl(bsv body, boost::beast::error_code& /*ec*/) {
  req_.body.append(body);
  return body.size();
}

void RequestParser::on_chunk_header_impl(std::uint64_t, bsv, boost::beast::error_code& /*ec*/) {}

std::size_t RequestParser::on_chunk_body_impl(std::uint64_t, bsv body,
                                              boost::beast::error_code& /*ec*/) {
  req_.body.append(body);
  return body.size();
}

void RequestParser::on_finish_impl(boost::beast::error_code& /*ec*/) {}

void ResponseParser::on_request_impl(beast_http::verb, bsv, bsv, int,
                                     boost::beast::error_code& ec) {
  ec = beast_http::error::bad_status;  // unreachable for a response parser
}

void ResponseParser::on_response_impl(int code, bsv /*reason*/, int /*version*/,
                                      boost::beast::error_code& /*ec*/) {
  resp_.status = code;
}

void ResponseParser::on_field_impl(beast_http::field /*name*/, bsv name_string, bsv value,
                                   boost::beast::error_code& /*ec*/) {
  if (is_header_done()) return;  // a trailer field: not part of the header section
  resp_.headers.add(std::string(name_string), std::string(value));
}

void ResponseParser::on_header_impl(boost::beast::error_code& /*ec*/) {}

void ResponseParser::on_body_init_impl(const boost::optional<std::uint64_t>& content_length,
                                       boost::beast::error_code& /*ec*/) {
  if (content_length) {
    body_->reserve(static_cast<size_t>(std::min(*content_length, kMaxBodyReserve)));
  }
}

std::size_t ResponseParser::on_body_impl(bsv body, boost::beast::error_code&) {
  body_->append(body);
  return body.size();
}

void ResponseParser::on_chunk_header_impl(std::uint64_t, bsv, boost::beast::error_code&) {}

std::size_t ResponseParser::on_chunk_body_impl(std::uint64_t, bsv body, boost::beast::error_code&) {
  body_->append(body);
  return body.size();
}

void ResponseParser::on_finish_impl(boost::beast::error_code&) {}

}  // namespace prescale::http::internal
