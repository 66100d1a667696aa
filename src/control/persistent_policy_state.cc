#include "control/persistent_policy_state.h"

#include <chrono>
#include <cmath>
#include <fstream>
#include <optional>
#include <string>
#include <vector>

namespace prescale::control {

namespace {

constexpr int kFormat = 1;
constexpr std::int64_t kMinuteSeconds = 60;

// Wall time minus monotonic time, in whole minutes: adding it to a monotonic minute number gives
// the Unix minute number. Rounded, but the offset of an earlier save is kept while it is within
// 45 s of the exact one: a clock whose offset sits near half a minute and drifts (NTP slews the
// wall clock) must not flip the mapping back and forth, moving stored minutes by one.
std::int64_t wall_minus_mono_minutes(Clock::TimePoint now, Clock::WallTime wall_now,
                                     std::optional<std::int64_t> saved) {
  const Clock::Duration offset = wall_now.time_since_epoch() - now.time_since_epoch();
  const double minutes = std::chrono::duration<double>(offset).count() / kMinuteSeconds;
  if (saved && std::abs(minutes - static_cast<double>(*saved)) < 0.75) return *saved;
  return std::llround(minutes);
}

std::int64_t minute_number(Clock::TimePoint t) {
  return std::chrono::floor<std::chrono::minutes>(t.time_since_epoch()).count();
}

// The offset to map minutes with: the saved one while the machine has not rebooted since the save
// (the monotonic clock runs on; a step of the wall clock must not move minutes), else from the
// clocks. A monotonic clock behind the save's in the same boot is not the one the offset was
// taken on: a compressed controller clock (`--time-scale`) starts again from the machine's at a
// restart, while its wall time goes on after the stored minutes.
std::int64_t offset_for(Clock::TimePoint now, Clock::WallTime wall_now,
                        std::optional<std::int64_t> saved, const std::optional<StateBlob>& blob,
                        std::string_view boot) {
  if (saved && !boot.empty() && blob) {
    // Not value("boot", ...): a "boot" of another type (a hand-edited state) is another boot, not
    // a type_error thrown out of the restore or the save.
    auto it = blob->value.find("boot");
    auto mono = blob->value.find("mono_minute");
    const bool clock_went_on = mono == blob->value.end() || !mono->is_number_integer() ||
                               minute_number(now) >= mono->get<std::int64_t>();
    if (it != blob->value.end() && it->is_string() && it->get_ref<const std::string&>() == boot &&
        clock_went_on) {
      return *saved;
    }
  }
  return wall_minus_mono_minutes(now, wall_now, saved);
}

// The offset the last save used, if a blob of this format is stored.
std::optional<std::int64_t> saved_offset(const std::optional<StateBlob>& blob) {
  if (!blob || !blob->value.is_object()) return std::nullopt;
  // Not value("format", 0), which throws on a "format" of another type ("2.0"): that is another
  // format, an error naming the file.
  auto format = blob->value.find("format");
  if (format == blob->value.end() || !format->is_number_integer() ||
      format->get<std::int64_t>() != kFormat) {
    return std::nullopt;
  }
  auto it = blob->value.find("wall_minus_mono_minutes");
  if (it == blob->value.end() || !it->is_number_integer()) return std::nullopt;
  return it->get<std::int64_t>();
}

// A state blob this build cannot read (another Prescale version's): `then` says what is done.
std::unexpected<Error> not_our_format(const HistoryStore& store, std::string_view then) {
  return make_error(ErrorCode::kInvalidArgument,
                    "history store " + store.path().string() + ": state \"" +
                        std::string(kPolicyStateKey) + "\" is not in format " +
                        std::to_string(kFormat) + " (written by another Prescale version?)" +
                        std::string(then));
}

std::string_view metric_of(scaling::PrescalePolicy::SeriesKind kind) {
  return kind == scaling::PrescalePolicy::SeriesKind::kExternal ? kExternalArrivalMetric
                                                                : kArrivalMetric;
}

std::int64_t unix_seconds(Clock::WallTime t) {
  return std::chrono::floor<std::chrono::seconds>(t.time_since_epoch()).count();
}

}  // namespace

std::string_view current_boot_id() {
  static const std::string id = [] {
    std::ifstream in("/proc/sys/kernel/random/boot_id");
    std::string line;
    std::getline(in, line);
    return line;
  }();
  return id;
}

Result<void> save_policy_state(HistoryStore& store, const scaling::PrescalePolicy& policy,
                               Clock::TimePoint now, Clock::WallTime wall_now,
                               std::string_view boot, SavedMinutes minutes) {
  auto previous = store.get_state(kPolicyStateKey);
  if (!previous) return std::unexpected(previous.error());
  const std::optional<std::int64_t> previous_offset = saved_offset(*previous);
  // Another version's state (or one this build cannot read) is never overwritten.
  if (*previous && !previous_offset) {
    return not_our_format(store,
                          "; not overwritten — move the state directory aside to start a "
                          "fresh one");
  }
  nlohmann::json state = policy.export_state(now);
  // Nor is a policy state of another version in this format (a newer build's, which bumped only
  // the policy's own version): this build refused to restore it.
  if (*previous) {
    const nlohmann::json& stored = (*previous)->value;
    auto p = stored.find("policy");
    const nlohmann::json* version = nullptr;
    if (p != stored.end() && p->is_object()) {
      auto v = p->find("version");
      if (v != p->end()) version = &*v;
    }
    if (version != nullptr && *version != state["version"]) {
      return make_error(ErrorCode::kInvalidArgument,
                        "history store " + store.path().string() + ": state \"" +
                            std::string(kPolicyStateKey) + "\" holds a policy state of version " +
                            version->dump() + " (this build writes " + state["version"].dump() +
                            "; written by another Prescale version?); not overwritten — move the "
                            "state directory aside to start a fresh one");
    }
  }
  const std::int64_t offset = offset_for(now, wall_now, previous_offset, *previous, boot);
  // Now in the store's mapping of minutes, which is the wall clock's only while that has not been
  // stepped since the offset was taken: ages of stored minutes are measured from here.
  const std::int64_t mapped_now = (minute_number(now) + offset) * kMinuteSeconds;

  std::vector<Sample> samples;
  using Kind = scaling::PrescalePolicy::SeriesKind;
  for (const auto& [service, saved] : state["services"].items()) {
    for (const Kind kind : {Kind::kArrivals, Kind::kExternal}) {
      if (kind == Kind::kExternal && !saved.contains("external")) continue;
      const std::string_view metric = metric_of(kind);
      auto history = policy.history(service, kind);
      if (!history) return std::unexpected(history.error());
      // Minutes from now on were stored under a clock that ran ahead (an earlier boot's): they
      // are not this history's, and must not stop it being written.
      auto latest = store.latest_minute(service, metric, mapped_now);
      if (!latest) return std::unexpected(latest.error());
      const auto first = std::llround(history->start_seconds / kMinuteSeconds) + offset;
      for (size_t i = 0; i < history->values.size(); ++i) {
        const std::int64_t minute = (first + static_cast<std::int64_t>(i)) * kMinuteSeconds;
        // Minutes before the latest stored one are there already: a minute, once recorded, does
        // not change. The latest is written again in case it was written from another history.
        if (minutes == SavedMinutes::kSinceLatest && *latest && minute < **latest) continue;
        if (!std::isfinite(history->values[i])) continue;
        samples.push_back({service, std::string(metric), minute, history->values[i]});
      }
    }
  }
  if (auto r = store.append_many(samples); !r) return r;

  const nlohmann::json blob = {{"format", kFormat},
                               {"wall_minus_mono_minutes", offset},
                               {"boot", std::string(boot)},
                               {"mono_minute", minute_number(now)},
                               {"policy", std::move(state)}};
  const std::int64_t wall = unix_seconds(wall_now);
  if (auto r = store.put_state(kPolicyStateKey, blob, wall); !r) return r;

  const auto& options = policy.options();
  const auto retention = std::chrono::duration_cast<std::chrono::seconds>(
      options.max_history + options.refit_interval + std::chrono::hours(24));
  auto pruned = store.prune(mapped_now - retention.count());
  if (!pruned) return std::unexpected(pruned.error());
  return {};
}

Result<std::optional<nlohmann::json>> stored_policy_state(const HistoryStore& store) {
  auto blob = store.get_state(kPolicyStateKey);
  if (!blob) return std::unexpected(blob.error());
  if (!*blob) return std::optional<nlohmann::json>();
  if (!saved_offset(*blob) || !(*blob)->value.contains("policy")) return not_our_format(store, "");
  return std::optional<nlohmann::json>((*blob)->value["policy"]);
}

Result<bool> restore_policy_state(HistoryStore& store, scaling::PrescalePolicy& policy,
                                  Clock::TimePoint now, Clock::WallTime wall_now,
                                  std::string_view boot) {
  auto blob = store.get_state(kPolicyStateKey);
  if (!blob) return std::unexpected(blob.error());
  if (!*blob) return false;
  const nlohmann::json& value = (*blob)->value;
  const std::optional<std::int64_t> saved = saved_offset(*blob);
  if (!saved || !value.contains("policy")) return not_our_format(store, "");
  const std::int64_t offset = offset_for(now, wall_now, saved, *blob, boot);
  const auto clock_shift =
      std::chrono::duration_cast<Clock::Duration>(std::chrono::minutes(*saved - offset));

  auto minutes = [&](std::string_view service, scaling::PrescalePolicy::SeriesKind kind,
                     Clock::TimePoint from, Clock::TimePoint to) -> Result<forecast::Series> {
    auto series =
        store.series(service, metric_of(kind), (minute_number(from) + offset) * kMinuteSeconds,
                     (minute_number(to) + offset) * kMinuteSeconds);
    if (!series) return series;
    series->start_seconds = static_cast<double>(minute_number(from) * kMinuteSeconds);
    return series;
  };
  if (auto r = policy.import_state(value["policy"], minutes, now, clock_shift); !r) {
    return std::unexpected(r.error());
  }
  return true;
}

}  // namespace prescale::control
