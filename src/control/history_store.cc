#include "control/history_store.h"

#include <sqlite3.h>

#include <cmath>
#include <limits>
#include <mutex>
#include <utility>

namespace prescale::control {

namespace {

constexpr std::int64_t kMinuteSeconds = 60;
// A series() longer than this (a year of minutes) is a caller's mistake, not a query to run.
constexpr std::int64_t kMaxSeriesMinutes = 366LL * 24 * 60;

constexpr const char* kSchema = R"sql(
CREATE TABLE schema_version (version INTEGER NOT NULL);
CREATE TABLE samples (
  service TEXT NOT NULL,
  metric TEXT NOT NULL,
  minute INTEGER NOT NULL,
  value REAL NOT NULL,
  PRIMARY KEY (service, metric, minute)
) WITHOUT ROWID;
CREATE INDEX samples_by_minute ON samples (minute);
CREATE TABLE state (
  key TEXT PRIMARY KEY NOT NULL,
  updated_at INTEGER NOT NULL,
  json TEXT NOT NULL
);
)sql";

// A prepared statement, finalized when it goes out of scope.
class Statement {
 public:
  Statement() = default;
  explicit Statement(sqlite3_stmt* s) : s_(s) {}
  Statement(Statement&& o) noexcept : s_(std::exchange(o.s_, nullptr)) {}
  Statement& operator=(Statement&& o) noexcept {
    std::swap(s_, o.s_);
    return *this;
  }
  Statement(const Statement&) = delete;
  Statement& operator=(const Statement&) = delete;
  ~Statement() { sqlite3_finalize(s_); }

  sqlite3_stmt* get() const { return s_; }
  void bind(int i, std::string_view text) {
    sqlite3_bind_text(s_, i, text.data(), static_cast<int>(text.size()), SQLITE_STATIC);
  }
  void bind(int i, std::int64_t v) { sqlite3_bind_int64(s_, i, v); }
  void bind(int i, double v) { sqlite3_bind_double(s_, i, v); }
  int step() { return sqlite3_step(s_); }
  void reset() {
    sqlite3_reset(s_);
    sqlite3_clear_bindings(s_);
  }

 private:
  sqlite3_stmt* s_ = nullptr;
};

bool is_minute(std::int64_t t) { return t % kMinuteSeconds == 0; }

// Rejects what SQLite calls not-a-database or corrupt, as opposed to I/O and permissions.
bool not_a_database(int rc) {
  const int primary = rc & 0xff;
  return primary == SQLITE_NOTADB || primary == SQLITE_CORRUPT;
}

}  // namespace

struct HistoryStore::Impl {
  std::filesystem::path path;
  mutable std::mutex mu;
  sqlite3* db = nullptr;
  Statement upsert;  // cached: append() is the hot call

  ~Impl() {
    upsert = Statement();
    sqlite3_close_v2(db);
  }

  std::unexpected<Error> fail(std::string_view what, int rc) const {
    const char* detail = db != nullptr ? sqlite3_errmsg(db) : sqlite3_errstr(rc);
    if (not_a_database(rc)) {
      return make_error(ErrorCode::kInvalidArgument,
                        "history store " + path.string() + " is not a readable SQLite database (" +
                            detail + "); move it aside to start a fresh history (docs/state.md)");
    }
    return make_error(ErrorCode::kUnavailable,
                      "history store " + path.string() + ": " + std::string(what) + ": " + detail);
  }

  Result<void> exec(const char* sql) const {
    const int rc = sqlite3_exec(db, sql, nullptr, nullptr, nullptr);
    if (rc != SQLITE_OK) return fail(sql, rc);
    return {};
  }

  // Ends the transaction. A COMMIT that fails in a way it could be retried after (SQLITE_BUSY, a
  // deferred constraint) leaves the transaction open, and every later BEGIN would fail: it is
  // rolled back, so all of it is stored or none.
  Result<void> commit() const {
    auto r = exec("COMMIT");
    if (!r && sqlite3_get_autocommit(db) == 0) (void)exec("ROLLBACK");
    return r;
  }

  Result<Statement> prepare(std::string_view sql) const {
    sqlite3_stmt* s = nullptr;
    const int rc = sqlite3_prepare_v2(db, sql.data(), static_cast<int>(sql.size()), &s, nullptr);
    if (rc != SQLITE_OK) return fail("prepare", rc);
    return Statement(s);
  }

  // One integer from a query with one row and column; nullopt for NULL.
  Result<std::optional<std::int64_t>> scalar(std::string_view sql) const {
    auto st = prepare(sql);
    if (!st) return std::unexpected(st.error());
    const int rc = st->step();
    if (rc != SQLITE_ROW) return fail(sql, rc);
    if (sqlite3_column_type(st->get(), 0) == SQLITE_NULL) return std::nullopt;
    return sqlite3_column_int64(st->get(), 0);
  }

  Result<void> upsert_one(std::string_view service, std::string_view metric, std::int64_t minute,
                          double value) {
    if (!std::isfinite(value)) return {};  // a gap
    upsert.bind(1, service);
    upsert.bind(2, metric);
    upsert.bind(3, minute);
    upsert.bind(4, value);
    const int rc = upsert.step();
    upsert.reset();
    if (rc != SQLITE_DONE) return fail("append", rc);
    return {};
  }

  // Checks the schema version, creating the schema in an empty database.
  Result<void> check_schema() {
    if (auto r = exec("BEGIN IMMEDIATE"); !r) return r;
    auto result = [&]() -> Result<void> {
      auto versioned = scalar(
          "SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name = 'schema_version'");
      if (!versioned) return std::unexpected(versioned.error());
      if (**versioned == 0) {
        auto tables = scalar("SELECT count(*) FROM sqlite_master");
        if (!tables) return std::unexpected(tables.error());
        if (**tables != 0) {
          return make_error(ErrorCode::kInvalidArgument,
                            "history store " + path.string() +
                                " is an SQLite database but not a Prescale history (no "
                                "schema_version table); move it aside to start a fresh history");
        }
        if (auto r = exec(kSchema); !r) return r;
        return exec(
            ("INSERT INTO schema_version (version) VALUES (" + std::to_string(kSchemaVersion) + ")")
                .c_str());
      }
      auto version = scalar("SELECT max(version) FROM schema_version");
      if (!version) return std::unexpected(version.error());
      if (!*version || **version < 1) {
        return make_error(ErrorCode::kInvalidArgument,
                          "history store " + path.string() + " has no schema version");
      }
      if (**version > kSchemaVersion) {
        return make_error(ErrorCode::kInvalidArgument,
                          "history store " + path.string() + " has schema version " +
                              std::to_string(**version) + ", newer than this build reads (" +
                              std::to_string(kSchemaVersion) +
                              "): run a newer Prescale, or move it aside to start afresh");
      }
      return {};
    }();
    if (!result) {
      (void)exec("ROLLBACK");
      return result;
    }
    return commit();
  }
};

HistoryStore::HistoryStore(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
HistoryStore::HistoryStore(HistoryStore&&) noexcept = default;
HistoryStore& HistoryStore::operator=(HistoryStore&&) noexcept = default;
HistoryStore::~HistoryStore() = default;

Result<HistoryStore> HistoryStore::open(const std::filesystem::path& state_dir) {
  std::error_code ec;
  std::filesystem::create_directories(state_dir, ec);
  if (ec) {
    return make_error(ErrorCode::kUnavailable, "history store: cannot create the state directory " +
                                                   state_dir.string() + ": " + ec.message());
  }
  auto impl = std::make_unique<Impl>();
  impl->path = state_dir / kFileName;
  const int rc = sqlite3_open_v2(impl->path.c_str(), &impl->db,
                                 SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE, nullptr);
  if (rc != SQLITE_OK) return impl->fail("cannot open", rc);
  sqlite3_extended_result_codes(impl->db, 1);
  // Another process holding the write lock (a second `prescale up`) is waited for, not failed.
  sqlite3_busy_timeout(impl->db, 5000);
  // WAL: readers (the dashboard) do not block the once-a-minute writer; NORMAL sync loses at
  // most the last transactions on power loss, never the database.
  // The schema first: a file that is not ours (or is newer) is refused untouched — the journal
  // mode is a property of the file, kept after we close it.
  if (auto r = impl->check_schema(); !r) return std::unexpected(r.error());
  if (auto r = impl->exec("PRAGMA journal_mode = WAL"); !r) return std::unexpected(r.error());
  if (auto r = impl->exec("PRAGMA synchronous = NORMAL"); !r) return std::unexpected(r.error());
  auto upsert = impl->prepare(
      "INSERT INTO samples (service, metric, minute, value) VALUES (?, ?, ?, ?) "
      "ON CONFLICT (service, metric, minute) DO UPDATE SET value = excluded.value");
  if (!upsert) return std::unexpected(upsert.error());
  impl->upsert = std::move(*upsert);
  return HistoryStore(std::move(impl));
}

const std::filesystem::path& HistoryStore::path() const { return impl_->path; }

Result<void> HistoryStore::append(std::string_view service, std::string_view metric,
                                  std::int64_t minute, double value) {
  if (!is_minute(minute)) {
    return make_error(
        ErrorCode::kInvalidArgument,
        "history store: minute " + std::to_string(minute) + " is not a multiple of 60 s");
  }
  std::lock_guard lock(impl_->mu);
  return impl_->upsert_one(service, metric, minute, value);
}

Result<void> HistoryStore::append_many(std::span<const Sample> samples) {
  for (const Sample& s : samples) {
    if (!is_minute(s.minute)) {
      return make_error(ErrorCode::kInvalidArgument,
                        "history store: minute " + std::to_string(s.minute) + " of " + s.service +
                            "/" + s.metric + " is not a multiple of 60 s");
    }
  }
  std::lock_guard lock(impl_->mu);
  if (auto r = impl_->exec("BEGIN IMMEDIATE"); !r) return r;
  for (const Sample& s : samples) {
    if (auto r = impl_->upsert_one(s.service, s.metric, s.minute, s.value); !r) {
      (void)impl_->exec("ROLLBACK");
      return r;
    }
  }
  return impl_->commit();
}

Result<forecast::Series> HistoryStore::series(std::string_view service, std::string_view metric,
                                              std::int64_t from, std::int64_t to) const {
  if (!is_minute(from) || !is_minute(to)) {
    return make_error(ErrorCode::kInvalidArgument,
                      "history store: series bounds " + std::to_string(from) + ", " +
                          std::to_string(to) + " are not multiples of 60 s");
  }
  forecast::Series out;
  out.start_seconds = static_cast<double>(from);
  out.step_seconds = kMinuteSeconds;
  if (to <= from) return out;
  const std::int64_t count = (to - from) / kMinuteSeconds;
  if (count > kMaxSeriesMinutes) {
    return make_error(ErrorCode::kOutOfRange, "history store: a series of " +
                                                  std::to_string(count) +
                                                  " minutes is longer than the limit of " +
                                                  std::to_string(kMaxSeriesMinutes));
  }
  out.values.assign(static_cast<size_t>(count), std::numeric_limits<double>::quiet_NaN());
  std::lock_guard lock(impl_->mu);
  auto st = impl_->prepare(
      "SELECT minute, value FROM samples "
      "WHERE service = ? AND metric = ? AND minute >= ? AND minute < ?");
  if (!st) return std::unexpected(st.error());
  st->bind(1, service);
  st->bind(2, metric);
  st->bind(3, from);
  st->bind(4, to);
  int rc;
  while ((rc = st->step()) == SQLITE_ROW) {
    const std::int64_t minute = sqlite3_column_int64(st->get(), 0);
    if (!is_minute(minute)) continue;  // written by hand; a minute is a multiple of 60
    // Text, a blob or an infinity (written by hand, or by a broken tool) is a gap, as append()
    // would have made it: read as a number, text and blobs would be 0, a minute without traffic.
    const int type = sqlite3_column_type(st->get(), 1);
    if (type != SQLITE_FLOAT && type != SQLITE_INTEGER) continue;
    const double value = sqlite3_column_double(st->get(), 1);
    if (!std::isfinite(value)) continue;
    out.values[static_cast<size_t>((minute - from) / kMinuteSeconds)] = value;
  }
  if (rc != SQLITE_DONE) return impl_->fail("series", rc);
  return out;
}

Result<std::optional<std::int64_t>> HistoryStore::latest_minute(std::string_view service,
                                                                std::string_view metric,
                                                                std::int64_t before) const {
  std::lock_guard lock(impl_->mu);
  auto st = impl_->prepare(
      "SELECT max(minute) FROM samples WHERE service = ? AND metric = ? AND minute < ?");
  if (!st) return std::unexpected(st.error());
  st->bind(1, service);
  st->bind(2, metric);
  st->bind(3, before);
  const int rc = st->step();
  if (rc != SQLITE_ROW) return impl_->fail("latest_minute", rc);
  if (sqlite3_column_type(st->get(), 0) == SQLITE_NULL) return std::nullopt;
  return sqlite3_column_int64(st->get(), 0);
}

Result<void> HistoryStore::put_state(std::string_view key, const nlohmann::json& value,
                                     std::int64_t updated_at) {
  // Invalid UTF-8 in a service name must not lose the whole state: it is replaced, not thrown.
  const std::string text = value.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
  std::lock_guard lock(impl_->mu);
  auto st = impl_->prepare(
      "INSERT INTO state (key, updated_at, json) VALUES (?, ?, ?) "
      "ON CONFLICT (key) DO UPDATE SET updated_at = excluded.updated_at, json = excluded.json");
  if (!st) return std::unexpected(st.error());
  st->bind(1, key);
  st->bind(2, updated_at);
  st->bind(3, std::string_view(text));
  const int rc = st->step();
  if (rc != SQLITE_DONE) return impl_->fail("put_state", rc);
  return {};
}

Result<std::optional<StateBlob>> HistoryStore::get_state(std::string_view key) const {
  std::string text;
  StateBlob blob;
  {
    std::lock_guard lock(impl_->mu);
    auto st = impl_->prepare("SELECT updated_at, json FROM state WHERE key = ?");
    if (!st) return std::unexpected(st.error());
    st->bind(1, key);
    const int rc = st->step();
    if (rc == SQLITE_DONE) return std::nullopt;
    if (rc != SQLITE_ROW) return impl_->fail("get_state", rc);
    blob.updated_at = sqlite3_column_int64(st->get(), 0);
    const auto* data = reinterpret_cast<const char*>(sqlite3_column_text(st->get(), 1));
    text.assign(data != nullptr ? data : "",
                static_cast<size_t>(sqlite3_column_bytes(st->get(), 1)));
  }
  blob.value = nlohmann::json::parse(text, nullptr, /*allow_exceptions=*/false);
  if (blob.value.is_discarded()) {
    return make_error(ErrorCode::kInvalidArgument, "history store " + impl_->path.string() +
                                                       ": state \"" + std::string(key) +
                                                       "\" is not valid JSON");
  }
  return blob;
}

Result<std::int64_t> HistoryStore::prune(std::int64_t older_than) {
  std::lock_guard lock(impl_->mu);
  auto st = impl_->prepare("DELETE FROM samples WHERE minute < ?");
  if (!st) return std::unexpected(st.error());
  st->bind(1, older_than);
  const int rc = st->step();
  if (rc != SQLITE_DONE) return impl_->fail("prune", rc);
  return static_cast<std::int64_t>(sqlite3_changes(impl_->db));
}

}  // namespace prescale::control
