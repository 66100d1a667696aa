#include "core/port_file.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <sstream>

namespace prescale {
namespace {

using ::testing::StartsWith;

class PortFileTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = std::filesystem::temp_directory_path() /
           ("port-file-" + std::to_string(::getpid()) + "-" +
            ::testing::UnitTest::GetInstance()->current_test_info()->name());
    std::filesystem::remove_all(dir_);
    std::filesystem::create_directories(dir_);
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }

  std::string file(const std::string& name) const { return (dir_ / name).string(); }
  static std::string read(const std::string& path) {
    std::ifstream in(path);
    std::ostringstream out;
    out << in.rdbuf();
    return out.str();
  }

  std::filesystem::path dir_;
};

TEST_F(PortFileTest, ThePortAndANewline) {
  ASSERT_TRUE(write_port_file(file("a.port"), 65535));
  EXPECT_EQ(read(file("a.port")), "65535\n");
  ASSERT_TRUE(write_port_file(file("a.port"), 8080));  // replaced whole
  EXPECT_EQ(read(file("a.port")), "8080\n");
}

TEST_F(PortFileTest, NoPathWritesNothing) { EXPECT_TRUE(write_port_file("", 8080)); }

TEST_F(PortFileTest, AnUnwritableFileNamesThePath) {
  const std::string path = file("gone/a.port");
  auto written = write_port_file(path, 8080);
  ASSERT_FALSE(written);
  EXPECT_EQ(written.error().code, ErrorCode::kUnavailable);
  EXPECT_THAT(written.error().message, StartsWith(path + ": "));
}

TEST_F(PortFileTest, EachFileGetsItsPortAndAListenerThatIsOffNone) {
  ASSERT_TRUE(write_port_files({{"--port-file", file("gw.port"), 8080},
                                {"--admin-port-file", file("admin.port"), 0},
                                {"--ui-port-file", "", 9090}}));
  EXPECT_EQ(read(file("gw.port")), "8080\n");
  EXPECT_FALSE(std::filesystem::exists(file("admin.port")));
}

TEST_F(PortFileTest, TheFirstFileThatCannotBeWrittenIsNamedByItsFlagAndEndsTheWrites) {
  const std::string gone = file("gone/ui.port");
  auto written = write_port_files({{"--port-file", file("gw.port"), 8080},
                                   {"--ui-port-file", gone, 9090},
                                   {"--admin-port-file", file("admin.port"), 9901}});
  ASSERT_FALSE(written);
  EXPECT_EQ(written.error().code, ErrorCode::kUnavailable);
  EXPECT_THAT(written.error().message, StartsWith("--ui-port-file: " + gone + ": "));
  EXPECT_EQ(read(file("gw.port")), "8080\n");
  EXPECT_FALSE(std::filesystem::exists(file("admin.port")));
}

}  // namespace
}  // namespace prescale
