#include "gateway/endpoint_table.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <atomic>
#include <span>
#include <string>
#include <thread>
#include <vector>

namespace prescale::gateway {
namespace {

using namespace std::chrono_literals;
using ::testing::ElementsAre;

EndpointSpec spec(std::string id, std::uint16_t port = 8080) {
  return EndpointSpec{std::move(id), "10.0.0.1", port};
}

// "id" or "id(draining)" per endpoint of `service` in the current snapshot.
std::vector<std::string> listing(const EndpointTable& table, std::string_view service) {
  std::vector<std::string> out;
  const auto snap = table.snapshot();
  if (const ServiceEndpoints* s = snap->find(service)) {
    for (const Endpoint& e : s->endpoints) {
      out.push_back(e.state->spec.id + (e.draining ? "(draining)" : ""));
    }
  }
  return out;
}

TEST(ParseEndpoint, HostPortForms) {
  Result<EndpointSpec> e = parse_endpoint("10.0.0.7:8080");
  ASSERT_TRUE(e.has_value());
  EXPECT_EQ(e->id, "10.0.0.7:8080");
  EXPECT_EQ(e->host, "10.0.0.7");
  EXPECT_EQ(e->port, 8080);
  e = parse_endpoint("[::1]:9000");
  ASSERT_TRUE(e.has_value());
  EXPECT_EQ(e->host, "::1");
  EXPECT_EQ(EndpointState(*e).address, "[::1]:9000");
  EXPECT_EQ(EndpointState(*parse_endpoint("svc.local:1")).address, "svc.local:1");
  for (std::string_view bad :
       {"10.0.0.7", ":80", "h:0", "h:65536", "h:8o", "h:", "::1:80", "[::1:80", "h:+80", "[a b]:80",
        "[10.0.0.7]:80", "[fe80::1%]:80", "h\t:80", "h/x:80", "h:080"}) {
    EXPECT_FALSE(parse_endpoint(bad).has_value()) << bad;
  }
  e = parse_endpoint("[fe80::1%eth0]:443");
  ASSERT_TRUE(e.has_value());
  EXPECT_EQ(e->host, "fe80::1%eth0");
  EXPECT_EQ(parse_endpoint("h:080").error().message,
            "endpoint must be \"host:port\" or \"[ipv6]:port\" with port 1..65535 without leading "
            "zeros, got \"h:080\"");
}

TEST(EndpointTable, StartsEmpty) {
  ManualClock clock;
  EndpointTable table(clock);
  const auto snap = table.snapshot();
  ASSERT_NE(snap, nullptr);
  EXPECT_EQ(snap->version, 0u);
  EXPECT_EQ(snap->find("a"), nullptr);
}

TEST(EndpointTable, AddSetAndFind) {
  ManualClock clock;
  EndpointTable table(clock);
  ASSERT_TRUE(table.add("checkout", spec("c2")).has_value());
  ASSERT_TRUE(table.add("checkout", spec("c1")).has_value());
  ASSERT_TRUE(table.set("fraud", {spec("f1"), spec("f2")}).has_value());
  EXPECT_THAT(listing(table, "checkout"), ElementsAre("c1", "c2"));
  EXPECT_THAT(listing(table, "fraud"), ElementsAre("f1", "f2"));
  const auto snap = table.snapshot();
  EXPECT_EQ(snap->version, 3u);
  EXPECT_EQ(snap->find("checkout")->ready().size(), 2u);
  EXPECT_EQ(snap->find("recommend"), nullptr);

  // Adding what is already there changes nothing and publishes nothing.
  ASSERT_TRUE(table.add("checkout", spec("c1")).has_value());
  ASSERT_TRUE(table.set("fraud", {spec("f2"), spec("f1")}).has_value());
  EXPECT_EQ(table.snapshot(), snap);
}

TEST(EndpointTable, RejectsConflictingIdsAndChangesNothing) {
  ManualClock clock;
  EndpointTable table(clock);
  ASSERT_TRUE(table.set("a", {spec("a1", 1)}).has_value());
  const auto before = table.snapshot();

  Result<void> r = table.add("a", spec("a1", 2));
  ASSERT_FALSE(r.has_value());
  EXPECT_EQ(r.error().message, "a: endpoint \"a1\" is already 10.0.0.1:1, not 10.0.0.1:2");
  r = table.set("a", {spec("a2"), spec("a1", 2)});
  ASSERT_FALSE(r.has_value());
  r = table.set("a", {spec("a2"), spec("a2")});
  ASSERT_FALSE(r.has_value());
  EXPECT_EQ(r.error().message, "a: endpoint \"a2\" listed twice");
  EXPECT_EQ(table.snapshot(), before);
}

TEST(EndpointTable, StateSurvivesSnapshotSwaps) {
  ManualClock clock;
  EndpointTable table(clock);
  ASSERT_TRUE(table.set("a", {spec("a1")}).has_value());
  const std::shared_ptr<EndpointState> a1 = table.snapshot()->find("a")->endpoints[0].state;
  a1->outstanding.store(7);
  ASSERT_TRUE(table.set("a", {spec("a1"), spec("a2")}).has_value());
  ASSERT_TRUE(table.add("b", spec("b1")).has_value());
  EXPECT_EQ(table.snapshot()->find("a")->endpoints[0].state, a1);
  EXPECT_EQ(table.snapshot()->find("a")->endpoints[0].state->outstanding.load(), 7);
}

TEST(EndpointTable, RemovedEndpointDrainsUntilIdle) {
  ManualClock clock;
  EndpointTable table(clock, 30s);
  ASSERT_TRUE(table.set("a", {spec("a1"), spec("a2")}).has_value());
  const std::shared_ptr<EndpointState> a1 = table.snapshot()->find("a")->endpoints[0].state;
  ASSERT_TRUE(a1->try_acquire());  // a request in flight

  EXPECT_TRUE(table.remove("a", "a1"));
  EXPECT_FALSE(table.remove("a", "a9"));
  EXPECT_FALSE(table.remove("b", "a1"));
  EXPECT_THAT(listing(table, "a"), ElementsAre("a2", "a1(draining)"));
  const auto snap = table.snapshot();
  ASSERT_EQ(snap->find("a")->ready().size(), 1u);
  EXPECT_EQ(snap->find("a")->ready()[0].state->spec.id, "a2");
  EXPECT_TRUE(a1->draining.load());
  EXPECT_FALSE(a1->try_acquire());  // no new requests
  EXPECT_EQ(a1->outstanding.load(), 1);

  EXPECT_EQ(table.reap(), 0u);  // still busy
  EXPECT_THAT(listing(table, "a"), ElementsAre("a2", "a1(draining)"));
  EXPECT_TRUE(a1->release());  // the last request: reap now
  EXPECT_EQ(table.reap(), 1u);
  EXPECT_THAT(listing(table, "a"), ElementsAre("a2"));
}

TEST(EndpointTable, DrainDeadlineEndsTheWait) {
  ManualClock clock;
  EndpointTable table(clock, 30s);
  ASSERT_TRUE(table.set("a", {spec("a1")}).has_value());
  const std::shared_ptr<EndpointState> a1 = table.snapshot()->find("a")->endpoints[0].state;
  ASSERT_TRUE(a1->try_acquire());  // never finishes
  ASSERT_TRUE(table.set("a", {}).has_value());
  EXPECT_THAT(listing(table, "a"), ElementsAre("a1(draining)"));
  clock.advance(29s);
  EXPECT_EQ(table.reap(), 0u);
  clock.advance(1s);
  EXPECT_EQ(table.reap(), 1u);
  EXPECT_EQ(table.snapshot()->find("a"), nullptr);  // a service with no endpoints is left out
  a1->release();  // the request may still finish: it holds the state
  EXPECT_EQ(table.reap(), 0u);
}

TEST(EndpointTable, AddingBackADrainingEndpointKeepsIt) {
  ManualClock clock;
  EndpointTable table(clock);
  ASSERT_TRUE(table.set("a", {spec("a1")}).has_value());
  const std::shared_ptr<EndpointState> a1 = table.snapshot()->find("a")->endpoints[0].state;
  ASSERT_TRUE(a1->try_acquire());
  ASSERT_TRUE(table.remove("a", "a1"));
  ASSERT_TRUE(table.add("a", spec("a1")).has_value());
  EXPECT_THAT(listing(table, "a"), ElementsAre("a1"));
  EXPECT_FALSE(a1->draining.load());
  EXPECT_EQ(table.snapshot()->find("a")->endpoints[0].state, a1);
  EXPECT_FALSE(a1->release());
  EXPECT_EQ(table.reap(), 0u);
}

TEST(EndpointTable, StaticUpstreamsStayWhenTheControllerSetsTheRest) {
  ManualClock clock;
  EndpointTable table(clock);
  ASSERT_TRUE(add_upstreams(table, {{"pay", {"10.0.0.7:8443", "[::1]:8443"}}}).has_value());
  EXPECT_THAT(listing(table, "pay"), ElementsAre("10.0.0.7:8443", "[::1]:8443"));
  ASSERT_TRUE(table.set("pay", {spec("pod-1")}).has_value());
  EXPECT_THAT(listing(table, "pay"), ElementsAre("10.0.0.7:8443", "[::1]:8443", "pod-1"));
  ASSERT_TRUE(table.set("pay", {}).has_value());
  EXPECT_THAT(listing(table, "pay"), ElementsAre("10.0.0.7:8443", "[::1]:8443", "pod-1(draining)"));
  EXPECT_TRUE(table.remove("pay", "[::1]:8443"));  // removing one explicitly still drains it
  EXPECT_EQ(table.reap(), 2u);
  EXPECT_THAT(listing(table, "pay"), ElementsAre("10.0.0.7:8443"));

  Result<void> bad = add_upstreams(table, {{"pay", {"nope"}}});
  ASSERT_FALSE(bad.has_value());
  EXPECT_THAT(bad.error().message, ::testing::HasSubstr("\"nope\""));
}

TEST(EndpointTable, ReaderReloadsOnlyAfterAChange) {
  ManualClock clock;
  EndpointTable table(clock);
  EndpointTable::Reader reader(table);
  EXPECT_EQ(reader.current().version, 0u);
  ASSERT_TRUE(table.add("a", spec("a1")).has_value());
  const EndpointSnapshot* first = &reader.current();
  EXPECT_EQ(first->version, 1u);
  EXPECT_EQ(&reader.current(), first);  // nothing changed: the same snapshot
  ASSERT_TRUE(table.add("a", spec("a2")).has_value());
  EXPECT_EQ(reader.current().version, 2u);
  EXPECT_EQ(reader.current().find("a")->endpoints.size(), 2u);
}

// A writer replaces the service's endpoints with a new generation over and over while readers
// check that each snapshot is whole: every ready endpoint of one generation, as many as that
// generation has, draining ones older, versions never going back.
TEST(EndpointTableConcurrency, ReadersNeverSeeAHalfMadeChange) {
  ManualClock clock;
  EndpointTable table(clock, 1h);
  constexpr int kGenerations = 3000;
  auto generation_of = [](const EndpointState& s) { return std::stoi(s.spec.id.substr(1)); };
  auto make_generation = [](int gen) {
    std::vector<EndpointSpec> specs;
    for (int i = 0; i < gen % 5 + 1; ++i) {
      specs.push_back(EndpointSpec{"g" + std::to_string(gen) + "-" + std::to_string(i),
                                   "10.1." + std::to_string(gen % 250) + "." + std::to_string(i),
                                   static_cast<std::uint16_t>(1000 + i)});
    }
    return specs;
  };
  ASSERT_TRUE(table.set("svc", make_generation(0)).has_value());

  std::atomic<bool> done{false};
  std::atomic<int> torn{0};
  std::atomic<long> reads{0};
  std::vector<std::thread> readers;
  for (int r = 0; r < 4; ++r) {
    readers.emplace_back([&] {
      EndpointTable::Reader reader(table);
      std::uint64_t last_version = 0;
      while (!done.load(std::memory_order_relaxed)) {
        const EndpointSnapshot& snap = reader.current();
        if (snap.version < last_version) ++torn;
        last_version = snap.version;
        const ServiceEndpoints* svc = snap.find("svc");
        if (svc == nullptr || svc->ready().empty()) {
          ++torn;
          continue;
        }
        const int gen = generation_of(*svc->ready()[0].state);
        if (static_cast<int>(svc->ready().size()) != gen % 5 + 1) ++torn;
        for (const Endpoint& e : svc->ready()) {
          if (generation_of(*e.state) != gen || e.draining) ++torn;
        }
        for (const Endpoint& e : std::span(svc->endpoints).subspan(svc->ready_count)) {
          if (generation_of(*e.state) >= gen || !e.draining) ++torn;
        }
        // Send a "request" to a ready endpoint, as the proxy would.
        if (EndpointState& s = *svc->ready()[0].state; s.try_acquire()) s.release();
        ++reads;
      }
    });
  }
  std::thread reaper([&] {
    while (!done.load(std::memory_order_relaxed)) table.reap();
  });
  for (int gen = 1; gen <= kGenerations; ++gen) {
    ASSERT_TRUE(table.set("svc", make_generation(gen)).has_value());
  }
  done = true;
  for (std::thread& t : readers) t.join();
  reaper.join();
  EXPECT_EQ(torn.load(), 0);
  EXPECT_GT(reads.load(), 0);
  table.reap();
  EXPECT_EQ(table.snapshot()->find("svc")->endpoints.size(),
            static_cast<std::size_t>(kGenerations % 5 + 1));
}

// While one endpoint is drained and reaped, requests race to start on it. A request that gets
// in must have been counted before the reap looked, so the endpoint is never reaped under it.
TEST(EndpointTableConcurrency, NoRequestStartsOnAReapedEndpoint) {
  ManualClock clock;
  for (int round = 0; round < 200; ++round) {
    EndpointTable table(clock, 1h);
    ASSERT_TRUE(table.set("a", {spec("a1")}).has_value());
    const std::shared_ptr<EndpointState> a1 = table.snapshot()->find("a")->endpoints[0].state;
    std::atomic<bool> reaped{false};
    std::atomic<bool> stop{false};
    std::atomic<int> violations{0};
    std::vector<std::thread> senders;
    for (int s = 0; s < 3; ++s) {
      senders.emplace_back([&] {
        while (!stop.load(std::memory_order_relaxed)) {
          if (a1->try_acquire()) {
            if (reaped.load(std::memory_order_seq_cst)) ++violations;
            a1->release();
          }
        }
      });
    }
    ASSERT_TRUE(table.remove("a", "a1"));
    while (table.reap() == 0) {
    }
    reaped.store(true, std::memory_order_seq_cst);
    stop = true;
    for (std::thread& t : senders) t.join();
    ASSERT_EQ(violations.load(), 0) << "round " << round;
    EXPECT_EQ(a1->outstanding.load(), 0);
  }
}

}  // namespace
}  // namespace prescale::gateway
