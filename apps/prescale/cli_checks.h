// Checks for command-line flags that CLI11 leaves out.
#pragma once

#include <CLI/CLI.hpp>

namespace prescale {

// A floating-point flag's value is a finite number. CLI11's Range and PositiveNumber let "nan"
// through (every comparison with NaN is false). Every floating-point flag with a range adds this
// check before its own, which refuses "inf" by printing the largest double in full.
const CLI::Validator& finite();

// A number flag's value is above 0. CLI11's PositiveNumber refuses 0 as "not in range 0.000000 to
// " and the largest double in full, a range that holds 0.
const CLI::Validator& positive();

// An unsigned integer flag's value has no minus sign. CLI11 2.1 reads "-1" into an unsigned
// flag as its largest value (strtoull wraps it): `--max-body-bytes -1` would lift the limit.
// Every unsigned flag adds this check.
const CLI::Validator& non_negative();

// An integer flag's value is written in decimal. CLI11 2.1 converts with base 0 (strtoll), so
// "010" was 8 and "0x10" 16: `--port 08080` listened on an unexpected port or was refused as
// no number. A leading zero before another digit, or a 0x / 0b prefix, is refused.
const CLI::Validator& decimal();

// Adds decimal() to every integer flag of `app` and its subcommands, at any depth. main() calls
// it once every command has added its flags.
void require_decimal_integers(CLI::App& app);

}  // namespace prescale
