#include "services/fraud/model_store.h"

#include <fmt/format.h>

#include <utility>

#include "services/fraud/model_file.h"
#include "services/fraud/rules.h"

namespace prescale::fraud {
namespace {

services::ModelFiles<Model> fraud_model_files() {
  return {
      .service = "fraud",
      .file_prefix = "fraud-v",
      .file_suffix = ".json",
      .reloads_metric = "prescale_fraud_model_reloads_total",
      .reloads_help = "Model files the fraud service tried to load, by result",
      .file_noun = "model file",
      .none = nullptr,  // the service scores with its rules
      .load = load_model_file,
      .version_label =
          [](const Model* model) {
            return model != nullptr ? model->name() : std::string(kRulesVersion);
          },
      .describe =
          [](const Model& model) {
            return fmt::format("{} ({}, threshold {:.4f})", model.name(),
                               to_string(model.info().kind), model.info().threshold);
          },
  };
}

}  // namespace

ModelStore::ModelStore(ModelStoreOptions options)
    : VersionedModelStore(fraud_model_files(), {.directory = std::move(options.directory),
                                                .clock = options.clock,
                                                .poll_interval = options.poll_period,
                                                .registry = options.registry}) {}

}  // namespace prescale::fraud
