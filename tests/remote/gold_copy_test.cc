// The gold copy's files (gold_copy.h): kept images read back, a copy reloaded after a stop
// only while the image is not consistent, and a dropped copy gone for good.

#include "simarray/remote/gold_copy.h"

#include <catch2/catch.hpp>
#include <filesystem>
#include <fstream>
#include <vector>

#include "common/scratch_dir.h"

namespace simarray::remote {
namespace {

constexpr uint32_t kTrack = 4096;

std::vector<uint8_t> Image(uint8_t fill) { return std::vector<uint8_t>(kTrack, fill); }

TEST_CASE("gold copy: the first image kept of a track is the one read back", "[gold]") {
  testing::ScratchDir dir;
  GoldCopy gold(dir.File("gold"), kTrack);
  REQUIRE(gold.Reload(false, 16).value() == false);
  CHECK_FALSE(gold.held());
  REQUIRE(gold.Begin(CycleMark{7, 700, true}, 16).ok());
  CHECK(gold.held());
  CHECK(std::filesystem::exists(dir.File("gold/gold.state")));
  const cache::TrackKey a{1, 3}, b{2, 0};
  REQUIRE(gold.Keep(a, Image(0xA1)).ok());
  REQUIRE(gold.Keep(a, Image(0xA2)).ok());  // a later change: the copy keeps the first
  REQUIRE(gold.Keep(b, Image(0xB1)).ok());
  std::vector<uint8_t> out(kTrack);
  CHECK(gold.Read(a, out).value());
  CHECK(out == Image(0xA1));
  CHECK(gold.Read(b, out).value());
  CHECK(out == Image(0xB1));
  CHECK_FALSE(gold.Read(cache::TrackKey{1, 4}, out).value());
  const GoldCounters c = gold.Counters();
  CHECK(c.held);
  CHECK(c.tracks == 2);
  CHECK(c.mark.sequence == 700);
  CHECK(c.taken == 1);
}

TEST_CASE("gold copy: a restart reloads the copy unless the image is consistent", "[gold]") {
  testing::ScratchDir dir;
  {
    GoldCopy gold(dir.File("gold"), kTrack);
    REQUIRE(gold.Begin(CycleMark{9, 900, true}, 16).ok());
    REQUIRE(gold.Keep(cache::TrackKey{1, 5}, Image(0x55)).ok());
    REQUIRE(gold.Keep(cache::TrackKey{1, 6}, Image(0x66)).ok());
  }  // a stop with the copy held (as a kill -9 would leave it)
  {
    GoldCopy again(dir.File("gold"), kTrack);
    REQUIRE(again.Reload(/*consistent=*/false, 16).value());
    CHECK(again.held());
    CHECK(again.mark().cycle == 9);
    CHECK(again.mark().sequence == 900);
    CHECK(again.Counters().tracks == 2);
    std::vector<uint8_t> out(kTrack);
    CHECK(again.Read(cache::TrackKey{1, 6}, out).value());
    CHECK(out == Image(0x66));
    // A track kept after the reload goes to a chunk of its own, not over a reloaded one.
    REQUIRE(again.Keep(cache::TrackKey{1, 7}, Image(0x77)).ok());
    CHECK(again.Read(cache::TrackKey{1, 5}, out).value());
    CHECK(out == Image(0x55));
  }
  {
    GoldCopy consistent(dir.File("gold"), kTrack);
    CHECK_FALSE(consistent.Reload(/*consistent=*/true, 16).value());
    CHECK_FALSE(consistent.held());
    CHECK_FALSE(std::filesystem::exists(dir.File("gold/gold.state")));
  }
}

TEST_CASE("gold copy: dropped, it is gone and a restart finds none", "[gold]") {
  testing::ScratchDir dir;
  GoldCopy gold(dir.File("gold"), kTrack);
  REQUIRE(gold.Begin(CycleMark{3, 30, true}, 4).ok());
  REQUIRE(gold.Keep(cache::TrackKey{1, 0}, Image(1)).ok());
  gold.Drop("the test");
  CHECK_FALSE(gold.held());
  CHECK_FALSE(gold.Holds(cache::TrackKey{1, 0}));
  CHECK(gold.Counters().dropped == 1);
  GoldCopy again(dir.File("gold"), kTrack);
  CHECK_FALSE(again.Reload(false, 4).value());
}

TEST_CASE("gold copy: a full copy says so, and a malformed state file stops the start", "[gold]") {
  testing::ScratchDir dir;
  GoldCopy gold(dir.File("gold"), kTrack);
  REQUIRE(gold.Begin(CycleMark{1, 10, true}, 2).ok());
  REQUIRE(gold.Keep(cache::TrackKey{1, 0}, Image(1)).ok());
  REQUIRE(gold.Keep(cache::TrackKey{1, 1}, Image(2)).ok());
  const absl::Status full = gold.Keep(cache::TrackKey{1, 2}, Image(3));
  CHECK(absl::IsResourceExhausted(full));
  CHECK_THAT(std::string(full.message()), Catch::Contains("is full at 2 tracks"));

  std::ofstream(dir.File("gold/gold.state")) << "not a gold copy\n";
  GoldCopy again(dir.File("gold"), kTrack);
  const auto reloaded = again.Reload(false, 4);
  CHECK(absl::IsDataLoss(reloaded.status()));
  CHECK_THAT(std::string(reloaded.status().message()), Catch::Contains("gold.state is malformed"));
}

}  // namespace
}  // namespace simarray::remote
