// UTF-8 as RFC 3629 has it: no overlong forms, no surrogates, nothing past U+10FFFF. For text
// that must stay valid where it goes (a JSON log line, an OTLP string).
//
// Thread safety: pure functions.
#pragma once

#include <cstddef>
#include <string_view>

namespace prescale {

// The length of the well-formed UTF-8 sequence at s[i] (1 for ASCII), or 0 when the bytes there
// are not one (a cut sequence at the end included). `i` must be below s.size().
std::size_t utf8_sequence_length(std::string_view s, std::size_t i);

}  // namespace prescale
