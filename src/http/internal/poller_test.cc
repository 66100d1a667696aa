#include "http/internal/poller.h"

#include <fcntl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>
#include <cstring>
#include <memory>
#include <stdexcept>
#include <vector>

#include "gtest/gtest.h"

namespace prescale::http::internal {
namespace {

// A connected pair of non-blocking stream sockets, closed at the end.
struct SocketPair {
  SocketPair() {
    EXPECT_EQ(::socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, fds), 0);
  }
  ~SocketPair() {
    for (int fd : fds) {
      if (fd >= 0) ::close(fd);
    }
  }
  void send(const char* text) const { ASSERT_GT(::write(fds[1], text, strlen(text)), 0); }
  // The peer ends its side.
  void end() {
    ::close(fds[1]);
    fds[1] = -1;
  }
  // Reads what is there; the count read, 0 at the end, -1 when nothing is there (EAGAIN).
  ssize_t drain() const {
    char buf[4096];
    return ::read(fds[0], buf, sizeof buf);
  }
  int fds[2] = {-1, -1};
};

// Runs what is ready now (handlers that post more run too) without waiting.
void run_ready(boost::asio::io_context& io) {
  io.restart();
  io.poll();
}

// A Poller on an io_context of the test's, which runs it with run_ready().
class PollerTest : public ::testing::Test {
 protected:
  // Registers the pair's first socket.
  Poller::Key watch(const SocketPair& pair) {
    boost::system::error_code ec;
    const Poller::Key key = poller.add(pair.fds[0], ec);
    EXPECT_FALSE(ec) << ec.message();
    EXPECT_NE(key, Poller::kNone);
    return key;
  }

  boost::asio::io_context io;
  Poller& poller = Poller::of(io);
};

TEST_F(PollerTest, AnArmedSocketIsCalledOnceWhenDataComes) {
  EXPECT_EQ(&poller, &Poller::of(io));  // one per io_context
  SocketPair pair;
  const Poller::Key key = watch(pair);
  int calls = 0;
  poller.arm(key, [&] { ++calls; });
  run_ready(io);
  EXPECT_EQ(calls, 0);  // nothing to read yet
  pair.send("a");
  run_ready(io);
  EXPECT_EQ(calls, 1);
  EXPECT_EQ(pair.drain(), 1);
  pair.send("b");  // not armed again: remembered, not called
  run_ready(io);
  EXPECT_EQ(calls, 1);
  poller.arm(key, [&] { ++calls; });  // reported meanwhile: called at once
  run_ready(io);
  EXPECT_EQ(calls, 2);
  EXPECT_EQ(pair.drain(), 1);
  poller.remove(key);
  EXPECT_EQ(poller.watched(), 0u);
}

TEST_F(PollerTest, EndOfStreamIsReported) {
  SocketPair pair;
  const Poller::Key key = watch(pair);
  bool called = false;
  poller.arm(key, [&] { called = true; });
  pair.end();
  run_ready(io);
  EXPECT_TRUE(called);
  EXPECT_EQ(pair.drain(), 0);
  poller.remove(key);
}

// Data and the end in one report: the short read of the data does not drain the end, which a
// report would not announce again, so arming after it is answered at once.
TEST_F(PollerTest, TheEndThatCameWithTheLastDataIsNotWaitedFor) {
  SocketPair pair;
  const Poller::Key key = watch(pair);
  pair.send("last words");
  pair.end();
  int calls = 0;
  poller.arm(key, [&] { ++calls; });
  run_ready(io);
  ASSERT_EQ(calls, 1);
  EXPECT_EQ(pair.drain(), 10);  // short: the data, not the end
  poller.arm(key, [&] { ++calls; });
  run_ready(io);
  EXPECT_EQ(calls, 2);
  EXPECT_EQ(pair.drain(), 0);
  poller.remove(key);
}

TEST_F(PollerTest, ARemovedRegistrationIsNeverCalledAndItsCallbackIsDroppedLater) {
  SocketPair pair;
  const Poller::Key key = watch(pair);
  auto owned = std::make_shared<int>(7);
  std::weak_ptr<int> watch = owned;
  poller.arm(key, [owned = std::move(owned)] { FAIL() << "called after remove"; });
  pair.send("x");
  poller.remove(key);
  EXPECT_FALSE(watch.expired());  // not inside remove(): it may own the caller
  run_ready(io);
  EXPECT_TRUE(watch.expired());
  poller.arm(key, [] { FAIL() << "a stale key armed"; });  // ignored
  run_ready(io);
}

TEST_F(PollerTest, AReportForASocketRemovedByAnotherCallbackOfTheSameBatchIsIgnored) {
  SocketPair a, b;
  const Poller::Key ka = watch(a);
  const Poller::Key kb = watch(b);
  int calls = 0;
  // Whichever is called first removes the other.
  poller.arm(ka, [&] {
    ++calls;
    poller.remove(kb);
  });
  poller.arm(kb, [&] {
    ++calls;
    poller.remove(ka);
  });
  a.send("1");
  b.send("2");
  run_ready(io);
  EXPECT_EQ(calls, 1);
  EXPECT_EQ(poller.watched(), 1u);
}

// While the callbacks of a batch run, each sees which other sockets have news waiting, and
// that the batch was all there was (current()); outside a batch nothing is current.
TEST_F(PollerTest, ACallbackSeesTheOtherReportsOfItsBatch) {
  SocketPair a, b, quiet;
  const Poller::Key ka = watch(a);
  const Poller::Key kb = watch(b);
  const Poller::Key kq = watch(quiet);
  EXPECT_FALSE(poller.current());
  int seen = 0;
  // Whichever is called first sees the other's report still waiting; the second sees the
  // first's delivered.
  auto check = [&](Poller::Key self, Poller::Key other) {
    return [&, self, other] {
      EXPECT_TRUE(poller.current());
      EXPECT_FALSE(poller.reported(self));
      EXPECT_EQ(poller.reported(other), seen == 0);
      EXPECT_FALSE(poller.reported(kq));
      ++seen;
    };
  };
  poller.arm(ka, check(ka, kb));
  poller.arm(kb, check(kb, ka));
  poller.arm(kq, [] { FAIL() << "nothing came"; });
  a.send("1");
  b.send("2");
  run_ready(io);
  EXPECT_EQ(seen, 2);
  EXPECT_FALSE(poller.current());
  // A report while not armed waits, and is seen, until arm() delivers it.
  b.send("3");
  run_ready(io);
  EXPECT_TRUE(poller.reported(kb));
  bool called = false;
  poller.arm(kb, [&] { called = true; });
  EXPECT_TRUE(poller.reported(kb));  // posted: news until it runs
  run_ready(io);
  EXPECT_TRUE(called);
  EXPECT_FALSE(poller.reported(kb));
  // News is not an end; the end stays reported.
  EXPECT_FALSE(poller.ended(kb));
  a.end();
  run_ready(io);
  EXPECT_TRUE(poller.reported(ka));
  EXPECT_TRUE(poller.ended(ka));
  for (Poller::Key k : {ka, kb, kq}) poller.remove(k);
}

// A callback posted at once (post(), or arm() after a report) counts as news until it runs:
// the data it will read is in the socket and no report will announce it again.
TEST_F(PollerTest, APostedCallbackIsNewsUntilItRuns) {
  SocketPair pair;
  const Poller::Key key = watch(pair);
  int calls = 0;
  poller.arm(key, [&] { ++calls; });
  poller.post(key, [&] { calls += 10; });  // replaces the armed one
  EXPECT_TRUE(poller.reported(key));
  EXPECT_FALSE(poller.ended(key));
  run_ready(io);
  EXPECT_EQ(calls, 10);
  EXPECT_FALSE(poller.reported(key));
  // A post() takes the place of a report waiting: the read it runs takes that data, and the next
  // arm() waits for new data.
  pair.send("b");
  run_ready(io);  // reported while not armed
  EXPECT_TRUE(poller.reported(key));
  poller.post(key, [&] { EXPECT_EQ(pair.drain(), 1); });
  run_ready(io);
  EXPECT_FALSE(poller.reported(key));
  bool early = false;
  poller.arm(key, [&] { early = true; });
  run_ready(io);
  EXPECT_FALSE(early);
  poller.post(key, [] {});  // takes the armed one's place (destroyed later): none armed now
  run_ready(io);
  pair.send("a");  // reported while not armed
  run_ready(io);
  poller.arm(key, [&] { ++calls; });
  EXPECT_TRUE(poller.reported(key));  // posted, not yet run
  run_ready(io);
  EXPECT_EQ(calls, 11);
  EXPECT_FALSE(poller.reported(key));
  // Posted, then removed (and the slot reused): it still runs, and counts for no one else.
  poller.post(key, [&] { calls += 100; });
  poller.remove(key);
  SocketPair other;
  const Poller::Key reused = watch(other);
  EXPECT_FALSE(poller.reported(reused));
  run_ready(io);
  EXPECT_EQ(calls, 111);
  EXPECT_FALSE(poller.reported(reused));
  poller.remove(reused);
}

// A callback that throws: the exception leaves the io_context's run(), the rest of its batch
// is still called, and later reports too.
TEST_F(PollerTest, ACallbackThatThrowsLosesNoReport) {
  SocketPair a, b;
  const Poller::Key ka = watch(a);
  const Poller::Key kb = watch(b);
  int calls = 0;
  auto throwing = [&] {
    ++calls;
    throw std::runtime_error("callback failed");
  };
  poller.arm(ka, throwing);
  poller.arm(kb, throwing);
  a.send("1");
  b.send("2");
  io.restart();
  EXPECT_THROW(io.poll(), std::runtime_error);
  EXPECT_EQ(calls, 1);
  EXPECT_FALSE(poller.current());
  io.restart();
  EXPECT_THROW(io.poll(), std::runtime_error);  // the other one, posted
  EXPECT_EQ(calls, 2);
  bool called = false;
  EXPECT_EQ(a.drain(), 1);
  poller.arm(ka, [&] { called = true; });
  a.send("3");
  run_ready(io);
  EXPECT_TRUE(called);  // the set is still waited on
  poller.remove(ka);
  poller.remove(kb);
}

// More sockets ready than one batch takes: every one is called; the first batch's callbacks
// are told it was not all there was (current() false), the last batch's that it was.
TEST_F(PollerTest, MoreReadySocketsThanABatchAreAllCalled) {
  constexpr int kSockets = 260;  // a batch takes 256 (and 520 descriptors fit the usual 1,024)
  std::vector<std::unique_ptr<SocketPair>> pairs;
  std::vector<Poller::Key> keys;
  int calls = 0, current_calls = 0;
  for (int i = 0; i < kSockets; ++i) {
    pairs.push_back(std::make_unique<SocketPair>());
    keys.push_back(watch(*pairs.back()));
    poller.arm(keys.back(), [&] {
      ++calls;
      if (poller.current()) ++current_calls;
    });
  }
  for (auto& pair : pairs) pair->send("x");
  for (int round = 0; round < 10 && calls < kSockets; ++round) run_ready(io);
  EXPECT_EQ(calls, kSockets);
  EXPECT_EQ(current_calls, kSockets - 256);
  for (Poller::Key k : keys) poller.remove(k);
}

// The last removal cancels the wait on the set; a registration added before the cancelled
// wait completes is still watched.
TEST_F(PollerTest, AnAddRightAfterTheLastRemovalIsWatched) {
  SocketPair first, second;
  const Poller::Key k1 = watch(first);
  run_ready(io);
  poller.remove(k1);  // cancels the wait; its completion has not run
  const Poller::Key k2 = watch(second);
  bool called = false;
  poller.arm(k2, [&] { called = true; });
  run_ready(io);  // the cancelled completion runs, and waits again
  second.send("x");
  run_ready(io);
  EXPECT_TRUE(called);
  poller.remove(k2);
}

TEST_F(PollerTest, TheIoContextRunsOutOfWorkWhenNothingIsWatched) {
  SocketPair pair;
  const Poller::Key key = watch(pair);
  bool called = false;
  poller.arm(key, [&] {
    called = true;
    poller.remove(key);  // the last one: the wait on the set ends
  });
  pair.send("z");
  io.run();  // returns: would hang if the Poller kept waiting
  EXPECT_TRUE(called);
  // Watching again later works.
  SocketPair second;
  const Poller::Key again = watch(second);
  bool called_again = false;
  poller.arm(again, [&] {
    called_again = true;
    poller.remove(again);
  });
  second.send("y");
  io.restart();
  io.run();
  EXPECT_TRUE(called_again);
}

TEST(PollerLifetimeTest, AddingAClosedDescriptorFailsWithAReason) {
  boost::asio::io_context io;
  boost::system::error_code ec;
  EXPECT_EQ(Poller::of(io).add(-1, ec), Poller::kNone);
  EXPECT_TRUE(ec);
  EXPECT_EQ(Poller::of(io).watched(), 0u);
}

TEST(PollerLifetimeTest, CallbacksStillArmedWhenTheIoContextEndsAreDestroyed) {
  auto owned = std::make_shared<int>(1);
  std::weak_ptr<int> watch = owned;
  SocketPair pair;
  {
    boost::asio::io_context io;
    boost::system::error_code ec;
    const Poller::Key key = Poller::of(io).add(pair.fds[0], ec);
    Poller::of(io).arm(key, [owned = std::move(owned)] {});
  }
  EXPECT_TRUE(watch.expired());
}

}  // namespace
}  // namespace prescale::http::internal
