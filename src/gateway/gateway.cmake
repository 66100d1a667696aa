# The gateway as a whole (docs/gateway.md): clusters of upstream endpoints with their resilience
# state, and the request handler that routes, rate-limits, traces and forwards.
target_sources(prescale_gateway PRIVATE
  ${CMAKE_CURRENT_LIST_DIR}/cluster.cc
  ${CMAKE_CURRENT_LIST_DIR}/gateway.cc
  ${CMAKE_CURRENT_LIST_DIR}/internal/gateway_config.cc
  ${CMAKE_CURRENT_LIST_DIR}/internal/gateway_routing.cc
  ${CMAKE_CURRENT_LIST_DIR}/internal/gateway_metrics.cc
  ${CMAKE_CURRENT_LIST_DIR}/internal/grpc_reply.cc
)

prescale_test(gateway_cluster_test
  SOURCES ${CMAKE_CURRENT_LIST_DIR}/cluster_test.cc LIBS prescale_gateway)
prescale_test(gateway_test
  SOURCES ${CMAKE_CURRENT_LIST_DIR}/gateway_test.cc
  LIBS prescale_gateway prescale_http_testing)
prescale_test(gateway_grpc_reply_test
  SOURCES ${CMAKE_CURRENT_LIST_DIR}/grpc_reply_test.cc LIBS prescale_gateway)
