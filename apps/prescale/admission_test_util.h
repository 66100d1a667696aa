// What the admission tests (learned_admission_test.cc, admission_feed_test.cc) share.
#pragma once

#include <chrono>
#include <string>

#include "core/config.h"

namespace prescale::testing {

// A service of two workers per replica with an admission limit from `capacity_rps` and `limit`
// (its queue_limit; 0: none).
inline ServiceConfig admitted_service(std::string name, double capacity_rps,
                                      std::chrono::milliseconds limit) {
  ServiceConfig s;
  s.name = std::move(name);
  s.concurrency = 2;
  s.capacity_rps = capacity_rps;
  s.queue_limit = limit;
  return s;
}

}  // namespace prescale::testing
