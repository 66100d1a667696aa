// The model the fraud service serves, and its hot reload from a model directory: a
// VersionedModelStore (services/versioned_model_store.h, where the reload rules are) over the
// fraud-v<N>.json files (model_file.h). Requests already scoring keep the model they started
// with, new ones get the new model, none fails. start_watching() runs reload() every poll period
// of the injected Clock on a thread of its own.
//
// Metrics (when a registry is given): prescale_model_info{service="fraud",version} is 1 for the
// version served (rules-v1 while no model is loaded) and 0 for versions served before;
// prescale_fraud_model_reloads_total{result="loaded"|"failed"}.
//
// Thread safety: current() (one atomic shared_ptr load) may be called from any thread at any time;
// reload(), install() and the watcher serialise among themselves.
#pragma once

#include <chrono>
#include <string>

#include "core/clock.h"
#include "services/fraud/model.h"
#include "services/versioned_model_store.h"

namespace prescale::fraud {

struct ModelStoreOptions {
  std::string directory;  // empty: no files; models only through install()
  Clock* clock = &Clock::real();
  std::chrono::milliseconds poll_period{5000};  // for start_watching()
  telemetry::Registry* registry = nullptr;      // where the metrics above go; none when null
};

// current() is null while no model is loaded (the service then uses its rules).
class ModelStore : public services::VersionedModelStore<Model> {
 public:
  explicit ModelStore(ModelStoreOptions options);

  // Starts (once) the thread that calls reload() every poll period; stop_watching() or the
  // destructor ends it.
  void start_watching() { start_polling(); }
  void stop_watching() { stop_polling(); }
};

}  // namespace prescale::fraud
