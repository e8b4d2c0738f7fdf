// Write pacing (docs/async.md, "Write pacing"): a burst of host writes to many tracks over a
// slow link pulls the cycles ahead; with pacing on, the same burst is slowed down by its own
// replies and the cycles stay under their slot limit.
#include <atomic>
#include <catch2/catch.hpp>
#include <thread>
#include <vector>

#include "async_pair.h"
#include "daemon_process.h"
#include "prometheus_text.h"

namespace simarray::testing {
namespace {

constexpr uint64_t kTrack = 64 << 10;
constexpr uint64_t kTracks = 160;  // more than the cycles' slot limit of a 16 MiB cache

// An async pair with 16 MiB of cache each (about 250 slots, of which the cycles may pin a
// quarter) over an emulated link of 4 Mbit/s; `pacing` is appended to the primary's config.
Pair SlowPair(const std::string& pacing) {
  DaemonOptions primary = AsyncOptions("primary", 200);
  DaemonOptions mirror = AsyncOptions("mirror", 200);
  primary.cache_size = mirror.cache_size = "16M";
  primary.metrics = true;
  primary.extra = "[link.emulate]\nbandwidth = \"4Mbit\"\n" + pacing;
  return Pair(primary, mirror);
}

struct Burst {
  uint64_t writes = 0;
  uint64_t most_pinned = 0;
  v1::CycleStatus cycles;
};

// Four writers, each writing 4 KiB to the next track round the volume as soon as its last
// write was answered, for `seconds`; the primary's pinned slots are sampled meanwhile.
Burst RunBurst(Pair& pair, int seconds) {
  std::atomic<bool> stop{false};
  std::atomic<uint64_t> writes{0}, failed{0};
  std::vector<std::thread> writers;
  for (int w = 0; w < 4; ++w) {
    writers.emplace_back([&, w] {
      for (uint64_t n = 0; !stop; ++n) {
        const uint64_t track = (n * 4 + w) % kTracks;
        const bool ok =
            Write(pair.primary->host(), "burst", track * kTrack, Pattern(4096, n * 4 + w))
                .status.ok();
        ++(ok ? writes : failed);
      }
    });
  }
  Burst burst;
  const auto end = std::chrono::steady_clock::now() + std::chrono::seconds(seconds);
  while (std::chrono::steady_clock::now() < end) {
    const v1::CycleStatus c = pair.primary->Status().cycles();
    burst.most_pinned = std::max<uint64_t>(burst.most_pinned, c.pinned_slots());
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  stop = true;
  for (auto& t : writers) t.join();
  CHECK(failed == 0);
  burst.writes = writes;
  burst.cycles = pair.primary->Status().cycles();
  return burst;
}

TEST_CASE("write pacing keeps a burst over a slow link from pulling the cycles ahead",
          "[integration][async][pacing]") {
  SECTION("without pacing the burst pulls ahead") {
    Pair pair = SlowPair("");
    pair.CreateVolume("burst", kTracks * kTrack);
    REQUIRE(WaitPairState(*pair.primary, "Consistent"));
    const Burst burst = RunBurst(pair, 3);
    CHECK(burst.cycles.pull_aheads() >= 1);
    CHECK(burst.cycles.pacing_threshold() == 0);
    CHECK(burst.cycles.writes_paced() == 0);
  }
  SECTION("with pacing on it stays under the limit, and the replies show the delay") {
    Pair pair =
        SlowPair("[pacing]\nmode = \"on\"\nthreshold_percent = 40\nmax_delay_us = 400000\n");
    pair.CreateVolume("burst", kTracks * kTrack);
    REQUIRE(WaitPairState(*pair.primary, "Consistent"));
    const Burst burst = RunBurst(pair, 3);
    const v1::CycleStatus& c = burst.cycles;
    INFO("writes " << burst.writes << ", most pinned " << burst.most_pinned << " of "
                   << c.slot_limit() << ", paced " << c.writes_paced() << ", " << c.pacing_seconds()
                   << " s");
    CHECK(c.pull_aheads() == 0);
    CHECK(burst.most_pinned <= c.slot_limit());
    CHECK(c.pacing_threshold() == c.slot_limit() * 40 / 100);
    CHECK(burst.most_pinned > c.pacing_threshold());  // the burst did reach pacing
    CHECK(c.writes_paced() > 0);
    CHECK(c.pacing_seconds() > 0);
    // The pacing histogram counts the paced writes; the host's write latency shows them.
    Exposition m = Scrape(*pair.primary);
    CHECK(m.Value("simarray_writes_paced_total") == c.writes_paced());
    CHECK(m.Value("simarray_pacing_delays_seconds_count") == c.writes_paced());
    const double slow =
        m.Value("simarray_host_write_latency_seconds_count", {{"adaptor", "ha0"}}) -
        m.Value("simarray_host_write_latency_seconds_bucket", {{"adaptor", "ha0"}, {"le", "0.01"}});
    CHECK(slow > 0);  // replies held back past 10 ms
    // The burst is consistent on the mirror once it caught up.
    REQUIRE(WaitPairState(*pair.primary, "Consistent"));
    REQUIRE(MirrorCaughtUp(*pair.primary, *pair.mirror));
    for (uint64_t at = 0; at < kTracks * kTrack; at += 32 * kTrack) {
      CHECK(Read(pair.mirror->host(), "burst", at, 32 * kTrack) ==
            Read(pair.primary->host(), "burst", at, 32 * kTrack));
    }
    CtlResult status = Ctl("--admin " + pair.primary->admin_address() + " status");
    CHECK_THAT(status.out, Catch::Contains("write pacing:"));
  }
}

TEST_CASE("pacing settings are checked at start", "[integration][async][pacing][config]") {
  TempDir dir;
  const std::string base = "name = \"p\"\ndata_dir = \"" + dir.path() + "/data\"\n";
  const struct {
    std::string toml, error;
  } cases[] = {
      {"mode = \"async\"\n[pacing]\nmode = \"fast\"\n",
       "key pacing.mode: expected \"off\" or \"on\", got \"fast\""},
      {"mode = \"async\"\n[pacing]\nmode = \"on\"\nmax_delay_us = 0\n",
       "key pacing.max_delay_us: expected 1 to 1000000, got 0"},
      {"mode = \"async\"\n[pacing]\nthreshold_percent = 100\n",
       "key pacing.threshold_percent: expected 1 to 99"},
      {"mode = \"async\"\n[pacing]\ndelay = 5\n", "key pacing.delay: unknown key"},
      {"[pacing]\nmode = \"on\"\n", "key pacing.mode: \"on\" is for async groups"},
  };
  for (const auto& c : cases) {
    ExitResult r = RunDaemonExpectingExit(dir.path(), base + c.toml);
    INFO(c.toml);
    CHECK(r.code != 0);
    CHECK_THAT(r.stderr_text, Catch::Contains(c.error));
  }
}

}  // namespace
}  // namespace simarray::testing
