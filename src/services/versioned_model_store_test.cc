#include "services/versioned_model_store.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <thread>

#include "telemetry/registry.h"

namespace prescale::services {
namespace {

using namespace std::chrono_literals;
using ::testing::HasSubstr;

// A model that is one line of text; "broken" does not load.
struct Note {
  std::string text;
};

Result<std::shared_ptr<const Note>> load_note(const std::string& path) {
  std::ifstream in(path);
  std::stringstream text;
  text << in.rdbuf();
  if (text.str() == "broken") return make_error(ErrorCode::kInvalidArgument, path + ": broken");
  return std::make_shared<const Note>(Note{text.str()});
}

ModelFiles<Note> note_files(std::shared_ptr<const Note> none) {
  return {.service = "notes",
          .file_prefix = "note-v",
          .file_suffix = ".txt",
          .reloads_metric = "prescale_notes_reloads_total",
          .reloads_help = "Notes loaded, by result",
          .file_noun = "note",
          .none = std::move(none),
          .load = load_note,
          .version_label = [](const Note* note) { return note ? note->text : "none"; },
          .describe = [](const Note& note) { return note.text; }};
}

class VersionedModelStoreTest : public ::testing::Test {
 protected:
  VersionedModelStoreTest()
      : dir_(std::filesystem::temp_directory_path() /
             ("prescale-model-store-" + std::to_string(::getpid()) + "-" +
              ::testing::UnitTest::GetInstance()->current_test_info()->name())) {
    std::filesystem::create_directories(dir_);
  }
  ~VersionedModelStoreTest() override { std::filesystem::remove_all(dir_); }

  void write(int version, const std::string& text) {
    std::ofstream(dir_ / ("note-v" + std::to_string(version) + ".txt")) << text;
  }
  double info(const std::string& version) {
    return registry_
        .gauge("prescale_model_info", "The model a service serves: 1 for its version",
               {"service", "version"})
        .with({"notes", version})
        .value();
  }
  double reloads(const std::string& result) {
    return registry_.counter("prescale_notes_reloads_total", "Notes loaded, by result", {"result"})
        .with({result})
        .value();
  }
  std::string served(const VersionedModelStore<Note>& store) {
    auto note = store.current();
    return note ? note->text : "none";
  }

  std::filesystem::path dir_;
  ManualClock clock_;
  telemetry::Registry registry_;
};

TEST_F(VersionedModelStoreTest, AnInstalledModelIsKeptWhenTheNewestFileIsBroken) {
  VersionedModelStore<Note> store(note_files(nullptr), {.directory = dir_.string(),
                                                        .clock = &clock_,
                                                        .background_poll = false,
                                                        .registry = &registry_});
  EXPECT_EQ(store.current(), nullptr);
  EXPECT_EQ(info("none"), 1);
  store.install(std::make_shared<const Note>(Note{"installed"}));
  EXPECT_EQ(info("installed"), 1);
  EXPECT_EQ(info("none"), 0);

  write(1, "one");
  write(2, "broken");
  auto r = store.reload();
  ASSERT_FALSE(r);
  EXPECT_THAT(r.error().message, HasSubstr("note-v2.txt: broken"));
  // Something other than `none` is served, so no older file replaces it.
  EXPECT_EQ(served(store), "installed");

  write(3, "three");
  EXPECT_EQ(store.reload().value(), true);
  EXPECT_EQ(served(store), "three");
  EXPECT_EQ(info("three"), 1);
  EXPECT_EQ(info("installed"), 0);
}

TEST_F(VersionedModelStoreTest, ThePollerLooksOnTheInjectedClock) {
  auto none = std::make_shared<const Note>(Note{"method"});
  VersionedModelStore<Note> store(
      note_files(none),
      {.directory = dir_.string(), .clock = &clock_, .poll_interval = 5s, .registry = &registry_});
  EXPECT_EQ(store.current(), none);
  store.start_polling();
  write(1, "one");
  const auto wait_for = [&](const std::string& text) {
    const auto deadline = std::chrono::steady_clock::now() + 10s;
    while (served(store) != text && std::chrono::steady_clock::now() < deadline) {
      std::this_thread::sleep_for(1ms);
    }
    return served(store);
  };
  std::this_thread::sleep_for(100ms);
  EXPECT_EQ(served(store), "method");  // not due yet on the injected clock
  clock_.advance(5s);
  EXPECT_EQ(wait_for("one"), "one");
  store.stop_polling();
  store.start_polling();  // stopped for good
  write(2, "two");
  clock_.advance(5s);
  std::this_thread::sleep_for(100ms);
  EXPECT_EQ(served(store), "one");
}

// A newest name that is no readable file (a directory, a dangling link) is a version that fails:
// logged and counted, and with nothing served yet an older version is served instead.
TEST_F(VersionedModelStoreTest, ANewestNameThatIsNoFileFailsAndAnOlderVersionIsServed) {
  VersionedModelStore<Note> store(note_files(nullptr), {.directory = dir_.string(),
                                                        .clock = &clock_,
                                                        .background_poll = false,
                                                        .registry = &registry_});
  write(1, "one");
  std::filesystem::create_directory(dir_ / "note-v2.txt");
  auto r = store.reload();
  ASSERT_FALSE(r) << "answered " << *r;
  EXPECT_THAT(r.error().message, HasSubstr("note-v2.txt: a directory, not a file"));
  EXPECT_EQ(served(store), "one");
  EXPECT_EQ(reloads("failed"), 1);
  EXPECT_EQ(reloads("loaded"), 1);
  EXPECT_FALSE(store.reload());  // unchanged: not read, nor counted, again
  EXPECT_EQ(reloads("failed"), 1);

  std::filesystem::create_symlink(dir_ / "three.txt", dir_ / "note-v3.txt");
  r = store.reload();
  ASSERT_FALSE(r) << "answered " << *r;
  EXPECT_THAT(r.error().message, HasSubstr("note-v3.txt: a symbolic link to nothing"));
  EXPECT_EQ(served(store), "one");
  EXPECT_EQ(reloads("failed"), 2);

  // Once the link leads to a file, the version has changed: it is read and served.
  std::ofstream(dir_ / "three.txt") << "three";
  EXPECT_EQ(store.reload().value(), true);
  EXPECT_EQ(served(store), "three");
}

}  // namespace
}  // namespace prescale::services
