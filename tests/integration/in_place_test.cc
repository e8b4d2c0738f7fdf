// Writes that land in place in a track's image (docs/write-path.md): many writers on
// overlapping ranges of a few tracks, a range overwritten while its older record is still on
// its way to the mirror, and the destage writing only dirty blocks, across a kill -9.
#include <signal.h>

#include <algorithm>
#include <catch2/catch.hpp>
#include <mutex>
#include <random>
#include <thread>

#include "daemon_process.h"

namespace simarray::testing {
namespace {
constexpr uint64_t kTrack = 64 << 10;

struct Acked {
  uint64_t sequence;
  uint64_t offset;
  std::string data;
};

// The image every byte must hold: each acked write laid down in sequence order.
std::string Oracle(std::vector<Acked> writes, size_t size) {
  std::sort(writes.begin(), writes.end(),
            [](const Acked& a, const Acked& b) { return a.sequence < b.sequence; });
  std::string image(size, '\0');
  for (const Acked& w : writes) image.replace(w.offset, w.data.size(), w.data);
  return image;
}

// The first byte where `got` and `want` differ, for a readable failure.
std::string FirstDifference(const std::string& got, const std::string& want) {
  auto [g, w] = std::mismatch(got.begin(), got.end(), want.begin(), want.end());
  if (g == got.end() && w == want.end()) return "none";
  return "byte " + std::to_string(g - got.begin());
}

v1::FlushReply FlushAll(Daemon& d) {
  grpc::ClientContext context;
  v1::FlushRequest request;
  v1::FlushReply reply;
  grpc::Status s = d.host().Flush(&context, request, &reply);
  INFO(s.error_message());
  REQUIRE(s.ok());
  return reply;
}

}  // namespace

TEST_CASE(
    "many writers on overlapping ranges of a few tracks: each byte on both sides is the "
    "highest-sequence write covering it",
    "[integration][in-place]") {
  DaemonOptions primary;
  primary.host_adaptors = 2;
  Pair pair(primary);
  constexpr uint64_t kSpan = 4 * kTrack;
  pair.CreateVolume("vol", 8 * kTrack);
  constexpr int kWriters = 4, kWritesEach = 120;
  std::mutex mu;
  std::vector<Acked> acked;
  std::atomic<int> failed{0};
  std::vector<std::thread> writers;
  for (int w = 0; w < kWriters; ++w) {
    writers.emplace_back([&, w] {
      std::mt19937_64 rng(1000 + w);
      for (int i = 0; i < kWritesEach; ++i) {
        // Mostly small ranges (in place), some across a track boundary, some whole tracks.
        uint64_t length = std::uniform_int_distribution<uint64_t>(1, 9000)(rng);
        if (i % 10 == 0) length = kTrack;
        const uint64_t offset = std::uniform_int_distribution<uint64_t>(0, kSpan - length)(rng);
        const std::string data = Pattern(length, w * 100000 + i);
        WriteOutcome out = Write(pair.primary->host(w % 2), "vol", offset, data);
        if (!out.status.ok()) {
          ++failed;
          continue;
        }
        std::lock_guard<std::mutex> lock(mu);
        acked.push_back(Acked{out.reply.sequence(), offset, data});
      }
    });
  }
  for (auto& t : writers) t.join();
  REQUIRE(failed == 0);
  const std::string want = Oracle(acked, kSpan);
  const std::string primary_image = Read(pair.primary->host(), "vol", 0, kSpan);
  INFO("primary differs at " << FirstDifference(primary_image, want));
  CHECK(primary_image == want);
  const std::string mirror_image = Read(pair.mirror->host(), "vol", 0, kSpan);
  INFO("mirror differs at " << FirstDifference(mirror_image, want));
  CHECK(mirror_image == want);
  // And the backing files, once destaged, hold the same on both sides.
  FlushAll(*pair.primary);
  CHECK(CheckConsistency(*pair.primary, "vol").consistent());
}

TEST_CASE(
    "a range overwritten while its older record is held back: the mirror ends with the "
    "newer bytes",
    "[integration][in-place]") {
  Pair pair;
  pair.CreateVolume("vol", 8 * kTrack);
  const std::string older = Pattern(8192, 1), newer = Pattern(4096, 2);
  InjectFault(*pair.primary, v1::FAULT_DELAY_RECORDS, 400);
  WriteOutcome first, second;
  std::thread a([&] { first = Write(pair.primary->host(), "vol", kTrack + 1000, older); });
  // The older write is committed (readable on the primary) and its record held back.
  REQUIRE(
      Eventually([&] { return Read(pair.primary->host(), "vol", kTrack + 1000, 8192) == older; }));
  second = Write(pair.primary->host(), "vol", kTrack + 3000, newer);
  a.join();
  INFO("first write: " << first.status.error_message());
  INFO("second write: " << second.status.error_message());
  REQUIRE(first.status.ok());
  REQUIRE(second.status.ok());
  CHECK(second.reply.sequence() > first.reply.sequence());
  InjectFault(*pair.primary, v1::FAULT_DELAY_RECORDS, 0);
  std::string want = older;
  want.replace(2000, newer.size(), newer);
  CHECK(Read(pair.primary->host(), "vol", kTrack + 1000, 8192) == want);
  CHECK(Read(pair.mirror->host(), "vol", kTrack + 1000, 8192) == want);
}

TEST_CASE("the destage writes only the blocks a write dirtied, and whole images after a kill -9",
          "[integration][in-place]") {
  Pair pair;
  v1::VolumeInfo info;
  REQUIRE(CreateVolumeCall(*pair.primary, "vol", 8 * kTrack, &info).ok());
  // Bring four tracks into cache and onto disk on both sides, then count only what follows.
  REQUIRE(Write(pair.primary->host(), "vol", 0, Pattern(4 * kTrack, 7)).status.ok());
  FlushAll(*pair.primary);
  REQUIRE(Eventually([&] { return pair.mirror->Status().cache().write_pending() == 0; }));
  const uint64_t destaged_before = pair.primary->Status().cache().bytes_destaged();
  const uint64_t mirror_destaged_before = pair.mirror->Status().cache().bytes_destaged();
  const uint64_t copied_before = pair.primary->Status().cache().bytes_copied();
  std::string want = Pattern(4 * kTrack, 7);
  for (int t = 0; t < 4; ++t) {
    const std::string data = Pattern(4096, 70 + t);
    const uint64_t offset = t * kTrack + 8192;  // one whole 4 KiB block of each track
    REQUIRE(Write(pair.primary->host(), "vol", offset, data).status.ok());
    want.replace(offset, data.size(), data);
  }
  FlushAll(*pair.primary);
  REQUIRE(Eventually([&] { return pair.mirror->Status().cache().write_pending() == 0; }));
  CHECK(pair.primary->Status().cache().bytes_destaged() - destaged_before == 4 * 4096);
  CHECK(pair.mirror->Status().cache().bytes_destaged() - mirror_destaged_before == 4 * 4096);
  CHECK(pair.primary->Status().cache().bytes_copied() - copied_before == 4 * 4096);

  // Killed right after the ack: what the destage had not written yet, the restart destages
  // (whole images, since which blocks were dirty is not kept).
  const std::string late = Pattern(100, 9);
  REQUIRE(Write(pair.primary->host(), "vol", 3 * kTrack + 50, late).status.ok());
  pair.primary->Kill(SIGKILL);
  want.replace(3 * kTrack + 50, late.size(), late);
  pair.primary->Start();
  FlushAll(*pair.primary);
  CHECK(Read(pair.primary->host(), "vol", 0, 4 * kTrack) == want);
  // The backing file itself, read past the cache.
  const std::string file =
      ReadFile(pair.primary->data_dir() + "/vol-" + std::to_string(info.id()) + ".img");
  REQUIRE(file.size() >= 4 * kTrack);
  INFO("backing file differs at " << FirstDifference(file.substr(0, 4 * kTrack), want));
  CHECK(file.substr(0, 4 * kTrack) == want);
}

}  // namespace simarray::testing
