// The model the forecast service serves, and its hot reload from a model directory: a
// VersionedModelStore (services/versioned_model_store.h, where the reload rules are) over the
// forecast-v<N>.json manifests and the forecast-v<N>.ubj boosters beside them (model_file.h): a
// version changes when either file does, so a manifest copied before its booster is loaded once
// the booster is there. A fit holds the shared_ptr it started with, so fits in flight finish on
// their booster and new ones get the new one. Without a directory, or before any manifest loads,
// the service forecasts with the method alone (version 0, kMethodVersion).
//
// Metrics (with a registry): prescale_model_info{service="forecast",version} is 1 for the version
// served and 0 for versions served before; prescale_forecast_reloads_total{result="loaded"|
// "failed"}.
//
// Thread safety: current() (one atomic load) may be called from any thread at any time;
// reload() and poll() serialise among themselves.
#pragma once

#include "services/forecast/model_file.h"
#include "services/versioned_model_store.h"

namespace prescale::services::forecast_service {

using ModelStoreOptions = VersionedModelStoreOptions;

// current() is never null: version 0 (no booster) while no file is loaded. start_polling()
// starts the background poller (with background_poll and a poll interval).
class ModelStore : public VersionedModelStore<ForecastModel> {
 public:
  explicit ModelStore(ModelStoreOptions options);
};

}  // namespace prescale::services::forecast_service
