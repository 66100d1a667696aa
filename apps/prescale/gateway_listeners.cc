#include "gateway_listeners.h"

#include <algorithm>
#include <thread>

namespace prescale {

int inside_threads(int threads) {
  const int all = threads > 0 ? threads : static_cast<int>(std::thread::hardware_concurrency());
  return std::max(1, all / 2);
}

void GatewayListeners::stop(std::chrono::milliseconds grace) const {
  // Both of the gateway's listeners drain at once, within the one grace period.
  std::thread inside_drain;
  if (inside != nullptr) inside_drain = std::thread([this, grace] { inside->shutdown(grace); });
  listener.shutdown(grace);
  if (inside_drain.joinable()) inside_drain.join();
  if (beside != nullptr) beside->shutdown(std::chrono::milliseconds(0));
  gateway.stop_upkeep();
}

}  // namespace prescale
