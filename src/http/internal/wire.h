// Internal: the byte-level HTTP/1.1 pieces shared by the server and the client — writing
// status lines and header blocks into a reusable buffer. Not part of the public API.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "http/message.h"

namespace prescale::http::internal {

bool iequals(std::string_view a, std::string_view b);
std::string_view trim(std::string_view s);
// True when the comma-separated `list` contains `token` (case-insensitively).
bool has_token(std::string_view list, std::string_view token);

// Decodes "%XX" escapes (and '+' as a space when `plus_as_space`, for query strings).
// Malformed escapes are kept verbatim.
std::string percent_decode(std::string_view s, bool plus_as_space);
// `s` in the normal form of its percent-encoding (RFC 3986 section 6.2.2): escapes of unreserved
// characters decoded ("%7E" is "~", "%2d" "-"), the hex digits of the others upper case ("%2f"
// is "%2F", still an escape). nullopt when that changes nothing (no allocation).
std::optional<std::string> normalized_percent_encoding(std::string_view s);
// Whether percent_decode(encoded, plus_as_space) == decoded, without allocating.
bool percent_decoded_equals(std::string_view encoded, std::string_view decoded, bool plus_as_space);

// Reason phrase for a status code ("OK", "Not Found"); "Unknown" for unlisted codes.
std::string_view reason_phrase(int status);

// Field name is an RFC 9110 token and the value holds no CR, LF or NUL (so a handler cannot
// split the response by accident).
bool valid_field(std::string_view name, std::string_view value);

// Whether a field may be sent as a trailer (RFC 9110 section 6.5.1): a valid field that frames,
// routes or hops (Content-Length, Transfer-Encoding, Connection and the other hop-by-hop
// fields, Host, Trailer) or processes the content (Content-Type, Content-Encoding,
// Content-Range) may not.
bool trailer_allowed(std::string_view name, std::string_view value);

// Appends the end of a chunked body: the last chunk, the allowed `trailers`, the blank line.
void append_last_chunk(std::string& out, const Headers& trailers);

enum class ConnectionHeader { kNone, kClose, kKeepAlive, kUpgrade };

// Appends the status line and header block (ending with the blank line) of `response` to
// `out`. Framing is ours: the handler's Content-Length, Transfer-Encoding and Connection
// fields are dropped, `Content-Length: content_length` is written when it is given and the
// status is not 1xx or 204 (`Transfer-Encoding: chunked` instead when `chunked`), `Server:
// prescale` is added unless the handler set a Server field, and `Date` (now, IMF-fixdate; RFC
// 9110 section 6.6.1) unless the handler set one.
void append_response_head(std::string& out, const Response& response,
                          std::optional<uint64_t> content_length, ConnectionHeader connection,
                          bool chunked = false);

// Now as an HTTP date ("Sun, 06 Nov 1994 08:49:37 GMT"), formatted once a second per thread.
std::string_view http_date_now();

// Method token to put on the request line: to_string(method), or method_name for kOther.
std::string_view request_method_token(const Request& request);

// The Host field of a request sent to host:port (RFC 9110 section 7.2): host_port() of them
// ("[::1]:8080"), the scheme's default port left out (`default_port`: 80, 443 for https; "[::1]"),
// and an IPv6 zone id left out, as RFC 6874 section 4 has it: it names an interface of this
// machine, nothing the server knows ("fe80::1%eth0" or "fe80::1%25eth0" and 8080 give
// "[fe80::1]:8080"). The connection keeps it.
std::string host_field(std::string_view host, uint16_t port, uint16_t default_port = 80);

// Appends the request line and header block of `request` to `out`, with `Host: host_header`
// unless the request has a Host field, and Content-Length when the request has a body or its
// method usually carries one. The request's own framing fields are dropped.
void append_request_head(std::string& out, const Request& request, std::string_view host_header);

// The origin-form part of a request-target: an absolute-form target ("http://h:1/p?q",
// RFC 9112 section 3.2.2) without its scheme and authority ("/p?q"; "/" when it names no
// path), any other target as it is.
std::string_view origin_form(std::string_view target);

// Whether a request-target, path or query can go on a request line as it is: no space and no
// control characters (CR or LF would split the request).
bool valid_target(std::string_view target);

// Splits a request-target into path and query (without '?').
void split_target(std::string_view target, std::string& path, std::string& query);

// ASCII lower case, without the locale std::tolower consults: what field names compare by.
inline char ascii_lower(char c) { return c >= 'A' && c <= 'Z' ? static_cast<char>(c + 32) : c; }
// `s` with ascii_lower() applied (an HTTP/2 field name).
std::string lower_cased(std::string_view s);

// The request line and fields of an HTTP/1.1 request head (as append_request_head() writes it)
// as HTTP/2 request fields, appended to `out`: :method, :scheme (http), :authority (from Host)
// and :path first, then the fields in lower case without the connection-specific ones (RFC 9113
// section 8.2.2: Connection, Keep-Alive, Proxy-Connection, Transfer-Encoding, Upgrade, TE), and
// `te: trailers` last. False when the head is not one or has no Host.
//
// Nothing is allocated once the buffers have grown: the fields are views. Values view `head`;
// names view static text or `names`, where the lower-cased ones are written (cleared first and
// reserved to head.size(), so it does not move while the views are used). Both must outlive the
// views (nghttp2 copies the fields when a frame is submitted).
bool h2_request_fields(std::string_view head, std::string& names,
                       std::vector<std::pair<std::string_view, std::string_view>>& out);

}  // namespace prescale::http::internal
