// The dashboard's web UI (src/dashboard/ui/), compiled into the binary by embed_assets.cmake so
// that `prescale` needs no files at run time. Internal to src/dashboard.
#pragma once

#include <span>
#include <string_view>

namespace prescale::dashboard::internal {

struct UiAsset {
  std::string_view path;    // relative to src/dashboard/ui/, e.g. "vendor/uplot/uPlot.min.css"
  std::string_view sha256;  // hex digest of `bytes`, used as the ETag
  std::string_view bytes;
};

// Every embedded file, sorted by path. Static storage; thread-safe.
std::span<const UiAsset> ui_assets();

}  // namespace prescale::dashboard::internal
