#include "core/versioned_file.h"

#include <charconv>
#include <fstream>
#include <string>

namespace prescale {

std::optional<int> versioned_file_number(std::string_view name, std::string_view prefix,
                                         std::string_view suffix) {
  if (name.size() <= prefix.size() + suffix.size() || !name.starts_with(prefix) ||
      !name.ends_with(suffix)) {
    return std::nullopt;
  }
  const std::string_view digits =
      name.substr(prefix.size(), name.size() - prefix.size() - suffix.size());
  if (digits.front() == '0') return std::nullopt;
  int version = 0;
  auto [end, ec] = std::from_chars(digits.data(), digits.data() + digits.size(), version);
  if (ec != std::errc() || end != digits.data() + digits.size()) return std::nullopt;
  return version;
}

Result<void> write_file_atomically(const std::filesystem::path& path, std::string_view bytes) {
  const std::filesystem::path tmp =
      path.parent_path() / ("." + path.filename().string() + ".tmp");
  {
    std::ofstream out(tmp, std::ios::binary | std::ios::trunc);
    out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
    out.flush();
    if (!out) return make_error(ErrorCode::kUnavailable, tmp.string() + ": cannot write");
  }
  std::error_code ec;
  std::filesystem::rename(tmp, path, ec);
  if (ec) return make_error(ErrorCode::kUnavailable, path.string() + ": " + ec.message());
  return {};
}

}  // namespace prescale
