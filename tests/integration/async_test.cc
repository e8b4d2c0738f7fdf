// Async mode (docs/async.md): dependent-write consistency of the mirror through suspends,
// link drops, a slow link, a mirror crash in the middle of a cycle, and a swap.
#include <atomic>
#include <catch2/catch.hpp>
#include <csignal>
#include <cstring>
#include <map>
#include <mutex>
#include <random>
#include <thread>

#include "async_pair.h"
#include "daemon_process.h"

namespace simarray::testing {
namespace {

constexpr uint64_t kTrack = 64 << 10;
constexpr uint64_t kBlock = 4096;

// --- the dependent-write checker -------------------------------------------------------------

// Every block a writer writes carries the write's tag (writer, count) in its first bytes
// and bytes derived from it in the rest, so a block read back names the write that left it
// and shows whether it is whole.
std::string StampBlocks(uint64_t tag, int volume, uint64_t first_block, uint64_t blocks) {
  std::string data(blocks * kBlock, '\0');
  for (uint64_t b = 0; b < blocks; ++b) {
    char* block = data.data() + b * kBlock;
    const uint64_t where = (static_cast<uint64_t>(volume) << 32) | (first_block + b);
    std::memcpy(block, &tag, 8);
    std::memcpy(block + 8, &where, 8);
    uint64_t x = tag * 0x9E3779B97F4A7C15ull ^ where;
    for (uint64_t i = 16; i < kBlock; ++i) {
      x = x * 6364136223846793005ull + 1442695040888963407ull;
      block[i] = static_cast<char>(x >> 56);
    }
  }
  return data;
}

struct StampedWrite {
  uint64_t sequence = 0;
  uint64_t tag = 0;
  int volume = 0;
  uint64_t first_block = 0;
  uint64_t blocks = 0;
};

// What the mirror held, read whole while it could not change, and the sequence it said it
// had applied through.
struct Snapshot {
  uint64_t applied_sequence = 0;
  std::string why;
  std::vector<std::string> volumes;
};

class DependentWriteChecker {
 public:
  static constexpr int kVolumes = 2;
  static constexpr uint64_t kVolumeSize = 1 << 20;  // 16 tracks, 256 blocks
  static constexpr uint64_t kBlocks = kVolumeSize / kBlock;
  const std::string names[kVolumes] = {"dwa", "dwb"};

  explicit DependentWriteChecker(Pair& pair) : pair_(pair) {
    for (const std::string& name : names) pair_.CreateVolume(name, kVolumeSize);
  }
  // A REQUIRE that fails while the writers run unwinds through here: the writers stop, so
  // the failure is reported instead of ending the process in std::terminate.
  ~DependentWriteChecker() { StopWriters(); }

  // Writers keep writing stamped blocks, each write issued after the writer's previous one
  // was acknowledged (dependent writes): single blocks, and pairs straddling a track
  // boundary (one write, two tracks).
  void StartWriters(int count) {
    for (int w = 0; w < count; ++w) {
      writers_.emplace_back([this, w] {
        std::mt19937_64 random(1234 + w);
        for (uint64_t n = 1; !stop_; ++n) {
          const uint64_t tag = (static_cast<uint64_t>(w + 1) << 40) | n;
          const int volume = static_cast<int>(random() % kVolumes);
          uint64_t first = random() % kBlocks;
          uint64_t blocks = 1;
          if (random() % 4 == 0) {
            const uint64_t per_track = kTrack / kBlock;
            first = (1 + random() % (kBlocks / per_track - 1)) * per_track - 1;
            blocks = 2;
          }
          WriteOutcome out = Write(pair_.primary->host(), names[volume], first * kBlock,
                                   StampBlocks(tag, volume, first, blocks));
          if (!out.status.ok() || out.reply.mirrored()) {
            std::lock_guard<std::mutex> lock(mu_);
            failures_.push_back(out.status.ok() ? "an async write said it was mirrored"
                                                : out.status.error_message());
            continue;
          }
          std::lock_guard<std::mutex> lock(mu_);
          writes_.push_back(StampedWrite{out.reply.sequence(), tag, volume, first, blocks});
        }
      });
    }
  }

  void StopWriters() {
    stop_ = true;
    for (auto& t : writers_) t.join();
    writers_.clear();
  }

  // Reads the mirror whole, twice asking what it applied through; kept only when the mirror
  // says its image is a cycle boundary and nothing was applied while reading.
  bool TakeSnapshot(const std::string& why) {
    const v1::StatusReply before = pair_.mirror->Status();
    if (!before.cycles().mirror_consistent()) return false;
    Snapshot s;
    s.why = why;
    s.applied_sequence = before.cycles().applied_sequence();
    for (const std::string& name : names) {
      s.volumes.push_back(Read(pair_.mirror->host(), name, 0, kVolumeSize));
    }
    const v1::StatusReply after = pair_.mirror->Status();
    if (after.cycles().applied_sequence() != s.applied_sequence ||
        !after.cycles().mirror_consistent()) {
      return false;
    }
    snapshots_.push_back(std::move(s));
    return true;
  }

  size_t writes() {
    std::lock_guard<std::mutex> lock(mu_);
    return writes_.size();
  }
  const std::vector<Snapshot>& snapshots() const { return snapshots_; }

  // After StopWriters: every snapshot must equal the primary's image as of the sequence it
  // reports, block for block. Returns the first difference, or "" when all hold.
  std::string Verify() {
    if (!failures_.empty()) return "a write failed: " + failures_.front();
    std::sort(writes_.begin(), writes_.end(),
              [](const StampedWrite& a, const StampedWrite& b) { return a.sequence < b.sequence; });
    std::map<uint64_t, uint64_t> sequence_of;
    for (const StampedWrite& w : writes_) sequence_of[w.tag] = w.sequence;
    for (const Snapshot& s : snapshots_) {
      uint64_t expected[kVolumes][kBlocks] = {};
      for (const StampedWrite& w : writes_) {
        if (w.sequence > s.applied_sequence) break;
        for (uint64_t b = 0; b < w.blocks; ++b) expected[w.volume][w.first_block + b] = w.tag;
      }
      for (int v = 0; v < kVolumes; ++v) {
        for (uint64_t b = 0; b < kBlocks; ++b) {
          const std::string block = s.volumes[v].substr(b * kBlock, kBlock);
          uint64_t found = 0;
          std::memcpy(&found, block.data(), 8);
          const std::string want = expected[v][b] == 0 ? std::string(kBlock, '\0')
                                                       : StampBlocks(expected[v][b], v, b, 1);
          if (block == want) continue;
          return "snapshot (" + s.why + ") applied through sequence " +
                 std::to_string(s.applied_sequence) + ": volume " + names[v] + " block " +
                 std::to_string(b) + " holds write " + std::to_string(found) + " (sequence " +
                 std::to_string(sequence_of[found]) + "), the primary had write " +
                 std::to_string(expected[v][b]) + " (sequence " +
                 std::to_string(sequence_of[expected[v][b]]) + ")" +
                 (found != 0 && block != StampBlocks(found, v, b, 1) ? "; the block is torn" : "");
        }
      }
    }
    return "";
  }

  // Once everything is applied: the mirror equals the primary.
  bool MirrorEqualsPrimary() {
    for (const std::string& name : names) {
      if (Read(pair_.mirror->host(), name, 0, kVolumeSize) !=
          Read(pair_.primary->host(), name, 0, kVolumeSize)) {
        return false;
      }
    }
    return true;
  }

 private:
  Pair& pair_;
  std::atomic<bool> stop_{false};
  std::vector<std::thread> writers_;
  std::mutex mu_;
  std::vector<StampedWrite> writes_;
  std::vector<std::string> failures_;
  std::vector<Snapshot> snapshots_;
};

bool MirrorPartitioned(Pair& pair) {
  return Eventually([&] { return pair.mirror->Status().pair_state() == "Partitioned"; },
                    std::chrono::seconds(10));
}

// Freezes the mirror at a random moment while the pair is Consistent (suspend), reads it,
// and resumes.
void SnapshotWhileSuspended(Pair& pair, DependentWriteChecker& checker, std::mt19937& random,
                            int* taken) {
  std::this_thread::sleep_for(std::chrono::milliseconds(100 + random() % 400));
  REQUIRE(WaitPairState(*pair.primary, "Consistent"));
  SuspendLink(*pair.primary);
  REQUIRE(MirrorPartitioned(pair));
  if (checker.TakeSnapshot("suspended")) ++*taken;
  ResumeLink(*pair.primary);
}

// Drops the link at a random moment (often mid-cycle) and reads the mirror while it is down.
void SnapshotDuringDrop(Pair& pair, DependentWriteChecker& checker, std::mt19937& random,
                        int* taken) {
  std::this_thread::sleep_for(std::chrono::milliseconds(100 + random() % 400));
  REQUIRE(WaitPairState(*pair.primary, "Consistent"));
  InjectFault(*pair.primary, v1::FAULT_DROP_LINK, 1500);
  REQUIRE(MirrorPartitioned(pair));
  if (checker.TakeSnapshot("link dropped")) ++*taken;
}

void RunChecker(Pair& pair, int suspends, int drops, uint32_t delay_ms) {
  DependentWriteChecker checker(pair);
  REQUIRE(WaitPairState(*pair.primary, "Consistent"));
  if (delay_ms != 0) InjectFault(*pair.primary, v1::FAULT_DELAY_RECORDS, delay_ms);
  checker.StartWriters(3);
  std::mt19937 random(42);
  int suspended = 0, dropped = 0;
  for (int i = 0; i < suspends; ++i) SnapshotWhileSuspended(pair, checker, random, &suspended);
  for (int i = 0; i < drops; ++i) SnapshotDuringDrop(pair, checker, random, &dropped);
  // After the last drop the link comes back by itself: the mirror catches up to Consistent
  // while the writers go on, and is checked once more.
  REQUIRE(WaitPairState(*pair.primary, "Consistent"));
  SnapshotWhileSuspended(pair, checker, random, &suspended);
  checker.StopWriters();
  if (delay_ms != 0) InjectFault(*pair.primary, v1::FAULT_DELAY_RECORDS, 0);

  INFO("writes: " << checker.writes() << ", snapshots while suspended: " << suspended
                  << ", during link drops: " << dropped);
  CHECK(checker.writes() > 100);
  CHECK(suspended >= suspends / 2 + 1);
  CHECK(dropped >= (drops + 1) / 2);
  const std::string verdict = checker.Verify();
  INFO(verdict);
  CHECK(verdict.empty());
  // Every snapshot is a cut through the running workload, not the empty volumes.
  for (const Snapshot& s : checker.snapshots()) CHECK(s.applied_sequence > 0);

  // Quiet: the last cycles drain and the mirror equals the primary.
  REQUIRE(MirrorCaughtUp(*pair.primary, *pair.mirror));
  CHECK(checker.MirrorEqualsPrimary());
}

TEST_CASE("async: the mirror is always a cycle boundary of the primary, across suspends",
          "[async]") {
  Pair pair = AsyncPair(100);
  RunChecker(pair, /*suspends=*/6, /*drops=*/0, /*delay_ms=*/0);
}

TEST_CASE("async: after link drops mid-cycle the mirror keeps its last whole cycle and catches up",
          "[async]") {
  Pair pair = AsyncPair(100);
  RunChecker(pair, /*suspends=*/2, /*drops=*/4, /*delay_ms=*/0);
  CHECK(pair.primary->Status().link().link_losses() >= 4);
  INFO("cycles the mirror dropped unfinished: "
       << pair.mirror->Status().cycles().cycles_discarded());
}

TEST_CASE("async: a slow link (every record delayed) keeps the mirror a cycle boundary",
          "[async]") {
  Pair pair = AsyncPair(100);
  RunChecker(pair, /*suspends=*/3, /*drops=*/2, /*delay_ms=*/20);
}

TEST_CASE("async checker: 30 suspends and 30 link drops under a slow link", "[async][soak]") {
  Pair pair = AsyncPair(100);
  RunChecker(pair, /*suspends=*/30, /*drops=*/30, /*delay_ms=*/10);
}

TEST_CASE("async: a mirror killed halfway through applying a cycle redoes it at restart",
          "[async][crash]") {
  Pair pair = AsyncPair(100);
  DependentWriteChecker checker(pair);
  REQUIRE(WaitPairState(*pair.primary, "Consistent"));
  checker.StartWriters(3);
  std::this_thread::sleep_for(std::chrono::milliseconds(300));
  InjectFault(*pair.mirror, v1::FAULT_CRASH_MID_APPLY);
  REQUIRE(pair.mirror->WaitExit(std::chrono::seconds(30)) == 128 + SIGKILL);
  // The primary must not reconnect yet: the restarted mirror shows what it recovered.
  SuspendLink(*pair.primary);
  pair.mirror->Start();
  const v1::StatusReply m = pair.mirror->Status();
  CHECK(m.cycles().mirror_consistent());
  CHECK(m.cycles().applied_cycle() > 0);
  const std::string log = ReadFile(pair.mirror->log_path());
  CHECK_THAT(log, Catch::Contains("killed halfway through applying cycle " +
                                  std::to_string(m.cycles().applied_cycle())));
  CHECK_THAT(log, Catch::Contains("redone from cache"));
  REQUIRE(checker.TakeSnapshot("restarted after a crash mid-apply"));

  ResumeLink(*pair.primary);
  REQUIRE(WaitPairState(*pair.primary, "Consistent"));
  std::this_thread::sleep_for(std::chrono::milliseconds(300));
  checker.StopWriters();
  const std::string verdict = checker.Verify();
  INFO(verdict);
  CHECK(verdict.empty());
  REQUIRE(MirrorCaughtUp(*pair.primary, *pair.mirror));
  CHECK(checker.MirrorEqualsPrimary());
}

TEST_CASE("async: swap while writes go on, and the new primary's cycles reach the old one",
          "[async][role]") {
  Pair pair = AsyncPair(100);
  Daemon& a = *pair.primary;
  Daemon& b = *pair.mirror;
  pair.CreateVolume("vol", 1 << 20);
  REQUIRE(WaitPairState(a, "Consistent"));
  for (uint64_t t = 0; t < 16; ++t) {
    REQUIRE(Write(a.host(), "vol", t * kTrack + 100, Pattern(3000, 10 + t)).status.ok());
  }
  v1::RoleChangeReply swap = RoleCall(b, "swap");
  CHECK(swap.role() == "primary");
  REQUIRE(WaitPairState(b, "Consistent"));
  CHECK(a.Status().role() == "mirror");
  WriteOutcome w = Write(b.host(), "vol", 3 * kTrack, Pattern(4000, 77));
  REQUIRE(w.status.ok());
  CHECK_FALSE(w.reply.mirrored());
  REQUIRE(MirrorCaughtUp(b, a));
  CHECK(Read(a.host(), "vol", 0, 1 << 20) == Read(b.host(), "vol", 0, 1 << 20));
  CHECK(CheckConsistency(b, "vol").consistent());
}

TEST_CASE("the crash fault is refused where no cycle is applied", "[async]") {
  Pair pair;
  grpc::ClientContext context;
  pair.mirror->Authorize(context);
  v1::InjectFaultRequest request;
  request.set_kind(v1::FAULT_CRASH_MID_APPLY);
  v1::InjectFaultReply reply;
  const grpc::Status s = pair.mirror->admin().InjectFault(&context, request, &reply);
  CHECK(s.error_code() == grpc::StatusCode::FAILED_PRECONDITION);
  CHECK_THAT(s.error_message(), Catch::Contains("only an async mirror applies cycles"));
}

}  // namespace
}  // namespace simarray::testing
