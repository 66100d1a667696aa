// One applied scaling change and why: what the controller records (Controller::events()), the
// simulator keeps per run and the dashboard and logs show.
#pragma once

#include <string>

#include "core/clock.h"

namespace prescale::control {

struct Event {
  Clock::TimePoint time;
  std::string service;
  int from_replicas = 0;
  int to_replicas = 0;
  std::string reason;
};

}  // namespace prescale::control
