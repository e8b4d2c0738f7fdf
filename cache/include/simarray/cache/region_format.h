#pragma once
// On-media layout of the cache memory region (a memory-mapped file under data_dir, so that
// like battery-backed cache it survives a daemon crash):
//
//   [header, 4 KiB: RegionHeader, its shadow at 2 KiB]
//   [SlotEntry x slot_count][PenRecord x pen_records][pad][slots...]
//
// Every structure carries its own checksum so that a torn update is detected at recovery
// and never trusted. A slot entry is always written after the slot's data.

#include <cstdint>

namespace simarray::cache {

inline constexpr uint64_t kRegionMagic = 0x5941525241'4D4953ull;  // "SIMARRAY" little-endian
inline constexpr uint32_t kRegionFormatVersion = 1;
inline constexpr uint64_t kRegionHeaderBytes = 4096;
// A second copy of the header, written whole before every header update, so that a kill in
// the middle of one leaves a valid copy to open the region with.
inline constexpr uint64_t kShadowHeaderOffset = 2048;

enum class Role : uint32_t { kPrimary = 1, kMirror = 2 };

struct RegionHeader {
  uint64_t magic;
  uint32_t format_version;
  uint32_t track_size;
  uint64_t region_size;
  uint64_t slot_count;
  uint64_t pen_records;
  // Every sequence number handed out so far is below this mark (reserved in blocks).
  uint64_t sequence_high_water;
  // Data-generation id: changes when this side's data diverges from its peer's history.
  uint64_t generation;
  uint32_t role;
  uint32_t reserved;
  // The mirror's generation this primary last paired with (0: never). A mirror with another
  // generation has lost or never had this side's data: it gets an initial copy.
  uint64_t peer_generation;
  uint32_t unused;
  uint32_t checksum;  // Digest32 of the header with this field zero.
};
static_assert(sizeof(RegionHeader) <= kShadowHeaderOffset);

enum class SlotState : uint8_t {
  kFree = 0,
  kClean = 1,         // same as the backing file
  kWritePending = 2,  // committed, not yet destaged
  kStaging = 3,       // holds a portion of a write that is not committed (dropped at recovery)
};

inline constexpr uint8_t kSlotMirrorOwed = 1u << 0;
// On a kStaging entry: the commit of this portion into its track's image is under way (an
// in-place Publish). The entry's sequence is the write's, `write_id` holds the range
// (SealedRange) and `seal_image` the slot of the image being written; recovery copies the
// range into that image again unless the image already holds the sequence.
inline constexpr uint8_t kSlotSealedInPlace = 1u << 1;

struct SlotEntry {
  uint64_t sequence;  // sequence of the last write in the slot (0: staged from disk)
  uint64_t track;
  uint64_t write_id;  // for staging entries: the write the portion belongs to (or the range)
  uint32_t volume_id;
  uint8_t state;  // SlotState
  uint8_t flags;  // kSlot* bits
  uint16_t reserved;
  uint32_t seal_image;  // kSlotSealedInPlace: the image slot the range is being copied into
  uint32_t checksum;    // Digest32 of the entry with this field zero.
};
static_assert(sizeof(SlotEntry) == 40);

// The range of a kSlotSealedInPlace entry, packed into its write_id field.
inline uint64_t PackSealedRange(uint32_t offset, uint32_t length) {
  return (static_cast<uint64_t>(offset) << 32) | length;
}
inline uint32_t SealedOffset(const SlotEntry& e) { return static_cast<uint32_t>(e.write_id >> 32); }
inline uint32_t SealedLength(const SlotEntry& e) { return static_cast<uint32_t>(e.write_id); }

// A mirror request buffered in a holding pen kept in cache memory (holding_pen = "cache").
struct PenRecord {
  uint64_t write_id;
  uint64_t track;
  uint32_t volume_id;
  uint32_t slot;
  uint32_t offset;
  uint32_t length;
  uint32_t in_use;
  uint32_t checksum;  // Digest32 of the record with this field zero.
};
static_assert(sizeof(PenRecord) == 40);

}  // namespace simarray::cache
