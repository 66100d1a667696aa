#include "core/versioned_file.h"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <charconv>
#include <cstring>
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
  if (digits.front() < '1' || digits.front() > '9') return std::nullopt;  // no sign, no 0
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
  if (!std::filesystem::exists(dir, ec)) {
    // Missing, or not looked up at all (a parent without search permission, a link loop).
    if (ec) return make_error(ErrorCode::kUnavailable, dir + ": " + ec.message());
    return files;
  }
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
  // A name of this call's own beside the file (the process's pid and a count of its calls), so
  // two writers — processes or threads — never share one; written, flushed to the disk, then
  // renamed over the file (a crash leaves the old file or the new).
  static std::atomic<uint64_t> calls{0};
  const std::filesystem::path tmp =
      path.parent_path() / ("." + path.filename().string() + "." + std::to_string(::getpid()) +
                            "." + std::to_string(calls.fetch_add(1)) + ".tmp");
  auto fail = [&]() {
    const std::string why = std::strerror(errno);
    ::unlink(tmp.c_str());
    return make_error(ErrorCode::kUnavailable, path.string() + ": " + why);
  };
  const int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0)
    return make_error(ErrorCode::kUnavailable, path.string() + ": " + std::strerror(errno));
  for (size_t done = 0; done < bytes.size();) {
    const ssize_t n = ::write(fd, bytes.data() + done, bytes.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      auto e = fail();
      ::close(fd);
      return e;
    }
    done += static_cast<size_t>(n);
  }
  if (::fsync(fd) != 0) {
    auto e = fail();
    ::close(fd);
    return e;
  }
  if (::close(fd) != 0) return fail();
  if (::rename(tmp.c_str(), path.c_str()) != 0) return fail();
  return {};
}

Result<bool> create_file_atomically(const std::filesystem::path& path, std::string_view bytes) {
  // Written whole under a name of this call's own, then linked to `path`: unlike a rename, a
  // link never replaces a file.
  static std::atomic<uint64_t> calls{0};
  const std::filesystem::path staging =
      path.parent_path() / ("." + path.filename().string() + "." + std::to_string(::getpid()) +
                            "." + std::to_string(calls.fetch_add(1)) + ".new");
  if (auto ok = write_file_atomically(staging, bytes); !ok) return std::unexpected(ok.error());
  int linked = ::link(staging.c_str(), path.c_str());
  int why = errno;
  if (linked != 0 && (why == EPERM || why == EOPNOTSUPP)) {
    // A file system without hard links (FAT, some network mounts): a rename after a check, which
    // may replace a file another writer created in between, is the best it offers.
    std::error_code ec;
    if (std::filesystem::exists(path, ec)) {
      why = EEXIST;
    } else {
      linked = ::rename(staging.c_str(), path.c_str());
      why = errno;
      if (linked == 0) return true;
    }
  }
  ::unlink(staging.c_str());
  if (linked == 0) return true;
  if (why == EEXIST) return false;
  return make_error(ErrorCode::kUnavailable, path.string() + ": " + std::strerror(why));
}

Result<void> write_output_file(const std::filesystem::path& path, std::string_view bytes) {
  std::error_code ec;
  // Not through a link: replacing it would put a file where the link was.
  const auto status = std::filesystem::symlink_status(path, ec);
  if (!std::filesystem::exists(status) || std::filesystem::is_regular_file(status)) {
    return write_file_atomically(path, bytes);
  }
  std::ofstream out(path, std::ios::binary);
  out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
  out.close();  // a buffered write fails here, not before
  if (!out) {
    return make_error(ErrorCode::kUnavailable, path.string() + ": " + std::strerror(errno));
  }
  return {};
}

}  // namespace prescale
