#include "simarray/remote/gold_copy.h"

#include <algorithm>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "simarray/base/state_file.h"
#include "spdlog/spdlog.h"

namespace simarray::remote {
namespace {

constexpr char kMagic[] = "simarray-gold-v1";

// Room for `capacity` tracks of `track_size` bytes behind their headers.
uint64_t ChunkBytes(uint64_t capacity, uint32_t track_size) {
  return std::max<uint64_t>(capacity, 1) * (uint64_t{track_size} + 64);
}

}  // namespace

GoldCopy::GoldCopy(std::string dir, uint32_t track_size)
    : dir_(std::move(dir)), track_size_(track_size) {}

GoldCopy::~GoldCopy() = default;

absl::Status GoldCopy::OpenChunks(uint64_t capacity, bool keep) {
  std::error_code ec;
  std::filesystem::create_directories(dir_, ec);
  if (ec) return absl::InternalError(absl::StrCat("gold copy: create ", dir_, ": ", ec.message()));
  auto chunks = mirror::DeltaSetExtension::Open(ChunksPath(), ChunkBytes(capacity, track_size_),
                                                track_size_, keep);
  if (!chunks.ok()) return chunks.status();
  chunks_ = *std::move(chunks);
  return absl::OkStatus();
}

absl::StatusOr<bool> GoldCopy::Reload(bool consistent, uint64_t capacity) {
  if (std::filesystem::is_directory(dir_)) {
    // A Begin cut short by a crash may have left its state file's temporary.
    if (auto removed = RemoveStaleTempFiles(dir_); !removed.ok()) return removed.status();
  }
  std::ifstream file(StatePath());
  if (!file) {
    // No copy stood: chunks left by a copy dropped half way mean nothing.
    std::error_code ec;
    std::filesystem::remove(ChunksPath(), ec);
    return false;
  }
  if (consistent) {
    spdlog::info(
        "gold copy: the one left from before the stop is dropped: the cycle journal says the "
        "image is a cycle boundary");
    Drop("not needed");
    return false;
  }
  std::stringstream text;
  text << file.rdbuf();
  std::istringstream in(text.str());
  std::string magic, cycle_word, sequence_word, since_word;
  CycleMark mark;
  int64_t since_ms = 0;
  if (!(in >> magic >> cycle_word >> mark.cycle >> sequence_word >> mark.sequence >> since_word >>
        since_ms) ||
      magic != kMagic || cycle_word != "cycle" || sequence_word != "sequence" ||
      since_word != "since_unix_ms") {
    return absl::DataLossError(absl::StrCat(
        "gold copy ", StatePath(), " is malformed: expected \"", kMagic,
        " cycle C sequence S since_unix_ms T\"; move it away to start without the gold copy"));
  }
  mark.consistent = true;
  absl::MutexLock lock(&mu_);
  if (absl::Status s = OpenChunks(capacity, /*keep=*/true); !s.ok()) return s;
  std::vector<mirror::SpillHeader> headers;
  const std::vector<uint32_t> held = chunks_->Hold(mark.cycle, &headers);
  for (size_t i = 0; i < held.size(); ++i) {
    if (headers[i].sequence == mark.sequence) kept_[headers[i].key] = held[i];
  }
  mark_ = mark;
  since_ = absl::FromUnixMillis(since_ms);
  held_.store(true, std::memory_order_release);
  spdlog::warn(
      "gold copy: reloaded {} tracks; host reads and a failover see the image as of cycle {} "
      "(sequence {}) until a consistent cycle is applied",
      kept_.size(), mark.cycle, mark.sequence);
  return true;
}

absl::Status GoldCopy::Begin(CycleMark mark, uint64_t capacity) {
  absl::MutexLock lock(&mu_);
  if (held_.load()) return absl::OkStatus();
  if (absl::Status s = OpenChunks(capacity, /*keep=*/false); !s.ok()) return s;
  const absl::Time now = absl::Now();
  const std::string text =
      absl::StrCat(kMagic, "\ncycle ", mark.cycle, "\nsequence ", mark.sequence, "\nsince_unix_ms ",
                   absl::ToUnixMillis(now), "\n");
  if (absl::Status s = WriteFileAtomically(StatePath(), text, 0644); !s.ok()) {
    chunks_.reset();
    return s;
  }
  mark_ = mark;
  mark_.consistent = true;
  since_ = now;
  kept_.clear();
  ++taken_;
  held_.store(true, std::memory_order_release);
  spdlog::warn(
      "gold copy: taken of the image as of cycle {} (sequence {}); tracks are kept as they "
      "are first overwritten",
      mark.cycle, mark.sequence);
  return absl::OkStatus();
}

absl::Status GoldCopy::Keep(cache::TrackKey key, std::span<const uint8_t> image) {
  absl::MutexLock lock(&mu_);
  if (!held_.load() || kept_.contains(key)) return absl::OkStatus();
  const mirror::SpillHeader header{mark_.cycle, key, 0, static_cast<uint32_t>(image.size()),
                                   mark_.sequence};
  std::optional<uint32_t> chunk = chunks_->Put(header, image);
  if (!chunk) {
    return absl::ResourceExhaustedError(absl::StrCat(
        "gold copy: track ", key.track, " of volume ", key.volume_id, " cannot be kept (",
        ChunksPath(), " is full at ", chunks_->chunks(), " tracks or cannot be written)"));
  }
  kept_[key] = *chunk;
  return absl::OkStatus();
}

bool GoldCopy::Holds(cache::TrackKey key) const {
  absl::ReaderMutexLock lock(&mu_);
  return kept_.contains(key);
}

absl::StatusOr<bool> GoldCopy::Read(cache::TrackKey key, std::span<uint8_t> out) const {
  absl::ReaderMutexLock lock(&mu_);
  auto it = kept_.find(key);
  if (it == kept_.end()) return false;
  mirror::SpillHeader header;
  std::string bytes;
  if (absl::Status s = chunks_->Get(it->second, &header, &bytes); !s.ok()) return s;
  if (header.key != key || bytes.size() != out.size()) {
    return absl::DataLossError(absl::StrCat(
        "gold copy: chunk ", it->second, " holds track ", header.key.track, " of volume ",
        header.key.volume_id, ", not track ", key.track, " of volume ", key.volume_id));
  }
  std::memcpy(out.data(), bytes.data(), bytes.size());
  return true;
}

std::vector<cache::TrackKey> GoldCopy::Tracks() const {
  absl::ReaderMutexLock lock(&mu_);
  std::vector<cache::TrackKey> keys;
  keys.reserve(kept_.size());
  for (const auto& [key, chunk] : kept_) keys.push_back(key);
  return keys;
}

void GoldCopy::Drop(std::string_view why, uint64_t restored) {
  absl::MutexLock lock(&mu_);
  // The state file first: a crash after it finds no copy, and the chunks mean nothing.
  if (absl::Status s = RemoveFileDurably(StatePath()); !s.ok()) {
    spdlog::error("gold copy: {}", std::string(s.message()));
  }
  const bool was_held = held_.exchange(false);
  if (chunks_ != nullptr) chunks_->Clear();
  chunks_.reset();
  if (was_held) {
    ++dropped_;
    restored_ += restored;
    spdlog::warn("gold copy of cycle {} (sequence {}, {} tracks) dropped: {}", mark_.cycle,
                 mark_.sequence, kept_.size(), why);
  }
  kept_.clear();
  mark_ = {};
}

void GoldCopy::CountLost() {
  absl::MutexLock lock(&mu_);
  ++lost_;
}

CycleMark GoldCopy::mark() const {
  absl::ReaderMutexLock lock(&mu_);
  return mark_;
}

GoldCounters GoldCopy::Counters() const {
  absl::ReaderMutexLock lock(&mu_);
  GoldCounters c;
  c.on = true;
  c.held = held_.load();
  c.mark = mark_;
  c.since = since_;
  c.tracks = kept_.size();
  c.taken = taken_;
  c.dropped = dropped_;
  c.restored = restored_;
  c.lost = lost_;
  return c;
}

}  // namespace simarray::remote
