#include "gateway_listeners.h"

#include <algorithm>
#include <thread>

#include "core/clock.h"

namespace prescale {

int inside_threads(int threads) {
  const int all = threads > 0 ? threads : static_cast<int>(std::thread::hardware_concurrency());
  return std::max(1, all / 2);
}

void GatewayListeners::stop(std::chrono::milliseconds grace) const {
  // The public listener first: its requests in flight may call other services through the inside
  // one, which serves on meanwhile and then drains in what is left of the one grace period.
  const Clock::TimePoint start = Clock::real().now();
  listener.shutdown(grace);
  if (inside != nullptr) {
    const auto spent =
        std::chrono::duration_cast<std::chrono::milliseconds>(Clock::real().now() - start);
    inside->shutdown(std::max(std::chrono::milliseconds(0), grace - spent));
  }
  if (beside != nullptr) beside->shutdown(std::chrono::milliseconds(0));
  gateway.stop_upkeep();
}

}  // namespace prescale
