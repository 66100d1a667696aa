#include "gateway/dns_upstreams.h"

#include <gtest/gtest.h>

#include <atomic>
#include <condition_variable>
#include <map>
#include <mutex>
#include <string>
#include <vector>

#include "core/clock.h"

namespace prescale::gateway {
namespace {

DnsAnswer failed(std::string why) {
  DnsAnswer a;
  a.kind = DnsAnswer::Kind::kFailed;
  a.error = std::move(why);
  return a;
}

DnsAnswer no_such_name() {
  DnsAnswer a;
  a.kind = DnsAnswer::Kind::kNoSuchName;
  return a;
}

// What each name resolves to now; a name not listed does not exist.
struct FakeDns {
  std::map<std::string, DnsAnswer> answers;
  std::atomic<int> lookups{0};  // names are looked up on threads of their own
  DnsAnswer operator()(const std::string& host) {
    ++lookups;
    auto it = answers.find(host);
    if (it == answers.end()) return no_such_name();
    return it->second;
  }
  void set(const std::string& host, std::vector<std::string> addresses) {
    answers[host].kind = DnsAnswer::Kind::kAddresses;
    answers[host].addresses = std::move(addresses);
  }
};

class DnsUpstreamsTest : public ::testing::Test {
 protected:
  // The ids of the endpoints that take requests, by service.
  std::vector<std::string> ready(const std::string& service) const {
    std::vector<std::string> ids;
    const ServiceEndpoints* s = table.snapshot()->find(service);
    if (s == nullptr) return ids;
    for (const Endpoint& e : s->ready()) ids.push_back(e.state->spec.id);
    return ids;
  }
  DnsUpstreams make() {
    return DnsUpstreams(table, [this](const std::string& h) { return dns(h); });
  }

  ManualClock clock;
  EndpointTable table{clock};
  FakeDns dns;
};

using Ids = std::vector<std::string>;

TEST_F(DnsUpstreamsTest, ANameIsItselfUntilAnsweredThenEachAddressIsAnEndpoint) {
  DnsUpstreams d = make();
  d.follow({{"fraud", {"fraud:8080", "10.9.9.9:8080"}}});
  // The address written is an endpoint as it is; the name waits for its first answer.
  EXPECT_EQ(ready("fraud"), (Ids{"10.9.9.9:8080", "fraud:8080"}));
  EXPECT_EQ(dns.lookups, 0);

  dns.set("fraud", {"10.0.0.7", "10.0.0.5"});
  EXPECT_TRUE(d.refresh().empty());
  EXPECT_EQ(ready("fraud"), (Ids{"10.0.0.5:8080", "10.0.0.7:8080", "10.9.9.9:8080"}));
  const ServiceEndpoints* s = table.snapshot()->find("fraud");
  ASSERT_NE(s, nullptr);
  EXPECT_EQ(s->endpoints.size(), 4u);  // the name drains, its requests finishing
  EXPECT_TRUE(s->endpoints.back().draining);
  EXPECT_EQ(s->endpoints.back().state->spec.id, "fraud:8080");
  EXPECT_EQ(s->endpoints.front().state->spec.host, "10.0.0.5");
  EXPECT_EQ(s->endpoints.front().state->spec.port, 8080);
}

TEST_F(DnsUpstreamsTest, ReplicasThatComeAndGoAreAddedAndDrained) {
  DnsUpstreams d = make();
  d.follow({{"fraud", {"fraud:8080"}}});
  dns.set("fraud", {"10.0.0.5", "10.0.0.7"});
  d.refresh();
  dns.set("fraud", {"10.0.0.7", "10.0.0.8"});  // a pod replaced
  d.refresh();
  EXPECT_EQ(ready("fraud"), (Ids{"10.0.0.7:8080", "10.0.0.8:8080"}));
  dns.set("fraud", {"10.0.0.5", "10.0.0.7", "10.0.0.8"});  // one came back at its address
  d.refresh();
  EXPECT_EQ(ready("fraud"), (Ids{"10.0.0.5:8080", "10.0.0.7:8080", "10.0.0.8:8080"}));
}

TEST_F(DnsUpstreamsTest, AFailedLookupKeepsTheLastAnswerANameThatIsGoneHasNone) {
  DnsUpstreams d = make();
  d.follow({{"fraud", {"fraud:8080"}}});
  dns.answers["fraud"] = failed("Temporary failure");
  EXPECT_EQ(d.refresh(), (Ids{"fraud:8080: lookup failed (Temporary failure); keeping the name "
                              "as its endpoint"}));
  EXPECT_EQ(ready("fraud"), (Ids{"fraud:8080"}));

  dns.set("fraud", {"10.0.0.5"});
  d.refresh();
  dns.answers["fraud"] = failed("Temporary failure");
  EXPECT_EQ(d.refresh(),
            (Ids{"fraud:8080: lookup failed (Temporary failure); keeping 1 endpoints it had"}));
  EXPECT_EQ(ready("fraud"), (Ids{"10.0.0.5:8080"}));

  dns.answers.erase("fraud");  // no ready pod: the headless Service's name is gone
  EXPECT_EQ(d.refresh(), (Ids{"fraud:8080: no such name; service fraud has no endpoints from it"}));
  EXPECT_EQ(ready("fraud"), Ids{});
  dns.set("fraud", {"10.0.0.9"});
  EXPECT_TRUE(d.refresh().empty());
  EXPECT_EQ(ready("fraud"), (Ids{"10.0.0.9:8080"}));
}

TEST_F(DnsUpstreamsTest, AnAddressOfTwoNamesStaysWhileEitherListsIt) {
  DnsUpstreams d = make();
  d.follow({{"api", {"a:80", "b:80"}}});
  dns.set("a", {"10.0.0.1", "10.0.0.2"});
  dns.set("b", {"10.0.0.2"});
  d.refresh();
  EXPECT_EQ(ready("api"), (Ids{"10.0.0.1:80", "10.0.0.2:80"}));
  dns.set("a", {"10.0.0.1"});
  d.refresh();
  EXPECT_EQ(ready("api"), (Ids{"10.0.0.1:80", "10.0.0.2:80"}));
  dns.answers["b"] = no_such_name();
  d.refresh();
  EXPECT_EQ(ready("api"), (Ids{"10.0.0.1:80"}));
  EXPECT_EQ(dns.lookups, 6);  // each name once a refresh
}

TEST_F(DnsUpstreamsTest, AReloadDropsTheNamesItNoLongerListsAndKeepsOtherServices) {
  DnsUpstreams d = make();
  d.follow({{"fraud", {"fraud:8080"}}, {"recommend", {"recommend:8080"}}});
  dns.set("fraud", {"10.0.0.5"});
  dns.set("recommend", {"10.0.1.5"});
  d.refresh();
  // The new file lists fraud under another name, and says nothing of recommend.
  d.follow({{"fraud", {"fraud-v2:8080"}}});
  EXPECT_EQ(ready("fraud"), (Ids{"fraud-v2:8080"}));
  EXPECT_EQ(ready("recommend"), (Ids{"10.0.1.5:8080"}));
  dns.set("fraud-v2", {"10.0.2.5"});
  d.refresh();
  EXPECT_EQ(ready("fraud"), (Ids{"10.0.2.5:8080"}));
  // Listed with an address only: the name's endpoints go.
  d.follow({{"recommend", {"10.0.3.3:8080"}}});
  EXPECT_EQ(ready("recommend"), (Ids{"10.0.3.3:8080"}));
}

// An address written and a name resolving to it are one endpoint, which stays while either
// lists it: neither the name moving elsewhere nor the address leaving the file takes it from
// the other.
TEST_F(DnsUpstreamsTest, AnAddressWrittenAndANameResolvingToItShareOneEndpoint) {
  DnsUpstreams d = make();
  d.follow({{"fraud", {"10.0.0.5:8080", "extra:8080"}}});
  dns.set("extra", {"10.0.0.5"});
  d.refresh();
  EXPECT_EQ(ready("fraud"), (Ids{"10.0.0.5:8080"}));
  dns.set("extra", {"10.0.0.6"});
  d.refresh();
  EXPECT_EQ(ready("fraud"), (Ids{"10.0.0.5:8080", "10.0.0.6:8080"}));

  dns.set("extra", {"10.0.0.5"});
  d.refresh();
  d.follow({{"fraud", {"extra:8080"}}});  // the address leaves the file; the name still has it
  EXPECT_EQ(ready("fraud"), (Ids{"10.0.0.5:8080"}));
  d.follow({{"fraud", {"10.0.0.5:8080"}}});  // and back: the name leaves
  EXPECT_EQ(ready("fraud"), (Ids{"10.0.0.5:8080"}));
}

// A name whose server does not answer holds the others up by no more than its own wait: the
// lookups run at once. Each lookup here waits for both to have begun, which they can only if
// they run together (after 10 s, a lookup gives up and fails, and so would the test).
TEST_F(DnsUpstreamsTest, NamesAreLookedUpAtOnce) {
  std::mutex mu;
  std::condition_variable cv;
  int begun = 0;
  DnsUpstreams d(table, [&](const std::string& host) {
    std::unique_lock lock(mu);
    ++begun;
    cv.notify_all();
    DnsAnswer a;
    if (!cv.wait_for(lock, std::chrono::seconds(10), [&] { return begun == 2; })) {
      return failed("looked up alone");
    }
    a.addresses = {host == "a" ? "10.0.0.1" : "10.0.0.2"};
    return a;
  });
  d.follow({{"a", {"a:80"}}, {"b", {"b:80"}}});
  EXPECT_TRUE(d.refresh().empty());
  EXPECT_EQ(ready("a"), (Ids{"10.0.0.1:80"}));
  EXPECT_EQ(ready("b"), (Ids{"10.0.0.2:80"}));
}

TEST_F(DnsUpstreamsTest, ARefreshAskedToStopLooksUpNoMoreAndAppliesNothing) {
  DnsUpstreams d = make();
  d.follow({{"a", {"a:80"}}, {"b", {"b:80"}}});
  dns.set("a", {"10.0.0.1"});
  dns.set("b", {"10.0.0.2"});
  EXPECT_TRUE(d.refresh([] { return true; }).empty());
  EXPECT_EQ(dns.lookups, 0);
  EXPECT_EQ(ready("a"), (Ids{"a:80"}));
  EXPECT_EQ(ready("b"), (Ids{"b:80"}));
}

TEST_F(DnsUpstreamsTest, AddressesAreEndpointsAsWrittenNeverLookedUp) {
  EXPECT_TRUE(is_ip_literal("10.0.0.5"));
  EXPECT_TRUE(is_ip_literal("::1"));
  EXPECT_TRUE(is_ip_literal("fe80::1"));
  EXPECT_FALSE(is_ip_literal("fraud"));
  EXPECT_FALSE(is_ip_literal("[::1]"));
  EXPECT_FALSE(is_ip_literal("10.0.0"));
  DnsUpstreams d = make();
  d.follow({{"fraud", {"10.0.0.5:8080", "[::1]:8080"}}});
  d.refresh();
  EXPECT_EQ(dns.lookups, 0);
  EXPECT_EQ(ready("fraud"), (Ids{"10.0.0.5:8080", "[::1]:8080"}));
  d.follow({{"fraud", {"[::1]:8080"}}});
  EXPECT_EQ(ready("fraud"), (Ids{"[::1]:8080"}));
}

TEST(ResolveHost, LocalhostIsItsIpv4AddressAndANameThatDoesNotExistIsNone) {
  const DnsAnswer local = resolve_host("localhost");
  ASSERT_EQ(local.kind, DnsAnswer::Kind::kAddresses) << local.error;
  EXPECT_EQ(local.addresses, (Ids{"127.0.0.1"}));  // IPv4 preferred: not ::1 beside it
  EXPECT_EQ(resolve_host("127.0.0.1").addresses, (Ids{"127.0.0.1"}));
  EXPECT_EQ(resolve_host("::1").addresses, (Ids{"::1"}));
  // RFC 6761: .invalid names never exist; answered from the resolver's files or its server.
  const DnsAnswer none = resolve_host("no-such-host.invalid");
  EXPECT_NE(none.kind, DnsAnswer::Kind::kAddresses);
}

}  // namespace
}  // namespace prescale::gateway
