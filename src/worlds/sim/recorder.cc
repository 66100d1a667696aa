#include "worlds/sim/recorder.h"

#include <utility>

namespace prescale::sim {

SimRecorder::SimRecorder(std::vector<ServiceInfo> services, Clock::Duration interval,
                         Clock::TimePoint start)
    : services_(std::move(services)),
      interval_(interval),
      start_(start),
      records_(services_.size()),
      ready_changes_(services_.size()) {}

int SimRecorder::index_of(std::string_view service) const {
  for (size_t i = 0; i < services_.size(); ++i) {
    if (services_[i].name == service) return static_cast<int>(i);
  }
  return -1;
}

void SimRecorder::reserve(size_t intervals) {
  for (auto& r : records_) r.reserve(intervals);
}

void SimRecorder::add_ready_change(size_t service, double at_seconds, int ready) {
  auto& log = ready_changes_[service];
  if (!log.empty() && log.back().ready == ready) return;
  if (!log.empty() && log.back().at_seconds == at_seconds) {
    log.back().ready = ready;
    return;
  }
  log.push_back(ReadyChange{at_seconds, ready});
}

}  // namespace prescale::sim
