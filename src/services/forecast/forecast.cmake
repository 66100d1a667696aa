# `prescale serve forecast` (docs/services/forecast.md): forecasts as a service.
add_library(prescale_services_forecast
  forecast/forecast_service.cc
  forecast/model_file.cc
  forecast/model_store.cc
  forecast/series_input.cc
  forecast/series_store.cc
)
target_link_libraries(prescale_services_forecast PUBLIC prescale_runtime prescale_forecast
  prescale_http prescale_telemetry PRIVATE spdlog::spdlog prescale_warnings)

prescale_test(services_forecast_test
  SOURCES forecast/series_input_test.cc forecast/series_store_test.cc
          forecast/forecast_service_test.cc forecast/model_file_test.cc
          forecast/model_store_test.cc
  LIBS prescale_services_forecast prescale_http)
