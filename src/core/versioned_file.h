// Versioned model files, shared by the services that keep them (fraud, recommend, forecast):
// the version in a name like "fraud-v12.json", listing a directory's versions, and writing a file
// so that it appears whole.
#pragma once

#include <filesystem>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "core/result.h"

namespace prescale {

// N of "<prefix>N<suffix>" (N a positive decimal without leading zeros); nullopt for other names.
std::optional<int> versioned_file_number(std::string_view name, std::string_view prefix,
                                         std::string_view suffix);

struct VersionedFile {
  int version = 0;
  std::string path;
};
// The files "<prefix>N<suffix>" in `dir`, newest (highest N) first; a missing directory has none.
// Errors: kUnavailable naming the directory when it cannot be read.
Result<std::vector<VersionedFile>> list_versioned_files(const std::string& dir,
                                                        std::string_view prefix,
                                                        std::string_view suffix);

// Writes `bytes` under a hidden temporary name beside `path` (this call's own), flushes it
// to the disk, then renames it: readers see the whole file or none, and after a crash the old
// file or the new one. Errors: kUnavailable naming the path and why; no temporary file is left.
Result<void> write_file_atomically(const std::filesystem::path& path, std::string_view bytes);

// Writes `bytes` to `path` as write_file_atomically() does, only when no file has that name: it
// appears whole, and of two writers of one path (threads or processes) exactly one creates it
// and none replaces it (on a file system without hard links, a writer that comes between the
// check and the rename may be replaced). Returns false, writing nothing there, when `path`
// exists. Errors: kUnavailable naming the path and why; no temporary file is left.
Result<bool> create_file_atomically(const std::filesystem::path& path, std::string_view bytes);

// An output file of a command (--json, --plot, --timeline): a regular file (or a new one)
// whole or not at all, as write_file_atomically; anything else (/dev/stdout, a pipe, a symbolic
// link) written directly and checked once closed. Errors: kUnavailable naming the path and why.
Result<void> write_output_file(const std::filesystem::path& path, std::string_view bytes);

}  // namespace prescale
