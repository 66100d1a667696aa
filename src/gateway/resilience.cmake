# Resilience primitives of the gateway (docs/gateway-resilience.md): peak-EWMA latency, load
# balancing, circuit breaking, outlier detection, retries and rate limiting. Pure: no I/O.
target_sources(prescale_gateway PRIVATE
  ${CMAKE_CURRENT_LIST_DIR}/ewma.cc
  ${CMAKE_CURRENT_LIST_DIR}/circuit_breaker.cc
  ${CMAKE_CURRENT_LIST_DIR}/outlier_detector.cc
  ${CMAKE_CURRENT_LIST_DIR}/balancer.cc
  ${CMAKE_CURRENT_LIST_DIR}/retry.cc
  ${CMAKE_CURRENT_LIST_DIR}/rate_limiter.cc
)

foreach(part ewma circuit_breaker outlier_detector balancer retry rate_limiter)
  prescale_test(gateway_${part}_test SOURCES ${CMAKE_CURRENT_LIST_DIR}/${part}_test.cc
    LIBS prescale_gateway)
endforeach()
