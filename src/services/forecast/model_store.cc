#include "services/forecast/model_store.h"

#include <fmt/format.h>

#include <utility>

namespace prescale::services::forecast_service {
namespace {

ModelFiles<ForecastModel> forecast_model_files() {
  return {
      .service = "forecast",
      .file_prefix = "forecast-v",
      .file_suffix = ".json",
      .data_file_suffix = ".ubj",  // the booster: a version changes when it does
      .reloads_metric = "prescale_forecast_reloads_total",
      .reloads_help = "Model versions the forecast service tried to load, by result",
      .file_noun = "model",
      .none = std::make_shared<const ForecastModel>(),
      .load = load_model,
      .version_label = [](const ForecastModel* model) { return model->version_label(); },
      .describe =
          [](const ForecastModel& model) {
            return fmt::format("model {} ({} training rows)", model.version_label(),
                               model.booster->training_rows());
          },
  };
}

}  // namespace

ModelStore::ModelStore(ModelStoreOptions options)
    : VersionedModelStore(forecast_model_files(), std::move(options)) {}

}  // namespace prescale::services::forecast_service
