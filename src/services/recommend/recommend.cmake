# `prescale serve recommend` (docs/services/recommend.md): implicit-feedback recommendations
# (TopPop, ItemKNN, implicit ALS, EASE), their offline evaluation and versioned model files.
find_package(Eigen3 3.3 REQUIRED NO_MODULE)

add_library(prescale_services_recommend
  recommend/interactions.cc
  recommend/evaluate.cc
  recommend/model.cc
  recommend/model_file.cc
  recommend/recommend_routes.cc
  recommend/recommend_service.cc
  recommend/user_store.cc
  recommend/internal/als.cc
  recommend/internal/ease.cc
  recommend/internal/item_knn.cc
  recommend/internal/matrix.cc
  recommend/internal/model_codec.cc
)
target_link_libraries(prescale_services_recommend
  PUBLIC prescale_runtime prescale_core Eigen3::Eigen
  PRIVATE prescale_forecast spdlog::spdlog prescale_warnings)

# The `prescale eval recommend` and `prescale train recommend` commands, for the prescale binary
# (apps/prescale/main.cc constructs them; link this library into `prescale`).
add_library(prescale_recommend_cli
  ${PROJECT_SOURCE_DIR}/apps/prescale/eval_recommend.cc
  ${PROJECT_SOURCE_DIR}/apps/prescale/train_recommend.cc
)
target_include_directories(prescale_recommend_cli PUBLIC ${PROJECT_SOURCE_DIR}/apps/prescale)
target_link_libraries(prescale_recommend_cli
  PUBLIC prescale_services_recommend CLI11::CLI11
  PRIVATE prescale_command_util prescale_cli_checks nlohmann_json::nlohmann_json prescale_warnings)

# In-process recommend() and fold-in latency (docs/services/recommend.md, "Performance").
add_executable(recommend_bench ${PROJECT_SOURCE_DIR}/bench/recommend_bench.cc)
target_link_libraries(recommend_bench PRIVATE prescale_services_recommend benchmark::benchmark
                      prescale_warnings)

prescale_test(services_recommend_test
  SOURCES recommend/interactions_test.cc recommend/internal/algorithms_test.cc
          recommend/model_test.cc recommend/evaluate_test.cc recommend/model_file_test.cc
          recommend/user_store_test.cc
  LIBS prescale_services_recommend)

prescale_test(services_recommend_service_test
  SOURCES recommend/recommend_service_test.cc recommend/recommend_cli_test.cc
  LIBS prescale_services_recommend prescale_recommend_cli prescale_http)
