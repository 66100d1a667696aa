// Errors as values. A function that can fail returns `Result<T>`; the caller sees it in the
// signature. Exceptions are used only at the edges (config loading, CLI), never on the
// request path.
#pragma once

#include <expected>
#include <string>
#include <utility>

namespace prescale {

enum class ErrorCode {
  kInvalidArgument,  // the input is malformed; `message` says what and where
  kNotFound,
  kOutOfRange,       // a documented limit was exceeded
  kUnavailable,      // a peer could not be reached or refused; retrying may help
  kTimeout,
  kCancelled,
  kInternal,
};

const char* to_string(ErrorCode code);

struct Error {
  ErrorCode code = ErrorCode::kInternal;
  std::string message;

  std::string to_string() const;
};

template <typename T>
using Result = std::expected<T, Error>;

inline std::unexpected<Error> make_error(ErrorCode code, std::string message) {
  return std::unexpected<Error>(Error{code, std::move(message)});
}

}  // namespace prescale
