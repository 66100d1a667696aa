#include "core/versioned_file.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <atomic>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <thread>

namespace prescale {
namespace {

// The header promises "N a positive decimal without leading zeros"; from_chars also reads a
// leading "-", so "fraud-v-5.json" was version -5 (and "fraud-v-0.json" version 0).
TEST(VersionedFile, ANameWithANegativeOrZeroNumberHasNoVersion) {
  EXPECT_EQ(versioned_file_number("fraud-v5.json", "fraud-v", ".json"), 5);
  EXPECT_EQ(versioned_file_number("fraud-v-5.json", "fraud-v", ".json"), std::nullopt);
  EXPECT_EQ(versioned_file_number("fraud-v-0.json", "fraud-v", ".json"), std::nullopt);
}

// A directory holding only "fraud-v-3.json" listed it as version -3, so the next version a
// trainer computed (newest + 1) was -2.
TEST(VersionedFile, ListingSkipsFilesWhoseNumberIsNotPositive) {
  const std::filesystem::path dir = std::filesystem::temp_directory_path() /
                                    ("versioned-file-" + std::to_string(::getpid()));
  std::filesystem::remove_all(dir);
  std::filesystem::create_directories(dir);
  std::ofstream(dir / "fraud-v-3.json") << "{}";
  std::ofstream(dir / "fraud-v2.json") << "{}";
  auto files = list_versioned_files(dir.string(), "fraud-v", ".json");
  ASSERT_TRUE(files.has_value()) << files.error().message;
  ASSERT_EQ(files->size(), 1u);
  EXPECT_EQ(files->front().version, 2);
  std::filesystem::remove_all(dir);
}

// The header: "a missing directory has none", and kUnavailable naming the directory when it
// cannot be read. A directory that could not even be looked up (here a link loop; for a user
// who is not root, a parent without search permission) was taken for a missing one: no versions,
// no error, so a recommend replica reported that its directory holds no model.
TEST(VersionedFile, ADirectoryThatCannotBeLookedUpIsAnErrorNotAMissingOne) {
  const std::filesystem::path dir = std::filesystem::temp_directory_path() /
                                    ("versioned-file-loop-" + std::to_string(::getpid()));
  std::filesystem::remove_all(dir);
  std::filesystem::create_directories(dir);
  std::filesystem::create_symlink(dir / "models", dir / "models");  // stat(): ELOOP
  auto files = list_versioned_files((dir / "models").string(), "fraud-v", ".json");
  ASSERT_FALSE(files.has_value()) << files->size() << " versions listed";
  EXPECT_EQ(files.error().code, ErrorCode::kUnavailable);
  EXPECT_NE(files.error().message.find((dir / "models").string()), std::string::npos)
      << files.error().message;
  auto missing = list_versioned_files((dir / "none").string(), "fraud-v", ".json");
  ASSERT_TRUE(missing.has_value()) << missing.error().message;
  EXPECT_TRUE(missing->empty());
  std::filesystem::remove_all(dir);
}

// create_file_atomically() makes a file only where none is, and leaves no temporary behind.
TEST(VersionedFile, CreatingAFileNeverReplacesOne) {
  const std::filesystem::path dir = std::filesystem::temp_directory_path() /
                                    ("versioned-file-create-" + std::to_string(::getpid()));
  std::filesystem::remove_all(dir);
  std::filesystem::create_directories(dir);
  EXPECT_EQ(create_file_atomically(dir / "fraud-v1.json", "first"), true);
  EXPECT_EQ(create_file_atomically(dir / "fraud-v1.json", "second"), false);
  std::ifstream in(dir / "fraud-v1.json");
  std::string text;
  std::getline(in, text);
  EXPECT_EQ(text, "first");
  size_t files = 0;
  for ([[maybe_unused]] const auto& entry : std::filesystem::directory_iterator(dir)) ++files;
  EXPECT_EQ(files, 1u);
  auto missing = create_file_atomically(dir / "none" / "fraud-v1.json", "x");
  ASSERT_FALSE(missing);
  EXPECT_EQ(missing.error().code, ErrorCode::kUnavailable);
  std::filesystem::remove_all(dir);
}

// Two threads writing one file at once: each write is whole, and the file is one of them. Both
// had written through one temporary name (the process's), and one could rename the other's
// half-written file, or find its own gone.
TEST(VersionedFile, TwoThreadsWritingOneFileEachWriteWhole) {
  const std::filesystem::path dir = std::filesystem::temp_directory_path() /
                                    ("versioned-file-threads-" + std::to_string(::getpid()));
  std::filesystem::remove_all(dir);
  std::filesystem::create_directories(dir);
  const std::string a(1 << 16, 'a'), b(1 << 16, 'b');
  std::atomic<int> failures{0};
  auto writer = [&](const std::string& text) {
    for (int i = 0; i < 50; ++i) {
      if (!write_file_atomically(dir / "state.json", text)) ++failures;
    }
  };
  std::thread first(writer, std::cref(a)), second(writer, std::cref(b));
  first.join();
  second.join();
  EXPECT_EQ(failures.load(), 0);
  std::ifstream in(dir / "state.json");
  std::ostringstream read;
  read << in.rdbuf();
  const std::string text = read.str();
  EXPECT_TRUE(text == a || text == b) << text.size() << " bytes";
  size_t files = 0;
  for ([[maybe_unused]] const auto& entry : std::filesystem::directory_iterator(dir)) ++files;
  EXPECT_EQ(files, 1u) << "no temporary left";
  std::filesystem::remove_all(dir);
}

}  // namespace
}  // namespace prescale
