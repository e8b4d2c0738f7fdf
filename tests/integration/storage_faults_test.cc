// A failing disk under the array (docs/storage-faults.md): a write or sync of a backing file
// that fails never marks a track clean, the volume shows as failed, flushes and write-through
// acks fail with a clear status instead of lying, a full cache of tracks that cannot destage
// refuses writes RESOURCE_EXHAUSTED at once, and once the disk is back every acknowledged byte
// reaches the backing files (read from the files after a clean stop, not through the cache).
#include <sys/mount.h>

#include <catch2/catch.hpp>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <optional>
#include <random>
#include <string>

#include "daemon_process.h"

namespace simarray::testing {
namespace {

constexpr uint64_t kTrack = 64 << 10;
constexpr int kSkip = 77;

// A tmpfs of `size` mounted on `path` for the life of the object. Where mount is refused (no
// CAP_SYS_ADMIN, a container) the test ends as skipped (exit 77), saying why.
class TinyFileSystem {
 public:
  TinyFileSystem(const std::string& path, const std::string& size) : path_(path) {
    std::filesystem::create_directories(path);
    if (mount("tmpfs", path.c_str(), "tmpfs", 0, ("size=" + size).c_str()) != 0) {
      std::printf(
          "SKIPPED: mounting a %s tmpfs on %s was refused (%s); this test needs "
          "mount(2) (root with CAP_SYS_ADMIN)\n",
          size.c_str(), path.c_str(), strerror(errno));
      std::exit(kSkip);
    }
  }
  ~TinyFileSystem() { umount2(path_.c_str(), MNT_DETACH); }
  TinyFileSystem(const TinyFileSystem&) = delete;
  TinyFileSystem& operator=(const TinyFileSystem&) = delete;

 private:
  std::string path_;
};

grpc::Status Flush(Daemon& d) {
  grpc::ClientContext context;
  context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(90));
  v1::FlushRequest request;
  v1::FlushReply reply;
  return d.host().Flush(&context, request, &reply);
}

// The failed backing store of `volume` in `d`'s Status, if any.
std::optional<v1::BackingStoreFailure> Failure(Daemon& d, const std::string& volume) {
  v1::StatusReply status = d.Status();
  for (const auto& f : status.failed_backing_stores()) {
    if (f.volume() == volume) return f;
  }
  return std::nullopt;
}

// The whole volume through host reads of `chunk` bytes (at most max_write each).
std::string ReadAll(Daemon& d, const std::string& volume, uint64_t size, uint64_t chunk) {
  std::string out;
  for (uint64_t at = 0; at < size; at += chunk) {
    out += Read(d.host(), volume, at, std::min(chunk, size - at));
  }
  return out;
}

// A host's view of one volume: what every acknowledged write left there.
struct Model {
  explicit Model(uint64_t size) : bytes(size, '\0') {}
  void Apply(uint64_t offset, const std::string& data) { bytes.replace(offset, data.size(), data); }
  std::string bytes;
};

// Writes whole tracks of "vol" from `first` on, each a new one with pattern `seed` + track,
// until one is refused (its status to `refused`) or the volume ends; returns the track
// refused (the volume's track count if none was). Acked writes go into `model`.
uint64_t WriteTracksUntilRefused(Daemon& d, Model* model, uint64_t first, uint32_t seed,
                                 grpc::Status* refused) {
  const uint64_t tracks = model->bytes.size() / kTrack;
  for (uint64_t track = first; track < tracks; ++track) {
    const std::string data = Pattern(kTrack, seed + track);
    WriteOutcome w = Write(d.host(), "vol", track * kTrack, data);
    if (!w.status.ok()) {
      *refused = w.status;
      return track;
    }
    model->Apply(track * kTrack, data);
  }
  return tracks;
}

// The same from `first` to the end, retrying each write until it is acked.
void WriteTracksEventually(Daemon& d, Model* model, uint64_t first, uint32_t seed) {
  for (uint64_t track = first; track < model->bytes.size() / kTrack; ++track) {
    const std::string data = Pattern(kTrack, seed + track);
    WriteOutcome w;
    REQUIRE(
        Eventually([&] { return (w = Write(d.host(), "vol", track * kTrack, data)).status.ok(); }));
    model->Apply(track * kTrack, data);
  }
}

}  // namespace

TEST_CASE("a pair whose fdatasync fails keeps every acked write and destages it once healed",
          "[integration][storage]") {
  Pair pair;
  constexpr uint64_t kSize = 32 * kTrack;
  pair.CreateVolume("vol", kSize);
  Model model(kSize);
  const std::string first = Pattern(4 * kTrack, 1);
  REQUIRE(Write(pair.primary->host(), "vol", 0, first).status.ok());
  model.Apply(0, first);
  REQUIRE(Flush(*pair.primary).ok());
  REQUIRE(Flush(*pair.mirror).ok());

  // Every fdatasync of the volume fails, on both sides, until healed.
  DiskFault(*pair.primary, v1::FAULT_DISK_ERROR, "vol", "sync");
  DiskFault(*pair.mirror, v1::FAULT_DISK_ERROR, "vol", "sync");
  const uint64_t destaged_primary = pair.primary->Status().cache().tracks_destaged();
  const uint64_t destaged_mirror = pair.mirror->Status().cache().tracks_destaged();

  std::mt19937 rng(7);
  for (uint32_t i = 0; i < 40; ++i) {
    const uint64_t length = 512 * (1 + rng() % 200);
    const uint64_t offset = 512 * (rng() % ((kSize - length) / 512));
    const std::string data = Pattern(length, 100 + i);
    WriteOutcome w = Write(pair.primary->host(), "vol", offset, data);
    INFO("write " << i << ": " << w.status.error_message());
    REQUIRE(w.status.ok());  // the cache is persistent: acked from cache and the mirror
    model.Apply(offset, data);
  }

  // Both sides show the failed store; no track was marked clean.
  for (Daemon* d : {pair.primary.get(), pair.mirror.get()}) {
    REQUIRE(Eventually([&] { return Failure(*d, "vol").has_value(); }));
    v1::StatusReply status = d->Status();
    CHECK(status.backing_store() == "failed");
    const v1::BackingStoreFailure f = *Failure(*d, "vol");
    CHECK(f.op() == "sync");
    CHECK(f.error_number() == EIO);
    CHECK(f.tracks_waiting() > 0);
    CHECK(status.cache().backing_store_errors() > 0);
  }
  CHECK(pair.primary->Status().cache().tracks_destaged() == destaged_primary);
  CHECK(pair.mirror->Status().cache().tracks_destaged() == destaged_mirror);

  // A flush says why it cannot promise anything, instead of waiting out its deadline.
  const grpc::Status flush = Flush(*pair.primary);
  INFO(flush.error_message());
  CHECK(flush.error_code() == grpc::StatusCode::UNAVAILABLE);
  CHECK(flush.error_message().find("vol") != std::string::npos);
  CHECK(flush.error_message().find("Input/output error") != std::string::npos);
  // Reads are served from cache meanwhile.
  CHECK(Read(pair.primary->host(), "vol", 0, kSize) == model.bytes);
  CHECK(Read(pair.mirror->host(), "vol", 0, kSize) == model.bytes);

  // Healed: the destage retries by itself, the failure ends, a flush succeeds.
  DiskFault(*pair.primary, v1::FAULT_DISK_HEAL, "vol");
  DiskFault(*pair.mirror, v1::FAULT_DISK_HEAL, "vol");
  for (Daemon* d : {pair.primary.get(), pair.mirror.get()}) {
    REQUIRE(Eventually([&] { return Flush(*d).ok(); }));
    v1::StatusReply status = d->Status();
    CHECK(status.backing_store() == "ok");
    CHECK(status.failed_backing_stores_size() == 0);
    CHECK(status.cache().backing_store_recoveries() >= 1);
    CHECK(status.cache().write_pending() == 0);
  }
  // Every acked byte is in both backing files.
  const uint32_t primary_id = VolumeId(*pair.primary, "vol");
  const uint32_t mirror_id = VolumeId(*pair.mirror, "vol");
  REQUIRE(pair.primary->Stop() == 0);
  REQUIRE(pair.mirror->Stop() == 0);
  CHECK(BackingFile(*pair.primary, primary_id, kSize) == model.bytes);
  CHECK(BackingFile(*pair.mirror, mirror_id, kSize) == model.bytes);
}

TEST_CASE("a mirror that cannot stage a track for a record ends the stream and never acks it",
          "[integration][storage]") {
  Pair pair;
  constexpr uint64_t kSize = 16 * kTrack;
  pair.CreateVolume("vol", kSize);
  WriteOutcome first = Write(pair.primary->host(), "vol", 0, Pattern(kTrack, 1));
  REQUIRE(first.status.ok());
  REQUIRE(first.reply.mirrored());
  const uint64_t losses = pair.primary->Status().link().link_losses();

  // A part of a track the mirror does not hold: applying it needs the rest of the track
  // from the mirror's disk, which fails.
  DiskFault(*pair.mirror, v1::FAULT_DISK_ERROR, "vol", "read");
  WriteOutcome partial = Write(pair.primary->host(), "vol", 5 * kTrack + 100, Pattern(1000, 2));
  INFO(partial.status.error_message());
  CHECK_FALSE((partial.status.ok() && partial.reply.mirrored()));
  REQUIRE(Eventually([&] { return pair.primary->Status().link().link_losses() > losses; }));
  CHECK(ReadFile(pair.mirror->log_path()).find("ending the stream") != std::string::npos);

  // Healed: the owed track is resynced whole and the pair is whole again.
  DiskFault(*pair.mirror, v1::FAULT_DISK_HEAL, "vol");
  REQUIRE(WaitPairState(*pair.primary, "Synchronized"));
  CHECK(CheckConsistency(*pair.primary, "vol").consistent());
  CHECK(Read(pair.mirror->host(), "vol", 0, kSize) == Read(pair.primary->host(), "vol", 0, kSize));
}

TEST_CASE("write-through: a write whose destage or sync fails is not acknowledged",
          "[integration][storage]") {
  TempDir dir;
  DaemonOptions options;
  options.persistent = false;
  Daemon d(dir.path() + "/solo", options);
  d.Start();
  REQUIRE(CreateVolumeCall(d, "vol", 8 * kTrack).ok());
  Model model(8 * kTrack);
  const std::string before = Pattern(2 * kTrack, 1);
  REQUIRE(Write(d.host(), "vol", 0, before).status.ok());
  model.Apply(0, before);

  const std::string op = GENERATE(std::string("write"), std::string("sync"));
  DYNAMIC_SECTION("the backing file fails its " << op) {
    DiskFault(d, v1::FAULT_DISK_ERROR, "vol", op);
    WriteOutcome refused = Write(d.host(), "vol", 3 * kTrack, Pattern(kTrack, 2));
    INFO(refused.status.error_message());
    CHECK(refused.status.error_code() == grpc::StatusCode::UNAVAILABLE);
    CHECK(refused.status.error_message().find("backing store of volume vol") != std::string::npos);
    CHECK(d.Status().backing_store() == "failed");

    DiskFault(d, v1::FAULT_DISK_HEAL, "vol");
    REQUIRE(Eventually([&] { return d.Status().backing_store() == "ok"; }));
    const std::string after = Pattern(kTrack, 3);
    WriteOutcome acked = Write(d.host(), "vol", 3 * kTrack, after);
    INFO(acked.status.error_message());
    REQUIRE(acked.status.ok());
    model.Apply(3 * kTrack, after);
    // Acked means on disk: the file holds it even before a stop.
    CHECK(BackingFile(d, VolumeId(d, "vol"), 8 * kTrack) == model.bytes);
  }
}

TEST_CASE("a disk-full fault: writes fill the cache then fail RESOURCE_EXHAUSTED naming the disk",
          "[integration][storage]") {
  TempDir dir;
  DaemonOptions options;
  options.cache_size = "2M";  // 31 slots of 64 KiB
  options.max_write = "256K";
  Daemon d(dir.path() + "/solo", options);
  d.Start();
  constexpr uint64_t kSize = 64 * kTrack;
  REQUIRE(CreateVolumeCall(d, "vol", kSize).ok());
  Model model(kSize);
  DiskFault(d, v1::FAULT_DISK_FULL, "vol");

  // Whole tracks, each a new one: the cache takes them until every slot is write-pending.
  grpc::Status refused;
  uint64_t track = WriteTracksUntilRefused(d, &model, 0, 10, &refused);
  INFO(refused.error_message());
  CHECK(track > 4);   // the cache held some
  CHECK(track < 64);  // and then it was full
  CHECK(refused.error_code() == grpc::StatusCode::RESOURCE_EXHAUSTED);
  CHECK(refused.error_message().find("No space left on device") != std::string::npos);
  CHECK(refused.error_message().find("vol") != std::string::npos);
  const v1::BackingStoreFailure f = *Failure(d, "vol");
  CHECK(f.error_number() == ENOSPC);
  CHECK(f.tracks_waiting() == track);
  // Reads still work: the written tracks from cache, the rest around it from the disk.
  CHECK(ReadAll(d, "vol", kSize, 4 * kTrack) == model.bytes);

  // Space is back: the destage resumes, writes are taken again.
  DiskFault(d, v1::FAULT_DISK_HEAL, "vol");
  WriteTracksEventually(d, &model, track, 10);
  REQUIRE(Flush(d).ok());
  const uint32_t id = VolumeId(d, "vol");
  REQUIRE(d.Stop() == 0);
  CHECK(BackingFile(d, id, kSize) == model.bytes);
}

TEST_CASE("a real file system that fills up: writes refused, then drained once space is freed",
          "[integration][storage]") {
  TempDir dir;
  DaemonOptions options;
  options.cache_size = "2M";  // its region takes about 2 MiB of the file system
  options.max_write = "256K";
  const std::string daemon_dir = dir.path() + "/solo";
  // 8 MiB: the region, a 4 MiB filler that stands for somebody else's files, and under
  // 2 MiB left for the volume, whose 4 MiB cannot fit until the filler goes.
  TinyFileSystem fs(daemon_dir + "/data", "8m");
  const std::string filler = daemon_dir + "/data/filler";
  {
    std::ofstream out(filler, std::ios::binary);
    out << std::string(4 << 20, 'f');
    REQUIRE(out.good());
  }
  Daemon d(daemon_dir, options);
  d.Start();
  constexpr uint64_t kSize = 64 * kTrack;
  REQUIRE(CreateVolumeCall(d, "vol", kSize).ok());
  Model model(kSize);

  grpc::Status refused;
  uint64_t track = WriteTracksUntilRefused(d, &model, 0, 500, &refused);
  INFO(refused.error_message());
  CHECK(track < 64);
  CHECK(refused.error_code() == grpc::StatusCode::RESOURCE_EXHAUSTED);
  CHECK(refused.error_message().find("No space left on device") != std::string::npos);
  CHECK(d.Status().backing_store() == "failed");
  CHECK(ReadAll(d, "vol", kSize, 4 * kTrack) == model.bytes);

  // Space is freed: the destage resumes by itself within its back-off, writes go on.
  REQUIRE(std::filesystem::remove(filler));
  REQUIRE(Eventually([&] { return d.Status().backing_store() == "ok"; }));
  WriteTracksEventually(d, &model, track, 500);
  REQUIRE(Flush(d).ok());
  const uint32_t id = VolumeId(d, "vol");
  REQUIRE(d.Stop() == 0);
  CHECK(BackingFile(d, id, kSize) == model.bytes);
}

}  // namespace simarray::testing
