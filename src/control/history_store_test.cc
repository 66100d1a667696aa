#include "control/history_store.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <sqlite3.h>
#include <stdlib.h>

#include <cmath>
#include <fstream>
#include <thread>
#include <vector>

namespace prescale::control {
namespace {

using ::testing::HasSubstr;

constexpr std::int64_t kT0 = 1767225600;  // 2026-01-01T00:00:00Z, a whole minute

// A fresh directory per test, removed afterwards.
class HistoryStoreTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string pattern =
        (std::filesystem::temp_directory_path() / "prescale-hist-XXXXXX").string();
    ASSERT_NE(mkdtemp(pattern.data()), nullptr);
    dir_ = pattern;
  }
  void TearDown() override {
    std::error_code ec;
    std::filesystem::remove_all(dir_, ec);
  }
  HistoryStore open_ok(const std::filesystem::path& dir) {
    auto store = HistoryStore::open(dir);
    EXPECT_TRUE(store.has_value()) << store.error().to_string();
    return std::move(*store);
  }

  std::filesystem::path dir_;
};

TEST_F(HistoryStoreTest, CreatesTheStateDirectoryAndDatabase) {
  const auto nested = dir_ / "state" / "prescale";
  HistoryStore store = open_ok(nested);
  EXPECT_EQ(store.path(), nested / "history.db");
  EXPECT_TRUE(std::filesystem::exists(nested / "history.db"));
}

TEST_F(HistoryStoreTest, RoundTripsSamplesWithGapsAsNaN) {
  HistoryStore store = open_ok(dir_);
  ASSERT_TRUE(store.append("api", "arrival_rps", kT0, 10.5));
  ASSERT_TRUE(store.append("api", "arrival_rps", kT0 + 120, 12.25));
  ASSERT_TRUE(store.append("api", "served_rps", kT0 + 60, 99));  // another metric
  ASSERT_TRUE(store.append("db", "arrival_rps", kT0 + 60, 77));  // another service

  auto s = store.series("api", "arrival_rps", kT0 - 60, kT0 + 180);
  ASSERT_TRUE(s) << s.error().to_string();
  EXPECT_EQ(s->start_seconds, static_cast<double>(kT0 - 60));
  EXPECT_EQ(s->step_seconds, 60);
  ASSERT_EQ(s->values.size(), 4u);
  EXPECT_TRUE(std::isnan(s->values[0]));
  EXPECT_EQ(s->values[1], 10.5);
  EXPECT_TRUE(std::isnan(s->values[2]));  // the minute in between is a gap
  EXPECT_EQ(s->values[3], 12.25);
}

TEST_F(HistoryStoreTest, AppendUpserts) {
  HistoryStore store = open_ok(dir_);
  ASSERT_TRUE(store.append("api", "p99_ms", kT0, 120));
  ASSERT_TRUE(store.append("api", "p99_ms", kT0, 95));
  // A non-finite value is a gap: it keeps what is stored.
  ASSERT_TRUE(store.append("api", "p99_ms", kT0, NAN));
  auto s = store.series("api", "p99_ms", kT0, kT0 + 60);
  ASSERT_TRUE(s);
  ASSERT_EQ(s->values.size(), 1u);
  EXPECT_EQ(s->values[0], 95);
}

TEST_F(HistoryStoreTest, RangeQueriesAreHalfOpen) {
  HistoryStore store = open_ok(dir_);
  std::vector<Sample> samples;
  for (int i = 0; i < 10; ++i) samples.push_back({"api", "replicas", kT0 + 60 * i, double(i)});
  ASSERT_TRUE(store.append_many(samples));
  auto s = store.series("api", "replicas", kT0 + 180, kT0 + 360);
  ASSERT_TRUE(s);
  EXPECT_THAT(s->values, ::testing::ElementsAre(3, 4, 5));
  auto empty = store.series("api", "replicas", kT0 + 360, kT0 + 360);
  ASSERT_TRUE(empty);
  EXPECT_TRUE(empty->values.empty());
  auto latest = store.latest_minute("api", "replicas");
  ASSERT_TRUE(latest);
  EXPECT_EQ(*latest, kT0 + 540);
  auto none = store.latest_minute("api", "nothing");
  ASSERT_TRUE(none);
  EXPECT_FALSE(none->has_value());
}

TEST_F(HistoryStoreTest, RejectsTimesThatAreNotMinutes) {
  HistoryStore store = open_ok(dir_);
  auto r = store.append("api", "arrival_rps", kT0 + 30, 1);
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code, ErrorCode::kInvalidArgument);
  // A batch with one bad minute stores nothing.
  std::vector<Sample> batch{{"api", "arrival_rps", kT0, 1}, {"api", "arrival_rps", kT0 + 1, 2}};
  EXPECT_FALSE(store.append_many(batch));
  EXPECT_FALSE(store.series("api", "arrival_rps", kT0 + 1, kT0 + 60));
  auto latest = store.latest_minute("api", "arrival_rps");
  ASSERT_TRUE(latest);
  EXPECT_FALSE(latest->has_value());
}

// Turns foreign keys on in every connection opened while it lives (the store's own does not
// check them), through SQLite's auto-extension hook.
class ForeignKeysOn {
 public:
  ForeignKeysOn() { sqlite3_auto_extension(reinterpret_cast<void (*)()>(&enable)); }
  ~ForeignKeysOn() { sqlite3_cancel_auto_extension(reinterpret_cast<void (*)()>(&enable)); }
  ForeignKeysOn(const ForeignKeysOn&) = delete;
  ForeignKeysOn& operator=(const ForeignKeysOn&) = delete;

 private:
  static int enable(sqlite3* db, char** /*error*/, const void* /*api*/) {
    return sqlite3_exec(db, "PRAGMA foreign_keys = ON", nullptr, nullptr, nullptr);
  }
};

// A COMMIT that fails leaves SQLite's transaction open when the failure is one COMMIT can be
// retried after (SQLITE_BUSY, or a deferred constraint, forced here: a trigger adds a row whose
// deferred foreign key has no parent). The batch is rolled back, and later batches store.
TEST_F(HistoryStoreTest, AFailedCommitStoresNothingAndLaterBatchesStore) {
  ForeignKeysOn foreign_keys;
  { HistoryStore created = open_ok(dir_); }
  sqlite3* db = nullptr;
  ASSERT_EQ(sqlite3_open((dir_ / "history.db").c_str(), &db), SQLITE_OK);
  ASSERT_EQ(sqlite3_exec(db,
                         "CREATE TABLE parent (id INTEGER PRIMARY KEY);"
                         "CREATE TABLE child (parent INTEGER REFERENCES parent (id) "
                         "  DEFERRABLE INITIALLY DEFERRED);"
                         "CREATE TRIGGER orphan AFTER INSERT ON samples WHEN NEW.service = 'bad' "
                         "BEGIN INSERT INTO child VALUES (1); END;",
                         nullptr, nullptr, nullptr),
            SQLITE_OK)
      << sqlite3_errmsg(db);
  sqlite3_close(db);

  HistoryStore store = open_ok(dir_);
  std::vector<Sample> failing{{"api", "arrival_rps", kT0, 1}, {"bad", "arrival_rps", kT0, 2}};
  auto r = store.append_many(failing);
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code, ErrorCode::kUnavailable);
  EXPECT_THAT(r.error().message, HasSubstr("COMMIT"));

  std::vector<Sample> later{{"api", "arrival_rps", kT0 + 60, 3}};
  auto stored = store.append_many(later);
  ASSERT_TRUE(stored) << stored.error().to_string();
  ASSERT_TRUE(store.append("api", "arrival_rps", kT0 + 120, 4));

  // Read back through a new store: what a restart sees, so nothing sits in an open transaction.
  store = open_ok(dir_ / "elsewhere");
  HistoryStore reopened = open_ok(dir_);
  auto s = reopened.series("api", "arrival_rps", kT0, kT0 + 180);
  ASSERT_TRUE(s) << s.error().to_string();
  ASSERT_EQ(s->values.size(), 3u);
  EXPECT_TRUE(std::isnan(s->values[0]));
  EXPECT_EQ(s->values[1], 3);
  EXPECT_EQ(s->values[2], 4);
}

TEST_F(HistoryStoreTest, PrunesOldMinutes) {
  HistoryStore store = open_ok(dir_);
  std::vector<Sample> samples;
  for (int i = 0; i < 10; ++i) {
    samples.push_back({"api", "arrival_rps", kT0 + 60 * i, 1});
    samples.push_back({"db", "p99_ms", kT0 + 60 * i, 1});
  }
  ASSERT_TRUE(store.append_many(samples));
  auto pruned = store.prune(kT0 + 300);
  ASSERT_TRUE(pruned);
  EXPECT_EQ(*pruned, 10);
  auto s = store.series("api", "arrival_rps", kT0, kT0 + 600);
  ASSERT_TRUE(s);
  for (int i = 0; i < 10; ++i) EXPECT_EQ(std::isnan(s->values[i]), i < 5) << i;
}

TEST_F(HistoryStoreTest, StoresStateBlobs) {
  HistoryStore store = open_ok(dir_);
  auto missing = store.get_state("prescale/policy");
  ASSERT_TRUE(missing);
  EXPECT_FALSE(missing->has_value());
  ASSERT_TRUE(store.put_state("prescale/policy", {{"a", 1}, {"b", {1.5, 2.5}}}, kT0));
  ASSERT_TRUE(store.put_state("prescale/policy", {{"a", 2}}, kT0 + 60));  // replaced whole
  auto got = store.get_state("prescale/policy");
  ASSERT_TRUE(got);
  ASSERT_TRUE(got->has_value());
  EXPECT_EQ((*got)->value, nlohmann::json({{"a", 2}}));
  EXPECT_EQ((*got)->updated_at, kT0 + 60);
}

TEST_F(HistoryStoreTest, ReopeningKeepsTheData) {
  {
    HistoryStore store = open_ok(dir_);
    ASSERT_TRUE(store.append("api", "arrival_rps", kT0, 42));
    ASSERT_TRUE(store.put_state("k", {{"v", 1}}, kT0));
  }
  HistoryStore store = open_ok(dir_);
  auto s = store.series("api", "arrival_rps", kT0, kT0 + 60);
  ASSERT_TRUE(s);
  EXPECT_EQ(s->values.at(0), 42);
  auto state = store.get_state("k");
  ASSERT_TRUE(state && state->has_value());
  EXPECT_EQ((*state)->value["v"], 1);
}

// Rows written by hand or by a broken tool: a value that is not a finite number is a gap, as
// append() would have stored it, never a 0 the forecaster takes for a minute without traffic.
TEST_F(HistoryStoreTest, ValuesThatAreNotFiniteNumbersReadAsGaps) {
  { HistoryStore store = open_ok(dir_); }
  sqlite3* db = nullptr;
  ASSERT_EQ(sqlite3_open((dir_ / "history.db").c_str(), &db), SQLITE_OK);
  const std::string insert =
      "INSERT INTO samples (service, metric, minute, value) VALUES "
      "('api', 'arrival_rps', " +
      std::to_string(kT0) +
      ", 'garbage'), "
      "('api', 'arrival_rps', " +
      std::to_string(kT0 + 60) +
      ", x'00ff'), "
      "('api', 'arrival_rps', " +
      std::to_string(kT0 + 120) +
      ", 9e999), "
      "('api', 'arrival_rps', " +
      std::to_string(kT0 + 180) +
      ", 7), "
      "('api', 'arrival_rps', " +
      std::to_string(kT0 + 240) + ", '8.5')";
  ASSERT_EQ(sqlite3_exec(db, insert.c_str(), nullptr, nullptr, nullptr), SQLITE_OK)
      << sqlite3_errmsg(db);
  sqlite3_close(db);
  HistoryStore store = open_ok(dir_);
  auto s = store.series("api", "arrival_rps", kT0, kT0 + 300);
  ASSERT_TRUE(s) << s.error().to_string();
  ASSERT_EQ(s->values.size(), 5u);
  EXPECT_TRUE(std::isnan(s->values[0])) << s->values[0];
  EXPECT_TRUE(std::isnan(s->values[1])) << s->values[1];
  EXPECT_TRUE(std::isnan(s->values[2])) << s->values[2];
  EXPECT_EQ(s->values[3], 7);
  EXPECT_EQ(s->values[4], 8.5);  // numeric text: REAL affinity stored it as a number
}

TEST_F(HistoryStoreTest, ANonSqliteFileGivesAClearError) {
  {
    std::ofstream f(dir_ / "history.db", std::ios::binary);
    for (int i = 0; i < 200; ++i) f << "this is not a database, it is a text file\n";
  }
  auto store = HistoryStore::open(dir_);
  ASSERT_FALSE(store);
  EXPECT_EQ(store.error().code, ErrorCode::kInvalidArgument);
  EXPECT_THAT(store.error().message, HasSubstr((dir_ / "history.db").string()));
  EXPECT_THAT(store.error().message, HasSubstr("not a readable SQLite database"));
}

TEST_F(HistoryStoreTest, AnotherSqliteDatabaseIsRefused) {
  sqlite3* db = nullptr;
  ASSERT_EQ(sqlite3_open((dir_ / "history.db").c_str(), &db), SQLITE_OK);
  ASSERT_EQ(sqlite3_exec(db, "CREATE TABLE t (x)", nullptr, nullptr, nullptr), SQLITE_OK);
  sqlite3_close(db);
  auto store = HistoryStore::open(dir_);
  ASSERT_FALSE(store);
  EXPECT_THAT(store.error().message, HasSubstr("not a Prescale history"));
}

TEST_F(HistoryStoreTest, ANewerSchemaIsRefused) {
  { HistoryStore store = open_ok(dir_); }
  sqlite3* db = nullptr;
  ASSERT_EQ(sqlite3_open((dir_ / "history.db").c_str(), &db), SQLITE_OK);
  ASSERT_EQ(sqlite3_exec(db, "UPDATE schema_version SET version = 99", nullptr, nullptr, nullptr),
            SQLITE_OK);
  sqlite3_close(db);
  auto store = HistoryStore::open(dir_);
  ASSERT_FALSE(store);
  EXPECT_EQ(store.error().code, ErrorCode::kInvalidArgument);
  EXPECT_THAT(store.error().message, HasSubstr("schema version 99"));
  EXPECT_THAT(store.error().message, HasSubstr((dir_ / "history.db").string()));
}

TEST_F(HistoryStoreTest, AnUnusableDirectoryGivesAClearError) {
  // A regular file where the directory should be.
  { std::ofstream f(dir_ / "file"); }
  auto store = HistoryStore::open(dir_ / "file" / "state");
  ASSERT_FALSE(store);
  EXPECT_EQ(store.error().code, ErrorCode::kUnavailable);
  EXPECT_THAT(store.error().message, HasSubstr((dir_ / "file" / "state").string()));
}

TEST_F(HistoryStoreTest, UsesWriteAheadLogging) {
  HistoryStore store = open_ok(dir_);
  ASSERT_TRUE(store.append("api", "arrival_rps", kT0, 1));
  sqlite3* db = nullptr;
  ASSERT_EQ(sqlite3_open((dir_ / "history.db").c_str(), &db), SQLITE_OK);
  sqlite3_stmt* st = nullptr;
  ASSERT_EQ(sqlite3_prepare_v2(db, "PRAGMA journal_mode", -1, &st, nullptr), SQLITE_OK);
  ASSERT_EQ(sqlite3_step(st), SQLITE_ROW);
  EXPECT_STREQ(reinterpret_cast<const char*>(sqlite3_column_text(st, 0)), "wal");
  sqlite3_finalize(st);
  sqlite3_close(db);
}

TEST_F(HistoryStoreTest, ConcurrentAppendsAreSerialised) {
  HistoryStore store = open_ok(dir_);
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&store, t] {
      for (int i = 0; i < 50; ++i) {
        EXPECT_TRUE(store.append("svc" + std::to_string(t), "arrival_rps", kT0 + 60 * i, i));
      }
    });
  }
  for (auto& th : threads) th.join();
  for (int t = 0; t < 4; ++t) {
    auto s = store.series("svc" + std::to_string(t), "arrival_rps", kT0, kT0 + 50 * 60);
    ASSERT_TRUE(s);
    for (int i = 0; i < 50; ++i) EXPECT_EQ(s->values[i], i);
  }
}

// docs/state.md: "A build refuses ... an SQLite database without the schema_version table" (and
// one whose schema is newer). Refusing a file must leave it as it was: open() switches it to WAL
// first (PRAGMA journal_mode = WAL is persistent, in the file's header), so another program's
// database in the state directory comes back converted, with -wal and -shm files beside it.
TEST_F(HistoryStoreTest, ARefusedDatabaseIsLeftUnchanged) {
  const auto path = dir_ / "history.db";
  sqlite3* db = nullptr;
  ASSERT_EQ(sqlite3_open(path.c_str(), &db), SQLITE_OK);
  ASSERT_EQ(
      sqlite3_exec(db, "CREATE TABLE t (x); INSERT INTO t VALUES (1)", nullptr, nullptr, nullptr),
      SQLITE_OK);
  sqlite3_close(db);
  auto journal_mode = [&] {
    sqlite3* check = nullptr;
    EXPECT_EQ(sqlite3_open_v2(path.c_str(), &check, SQLITE_OPEN_READONLY, nullptr), SQLITE_OK);
    sqlite3_stmt* st = nullptr;
    EXPECT_EQ(sqlite3_prepare_v2(check, "PRAGMA journal_mode", -1, &st, nullptr), SQLITE_OK);
    EXPECT_EQ(sqlite3_step(st), SQLITE_ROW);
    std::string mode = reinterpret_cast<const char*>(sqlite3_column_text(st, 0));
    sqlite3_finalize(st);
    sqlite3_close(check);
    return mode;
  };
  ASSERT_EQ(journal_mode(), "delete");

  auto store = HistoryStore::open(dir_);
  ASSERT_FALSE(store);
  EXPECT_THAT(store.error().message, HasSubstr("not a Prescale history"));
  EXPECT_EQ(journal_mode(), "delete") << "the refused database was switched to WAL";
}

}  // namespace
}  // namespace prescale::control
