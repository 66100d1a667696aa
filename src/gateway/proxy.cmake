# The data path (docs/gateway.md): upstream connection pools on the server's I/O threads and
# the proxy: its routes and public API (proxy.cc), its state per I/O thread, its attempt loop and
# the request heads it sends upstream (internal/). Tests run real servers on port 0.
target_sources(prescale_gateway PRIVATE
  ${CMAKE_CURRENT_LIST_DIR}/upstream_pool.cc
  ${CMAKE_CURRENT_LIST_DIR}/internal/h2_upstream.cc
  ${CMAKE_CURRENT_LIST_DIR}/proxy.cc
  ${CMAKE_CURRENT_LIST_DIR}/internal/proxy_thread.cc
  ${CMAKE_CURRENT_LIST_DIR}/internal/proxy_attempt.cc
  ${CMAKE_CURRENT_LIST_DIR}/internal/upstream_head.cc
)
# GCC's -Wnull-dereference fires inside inlined Asio internals (see src/http/CMakeLists.txt).
set_source_files_properties(
  ${CMAKE_CURRENT_LIST_DIR}/upstream_pool.cc
  ${CMAKE_CURRENT_LIST_DIR}/internal/h2_upstream.cc
  ${CMAKE_CURRENT_LIST_DIR}/proxy.cc
  ${CMAKE_CURRENT_LIST_DIR}/internal/proxy_thread.cc
  ${CMAKE_CURRENT_LIST_DIR}/internal/proxy_attempt.cc
  PROPERTIES COMPILE_OPTIONS "-Wno-null-dereference")

prescale_test(gateway_proxy_test
  SOURCES ${CMAKE_CURRENT_LIST_DIR}/proxy_test.cc ${CMAKE_CURRENT_LIST_DIR}/proxy_test_util.cc
  LIBS prescale_gateway prescale_http_testing)

prescale_test(gateway_h2_upstream_test
  SOURCES ${CMAKE_CURRENT_LIST_DIR}/h2_upstream_test.cc
  LIBS prescale_gateway prescale_http_testing)
