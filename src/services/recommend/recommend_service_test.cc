#include "services/recommend/recommend_service.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <atomic>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <thread>

#include "http/client.h"
#include "runtime/runtime.h"
#include "services/recommend/internal/test_interactions.h"
#include "services/recommend/model_file.h"
#include "telemetry/registry.h"

namespace prescale::services {
namespace {

namespace fs = std::filesystem;
using namespace std::chrono_literals;
using recommend::ModelKind;
using ::testing::HasSubstr;

std::string KindName(const ::testing::TestParamInfo<ModelKind>& info) {
  return std::string(recommend::to_string(info.param));
}

std::shared_ptr<const recommend::Model> train(ModelKind kind, int drop_last_users = 0) {
  recommend::TrainOptions o;
  o.kind = kind;
  o.als.factors = 8;
  o.als.regularization = 0.1f;
  o.ease.lambda = 1;
  o.ease.min_item_interactions = 1;
  auto data = recommend::testing::two_groups();
  std::erase_if(data,
                [&](const recommend::Interaction& x) { return x.user > 40 - drop_last_users; });
  auto m = recommend::Model::train(data, o);
  EXPECT_TRUE(m) << m.error().message;
  return *m;
}

std::vector<int64_t> item_ids(const nlohmann::json& body) {
  std::vector<int64_t> out;
  for (const auto& i : body["items"]) out.push_back(i["item"].get<int64_t>());
  return out;
}

class RecommendServiceTest : public ::testing::TestWithParam<ModelKind> {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() / ("recommend_service_" + std::to_string(::getpid()) + "_" +
                                        std::to_string(reinterpret_cast<uintptr_t>(this)));
    fs::remove_all(dir_);
    ASSERT_TRUE(recommend::save_model(*train(GetParam(), /*drop_last_users=*/1), dir_.string()));
    RecommendServiceOptions o;
    o.model_dir = dir_.string();
    o.registry = &registry_;
    o.clock = &clock_;
    o.poll_interval = 10s;
    o.background_poll = false;
    o.max_batch = 50;
    auto service = make_recommend_service(o);
    ASSERT_TRUE(service) << service.error().message;
    service_ = std::move(*service);
    runtime::RuntimeOptions ro;
    ro.server.port = 0;
    ro.server.threads = 2;
    ro.shutdown_grace = 5s;
    ro.registry = &registry_;
    runtime_ = std::make_unique<runtime::Runtime>(*service_, ro);
    ASSERT_TRUE(runtime_->start());
  }
  void TearDown() override {
    runtime_.reset();
    service_.reset();
    fs::remove_all(dir_);
  }

  http::Response call(http::Method m, std::string target, std::string body = {}) {
    http::Request req;
    req.method = m;
    req.method_name = std::string(http::to_string(m));
    req.target = std::move(target);
    req.body = std::move(body);
    if (!req.body.empty()) req.headers.set("Content-Type", "application/json");
    auto r = client_.request("127.0.0.1", runtime_->port(), std::move(req));
    EXPECT_TRUE(r) << r.error().to_string();
    return r ? *r : http::Response{};
  }
  nlohmann::json get_json(std::string target, int status = 200) {
    const http::Response r = call(http::Method::kGet, std::move(target));
    EXPECT_EQ(r.status, status) << r.body;
    return nlohmann::json::parse(r.body, nullptr, false);
  }
  nlohmann::json post_json(std::string target, const nlohmann::json& body, int status = 200) {
    const http::Response r = call(http::Method::kPost, std::move(target), body.dump());
    EXPECT_EQ(r.status, status) << r.body;
    return nlohmann::json::parse(r.body, nullptr, false);
  }
  std::string metrics() { return call(http::Method::kGet, "/metrics").body; }

  fs::path dir_;
  ManualClock clock_;
  telemetry::Registry registry_;
  std::unique_ptr<RecommendService> service_;
  std::unique_ptr<runtime::Runtime> runtime_;
  http::Client client_;
};

TEST_P(RecommendServiceTest, RecommendsUnseenItemsWithTheModelVersion) {
  const auto body = get_json("/v1/users/3/recommendations?k=5");
  EXPECT_EQ(body["user"], 3);
  EXPECT_EQ(body["model"], recommend::to_string(GetParam()));
  EXPECT_EQ(body["model_version"], "v1");
  EXPECT_EQ(body["cold_start"], false);
  const auto items = item_ids(body);
  ASSERT_EQ(items.size(), 5u);
  const auto model = service_->model();
  for (int64_t item : items) {
    for (const auto& h : model->history(3)) EXPECT_NE(item, model->item_id(h.item));
  }
  EXPECT_THAT(metrics(), HasSubstr("prescale_model_info{service=\"recommend\",version=\"v1\"} 1"));
}

TEST_P(RecommendServiceTest, ColdUsersGetPopularItemsFlagged) {
  const auto body = get_json("/v1/users/40/recommendations?k=2");  // not in the model
  EXPECT_EQ(body["cold_start"], true);
  EXPECT_THAT(item_ids(body), ::testing::UnorderedElementsAre(101, 201));
  EXPECT_THAT(metrics(), HasSubstr("prescale_recommend_cold_starts_total 1"));
}

TEST_P(RecommendServiceTest, PostedInteractionsChangeTheNextRecommendation) {
  if (GetParam() == ModelKind::kTopPop) GTEST_SKIP() << "popularity ignores the history";
  // User 40 is new: after interactions with the 20x group, 20x items come back at once.
  auto r =
      post_json("/v1/interactions", {{"interactions",
                                      {{{"user", 40}, {"item", 202}},
                                       {{"user", 40}, {"item", 204}, {"weight", 2}},
                                       {{"user", 40}, {"item", 206}, {"timestamp", 1'700'000'000}},
                                       {{"user", 40}, {"item", 999}}}}});
  EXPECT_EQ(r["accepted"], 3);
  EXPECT_EQ(r["ignored_unknown_items"], 1);
  EXPECT_EQ(r["users"], 1);
  EXPECT_EQ(r["model_version"], "v1");
  auto body = get_json("/v1/users/40/recommendations?k=3");
  EXPECT_EQ(body["cold_start"], false);
  for (int64_t item : item_ids(body)) {
    EXPECT_TRUE(item > 200 && item <= 220 && item != 202 && item != 204 && item != 206) << item;
  }
  // A user of the 10x group who now interacts heavily with the 20x group.
  const auto before = item_ids(get_json("/v1/users/3/recommendations?k=3"));
  for (int64_t item : before) EXPECT_LT(item, 200);
  nlohmann::json batch = nlohmann::json::array();
  for (int64_t item = 201; item <= 215; ++item) {
    batch.push_back({{"user", 3}, {"item", item}, {"weight", 5}});
  }
  post_json("/v1/interactions", {{"interactions", batch}});
  const auto after = item_ids(get_json("/v1/users/3/recommendations?k=3"));
  EXPECT_NE(after, before);
  for (int64_t item : after) EXPECT_GT(item, 215) << "unseen 20x items lead now";
  EXPECT_THAT(metrics(), HasSubstr("prescale_recommend_ignored_unknown_items_total 1"));
}

TEST_P(RecommendServiceTest, FiltersExcludeAndInclude) {
  const auto first = item_ids(get_json("/v1/users/3/recommendations?k=3"));
  ASSERT_EQ(first.size(), 3u);
  const auto excluded = item_ids(
      get_json("/v1/users/3/recommendations?k=3&exclude=" + std::to_string(first[0]) + ",999"));
  EXPECT_THAT(excluded, ::testing::Not(::testing::Contains(first[0])));
  const auto included = item_ids(get_json("/v1/users/3/recommendations?k=3&include=215,216,999"));
  for (int64_t item : included) EXPECT_TRUE(item == 215 || item == 216);
}

// The filters in a body: 10,000 ids do not fit a URL under the 16 KiB header limit (about
// 3,000 do), so the documented limit was out of reach over GET.
TEST_P(RecommendServiceTest, FiltersOfThousandsOfIdsGoInAPostBody) {
  const auto first = item_ids(get_json("/v1/users/3/recommendations?k=3"));
  ASSERT_EQ(first.size(), 3u);
  nlohmann::json exclude = nlohmann::json::array();
  exclude.push_back(first[0]);
  for (int64_t id = 1'000'000; exclude.size() < 10'000; ++id) exclude.push_back(id);
  const auto body = post_json("/v1/users/3/recommendations", {{"k", 3}, {"exclude", exclude}});
  EXPECT_EQ(body["user"], 3);
  EXPECT_EQ(body["model_version"], "v1");
  const auto excluded = item_ids(body);
  EXPECT_EQ(excluded.size(), 3u);
  EXPECT_THAT(excluded, ::testing::Not(::testing::Contains(first[0])));
  // The same answer as GET without filters when the body names none.
  EXPECT_EQ(item_ids(post_json("/v1/users/3/recommendations", {{"k", 3}})), first);
  const auto included =
      item_ids(post_json("/v1/users/3/recommendations", {{"include", {215, 216, 999}}}));
  for (int64_t item : included) EXPECT_TRUE(item == 215 || item == 216);

  auto message = [](const nlohmann::json& j) { return j["error"]["message"].get<std::string>(); };
  exclude.push_back(5);
  EXPECT_THAT(message(post_json("/v1/users/3/recommendations", {{"exclude", exclude}}, 400)),
              HasSubstr("exclude: more than 10000 item ids"));
  EXPECT_THAT(message(post_json("/v1/users/3/recommendations", {{"include", {1, "x"}}}, 400)),
              HasSubstr("include[1]: expected an integer item id"));
  EXPECT_THAT(message(post_json("/v1/users/3/recommendations", {{"k", 0}}, 400)),
              HasSubstr("k: expected an integer in 1..1000"));
  EXPECT_THAT(message(post_json("/v1/users/3/recommendations", {{"genre", "x"}}, 400)),
              HasSubstr("genre: unknown field"));
  EXPECT_THAT(message(post_json("/v1/users/3/recommendations?k=3", nlohmann::json::object(), 400)),
              HasSubstr("none are taken with POST"));
}

TEST_P(RecommendServiceTest, SimilarItems) {
  const auto body = get_json("/v1/items/105/similar?k=3");
  EXPECT_EQ(body["item"], 105);
  EXPECT_EQ(body["model_version"], "v1");
  const auto items = item_ids(body);
  EXPECT_FALSE(items.empty());
  EXPECT_THAT(items, ::testing::Not(::testing::Contains(105)));
  const auto missing = get_json("/v1/items/999/similar", 404);
  EXPECT_THAT(missing["error"]["message"].get<std::string>(), HasSubstr("999"));
}

// A key counts as what it percent-decodes to, as query_param reads it: "%6B" is k.
TEST_P(RecommendServiceTest, QueryParameterKeysAreReadDecoded) {
  EXPECT_EQ(item_ids(get_json("/v1/users/3/recommendations?%6B=2&ex%63lude=")).size(), 2u);
  EXPECT_EQ(item_ids(get_json("/v1/items/105/similar?%6b=2")).size(), 2u);
  auto message = [](const nlohmann::json& j) { return j["error"]["message"].get<std::string>(); };
  EXPECT_THAT(message(get_json("/v1/users/3/recommendations?k=2&%6B=3", 400)),
              HasSubstr("\"%6B\": given twice"));
  EXPECT_THAT(message(get_json("/v1/items/105/similar?k%20=2", 400)),
              HasSubstr("\"k%20\": unknown (expected k)"));
}

TEST_P(RecommendServiceTest, ValidationErrorsNameTheFieldPath) {
  auto message = [](const nlohmann::json& j) { return j["error"]["message"].get<std::string>(); };
  EXPECT_THAT(message(get_json("/v1/users/abc/recommendations", 400)),
              HasSubstr("path parameter id"));
  EXPECT_THAT(message(get_json("/v1/users/3/recommendations?k=0", 400)),
              HasSubstr("query parameter k"));
  EXPECT_THAT(message(get_json("/v1/users/3/recommendations?k=5000", 400)), HasSubstr("1..1000"));
  EXPECT_THAT(message(get_json("/v1/users/3/recommendations?exclude=1,x", 400)),
              HasSubstr("exclude[1]"));
  EXPECT_THAT(message(get_json("/v1/users/3/recommendations?genre=comedy", 400)),
              HasSubstr("\"genre\": unknown"));
  EXPECT_THAT(message(get_json("/v1/users/3/recommendations?include=1&include=2", 400)),
              HasSubstr("\"include\": given twice"));
  EXPECT_THAT(message(post_json(
                  "/v1/interactions",
                  {{"interactions",
                    {{{"user", 1}, {"item", 101}}, {{"user", 1}, {"item", 102}, {"weight", -1}}}}},
                  400)),
              HasSubstr("interactions[1].weight"));
  EXPECT_THAT(message(post_json("/v1/interactions", {{"user", "me"}, {"item", 101}}, 400)),
              HasSubstr("user: expected an integer"));
  EXPECT_THAT(message(post_json("/v1/interactions", {{"item", 101}}, 400)),
              HasSubstr("user: missing"));
  EXPECT_THAT(
      message(post_json("/v1/interactions", {{"user", 1}, {"item", 1}, {"colour", 1}}, 400)),
      HasSubstr("colour: unknown field"));
  nlohmann::json big = nlohmann::json::array();
  for (int i = 0; i < 51; ++i) big.push_back({{"user", 1}, {"item", 101}});
  EXPECT_THAT(message(post_json("/v1/interactions", {{"interactions", big}}, 400)),
              HasSubstr("at most 50"));
  const http::Response bad = call(http::Method::kPost, "/v1/interactions", "{\"user\": 1,");
  EXPECT_EQ(bad.status, 400);
  EXPECT_THAT(bad.body, HasSubstr("invalid JSON at byte"));
}

TEST_P(RecommendServiceTest, HotReloadSwapsTheModelOnPoll) {
  EXPECT_EQ(get_json("/v1/users/40/recommendations")["cold_start"], true);
  // Nothing new: poll() checks (the interval has passed at start) but keeps v1.
  auto polled = service_->poll();
  ASSERT_TRUE(polled);
  EXPECT_FALSE(*polled);
  // A new model that knows user 40.
  ASSERT_TRUE(recommend::save_model(*train(GetParam()), dir_.string()));
  clock_.advance(5s);
  EXPECT_FALSE(*service_->poll());  // within the interval: no check yet
  clock_.advance(6s);
  polled = service_->poll();
  ASSERT_TRUE(polled) << polled.error().message;
  EXPECT_TRUE(*polled);
  const auto body = get_json("/v1/users/40/recommendations");
  EXPECT_EQ(body["model_version"], "v2");
  EXPECT_EQ(body["cold_start"], false);
  const std::string m = metrics();
  EXPECT_THAT(m, HasSubstr("prescale_model_info{service=\"recommend\",version=\"v2\"} 1"));
  EXPECT_THAT(m, HasSubstr("prescale_model_info{service=\"recommend\",version=\"v1\"} 0"));
  EXPECT_EQ(get_json("/v1/model")["model_version"], "v2");
}

TEST_P(RecommendServiceTest, ABrokenNewModelKeepsTheServedOne) {
  auto saved = recommend::save_model(*train(GetParam()), dir_.string());
  ASSERT_TRUE(saved);
  std::filesystem::resize_file(saved->model_path, 10);
  const http::Response r = call(http::Method::kPost, "/v1/model/reload");
  EXPECT_EQ(r.status, 500);
  EXPECT_THAT(r.body, HasSubstr("recommend-v2"));
  EXPECT_EQ(get_json("/v1/model")["model_version"], "v1");
  EXPECT_THAT(metrics(), HasSubstr("prescale_recommend_reloads_total{result=\"error\"} 1"));
}

TEST_P(RecommendServiceTest, ConcurrentReadsDuringUpdatesAndReloads) {
  std::atomic<bool> stop{false};
  std::atomic<int> failures{0};
  std::vector<std::thread> readers;
  for (int t = 0; t < 3; ++t) {
    readers.emplace_back([&, t] {
      for (int i = 0; !stop.load(); ++i) {
        RecommendQuery q;
        q.user = 1 + (i + t) % 41;
        q.k = 5;
        auto r = service_->recommend(q);
        if (!r || r->items.empty()) failures.fetch_add(1);
      }
    });
  }
  for (int i = 0; i < 200; ++i) {
    std::vector<PostedInteraction> xs = {{1 + i % 41, 101 + i % 20, 1, std::nullopt}};
    ASSERT_TRUE(service_->add_interactions(xs));
    if (i == 100) {
      ASSERT_TRUE(recommend::save_model(*train(GetParam()), dir_.string()));
      ASSERT_TRUE(service_->reload());
    }
  }
  stop.store(true);
  for (auto& th : readers) th.join();
  EXPECT_EQ(failures.load(), 0);
  EXPECT_EQ(service_->model()->version(), 2);
}

TEST_P(RecommendServiceTest, AnIncludeListThatRepeatsAnIdReturnsEachItemOnce) {
  // User 3 is known to the model; user 40 is a cold start (popular items under the filter).
  for (const char* user : {"3", "40"}) {
    const auto items = item_ids(
        get_json(std::string("/v1/users/") + user + "/recommendations?k=3&include=215,215,216"));
    EXPECT_THAT(items, ::testing::UnorderedElementsAre(215, 216)) << "user " << user;
  }
}

TEST_P(RecommendServiceTest, AUserIdBeyondTheSigned64BitRangeIsRejectedNotWrapped) {
  if (GetParam() != ModelKind::kEase) GTEST_SKIP() << "the parsing is the same for every model";
  // 2^64 - 1 read as int64 is -1: the interaction would land in user -1's history.
  const http::Response r = call(http::Method::kPost, "/v1/interactions",
                                R"({"user": 18446744073709551615, "item": 201})");
  EXPECT_EQ(r.status, 400) << r.body;
  EXPECT_THAT(r.body, HasSubstr("user"));
  EXPECT_EQ(get_json("/v1/users/-1/recommendations")["cold_start"], true)
      << "user -1 posted nothing";
}

TEST_P(RecommendServiceTest, AManifestCopiedUnderANewVersionIsNotReloadedOnEveryLook) {
  if (GetParam() != ModelKind::kEase) GTEST_SKIP() << "the manifest is the same for every model";
  // v1's manifest copied as recommend-v2.json (a hand-made roll-forward): its "version" says 1.
  fs::copy_file(dir_ / "recommend-v1.json", dir_ / "recommend-v2.json");
  (void)service_->reload();  // served or refused, once
  // Nothing changed on disk since: another look must not swap in (a copy of) the model again,
  // which drops every user's cached factors and scores and counts one more reload.
  for (int look = 0; look < 2; ++look) {
    auto again = service_->reload();
    EXPECT_FALSE(again && *again) << "look " << look << " reloaded the unchanged directory";
  }
  // Refused once, and not read (nor counted) again while the files stay as they were.
  EXPECT_THAT(metrics(), HasSubstr("prescale_recommend_reloads_total{result=\"error\"} 1"));
}

TEST_P(RecommendServiceTest, AVersionDeletedAndTrainedAgainIsReloaded) {
  if (GetParam() != ModelKind::kEase) GTEST_SKIP() << "the files are the same for every model";
  ASSERT_TRUE(recommend::save_model(*train(GetParam()), dir_.string()));  // v2 knows user 40
  ASSERT_TRUE(service_->reload().value());
  EXPECT_EQ(get_json("/v1/users/40/recommendations")["cold_start"], false);
  // v2 deleted, and a new model (without user 40) trained: it is v2 again.
  fs::remove(dir_ / "recommend-v2.json");
  fs::remove(dir_ / "recommend-v2.bin");
  auto saved = recommend::save_model(*train(GetParam(), /*drop_last_users=*/2), dir_.string());
  ASSERT_TRUE(saved);
  ASSERT_EQ(saved->version, 2);
  const http::Response r = call(http::Method::kPost, "/v1/model/reload");
  ASSERT_EQ(r.status, 200) << r.body;
  EXPECT_EQ(nlohmann::json::parse(r.body)["reloaded"], true);
  EXPECT_EQ(get_json("/v1/users/40/recommendations")["cold_start"], true) << "the old v2 served";
  EXPECT_FALSE(service_->reload().value());  // unchanged since
}

INSTANTIATE_TEST_SUITE_P(Kinds, RecommendServiceTest,
                         ::testing::Values(ModelKind::kTopPop, ModelKind::kItemKnn, ModelKind::kAls,
                                           ModelKind::kEase),
                         KindName);

// EASE keeps the history scores of long histories: served from the cache or computed per
// request, the recommendations are the same, before and after a user's posted interactions.
TEST(RecommendServiceScoreCache, CachedHistoryScoresGiveTheSameRecommendations) {
  const fs::path dir =
      fs::temp_directory_path() / ("recommend_score_cache_" + std::to_string(::getpid()));
  fs::remove_all(dir);
  ASSERT_TRUE(recommend::save_model(*train(ModelKind::kEase), dir.string()));
  ManualClock clock;
  auto make = [&](size_t cache_bytes) {
    RecommendServiceOptions o;
    o.model_dir = dir.string();
    o.clock = &clock;
    o.background_poll = false;
    o.score_cache_bytes = cache_bytes;
    o.score_cache_min_history = 1;  // every history of the small test data
    auto service = make_recommend_service(o);
    EXPECT_TRUE(service) << service.error().message;
    return std::move(*service);
  };
  auto cached = make(64u << 20);
  auto uncached = make(0);
  auto tiny = make(16);  // room for no user: everyone is scored per request
  auto items = [](RecommendService& service, int64_t user) {
    auto r = service.recommend({user, 8, {}, {}});
    EXPECT_TRUE(r) << r.error().message;
    std::vector<int64_t> out;
    for (const auto& i : r->items) out.push_back(i.item);
    return out;
  };
  for (int round = 0; round < 2; ++round) {  // the second round reads the cache
    for (int64_t user = 1; user <= 40; ++user) {
      const auto expected = items(*uncached, user);
      EXPECT_EQ(items(*cached, user), expected) << "user " << user << ", round " << round;
      EXPECT_EQ(items(*tiny, user), expected) << "user " << user;
    }
  }
  // New interactions are a new revision: the cached scores of the old one are not used.
  for (int step = 0; step < 2; ++step) {
    std::vector<PostedInteraction> batch;
    for (int64_t item = 201 + step * 5; item < 206 + step * 5; ++item) {
      batch.push_back({3, item, 5, std::nullopt});
    }
    ASSERT_TRUE(cached->add_interactions(batch));
    ASSERT_TRUE(uncached->add_interactions(batch));
    const auto expected = items(*uncached, 3);
    EXPECT_EQ(items(*cached, 3), expected) << "after step " << step;
    EXPECT_EQ(items(*cached, 3), expected) << "cached, after step " << step;
  }
  fs::remove_all(dir);
}

// A response names the model that made it: "model" and "model_version" are of one model, and
// the items come from it, even when a reload swaps in a model of another kind meanwhile.
TEST(RecommendServiceReload, AResponseNamesTheModelThatMadeIt) {
  const fs::path dir =
      fs::temp_directory_path() / ("recommend_kinds_" + std::to_string(::getpid()));
  fs::remove_all(dir);
  ASSERT_TRUE(recommend::save_model(*train(ModelKind::kTopPop), dir.string()));   // v1
  ASSERT_TRUE(recommend::save_model(*train(ModelKind::kItemKnn), dir.string()));  // v2
  RecommendServiceOptions o;
  o.model_dir = dir.string();
  auto service = make_recommend_service(o);
  ASSERT_TRUE(service) << service.error().message;
  telemetry::Registry registry;
  runtime::RuntimeOptions ro;
  ro.server.port = 0;
  ro.server.threads = 2;
  ro.registry = &registry;
  runtime::Runtime runtime(**service, ro);
  ASSERT_TRUE(runtime.start());

  std::atomic<bool> stop{false};
  std::atomic<int> mixed{0}, answered{0};
  std::vector<std::thread> readers;
  for (const char* target : {"/v1/users/3/recommendations", "/v1/items/101/similar"}) {
    readers.emplace_back([&, target] {
      http::Client client;
      while (!stop.load()) {
        http::Request req;
        req.method = http::Method::kGet;
        req.method_name = "GET";
        req.target = target;
        auto r = client.request("127.0.0.1", runtime.port(), std::move(req));
        if (!r || r->status != 200) continue;
        const auto body = nlohmann::json::parse(r->body);
        const std::string pair =
            body["model"].get<std::string>() + " " + body["model_version"].get<std::string>();
        if (pair != "toppop v1" && pair != "itemknn v2") mixed.fetch_add(1);
        answered.fetch_add(1);
      }
    });
  }
  // v2 moved away and back: each reload serves the other model.
  const fs::path v2 = dir / "recommend-v2.json", away = dir / "away.json";
  const auto deadline = std::chrono::steady_clock::now() + 2s;
  for (int i = 0; std::chrono::steady_clock::now() < deadline && mixed.load() == 0; ++i) {
    fs::rename(i % 2 == 0 ? v2 : away, i % 2 == 0 ? away : v2);
    auto reloaded = (*service)->reload();
    ASSERT_TRUE(reloaded && *reloaded) << (reloaded ? "not reloaded" : reloaded.error().message);
  }
  stop.store(true);
  for (auto& t : readers) t.join();
  EXPECT_GT(answered.load(), 0);
  EXPECT_EQ(mixed.load(), 0) << "of " << answered.load() << " responses";
  fs::remove_all(dir);
}

// EASE scores only its item set (items with min_item_interactions): a user whose history has
// none of them is answered as a new user, not with arbitrary items at score 0.
TEST(RecommendServiceEase, AHistoryOutsideTheItemSetIsAColdStart) {
  auto data = recommend::testing::two_groups();
  data.push_back({41, 999, 1.0f, 2'000'000});  // item 999: one interaction, outside the set
  recommend::TrainOptions o;
  o.kind = ModelKind::kEase;
  o.ease.lambda = 1;
  o.ease.min_item_interactions = 2;
  auto model = recommend::Model::train(data, o);
  ASSERT_TRUE(model) << model.error().message;
  RecommendServiceOptions options;
  options.background_poll = false;
  RecommendService service(*model, options);
  auto expect_popular = [&](int64_t user) {
    auto r = service.recommend({user, 2, {}, {}});
    ASSERT_TRUE(r) << r.error().message;
    EXPECT_TRUE(r->cold_start) << "user " << user;
    std::vector<int64_t> items;
    for (const auto& i : r->items) items.push_back(i.item);
    EXPECT_THAT(items, ::testing::UnorderedElementsAre(101, 201)) << "user " << user;
  };
  expect_popular(41);  // trained on item 999 alone
  std::vector<PostedInteraction> posted = {{50, 999, 1, std::nullopt}};
  ASSERT_EQ(service.add_interactions(posted)->accepted, 1u);
  expect_popular(50);  // posted item 999 alone
  auto known = service.recommend({3, 2, {}, {}});
  ASSERT_TRUE(known);
  EXPECT_FALSE(known->cold_start);
}

// At startup a newest model that does not load is skipped for the one before it.
TEST(MakeRecommendService, SkipsANewestModelThatDoesNotLoad) {
  const fs::path dir =
      fs::temp_directory_path() / ("recommend_skip_newest_" + std::to_string(::getpid()));
  fs::remove_all(dir);
  ASSERT_TRUE(recommend::save_model(*train(ModelKind::kTopPop), dir.string()));  // v1
  auto v2 = recommend::save_model(*train(ModelKind::kTopPop), dir.string());
  ASSERT_TRUE(v2);
  fs::resize_file(v2->manifest_path, 20);  // truncated
  RecommendServiceOptions o;
  o.model_dir = dir.string();
  o.background_poll = false;
  auto service = make_recommend_service(o);
  ASSERT_TRUE(service) << service.error().message;
  EXPECT_EQ((*service)->model()->version(), 1);
  // The newest is tried again (and refused) by a reload; v1 stays.
  auto reloaded = (*service)->reload();
  ASSERT_FALSE(reloaded);
  EXPECT_THAT(reloaded.error().message, HasSubstr("recommend-v2.json"));
  EXPECT_EQ((*service)->model()->version(), 1);
  // When no version loads, the error names the newest.
  fs::resize_file(dir / "recommend-v1.json", 20);
  auto none = make_recommend_service(o);
  ASSERT_FALSE(none);
  EXPECT_THAT(none.error().message, HasSubstr("recommend-v2.json"));
  fs::remove_all(dir);
}

TEST(MakeRecommendService, NamesTheDirectoryWithoutAModel) {
  RecommendServiceOptions o;
  o.model_dir = "/nonexistent/models";
  auto s = make_recommend_service(o);
  ASSERT_FALSE(s);
  EXPECT_THAT(s.error().message, HasSubstr("/nonexistent/models"));
}

}  // namespace
}  // namespace prescale::services
