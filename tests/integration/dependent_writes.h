#pragma once
// The dependent-write checker of async mode (docs/async.md): writers stamp every block with
// the write that left it, each write issued after the writer's previous one was acked; a
// snapshot of an async target, read while its image is a cycle boundary, must equal the
// source's image as of the sequence the target says it applied through.
#include <algorithm>
#include <atomic>
#include <cstring>
#include <map>
#include <mutex>
#include <optional>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "daemon_process.h"

namespace simarray::testing {

inline constexpr uint64_t kTrack = 64 << 10;
inline constexpr uint64_t kBlock = 4096;

// --- the dependent-write checker -------------------------------------------------------------

// Every block a writer writes carries the write's tag (writer, count) in its first bytes
// and bytes derived from it in the rest, so a block read back names the write that left it
// and shows whether it is whole.
inline std::string StampBlocks(uint64_t tag, int volume, uint64_t first_block, uint64_t blocks) {
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
  static inline constexpr uint64_t kBlocks = kVolumeSize / kBlock;
  const std::string names[kVolumes] = {"dwa", "dwb"};

  // Writes go to `source`'s first host adaptor; snapshots read `mirror`, the target of an
  // async group that (directly or cascaded) mirrors the source's volumes `names`, which the
  // caller creates. `mirrored`: whether the writes' replies must say mirrored (a sync group
  // between them) or not (async only); nullopt: either (a sync group that may go down).
  DependentWriteChecker(Daemon& source, Daemon& mirror, std::optional<bool> mirrored)
      : source_(source), mirror_(mirror), mirrored_(mirrored) {}
  // A pair in async mode: its primary's volumes are created here.
  explicit DependentWriteChecker(Pair& pair)
      : DependentWriteChecker(*pair.primary, *pair.mirror, false) {
    for (const std::string& name : names) pair.CreateVolume(name, kVolumeSize);
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
          WriteOutcome out = Write(source_.host(), names[volume], first * kBlock,
                                   StampBlocks(tag, volume, first, blocks));
          if (!out.status.ok() || (mirrored_ && out.reply.mirrored() != *mirrored_)) {
            std::lock_guard<std::mutex> lock(mu_);
            failures_.push_back(!out.status.ok() ? out.status.error_message()
                                : *mirrored_     ? "a write said it was not mirrored"
                                                 : "an async write said it was mirrored");
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
    const v1::StatusReply before = mirror_.Status();
    if (!before.cycles().mirror_consistent()) return false;
    Snapshot s;
    s.why = why;
    s.applied_sequence = before.cycles().applied_sequence();
    for (const std::string& name : names) {
      s.volumes.push_back(Read(mirror_.host(), name, 0, kVolumeSize));
    }
    const v1::StatusReply after = mirror_.Status();
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
    for (const Snapshot& s : snapshots_) {
      if (std::string diff = VerifyOne(s); !diff.empty()) return diff;
    }
    return "";
  }

  // `s` equals the source's image as of the sequence it reports, block for block: the first
  // difference, or "". After StopWriters.
  std::string VerifyOne(const Snapshot& s) {
    std::lock_guard<std::mutex> lock(mu_);
    std::sort(writes_.begin(), writes_.end(),
              [](const StampedWrite& a, const StampedWrite& b) { return a.sequence < b.sequence; });
    std::map<uint64_t, uint64_t> sequence_of;
    for (const StampedWrite& w : writes_) sequence_of[w.tag] = w.sequence;
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
        const std::string want =
            expected[v][b] == 0 ? std::string(kBlock, '\0') : StampBlocks(expected[v][b], v, b, 1);
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
    return "";
  }

  // Writes refused once the source was demoted (a failover) are not failures of the test.
  void ForgiveFailures() {
    std::lock_guard<std::mutex> lock(mu_);
    failures_.clear();
  }

  // Reads the mirror's volumes whole (after a failover: the promoted image).
  std::vector<std::string> ReadMirror() {
    std::vector<std::string> volumes;
    for (const std::string& name : names)
      volumes.push_back(Read(mirror_.host(), name, 0, kVolumeSize));
    return volumes;
  }

  // After StopWriters, with no claim from the mirror: whether `volumes` is the source's
  // image as of some point of its history. That point can only be the newest write any
  // block holds (an older point lacks it; a newer one would show a later write, since every
  // write leaves its stamp). Sets `prefix` to it; returns the first difference, or "".
  std::string VerifyPrefix(const std::vector<std::string>& volumes, uint64_t* prefix) {
    std::map<uint64_t, uint64_t> sequence_of;
    {
      std::lock_guard<std::mutex> lock(mu_);
      for (const StampedWrite& w : writes_) sequence_of[w.tag] = w.sequence;
    }
    uint64_t newest = 0;
    for (int v = 0; v < kVolumes; ++v) {
      for (uint64_t b = 0; b < kBlocks; ++b) {
        uint64_t found = 0;
        std::memcpy(&found, volumes[v].data() + b * kBlock, 8);
        if (found == 0) continue;
        auto it = sequence_of.find(found);
        if (it == sequence_of.end()) {
          return "volume " + names[v] + " block " + std::to_string(b) + " holds write " +
                 std::to_string(found) + ", which no acknowledged write made";
        }
        newest = std::max(newest, it->second);
      }
    }
    *prefix = newest;
    Snapshot s{newest, "the image as of its newest write", volumes};
    return VerifyOne(s);
  }

  // Once everything is applied: the mirror equals the primary.
  bool MirrorEqualsPrimary() {
    for (const std::string& name : names) {
      if (Read(mirror_.host(), name, 0, kVolumeSize) !=
          Read(source_.host(), name, 0, kVolumeSize)) {
        return false;
      }
    }
    return true;
  }

 private:
  Daemon& source_;
  Daemon& mirror_;
  const std::optional<bool> mirrored_;
  std::atomic<bool> stop_{false};
  std::vector<std::thread> writers_;
  std::mutex mu_;
  std::vector<StampedWrite> writes_;
  std::vector<std::string> failures_;
  std::vector<Snapshot> snapshots_;
};

}  // namespace simarray::testing
