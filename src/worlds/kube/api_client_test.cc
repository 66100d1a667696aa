#include "worlds/kube/api_client.h"

#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <cstdlib>
#include <filesystem>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "http/json.h"
#include "http/router.h"
#include "http/server.h"
#include "http/test_util.h"
#include "support/subprocess.h"

namespace prescale::kube {
namespace {

using std::chrono::milliseconds;
using Subprocess = prescale::testing::Subprocess;
using TempDir = prescale::testing::TempDir;
using http::testing::ScriptedServer;

constexpr std::string_view kDeployments = "/apis/apps/v1/namespaces/shop/deployments/";

ApiConfig local_config(uint16_t port) {
  ApiConfig config;
  config.scheme = "http";
  config.host = "127.0.0.1";
  config.port = port;
  config.token = "secret-token";
  return config;
}

// A fake API server on the project's own http::Server: the Deployment "api" in the namespace
// "shop", and /status/{code} answering that status with the request's body. It keeps what it
// was sent.
class RecordingApiServer {
 public:
  struct Seen {
    std::string method, target, host, authorization, accept, user_agent, content_type, body;
  };

  explicit RecordingApiServer(http::ServerOptions options = {}) {
    options.threads = 1;
    router_.add(
        http::Method::kGet, std::string(kDeployments) + "{name}",
        [this](http::Request& req, http::Responder respond) {
          record(req);
          if (req.param("name") != "api") {
            respond(http::Response::json(404, R"({"kind":"Status","apiVersion":"v1",)"
                                              R"("status":"Failure","message":)"
                                              R"("deployments.apps \"web\" not found",)"
                                              R"("reason":"NotFound","code":404})"));
            return;
          }
          respond(http::json_response(200, {{"kind", "Deployment"}, {"spec", {{"replicas", 2}}}}));
        });
    router_.add(http::Method::kPatch, std::string(kDeployments) + "{name}",
                [this](http::Request& req, http::Responder respond) {
                  record(req);
                  auto patch = http::parse_json(req.body);
                  respond(http::json_response(
                      200, {{"kind", "Deployment"}, {"spec", patch ? (*patch)["spec"] : nullptr}}));
                });
    router_.add(http::Method::kDelete, std::string(kDeployments) + "{name}",
                [this](http::Request& req, http::Responder respond) {
                  record(req);
                  respond(http::json_response(200, {{"kind", "Status"}, {"status", "Success"}}));
                });
    router_.add(
        http::Method::kPatch, "/status/{code}", [](http::Request& req, http::Responder respond) {
          respond(http::Response::json(std::stoi(std::string(*req.param("code"))), req.body));
        });
    server_ = std::make_unique<http::Server>(options, router_.as_handler());
    start_result_ = server_->start();
  }

  bool started() const { return start_result_.has_value(); }
  uint16_t port() const { return server_->port(); }
  size_t connections() const { return server_->connections(); }
  std::vector<Seen> seen() const {
    std::lock_guard lock(mu_);
    return seen_;
  }

 private:
  void record(const http::Request& req) {
    auto field = [&](std::string_view name) {
      return std::string(req.headers.get(name).value_or("(none)"));
    };
    std::lock_guard lock(mu_);
    seen_.push_back(Seen{req.method_name, req.target, field("Host"), field("Authorization"),
                         field("Accept"), field("User-Agent"), field("Content-Type"), req.body});
  }

  http::Router router_;
  std::unique_ptr<http::Server> server_;
  Result<void> start_result_;
  mutable std::mutex mu_;
  std::vector<Seen> seen_;
};

constexpr std::string_view kOkResponse =
    "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 2\r\n\r\n{}";

TEST(ApiClientTest, GetSendsTheTokenAndReadsJson) {
  RecordingApiServer server;
  ASSERT_TRUE(server.started());
  ApiClient client(local_config(server.port()));
  auto deployment = client.get(std::string(kDeployments) + "api");
  ASSERT_TRUE(deployment.has_value()) << deployment.error().to_string();
  EXPECT_EQ((*deployment)["spec"]["replicas"], 2);
  const auto seen = server.seen();
  ASSERT_EQ(seen.size(), 1u);
  EXPECT_EQ(seen[0].method, "GET");
  EXPECT_EQ(seen[0].target, std::string(kDeployments) + "api");
  EXPECT_EQ(seen[0].host, "127.0.0.1:" + std::to_string(server.port()));
  EXPECT_EQ(seen[0].authorization, "Bearer secret-token");
  EXPECT_EQ(seen[0].accept, "application/json");
  EXPECT_TRUE(seen[0].user_agent.starts_with("prescale/")) << seen[0].user_agent;
}

TEST(ApiClientTest, TheTokenFileIsReadAgainEveryMinute) {
  RecordingApiServer server;
  ASSERT_TRUE(server.started());
  TempDir dir;
  prescale::testing::write_file(dir.file("token"), "second-token\n");
  ApiConfig config = local_config(server.port());
  config.token_file = dir.file("token");  // the token given was read from it just now
  ManualClock clock;
  ApiClient client(config, std::chrono::seconds(5), clock);
  auto authorization = [&] {
    EXPECT_TRUE(client.get(std::string(kDeployments) + "api").has_value());
    return server.seen().back().authorization;
  };
  EXPECT_EQ(authorization(), "Bearer secret-token");
  clock.advance(std::chrono::seconds(59));
  EXPECT_EQ(authorization(), "Bearer secret-token") << "not a minute yet";
  clock.advance(std::chrono::seconds(1));
  EXPECT_EQ(authorization(), "Bearer second-token") << "the kubelet renewed it";
  // A file being rewritten (empty for a moment), or gone: the token before it stays.
  prescale::testing::write_file(dir.file("token"), "");
  clock.advance(std::chrono::minutes(1));
  EXPECT_EQ(authorization(), "Bearer second-token");
  std::filesystem::remove(dir.file("token"));
  clock.advance(std::chrono::minutes(1));
  EXPECT_EQ(authorization(), "Bearer second-token");
}

TEST(ApiClientTest, NoTokenSendsNoAuthorization) {
  RecordingApiServer server;
  ASSERT_TRUE(server.started());
  ApiConfig config = local_config(server.port());
  config.token.clear();
  ApiClient client(config);
  ASSERT_TRUE(client.get(std::string(kDeployments) + "api").has_value());
  EXPECT_EQ(server.seen().at(0).authorization, "(none)");
}

TEST(ApiClientTest, MergePatchSendsAMergePatch) {
  RecordingApiServer server;
  ASSERT_TRUE(server.started());
  ApiClient client(local_config(server.port()));
  const nlohmann::json patch = {{"spec", {{"replicas", 5}}}};
  auto patched = client.merge_patch(std::string(kDeployments) + "api", patch);
  ASSERT_TRUE(patched.has_value()) << patched.error().to_string();
  EXPECT_EQ((*patched)["spec"]["replicas"], 5);
  const auto seen = server.seen();
  ASSERT_EQ(seen.size(), 1u);
  EXPECT_EQ(seen[0].method, "PATCH");
  EXPECT_EQ(seen[0].content_type, "application/merge-patch+json");
  EXPECT_EQ(seen[0].authorization, "Bearer secret-token");
  EXPECT_EQ(http::parse_json(seen[0].body).value_or(nullptr), patch);
}

TEST(ApiClientTest, RemoveSendsADelete) {
  RecordingApiServer server;
  ASSERT_TRUE(server.started());
  ApiClient client(local_config(server.port()));
  auto status = client.remove(std::string(kDeployments) + "api");
  ASSERT_TRUE(status.has_value()) << status.error().to_string();
  EXPECT_EQ((*status)["status"], "Success");
  EXPECT_EQ(server.seen().at(0).method, "DELETE");
}

TEST(ApiClientTest, NotFoundGivesTheStatusMessage) {
  RecordingApiServer server;
  ASSERT_TRUE(server.started());
  ApiClient client(local_config(server.port()));
  auto missing = client.get(std::string(kDeployments) + "web");
  ASSERT_FALSE(missing.has_value());
  EXPECT_EQ(missing.error().code, ErrorCode::kNotFound);
  EXPECT_EQ(missing.error().message,
            "GET /apis/apps/v1/namespaces/shop/deployments/web: 404 Not Found: "
            "deployments.apps \"web\" not found");
}

// What each refusal becomes, and that the message holds the body's start when it is no Status.
TEST(ApiClientTest, RefusalsMapToCodes) {
  RecordingApiServer server;
  ASSERT_TRUE(server.started());
  ApiClient client(local_config(server.port()));
  // The fake server answers /status/{code} with the request's body; a merge patch has one.
  auto refused = [&](int status, nlohmann::json body) {
    return client.merge_patch("/status/" + std::to_string(status), body);
  };
  const nlohmann::json forbidden = {
      {"kind", "Status"}, {"message", "deployments.apps is forbidden"}, {"code", 403}};
  auto r = refused(403, forbidden);
  ASSERT_FALSE(r.has_value());
  EXPECT_EQ(r.error().code, ErrorCode::kUnavailable);
  EXPECT_EQ(r.error().message, "PATCH /status/403: 403 Forbidden: deployments.apps is forbidden");
  EXPECT_EQ(refused(401, forbidden).error().code, ErrorCode::kUnavailable);
  EXPECT_EQ(refused(409, forbidden).error().code, ErrorCode::kInvalidArgument);
  EXPECT_EQ(refused(422, forbidden).error().code, ErrorCode::kInvalidArgument);
  EXPECT_EQ(refused(429, forbidden).error().code, ErrorCode::kUnavailable);

  r = refused(503, std::string(300, 'x'));  // a JSON string: no Status
  ASSERT_FALSE(r.has_value());
  EXPECT_EQ(r.error().code, ErrorCode::kUnavailable);
  EXPECT_EQ(r.error().message,
            "PATCH /status/503: 503 Service Unavailable: \"" + std::string(199, 'x'));

  r = client.get("relative/path");
  ASSERT_FALSE(r.has_value());
  EXPECT_EQ(r.error().code, ErrorCode::kInvalidArgument);
}

TEST(ApiClientTest, AnAnswerThatIsNotJsonIsAnError) {
  ScriptedServer server([](int fd, int) {
    while (ScriptedServer::read_request(fd)) {
      ScriptedServer::write(fd, "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello");
    }
  });
  ApiClient client(local_config(server.port()));
  auto r = client.get("/api");
  ASSERT_FALSE(r.has_value());
  EXPECT_EQ(r.error().code, ErrorCode::kUnavailable);
  EXPECT_NE(r.error().message.find("GET /api: the answer is not JSON"), std::string::npos)
      << r.error().message;
}

TEST(ApiClientTest, KeepsOneConnectionAcrossCalls) {
  ScriptedServer server([](int fd, int) {
    while (ScriptedServer::read_request(fd)) ScriptedServer::write(fd, kOkResponse);
  });
  ApiClient client(local_config(server.port()));
  for (int i = 0; i < 5; ++i) {
    auto r = client.get("/api");
    ASSERT_TRUE(r.has_value()) << r.error().to_string();
  }
  EXPECT_EQ(server.accepted(), 1);

  RecordingApiServer api;
  ASSERT_TRUE(api.started());
  ApiClient api_client(local_config(api.port()));
  for (int i = 0; i < 5; ++i) ASSERT_TRUE(api_client.get(std::string(kDeployments) + "api"));
  EXPECT_EQ(api.connections(), 1u);
}

// The server closes the kept connection while the client is idle (its idle timeout): the next
// call opens a new one.
TEST(ApiClientTest, ReconnectsAfterTheServerClosedAnIdleConnection) {
  http::ServerOptions options;
  options.idle_timeout = milliseconds(100);
  RecordingApiServer server(options);
  ASSERT_TRUE(server.started());
  ApiClient client(local_config(server.port()));
  ASSERT_TRUE(client.get(std::string(kDeployments) + "api").has_value());
  ASSERT_TRUE(
      prescale::testing::wait_for([&] { return server.connections() == 0; }, milliseconds(5000)));
  auto r = client.get(std::string(kDeployments) + "api");
  ASSERT_TRUE(r.has_value()) << r.error().to_string();
  EXPECT_EQ(server.seen().size(), 2u);
}

// The kept connection fails after the request was sent, before any answer (the server closed it
// as the request came): the call is sent once more on a new connection.
TEST(ApiClientTest, RetriesOnceOnANewConnectionWhenAKeptOneFails) {
  ScriptedServer server([](int fd, int index) {
    if (!ScriptedServer::read_request(fd)) return;
    ScriptedServer::write(fd, kOkResponse);
    if (index == 0) ScriptedServer::read_request(fd);  // the second request: closed unanswered
    while (index > 0 && ScriptedServer::read_request(fd)) ScriptedServer::write(fd, kOkResponse);
  });
  ApiClient client(local_config(server.port()));
  ASSERT_TRUE(client.get("/api").has_value());
  auto r = client.get("/api");
  ASSERT_TRUE(r.has_value()) << r.error().to_string();
  EXPECT_EQ(server.accepted(), 2);
}

// On a new connection there is no retry.
TEST(ApiClientTest, ANewConnectionClosedUnansweredIsUnavailable) {
  ScriptedServer server([](int fd, int) { ScriptedServer::read_request(fd); });
  ApiClient client(local_config(server.port()));
  auto r = client.get("/api");
  ASSERT_FALSE(r.has_value());
  EXPECT_EQ(r.error().code, ErrorCode::kUnavailable);
  EXPECT_NE(r.error().message.find("GET /api: connection to 127.0.0.1:"), std::string::npos)
      << r.error().message;
  EXPECT_EQ(server.accepted(), 1);
}

TEST(ApiClientTest, AServerThatNeverAnswersTimesOut) {
  ScriptedServer server([](int fd, int) {
    ScriptedServer::read_request(fd);
    ScriptedServer::read_request(fd);  // until the client gives up and closes
  });
  ApiClient client(local_config(server.port()), milliseconds(300));
  const auto start = std::chrono::steady_clock::now();
  auto r = client.get("/api");
  const auto took = std::chrono::steady_clock::now() - start;
  ASSERT_FALSE(r.has_value());
  EXPECT_EQ(r.error().code, ErrorCode::kTimeout);
  EXPECT_NE(r.error().message.find("within 300 ms"), std::string::npos) << r.error().message;
  EXPECT_GE(took, milliseconds(250));
  EXPECT_LT(took, milliseconds(2000));
}

TEST(ApiClientTest, ConnectionRefusedIsUnavailable) {
  ApiClient client(local_config(static_cast<uint16_t>(prescale::testing::free_port())));
  auto r = client.get("/api");
  ASSERT_FALSE(r.has_value());
  EXPECT_EQ(r.error().code, ErrorCode::kUnavailable);
  EXPECT_NE(r.error().message.find("refused"), std::string::npos) << r.error().message;
}

TEST(ApiClientTest, AnAnswerOverTheLimitIsRefused) {
  ScriptedServer server([](int fd, int) {
    ScriptedServer::read_request(fd);
    ScriptedServer::write(fd, "HTTP/1.1 200 OK\r\nContent-Length: 67108865\r\n\r\n{");
  });
  ApiClient client(local_config(server.port()));
  auto r = client.get("/api");
  ASSERT_FALSE(r.has_value());
  EXPECT_EQ(r.error().code, ErrorCode::kOutOfRange);
}

// An IPv6 host is written in brackets in the Host field.
TEST(ApiClientTest, AnIpv6HostIsBracketedInTheHostField) {
  http::ServerOptions options;
  options.address = "::1";
  RecordingApiServer server(options);
  if (!server.started()) GTEST_SKIP() << "no IPv6 loopback here";
  ApiConfig config = local_config(server.port());
  config.host = "::1";
  ApiClient client(config);
  auto r = client.get(std::string(kDeployments) + "api");
  ASSERT_TRUE(r.has_value()) << r.error().to_string();
  EXPECT_EQ(server.seen().at(0).host, "[::1]:" + std::to_string(server.port()));
}

// --- HTTPS, against Python's http.server behind its ssl module, with throwaway certificates.

// The full path of `name` on PATH; "" when it is not there.
std::string on_path(std::string_view name) {
  const char* path = std::getenv("PATH");
  std::stringstream dirs(path != nullptr ? path : "");
  for (std::string dir; std::getline(dirs, dir, ':');) {
    const std::string candidate = dir + "/" + std::string(name);
    if (::access(candidate.c_str(), X_OK) == 0) return candidate;
  }
  return "";
}

// Serves GET on one port per certificate (arguments: cert key [cert key...]) with keep-alive,
// answering {"path": ..., "connections": connections accepted so far}; prints the ports.
constexpr std::string_view kTlsServerPy = R"(
import http.server, json, ssl, sys, threading
connections = 0
class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    def setup(self):
        global connections
        connections += 1
        super().setup()
    def do_GET(self):
        body = json.dumps({"path": self.path, "connections": connections}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
    def log_message(self, *args):
        pass
ports = []
for cert, key in zip(sys.argv[1::2], sys.argv[2::2]):
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    server.socket = context.wrap_socket(server.socket, server_side=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    ports.append(str(server.server_address[1]))
print(" ".join(ports), flush=True)
threading.Event().wait()
)";

class ApiClientTlsTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    openssl_ = on_path("openssl");
    const std::string python = on_path("python3");
    if (openssl_.empty() || python.empty()) return;
    dir_ = new TempDir();
    ok_ = make_ca("ca") && make_ca("other-ca") &&
          make_server_cert("server", "ca", "IP:127.0.0.1,DNS:localhost") &&
          make_server_cert("elsewhere", "ca", "IP:127.0.0.2,DNS:elsewhere.example");
    if (!ok_) return;
    prescale::testing::write_file(dir_->file("server.py"), std::string(kTlsServerPy));
    server_ = new Subprocess(
        {python, dir_->file("server.py"), dir_->file("server.crt"), dir_->file("server.key"),
         dir_->file("elsewhere.crt"), dir_->file("elsewhere.key")},
        dir_->file("server.log"));
    ok_ = prescale::testing::wait_for([] { return server_->log().find('\n') != std::string::npos; },
                                      milliseconds(10000));
    std::istringstream ports(server_->log());
    ok_ = ok_ && static_cast<bool>(ports >> port_ >> elsewhere_port_);
  }

  static void TearDownTestSuite() {
    delete server_;  // kills and reaps it
    server_ = nullptr;
    delete dir_;
    dir_ = nullptr;
  }

  void SetUp() override {
    if (openssl_.empty()) GTEST_SKIP() << "the openssl command is not on PATH";
    if (dir_ == nullptr) GTEST_SKIP() << "python3 is not on PATH";
    ASSERT_TRUE(ok_) << "the certificates or the TLS server could not be made: "
                     << (server_ != nullptr ? server_->log() : std::string());
  }

  static ApiConfig tls_config(uint16_t port, const std::string& ca) {
    ApiConfig config = local_config(port);
    config.scheme = "https";
    config.ca_file = dir_->file(ca + ".crt");
    return config;
  }

  static bool run_openssl(std::vector<std::string> args) {
    args.insert(args.begin(), openssl_);
    Subprocess openssl(std::move(args), dir_->file("openssl.log"));
    return openssl.wait(milliseconds(20000)) == 0;
  }
  static bool make_ca(const std::string& name) {
    return run_openssl({"req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
                        "-nodes", "-keyout", dir_->file(name + ".key"), "-out",
                        dir_->file(name + ".crt"), "-days", "1", "-subj",
                        "/CN=prescale test " + name});
  }
  static bool make_server_cert(const std::string& name, const std::string& ca,
                               const std::string& alt_names) {
    prescale::testing::write_file(dir_->file(name + ".ext"), "subjectAltName=" + alt_names + "\n");
    return run_openssl({"req", "-new", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
                        "-nodes", "-keyout", dir_->file(name + ".key"), "-out",
                        dir_->file(name + ".csr"), "-subj", "/CN=prescale test " + name}) &&
           run_openssl({"x509", "-req", "-in", dir_->file(name + ".csr"), "-CA",
                        dir_->file(ca + ".crt"), "-CAkey", dir_->file(ca + ".key"), "-set_serial",
                        "2", "-days", "1", "-extfile", dir_->file(name + ".ext"), "-out",
                        dir_->file(name + ".crt")});
  }

  static inline std::string openssl_;
  static inline TempDir* dir_ = nullptr;
  static inline Subprocess* server_ = nullptr;
  static inline bool ok_ = false;
  static inline uint16_t port_ = 0;
  static inline uint16_t elsewhere_port_ = 0;
};

TEST_F(ApiClientTlsTest, VerifiesTheServerByItsCaAndKeepsTheConnection) {
  ApiClient client(tls_config(port_, "ca"));
  auto first = client.get("/api/v1/namespaces/shop/pods");
  ASSERT_TRUE(first.has_value()) << first.error().to_string();
  EXPECT_EQ((*first)["path"], "/api/v1/namespaces/shop/pods");
  const int opened = (*first)["connections"];
  for (int i = 0; i < 3; ++i) {
    auto again = client.get("/api");
    ASSERT_TRUE(again.has_value()) << again.error().to_string();
    EXPECT_EQ((*again)["connections"], opened);  // no connection opened since
  }
}

TEST_F(ApiClientTlsTest, ChecksAHostName) {
  ApiConfig config = tls_config(port_, "ca");
  config.host = "localhost";
  ApiClient client(config);
  auto r = client.get("/api");
  ASSERT_TRUE(r.has_value()) << r.error().to_string();

  config.port = elsewhere_port_;  // its certificate names elsewhere.example
  ApiClient elsewhere(config);
  r = elsewhere.get("/api");
  ASSERT_FALSE(r.has_value());
  EXPECT_EQ(r.error().code, ErrorCode::kUnavailable);
  EXPECT_NE(r.error().message.find("certificate verify failed: hostname mismatch"),
            std::string::npos)
      << r.error().message;
}

TEST_F(ApiClientTlsTest, AServerSignedByAnotherCaIsRefused) {
  ApiClient client(tls_config(port_, "other-ca"));
  auto r = client.get("/api");
  ASSERT_FALSE(r.has_value());
  EXPECT_EQ(r.error().code, ErrorCode::kUnavailable);
  EXPECT_NE(r.error().message.find("GET /api: TLS handshake with 127.0.0.1:" +
                                   std::to_string(port_) + " failed: certificate verify failed"),
            std::string::npos)
      << r.error().message;
}

TEST_F(ApiClientTlsTest, ACertificateForAnotherAddressIsRefused) {
  ApiClient client(tls_config(elsewhere_port_, "ca"));
  auto r = client.get("/api");
  ASSERT_FALSE(r.has_value());
  EXPECT_EQ(r.error().code, ErrorCode::kUnavailable);
  EXPECT_NE(r.error().message.find("certificate verify failed: IP address mismatch"),
            std::string::npos)
      << r.error().message;
}

TEST_F(ApiClientTlsTest, AMissingCaFileIsReported) {
  ApiClient client(tls_config(port_, "no-such-ca"));
  auto r = client.get("/api");
  ASSERT_FALSE(r.has_value());
  EXPECT_EQ(r.error().code, ErrorCode::kUnavailable);
  EXPECT_NE(
      r.error().message.find("cannot load the CA certificates in " + dir_->file("no-such-ca.crt")),
      std::string::npos)
      << r.error().message;
}

// --- in_cluster_config

// Sets (a value) or unsets (nullopt) an environment variable for the scope.
class ScopedEnv {
 public:
  ScopedEnv(const char* name, std::optional<std::string> value) : name_(name) {
    if (const char* old = std::getenv(name)) old_ = old;
    set(value);
  }
  ~ScopedEnv() { set(old_); }
  ScopedEnv(const ScopedEnv&) = delete;
  ScopedEnv& operator=(const ScopedEnv&) = delete;

 private:
  void set(const std::optional<std::string>& value) {
    if (value) {
      ::setenv(name_, value->c_str(), 1);
    } else {
      ::unsetenv(name_);
    }
  }
  const char* name_;
  std::optional<std::string> old_;
};

TEST(InClusterConfigTest, ReadsTheServiceAccount) {
  TempDir dir;
  prescale::testing::write_file(dir.file("token"), "eyJhbGciOi.token\n");
  prescale::testing::write_file(dir.file("ca.crt"), "-----BEGIN CERTIFICATE-----\n");
  prescale::testing::write_file(dir.file("namespace"), "shop\n");
  ScopedEnv host("KUBERNETES_SERVICE_HOST", "10.96.0.1");
  ScopedEnv port("KUBERNETES_SERVICE_PORT", "443");
  auto config = in_cluster_config(dir.path());
  ASSERT_TRUE(config.has_value()) << config.error().to_string();
  EXPECT_EQ(config->scheme, "https");
  EXPECT_EQ(config->host, "10.96.0.1");
  EXPECT_EQ(config->port, 443);
  EXPECT_EQ(config->token, "eyJhbGciOi.token");
  EXPECT_EQ(config->token_file, dir.file("token"));  // read again as the kubelet renews it
  EXPECT_EQ(config->ca_file, dir.file("ca.crt"));
  EXPECT_EQ(config->name_space, "shop");
}

TEST(InClusterConfigTest, AnIpv6HostAndNoCaOrNamespaceFile) {
  TempDir dir;
  prescale::testing::write_file(dir.file("token"), "t");
  ScopedEnv host("KUBERNETES_SERVICE_HOST", "fd00:10:96::1");
  ScopedEnv port("KUBERNETES_SERVICE_PORT", "6443");
  auto config = in_cluster_config(dir.path());
  ASSERT_TRUE(config.has_value()) << config.error().to_string();
  EXPECT_EQ(config->host, "fd00:10:96::1");
  EXPECT_EQ(config->port, 6443);
  EXPECT_EQ(config->ca_file, "");
  EXPECT_EQ(config->name_space, "default");
}

TEST(InClusterConfigTest, OutsideAPodIsAClearError) {
  TempDir dir;
  prescale::testing::write_file(dir.file("token"), "t");
  ScopedEnv host("KUBERNETES_SERVICE_HOST", std::nullopt);
  ScopedEnv port("KUBERNETES_SERVICE_PORT", "443");
  auto config = in_cluster_config(dir.path());
  ASSERT_FALSE(config.has_value());
  EXPECT_EQ(config.error().code, ErrorCode::kUnavailable);
  EXPECT_EQ(config.error().message,
            "not running in a Kubernetes pod: KUBERNETES_SERVICE_HOST and "
            "KUBERNETES_SERVICE_PORT are not set");
}

TEST(InClusterConfigTest, ABadPortOrNoTokenIsAnError) {
  TempDir dir;
  ScopedEnv host("KUBERNETES_SERVICE_HOST", "10.96.0.1");
  {
    ScopedEnv port("KUBERNETES_SERVICE_PORT", "https");
    auto config = in_cluster_config(dir.path());
    ASSERT_FALSE(config.has_value());
    EXPECT_EQ(config.error().code, ErrorCode::kInvalidArgument);
    EXPECT_NE(config.error().message.find("KUBERNETES_SERVICE_PORT"), std::string::npos);
  }
  ScopedEnv port("KUBERNETES_SERVICE_PORT", "443");
  auto config = in_cluster_config(dir.path());  // no token file
  ASSERT_FALSE(config.has_value());
  EXPECT_EQ(config.error().code, ErrorCode::kUnavailable);
  EXPECT_NE(config.error().message.find("token"), std::string::npos) << config.error().message;
}

// --- config_from_url

TEST(ConfigFromUrlTest, ReadsSchemeHostAndPort) {
  auto proxy = config_from_url("http://127.0.0.1:8001");
  ASSERT_TRUE(proxy.has_value()) << proxy.error().to_string();
  EXPECT_EQ(proxy->scheme, "http");
  EXPECT_EQ(proxy->host, "127.0.0.1");
  EXPECT_EQ(proxy->port, 8001);
  EXPECT_EQ(proxy->token, "");

  auto https = config_from_url("HTTPS://api.example.com/");
  ASSERT_TRUE(https.has_value()) << https.error().to_string();
  EXPECT_EQ(https->scheme, "https");
  EXPECT_EQ(https->host, "api.example.com");
  EXPECT_EQ(https->port, 443);

  EXPECT_EQ(config_from_url("http://localhost").value().port, 80);
  EXPECT_EQ(config_from_url("https://h:80").value().port, 80);
  auto v6 = config_from_url("https://[::1]:6443");
  ASSERT_TRUE(v6.has_value()) << v6.error().to_string();
  EXPECT_EQ(v6->host, "::1");
  EXPECT_EQ(v6->port, 6443);
}

TEST(ConfigFromUrlTest, SaysWhatIsWrong) {
  auto error_of = [](std::string_view url) {
    auto config = config_from_url(url);
    EXPECT_FALSE(config.has_value()) << url;
    if (config.has_value()) return std::string();
    EXPECT_EQ(config.error().code, ErrorCode::kInvalidArgument) << url;
    return config.error().message;
  };
  EXPECT_EQ(error_of("127.0.0.1:8001"),
            "API server URL \"127.0.0.1:8001\": must start with http:// or https://");
  EXPECT_NE(error_of("ftp://h").find("the scheme must be http or https"), std::string::npos);
  EXPECT_NE(error_of("https://").find("missing host"), std::string::npos);
  EXPECT_NE(error_of("https://h:0").find("port must be 1..65535"), std::string::npos);
  EXPECT_NE(error_of("https://h:70000").find("port must be 1..65535"), std::string::npos);
  EXPECT_NE(error_of("https://h/api").find("no path is allowed"), std::string::npos);
  EXPECT_NE(error_of("https://user@h").find("user information"), std::string::npos);
  EXPECT_NE(error_of("https://h?watch=1").find("no query"), std::string::npos);
}

}  // namespace
}  // namespace prescale::kube
