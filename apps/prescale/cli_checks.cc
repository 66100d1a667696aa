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

const CLI::Validator& positive() {
  static const CLI::Validator check(
      [](std::string& text) -> std::string {
        double value = 0;
        if (!CLI::detail::lexical_cast(text, value) || value > 0) return {};
        return "Value " + text + " is not a number > 0";
      },
      "POSITIVE", "POSITIVE");
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

const CLI::Validator& decimal() {
  static const CLI::Validator check(
      [](std::string& text) -> std::string {
        size_t i = text.find_first_not_of(" \t\n\v\f\r");  // strtoll skips it too
        if (i == std::string::npos) return {};
        if (text[i] == '+' || text[i] == '-') ++i;
        // "0" alone is decimal; "08", "0x1f", "0b1" are not.
        if (i + 1 >= text.size() || text[i] != '0') return {};
        return "Value " + text + " is not a decimal number (no leading zero, no 0x)";
      },
      "", "DECIMAL");
  return check;
}

void require_decimal_integers(CLI::App& app) {
  for (CLI::Option* option : app.get_options()) {
    // The type's name, then ":" and each check's description ("INT:INT in [0 - 65535]").
    const std::string type = option->get_type_name();
    const std::string value_type = type.substr(0, type.find(':'));
    if (value_type == "INT" || value_type == "UINT") option->check(decimal());
  }
  for (CLI::App* sub : app.get_subcommands([](CLI::App*) { return true; })) {
    require_decimal_integers(*sub);
  }
}

}  // namespace prescale
