// How the healing code's messages say numbers and durations, so that a log line about an incident
// and one about a warning read alike.
#pragma once

#include <string>

#include "core/clock.h"

namespace prescale::healing {

// `format` (printf's) with up to three numbers.
std::string printed(const char* format, double a, double b = 0, double c = 0);
// "40 s", "6 min", "2 h 5 min": how long, to the second below 2 minutes, else rounded to minutes.
std::string spoken(Clock::Duration d);
// "138 ms", "45.2 ms", "3.07 ms": a time in seconds, in milliseconds to three figures.
std::string millis(double seconds);

}  // namespace prescale::healing
