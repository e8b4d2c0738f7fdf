// The disk adaptor under a failing disk (docs/storage-faults.md): a failed write or sync never
// marks a track clean, the volume shows as failed, a flush fails at once with the error, a
// full cache of tracks that cannot destage refuses a slot at once, and after the fault the
// destage drains by itself and the backing file holds every byte.
#include "simarray/disk/disk_adaptor.h"

#include <catch2/catch.hpp>
#include <cerrno>
#include <cstring>
#include <fstream>
#include <iterator>

#include "cache/cache_test_util.h"
#include "common/scratch_dir.h"

namespace simarray::disk {
namespace {

constexpr uint32_t kTrack = 4096 * 4;
constexpr absl::Duration kHangGuard = absl::Seconds(60);

// A cache of `slots` slots over one 16-track volume "vol" in a scratch directory, with the
// destage running.
struct Rig {
  explicit Rig(uint64_t slots) {
    REQUIRE(dir.ok());
    auto catalog = VolumeCatalog::Open(dir.path(), kTrack);
    REQUIRE(catalog.ok());
    volumes = std::move(*catalog);
    auto info = volumes->Create("vol", 16 * kTrack, 0, false, /*group=*/"");
    REQUIRE(info.ok());
    volume_id = info->id;
    cache::RecoveryReport report;
    auto opened = cache::CacheMemory::Open(cache::testing::OptionsFor(slots, kTrack), &report);
    REQUIRE(opened.ok());
    cache = std::move(*opened);
    disk = std::make_unique<DiskAdaptor>(cache.get(), volumes.get());
    cache->SetBackingStore(disk.get());
    disk->Start();
  }
  ~Rig() { disk->Stop(); }

  // Writes the whole of `track` with `value`; false if no slot came.
  absl::Status Write(uint64_t track, uint8_t value) {
    auto staged = cache->AllocateStaging({volume_id, track}, 1, absl::Now() + kHangGuard);
    if (!staged.ok()) return staged.status();
    std::memset(staged->data().data(), value, kTrack);
    cache->Publish(std::move(*staged), 0, kTrack, cache->NextSequence(), false);
    return absl::OkStatus();
  }

  std::string File() {
    std::ifstream in(dir.path() + "/vol-" + std::to_string(volume_id) + ".img", std::ios::binary);
    std::string bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    bytes.resize(16 * kTrack, '\0');
    return bytes;
  }

  simarray::testing::ScratchDir dir;
  std::unique_ptr<VolumeCatalog> volumes;
  uint32_t volume_id = 0;
  std::unique_ptr<cache::CacheMemory> cache;
  std::unique_ptr<DiskAdaptor> disk;
};

}  // namespace

TEST_CASE("a failed write or sync never marks a track clean and the volume shows as failed") {
  Rig rig(32);
  const std::string op = GENERATE(std::string("write"), std::string("sync"));
  const DiskOp which = op == "write" ? DiskOp::kWrite : DiskOp::kSync;
  DYNAMIC_SECTION("the backing file fails every " << op) {
    rig.disk->faults().Arm(rig.volume_id, which, EIO, 0);
    for (uint64_t t = 0; t < 8; ++t) REQUIRE(rig.Write(t, static_cast<uint8_t>(0x40 + t)).ok());

    absl::StatusOr<uint64_t> flushed = rig.disk->Flush();
    INFO(flushed.status().ToString());
    CHECK(absl::IsUnavailable(flushed.status()));
    CHECK(flushed.status().message().find("vol") != std::string::npos);
    CHECK(flushed.status().message().find(strerror(EIO)) != std::string::npos);
    CHECK(rig.disk->tracks_destaged() == 0);
    CHECK(rig.cache->DirtyCount() == 8);
    const std::vector<StoreFailure> failures = rig.disk->health().Failures();
    REQUIRE(failures.size() == 1);
    CHECK(failures[0].volume == "vol");
    CHECK(failures[0].op == which);
    CHECK(failures[0].error == EIO);
    CHECK(failures[0].failures >= 1);

    // Healed: the retry writes everything, the failure ends, a flush promises it.
    rig.disk->faults().Clear(rig.volume_id);
    rig.disk->RetryNow();
    absl::StatusOr<uint64_t> healed = absl::UnknownError("not tried");
    for (int i = 0; i < 600 && !healed.ok(); ++i) {
      healed = rig.disk->Flush();
      if (!healed.ok()) absl::SleepFor(absl::Milliseconds(10));
    }
    INFO(healed.status().ToString());
    REQUIRE(healed.ok());
    CHECK(rig.cache->DirtyCount() == 0);
    CHECK(rig.disk->health().Failures().empty());
    CHECK(rig.disk->health().recoveries() == 1);
    CHECK(rig.cache->destage_error().ok());
    const std::string file = rig.File();
    for (uint64_t t = 0; t < 8; ++t) {
      CHECK(file.substr(t * kTrack, kTrack) == std::string(kTrack, static_cast<char>(0x40 + t)));
    }
  }
}

TEST_CASE("a full disk: a cache of undestageable tracks refuses a slot at once, then drains") {
  Rig rig(8);
  rig.disk->faults().Arm(rig.volume_id, DiskOp::kWrite, ENOSPC, 0);
  uint64_t t = 0;
  absl::Status refused;
  for (; t < 16 && refused.ok(); ++t) refused = rig.Write(t, static_cast<uint8_t>(t + 1));
  INFO(refused.ToString());
  CHECK(absl::IsResourceExhausted(refused));
  CHECK(refused.message().find(strerror(ENOSPC)) != std::string::npos);
  CHECK(t - 1 == 8);  // every slot held a track before the refusal
  CHECK(absl::IsResourceExhausted(rig.disk->Flush().status()));

  // A count: the next two writes fail too, then the disk has room again by itself.
  rig.disk->faults().Arm(rig.volume_id, DiskOp::kWrite, ENOSPC, 2);
  rig.disk->RetryNow();
  absl::StatusOr<uint64_t> flushed = absl::UnknownError("not tried");
  for (int i = 0; i < 600 && !flushed.ok(); ++i) {
    flushed = rig.disk->Flush();
    if (!flushed.ok()) absl::SleepFor(absl::Milliseconds(10));
  }
  REQUIRE(flushed.ok());
  CHECK(rig.disk->health().errors() >= 3);
  REQUIRE(rig.Write(9, 0x77).ok());
  REQUIRE(rig.disk->Flush().ok());
  const std::string file = rig.File();
  for (uint64_t k = 0; k < 8; ++k) {
    CHECK(file.substr(k * kTrack, kTrack) == std::string(kTrack, static_cast<char>(k + 1)));
  }
  CHECK(file.substr(9 * kTrack, kTrack) == std::string(kTrack, '\x77'));
}

TEST_CASE("an armed read fault fails a stage with UNAVAILABLE, once per count") {
  Rig rig(8);
  rig.disk->faults().Arm(rig.volume_id, DiskOp::kRead, EIO, 1);
  std::vector<uint8_t> buffer(kTrack);
  const absl::Status failed = rig.disk->ReadTrack({rig.volume_id, 3}, buffer);
  CHECK(absl::IsUnavailable(failed));
  CHECK(failed.message().find("track 3 of vol") != std::string::npos);
  CHECK(rig.disk->ReadTrack({rig.volume_id, 3}, buffer).ok());
}

}  // namespace simarray::disk
