// State files written like data (docs/reliability.md, "State files"): replaced whole, with
// the mode asked for, and a failure at any step leaves the old file and no temporary file.
#include "simarray/base/state_file.h"

#include <signal.h>
#include <sys/resource.h>
#include <sys/stat.h>

#include <algorithm>
#include <catch2/catch.hpp>
#include <filesystem>
#include <fstream>
#include <set>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "common/scratch_dir.h"

namespace simarray {
namespace {

using testing::ScratchDir;

std::string Contents(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream text;
  text << in.rdbuf();
  return text.str();
}

// The names in `dir`, sorted.
std::set<std::string> Names(const std::string& dir) {
  std::set<std::string> out;
  for (const auto& entry : std::filesystem::directory_iterator(dir)) {
    out.insert(entry.path().filename().string());
  }
  return out;
}

mode_t ModeOf(const std::string& path) {
  struct stat st {};
  REQUIRE(::stat(path.c_str(), &st) == 0);
  return st.st_mode & 07777;
}

// Caps the size of any file this process writes (writes past it fail EFBIG); restores the
// old limit and SIGXFSZ's disposition when it goes out of scope.
class FileSizeLimit {
 public:
  explicit FileSizeLimit(rlim_t bytes) {
    REQUIRE(::getrlimit(RLIMIT_FSIZE, &old_) == 0);
    old_handler_ = ::signal(SIGXFSZ, SIG_IGN);
    rlimit limit = old_;
    limit.rlim_cur = bytes;
    REQUIRE(::setrlimit(RLIMIT_FSIZE, &limit) == 0);
  }
  ~FileSizeLimit() {
    ::setrlimit(RLIMIT_FSIZE, &old_);
    ::signal(SIGXFSZ, old_handler_);
  }

 private:
  rlimit old_{};
  sighandler_t old_handler_ = SIG_DFL;
};

TEST_CASE("WriteFileAtomically replaces the contents whole and leaves no temporary file",
          "[base][state_file]") {
  ScratchDir dir;
  REQUIRE(dir.ok());
  const std::string path = dir.File("peer.address");
  REQUIRE(WriteFileAtomically(path, "127.0.0.1:7202 1\n", 0644).ok());
  CHECK(Contents(path) == "127.0.0.1:7202 1\n");
  REQUIRE(WriteFileAtomically(path, "127.0.0.1:7302 42\n", 0644).ok());
  CHECK(Contents(path) == "127.0.0.1:7302 42\n");
  // Shorter contents: nothing of the old file's tail stays.
  REQUIRE(WriteFileAtomically(path, "x", 0644).ok());
  CHECK(Contents(path) == "x");
  REQUIRE(WriteFileAtomically(path, "", 0644).ok());
  CHECK(Contents(path).empty());
  CHECK(Names(dir.path()) == std::set<std::string>{"peer.address"});
}

TEST_CASE("WriteFileAtomically gives the file exactly the mode asked for whatever the umask",
          "[base][state_file]") {
  ScratchDir dir;
  REQUIRE(dir.ok());
  const std::string token = dir.File("admin.token");
  const mode_t old_mask = ::umask(022);
  REQUIRE(WriteFileAtomically(token, "secret\n", 0600).ok());
  CHECK(ModeOf(token) == 0600);
  ::umask(077);
  const std::string catalog = dir.File("volumes.tsv");
  REQUIRE(WriteFileAtomically(catalog, "1\tvol\t65536\t1\n", 0644).ok());
  CHECK(ModeOf(catalog) == 0644);
  ::umask(old_mask);
  // Replacing a file replaces its mode too.
  REQUIRE(WriteFileAtomically(catalog, "1\tvol\t65536\t0\n", 0600).ok());
  CHECK(ModeOf(catalog) == 0600);
}

TEST_CASE("WriteFileAtomically into a directory that does not exist names the path and step",
          "[base][state_file]") {
  ScratchDir dir;
  REQUIRE(dir.ok());
  const std::string path = dir.File("missing/failed_over");
  absl::Status s = WriteFileAtomically(path, "failed over\n", 0644);
  REQUIRE(!s.ok());
  CHECK(s.code() == absl::StatusCode::kInternal);
  CHECK_THAT(std::string(s.message()), Catch::Contains(path));
  CHECK_THAT(std::string(s.message()), Catch::Contains("create a temporary file"));
  CHECK_THAT(std::string(s.message()), Catch::Contains("No such file or directory"));
  // A file where a directory should be; and /proc, where no file can be created.
  std::ofstream(dir.File("plain")) << "a file";
  s = WriteFileAtomically(dir.File("plain/state"), "x", 0644);
  CHECK(s.code() == absl::StatusCode::kInternal);
  CHECK_THAT(std::string(s.message()), Catch::Contains("Not a directory"));
  s = WriteFileAtomically("/proc/simarray-state", "x", 0644);
  CHECK(s.code() == absl::StatusCode::kInternal);
  CHECK_THAT(std::string(s.message()), Catch::Contains("/proc/simarray-state"));
}

TEST_CASE("a failed rename keeps what was at the path and removes the temporary file",
          "[base][state_file]") {
  ScratchDir dir;
  REQUIRE(dir.ok());
  // A directory (not empty) where the file should go: rename(2) refuses to replace it.
  const std::string path = dir.File("failed_over");
  std::filesystem::create_directory(path);
  std::ofstream(path + "/keep") << "kept";
  absl::Status s = WriteFileAtomically(path, "failed over\n", 0644);
  REQUIRE(!s.ok());
  CHECK_THAT(std::string(s.message()), Catch::Contains(path));
  CHECK_THAT(std::string(s.message()), Catch::Contains("rename"));
  CHECK_THAT(std::string(s.message()), Catch::Contains("Is a directory"));
  CHECK(Contents(path + "/keep") == "kept");
  CHECK(Names(dir.path()) == std::set<std::string>{"failed_over"});
}

TEST_CASE("a failed write keeps the old contents whole and removes the temporary file",
          "[base][state_file]") {
  ScratchDir dir;
  REQUIRE(dir.ok());
  const std::string path = dir.File("volumes.tsv");
  const std::string old_contents = "1\tvol0\t1048576\t1\n";
  REQUIRE(WriteFileAtomically(path, old_contents, 0644).ok());
  const std::string bigger(4096, 'v');
  absl::Status s;
  {
    // The first write(2) is cut short at 100 bytes, the next fails EFBIG.
    FileSizeLimit limit(100);
    s = WriteFileAtomically(path, bigger, 0644);
  }
  REQUIRE(!s.ok());
  CHECK(s.code() == absl::StatusCode::kInternal);
  CHECK_THAT(std::string(s.message()), Catch::Contains(path));
  CHECK_THAT(std::string(s.message()), Catch::Contains("write 4096 bytes"));
  CHECK_THAT(std::string(s.message()), Catch::Contains("File too large"));
  CHECK(Contents(path) == old_contents);
  CHECK(Names(dir.path()) == std::set<std::string>{"volumes.tsv"});
  // The limit gone, the same write goes through.
  REQUIRE(WriteFileAtomically(path, bigger, 0644).ok());
  CHECK(Contents(path) == bigger);
}

TEST_CASE("concurrent writers of one path leave one whole contents and no temporary file",
          "[base][state_file]") {
  ScratchDir dir;
  REQUIRE(dir.ok());
  const std::string path = dir.File("cycles.journal");
  std::vector<std::string> versions;
  for (int i = 0; i < 4; ++i) versions.push_back(std::string(1000 + 997 * i, 'a' + i));
  std::vector<std::thread> writers;
  std::vector<absl::Status> results(versions.size());
  for (size_t i = 0; i < versions.size(); ++i) {
    writers.emplace_back([&, i] {
      for (int round = 0; round < 20 && results[i].ok(); ++round) {
        results[i] = WriteFileAtomically(path, versions[i], 0644);
      }
    });
  }
  for (auto& w : writers) w.join();
  for (const absl::Status& s : results) CHECK(s.ok());
  const std::string final_contents = Contents(path);
  CHECK(std::find(versions.begin(), versions.end(), final_contents) != versions.end());
  CHECK(Names(dir.path()) == std::set<std::string>{"cycles.journal"});
}

TEST_CASE("RemoveFileDurably removes a file and accepts one already gone", "[base][state_file]") {
  ScratchDir dir;
  REQUIRE(dir.ok());
  const std::string path = dir.File("failed_over");
  REQUIRE(WriteFileAtomically(path, "failed over\n", 0644).ok());
  REQUIRE(RemoveFileDurably(path).ok());
  CHECK(!std::filesystem::exists(path));
  CHECK(RemoveFileDurably(path).ok());
  CHECK(RemoveFileDurably(dir.File("no-such-dir/failed_over")).ok());
  // A directory where the marker should be is not removed, and the error says so.
  std::filesystem::create_directory(path);
  absl::Status s = RemoveFileDurably(path);
  REQUIRE(!s.ok());
  CHECK(s.code() == absl::StatusCode::kInternal);
  CHECK_THAT(std::string(s.message()), Catch::Contains(path));
  CHECK_THAT(std::string(s.message()), Catch::Contains("unlink"));
  CHECK(std::filesystem::is_directory(path));
}

TEST_CASE("RemoveStaleTempFiles removes only what a cut-short write left", "[base][state_file]") {
  CHECK(IsStateTempFileName(".volumes.tsv.tmp.a1B2c3"));
  CHECK(IsStateTempFileName(".failed_over.tmp.XXXXXX"));
  CHECK_FALSE(IsStateTempFileName("volumes.tsv"));
  CHECK_FALSE(IsStateTempFileName("volumes.tsv.tmp"));
  CHECK_FALSE(IsStateTempFileName("volumes.tsv.tmp.a1B2c3"));  // not hidden: not ours
  CHECK_FALSE(IsStateTempFileName(".tmp.a1B2c"));
  ScratchDir dir;
  REQUIRE(dir.ok());
  std::ofstream(dir.File(".peer.address.tmp.Qw3rTy")) << "127.0.0.1:7";
  std::ofstream(dir.File(".failed_over.tmp.000000")) << "";
  std::ofstream(dir.File("peer.address")) << "127.0.0.1:7202 1\n";
  std::ofstream(dir.File("cache.region")) << "region";
  auto removed = RemoveStaleTempFiles(dir.path());
  REQUIRE(removed.ok());
  CHECK(*removed == 2);
  CHECK(Names(dir.path()) == std::set<std::string>{"cache.region", "peer.address"});
  CHECK(!RemoveStaleTempFiles(dir.File("missing")).ok());
}

}  // namespace
}  // namespace simarray
