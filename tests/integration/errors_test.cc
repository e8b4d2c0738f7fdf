// docs/errors.md: bad input gets a clear error and loses nothing.

#include <catch2/catch.hpp>
#include <filesystem>

#include "daemon_process.h"

namespace simarray::testing {
namespace {

constexpr uint64_t kTrack = 64 << 10;

void CreateVolume(Daemon& d, const std::string& name, uint64_t size) {
  REQUIRE(CreateVolumeCall(d, name, size).ok());
}

grpc::Status ReadStatus(Daemon& d, const std::string& volume, uint64_t offset, uint64_t length) {
  grpc::ClientContext context;
  v1::ReadRequest request;
  request.set_volume(volume);
  request.set_offset(offset);
  request.set_length(length);
  v1::ReadReply reply;
  return d.host().Read(&context, request, &reply);
}

}  // namespace

TEST_CASE("host requests with bad input get the documented status and change nothing",
          "[integration][errors]") {
  TempDir dir;
  Daemon d(dir.path() + "/solo", DaemonOptions{});  // a primary with no peer, max_write 4M
  d.Start();
  CreateVolume(d, "vol", 8 * kTrack);
  const std::string old_bytes = Pattern(8 * kTrack, 11);
  REQUIRE(Write(d.host(), "vol", 0, old_bytes).status.ok());
  const std::string data = Pattern(4096, 12);

  SECTION("unknown volume: NOT_FOUND") {
    CHECK(Write(d.host(), "nope", 0, data).status.error_code() == grpc::StatusCode::NOT_FOUND);
    CHECK(ReadStatus(d, "nope", 0, 10).error_code() == grpc::StatusCode::NOT_FOUND);
    CHECK(StreamWrite(d.host(), "nope", 0, data, 1000).status.error_code() ==
          grpc::StatusCode::NOT_FOUND);
  }
  SECTION("a range outside the volume: OUT_OF_RANGE") {
    WriteOutcome w = Write(d.host(), "vol", 8 * kTrack - 100, data);
    CHECK(w.status.error_code() == grpc::StatusCode::OUT_OF_RANGE);
    CHECK_THAT(w.status.error_message(), Catch::Contains("outside volume"));
    CHECK(Write(d.host(), "vol", ~0ull - 10, data).status.error_code() ==
          grpc::StatusCode::OUT_OF_RANGE);
    CHECK(ReadStatus(d, "vol", 8 * kTrack, 1).error_code() == grpc::StatusCode::OUT_OF_RANGE);
  }
  SECTION("length 0, a write over max_write, malformed streams: INVALID_ARGUMENT") {
    CHECK(Write(d.host(), "vol", 0, "").status.error_code() == grpc::StatusCode::INVALID_ARGUMENT);
    CHECK(ReadStatus(d, "vol", 0, 0).error_code() == grpc::StatusCode::INVALID_ARGUMENT);
    const std::string big = Pattern((4 << 20) + 1, 13);
    WriteOutcome w = Write(d.host(), "vol", 0, big);
    CHECK(w.status.error_code() == grpc::StatusCode::INVALID_ARGUMENT);
    CHECK_THAT(w.status.error_message(), Catch::Contains("max_write"));

    // A stream whose first message is a chunk, not the header.
    grpc::ClientContext context;
    v1::WriteReply reply;
    auto writer = d.host().WriteStream(&context, &reply);
    v1::WriteStreamRequest chunk;
    chunk.set_chunk(data);
    writer->Write(chunk);
    writer->WritesDone();
    grpc::Status s = writer->Finish();
    CHECK(s.error_code() == grpc::StatusCode::INVALID_ARGUMENT);
    CHECK_THAT(s.error_message(), Catch::Contains("header"));
  }
  CHECK(Read(d.host(), "vol", 0, old_bytes.size()) == old_bytes);
  CHECK(Pen(d.Status()).depth() == 0);
}

TEST_CASE(
    "a volume bigger than the backing file system holds is refused up front and left on neither "
    "side",
    "[integration][errors]") {
  Pair pair;
  // 2^62 bytes, a multiple of every track size: more than ext4 (16 TiB), XFS or tmpfs hold
  // in one file.
  const uint64_t huge = uint64_t{1} << 62;
  grpc::Status s = CreateVolumeCall(*pair.primary, "huge", huge);
  CHECK(s.error_code() == grpc::StatusCode::INVALID_ARGUMENT);
  CHECK_THAT(s.error_message(), Catch::Contains(std::to_string(huge)));
  CHECK_THAT(s.error_message(), Catch::Contains("smaller size"));
  // Nothing left behind: no volume on either side, no backing file in either data_dir.
  for (Daemon* d : {pair.primary.get(), pair.mirror.get()}) {
    grpc::ClientContext context;
    d->Authorize(context);
    v1::ListVolumesReply listed;
    REQUIRE(d->admin().ListVolumes(&context, v1::ListVolumesRequest(), &listed).ok());
    CHECK(listed.volumes_size() == 0);
    for (const auto& entry : std::filesystem::directory_iterator(d->data_dir())) {
      INFO(entry.path());
      CHECK(entry.path().extension() != ".img");
    }
  }
  // Past what a file offset can say at all: refused before any file is touched.
  s = CreateVolumeCall(*pair.primary, "huger", uint64_t{1} << 63);
  CHECK(s.error_code() == grpc::StatusCode::INVALID_ARGUMENT);
  CHECK_THAT(s.error_message(), Catch::Contains("at most"));
  // The array still takes a volume it can hold.
  CHECK(CreateVolumeCall(*pair.primary, "fine", 1 << 20).ok());
}

TEST_CASE("host writes to a mirror-role daemon are refused with FAILED_PRECONDITION",
          "[integration][errors]") {
  Pair pair;
  pair.CreateVolume("vol", 4 * kTrack);
  WriteOutcome w = Write(pair.mirror->host(), "vol", 0, Pattern(100, 1));
  CHECK(w.status.error_code() == grpc::StatusCode::FAILED_PRECONDITION);
  CHECK_THAT(w.status.error_message(), Catch::Contains("mirror"));
  CHECK(StreamWrite(pair.mirror->host(), "vol", 0, Pattern(100, 1), 50).status.error_code() ==
        grpc::StatusCode::FAILED_PRECONDITION);
  CHECK(Read(pair.mirror->host(), "vol", 0, 100) == std::string(100, '\0'));
}

TEST_CASE("a bad config file makes the daemon exit non-zero naming file, key and reason",
          "[integration][errors][config]") {
  TempDir dir;
  struct Case {
    std::string text, key;
  };
  const std::vector<Case> cases = {
      {"role = \"boss\"\n", "role"},
      {"track_size = \"3K\"\n", "track_size"},
      {"track_size = \"64K\"\nmax_write = \"32M\"\n[cache]\nsize = \"8M\"\n", "cache.size"},
      {"holding_pen = \"disk\"\n", "holding_pen"},
      // The benchmark's unsafe bypass is a command-line flag only, and the message says so.
      {"holding_pen = \"bypass\"\n", "--unsafe-bypass-holding-pen"},
      {"[cache]\nsize = \"lots\"\n", "cache.size"},
      {"[[host_adaptor]]\nid = \"a\"\nprotocol = \"scsi\"\n", "protocol"},
      {"this is not toml ===\n", "line"},
      // Non-ASCII: toml++ 3.3 would reach unreachable code on some of it (fuzz_config).
      {"name = \"ok\"\nr\u00f4le = \"primary\"\n",
       "line 2: expected printable ASCII, got byte 0xc3"},
      {"[peer]\nsecret_file = \"/nonexistent/peer.secret\"\n", "peer.secret_file"},
      // Found by fuzz_config: a zero track size divided, a huge one wrapped to zero.
      {"track_size = \"0K\"\n", "track_size"},
      {"track_size = \"4G\"\n", "expected at most 4294967295"},
      {"[link]\nack_timeout_ms = 4294967296\n", "link.ack_timeout_ms"},
      {"[link]\nack_timeout_ms = 2.6e20\n", "expected a non-negative integer"},
      {"track_size = 65536.0\n", "expected a size"},
      // A misspelt key, or one that landed in the table above it, is not silently ignored.
      {"[cache]\nsise = \"64M\"\n", "key cache.sise: unknown key"},
      {"[log]\nlevel = \"info\"\ndse.max_size = \"1G\"\n", "key log.dse.max_size: unknown key"},
      {"gold_copy = \"on\"\n", "gold_copy: expected \"auto\" or \"off\", got \"on\""},
  };
  for (size_t i = 0; i < cases.size(); ++i) {
    INFO("config: " << cases[i].text);
    ExitResult r = RunDaemonExpectingExit(dir.path() + "/c" + std::to_string(i), cases[i].text);
    CHECK(r.code != 0);
    CHECK_THAT(r.stderr_text, Catch::Contains("bad.toml"));
    CHECK_THAT(r.stderr_text, Catch::Contains(cases[i].key));
  }
}

}  // namespace simarray::testing

namespace simarray::testing {

TEST_CASE("a second daemon on the same data_dir refuses to start", "[integration][errors]") {
  TempDir dir;
  Daemon first(dir.path() + "/solo", DaemonOptions{});
  first.Start();
  // RunDaemonExpectingExit uses DIR/data as data_dir: the same as the running daemon's.
  ExitResult second = RunDaemonExpectingExit(first.dir(), "name = \"intruder\"\n");
  CHECK(second.code != 0);
  CHECK_THAT(second.stderr_text, Catch::Contains("in use by another simarrayd"));
  CHECK(first.Status().role() == "primary");
}

}  // namespace simarray::testing
