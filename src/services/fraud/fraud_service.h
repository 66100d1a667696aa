// `prescale serve fraud`: card-fraud scoring on the service runtime.
//
//   POST /v1/score        one transaction → fraud probability, decision, top features
//   POST /v1/score:batch  {"transactions": [...]} (at most max_batch) → results in order
//   GET  /v1/model        the model served: version, kind, threshold, training data, metrics
//
// Scores come from the newest model file in the model directory (fraud-v<N>.json, hot-reloaded:
// fraud/model_store.h), or from fixed rules flagged "fallback": true while no model is loaded.
// Request and response fields, limits and errors: docs/services/fraud.md, docs/api/fraud.yaml.
// Scoring takes about a microsecond per transaction, so handlers answer on the I/O thread.
//
// Thread safety: handlers may run on any I/O thread at once.
#pragma once

#include <chrono>
#include <cstddef>
#include <memory>
#include <optional>
#include <string>

#include "core/clock.h"
#include "core/result.h"
#include "runtime/service.h"
#include "services/fraud/model_store.h"

namespace prescale::telemetry {
class Registry;
}

namespace prescale::services {

struct FraudServiceOptions {
  // Where fraud-v<N>.json files are (`prescale train fraud` writes them); empty: rules only.
  std::string model_dir = "models";
  // How often the directory is checked for a new model (on `clock`); 0: only at start.
  std::chrono::milliseconds poll_period{5000};
  // Replaces the model file's threshold on fraud_probability (a value in (0, 1)).
  std::optional<double> threshold;
  size_t max_batch = 1000;  // transactions per /v1/score:batch request
  Clock* clock = &Clock::real();
  // Where prescale_model_info and the service's counters go (the runtime's registry).
  telemetry::Registry* registry = nullptr;
};

class FraudService final : public runtime::Service {
 public:
  // Loads the newest model file (a failure is logged; the rules serve meanwhile) and starts the
  // watcher.
  explicit FraudService(FraudServiceOptions options = {});
  ~FraudService() override;

  std::string_view name() const override { return "fraud"; }
  void register_routes(runtime::Routes& routes) override;
  void on_drain() override;  // stops the watcher

  fraud::ModelStore& models() { return *store_; }

 private:
  struct Metrics;
  FraudServiceOptions options_;
  std::unique_ptr<fraud::ModelStore> store_;
  std::unique_ptr<Metrics> metrics_;
};

// The service for `prescale serve fraud`; kInvalidArgument for an option out of range
// (threshold outside (0, 1), max_batch 0).
Result<std::unique_ptr<runtime::Service>> make_fraud_service(FraudServiceOptions options);

}  // namespace prescale::services
