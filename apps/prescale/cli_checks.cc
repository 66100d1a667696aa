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

}  // namespace prescale
