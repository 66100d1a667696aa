#include "healing/wording.h"

#include <algorithm>
#include <cstdio>

namespace prescale::healing {

std::string printed(const char* format, double a, double b, double c) {
  char buf[96];
  std::snprintf(buf, sizeof(buf), format, a, b, c);
  return buf;
}

std::string spoken(Clock::Duration d) {
  const auto s = std::chrono::duration_cast<std::chrono::seconds>(d).count();
  if (s < 120) return std::to_string(std::max<long long>(s, 0)) + " s";
  const auto min = (s + 30) / 60;
  if (min < 120) return std::to_string(min) + " min";
  return std::to_string(min / 60) + " h " + std::to_string(min % 60) + " min";
}

std::string millis(double seconds) {
  const double ms = 1000 * seconds;
  if (ms >= 100) return printed("%.0f ms", ms);
  return printed(ms >= 10 ? "%.1f ms" : "%.2f ms", ms);
}

}  // namespace prescale::healing
