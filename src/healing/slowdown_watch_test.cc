#include "healing/slowdown_watch.h"

#include <gtest/gtest.h>

#include <cmath>
#include <functional>
#include <nlohmann/json.hpp>

namespace prescale::healing {
namespace {

using namespace std::chrono_literals;

// A service whose requests usually take 100 ms in service at 200 req/s, ±10 % from one scrape to
// the next (a fixed pattern, so every run is the same), a scrape a minute unless told otherwise.
// Its P99 is 250 ms.
struct SlowdownWatchTest : ::testing::Test {
  ManualClock clock;
  SlowdownWatch watch;
  long n = 0;

  // The next point's noise: a factor in [0.9, 1.1].
  double noise() {
    ++n;
    return 1.0 + 0.1 * std::sin(static_cast<double>(n) * 2.3999632);
  }

  // `duration` of scrapes every `every` at `factor` times the usual service time and `load`
  // times the usual load; the changes, stopping at the first one when `stop` is set.
  std::vector<SlowdownChange> run(Clock::Duration duration, double factor, double load = 1,
                                  bool stop = true, Clock::Duration every = 1min) {
    std::vector<SlowdownChange> out;
    for (Clock::Duration d{0}; d < duration; d += every) {
      clock.advance(every);
      const double x = noise();
      auto c = watch.observe("web", {clock.now(), 0.1 * factor * x, 0.25, 200 * load * x});
      if (!c) continue;
      out.push_back(*c);
      if (stop) break;
    }
    return out;
  }
};

TEST_F(SlowdownWatchTest, AServiceAtItsUsualServiceTimeHasNoWarning) {
  EXPECT_TRUE(run(7 * 24h, 1, 1, false).empty());
  EXPECT_EQ(watch.opened(), 0U);
}

TEST_F(SlowdownWatchTest, ASlowerServiceIsToldWithinMinutesAndClearedWhenItRecovers) {
  run(6h, 1, 1, false);
  const auto opened = run(1h, 1.5);
  ASSERT_EQ(opened.size(), 1U);
  const SlowdownWarning& w = opened[0].warning;
  EXPECT_TRUE(opened[0].opened);
  EXPECT_EQ(w.id, 1U);
  EXPECT_EQ(w.service, "web");
  EXPECT_NEAR(w.usual_seconds, 0.1, 0.01);
  // The median of the last five points at the third slow one: the least of the three.
  EXPECT_GE(w.service_seconds / w.usual_seconds, 1.2);
  EXPECT_LE(w.service_seconds / w.usual_seconds, 1.6);
  EXPECT_NEAR(w.load_ratio, 1, 0.1);
  EXPECT_DOUBLE_EQ(w.p99_seconds, 0.25);
  EXPECT_NE(opened[0].message.find("slowdown warning 1 on web: each request takes 1"),
            std::string::npos)
      << opened[0].message;
  EXPECT_NE(opened[0].message.find(" in service (the median over 4 min), 1."), std::string::npos)
      << opened[0].message;
  EXPECT_NE(opened[0].message.find("its usual 10"), std::string::npos) << opened[0].message;
  EXPECT_NE(opened[0].message.find("its usual load; its P99 is 250 ms"), std::string::npos)
      << opened[0].message;
  ASSERT_TRUE(watch.open_warning("web"));

  run(30min, 1.5, 1, false);  // still open: one warning for the whole episode
  EXPECT_EQ(watch.opened(), 1U);
  const auto cleared = run(1h, 1);
  ASSERT_EQ(cleared.size(), 1U);
  EXPECT_FALSE(cleared[0].opened);
  EXPECT_NE(cleared[0].message.find("slowdown warning 1 on web cleared after 3"), std::string::npos)
      << cleared[0].message;
  EXPECT_FALSE(watch.open_warning("web"));
  ASSERT_EQ(watch.warnings().size(), 1U);
  EXPECT_TRUE(watch.warnings()[0].cleared_at);
}

TEST_F(SlowdownWatchTest, TheOpeningComesAtTheThirdSlowPoint) {
  run(6h, 1, 1, false);
  const Clock::TimePoint release = clock.now();
  const auto opened = run(1h, 1.5);
  ASSERT_EQ(opened.size(), 1U);
  EXPECT_EQ(opened[0].warning.opened_at - release, 3min);
}

TEST_F(SlowdownWatchTest, ASpikeOfTwoMinutesIsNoWarning) {
  run(6h, 1, 1, false);
  for (int i = 0; i < 10; ++i) {
    EXPECT_TRUE(run(2min, 3, 3, false).empty());
    EXPECT_TRUE(run(1h, 1, 1, false).empty());
  }
}

TEST_F(SlowdownWatchTest, ASmallRiseIsNoWarningHoweverUnusual) {
  run(6h, 1, 1, false);
  EXPECT_TRUE(run(2h, 1.15, 1, false).empty());
}

TEST_F(SlowdownWatchTest, ASubMillisecondSlowdownIsNoWarning) {
  // A service of 0.2 ms a request taking 0.3 ms: 1.5 times, but a tenth of a millisecond more.
  for (int i = 0; i < 6 * 60; ++i) {
    clock.advance(1min);
    EXPECT_FALSE(watch.observe("fast", {clock.now(), 0.0002 * noise(), NAN, 200}));
  }
  for (int i = 0; i < 2 * 60; ++i) {
    clock.advance(1min);
    EXPECT_FALSE(watch.observe("fast", {clock.now(), 0.0003 * noise(), NAN, 200}));
  }
  // 2 ms more is told.
  std::optional<SlowdownChange> told;
  for (int i = 0; i < 10 && !told; ++i) {
    clock.advance(1min);
    told = watch.observe("fast", {clock.now(), 0.0022 * noise(), NAN, 200});
  }
  EXPECT_TRUE(told && told->opened);
}

TEST_F(SlowdownWatchTest, AValueHoveringAtTheBarOpensOneWarning) {
  run(6h, 1, 1, false);
  ASSERT_EQ(run(1h, 1.3).size(), 1U);
  // Between 1.15 and 1.3 times the usual, under the bar and over it by turns: the same warning.
  for (int i = 0; i < 20; ++i) {
    EXPECT_TRUE(run(3min, 1.15, 1, false).empty()) << i;
    EXPECT_TRUE(run(3min, 1.3, 1, false).empty()) << i;
  }
  EXPECT_EQ(watch.opened(), 1U);
  // Back under 1.1 times: cleared.
  const auto cleared = run(30min, 1);
  ASSERT_EQ(cleared.size(), 1U);
  EXPECT_FALSE(cleared[0].opened);
}

TEST_F(SlowdownWatchTest, TheFirstScrapesDoNotMakeTheUsual) {
  // Replicas just started answer 1.5 times slower for the first two minutes: the usual is the
  // mean of what follows too, so a release 1.5 times slower is still told.
  run(2min, 1.5, 1, false);
  EXPECT_TRUE(run(6h, 1, 1, false).empty());
  EXPECT_EQ(run(1h, 1.5).size(), 1U);
}

TEST_F(SlowdownWatchTest, FastFirstScrapesAreNoFalseWarning) {
  run(3min, 0.6, 1, false);
  EXPECT_TRUE(run(24h, 1, 1, false).empty());
}

TEST_F(SlowdownWatchTest, TheSameSlowdownBackHoursLaterIsToldAgain) {
  run(6h, 1, 1, false);
  ASSERT_EQ(run(1h, 1.5).size(), 1U);
  run(2h, 1.5, 1, false);
  const auto cleared = run(2h, 1);
  ASSERT_EQ(cleared.size(), 1U);
  EXPECT_FALSE(cleared[0].opened);
  run(2h, 1, 1, false);
  const auto again = run(1h, 1.5);
  ASSERT_EQ(again.size(), 1U);
  EXPECT_TRUE(again[0].opened);
  EXPECT_EQ(again[0].warning.id, 2U);
}

// A long warning moves the usual toward the slow speed; once the service is back, the usual is
// the one it had before (left where the warning moved it, the normal values after would widen the
// deviation and raise the bar: a 20-hour warning hid the same slowdown 3 to 24 hours later).
TEST_F(SlowdownWatchTest, AfterALongWarningTheSameSlowdownBackIsToldAgain) {
  run(48h, 1, 1, false);
  ASSERT_EQ(run(1h, 1.5).size(), 1U);
  EXPECT_TRUE(run(20h, 1.5, 1, false).empty());  // open all along
  const auto cleared = run(1h, 1);
  ASSERT_EQ(cleared.size(), 1U);
  EXPECT_FALSE(cleared[0].opened);
  EXPECT_TRUE(run(8h, 1, 1, false).empty());
  const auto again = run(1h, 1.5);
  ASSERT_EQ(again.size(), 1U);
  EXPECT_TRUE(again[0].opened);
  EXPECT_NEAR(again[0].warning.usual_seconds, 0.1, 0.01);

  // Saved and restored while open, it clears and warns the same.
  SlowdownWatch restored;
  ASSERT_TRUE(restored.from_json(watch.to_json(clock.now()), clock.now()));
  EXPECT_EQ(restored.to_json(clock.now()), watch.to_json(clock.now()));
}

TEST_F(SlowdownWatchTest, AGapInTheScrapesIsNoTimeAtTheNewSpeed) {
  run(6h, 1, 1, false);
  ASSERT_EQ(run(1h, 1.5).size(), 1U);
  // No scrape for three days (the service idle), then the same slower requests: still open.
  clock.advance(3 * 24h);
  EXPECT_TRUE(run(30min, 1.5, 1, false).empty());
  EXPECT_TRUE(watch.open_warning("web"));
}

TEST_F(SlowdownWatchTest, UnderMoreLoadTheMessageSaysSo) {
  run(6h, 1, 1, false);
  const auto opened = run(1h, 2, 2.5);
  ASSERT_EQ(opened.size(), 1U);
  EXPECT_GE(opened[0].warning.load_ratio, 1.8);
  EXPECT_LE(opened[0].warning.load_ratio, 2.8);
  EXPECT_NE(opened[0].message.find("x its usual load"), std::string::npos) << opened[0].message;
}

TEST_F(SlowdownWatchTest, ANewServiceTimeBecomesTheUsualOne) {
  run(6h, 1, 1, false);
  ASSERT_EQ(run(1h, 1.5).size(), 1U);
  // The detector goes on learning: after hours at the new service time it is the usual one.
  const auto cleared = run(3 * 24h, 1.5);
  ASSERT_EQ(cleared.size(), 1U);
  EXPECT_FALSE(cleared[0].opened);
  EXPECT_GT(clock.now() - cleared[0].warning.opened_at, 6h);
  EXPECT_TRUE(run(7 * 24h, 1.5, 1, false).empty());
}

TEST_F(SlowdownWatchTest, NoWarningDuringTheWarmUp) {
  // The first 30 values (from the fifth minute: the median needs 5 points) are the warm-up: a
  // service three times slower from its 20th minute is slow from its start, and it is the usual.
  EXPECT_TRUE(run(20min, 1, 1, false).empty());
  EXPECT_TRUE(run(2h, 3, 1, false).empty());
}

TEST_F(SlowdownWatchTest, PointsEveryFiveSecondsAreComparedOnceAMinute) {
  const Clock::TimePoint start = clock.now();
  run(6h, 1, 1, false, 5s);
  const Clock::TimePoint release = clock.now();
  const auto opened = run(1h, 1.5, 1, true, 5s);
  ASSERT_EQ(opened.size(), 1U);
  // The median of the last 5 minutes' 60 points turns after 2.5 minutes; the next comparison is
  // on the minute.
  EXPECT_GT(opened[0].warning.opened_at - release, 150s);
  EXPECT_LE(opened[0].warning.opened_at - release, 210s);
  // The first comparison was at the fifth point (25 s), the next ones at the first point of each
  // minute of the clock (every service of a look together).
  EXPECT_LT(opened[0].warning.opened_at.time_since_epoch() % 60s, 5s);
  EXPECT_GE(opened[0].warning.opened_at - start, 6h);
}

TEST_F(SlowdownWatchTest, GapsAndStaleSamplesChangeNothing) {
  run(6h, 1, 1, false);
  const Clock::TimePoint last = clock.now();
  for (const double bad : {double{NAN}, 0.0, -1.0, double{INFINITY}}) {
    clock.advance(1min);
    EXPECT_FALSE(watch.observe("web", {clock.now(), bad, 0.25, 200}));
  }
  // Not after the last point.
  for (int i = 0; i < 10; ++i) EXPECT_FALSE(watch.observe("web", {last, 1.0, 0.25, 200}));
  EXPECT_FALSE(watch.open_warning("web"));
  // A load never known is left out of the message.
  for (int i = 0; i < 6 * 60; ++i) {
    clock.advance(1min);
    EXPECT_FALSE(watch.observe("api", {clock.now(), 0.1 * noise(), NAN, NAN}));
  }
  for (int i = 0; i < 5; ++i) {
    clock.advance(1min);
    if (auto c = watch.observe("api", {clock.now(), 0.2, NAN, NAN})) {
      EXPECT_EQ(c->message.find("load"), std::string::npos) << c->message;
      EXPECT_EQ(c->message.find("P99"), std::string::npos) << c->message;
      EXPECT_TRUE(c->opened);
      return;
    }
  }
  ADD_FAILURE() << "no warning on twice the usual service time";
}

TEST_F(SlowdownWatchTest, ServicesAreWatchedApartAndListedNewestFirst) {
  for (int i = 0; i < 6 * 60; ++i) {
    clock.advance(1min);
    const double x = noise();
    watch.observe("web", {clock.now(), 0.1 * x, 0.25, 200});
    watch.observe("db", {clock.now(), 0.01 * x, 0.025, 400});
  }
  for (int i = 0; i < 10; ++i) {
    clock.advance(1min);
    const double x = noise();
    watch.observe("db", {clock.now(), 0.02 * x, 0.05, 400});
    watch.observe("web", {clock.now(), (i < 5 ? 0.1 : 0.2) * x, 0.5, 200});
  }
  const auto all = watch.warnings();
  ASSERT_EQ(all.size(), 2U);
  EXPECT_EQ(all[0].service, "web");
  EXPECT_EQ(all[1].service, "db");
  EXPECT_NEAR(all[1].usual_seconds, 0.01, 0.001);
}

// What a restart keeps (docs/state.md): the usual, so a slowdown across the restart is told at
// once, without another warm-up against the new speed.
TEST_F(SlowdownWatchTest, ARestoredWatchGoesOnFromWhatItLearned) {
  run(6h, 1, 1, false);
  const nlohmann::json saved = watch.to_json(clock.now());
  // The platform is stopped for ten hours, and the service comes back 1.5 times slower.
  clock.advance(10h);
  const Clock::TimePoint restart = clock.now();
  watch = SlowdownWatch();
  ASSERT_TRUE(watch.from_json(nlohmann::json::parse(saved.dump()), clock.now()));
  const auto opened = run(1h, 1.5);
  ASSERT_EQ(opened.size(), 1U);
  EXPECT_TRUE(opened[0].opened);
  EXPECT_NEAR(opened[0].warning.usual_seconds, 0.1, 0.01);
  // The first ten comparisons after a restore settle (every replica just started); the
  // eleventh opens.
  EXPECT_EQ(opened[0].warning.opened_at - restart, 11min);
}

// The settling values are not the usual speed either: a young watch (two hours) restored onto a
// slower service neither learns the slower time nor widens its deviation with it.
TEST_F(SlowdownWatchTest, AServiceBackSlowerAfterARestartOfAYoungWatchIsTold) {
  run(2h, 1, 1, false);
  const nlohmann::json saved = watch.to_json(clock.now());
  clock.advance(1h);
  watch = SlowdownWatch();
  ASSERT_TRUE(watch.from_json(saved, clock.now()));
  const auto opened = run(1h, 1.5);
  ASSERT_EQ(opened.size(), 1U);
  EXPECT_NEAR(opened[0].warning.usual_seconds, 0.1, 0.01);
}

TEST_F(SlowdownWatchTest, ReplicasSlowForTheirFirstMinutesAfterARestartAreNoWarning) {
  run(6h, 1, 1, false);
  const nlohmann::json saved = watch.to_json(clock.now());
  clock.advance(1h);
  watch = SlowdownWatch();
  ASSERT_TRUE(watch.from_json(saved, clock.now()));
  EXPECT_TRUE(run(4min, 1.6, 1, false).empty());
  EXPECT_TRUE(run(6h, 1, 1, false).empty());
}

TEST_F(SlowdownWatchTest, ARestoredWatchDecidesAsTheOneSaved) {
  run(6h, 1, 1, false);
  run(20min, 1.5, 1, false);
  ASSERT_TRUE(watch.open_warning("web"));
  SlowdownWatch restored;
  ASSERT_TRUE(restored.from_json(watch.to_json(clock.now()), clock.now()));
  EXPECT_EQ(restored.to_json(clock.now()), watch.to_json(clock.now()));
  ASSERT_TRUE(restored.open_warning("web"));
  EXPECT_EQ(restored.open_warning("web")->opened_at, watch.open_warning("web")->opened_at);
  for (int i = 0; i < 3 * 60; ++i) {
    clock.advance(1min);
    const double x = noise();
    const SlowdownSample sample{clock.now(), 0.1 * (i < 60 ? 1.5 : 1.0) * x, 0.25, 200 * x};
    const auto a = watch.observe("web", sample);
    const auto b = restored.observe("web", sample);
    ASSERT_EQ(a.has_value(), b.has_value()) << i;
    if (a) {
      EXPECT_EQ(a->message, b->message);
    }
  }
  // Cleared, by both; the next warning is the second.
  EXPECT_FALSE(restored.open_warning("web"));
  EXPECT_EQ(restored.warnings().size(), 1U);
  run(30min, 2, 1, false);
  restored = SlowdownWatch();
  ASSERT_TRUE(restored.from_json(watch.to_json(clock.now()), clock.now()));
  EXPECT_EQ(restored.opened(), 2U);
  ASSERT_EQ(restored.warnings().size(), 2U);
  EXPECT_EQ(restored.warnings()[0].id, 2U);
  EXPECT_FALSE(restored.warnings()[0].cleared_at);
  EXPECT_TRUE(restored.warnings()[1].cleared_at);
}

TEST_F(SlowdownWatchTest, AStateNoRunCouldWriteIsRefusedWhole) {
  run(6h, 1, 1, false);
  run(20min, 1.5, 1, false);
  const nlohmann::json good = watch.to_json(clock.now());
  auto refused = [&](const std::function<void(nlohmann::json&)>& edit) {
    nlohmann::json bad = good;
    edit(bad);
    SlowdownWatch other;
    EXPECT_TRUE(other.from_json(good, clock.now()));
    const nlohmann::json before = other.to_json(clock.now());
    const auto result = other.from_json(bad, clock.now());
    EXPECT_FALSE(result);
    EXPECT_EQ(other.to_json(clock.now()), before);  // unchanged
    return result ? std::string() : result.error().message;
  };
  EXPECT_EQ(refused([](nlohmann::json& j) { j["services"][0]["log_service"]["weight"] = -1; }),
            "slowdown state: services[web].log_service.weight: negative");
  EXPECT_EQ(refused([](nlohmann::json& j) { j["services"][0]["open"]["id"] = 7; }),
            "slowdown state: services[web].open.id: not in [1, next_id)");
  EXPECT_EQ(refused([](nlohmann::json& j) { j["services"][0]["steps"] = -3; }),
            "slowdown state: services[web].steps: negative");
  EXPECT_EQ(refused([](nlohmann::json& j) { j["services"][0]["open"]["opened_at_age_ns"] = -5; }),
            "slowdown state: services[web].open.opened_at: not an age in [0, 100 years]");
  EXPECT_EQ(refused([](nlohmann::json& j) { j["services"][0]["points"][0][0] = 1.5e300; }),
            "slowdown state: services[web].points: not an age in whole nanoseconds");
  EXPECT_EQ(refused([](nlohmann::json& j) { j["services"][0]["open"]["service"] = "db"; }),
            "slowdown state: services[web].open: not an open warning of web");
  EXPECT_NE(refused([](nlohmann::json& j) { j.erase("next_id"); }).find("next_id"),
            std::string::npos);
  EXPECT_NE(refused([](nlohmann::json& j) {
              j["services"][0]["log_load"]["sum"] = "x";
            }).find("slowdown state: "),
            std::string::npos);
}

TEST_F(SlowdownWatchTest, AForgottenServiceLosesItsUsualAndItsOpenWarning) {
  run(6h, 1, 1, false);
  run(20min, 1.5, 1, false);
  ASSERT_TRUE(watch.open_warning("web"));
  watch.forget("web");
  EXPECT_FALSE(watch.open_warning("web"));
  EXPECT_TRUE(watch.warnings().empty());
  EXPECT_EQ(watch.opened(), 1U);  // numbers go on
}

// A caller that waits on its callee while holding a worker gets slower with it: at the same look,
// the callee's warning opens first whatever the order given, and the caller's names it.
TEST_F(SlowdownWatchTest, ACallerSlowedByItsCalleeNamesTheCalleesWarning) {
  watch.set_calls({{"web", "db"}, {"web", "web"}});
  auto look = [&](double web, double db) {
    clock.advance(1min);
    const double x = noise();
    return watch.observe(std::vector<std::pair<std::string, SlowdownSample>>{
        {"web", {clock.now(), web * x, NAN, 200}}, {"db", {clock.now(), db * x, NAN, 400}}});
  };
  for (int i = 0; i < 6 * 60; ++i) EXPECT_TRUE(look(0.1, 0.05).empty());
  std::vector<SlowdownChange> opened;
  for (int i = 0; i < 10 && opened.empty(); ++i) opened = look(0.2, 0.15);
  ASSERT_EQ(opened.size(), 2U);
  EXPECT_EQ(opened[0].warning.service, "db");
  EXPECT_EQ(opened[0].warning.cause, "");
  EXPECT_EQ(opened[1].warning.service, "web");
  EXPECT_EQ(opened[1].warning.cause, "its callee db's slowdown warning 1, open for 0 s");
  EXPECT_NE(opened[1].message.find("; likely cause: its callee db's slowdown warning 1"),
            std::string::npos)
      << opened[1].message;
  // Saved and restored with it.
  SlowdownWatch restored;
  ASSERT_TRUE(restored.from_json(watch.to_json(clock.now()), clock.now()));
  EXPECT_EQ(restored.open_warning("web")->cause, opened[1].warning.cause);
}

// A cycle (a -> b -> c -> a) and a caller of it (d): a member of the cycle first, then its callers
// as their callees are done; all observed, and each caller's warning names a callee's.
TEST_F(SlowdownWatchTest, ACycleIsComparedBeforeItsCallers) {
  watch.set_calls({{"a", "b"}, {"b", "c"}, {"c", "a"}, {"d", "a"}});
  auto look = [&](double seconds) {
    clock.advance(1min);
    std::vector<std::pair<std::string, SlowdownSample>> services;
    for (const char* name : {"d", "a", "b", "c"}) {
      services.push_back({name, {clock.now(), seconds, NAN, NAN}});
    }
    return watch.observe(services);
  };
  for (int i = 0; i < 40; ++i) EXPECT_TRUE(look(0.1).empty());
  std::vector<SlowdownChange> opened;
  for (int i = 0; i < 10 && opened.empty(); ++i) opened = look(0.3);
  ASSERT_EQ(opened.size(), 4U);
  std::string order;
  for (const SlowdownChange& c : opened) order += c.warning.service;
  EXPECT_EQ(order, "adcb");
  EXPECT_EQ(opened[0].warning.cause, "");  // its callee b not compared yet
  EXPECT_EQ(opened[1].warning.cause.substr(0, 34), "its callee a's slowdown warning 1,");
  EXPECT_EQ(opened[2].warning.cause.substr(0, 34), "its callee a's slowdown warning 1,");
  EXPECT_EQ(opened[3].warning.cause.substr(0, 34), "its callee c's slowdown warning 3,");
}

}  // namespace
}  // namespace prescale::healing
