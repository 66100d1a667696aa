#include "worlds/kube/manifests.h"

#include <gtest/gtest.h>
#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <fstream>
#include <map>
#include <regex>
#include <sstream>
#include <string>
#include <vector>

namespace prescale::kube {
namespace {

using Json = nlohmann::ordered_json;

constexpr const char* kShop = R"(version: 1
services:
  - name: checkout
    kind: command
    image: registry.example.com/shop/checkout:1.4
    command: [shop-checkout, --port, "{port}", "--listen=0.0.0.0:{port}"]
    env: {WORK_MS: "20", MODE: "on", PRESCALE_GATEWAY_URL: "http://elsewhere"}
    replicas: {min: 1, max: 8, initial: 2}
    memory_limit: 128Mi
    readiness_path: /ready
  - name: recommend
    kind: builtin/recommend
    model_dir: models/recommend
    liveness: {enabled: false}
  - name: forecast
    kind: builtin/forecast
    image: registry.example.com/prescale-with-models:7
    model_dir: /opt/models/forecast
    liveness: {path: /alive, interval: 2500ms, timeout: 300ms, failure_threshold: 4}
gateway:
  health_check: {interval: 2s, timeout: 500ms, unhealthy_threshold: 2}
  routes:
    - {match: {path_prefix: /v1/checkout}, service: checkout}
)";

ManifestOptions options(std::string text = kShop) {
  ManifestOptions o;
  o.image = "registry.example.com/prescale:0.9";
  o.config_text = std::move(text);
  o.config_name = "shop.yaml";
  return o;
}

std::vector<Json> render(const std::string& text, ManifestOptions o) {
  auto config = load_config_string(text, "shop.yaml");
  EXPECT_TRUE(config) << config.error().message;
  if (!config) return {};
  o.config_text = text;
  auto objects = kubernetes_objects(*config, o);
  EXPECT_TRUE(objects) << objects.error().message;
  return objects ? *objects : std::vector<Json>{};
}

std::string render_error(const std::string& text) {
  auto config = load_config_string(text, "shop.yaml");
  EXPECT_TRUE(config) << config.error().message;
  if (!config) return "";
  auto objects = kubernetes_objects(*config, options(text));
  EXPECT_FALSE(objects);
  return objects ? "" : objects.error().message;
}

const Json& find(const std::vector<Json>& objects, std::string_view kind, std::string_view name) {
  for (const Json& o : objects) {
    if (o["kind"] == kind && o["metadata"]["name"] == name) return o;
  }
  ADD_FAILURE() << "no " << kind << " " << name;
  static const Json kNone = Json::object();
  return kNone;
}

const Json& container_of(const std::vector<Json>& objects, std::string_view name) {
  return find(objects, "Deployment", name)["spec"]["template"]["spec"]["containers"][0];
}

// A YAML node as JSON under YAML 1.2's core schema: a quoted scalar is a string; a plain one is a
// number, boolean or null when it reads as one, else a string.
Json from_yaml(const YAML::Node& n) {
  if (n.IsMap()) {
    Json j = Json::object();
    for (const auto& kv : n) j[kv.first.as<std::string>()] = from_yaml(kv.second);
    return j;
  }
  if (n.IsSequence()) {
    Json j = Json::array();
    for (const auto& item : n) j.push_back(from_yaml(item));
    return j;
  }
  if (n.IsNull()) return nullptr;
  const std::string s = n.Scalar();
  if (n.Tag() == "!") return s;  // quoted or a block scalar
  if (std::regex_match(s, std::regex("[-+]?[0-9]+"))) return std::stoll(s);
  if (std::regex_match(s, std::regex("[-+]?(\\.[0-9]+|[0-9]+(\\.[0-9]*)?)([eE][-+]?[0-9]+)?"))) {
    return std::stod(s);
  }
  if (s == "true" || s == "True" || s == "TRUE") return true;
  if (s == "false" || s == "False" || s == "FALSE") return false;
  if (s == "null" || s == "Null" || s == "NULL" || s == "~") return nullptr;
  return s;
}

TEST(KubeManifests, TheYamlStreamReadsBackAsTheObjects) {
  const auto objects = render(kShop, options());
  // The ConfigMap; a Service, Deployment and PodDisruptionBudget each, and the gateway's; the
  // controller's ServiceAccount, Role, RoleBinding, Service and Deployment.
  ASSERT_EQ(objects.size(), 18u);
  const std::vector<YAML::Node> docs = YAML::LoadAll(to_yaml_stream(objects));
  ASSERT_EQ(docs.size(), objects.size());
  for (size_t i = 0; i < docs.size(); ++i) {
    EXPECT_EQ(from_yaml(docs[i]).dump(), Json::parse(objects[i].dump()).dump()) << i;
  }
}

TEST(KubeManifests, StringsThatYamlWouldReadAsOtherTypesAreQuoted) {
  Json o = {{"kind", "Test"},
            {"values",
             {"8080",
              "25%",
              "true",
              "no",
              "On",
              "y",
              "null",
              "~",
              "",
              "1e3",
              "0x1F",
              "12:30",
              "-dash",
              "a: b",
              "a #b",
              "colon:",
              "tab\tin",
              "quote\"d",
              "back\\slash",
              "é",
              "/readyz",
              "apps/v1",
              "checkout=checkout:8080",
              ".inf",
              "*star",
              "&anchor",
              "!tag",
              "[x]",
              "{x}",
              ">fold",
              "|lit",
              "%dir",
              "@at",
              "`tick",
              "del\x7f",
              "nel\u0085",
              "c1\u009b",
              "ls\u2028",
              "ps\u2029",
              "bom\ufeff",
              "nonchar\uffff\ufffe",
              "cr\r",
              "bell\a",
              " lead",
              "trail ",
              "\u00e9t\u00e9 \U0001F600"}}};
  const YAML::Node doc = YAML::Load(to_yaml_stream({o}));
  for (size_t i = 0; i < o["values"].size(); ++i) {
    const std::string want = o["values"][i];
    EXPECT_EQ(from_yaml(doc["values"][i]), Json(want)) << want;
  }
}

TEST(KubeManifests, TextKeepsEveryCharacterAsALiteralBlockOrQuoted) {
  const std::vector<std::string> texts = {"a: 1\nb: 2\n",
                                          "no newline\nat the end",
                                          "two\n\nblank lines at the end\n\n\n",
                                          "  leading space\nx\n",
                                          "crlf\r\nline\r\n",
                                          "line of spaces\n   \nnext\n",
                                          "tab\tinside\n\tand leading\n",
                                          "---\n...\n# comment\n",
                                          "\n\nstarts blank\n",
                                          "\ttab first\nx\n",
                                          "# a\u2028b\nc\n",
                                          "nel\u0085\nx\n",
                                          "del\x7f\nx\n",
                                          "\u00e9t\u00e9\nx \U0001F600\n"};
  for (const std::string& t : texts) {
    const Json o = {{"data", {{"prescale.yaml", t}}}, {"list", {t}}};
    const std::string yaml = to_yaml_stream({o});
    const YAML::Node doc = YAML::Load(yaml);
    EXPECT_EQ(doc["data"]["prescale.yaml"].as<std::string>(), t) << yaml;
    EXPECT_EQ(doc["list"][0].as<std::string>(), t) << yaml;
  }
  const std::string yaml = to_yaml_stream({{{"data", {{"k", "a: 1\nb: 2\n"}}}}});
  EXPECT_NE(yaml.find("  k: |\n    a: 1\n    b: 2\n"), std::string::npos) << yaml;
}

// The file's http section reaches a built-in service's replicas as flags, where it differs from
// the defaults (a replica reads no file).
TEST(KubeManifests, TheHttpSectionReachesABuiltInServiceAsFlags) {
  const auto objects =
      render(std::string(kShop) + "http:\n  max_body_bytes: 16777216\n  http2: false\n", options());
  const std::string command = container_of(objects, "recommend")["command"].dump();
  EXPECT_NE(command.find(R"("--max-body-bytes","16777216","--no-http2")"), std::string::npos)
      << command;
}

TEST(KubeManifests, ABuiltInServiceRunsPrescaleServeWithItsModelsInTheImage) {
  const auto objects = render(kShop, options());
  const Json& c = container_of(objects, "recommend");
  EXPECT_EQ(c["image"], "registry.example.com/prescale:0.9");
  EXPECT_EQ(c["command"].dump(),
            R"(["prescale","serve","recommend","--address","0.0.0.0","--port","8080",)"
            R"("--shutdown-grace-ms","10000","--threads","1","--log-level","info",)"
            R"("--log-format","text","--model-dir","/var/lib/prescale/models/recommend"])");
  EXPECT_FALSE(c.contains("livenessProbe"));  // liveness: {enabled: false}
  EXPECT_FALSE(c.contains("resources"));      // no memory_limit
  EXPECT_EQ(c["readinessProbe"]["httpGet"]["path"], "/readyz");
  EXPECT_EQ(c["readinessProbe"]["periodSeconds"], 2);
  EXPECT_EQ(c["readinessProbe"]["timeoutSeconds"], 1);  // 500ms, in whole seconds
  EXPECT_EQ(c["readinessProbe"]["failureThreshold"], 2);
  EXPECT_EQ(c["startupProbe"]["failureThreshold"], 120);

  // Its own image, an absolute model directory as written, liveness as the file says.
  const Json& f = container_of(objects, "forecast");
  EXPECT_EQ(f["image"], "registry.example.com/prescale-with-models:7");
  EXPECT_EQ(f["command"].back(), "/opt/models/forecast");
  EXPECT_EQ(f["livenessProbe"]["httpGet"]["path"], "/alive");
  EXPECT_EQ(f["livenessProbe"]["periodSeconds"], 3);
  EXPECT_EQ(f["livenessProbe"]["failureThreshold"], 4);
}

TEST(KubeManifests, ACommandServiceRunsItsImageWithThePortFilledIn) {
  const auto objects = render(kShop, options());
  const Json& c = container_of(objects, "checkout");
  EXPECT_EQ(c["image"], "registry.example.com/shop/checkout:1.4");
  EXPECT_EQ(c["command"].dump(), R"(["shop-checkout","--port","8080","--listen=0.0.0.0:8080"])");
  EXPECT_EQ(c["env"].dump(),
            R"([{"name":"MODE","value":"on"},{"name":"WORK_MS","value":"20"},)"
            R"({"name":"PRESCALE_GATEWAY_URL","value":"http://prescale-gateway:80"},)"
            R"({"name":"OTEL_SERVICE_NAME","value":"checkout"}])");
  EXPECT_EQ(c["resources"]["limits"]["memory"], "128Mi");
  EXPECT_EQ(c["resources"]["requests"]["memory"], "128Mi");
  EXPECT_EQ(c["startupProbe"]["httpGet"]["path"], "/ready");
  EXPECT_EQ(c["readinessProbe"]["httpGet"]["path"], "/ready");
  EXPECT_EQ(c["livenessProbe"]["httpGet"]["path"], "/healthz");

  const Json& d = find(objects, "Deployment", "checkout");
  EXPECT_EQ(d["spec"]["replicas"], 2);  // replicas.initial
  EXPECT_EQ(d["spec"]["strategy"]["rollingUpdate"]["maxUnavailable"], 0);
  EXPECT_EQ(d["spec"]["strategy"]["rollingUpdate"]["maxSurge"], "25%");
  EXPECT_EQ(d["spec"]["minReadySeconds"], 10);
  EXPECT_EQ(d["spec"]["template"]["metadata"]["annotations"]["prometheus.io/port"], "8080");
  // Before SIGTERM the pod waits for the gateway to see it gone (a DNS refresh of 5 s and a
  // time to live of 5 s, and a second), then drains for http.shutdown_grace, with 5 s to spare.
  EXPECT_EQ(c["lifecycle"]["preStop"]["exec"]["command"].dump(), R"(["sleep","11"])");
  EXPECT_EQ(d["spec"]["template"]["spec"]["terminationGracePeriodSeconds"], 11 + 10 + 5);
}

// Kubernetes' httpGet probes speak HTTP/1.1, which a gRPC server does not: an HTTP/2-only
// service is probed by whether its port takes connections, and its Service names h2c.
TEST(KubeManifests, AnHttp2OnlyServiceIsProbedOverTcpAndItsPortSaysH2c) {
  std::string text = kShop;
  const std::string at = "    readiness_path: /ready\n";
  ASSERT_NE(text.find(at), std::string::npos);
  text.replace(text.find(at), at.size(), at + "    protocol: http2\n");
  const auto objects = render(text, options(text));
  const Json& c = container_of(objects, "checkout");
  for (const char* probe : {"startupProbe", "readinessProbe", "livenessProbe"}) {
    EXPECT_EQ(c[probe]["tcpSocket"]["port"], "http") << probe;
    EXPECT_FALSE(c[probe].contains("httpGet")) << probe;
  }
  EXPECT_EQ(find(objects, "Service", "checkout")["spec"]["ports"][0]["appProtocol"],
            "kubernetes.io/h2c");
  // The others as before.
  EXPECT_EQ(container_of(objects, "forecast")["readinessProbe"]["httpGet"]["path"], "/readyz");
  EXPECT_FALSE(find(objects, "Service", "forecast")["spec"]["ports"][0].contains("appProtocol"));
}

// A gRPC server with a health service (protocol grpc) gets Kubernetes' own gRPC probes for its
// start and readiness, by port number, asking about grpc_health_service; its liveness is whether
// its port takes connections, as `prescale up` counts any gRPC answer alive.
TEST(KubeManifests, AGrpcServiceGetsGrpcProbesForReadiness) {
  std::string text = kShop;
  const std::string at = "    readiness_path: /ready\n";
  ASSERT_NE(text.find(at), std::string::npos);
  text.replace(text.find(at), at.size(),
               "    protocol: grpc\n    grpc_health_service: shop.Checkout\n");
  const auto objects = render(text, options(text));
  const Json& c = container_of(objects, "checkout");
  for (const char* probe : {"startupProbe", "readinessProbe"}) {
    EXPECT_EQ(c[probe]["grpc"]["port"], 8080) << probe;
    EXPECT_EQ(c[probe]["grpc"]["service"], "shop.Checkout") << probe;
    EXPECT_FALSE(c[probe].contains("httpGet")) << probe;
  }
  EXPECT_EQ(c["readinessProbe"]["periodSeconds"],
            container_of(objects, "forecast")["readinessProbe"]["periodSeconds"]);
  EXPECT_EQ(c["livenessProbe"]["tcpSocket"]["port"], "http");
  EXPECT_EQ(find(objects, "Service", "checkout")["spec"]["ports"][0]["appProtocol"],
            "kubernetes.io/h2c");

  // The server as a whole: no service named.
  text.replace(text.find("    grpc_health_service: shop.Checkout\n"),
               std::string("    grpc_health_service: shop.Checkout\n").size(), "");
  const auto whole = render(text, options(text));
  EXPECT_EQ(container_of(whole, "checkout")["readinessProbe"]["grpc"].dump(), R"({"port":8080})");
}

TEST(KubeManifests, WithGatewayTlsTheGatewayServesTheSecretsCertificateOn443) {
  std::string text = kShop;
  text.replace(text.find("gateway:\n") + 9, 0,
               "  tls: {cert_file: certs/shop.crt, key_file: certs/shop.key}\n");
  const auto objects = render(text, options(text));
  const Json& gateway = container_of(objects, "prescale-gateway");
  std::vector<std::string> argv;
  for (const Json& a : gateway["command"]) argv.push_back(a);
  const auto flag = [&](std::string_view name) {
    const auto at = std::find(argv.begin(), argv.end(), name);
    return at == argv.end() || at + 1 == argv.end() ? std::string() : *(at + 1);
  };
  EXPECT_EQ(flag("--tls-cert"), "/etc/prescale/tls/tls.crt");
  EXPECT_EQ(flag("--tls-key"), "/etc/prescale/tls/tls.key");
  bool mounted = false;
  for (const Json& m : gateway["volumeMounts"]) {
    if (m["name"] == "tls")
      mounted = m["mountPath"] == "/etc/prescale/tls" && m["readOnly"] == true;
  }
  EXPECT_TRUE(mounted) << gateway.dump();
  const Json& pod = find(objects, "Deployment", "prescale-gateway")["spec"]["template"]["spec"];
  bool secret = false;
  for (const Json& v : pod["volumes"]) {
    if (v["name"] == "tls") secret = v["secret"]["secretName"] == "prescale-gateway-tls";
  }
  EXPECT_TRUE(secret) << pod.dump();
  const Json& port = find(objects, "Service", "prescale-gateway")["spec"]["ports"][0];
  EXPECT_EQ(port["name"], "https");
  EXPECT_EQ(port["port"], 443);
  EXPECT_EQ(port["targetPort"], "http");
  // The services call the gateway over plain HTTP, inside the cluster only.
  EXPECT_EQ(flag("--plain-port"), "8081");
  EXPECT_EQ(flag("--plain-address"), "0.0.0.0");
  const Json& inside = find(objects, "Service", "prescale-gateway-inside")["spec"];
  EXPECT_EQ(inside["type"], "ClusterIP");
  EXPECT_EQ(inside["selector"], find(objects, "Service", "prescale-gateway")["spec"]["selector"]);
  EXPECT_EQ(inside["ports"][0]["port"], 80);
  EXPECT_EQ(inside["ports"][0]["targetPort"], "inside");
  bool inside_port = false;
  for (const Json& p : gateway["ports"]) {
    if (p["name"] == "inside") inside_port = p["containerPort"] == 8081;
  }
  EXPECT_TRUE(inside_port) << gateway.dump();
  std::string gateway_url;
  for (const Json& e : container_of(objects, "checkout")["env"]) {
    if (e["name"] == "PRESCALE_GATEWAY_URL") gateway_url = e["value"];
  }
  EXPECT_EQ(gateway_url, "http://prescale-gateway-inside:80");
  // Without tls: plain HTTP on 80, no Secret.
  const auto plain = render(kShop, options());
  EXPECT_EQ(find(plain, "Service", "prescale-gateway")["spec"]["ports"][0]["port"], 80);
  EXPECT_EQ(container_of(plain, "prescale-gateway")["volumeMounts"].size(), 1u);
}

TEST(KubeManifests, WithTracingEveryPodSendsItsSpansWhereTheFileSaysNamingItself) {
  std::string text = kShop;
  text.replace(text.find("services:\n"), 0,
               "tracing: {otlp_endpoint: \"http://otel-collector.monitoring:4318\", "
               "sample_ratio: 0.2}\n");
  // A service that names its spans itself, and gives its own resource attributes.
  text.replace(text.find("    liveness: {enabled: false}\n"), 0,
               "    env: {OTEL_SERVICE_NAME: recs, OTEL_RESOURCE_ATTRIBUTES: \"team=ml\"}\n");
  const auto objects = render(text, options(text));
  auto env_of = [&](std::string_view name) {
    std::map<std::string, Json> out;
    for (const Json& e : container_of(objects, name)["env"]) {
      EXPECT_FALSE(out.contains(e["name"])) << name << ": " << e["name"] << " twice";
      out[e["name"]] = e.contains("value") ? e["value"] : e["valueFrom"];
    }
    return out;
  };
  auto checkout = env_of("checkout");
  EXPECT_EQ(checkout["OTEL_EXPORTER_OTLP_ENDPOINT"], "http://otel-collector.monitoring:4318");
  EXPECT_EQ(checkout["OTEL_TRACES_SAMPLER"], "parentbased_traceidratio");
  EXPECT_EQ(checkout["OTEL_TRACES_SAMPLER_ARG"], "0.2");
  EXPECT_EQ(checkout["OTEL_SERVICE_NAME"], "checkout");
  EXPECT_EQ(checkout["POD_NAME"]["fieldRef"]["fieldPath"], "metadata.name");
  EXPECT_EQ(checkout["POD_NAMESPACE"]["fieldRef"]["fieldPath"], "metadata.namespace");
  EXPECT_EQ(checkout["OTEL_RESOURCE_ATTRIBUTES"],
            "k8s.pod.name=$(POD_NAME),k8s.namespace.name=$(POD_NAMESPACE)");
  // $(VAR) expands only variables defined before it in the list.
  const Json& list = container_of(objects, "checkout")["env"];
  std::vector<std::string> order;
  for (const Json& e : list) order.push_back(e["name"]);
  for (const char* variable : {"POD_NAME", "POD_NAMESPACE"}) {
    EXPECT_LT(std::find(order.begin(), order.end(), variable),
              std::find(order.begin(), order.end(), "OTEL_RESOURCE_ATTRIBUTES"))
        << variable;
  }

  auto recommend = env_of("recommend");
  EXPECT_EQ(recommend["OTEL_SERVICE_NAME"], "recs");
  EXPECT_EQ(recommend["OTEL_RESOURCE_ATTRIBUTES"], "team=ml");
  EXPECT_FALSE(recommend.contains("POD_NAMESPACE"));
  EXPECT_EQ(recommend["OTEL_EXPORTER_OTLP_ENDPOINT"], "http://otel-collector.monitoring:4318");

  auto gateway = env_of("prescale-gateway");
  EXPECT_EQ(gateway["OTEL_SERVICE_NAME"], "prescale-gateway");
  EXPECT_EQ(gateway["OTEL_EXPORTER_OTLP_ENDPOINT"], "http://otel-collector.monitoring:4318");
  EXPECT_EQ(gateway["OTEL_RESOURCE_ATTRIBUTES"],
            "k8s.pod.name=$(POD_NAME),k8s.namespace.name=$(POD_NAMESPACE)");
  // Without tracing, the gateway's environment is as before: its pod's name only.
  EXPECT_EQ(container_of(render(kShop, options()), "prescale-gateway")["env"].dump(),
            R"([{"name":"POD_NAME","valueFrom":{"fieldRef":{"fieldPath":"metadata.name"}}}])");
}

TEST(KubeManifests, EverySelectorSelectsItsOwnPodsAndEachServiceIsHeadless) {
  const auto objects = render(kShop, options());
  for (const Json& o : objects) {
    if (o["kind"] == "Deployment") {
      for (const auto& [k, v] : o["spec"]["selector"]["matchLabels"].items()) {
        EXPECT_EQ(o["spec"]["template"]["metadata"]["labels"][k], v) << o["metadata"]["name"];
      }
    }
    if (o["kind"] == "Service" && o["metadata"]["name"] != "prescale-gateway" &&
        o["metadata"]["name"] != "prescale-controller") {
      EXPECT_EQ(o["spec"]["clusterIP"], "None");
      EXPECT_EQ(o["spec"]["selector"],
                find(objects, "Deployment",
                     o["metadata"]["name"].get<std::string>())["spec"]["selector"]["matchLabels"]);
    }
    if (o["kind"] == "PodDisruptionBudget") {  // one pod at a time, of its own Deployment
      EXPECT_EQ(o["spec"]["maxUnavailable"], 1);
      EXPECT_EQ(o["spec"]["selector"],
                find(objects, "Deployment",
                     o["metadata"]["name"].get<std::string>())["spec"]["selector"]);
    }
  }
  EXPECT_EQ(find(objects, "Service", "prescale-gateway")["spec"]["type"], "ClusterIP");
  // The controller's admin port, where the gateways read the admission limits.
  const Json& controller = find(objects, "Service", "prescale-controller");
  EXPECT_FALSE(controller["spec"].contains("type")) << "ClusterIP: inside the cluster only";
  EXPECT_EQ(controller["spec"]["ports"].dump(),
            R"([{"name":"admin","port":9902,"targetPort":"admin"}])");
  EXPECT_EQ(controller["spec"]["selector"],
            find(objects, "Deployment", "prescale-controller")["spec"]["selector"]["matchLabels"]);
}

TEST(KubeManifests, TheGatewayReadsTheFileAndReachesEachServiceByItsName) {
  auto o = options();
  o.name_space = "shop";
  o.gateway_service_type = "LoadBalancer";
  const auto objects = render(kShop, o);
  const Json& c = container_of(objects, "prescale-gateway");
  EXPECT_EQ(c["command"].dump(),
            R"(["prescale","gateway","-f","/etc/prescale/prescale.yaml","--address","0.0.0.0",)"
            R"("--port","8080","--admin-port","9901","--upstream","checkout=checkout:8080",)"
            R"("--upstream","recommend=recommend:8080","--upstream","forecast=forecast:8080",)"
            R"x("--admission-from","http://prescale-controller:9902/v1/admission/$(POD_NAME)"])x");
  EXPECT_EQ(c["env"].dump(),
            R"([{"name":"POD_NAME","valueFrom":{"fieldRef":{"fieldPath":"metadata.name"}}}])");
  EXPECT_EQ(find(objects, "ConfigMap", "prescale-config")["data"]["prescale.yaml"], kShop);
  EXPECT_EQ(find(objects, "Service", "prescale-gateway")["spec"]["type"], "LoadBalancer");
  for (const Json& object : objects) EXPECT_EQ(object["metadata"]["namespace"], "shop");

  // An edit to the file changes the gateway's pod template, so an apply rolls it.
  const std::string edited = std::string(kShop) + "# edited\n";
  const auto again = render(edited, o);
  auto checksum = [](const std::vector<Json>& objs) {
    return find(
        objs, "Deployment",
        "prescale-gateway")["spec"]["template"]["metadata"]["annotations"]["checksum/config"];
  };
  EXPECT_NE(checksum(objects), checksum(again));
  EXPECT_EQ(checksum(objects), checksum(render(kShop, o)));
}

TEST(KubeManifests, OnlyTheControllerTalksToTheApiWithWhatItCallsAndNoMore) {
  const auto objects = render(kShop, options());
  for (const Json& o : objects) {
    if (o["kind"] != "Deployment") continue;
    const Json& pod = o["spec"]["template"]["spec"];
    const bool controller = o["metadata"]["name"] == "prescale-controller";
    EXPECT_EQ(pod["automountServiceAccountToken"], controller) << o["metadata"]["name"];
    EXPECT_EQ(pod.contains("serviceAccountName"), controller);
  }
  const Json& rules = find(objects, "Role", "prescale-controller")["rules"];
  ASSERT_EQ(rules.size(), 5u);
  EXPECT_EQ(rules[0]["resources"], Json::array({"pods"}));
  EXPECT_EQ(rules[0]["verbs"], Json::array({"list", "patch"}));
  EXPECT_EQ(rules[1]["resources"], Json::array({"pods/eviction"}));
  EXPECT_EQ(rules[1]["verbs"], Json::array({"create"}));
  EXPECT_EQ(rules[2]["resources"], Json::array({"deployments"}));
  EXPECT_EQ(rules[2]["verbs"], Json::array({"list"}));
  EXPECT_EQ(rules[3]["resources"], Json::array({"deployments", "deployments/scale"}));
  EXPECT_EQ(rules[3]["resourceNames"], Json::array({"checkout", "recommend", "forecast"}));
  EXPECT_EQ(rules[3]["verbs"], Json::array({"get", "patch"}));
  EXPECT_EQ(rules[4]["resources"], Json::array({"replicasets"}));
  EXPECT_EQ(rules[4]["verbs"], Json::array({"list"}));
  const Json& binding = find(objects, "RoleBinding", "prescale-controller");
  EXPECT_EQ(binding["roleRef"]["name"], "prescale-controller");
  EXPECT_EQ(binding["subjects"][0]["name"], "prescale-controller");
  const Json& controller = find(objects, "Deployment", "prescale-controller");
  EXPECT_EQ(controller["spec"]["replicas"], 1);
  EXPECT_EQ(controller["spec"]["strategy"]["type"], "Recreate");
  EXPECT_EQ(controller["spec"]["template"]["spec"]["volumes"][1]["emptyDir"], Json::object());

  ManifestOptions o = options();
  o.controller_state_claim = "prescale-state";
  const auto claimed = render(kShop, o);
  EXPECT_EQ(
      find(claimed, "Deployment", "prescale-controller")["spec"]["template"]["spec"]["volumes"][1]
                                                        ["persistentVolumeClaim"]["claimName"],
      "prescale-state");
  o.controller = false;
  const auto alone = render(kShop, o);
  EXPECT_EQ(alone.size(), objects.size() - 5);
  // Without a controller the gateways keep the file's admission limits.
  EXPECT_EQ(container_of(alone, "prescale-gateway")["command"].dump().find("--admission-from"),
            std::string::npos);
}

// With KEDA (--keda): a ScaledObject per service whose external trigger calls the controller's
// external scaler, which the controller serves on its Service's port "keda"; the HPA KEDA makes
// follows the plan at once, within the service's bounds. It needs the controller and a namespace.
TEST(KubeManifests, WithKedaEachServiceHasAScaledObjectCallingTheController) {
  ManifestOptions o = options();
  o.keda = true;
  o.name_space = "shop";
  const std::vector<Json> objects = render(kShop, o);
  const Json& scaled = find(objects, "ScaledObject", "checkout");
  EXPECT_EQ(scaled["apiVersion"], "keda.sh/v1alpha1");
  EXPECT_EQ(scaled["metadata"]["namespace"], "shop");
  EXPECT_EQ(scaled["spec"]["scaleTargetRef"]["name"], "checkout");
  EXPECT_EQ(scaled["spec"]["minReplicaCount"], 1);
  EXPECT_EQ(scaled["spec"]["maxReplicaCount"], 8);
  EXPECT_EQ(scaled["spec"]["pollingInterval"], 15) << "the policy's period";
  EXPECT_EQ(scaled["spec"]["cooldownPeriod"], 15);
  EXPECT_FALSE(find(objects, "Deployment", "checkout")["spec"].contains("replicas"))
      << "the HPA's to set: an apply would set it back";
  const Json& trigger = scaled["spec"]["triggers"][0];
  EXPECT_EQ(trigger["type"], "external");
  EXPECT_EQ(trigger["metadata"]["scalerAddress"], "prescale-controller.shop.svc:9903");
  EXPECT_EQ(trigger["metadata"]["service"], "checkout");
  const Json& behavior = scaled["spec"]["advanced"]["horizontalPodAutoscalerConfig"]["behavior"];
  EXPECT_EQ(behavior["scaleDown"]["stabilizationWindowSeconds"], 0);
  EXPECT_EQ(behavior["scaleUp"]["policies"][0]["value"], 8);
  for (const char* service : {"recommend", "forecast"})
    (void)find(objects, "ScaledObject", service);
  const std::string command = container_of(objects, "prescale-controller")["command"].dump();
  EXPECT_NE(command.find(R"("--keda-port","9903")"), std::string::npos) << command;
  EXPECT_EQ(find(objects, "Service", "prescale-controller")["spec"]["ports"][1],
            Json({{"name", "keda"}, {"port", 9903}, {"targetPort", "keda"}}));
  EXPECT_EQ(container_of(objects, "prescale-controller")["ports"][1],
            Json({{"name", "keda"}, {"containerPort", 9903}}));
  // Without --keda, none of it.
  const std::vector<Json> plain = render(kShop, options());
  EXPECT_EQ(std::count_if(plain.begin(), plain.end(),
                          [](const Json& j) { return j["kind"] == "ScaledObject"; }),
            0);
  EXPECT_EQ(container_of(plain, "prescale-controller")["command"].dump().find("--keda-port"),
            std::string::npos);
  EXPECT_EQ(find(plain, "Deployment", "checkout")["spec"]["replicas"], 2);

  auto config = load_config_string(kShop, "shop.yaml");
  ASSERT_TRUE(config);
  o.name_space = "";
  auto refused = kubernetes_objects(*config, o);
  ASSERT_FALSE(refused);
  EXPECT_NE(refused.error().message.find("--keda needs --namespace: KEDA's operator calls the "
                                         "controller from its own namespace"),
            std::string::npos)
      << refused.error().message;
  o.name_space = "shop";
  o.controller = false;
  refused = kubernetes_objects(*config, o);
  ASSERT_FALSE(refused);
  EXPECT_NE(refused.error().message.find("--keda needs the controller"), std::string::npos)
      << refused.error().message;
}

TEST(KubeManifests, WithHistoryFromTheControllerReadsPrometheus) {
  ManifestOptions o = options();
  o.history_from = "http://prometheus-server.monitoring:80";
  const std::vector<Json> objects = render(kShop, o);
  const std::string command = container_of(objects, "prescale-controller")["command"].dump();
  EXPECT_NE(command.find(R"("--history-from","http://prometheus-server.monitoring:80")"),
            std::string::npos)
      << command;
  EXPECT_EQ(container_of(render(kShop, options()), "prescale-controller")["command"].dump().find(
                "--history-from"),
            std::string::npos);
  o.history_selector = "job=\"gw\"";
  o.history_window = "4m";
  const std::string with = container_of(render(kShop, o), "prescale-controller")["command"].dump();
  EXPECT_NE(with.find(R"("--history-selector","job=\"gw\"","--history-window","4m")"),
            std::string::npos)
      << with;

  auto config = load_config_string(kShop, "shop.yaml");
  ASSERT_TRUE(config);
  // Behind TLS and a kube-rbac-proxy: the pod's service account files.
  o.history_from = "https://prometheus-k8s.monitoring:9091";
  o.history_ca_file = "/var/run/secrets/kubernetes.io/serviceaccount/service-ca.crt";
  o.history_token_file = "/var/run/secrets/kubernetes.io/serviceaccount/token";
  const std::string tls = container_of(render(kShop, o), "prescale-controller")["command"].dump();
  EXPECT_NE(tls.find(R"("--history-from","https://prometheus-k8s.monitoring:9091")"),
            std::string::npos)
      << tls;
  EXPECT_NE(tls.find(R"("--history-ca-file","/var/run/secrets/kubernetes.io/serviceaccount/)"
                     R"(service-ca.crt","--history-token-file","/var/run/secrets/kubernetes.io/)"
                     R"(serviceaccount/token")"),
            std::string::npos)
      << tls;
  o.history_from = "http://prometheus:9090";
  auto plain_with_ca = kubernetes_objects(*config, o);
  ASSERT_FALSE(plain_with_ca);
  EXPECT_NE(
      plain_with_ca.error().message.find("--history-ca-file goes with an https:// --history-from"),
      std::string::npos)
      << plain_with_ca.error().message;
  o.history_ca_file.clear();
  auto plain_with_token = kubernetes_objects(*config, o);
  ASSERT_FALSE(plain_with_token);
  EXPECT_NE(plain_with_token.error().message.find(
                "--history-token-file goes with an https:// --history-from"),
            std::string::npos)
      << plain_with_token.error().message;
  o.history_token_file.clear();

  o.history_from = "ftp://prometheus:9090";
  o.controller = false;
  auto refused = kubernetes_objects(*config, o);
  ASSERT_FALSE(refused);
  EXPECT_NE(refused.error().message.find("--history-from is read by the controller"),
            std::string::npos)
      << refused.error().message;
  EXPECT_NE(refused.error().message.find("--history-from ftp://prometheus:9090: "),
            std::string::npos)
      << refused.error().message;
  o.history_from.clear();
  refused = kubernetes_objects(*config, o);
  ASSERT_FALSE(refused);
  EXPECT_NE(refused.error().message.find(
                "--history-selector, --history-window, --history-ca-file and --history-token-file "
                "go with --history-from"),
            std::string::npos)
      << refused.error().message;
  o.history_selector.clear();
  o.history_window.clear();
  config->policy.name = PolicyName::kHpa;
  o.controller = true;
  o.history_from = "http://prometheus:9090";
  refused = kubernetes_objects(*config, o);
  ASSERT_FALSE(refused);
  EXPECT_NE(refused.error().message.find(
                "shop.yaml: policy.name: hpa keeps no history: --history-from goes with the "
                "prescale policy"),
            std::string::npos)
      << refused.error().message;
}

TEST(KubeManifests, WithPodMonitorsThePrometheusOperatorScrapesEveryPodWithItsLabels) {
  ManifestOptions o = options();
  o.pod_monitors = true;
  o.pod_monitor_labels = {{"release", "kube-prometheus-stack"}};
  o.name_space = "shop";
  const std::vector<Json> objects = render(kShop, o);
  const Json& admin = find(objects, "PodMonitor", "prescale-admin");
  EXPECT_EQ(admin["apiVersion"], "monitoring.coreos.com/v1");
  EXPECT_EQ(admin["metadata"]["namespace"], "shop");
  EXPECT_EQ(admin["metadata"]["labels"]["release"], "kube-prometheus-stack");
  EXPECT_EQ(admin["spec"]["selector"]["matchExpressions"][0]["values"],
            Json::array({"gateway", "controller"}));
  EXPECT_EQ(admin["spec"]["podMetricsEndpoints"][0]["port"], "admin");
  // The labels --history-from's default selector reads, as app_kubernetes_io_component.
  EXPECT_EQ(admin["spec"]["podTargetLabels"],
            Json::array({"app.kubernetes.io/name", "app.kubernetes.io/component"}));
  const Json& services = find(objects, "PodMonitor", "prescale-services");
  EXPECT_EQ(services["spec"]["selector"]["matchExpressions"][0]["values"],
            Json::array({"service"}));
  EXPECT_EQ(services["spec"]["podMetricsEndpoints"][0]["port"], "http");
  // The pods carry what the selectors select.
  const Json& gateway_pod = find(objects, "Deployment", "prescale-gateway")["spec"]["template"];
  EXPECT_EQ(gateway_pod["metadata"]["labels"]["app.kubernetes.io/component"], "gateway");
  EXPECT_EQ(gateway_pod["metadata"]["labels"]["app.kubernetes.io/part-of"], "prescale");
  EXPECT_EQ(
      find(objects, "Deployment",
           "checkout")["spec"]["template"]["metadata"]["labels"]["app.kubernetes.io/component"],
      "service");

  auto config = load_config_string(kShop, "shop.yaml");
  ASSERT_TRUE(config);
  o.pod_monitor_labels = {{"release", "a b"}};
  auto refused = kubernetes_objects(*config, o);
  ASSERT_FALSE(refused);
  EXPECT_NE(refused.error().message.find("--pod-monitor-label release=a b: not a Kubernetes label"),
            std::string::npos)
      << refused.error().message;
  for (const auto& [key, value] :
       std::vector<std::pair<std::string, std::string>>{{"a/b/c", "x"},
                                                        {"/x", "x"},
                                                        {"x/", "x"},
                                                        {"release", "-x"},
                                                        {std::string(64, 'k'), "x"}}) {
    o.pod_monitor_labels = {{key, value}};
    refused = kubernetes_objects(*config, o);
    ASSERT_FALSE(refused) << key << "=" << value;
    EXPECT_NE(refused.error().message.find("not a Kubernetes label"), std::string::npos)
        << refused.error().message;
  }
  o.pod_monitor_labels = {{"app.kubernetes.io/managed-by", "helm"}};
  refused = kubernetes_objects(*config, o);
  ASSERT_FALSE(refused);
  EXPECT_NE(refused.error().message.find("the app.kubernetes.io labels are Prescale's own"),
            std::string::npos);
  // Without the controller, the gateway and the services are scraped all the same.
  o.pod_monitor_labels = {{"example.com/team", "shop"}, {"release", ""}};
  o.controller = false;
  const std::vector<Json> alone = render(kShop, o);
  EXPECT_EQ(find(alone, "PodMonitor", "prescale-admin")["metadata"]["labels"]["example.com/team"],
            "shop");
  (void)find(alone, "PodMonitor", "prescale-services");
  EXPECT_EQ(
      find(alone, "PodMonitor", "prescale-admin")["spec"]["podMetricsEndpoints"][0]["honorLabels"],
      true);
  o.controller = true;
  o.pod_monitors = false;
  o.pod_monitor_labels = {{"release", "x"}};
  refused = kubernetes_objects(*config, o);
  ASSERT_FALSE(refused);
  EXPECT_NE(refused.error().message.find(
                "--pod-monitor-label goes with --pod-monitors or --prometheus-rules"),
            std::string::npos);

  // The alerts: all six with the controller, only the gateway's without it; in the namespace.
  o.pod_monitor_labels.clear();
  o.prometheus_rules = true;
  o.name_space = "";
  refused = kubernetes_objects(*config, o);
  ASSERT_FALSE(refused);
  EXPECT_NE(refused.error().message.find("--prometheus-rules needs --namespace"),
            std::string::npos);
  o.name_space = "shop";
  const std::vector<Json> with_rules = render(kShop, o);
  const Json& rule = find(with_rules, "PrometheusRule", "prescale");
  const Json& alerts = rule["spec"]["groups"][0]["rules"];
  ASSERT_EQ(alerts.size(), 6u);
  EXPECT_EQ(alerts[0]["alert"], "PrescaleIncident");
  EXPECT_NE(alerts[0]["expr"].get<std::string>().find("namespace=\"shop\""), std::string::npos);
  o.controller = false;
  const std::vector<Json> without_controller = render(kShop, o);
  const Json& alone_rule = find(without_controller, "PrometheusRule", "prescale");
  ASSERT_EQ(alone_rule["spec"]["groups"][0]["rules"].size(), 1u);
  EXPECT_EQ(alone_rule["spec"]["groups"][0]["rules"][0]["alert"], "PrescaleGatewayDown");
}

TEST(KubeManifests, WithGrafanaDashboardAConfigMapHoldsTheDashboardForGrafanasSidecar) {
  ManifestOptions o = options();
  o.grafana_dashboard = true;
  o.name_space = "shop";
  const std::vector<Json> objects = render(kShop, o);
  const Json& map = find(objects, "ConfigMap", "prescale-grafana-dashboard");
  EXPECT_EQ(map["metadata"]["labels"]["grafana_dashboard"], "1");
  EXPECT_EQ(map["metadata"]["namespace"], "shop");
  // The file as it is in deploy/grafana, built in.
  std::ifstream file(GRAFANA_DASHBOARD);
  std::ostringstream read;
  read << file.rdbuf();
  const std::string text = read.str();
  ASSERT_FALSE(text.empty());
  EXPECT_EQ(map["data"]["prescale.json"], text);
  EXPECT_EQ(Json::parse(map["data"]["prescale.json"].get<std::string>())["uid"], "prescale");
  for (const Json& object : render(kShop, options())) {
    EXPECT_NE(object["metadata"]["name"], "prescale-grafana-dashboard");
  }
}

TEST(KubeManifests, WithoutANamespaceNoneIsWritten) {
  for (const Json& object : render(kShop, options())) {
    EXPECT_FALSE(object["metadata"].contains("namespace"));
  }
}

TEST(KubeManifests, WhatCannotRunOnKubernetesIsRefusedWithEveryProblemNamed) {
  const std::string message = render_error(R"(version: 1
services:
  - name: checkout
    kind: command
    command: [shop-checkout, --port-file, "{port_file}"]
  - name: 2nd
    kind: builtin/echo
  - name: prescale-gateway
    kind: builtin/echo
  - name: kubernetes
    kind: builtin/echo
gateway:
  routes: [{match: {path_prefix: /}, service: checkout}]
)");
  EXPECT_EQ(message,
            "shop.yaml:3: services[0] (checkout).image: required on Kubernetes for a command "
            "service: the container image that holds \"shop-checkout\"\n"
            "shop.yaml:3: services[0] (checkout).command: \"{port_file}\" is for prescale up; on "
            "Kubernetes the port is fixed: pass \"{port}\" (8080)\n"
            "shop.yaml:6: services[1] (2nd).name: a Kubernetes Service name starts with a "
            "letter, got \"2nd\"\n"
            "shop.yaml:8: services[2] (prescale-gateway).name: \"prescale-gateway\" is the "
            "gateway's Deployment and Service\n"
            "shop.yaml:10: services[3] (kubernetes).name: \"kubernetes\" is the Service of the "
            "cluster's API server");

  // prescale gateway needs routes to tell several services apart; one it reaches without.
  EXPECT_EQ(render_error("version: 1\nservices:\n  - {name: a, kind: builtin/echo}\n"
                         "  - {name: b, kind: builtin/echo}\n"),
            "shop.yaml: gateway.routes: none, and the gateway's pod runs prescale gateway, which "
            "sends a request nowhere without routes unless it has exactly one service (this file "
            "has 2)");
  EXPECT_EQ(render("version: 1\nservices:\n  - {name: a, kind: builtin/echo}\n", options()).size(),
            12u);  // 7, and the controller's Deployment, Service, ServiceAccount, Role and
                   // RoleBinding

  auto config = load_config_string(kShop, "shop.yaml");
  ASSERT_TRUE(config);
  auto o = options();
  o.gateway_service_type = "Ingress";
  o.image.clear();
  auto objects = kubernetes_objects(*config, o);
  ASSERT_FALSE(objects);
  EXPECT_EQ(objects.error().message,
            "gateway service type must be ClusterIP, NodePort or LoadBalancer, got \"Ingress\"\n"
            "the Prescale image must be named");
}

// A service that scales to zero: on Kubernetes a request that finds no pod waits for the
// controller's look, KEDA's check with --keda, the pod's start and the gateways' DNS; a route
// whose timeout is shorter is warned of (rendered anyway), one long enough and a service with a
// floor are not.
TEST(KubeManifests, ARouteTooShortForAColdStartIsWarnedOf) {
  const std::string text = R"(version: 1
policy: {name: prescale, period: 15s}
services:
  - name: web
    kind: builtin/echo
    replicas: {min: 0, max: 4}
    startup_time: 20s
  - name: api
    kind: builtin/echo
gateway:
  routes:
    - {match: {path_prefix: /slow}, service: web, timeout: 60s}
    - {match: {path_prefix: /}, service: web}
    - {match: {path: "/api/{rest...}"}, service: api, timeout: 1s}
)";
  auto config = load_config_string(text, "shop.yaml");
  ASSERT_TRUE(config) << config.error().message;
  // 1 s look + 20 s start + 11 s DNS (5 s refresh, 5 s TTL, a second) = 32 s.
  std::vector<std::string> lines = cold_start_warnings(*config, options(text));
  ASSERT_EQ(lines.size(), 1u);
  EXPECT_EQ(lines[0],
            "gateway.routes[1] (/): service web scales to zero (replicas.min 0), and a request "
            "that finds no replica waits for the controller's look at the gateways (1 s), the "
            "pod's start (startup_time 20 s) and the gateways' DNS (11 s), up to 32 s, longer "
            "than the route's timeout of 15 s: such a request would get 503; give the route a "
            "timeout of at least 32 s");
  // With KEDA, its check every period; the 60 s route still does.
  ManifestOptions keda = options(text);
  keda.keda = true;
  lines = cold_start_warnings(*config, keda);
  ASSERT_EQ(lines.size(), 1u);
  EXPECT_NE(lines[0].find("KEDA's pollingInterval (15 s)"), std::string::npos) << lines[0];
  EXPECT_NE(lines[0].find("at least 47 s"), std::string::npos) << lines[0];
  // The HPA looks once a period; a policy that wakes at once does not.
  Config hpa = *config;
  hpa.policy.name = PolicyName::kHpa;
  hpa.policy.period = std::chrono::seconds(30);
  lines = cold_start_warnings(hpa, options(text));
  ASSERT_EQ(lines.size(), 2u);
  EXPECT_NE(lines[0].find("gateway.routes[0] (/slow)"), std::string::npos) << lines[0];
  EXPECT_NE(lines[0].find("at least 61 s"), std::string::npos) << lines[0];
  // Exact where the file is: a timeout a little under the wait is not said as equal to it.
  Config close = *config;
  close.gateway.routes[1].timeout = std::chrono::milliseconds(31200);
  close.services[0].startup_time = std::chrono::milliseconds(19500);
  lines = cold_start_warnings(close, options(text));
  ASSERT_EQ(lines.size(), 1u);
  EXPECT_NE(lines[0].find("(startup_time 19.5 s) and the gateways' DNS (11 s), up to 31.5 s, "
                          "longer than the route's timeout of 31.2 s: such a request would get "
                          "503; give the route a timeout of at least 32 s"),
            std::string::npos)
      << lines[0];
  // A policy that never runs live says nothing.
  Config oracle = *config;
  oracle.policy.name = PolicyName::kOracle;
  EXPECT_TRUE(cold_start_warnings(oracle, options(text)).empty());
  // A floor of one: nothing waits.
  Config floor = *config;
  floor.services[0].replicas.min = 1;
  EXPECT_TRUE(cold_start_warnings(floor, options(text)).empty());
}

}  // namespace
}  // namespace prescale::kube
