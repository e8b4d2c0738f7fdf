// BatchWriter: every run of a batch reaches the file, more runs than the ring holds, short
// and failed writes, and the buffered descriptor taking what the first one refused.
#include "simarray/disk/batch_writer.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <vector>

#include "common/scratch_dir.h"

namespace simarray::disk {
namespace {

constexpr size_t kBlock = 4096;

// Page-aligned memory (what O_DIRECT wants, as the cache's slots are).
struct AlignedBuffer {
  explicit AlignedBuffer(size_t size) : size(size) {
    REQUIRE(posix_memalign(reinterpret_cast<void**>(&data), kBlock, size) == 0);
  }
  ~AlignedBuffer() { free(data); }
  uint8_t* data = nullptr;
  size_t size;
};

std::vector<uint8_t> ReadBack(int fd, off_t at, size_t length) {
  std::vector<uint8_t> out(length);
  REQUIRE(pread(fd, out.data(), length, at) == static_cast<ssize_t>(length));
  return out;
}

// Runs of two blocks each, every other block pair of the file, each byte telling its run.
std::vector<WriteRun> MakeRuns(AlignedBuffer& buffer, int fd, int fallback, size_t count) {
  std::vector<WriteRun> runs;
  for (size_t i = 0; i < count; ++i) {
    uint8_t* first = buffer.data + i * 2 * kBlock;
    std::memset(first, static_cast<int>(i * 7 + 1), 2 * kBlock);
    WriteRun run;
    run.fd = fd;
    run.fallback_fd = fallback;
    run.at = static_cast<off_t>(i * 4 * kBlock);
    run.iov = {iovec{first, kBlock}, iovec{first + kBlock, kBlock}};  // two ranges, one run
    run.bytes = 2 * kBlock;
    run.error = -42;  // Write must overwrite it
    runs.push_back(std::move(run));
  }
  return runs;
}

void CheckWritten(int fd, const std::vector<WriteRun>& runs) {
  for (size_t i = 0; i < runs.size(); ++i) {
    INFO("run " << i);
    CHECK(runs[i].error == 0);
    std::vector<uint8_t> got = ReadBack(fd, runs[i].at, 2 * kBlock);
    CHECK(std::vector<uint8_t>(2 * kBlock, static_cast<uint8_t>(i * 7 + 1)) == got);
    // The gap before the next run was never written: a hole, read as zeros.
    if (i + 1 < runs.size()) {
      CHECK(ReadBack(fd, runs[i].at + 2 * kBlock, 2 * kBlock) == std::vector<uint8_t>(2 * kBlock));
    }
  }
}

// A volume file in a scratch directory, open for reading and writing; closed and removed at
// the end.
struct ScratchFile {
  ScratchFile() {
    REQUIRE(dir.ok());
    fd = open(path.c_str(), O_RDWR | O_CREAT, 0600);
    REQUIRE(fd >= 0);
  }
  ~ScratchFile() { close(fd); }
  testing::ScratchDir dir;
  const std::string path = dir.File("vol.img");
  int fd = -1;
};

TEST_CASE("a batch of more runs than the ring holds reaches the file, each run whole",
          "[disk][batch-writer]") {
  ScratchFile file;
  const int fd = file.fd;
  const int direct =
      open(file.path.c_str(), O_RDWR | O_DIRECT);  // -1 where the file system refuses
  constexpr size_t kRuns = 600;                    // over two ring submissions
  AlignedBuffer buffer(kRuns * 2 * kBlock);
  std::vector<WriteRun> runs =
      MakeRuns(buffer, direct >= 0 ? direct : fd, direct >= 0 ? fd : -1, kRuns);
  const bool ring = GENERATE(true, false);
  BatchWriter writer(ring);
  CHECK(writer.uses_io_uring() <= ring);
  INFO("io_uring: " << writer.uses_io_uring());
  writer.Write(runs);
  CheckWritten(fd, runs);
  if (direct >= 0) close(direct);
}

TEST_CASE("a run its descriptor refuses goes to the fallback descriptor, or fails alone",
          "[disk][batch-writer]") {
  ScratchFile file;
  const int fd = file.fd;
  const int read_only = open(file.path.c_str(), O_RDONLY);
  REQUIRE(read_only >= 0);
  AlignedBuffer buffer(3 * 2 * kBlock);
  std::vector<WriteRun> runs = MakeRuns(buffer, fd, -1, 3);
  runs[0].fd = read_only;  // refused (EBADF), and written by the fallback
  runs[0].fallback_fd = fd;
  runs[2].fd = read_only;  // refused, with nowhere else to go
  BatchWriter writer(GENERATE(true, false));
  writer.Write(runs);
  CHECK(runs[0].error == 0);
  CHECK(runs[1].error == 0);
  CHECK(runs[2].error == EBADF);
  CHECK(ReadBack(fd, runs[0].at, 2 * kBlock) == std::vector<uint8_t>(2 * kBlock, 1));
  CHECK(ReadBack(fd, runs[1].at, 2 * kBlock) == std::vector<uint8_t>(2 * kBlock, 8));
  // The failed run left the file as it was: nothing at its offset.
  struct stat st {};
  REQUIRE(fstat(fd, &st) == 0);
  CHECK(st.st_size == runs[1].at + static_cast<off_t>(2 * kBlock));
  close(read_only);
}

}  // namespace
}  // namespace simarray::disk
