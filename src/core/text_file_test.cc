#include "core/text_file.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>

namespace prescale {
namespace {

TEST(TextFileTest, ReadsTheWholeFileAsItIs) {
  const std::filesystem::path path = std::filesystem::temp_directory_path() /
                                     ("text-file-" + std::to_string(::getpid()) + ".bin");
  // Longer than one read, with a NUL and no final newline.
  std::string bytes(100000, 'x');
  bytes[5] = '\0';
  bytes += "\r\nend";
  std::ofstream(path, std::ios::binary) << bytes;
  auto text = read_text_file(path.string());
  std::filesystem::remove(path);
  ASSERT_TRUE(text) << text.error().message;
  EXPECT_EQ(*text, bytes);
}

TEST(TextFileTest, ReadsProcFiles) {
  // /proc files report size 0 but have content.
  auto text = read_text_file("/proc/self/stat");
  ASSERT_TRUE(text) << text.error().message;
  EXPECT_FALSE(text->empty());
}

TEST(TextFileTest, MissingFileIsNotFoundNamingThePath) {
  auto text = read_text_file("/nonexistent/prescale/trace.csv");
  ASSERT_FALSE(text);
  EXPECT_EQ(text.error().code, ErrorCode::kNotFound);
  EXPECT_NE(text.error().message.find("/nonexistent/prescale/trace.csv"), std::string::npos);
}

TEST(TextFileTest, DirectoryIsInvalid) {
  auto text = read_text_file(std::filesystem::temp_directory_path().string());
  ASSERT_FALSE(text);
  EXPECT_EQ(text.error().code, ErrorCode::kInvalidArgument);
  EXPECT_NE(text.error().message.find("is a directory"), std::string::npos);
}

}  // namespace
}  // namespace prescale
