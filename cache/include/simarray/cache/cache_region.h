#pragma once
// CacheRegion: the mapped bytes of the cache memory and their on-media format
// (region_format.h). It knows where the header, slot table, pen records and slots are, and
// reads and writes entries with their checksums; it has no policy. Not thread-safe: the
// owner (CacheMemory) serialises entry writes; slot data may be touched concurrently for
// distinct slots.

#include <cstdint>
#include <memory>
#include <span>
#include <string>

#include "absl/status/statusor.h"
#include "simarray/cache/region_format.h"

namespace simarray::cache {

struct RegionOptions {
  std::string path;  // empty: anonymous memory, nothing survives the process
  uint64_t size = 0;
  uint32_t track_size = 0;
  uint64_t pen_records = 0;
  Role role = Role::kPrimary;
};

class CacheRegion {
 public:
  // Maps the region. A missing (or empty) file is created and formatted; an existing one must
  // carry the same format, track size, size and pen area, else FAILED_PRECONDITION says
  // which field differs. `fresh` tells whether the region was formatted now.
  static absl::StatusOr<std::unique_ptr<CacheRegion>> Open(const RegionOptions& options,
                                                           bool* fresh);
  ~CacheRegion();
  CacheRegion(const CacheRegion&) = delete;
  CacheRegion& operator=(const CacheRegion&) = delete;

  // Slots that fit in `size` after the header, slot table and pen records.
  static uint64_t SlotCountFor(uint64_t size, uint32_t track_size, uint64_t pen_records);

  // The geometry, fixed at Open. Read without any lock (SlotData, by whoever holds a slot):
  // copies, never the header, which Commit rewrites whole under the cache's lock.
  uint64_t slot_count() const { return slot_count_; }
  uint32_t track_size() const { return track_size_; }
  uint64_t pen_records() const { return pen_records_; }
  bool persistent() const { return !path_.empty(); }
  const RegionHeader& header() const { return *header_; }

  std::span<uint8_t> SlotData(uint64_t slot) {
    return {slots_ + slot * track_size_, track_size_};
  }

  // False when the entry's checksum does not match (a torn or never-written entry).
  bool ReadEntry(uint64_t slot, SlotEntry* entry) const;
  // Stamps the checksum and stores the entry after a release fence, so the slot's data is in
  // memory before an entry that describes it.
  void WriteEntry(uint64_t slot, SlotEntry entry);

  bool ReadPenRecord(uint64_t index, PenRecord* record) const;
  void WritePenRecord(uint64_t index, PenRecord record);

  void SetSequenceHighWater(uint64_t mark);
  void SetGeneration(uint64_t generation);
  void SetRole(Role role);
  void SetPeerGeneration(uint64_t generation);

  // msync of the whole region (survives a machine crash, not just a daemon crash).
  absl::Status Sync();

 private:
  CacheRegion() = default;
  // Writes `header` (checksum stamped) to the shadow, then to the header.
  void Commit(RegionHeader header);

  std::string path_;
  uint8_t* base_ = nullptr;
  uint64_t size_ = 0;
  RegionHeader* header_ = nullptr;
  RegionHeader* shadow_ = nullptr;
  SlotEntry* entries_ = nullptr;
  PenRecord* pen_ = nullptr;
  uint8_t* slots_ = nullptr;
  uint32_t track_size_ = 0;
  uint64_t slot_count_ = 0;
  uint64_t pen_records_ = 0;
};

}  // namespace simarray::cache
