// Internal: a header field as libnghttp2 takes it, for the HTTP/2 code of src/http and the
// gateway's HTTP/2 upstreams. Includes nghttp2.h; only .cc files include this header.
#pragma once

#include <nghttp2/nghttp2.h>

#include <cstdint>
#include <string_view>

namespace prescale::http::internal {

// A view of `name` and `value`: they must live until the frame is submitted (nghttp2 copies
// them then).
inline nghttp2_nv h2_field(std::string_view name, std::string_view value) {
  return nghttp2_nv{reinterpret_cast<uint8_t*>(const_cast<char*>(name.data())),
                    reinterpret_cast<uint8_t*>(const_cast<char*>(value.data())), name.size(),
                    value.size(), NGHTTP2_NV_FLAG_NONE};
}

}  // namespace prescale::http::internal
