#include "core/versioned_file.h"

#include <algorithm>
#include <charconv>
#include <fstream>
#include <string>
#include <system_error>

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

Result<std::vector<VersionedFile>> list_versioned_files(const std::string& dir,
                                                        std::string_view prefix,
                                                        std::string_view suffix) {
  std::vector<VersionedFile> files;
  std::error_code ec;
  if (!std::filesystem::exists(dir, ec)) return files;
  std::filesystem::directory_iterator it(dir, ec);
  if (ec) return make_error(ErrorCode::kUnavailable, dir + ": " + ec.message());
  for (; it != std::filesystem::directory_iterator(); it.increment(ec)) {
    if (ec) return make_error(ErrorCode::kUnavailable, dir + ": " + ec.message());
    if (auto version = versioned_file_number(it->path().filename().string(), prefix, suffix)) {
      files.push_back({*version, it->path().string()});
    }
  }
  std::sort(files.begin(), files.end(),
            [](const VersionedFile& a, const VersionedFile& b) { return a.version > b.version; });
  return files;
}

Result<void> write_file_atomically(const std::filesystem::path& path, std::string_view bytes) {
  const std::filesystem::path tmp = path.parent_path() / ("." + path.filename().string() + ".tmp");
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
