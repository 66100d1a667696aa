# `prescale serve fraud` (docs/services/fraud.md): card-fraud scoring with gradient-boosted trees
# (XGBoost, compiled into a flat evaluator) and a logistic-regression baseline; `prescale eval
# fraud` and `prescale train fraud` use the same library.
add_library(prescale_services_fraud
  fraud/fraud_service.cc
  fraud/gbt_training.cc
  fraud/internal/xgboost_booster.cc
  fraud/logistic_regression.cc
  fraud/model.cc
  fraud/model_file.cc
  fraud/model_store.cc
  fraud/ranking_metrics.cc
  fraud/rules.cc
  fraud/training.cc
  fraud/transaction_json.cc
  fraud/transactions.cc
  fraud/tree_ensemble.cc
)
target_link_libraries(prescale_services_fraud
  PUBLIC prescale_runtime prescale_http prescale_telemetry prescale_core prescale_forecast
  prescale_services_model_store
  PRIVATE prescale::xgboost spdlog::spdlog prescale_warnings)

# Unit tests; those on the real data set (../shared/data/fraud) skip when it is absent.
prescale_test(services_fraud_test
  SOURCES fraud/transactions_test.cc fraud/ranking_metrics_test.cc
          fraud/logistic_regression_test.cc fraud/tree_ensemble_test.cc
          fraud/model_file_test.cc fraud/model_store_test.cc fraud/training_test.cc
          fraud/transaction_json_test.cc fraud/fraud_service_test.cc fraud/fraud_test_util.cc
  LIBS prescale_services_fraud prescale_http prescale::xgboost)

# The CLI parts (apps/prescale/eval_fraud.cc, train_fraud.cc) are compiled and run here until
# the prescale binary wires them in.
prescale_test(services_fraud_cli_test
  SOURCES fraud/fraud_cli_test.cc fraud/fraud_test_util.cc
          ${PROJECT_SOURCE_DIR}/apps/prescale/eval_fraud.cc
          ${PROJECT_SOURCE_DIR}/apps/prescale/train_fraud.cc
  LIBS prescale_services_fraud prescale_command_util prescale_cli_checks CLI11::CLI11)
target_include_directories(services_fraud_cli_test PRIVATE ${PROJECT_SOURCE_DIR}/apps/prescale)

# One-transaction scoring latency against XGBoost's own in-place prediction (bench/fraud_bench.cc).
add_executable(fraud_bench ${PROJECT_SOURCE_DIR}/bench/fraud_bench.cc)
target_link_libraries(fraud_bench PRIVATE prescale_services_fraud benchmark::benchmark
  prescale_warnings)
