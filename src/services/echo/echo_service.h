// `prescale serve echo`: a small example service on the runtime, used by tests, benchmarks and
// the first `make demo`.
//
//   GET  /                 "hello" (the body nginx returns in bench/http_hello.sh)
//   GET  /echo, POST /echo JSON describing the request: method, path, query, headers, body
//   GET  /delay/{ms}       answers 200 after `ms` milliseconds (at most 60000) without
//                          holding an I/O thread; for drain and timeout tests
//   GET  /busy/{ms}        answers after `ms` milliseconds (at most 10000) holding its I/O
//                          thread: with one thread, a replica of fixed capacity
//   GET  /status/{code}    answers with that status code (200..599)
//   GET  /leak/{kib}       keeps `kib` KiB (at most 65536, and 2 GiB in all) resident for the
//                          process's life: a memory leak, to try memory limits and the healer
#pragma once

#include <memory>
#include <mutex>
#include <vector>

#include "core/clock.h"
#include "runtime/service.h"

namespace prescale::services {

class EchoService final : public runtime::Service {
 public:
  explicit EchoService(Clock& clock = Clock::real());
  ~EchoService() override;

  std::string_view name() const override { return "echo"; }
  void register_routes(runtime::Routes& routes) override;

 private:
  class DelayQueue;
  Clock& clock_;
  std::unique_ptr<DelayQueue> delays_;
  std::mutex leak_mu_;
  std::vector<std::unique_ptr<char[]>> leaked_;  // GET /leak
  std::size_t leaked_bytes_ = 0;
};

}  // namespace prescale::services
