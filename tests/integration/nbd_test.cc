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

#include "daemon_process.h"

namespace simarray::testing {
namespace {

constexpr uint64_t kTrack = 64 << 10;
constexpr uint64_t kMaxWrite = 4 << 20;  // DaemonOptions' default max_write

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

DaemonOptions WithNbd(std::string cache_size = "64M") {
  DaemonOptions options;
  options.nbd_adaptors = 1;
  options.cache_size = std::move(cache_size);
  return options;
}

// Pen counters of the NBD adaptor (after the one gRPC adaptor).
const v1::PenStatus& NbdPen(const v1::StatusReply& status) { return Pen(status, 1); }

uint64_t Cancelled(const v1::PenStatus& pen) {
  auto it = pen.invalid_writes().find("cancelled");
  return it == pen.invalid_writes().end() ? 0 : it->second;
}

// --- a raw NBD client --------------------------------------------------------------------

void Put16(std::string* out, uint16_t v) {
  out->push_back(static_cast<char>(v >> 8));
  out->push_back(static_cast<char>(v));
}
void Put32(std::string* out, uint32_t v) {
  Put16(out, static_cast<uint16_t>(v >> 16));
  Put16(out, static_cast<uint16_t>(v));
}
void Put64(std::string* out, uint64_t v) {
  Put32(out, static_cast<uint32_t>(v >> 32));
  Put32(out, static_cast<uint32_t>(v));
}
uint64_t Get(const std::string& s, size_t at, int bytes) {
  uint64_t v = 0;
  for (int i = 0; i < bytes; ++i) v = (v << 8) | static_cast<uint8_t>(s[at + i]);
  return v;
}

constexpr uint64_t kOptMagic = 0x49484156454f5054ull;
constexpr uint32_t kRequestMagic = 0x25609513u;
constexpr uint32_t kSimpleReplyMagic = 0x67446698u;
constexpr uint32_t kOptGo = 7, kRepAck = 1, kRepInfo = 3;
constexpr uint32_t kRepErrUnsup = 0x80000001u, kRepErrInvalid = 0x80000003u,
                   kRepErrUnknown = 0x80000006u;
constexpr uint16_t kCmdRead = 0, kCmdWrite = 1, kCmdDisc = 2, kCmdFlush = 3, kCmdTrim = 4,
                   kCmdBlockStatus = 7;
constexpr uint32_t kEperm = 1, kEinval = 22, kEnospc = 28;
constexpr uint16_t kFlagReadOnly = 1 << 1;

std::string Option(uint32_t option, const std::string& data) {
  std::string out;
  Put64(&out, kOptMagic);
  Put32(&out, option);
  Put32(&out, static_cast<uint32_t>(data.size()));
  return out + data;
}

std::string GoData(const std::string& name) {
  std::string data;
  Put32(&data, static_cast<uint32_t>(name.size()));
  data += name;
  Put16(&data, 0);
  return data;
}

std::string RequestBytes(uint16_t type, uint64_t cookie, uint64_t offset, uint32_t length,
                         uint16_t flags = 0) {
  std::string out;
  Put32(&out, kRequestMagic);
  Put16(&out, flags);
  Put16(&out, type);
  Put64(&out, cookie);
  Put64(&out, offset);
  Put32(&out, length);
  return out;
}

class RawNbd {
 public:
  explicit RawNbd(const std::string& address) {
    const size_t colon = address.rfind(':');
    sockaddr_in sa{};
    sa.sin_family = AF_INET;
    sa.sin_port = htons(static_cast<uint16_t>(std::stoi(address.substr(colon + 1))));
    REQUIRE(inet_pton(AF_INET, address.substr(0, colon).c_str(), &sa.sin_addr) == 1);
    fd_ = socket(AF_INET, SOCK_STREAM, 0);
    REQUIRE(fd_ >= 0);
    REQUIRE(connect(fd_, reinterpret_cast<sockaddr*>(&sa), sizeof(sa)) == 0);
    int one = 1;
    setsockopt(fd_, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
  }
  ~RawNbd() { Close(); }
  RawNbd(const RawNbd&) = delete;
  RawNbd& operator=(const RawNbd&) = delete;

  void Close() {
    if (fd_ >= 0) close(fd_);
    fd_ = -1;
  }

  // Sends everything it can; a server that hung up is not an error here.
  void Send(const std::string& bytes) {
    size_t done = 0;
    while (done < bytes.size()) {
      ssize_t n = send(fd_, bytes.data() + done, bytes.size() - done, MSG_NOSIGNAL);
      if (n <= 0) return;
      done += n;
    }
  }

  // Up to `n` bytes; fewer when the server closes or nothing comes for `timeout_ms`.
  std::string Recv(size_t n, int timeout_ms = 20000) {
    std::string out;
    while (out.size() < n) {
      pollfd p{fd_, POLLIN, 0};
      if (poll(&p, 1, timeout_ms) <= 0) break;
      char buffer[65536];
      ssize_t got = recv(fd_, buffer, std::min(sizeof(buffer), n - out.size()), 0);
      if (got <= 0) break;
      out.append(buffer, got);
    }
    return out;
  }

  // True when the server closes the connection (EOF or reset) within `timeout_ms`; bytes
  // it still sends are read and dropped.
  bool ClosedByServer(int timeout_ms = 20000) {
    for (;;) {
      pollfd p{fd_, POLLIN, 0};
      if (poll(&p, 1, timeout_ms) <= 0) return false;
      char buffer[4096];
      ssize_t got = recv(fd_, buffer, sizeof(buffer), 0);
      if (got <= 0) return true;
    }
  }

  std::string Greeting() {
    std::string g = Recv(18);
    REQUIRE(g.size() == 18);
    REQUIRE(g.substr(0, 8) == "NBDMAGIC");
    REQUIRE(g.substr(8, 8) == "IHAVEOPT");
    return g;
  }

  struct OptionReply {
    uint32_t type = 0;
    std::string data;
  };
  OptionReply ReadOptionReply() {
    std::string h = Recv(20);
    REQUIRE(h.size() == 20);
    REQUIRE(Get(h, 0, 8) == 0x0003e889045565a9ull);
    OptionReply r;
    r.type = static_cast<uint32_t>(Get(h, 12, 4));
    r.data = Recv(Get(h, 16, 4));
    return r;
  }

  // Greeting, client flags, NBD_OPT_GO on `volume`; returns the transmission flags.
  uint16_t Negotiate(const std::string& volume) {
    Greeting();
    std::string flags;
    Put32(&flags, 1);  // fixed newstyle
    Send(flags);
    Send(Option(kOptGo, GoData(volume)));
    uint16_t transmission = 0;
    for (;;) {
      OptionReply r = ReadOptionReply();
      if (r.type == kRepAck) break;
      REQUIRE(r.type == kRepInfo);
      if (Get(r.data, 0, 2) == 0) transmission = static_cast<uint16_t>(Get(r.data, 10, 2));
    }
    return transmission;
  }

  struct Reply {
    uint32_t error = 0;
    uint64_t cookie = 0;
    std::string data;
  };
  // One simple reply; `read_lengths` gives, by cookie, how many data bytes follow a
  // successful READ reply.
  Reply ReadReply(const std::map<uint64_t, uint32_t>& read_lengths = {}) {
    std::string h = Recv(16);
    REQUIRE(h.size() == 16);
    REQUIRE(Get(h, 0, 4) == kSimpleReplyMagic);
    Reply r;
    r.error = static_cast<uint32_t>(Get(h, 4, 4));
    r.cookie = Get(h, 8, 8);
    auto it = read_lengths.find(r.cookie);
    if (r.error == 0 && it != read_lengths.end()) {
      r.data = Recv(it->second);
      REQUIRE(r.data.size() == it->second);
    }
    return r;
  }

  Reply Call(uint16_t type, uint64_t offset, uint32_t length, const std::string& payload = "",
             uint16_t flags = 0) {
    const uint64_t cookie = ++cookie_;
    Send(RequestBytes(type, cookie, offset, length, flags) + payload);
    std::map<uint64_t, uint32_t> lengths;
    if (type == kCmdRead) lengths[cookie] = length;
    Reply r = ReadReply(lengths);
    REQUIRE(r.cookie == cookie);
    return r;
  }

 private:
  int fd_ = -1;
  uint64_t cookie_ = 1000;
};

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

TEST_CASE("many requests in flight on one connection are all answered", "[integration][nbd]") {
  Pair pair(WithNbd(), WithNbd());
  pair.CreateVolume("vol", 16 * kTrack);
  RawNbd c(pair.primary->nbd_address());
  c.Negotiate("vol");
  constexpr int kWrites = 48;
  std::string burst;
  for (int i = 0; i < kWrites; ++i) {
    burst += RequestBytes(kCmdWrite, 1 + i, i * 20000, 4096) + Pattern(4096, 100 + i);
  }
  c.Send(burst);
  std::map<uint64_t, uint32_t> errors;
  for (int i = 0; i < kWrites; ++i) {
    RawNbd::Reply r = c.ReadReply();
    errors[r.cookie] = r.error;
  }
  REQUIRE(errors.size() == kWrites);
  for (const auto& [cookie, error] : errors) CHECK(error == 0);
  burst.clear();
  std::map<uint64_t, uint32_t> lengths;
  for (int i = 0; i < kWrites; ++i) {
    burst += RequestBytes(kCmdRead, 100 + i, i * 20000, 4096);
    lengths[100 + i] = 4096;
  }
  c.Send(burst);
  for (int i = 0; i < kWrites; ++i) {
    RawNbd::Reply r = c.ReadReply(lengths);
    REQUIRE(r.error == 0);
    CHECK(r.data == Pattern(4096, 100 + static_cast<uint32_t>(r.cookie - 100)));
  }
  CHECK(c.Call(kCmdFlush, 0, 0).error == 0);
  c.Send(RequestBytes(kCmdDisc, 9, 0, 0));
  CHECK(c.ClosedByServer());
  CHECK(CheckConsistency(*pair.primary, "vol").consistent());
}

TEST_CASE("hostile NBD bytes never crash the daemon nor change a volume", "[integration][nbd]") {
  Pair pair(WithNbd(), WithNbd());
  constexpr uint64_t kSize = 16 * kTrack;  // 1 MiB
  pair.CreateVolume("vol", kSize);
  const std::string original = Pattern(kSize, 5);
  REQUIRE(Write(pair.primary->host(), "vol", 0, original).status.ok());
  const std::string address = pair.primary->nbd_address();
  const uint64_t cancelled_before = Cancelled(NbdPen(pair.primary->Status()));
  std::string flags;
  Put32(&flags, 1);

  {  // Connect and hang up, before and after the greeting.
    RawNbd a(address);
    a.Close();
    RawNbd b(address);
    b.Greeting();
  }
  {  // Unknown client flags: the server hangs up.
    RawNbd c(address);
    c.Greeting();
    c.Send(std::string("\xff\xff\xff\xff", 4));
    CHECK(c.ClosedByServer());
  }
  {  // Truncated client flags, then gone.
    RawNbd c(address);
    c.Greeting();
    c.Send(std::string("\x00\x00", 2));
  }
  {  // Bad option magic.
    RawNbd c(address);
    c.Greeting();
    c.Send(flags + std::string(16, '\x5a'));
    CHECK(c.ClosedByServer());
  }
  {  // An option claiming 4 GiB of data.
    RawNbd c(address);
    c.Greeting();
    std::string huge;
    Put64(&huge, kOptMagic);
    Put32(&huge, kOptGo);
    Put32(&huge, 0xffffffffu);
    c.Send(flags + huge + "vol");
    CHECK(c.ClosedByServer());
  }
  {  // A truncated option, then gone.
    RawNbd c(address);
    c.Greeting();
    std::string header;
    Put64(&header, kOptMagic);
    Put32(&header, kOptGo);
    Put32(&header, 100);
    c.Send(flags + header + "0123456789");
  }
  {  // Unknown options, unknown exports and malformed GO are answered; negotiation goes on.
    RawNbd c(address);
    c.Greeting();
    c.Send(flags + Option(0x4242, "whatever"));
    CHECK(c.ReadOptionReply().type == kRepErrUnsup);
    c.Send(Option(kOptGo, GoData("nope")));
    CHECK(c.ReadOptionReply().type == kRepErrUnknown);
    std::string lying;
    Put32(&lying, 5000);
    c.Send(Option(kOptGo, lying + "vol"));
    CHECK(c.ReadOptionReply().type == kRepErrInvalid);
    c.Send(Option(kOptGo, GoData("vol")));
    RawNbd::OptionReply r;
    do {
      r = c.ReadOptionReply();
    } while (r.type == kRepInfo);
    REQUIRE(r.type == kRepAck);
    RawNbd::Reply read = c.Call(kCmdRead, 0, 4096);
    CHECK(read.error == 0);
    CHECK(read.data == original.substr(0, 4096));
  }
  {  // Bad requests get errors, and the connection goes on.
    RawNbd c(address);
    c.Negotiate("vol");
    CHECK(c.Call(0x77, 0, 4096).error == kEinval);                  // unknown command
    CHECK(c.Call(kCmdRead, kSize - 512, 1024).error == kEinval);    // read past the end
    CHECK(c.Call(kCmdRead, 0, 0).error == kEinval);                 // length 0
    CHECK(c.Call(kCmdRead, 0, kMaxWrite + 4096).error == kEinval);  // over max_write
    CHECK(c.Call(kCmdTrim, kSize, 4096).error == kEinval);          // trim past the end
    CHECK(c.Call(kCmdBlockStatus, 0, 4096).error == kEinval);       // no meta context
    CHECK(c.Call(kCmdFlush, 0, 0, "", 0x4000).error == kEinval);    // unknown flag
    CHECK(c.Call(kCmdWrite, kSize - 512, 1024, std::string(1024, 'x')).error == kEnospc);
    CHECK(c.Call(kCmdWrite, ~0ull - 511, 1024, std::string(1024, 'x')).error == kEnospc);
    CHECK(c.Call(kCmdWrite, 0, 4096, std::string(4096, 'x'), 0x4000).error == kEinval);
    // Past the end (and over max_write): the payload is drained, nothing is written.
    CHECK(c.Call(kCmdWrite, 0, kMaxWrite + 4096, std::string(kMaxWrite + 4096, 'x')).error ==
          kEnospc);
    RawNbd::Reply read = c.Call(kCmdRead, 0, 8192);
    CHECK(read.error == 0);
    CHECK(read.data == original.substr(0, 8192));
  }
  {  // Over max_write inside the volume: EINVAL, the payload drained, nothing written.
    pair.CreateVolume("big", 2 * kMaxWrite);
    RawNbd c(address);
    c.Negotiate("big");
    CHECK(c.Call(kCmdWrite, 0, kMaxWrite + 4096, std::string(kMaxWrite + 4096, 'x')).error ==
          kEinval);
    RawNbd::Reply read = c.Call(kCmdRead, 0, 4096);
    CHECK(read.error == 0);
    CHECK(read.data == std::string(4096, '\0'));
  }
  {  // A write payload of 4 GiB announced: refused, then the server hangs up.
    RawNbd c(address);
    c.Negotiate("vol");
    c.Send(RequestBytes(kCmdWrite, 1, 0, 0xffffffffu));
    RawNbd::Reply r = c.ReadReply();
    CHECK(r.error == kEinval);
    CHECK(c.ClosedByServer());
  }
  {  // Bad request magic.
    RawNbd c(address);
    c.Negotiate("vol");
    c.Send(std::string(28, '\x13'));
    CHECK(c.ClosedByServer());
  }
  {  // Half a write payload, then gone: the write is cancelled, nothing of it lands.
    RawNbd c(address);
    c.Negotiate("vol");
    c.Send(RequestBytes(kCmdWrite, 1, 0, 1 << 20) + std::string(700 << 10, 'z'));
    c.Close();
  }
  {  // Garbage, in the handshake and in transmission.
    RawNbd c(address);
    c.Greeting();
    c.Send(flags + Pattern(65536, 99));
    CHECK(c.ClosedByServer());
    RawNbd d(address);
    d.Negotiate("vol");
    d.Send(Pattern(65536, 98));
    CHECK(d.ClosedByServer());
  }
  {  // More connections than the limit: the extra ones are closed at once.
    std::vector<std::unique_ptr<RawNbd>> many;
    for (int i = 0; i < 70; ++i) many.push_back(std::make_unique<RawNbd>(address));
    int closed = 0;
    for (auto& c : many) {
      if (c->Recv(18, 2000).size() < 18 && c->ClosedByServer(2000)) ++closed;
    }
    CHECK(closed >= 6);
  }
  {  // The mirror is read-only: writes and trims get EPERM.
    RawNbd m(pair.mirror->nbd_address());
    CHECK((m.Negotiate("vol") & kFlagReadOnly) != 0);
    CHECK(m.Call(kCmdWrite, 0, 4096, std::string(4096, 'w')).error == kEperm);
    CHECK(m.Call(kCmdTrim, 0, 4096).error == kEperm);
    RawNbd::Reply read = m.Call(kCmdRead, 0, 4096);
    CHECK(read.error == 0);
    CHECK(read.data == original.substr(0, 4096));
  }

  // Both daemons are alive, the cancelled write was counted and dropped, and nothing changed.
  CHECK(Eventually([&] {
    const v1::StatusReply status = pair.primary->Status();
    const v1::PenStatus& pen = NbdPen(status);
    return Cancelled(pen) > cancelled_before && pen.depth() == 0;
  }));
  CHECK(pair.primary->running());
  CHECK(pair.mirror->running());
  CHECK(kill(pair.primary->pid(), 0) == 0);
  CHECK(kill(pair.mirror->pid(), 0) == 0);
  CHECK(Read(pair.primary->host(), "vol", 0, kSize) == original);
  CHECK(Read(pair.mirror->host(), "vol", 0, kSize) == original);
  CHECK(CheckConsistency(*pair.primary, "vol").consistent());
  RawNbd after(address);
  after.Negotiate("vol");
  RawNbd::Reply read = after.Call(kCmdRead, 0, kSize);
  CHECK(read.error == 0);
  CHECK(read.data == original);
}

}  // namespace simarray::testing
