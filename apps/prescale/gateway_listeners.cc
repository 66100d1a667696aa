#include "gateway_listeners.h"

namespace prescale {

void GatewayListeners::stop(std::chrono::milliseconds grace) const {
  listener.shutdown(grace);
  if (beside != nullptr) beside->shutdown(std::chrono::milliseconds(0));
  gateway.stop_upkeep();
}

}  // namespace prescale
