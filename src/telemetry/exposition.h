// Prometheus text exposition format 0.0.4: what `GET /metrics` returns.
//
// Output is deterministic: families sorted by name, series by label values, labels in the
// family's declared order, histogram buckets ascending with a final le="+Inf". Families with no
// series yet (labelled families before their first `with()`) are left out, as in the Go client.
#pragma once

#include <span>
#include <string>
#include <string_view>

#include "telemetry/registry.h"
#include "telemetry/snapshot.h"

namespace prescale::telemetry {

// The Content-Type of the text format.
inline constexpr std::string_view kTextContentType = "text/plain; version=0.0.4; charset=utf-8";

// Collects `registry` (running its collectors) and renders it.
std::string expose(const Registry& registry);

// Renders `families` in the given order (Registry::collect() sorts them).
std::string expose(std::span<const FamilySnapshot> families);

}  // namespace prescale::telemetry
