# Routing: which service a request goes to (RouteTable) and the replicas of each service
# (EndpointTable).
target_sources(prescale_gateway PRIVATE
  ${CMAKE_CURRENT_LIST_DIR}/route_table.cc
  ${CMAKE_CURRENT_LIST_DIR}/endpoint_table.cc
  ${CMAKE_CURRENT_LIST_DIR}/dns_upstreams.cc
)

prescale_test(gateway_route_table_test
  SOURCES ${CMAKE_CURRENT_LIST_DIR}/route_table_test.cc LIBS prescale_gateway)
prescale_test(gateway_endpoint_table_test
  SOURCES ${CMAKE_CURRENT_LIST_DIR}/endpoint_table_test.cc LIBS prescale_gateway)
prescale_test(gateway_dns_upstreams_test
  SOURCES ${CMAKE_CURRENT_LIST_DIR}/dns_upstreams_test.cc LIBS prescale_gateway)
