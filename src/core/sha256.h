// SHA-256 (FIPS 180-4) of a byte string, for the training-data hashes recorded in model files: the
// same digest `sha256sum FILE` prints. Kept here because the project's dependencies have no hash
// library (OpenSSL is not among the packages scripts/install-deps installs).
//
// Thread safety: a pure function.
#pragma once

#include <string>
#include <string_view>

namespace prescale {

// The digest as 64 lowercase hex digits.
std::string sha256_hex(std::string_view bytes);

}  // namespace prescale
