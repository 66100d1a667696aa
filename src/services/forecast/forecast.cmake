# `prescale serve forecast` (docs/services/forecast.md): forecasts as a service.
add_library(prescale_services_forecast
  forecast/forecast_service.cc
  forecast/model_file.cc
  forecast/model_store.cc
  forecast/series_input.cc
  forecast/series_store.cc
)
target_link_libraries(prescale_services_forecast PUBLIC prescale_runtime prescale_forecast
  prescale_http prescale_telemetry prescale_services_model_store
  PRIVATE spdlog::spdlog prescale_warnings)

prescale_test(services_forecast_test
  SOURCES forecast/series_input_test.cc forecast/series_store_test.cc
          forecast/forecast_service_test.cc forecast/model_file_test.cc
          forecast/model_store_test.cc
  LIBS prescale_services_forecast prescale_http)

# `prescale train forecast` (apps/prescale/train_forecast.cc), for the prescale binary and its test.
add_library(prescale_forecast_cli ${PROJECT_SOURCE_DIR}/apps/prescale/train_forecast.cc)
target_include_directories(prescale_forecast_cli PUBLIC ${PROJECT_SOURCE_DIR}/apps/prescale)
target_link_libraries(prescale_forecast_cli
  PUBLIC prescale_services_forecast CLI11::CLI11
  PRIVATE prescale_cli_checks prescale_command_util nlohmann_json::nlohmann_json
          prescale_warnings)

prescale_test(services_forecast_cli_test
  SOURCES forecast/forecast_cli_test.cc
  LIBS prescale_forecast_cli)
