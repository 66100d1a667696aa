// Reading a whole file: data files, model manifests and boosters, /proc files.
//
// Thread safety: a pure function of the file system.
#pragma once

#include <string>

#include "core/result.h"

namespace prescale {

// The whole file, its bytes as they are. Errors: kNotFound naming the path when it does not
// exist, kInvalidArgument when it is a directory, kUnavailable naming the path and why otherwise.
Result<std::string> read_text_file(const std::string& path);

}  // namespace prescale
