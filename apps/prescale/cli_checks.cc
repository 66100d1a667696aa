#include "cli_checks.h"

#include <cmath>
#include <string>

namespace prescale {

const CLI::Validator& finite() {
  static const CLI::Validator check(
      [](std::string& text) -> std::string {
        double value = 0;
        // Text that is no number at all is left to the flag's own conversion, which names it.
        if (!CLI::detail::lexical_cast(text, value) || std::isfinite(value)) return {};
        return "Value " + text + " is not a finite number";
      },
      "FINITE", "FINITE");
  return check;
}

const CLI::Validator& non_negative() {
  static const CLI::Validator check(
      [](std::string& text) -> std::string {
        // strtoull, which CLI11 converts with, skips leading white space before the sign too.
        const size_t first = text.find_first_not_of(" \t\n\v\f\r");
        if (first == std::string::npos || text[first] != '-') return {};
        return "Value " + text + " is negative";
      },
      "NONNEGATIVE", "NONNEGATIVE");
  return check;
}

}  // namespace prescale
