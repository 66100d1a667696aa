// Checks for command-line flags that CLI11 leaves out.
#pragma once

#include <CLI/CLI.hpp>

namespace prescale {

// A floating-point flag's value is a finite number. CLI11's Range and PositiveNumber let "nan"
// through (every comparison with NaN is false). Every floating-point flag with a range adds this
// check before its own, which refuses "inf" by printing the largest double in full.
const CLI::Validator& finite();

// An unsigned integer flag's value has no minus sign. CLI11 2.1 reads "-1" into an unsigned
// flag as its largest value (strtoull wraps it): `--max-body-bytes -1` would lift the limit.
// Every unsigned flag adds this check.
const CLI::Validator& non_negative();

}  // namespace prescale
