# Active health checks of upstream hosts (docs/gateway.md).
target_sources(prescale_gateway PRIVATE ${CMAKE_CURRENT_LIST_DIR}/health_checker.cc)
prescale_test(gateway_health_checker_test SOURCES ${CMAKE_CURRENT_LIST_DIR}/health_checker_test.cc
  LIBS prescale_gateway)
