#include "healing/incident_watch.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <functional>
#include <nlohmann/json.hpp>

namespace prescale::healing {
namespace {

using namespace std::chrono_literals;

// A service answering 200 req/s, counted every 5 s, with an error budget of 0.1 %.
struct IncidentWatchTest : ::testing::Test {
  ManualClock clock;
  IncidentWatch watch;

  IncidentWatchTest() {
    watch.set_error_budget("web", 0.001);
    watch.set_error_budget("db", 0.001);
  }

  // `duration` of 5 s intervals of `service` with `failed` and `slow` shares of its requests;
  // returns the changes, and stops at the first one when `stop` is set.
  std::vector<IncidentChange> run(Clock::Duration duration, double failed, double slow = 0,
                                  const std::string& service = "web", double rps = 200,
                                  bool stop = true) {
    std::vector<IncidentChange> out;
    for (Clock::Duration d{0}; d < duration; d += 5s) {
      clock.advance(5s);
      IncidentSample s;
      s.at = clock.now();
      s.requests = rps * 5;
      s.failed = failed * s.requests;
      s.slow = slow * s.requests;
      auto c = watch.observe(service, s);
      out.insert(out.end(), c.begin(), c.end());
      if (stop && !c.empty()) break;
    }
    return out;
  }

  // Warning 3 on web, open for 10 minutes: 30 ms in service against its usual 20 ms.
  SlowdownWarning web_slowdown() const {
    SlowdownWarning w;
    w.id = 3;
    w.service = "web";
    w.opened_at = clock.now() - 10min;
    w.service_seconds = 0.03;
    w.usual_seconds = 0.02;
    return w;
  }

  // Half the requests of each of `services` failing, a look at all of them every 5 s, in that
  // order, until one opens (three looks at most): what opened.
  std::vector<IncidentChange> fail_together(const std::vector<std::string>& services) {
    std::vector<IncidentChange> changes;
    for (int i = 0; i < 3 && changes.empty(); ++i) {
      clock.advance(5s);
      IncidentSample failing;
      failing.at = clock.now();
      failing.requests = 1000;
      failing.failed = 500;
      std::vector<std::pair<std::string, IncidentSample>> look;
      for (const std::string& s : services) look.emplace_back(s, failing);
      changes = watch.observe(look);
    }
    return changes;
  }
};

TEST_F(IncidentWatchTest, AServiceWithinItsBudgetHasNoIncident) {
  // 0.05 % bad: half its budget's rate, for a day.
  EXPECT_TRUE(run(24h, 0.0003, 0.0002, "web", 200, false).empty());
  EXPECT_TRUE(watch.incidents().empty());
}

TEST_F(IncidentWatchTest, AnOutageOpensAnIncidentWithinAMinuteAndResolvesWhenNoRuleFires) {
  run(7h, 0);  // longer than the longest window
  const Clock::TimePoint outage = clock.now();
  const auto opened = run(10min, 1.0);
  ASSERT_EQ(opened.size(), 1u);
  const Incident& i = opened[0].incident;
  EXPECT_TRUE(opened[0].opened);
  EXPECT_EQ(i.id, 1u);
  EXPECT_EQ(i.service, "web");
  EXPECT_EQ(i.rule, "14.4x over 1h and 5m");
  // 1.44 % of an hour's 720,000 requests is 10,368 of them: 52 s of failing everything.
  EXPECT_GT(clock.now() - outage, 50s);
  EXPECT_LE(clock.now() - outage, 55s);
  EXPECT_NEAR(i.burn_rate, 1000 * 11.0 / 60, 1) << "11 of the short window's 60 samples failed";
  EXPECT_EQ(i.cause, "");
  EXPECT_EQ(
      opened[0].message,
      "incident 1 on web: 18.3 % of its requests failed or missed the SLO over the last 5 min "
      "(18.3 % failed, 0.00 % slow): 183.3x the rate its error budget (0.10 %) allows; "
      "likely cause: none seen (no recent change, no callee incident, load within its "
      "forecast)");
  ASSERT_TRUE(watch.open_incident("web"));
  EXPECT_FALSE(watch.open_incident("db"));

  // The outage goes on 2 more minutes, then ends: the 6x rule's 30 minutes keep it open until
  // they hold less than 0.6 % bad.
  EXPECT_TRUE(run(2min, 1.0).empty());
  const Clock::TimePoint ended = clock.now();
  const auto resolved = run(2h, 0);
  ASSERT_EQ(resolved.size(), 1u);
  EXPECT_FALSE(resolved[0].opened);
  ASSERT_TRUE(resolved[0].incident.resolved_at);
  EXPECT_GT(clock.now() - ended, 25min);
  EXPECT_LE(clock.now() - ended, 30min);
  EXPECT_NEAR(resolved[0].incident.peak_burn_rate, 1000 * 35.0 / 60, 1);
  EXPECT_NEAR(resolved[0].incident.failed, 35 * 1000, 1) << "the opening window and after";
  EXPECT_FALSE(watch.open_incident("web"));
  const std::vector<Incident> all = watch.incidents();
  ASSERT_EQ(all.size(), 1u);
  EXPECT_TRUE(all[0].resolved_at);
}

// A service removed while its incident is open: the incident is closed, said so, and kept among
// the resolved; the service is no longer watched.
TEST_F(IncidentWatchTest, AnIncidentOfARemovedServiceIsClosedAndKept) {
  EXPECT_FALSE(watch.forget("web")) << "nothing open";
  watch.set_error_budget("web", 0.001);
  run(1h, 0);
  ASSERT_EQ(run(10min, 1.0).size(), 1u);
  const std::optional<IncidentChange> closed = watch.forget("web");
  ASSERT_TRUE(closed);
  EXPECT_FALSE(closed->opened);
  EXPECT_EQ(closed->incident.resolved_at, clock.now());
  EXPECT_THAT(closed->message,
              testing::StartsWith("incident 1 on web closed: the service was removed from the "
                                  "configuration; "));
  EXPECT_FALSE(watch.open_incident("web"));
  ASSERT_EQ(watch.incidents().size(), 1u);
  EXPECT_TRUE(watch.incidents()[0].resolved_at);
  EXPECT_TRUE(run(10min, 1.0).empty()) << "no longer watched";
  EXPECT_FALSE(watch.forget("web"));
  // Its slowdown warning went with it: a service added again under its name is not blamed on it.
  watch.set_slowdown("web", web_slowdown());
  EXPECT_FALSE(watch.forget("web"));
  watch.set_error_budget("web", 0.001);
  run(1h, 0);
  const std::vector<IncidentChange> again = run(10min, 1.0);
  ASSERT_EQ(again.size(), 1u);
  EXPECT_EQ(again[0].incident.cause.find("slowdown"), std::string::npos) << again[0].incident.cause;
}

TEST_F(IncidentWatchTest, SlowRequestsBurnTheBudgetAsFailedOnesDo) {
  run(7h, 0);
  const auto opened = run(30min, 0, 0.05);
  ASSERT_EQ(opened.size(), 1u);
  EXPECT_EQ(opened[0].incident.failed, 0);
  EXPECT_GT(opened[0].incident.slow, 0);
  EXPECT_NE(opened[0].message.find("(0.00 % failed, 5.0 % slow)"), std::string::npos)
      << opened[0].message;
}

TEST_F(IncidentWatchTest, ASlowBurnOpensOnTheSixHourRule) {
  // 0.8 % bad: 8x the budget's rate, under 14.4x, over 6x.
  const auto opened = run(12h, 0.008, 0, "web", 200, true);
  ASSERT_EQ(opened.size(), 1u);
  EXPECT_EQ(opened[0].incident.rule, "6x over 6h and 30m");
}

TEST_F(IncidentWatchTest, AQuietServiceNeedsTenBadRequestsInTheShortWindow) {
  // A request every 200 s, each failing: 9 in 30 minutes (the 6x rule's short window). At
  // 1 req/s, 3 of every 5 failing: 10 in 20 s.
  EXPECT_TRUE(run(10h, 1.0, 0, "web", 0.005, false).empty());
  EXPECT_FALSE(run(10min, 0.6, 0, "web", 1, true).empty());
}

TEST_F(IncidentWatchTest, ASampleNotAfterTheLastOneAndAServiceWithoutABudgetAreIgnored) {
  IncidentSample s;
  s.at = clock.now() + 10s;
  s.requests = 1000;
  EXPECT_TRUE(watch.observe("web", s).empty());
  s.failed = 1000;
  EXPECT_TRUE(watch.observe("web", s).empty()) << "same time";
  s.at -= 5s;
  s.failed = 1000;
  EXPECT_TRUE(watch.observe("web", s).empty()) << "earlier";
  s.at += 10s;
  EXPECT_FALSE(watch.observe("web", s).empty()) << "half failed";
  EXPECT_TRUE(watch.observe("nobody", s).empty());
  watch.set_error_budget("web", 0);
  EXPECT_TRUE(watch.incidents().empty()) << "unwatched: forgotten";
}

TEST_F(IncidentWatchTest, ACalleeIncidentIsTheCallersLikelyCause) {
  watch.set_calls({{"web", "db"}, {"web", "web"}});
  run(1h, 0, 0, "web");  // an hour of good traffic
  // db (new) fails at once; web fails with it a little later.
  ASSERT_EQ(run(2min, 1.0, 0, "db").size(), 1u);
  const auto opened = run(2min, 0.5, 0, "web");
  ASSERT_EQ(opened.size(), 1u);
  EXPECT_EQ(opened[0].incident.cause.substr(0, 28), "its callee db's incident 1, ")
      << opened[0].incident.cause;
  // Not the other way round: db's own cause is not its caller's.
  EXPECT_EQ(watch.incidents().size(), 2u);
  EXPECT_EQ(watch.incidents()[0].service, "web") << "newest first";
  EXPECT_EQ(watch.incidents()[1].cause, "");
}

// The usual case: a callee fails, and its callers with it, from the same look on. The callee's
// incident opens first whatever the order of the samples, and the caller's names it.
TEST_F(IncidentWatchTest, ACallerAndItsCalleeOpeningAtOneLookOpenCalleeFirst) {
  watch.set_calls({{"web", "db"}});
  const std::vector<IncidentChange> changes = fail_together({"web", "db"});
  ASSERT_EQ(changes.size(), 2u);
  EXPECT_EQ(changes[0].incident.service, "db");
  EXPECT_EQ(changes[0].incident.cause, "");
  EXPECT_EQ(changes[1].incident.service, "web");
  EXPECT_EQ(changes[1].incident.cause, "its callee db's incident 1, open for 0 s");
}

// In a cycle (web and db call each other, api calls web), a member of the cycle opens first, and
// the caller outside it names it.
TEST_F(IncidentWatchTest, InACycleAMemberOpensFirst) {
  watch.set_error_budget("api", 0.001);
  watch.set_calls({{"web", "db"}, {"db", "web"}, {"api", "web"}});
  const std::vector<IncidentChange> changes = fail_together({"api", "web", "db"});
  ASSERT_EQ(changes.size(), 3u);
  EXPECT_EQ(changes[0].incident.service, "web");
  EXPECT_EQ(changes[1].incident.service, "api");
  EXPECT_EQ(changes[1].incident.cause, "its callee web's incident 1, open for 0 s");
  EXPECT_EQ(changes[2].incident.service, "db");
  EXPECT_EQ(changes[2].incident.cause, "its callee web's incident 1, open for 0 s");
}

TEST_F(IncidentWatchTest, ACountThatIsNotANumberCountsAsNone) {
  IncidentSample gap;
  gap.at = clock.now() + 5s;
  gap.requests = NAN;
  gap.failed = NAN;
  gap.slow = -5;
  EXPECT_TRUE(watch.observe("web", gap).empty());
  clock.advance(5s);
  const auto opened = run(1min, 1.0);
  ASSERT_EQ(opened.size(), 1u) << "the gap did not silence the watch";
  EXPECT_EQ(opened[0].incident.requests, 1000);
}

TEST_F(IncidentWatchTest, AWatchWithoutRulesOpensNothing) {
  IncidentWatch none(IncidentWatchOptions{.rules = {}});
  none.set_error_budget("web", 0.001);
  for (int i = 1; i <= 3; ++i) {
    IncidentSample s;
    s.at = clock.now() + i * 5s;
    s.requests = s.failed = 1000;
    EXPECT_TRUE(none.observe("web", s).empty());
  }
}

TEST_F(IncidentWatchTest, ARecentChangeIsTheLikelyCauseTheMostTellingFirst) {
  run(7h, 0);
  watch.note_scale("web", 3, 4, "forecast");        // a scale-out is no cause
  watch.note_event("web", "ready", "web-4 ready");  // nor a replica becoming ready
  watch.note_event("web", "eject", "web-2 out of service");
  watch.note_event("web", "kill", "web-3 killed: its drain outlasted the grace");  // no cause
  run(3min, 0);
  watch.note_event("web", "rollout", "revision 2 replaces revision 1");
  watch.note_scale("web", 4, 2, "forecast lower");
  const auto opened = run(5min, 1.0);
  ASSERT_EQ(opened.size(), 1u);
  // 55 s of failing everything opens it (the first test), 55 s after the rollout.
  EXPECT_EQ(opened[0].incident.cause, "a rollout 55 s before: revision 2 replaces revision 1");
}

// A service slower than usual (a slowdown warning open), or one it calls, misses its SLO.
TEST_F(IncidentWatchTest, AnOpenSlowdownWarningIsTheLikelyCause) {
  watch.set_calls({{"web", "db"}, {"web", "cache"}});
  run(7h, 0);
  SlowdownWarning w = web_slowdown();
  watch.set_slowdown("web", w);
  w.id = 2;
  w.service = "db";
  w.opened_at = clock.now() - 20min;
  watch.set_slowdown("db", w);
  auto opened = run(5min, 0, 1.0);
  ASSERT_EQ(opened.size(), 1u);
  // Its own first, however older the callee's, which follows as it stands now.
  EXPECT_EQ(opened[0].incident.cause,
            "its slowdown warning 3, open for 11 min: each request takes 1.50x its usual 20.0 ms "
            "in service; and its callee db's slowdown warning 2, open for 21 min");
  run(2h, 0, 0, "web", 200, false);
  ASSERT_FALSE(watch.open_incident("web"));
  watch.set_slowdown("web", std::nullopt);  // cleared: the callee's is left
  w.id = 4;
  w.service = "cache";
  w.opened_at = clock.now() - 1min;
  watch.set_slowdown("cache", w);
  opened = run(5min, 0, 1.0);
  ASSERT_EQ(opened.size(), 1u);
  EXPECT_EQ(opened[0].incident.cause.substr(0, 46),
            "its callee db's slowdown warning 2, open for 2")
      << opened[0].incident.cause;
  // A recent change of the service comes first.
  run(2h, 0, 0, "web", 200, false);
  watch.note_event("web", "crash", "web-1 exited with status 3");
  opened = run(5min, 0, 1.0);
  ASSERT_EQ(opened.size(), 1u);
  EXPECT_EQ(opened[0].incident.cause.substr(0, 8), "a crash ") << opened[0].incident.cause;
}

TEST_F(IncidentWatchTest, AChangeBeforeTheFirstSampleCountsFromIt) {
  watch.note_event("web", "rollout", "revision 2 replaces revision 1");
  const auto opened = run(1min, 1.0);
  ASSERT_EQ(opened.size(), 1u);
  EXPECT_EQ(opened[0].incident.cause, "a rollout just before: revision 2 replaces revision 1")
      << "noted at the first sample's time, which opens it";
  EXPECT_NE(opened[0].message.find(" the SLO since watching began ("), std::string::npos)
      << opened[0].message;
}

TEST_F(IncidentWatchTest, AChangeOlderThanTheLookbackIsNoCause) {
  run(7h, 0);
  watch.note_event("web", "crash", "web-1 exited with status 1");
  run(11min, 0);
  const auto opened = run(5min, 1.0);
  ASSERT_EQ(opened.size(), 1u);
  EXPECT_EQ(opened[0].incident.cause, "");
}

TEST_F(IncidentWatchTest, TooFewReadyReplicasOrUnforeseenLoadIsTheLikelyCause) {
  run(1h, 0);
  IncidentSample s;
  s.requests = 1000;
  s.failed = 1000;
  s.planned_replicas = 4;
  s.ready_replicas = 2;
  s.load_rps = 200;
  s.forecast_p99_rps = 50;
  std::vector<IncidentChange> c;
  while (c.empty()) {
    clock.advance(5s);
    s.at = clock.now();
    c = watch.observe("web", s);
  }
  EXPECT_EQ(c[0].incident.cause, "2 of its 4 planned replicas ready");

  watch.set_error_budget("db", 0.001);
  run(1h, 0, 0, "db");
  s.ready_replicas = 4;
  c.clear();
  while (c.empty()) {
    clock.advance(5s);
    s.at = clock.now();
    c = watch.observe("db", s);
  }
  EXPECT_EQ(c[0].incident.cause,
            "load 200.0 req/s, 4.0x its forecast's P99: demand nobody saw coming");
}

TEST_F(IncidentWatchTest, OnlyTheNewestResolvedIncidentsAreKept) {
  IncidentWatchOptions options;
  options.max_kept = 2;
  IncidentWatch small(options);
  small.set_error_budget("web", 0.001);
  watch = small;
  for (int i = 0; i < 3; ++i) {
    run(7h, 0);
    ASSERT_EQ(run(5min, 1.0).size(), 1u);
    ASSERT_EQ(run(2h, 0).size(), 1u);
  }
  const std::vector<Incident> kept = watch.incidents();
  ASSERT_EQ(kept.size(), 2u);
  EXPECT_EQ(kept[0].id, 3u);
  EXPECT_EQ(kept[1].id, 2u);
}

// What a restart keeps (docs/state.md).
TEST_F(IncidentWatchTest, AnIncidentOpenAtTheStopStaysOpenAfterTheRestart) {
  run(7h, 0);
  ASSERT_EQ(run(10min, 1.0).size(), 1U);
  const nlohmann::json saved = watch.to_json(clock.now());
  clock.advance(1h);  // the platform down
  watch = IncidentWatch();
  watch.set_error_budget("web", 0.001);
  ASSERT_TRUE(watch.from_json(nlohmann::json::parse(saved.dump()), clock.now()));
  ASSERT_TRUE(watch.open_incident("web"));
  EXPECT_EQ(watch.open_incident("web")->id, 1U);
  EXPECT_TRUE(run(2min, 1.0).empty());  // the same incident goes on
  const auto resolved = run(2h, 0);
  ASSERT_EQ(resolved.size(), 1U);
  EXPECT_FALSE(resolved[0].opened);
  EXPECT_EQ(resolved[0].incident.id, 1U);
  // Its requests while open, before the restart (the opening's) and after (2 minutes' and those
  // until it resolved).
  EXPECT_GT(resolved[0].incident.failed, 200 * 60 * 2);
  const auto again = run(10min, 1.0);
  ASSERT_EQ(again.size(), 1U);
  EXPECT_EQ(again[0].incident.id, 2U);
  EXPECT_EQ(watch.incidents().size(), 2U);
  // A change noted after the restore, before the next sample, dates from that sample, not from
  // the last one before the stop.
  run(2h, 0, 0, "web", 200, false);
  ASSERT_FALSE(watch.open_incident("web"));
  const nlohmann::json again_saved = watch.to_json(clock.now());
  clock.advance(1h);
  watch = IncidentWatch();
  watch.set_error_budget("web", 0.001);
  ASSERT_TRUE(watch.from_json(again_saved, clock.now()));
  watch.note_event("web", "crash", "web-1 exited with status 3");
  const auto crashed = run(10min, 1.0);
  ASSERT_EQ(crashed.size(), 1U);
  EXPECT_EQ(crashed[0].incident.id, 3U);
  EXPECT_EQ(crashed[0].incident.cause.substr(0, 8), "a crash ") << crashed[0].incident.cause;
}

// A change noted just before a stop (a rollout, then the platform restarted) is still a likely
// cause after the restart: its age goes on from the save, the time down not counted; one older
// than the lookback at the incident is not.
TEST_F(IncidentWatchTest, AChangeNotedBeforeAStopIsStillACauseAfterTheRestart) {
  run(7h, 0);
  watch.note_event("web", "scale", "scaled in 4 -> 2: forecast");
  run(1min, 0);
  watch.note_event("web", "rollout", "web rolls out revision 2");
  run(1min, 0);
  const nlohmann::json saved = watch.to_json(clock.now());
  size_t web = 0;
  while (web < saved.at("services").size() && saved.at("services").at(web).at("name") != "web") {
    ++web;
  }
  ASSERT_LT(web, saved.at("services").size());
  ASSERT_EQ(saved.at("services").at(web).at("events").size(), 2U);
  clock.advance(1h);  // the platform down
  watch = IncidentWatch();
  watch.set_error_budget("web", 0.001);
  ASSERT_TRUE(watch.from_json(nlohmann::json::parse(saved.dump()), clock.now()));
  const auto opened = run(10min, 1.0);
  ASSERT_EQ(opened.size(), 1U);
  const std::string& cause = opened[0].incident.cause;
  EXPECT_EQ(cause.substr(0, 10), "a rollout ") << cause;
  EXPECT_NE(cause.find(": web rolls out revision 2"), std::string::npos) << cause;
  // Events out of order are refused, naming them.
  nlohmann::json bad = saved;
  std::swap(bad["services"][web]["events"][0], bad["services"][web]["events"][1]);
  watch = IncidentWatch();
  watch.set_error_budget("web", 0.001);
  const auto refused = watch.from_json(bad, clock.now());
  ASSERT_FALSE(refused);
  EXPECT_EQ(refused.error().message,
            "incident state: services[web].events: not in increasing time");
}

TEST_F(IncidentWatchTest, ABurnAcrossTheRestartOpensAsItWouldHaveToTheMinute) {
  // 2 % of the requests failing: the 1-hour rule (14.4 times 0.1 %) fires once the hour's share
  // reaches 1.44 %, after about 43 minutes. The platform restarts after 30 of them.
  run(7h, 0);
  run(30min, 0.02, 0, "web", 200, false);
  IncidentWatch restored;
  restored.set_error_budget("web", 0.001);
  ASSERT_TRUE(restored.from_json(watch.to_json(clock.now()), clock.now()));
  const Clock::TimePoint restart = clock.now();
  std::optional<Clock::TimePoint> opened, opened_restored;
  for (int i = 0; i < 12 * 30 && !(opened && opened_restored); ++i) {
    clock.advance(5s);
    IncidentSample s;
    s.at = clock.now();
    s.requests = 1000;
    s.failed = 20;
    if (!watch.observe("web", s).empty()) opened = clock.now();
    if (!restored.observe("web", s).empty()) opened_restored = clock.now();
  }
  ASSERT_TRUE(opened);
  ASSERT_TRUE(opened_restored);
  EXPECT_GE(*opened - restart, 10min);
  EXPECT_LE(*opened - restart, 16min);
  EXPECT_LE(std::chrono::abs(*opened - *opened_restored), 1min);
}

TEST_F(IncidentWatchTest, AStateNoRunCouldWriteIsRefusedWholeAndUnwatchedServicesAreSkipped) {
  run(7h, 0);
  ASSERT_EQ(run(10min, 1.0).size(), 1U);
  run(7h, 0, 0, "web", 200, false);
  ASSERT_EQ(run(10min, 1.0).size(), 1U);
  const nlohmann::json good = watch.to_json(clock.now());
  auto refused = [&](const std::function<void(nlohmann::json&)>& edit) {
    nlohmann::json bad = good;
    edit(bad);
    IncidentWatch other;
    other.set_error_budget("web", 0.001);
    const nlohmann::json before = other.to_json(clock.now());
    const auto result = other.from_json(bad, clock.now());
    EXPECT_FALSE(result);
    EXPECT_EQ(other.to_json(clock.now()), before);  // unchanged
    return result ? std::string() : result.error().message;
  };
  EXPECT_EQ(refused([](nlohmann::json& j) { j["services"][1]["counts"][0][2] = -5; }),
            "incident state: services[web].counts: negative");
  EXPECT_EQ(refused([](nlohmann::json& j) { j["resolved"][0]["id"] = 9; }),
            "incident state: resolved[0].id: not in [1, next_id)");
  EXPECT_EQ(refused([](nlohmann::json& j) { j["services"][1]["open"]["resolved_at_age_ns"] = 0; }),
            "incident state: services[web].open: not an open incident of web");
  EXPECT_NE(refused([](nlohmann::json& j) { j["services"][1].erase("counts"); }).find("counts"),
            std::string::npos);
  EXPECT_EQ(refused([](nlohmann::json& j) { j["services"].push_back(j["services"][1]); }),
            "incident state: services[web]: listed twice");
  EXPECT_EQ(refused([](nlohmann::json& j) { j["services"][1]["counts"][0][0] = -1; }),
            "incident state: services[web].counts: not an age in [0, 100 years]");
  // A service without an error budget now (removed while stopped) is not restored; its open
  // incident is closed at its last count and kept with the resolved one, newest first (it was
  // dropped before, and the incident list lost it).
  IncidentWatch only_db;
  only_db.set_error_budget("db", 0.001);
  ASSERT_TRUE(only_db.from_json(good, clock.now()));
  EXPECT_FALSE(only_db.open_incident("web"));
  EXPECT_EQ(only_db.opened(), 2U);
  const std::vector<Incident> kept = only_db.incidents();
  ASSERT_EQ(kept.size(), 2U);
  EXPECT_EQ(kept[0].id, 2U);
  EXPECT_EQ(kept[0].resolved_at, clock.now());  // the last count, saved just now
  EXPECT_EQ(kept[1].id, 1U);
  EXPECT_LT(kept[1].resolved_at, kept[0].resolved_at);
  // Its entry is checked as a watched one's is.
  IncidentWatch db_again;
  db_again.set_error_budget("db", 0.001);
  nlohmann::json twice = good;
  twice["services"].push_back(twice["services"][1]);
  EXPECT_FALSE(db_again.from_json(twice, clock.now()));
}

}  // namespace
}  // namespace prescale::healing
