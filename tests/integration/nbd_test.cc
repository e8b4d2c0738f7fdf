// The NBD host adaptor, driven by the real block tools (libnbd's nbdinfo and nbdcopy,
// QEMU's qemu-io, fio's nbd engine) and by a raw socket that speaks hostile bytes. Every
// NBD write goes through the holding pen and the mirror: the mirror's copy, read through
// its own NBD port, must be identical, and CheckConsistency must agree.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <cstdio>
#include <fstream>
#include <map>
#include <regex>
#include <sstream>

#include "nbd_test_tools.h"

namespace simarray::testing {
namespace {

// --- external tools ----------------------------------------------------------------------

void RequireTool(const std::string& tool) {
  const bool found = std::system(("command -v " + tool + " >/dev/null 2>&1").c_str()) == 0;
  INFO(tool << " is not installed: run scripts/install-deps.sh (it installs libnbd-bin, "
               "qemu-utils and fio; `make test` does it)");
  REQUIRE(found);
}

struct ToolResult {
  int code = -1;
  std::string output;  // stdout and stderr
};

// Runs a shell command under `timeout`, so a hung tool fails the test instead of hanging it.
ToolResult RunTool(const std::string& command, int timeout_seconds = 120) {
  const std::string line =
      "timeout -k 5 " + std::to_string(timeout_seconds) + " " + command + " 2>&1";
  fflush(nullptr);
  FILE* pipe = popen(line.c_str(), "r");
  REQUIRE(pipe != nullptr);
  ToolResult result;
  char buffer[4096];
  size_t n;
  while ((n = fread(buffer, 1, sizeof(buffer), pipe)) > 0) result.output.append(buffer, n);
  const int status = pclose(pipe);
  result.code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  return result;
}

std::string Uri(const std::string& address, const std::string& volume) {
  return "nbd://" + address + "/" + volume;
}

std::string ReadFileBytes(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

void WriteFileBytes(const std::string& path, const std::string& bytes) {
  std::ofstream out(path, std::ios::binary);
  out << bytes;
  REQUIRE(out.good());
}

// The first `"key": value` of a JSON text, as text ("" when absent).
std::string JsonValue(const std::string& json, const std::string& key) {
  std::smatch m;
  std::regex re("\"" + key + "\"\\s*:\\s*(\"[^\"]*\"|[^,}\\s]+)");
  return std::regex_search(json, m, re) ? m[1].str() : std::string();
}

}  // namespace

TEST_CASE("nbdinfo shows each volume's size and the adaptor's flags", "[integration][nbd]") {
  RequireTool("nbdinfo");
  Pair pair(WithNbd(), WithNbd());
  pair.CreateVolume("vol", 64 * kTrack);

  ToolResult info = RunTool("nbdinfo --json " + Uri(pair.primary->nbd_address(), "vol"));
  INFO(info.output);
  REQUIRE(info.code == 0);
  CHECK(JsonValue(info.output, "export-size") == std::to_string(64 * kTrack));
  CHECK(JsonValue(info.output, "is_read_only") == "false");
  CHECK(JsonValue(info.output, "can_flush") == "true");
  CHECK(JsonValue(info.output, "can_fua") == "true");
  CHECK(JsonValue(info.output, "can_trim") == "true");
  CHECK(JsonValue(info.output, "can_zero") == "true");
  CHECK(JsonValue(info.output, "can_multi_conn") == "true");
  CHECK(JsonValue(info.output, "structured") == "true");
  CHECK(JsonValue(info.output, "block_size_minimum") == "1");
  CHECK(JsonValue(info.output, "block_size_preferred") == std::to_string(kTrack));
  CHECK(JsonValue(info.output, "block_size_maximum") == std::to_string(kMaxWrite));
  CHECK_THAT(info.output, Catch::Contains("base:allocation"));

  // The mirror serves the same volume, read-only.
  ToolResult mirror = RunTool("nbdinfo --json " + Uri(pair.mirror->nbd_address(), "vol"));
  INFO(mirror.output);
  REQUIRE(mirror.code == 0);
  CHECK(JsonValue(mirror.output, "export-size") == std::to_string(64 * kTrack));
  CHECK(JsonValue(mirror.output, "is_read_only") == "true");

  ToolResult list = RunTool("nbdinfo --list " + Uri(pair.primary->nbd_address(), ""));
  INFO(list.output);
  CHECK(list.code == 0);
  CHECK_THAT(list.output, Catch::Contains("export=\"vol\""));

  // A never-written volume is one hole that reads as zeros.
  ToolResult map = RunTool("nbdinfo --map " + Uri(pair.primary->nbd_address(), "vol"));
  INFO(map.output);
  CHECK(map.code == 0);
  CHECK_THAT(map.output, Catch::Contains("hole,zero"));

  ToolResult unknown = RunTool("nbdinfo " + Uri(pair.primary->nbd_address(), "nope"));
  INFO(unknown.output);
  CHECK(unknown.code != 0);
}

TEST_CASE("nbdcopy of 64 MiB in and out is byte-identical, and so is the mirror's copy",
          "[integration][nbd]") {
  RequireTool("nbdcopy");
  constexpr uint64_t kSize = 64 << 20;
  Pair pair(WithNbd("128M"), WithNbd("128M"));
  pair.CreateVolume("vol", kSize);
  const std::string dir = pair.dir.path();
  const std::string data = Pattern(kSize, 64);
  WriteFileBytes(dir + "/in.img", data);

  ToolResult in =
      RunTool("nbdcopy --flush " + dir + "/in.img " + Uri(pair.primary->nbd_address(), "vol"));
  INFO(in.output);
  REQUIRE(in.code == 0);

  ToolResult out =
      RunTool("nbdcopy " + Uri(pair.primary->nbd_address(), "vol") + " " + dir + "/out.img");
  INFO(out.output);
  REQUIRE(out.code == 0);
  CHECK(ReadFileBytes(dir + "/out.img") == data);

  ToolResult mirror =
      RunTool("nbdcopy " + Uri(pair.mirror->nbd_address(), "vol") + " " + dir + "/mirror.img");
  INFO(mirror.output);
  REQUIRE(mirror.code == 0);
  CHECK(ReadFileBytes(dir + "/mirror.img") == data);

  v1::CheckConsistencyReply check = CheckConsistency(*pair.primary, "vol");
  CHECK(check.consistent());
  CHECK(check.tracks_compared() == kSize / kTrack);
  CHECK(check.mismatched_tracks_size() == 0);

  // The writes took the NBD adaptor's holding pen and reached the mirror through it.
  const v1::StatusReply status = pair.primary->Status();
  const v1::PenStatus& pen = NbdPen(status);
  CHECK(pen.writes_committed() > 0);
  CHECK(pen.bytes_written() >= kSize);
  CHECK(pen.requests_sent() >= kSize / kTrack);
  CHECK(pen.depth() == 0);
}

TEST_CASE("qemu-io: pattern writes with and without FUA, zero, discard, verified reads",
          "[integration][nbd]") {
  RequireTool("qemu-io");
  Pair pair(WithNbd(), WithNbd());
  pair.CreateVolume("vol", 64 * kTrack);  // 4 MiB
  const std::string uri = Uri(pair.primary->nbd_address(), "vol");
  const std::string commands =
      " -c 'write -P 0xab 0 64k'"             // one whole track
      " -c 'write -f -P 0xcd 100000 300000'"  // unaligned, several tracks, FUA
      " -c 'write -P 0x11 1M 256k'"
      " -c 'write -z 1M 128k'"      // WRITE_ZEROES over data
      " -c 'write -z -u 1200k 8k'"  // WRITE_ZEROES that may punch a hole
      " -c 'write -P 0x22 2M 1M'"
      " -c 'discard 2M 512k'"  // TRIM
      " -c 'flush'"
      " -c 'read -P 0xab 0 64k'"
      " -c 'read -P 0xcd 100000 300000'"
      " -c 'read -P 0 1M 128k'"
      " -c 'read -P 0x11 1152k 48k'"
      " -c 'read -P 0 1200k 8k'"
      " -c 'read -P 0x11 1208k 72k'"
      " -c 'read -P 0 2M 512k'"
      " -c 'read -P 0x22 2560k 512k'";
  ToolResult run = RunTool("qemu-io -d unmap -f raw " + uri + commands);
  INFO(run.output);
  REQUIRE(run.code == 0);
  CHECK_THAT(run.output, !Catch::Contains("failed") && !Catch::Contains("error"));

  // The same bytes through gRPC, on both sides.
  std::string expected(64 * kTrack, '\0');
  auto fill = [&](uint64_t at, uint64_t n, char c) { expected.replace(at, n, n, c); };
  fill(0, 64 << 10, '\xab');
  fill(100000, 300000, '\xcd');
  fill(1 << 20, 256 << 10, '\x11');
  fill(1 << 20, 128 << 10, 0);
  fill(1200 << 10, 8 << 10, 0);
  fill(2 << 20, 1 << 20, '\x22');
  fill(2 << 20, 512 << 10, 0);
  CHECK(Read(pair.primary->host(), "vol", 0, 64 * kTrack) == expected);
  CHECK(Read(pair.mirror->host(), "vol", 0, 64 * kTrack) == expected);
  CHECK(CheckConsistency(*pair.primary, "vol").consistent());
  const v1::StatusReply status = pair.primary->Status();
  const v1::PenStatus& pen = NbdPen(status);
  CHECK(pen.writes_committed() >= 7);
  CHECK(pen.depth() == 0);
}

TEST_CASE("fio's nbd engine: random 4 KiB writes verified with crc32c", "[integration][nbd]") {
  RequireTool("fio");
  Pair pair(WithNbd(), WithNbd());
  pair.CreateVolume("vol", 256 * kTrack);  // 16 MiB
  ToolResult run =
      RunTool("fio --name=nbd --ioengine=nbd --uri=" + Uri(pair.primary->nbd_address(), "vol") +
              " --rw=randwrite --bs=4k --size=8M --iodepth=16 --verify=crc32c --do_verify=1"
              " --verify_fatal=1 --verify_state_save=0 --output-format=json");
  INFO(run.output);
  REQUIRE(run.code == 0);
  CHECK(JsonValue(run.output, "error") == "0");
  CHECK(CheckConsistency(*pair.primary, "vol").consistent());
  // What fio measured is printed for the curious; speed is the benchmark's business.
  std::smatch m;
  if (std::regex_search(run.output, m,
                        std::regex("\"write\"\\s*:\\s*\\{[^}]*?\"iops\"\\s*:\\s*([0-9.]+)"))) {
    std::printf("fio nbd randwrite 4k (sync pair, informal): %s IOPS\n", m[1].str().c_str());
  }
}

}  // namespace simarray::testing
