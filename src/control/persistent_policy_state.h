// Saving the Prescale policy's learned state in a HistoryStore and restoring it, so a restarted
// `prescale up` keeps its seasonality, topology and capacity (docs/state.md). The controller
// saves once a minute and restores once, after PrescalePolicy::init() and before the first
// observe().
//
// Stored: each service's per-minute demand history as "arrival_rps" samples (only the minutes
// since the previous save are written), and the "prescale/policy" state blob (learned topology,
// capacity, planning quantile, the window each forecaster was fitted on). The restore refits each
// forecaster on that window and rolls it forward, so the forecast after a restart matches the one
// before it.
//
// The policy numbers minutes on the monotonic clock, the store in Unix time: both calls take
// `now` and `wall_now` from the same Clock, and the offset between them, in whole minutes, maps
// one onto the other. Within one boot (`boot`: the kernel's boot id, which current_boot_id()
// reads) the offset of the first save stays, so a wall clock stepped while the platform runs
// moves no stored minute; after a reboot (the monotonic clock restarts; wall time does not), or
// when `now` is behind the last save's (a compressed clock restarted in the same boot), it is
// taken again from the clocks.
//
// Thread safety: as the policy's (one controller thread); the store is safe to share.
#pragma once

#include <cstdint>
#include <optional>
#include <string_view>

#include "control/history_store.h"
#include "core/clock.h"
#include "core/result.h"
#include "scaling/prescale_policy.h"

namespace prescale::control {

inline constexpr std::string_view kPolicyStateKey = "prescale/policy";
// The per-minute demand the policy forecasts, mean req/s.
inline constexpr std::string_view kArrivalMetric = "arrival_rps";
// The requests a service gets from outside the call graph, kept for a service that callers call
// and that also has clients of its own (PrescalePolicy::SeriesKind::kExternal).
inline constexpr std::string_view kExternalArrivalMetric = "external_arrival_rps";

// This machine's boot id (/proc/sys/kernel/random/boot_id), read once; "" where there is none
// (then every save and restore takes the offset from the clocks, within 45 s of the last one).
std::string_view current_boot_id();

// Which minutes of the history a save writes: those recorded since the last save (from the
// latest one stored on), or every one the policy holds (after minutes were filled in before the
// latest stored one: PrescalePolicy::fill_history()).
enum class SavedMinutes { kSinceLatest, kAll };

// Writes the minutes recorded since the last save, then the state blob, then prunes samples older
// than the policy can need (max_history + refit_interval + a day: a forecaster's fit window may
// start before the kept history). Errors: the store's.
Result<void> save_policy_state(HistoryStore& store, const scaling::PrescalePolicy& policy,
                               Clock::TimePoint now, Clock::WallTime wall_now,
                               std::string_view boot = current_boot_id(),
                               SavedMinutes minutes = SavedMinutes::kSinceLatest);

// Restores what save_policy_state() stored: false when the store holds no state (a first start).
// Errors: the store's; kInvalidArgument for a state this build cannot read (the policy is then
// unchanged, and the caller may go on without it).
Result<bool> restore_policy_state(HistoryStore& store, scaling::PrescalePolicy& policy,
                                  Clock::TimePoint now, Clock::WallTime wall_now,
                                  std::string_view boot = current_boot_id());

// The policy's own part of the stored state (what PrescalePolicy::export_state() wrote), for
// tools that read it without restoring (`prescale sim --capacity-from`): nullopt when the store
// holds no state. Errors: the store's; kInvalidArgument for a state of another format.
Result<std::optional<nlohmann::json>> stored_policy_state(const HistoryStore& store);

}  // namespace prescale::control
