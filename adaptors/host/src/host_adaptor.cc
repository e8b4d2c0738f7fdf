#include "simarray/host/host_adaptor.h"

#include <bit>
#include <cstring>
#include <optional>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"

namespace simarray::host {

const char* InvalidReasonName(InvalidReason reason) {
  switch (reason) {
    case InvalidReason::kCrcMismatch:
      return "crc_mismatch";
    case InvalidReason::kShortStream:
      return "short_stream";
    case InvalidReason::kLongStream:
      return "long_stream";
    case InvalidReason::kCancelled:
      return "cancelled";
    case InvalidReason::kResourceExhausted:
      return "resource_exhausted";
    case InvalidReason::kInjected:
      return "injected_corruption";
  }
  return "unknown";
}

HostAdaptor::HostAdaptor(HostAdaptorOptions options, ArrayParts parts)
    : options_(std::move(options)),
      parts_(std::move(parts)),
      pen_(options_.pen_placement, options_.pen_capacity, &parts_.cache->region(),
           options_.first_pen_record),
      pool_(options_.workers, 1 << 16) {}

HostAdaptor::~HostAdaptor() { pool_.Stop(); }

namespace {

// Checks [offset, offset + length) against a volume and the adaptor's limits.
absl::Status CheckRange(const disk::Volume& volume, uint64_t offset, uint64_t length,
                        uint64_t max_length) {
  if (length == 0) return absl::InvalidArgumentError("length must be at least 1 byte, got 0");
  if (length > max_length) {
    return absl::InvalidArgumentError(
        absl::StrCat("length ", length, " exceeds max_write ", max_length));
  }
  if (offset >= volume.size || length > volume.size - offset) {
    return absl::OutOfRangeError(absl::StrCat("range [", offset, ", ", offset + length,
                                              ") is outside volume \"", volume.name, "\" of ",
                                              volume.size, " bytes"));
  }
  return absl::OkStatus();
}

}  // namespace

absl::Status WouldWait(const char* what) {
  return absl::UnavailableError(absl::StrCat("would wait for ", what));
}

bool IsWouldWait(const absl::Status& status) {
  return absl::IsUnavailable(status) && absl::StartsWith(status.message(), "would wait for ");
}

absl::StatusOr<std::unique_ptr<HostWrite>> HostAdaptor::BeginWrite(const std::string& name,
                                                                   uint64_t offset, uint64_t length,
                                                                   uint32_t crc32c, Waits waits) {
  auto volume = parts_.volumes->Find(name);
  if (!volume.ok()) return volume.status();
  if (absl::Status s = CheckRange(**volume, offset, length, options_.max_write); !s.ok()) {
    return s;
  }
  if (parts_.admit_write) {
    if (absl::Status s = parts_.admit_write(**volume); !s.ok()) return s;
  }
  // A local volume's write has no mirror requests: no queue places, nothing in the pen.
  mirror::CommitPoint& commit = *parts_.commit;
  const uint32_t groups = (*volume)->groups.load(std::memory_order_relaxed) & commit.routes();
  if (waits == Waits::kNever && !parts_.cache->persistent()) return WouldWait("the destage");
  const uint64_t track_size = parts_.cache->track_size();
  const uint64_t portions = (offset + length - 1) / track_size - offset / track_size + 1;
  // One portion at most: a later portion's wait would come after an earlier one was penned.
  if (waits == Waits::kNever && portions > 1) return WouldWait("a write of several tracks");
  mirror::Reservations reservations;
  const bool now = waits == Waits::kNever;
  for (uint32_t bits = groups; bits != 0; bits &= bits - 1) {
    const int route = std::countr_zero(bits);
    auto r = commit.route(route).queue->Reserve(
        portions, now ? absl::InfinitePast() : absl::Now() + options_.wait_limit);
    if (now && absl::IsDeadlineExceeded(r.status())) return WouldWait("mirror queue places");
    if (!r.ok()) return r.status();
    reservations[route] = std::move(*r);
  }
  const uint64_t write_id =
      (static_cast<uint64_t>(options_.index) << 48) | next_write_.fetch_add(1);
  {
    absl::MutexLock lock(&mu_);
    ++counters_.writes;
  }
  return std::unique_ptr<HostWrite>(new HostWrite(this, *std::move(volume), offset, length, crc32c,
                                                  write_id, std::move(reservations), waits,
                                                  groups));
}

absl::Status HostAdaptor::Read(const std::string& name, uint64_t offset, uint64_t length,
                               std::string* out) {
  auto volume = parts_.volumes->Find(name);
  if (!volume.ok()) return volume.status();
  if (absl::Status s = CheckRange(**volume, offset, length, options_.max_write); !s.ok()) {
    return s;
  }
  const uint64_t track_size = parts_.cache->track_size();
  out->reserve(out->size() + length);
  std::optional<absl::ReaderMutexLock> image;
  if (parts_.image_lock != nullptr) image.emplace(parts_.image_lock);
  std::vector<uint8_t> around;  // a track read around the cache
  std::vector<uint8_t> gold;    // a track of the gold copy
  uint64_t pos = offset;
  const uint64_t end = offset + length;
  while (pos < end) {
    const uint64_t track = pos / track_size;
    const uint64_t in_track = pos % track_size;
    const uint64_t n = std::min(end - pos, track_size - in_track);
    const cache::TrackKey key{(*volume)->id, track};
    if (parts_.gold_image) {
      absl::StatusOr<bool> golden = parts_.gold_image(key, &gold);
      if (!golden.ok()) return golden.status();
      if (*golden) {
        out->append(reinterpret_cast<const char*>(gold.data()) + in_track, n);
        pos += n;
        continue;
      }
    }
    auto slot = parts_.cache->ReadTrack(key);
    if (absl::IsResourceExhausted(slot.status())) {
      // Every slot is write-pending and the destage is failing: the track is not in cache
      // (it would have been found), so the backing file has its current image.
      if (around.empty()) around.resize(track_size);
      if (absl::Status s = parts_.disk->ReadUncached(key, around); !s.ok()) return s;
      out->append(reinterpret_cast<const char*>(around.data()) + in_track, n);
      pos += n;
      continue;
    }
    if (!slot.ok()) return slot.status();
    out->append(reinterpret_cast<const char*>(slot->data().data()) + in_track, n);
    pos += n;
  }
  absl::MutexLock lock(&mu_);
  ++counters_.reads;
  counters_.bytes_read += length;
  return absl::OkStatus();
}

void HostAdaptor::CountInvalid(InvalidReason reason, uint64_t bytes) {
  absl::MutexLock lock(&mu_);
  ++counters_.invalid[static_cast<int>(reason)];
  counters_.bytes_invalid[static_cast<int>(reason)] += bytes;
}

void HostAdaptor::CountCommitted(uint64_t bytes) {
  absl::MutexLock lock(&mu_);
  ++counters_.writes_committed;
  counters_.bytes_written += bytes;
}

HostCounters HostAdaptor::Counters() {
  absl::MutexLock lock(&mu_);
  return counters_;
}

}  // namespace simarray::host
