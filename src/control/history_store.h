// HistoryStore: the persistent half of the History (docs/state.md). Per-minute samples per
// service and metric, and the learned state (JSON blobs), in one SQLite file,
// `<state_dir>/history.db`, so a restarted platform keeps its seasonality, topology and capacity.
//
// A minute is Unix seconds, a multiple of 60; a sample is the metric's value over the minute that
// starts there (mean req/s for rates). Metric names are free-form: the controller stores
// "arrival_rps" (what the policy forecasts) and "external_arrival_rps" (docs/state.md); the
// dashboard's charts are not stored. A minute without a sample is a gap (NaN in series()).
//
// Thread safety: any method from any thread; one connection behind a mutex serialises them.
// One platform should own a state directory (SQLite's locking keeps two safe, not sensible).
#pragma once

#include <cstdint>
#include <filesystem>
#include <limits>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <span>
#include <string>
#include <string_view>

#include "core/result.h"
#include "forecast/model.h"

namespace prescale::control {

struct Sample {
  std::string service;
  std::string metric;
  std::int64_t minute = 0;  // Unix seconds, a multiple of 60
  double value = 0;
};

struct StateBlob {
  nlohmann::json value;
  std::int64_t updated_at = 0;  // Unix seconds, as given to put_state()
};

class HistoryStore {
 public:
  // The schema this build writes; open() refuses files written by a newer one.
  static constexpr int kSchemaVersion = 1;
  static constexpr std::string_view kFileName = "history.db";

  // Opens `<state_dir>/history.db`, creating the directory and the database when missing
  // (WAL journal). Errors name the path: kUnavailable (cannot create or open it),
  // kInvalidArgument (not an SQLite database, not a Prescale history, or a newer schema).
  static Result<HistoryStore> open(const std::filesystem::path& state_dir);

  HistoryStore(HistoryStore&&) noexcept;
  HistoryStore& operator=(HistoryStore&&) noexcept;
  ~HistoryStore();

  const std::filesystem::path& path() const;

  // Stores (or replaces) the sample of that service, metric and minute. A non-finite value is a
  // gap: nothing is stored, and an earlier sample of the minute is kept. Errors:
  // kInvalidArgument (a minute not a multiple of 60), kUnavailable (the database failed).
  Result<void> append(std::string_view service, std::string_view metric, std::int64_t minute,
                      double value);
  // The same for many samples, in one transaction: all are stored or none.
  Result<void> append_many(std::span<const Sample> samples);

  // One value per minute of [from, to) (Unix seconds, multiples of 60), NaN where no sample is
  // stored, or where the stored value is not a finite number (a row written by hand): a
  // forecast::Series at 60 s steps starting at `from`. Errors: kInvalidArgument, kUnavailable.
  Result<forecast::Series> series(std::string_view service, std::string_view metric,
                                  std::int64_t from, std::int64_t to) const;
  // The latest minute before `before` (Unix seconds) with a sample of that service and metric;
  // nullopt when none.
  Result<std::optional<std::int64_t>> latest_minute(
      std::string_view service, std::string_view metric,
      std::int64_t before = std::numeric_limits<std::int64_t>::max()) const;

  // Learned state by key ("prescale/policy", ...): replaced whole on every put.
  Result<void> put_state(std::string_view key, const nlohmann::json& value,
                         std::int64_t updated_at);
  // nullopt when the key was never put. Errors: kUnavailable, kInvalidArgument (stored text is
  // not JSON).
  Result<std::optional<StateBlob>> get_state(std::string_view key) const;

  // Deletes the samples of minutes before `older_than` (Unix seconds); returns how many.
  Result<std::int64_t> prune(std::int64_t older_than);

 private:
  struct Impl;
  explicit HistoryStore(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace prescale::control
