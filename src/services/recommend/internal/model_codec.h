// Internal: the binary layout of recommend-v<N>.bin (docs/services/recommend.md, "Model files"):
// a header (magic, format version, byte-order mark, model kind, user and item counts), the user
// and item ids, the training interactions in compressed rows, then the model's own arrays (ALS
// factors, EASE item set and weights, ItemKNN neighbours), in the writer's byte order (little-
// endian on x86-64 and ARM64); a byte-order mark makes a reader of the other order fail clearly.
//
// Thread safety: functions are pure.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "core/result.h"
#include "services/recommend/internal/model_state.h"

namespace prescale::recommend::internal {

inline constexpr uint32_t kModelFormatVersion = 1;

std::string encode_model(const ModelState& state);

// Fills `state` from `bytes`; state.options (kind and hyper-parameters, from the manifest) must
// be set first and are checked against the file. Errors name `path` and the section at fault.
Result<void> decode_model(std::string_view bytes, const std::string& path, ModelState& state);

}  // namespace prescale::recommend::internal
