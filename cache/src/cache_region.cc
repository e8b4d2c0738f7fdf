#include "simarray/cache/cache_region.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstring>
#include <random>

#include "absl/strings/str_cat.h"
#include "simarray/base/digest.h"

namespace simarray::cache {
namespace {

constexpr uint64_t kPage = 4096;

uint64_t AlignUp(uint64_t v, uint64_t a) { return (v + a - 1) / a * a; }

template <typename T>
uint32_t ChecksumOf(T copy) {
  copy.checksum = 0;
  return Digest32({reinterpret_cast<const uint8_t*>(&copy), sizeof(copy)});
}

struct Layout {
  uint64_t entries_offset;
  uint64_t pen_offset;
  uint64_t slots_offset;
};

Layout LayoutFor(uint64_t slot_count, uint64_t pen_records) {
  Layout l;
  l.entries_offset = kRegionHeaderBytes;
  l.pen_offset = l.entries_offset + slot_count * sizeof(SlotEntry);
  l.slots_offset = AlignUp(l.pen_offset + pen_records * sizeof(PenRecord), kPage);
  return l;
}

absl::Status ErrnoStatus(const std::string& what) {
  return absl::InternalError(absl::StrCat(what, ": ", std::strerror(errno)));
}

}  // namespace

uint64_t CacheRegion::SlotCountFor(uint64_t size, uint32_t track_size, uint64_t pen_records) {
  uint64_t fixed = kRegionHeaderBytes + pen_records * sizeof(PenRecord) + kPage;
  if (size <= fixed || track_size == 0) return 0;
  return (size - fixed) / (track_size + sizeof(SlotEntry));
}

absl::StatusOr<std::unique_ptr<CacheRegion>> CacheRegion::Open(const RegionOptions& options,
                                                               bool* fresh) {
  uint64_t slot_count = SlotCountFor(options.size, options.track_size, options.pen_records);
  if (slot_count == 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("cache size ", options.size, " holds no slot of ", options.track_size));
  }
  std::unique_ptr<CacheRegion> region(new CacheRegion());
  region->path_ = options.path;
  region->size_ = options.size;
  *fresh = true;
  void* addr = nullptr;
  if (options.path.empty()) {
    addr = mmap(nullptr, options.size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (addr == MAP_FAILED) return ErrnoStatus("mmap anonymous cache");
  } else {
    int fd = open(options.path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
    if (fd < 0) return ErrnoStatus(absl::StrCat("open ", options.path));
    struct stat st;
    if (fstat(fd, &st) != 0) {
      close(fd);
      return ErrnoStatus(absl::StrCat("stat ", options.path));
    }
    if (st.st_size != 0 && static_cast<uint64_t>(st.st_size) != options.size) {
      close(fd);
      return absl::FailedPreconditionError(
          absl::StrCat("cache region ", options.path, " is ", st.st_size,
                       " bytes, config cache.size says ", options.size));
    }
    *fresh = st.st_size == 0;
    if (*fresh && ftruncate(fd, static_cast<off_t>(options.size)) != 0) {
      close(fd);
      return ErrnoStatus(absl::StrCat("size ", options.path));
    }
    // Every block of the region is allocated now: a region left sparse would take its blocks
    // as slots are first written, and on a full file system that page fault kills the
    // process (SIGBUS) instead of failing a write (docs/storage-faults.md). File systems
    // without fallocate keep the sparse file.
    if (int err = posix_fallocate(fd, 0, static_cast<off_t>(options.size));
        err != 0 && err != EOPNOTSUPP && err != EINVAL) {
      close(fd);
      if (*fresh) unlink(options.path.c_str());
      return absl::ResourceExhaustedError(
          absl::StrCat("cannot allocate the ", options.size, "-byte cache region ", options.path,
                       ": ", strerror(err), "; free space there or choose a smaller cache.size"));
    }
    addr = mmap(nullptr, options.size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    close(fd);
    if (addr == MAP_FAILED) return ErrnoStatus(absl::StrCat("mmap ", options.path));
  }
  region->base_ = static_cast<uint8_t*>(addr);
  region->header_ = reinterpret_cast<RegionHeader*>(region->base_);
  region->shadow_ = reinterpret_cast<RegionHeader*>(region->base_ + kShadowHeaderOffset);
  Layout layout = LayoutFor(slot_count, options.pen_records);
  region->entries_ = reinterpret_cast<SlotEntry*>(region->base_ + layout.entries_offset);
  region->pen_ = reinterpret_cast<PenRecord*>(region->base_ + layout.pen_offset);
  region->slots_ = region->base_ + layout.slots_offset;
  // An existing region that differs is refused below.
  region->track_size_ = options.track_size;
  region->slot_count_ = slot_count;
  region->pen_records_ = options.pen_records;

  RegionHeader& h = *region->header_;
  if (*fresh || h.magic == 0) {
    *fresh = true;
    std::memset(region->base_, 0, layout.slots_offset);
    h.magic = kRegionMagic;
    h.format_version = kRegionFormatVersion;
    h.track_size = options.track_size;
    h.region_size = options.size;
    h.slot_count = slot_count;
    h.pen_records = options.pen_records;
    h.sequence_high_water = 0;
    // A fresh region is a new data generation: random, so two formats never share one.
    std::random_device random;
    h.generation = (static_cast<uint64_t>(random()) << 32 | random()) | 1;
    h.peer_generation = 0;
    h.role = static_cast<uint32_t>(options.role);
    region->Commit(h);
    return region;
  }
  std::string where = absl::StrCat("cache region ", options.path);
  if (ChecksumOf(h) != h.checksum || h.magic != kRegionMagic) {
    // Killed in the middle of a header update: the shadow holds the header whole (it is
    // written completely before the header is touched).
    const RegionHeader& shadow = *region->shadow_;
    if (shadow.magic != kRegionMagic || ChecksumOf(shadow) != shadow.checksum) {
      return absl::DataLossError(absl::StrCat(
          where, h.magic != kRegionMagic ? ": bad magic" : ": header checksum mismatch"));
    }
    h = shadow;
  }
  if (h.format_version != kRegionFormatVersion) {
    return absl::FailedPreconditionError(absl::StrCat(where, ": format version ", h.format_version,
                                                      ", expected ", kRegionFormatVersion));
  }
  if (h.track_size != options.track_size) {
    return absl::FailedPreconditionError(absl::StrCat(
        where, ": made with track_size ", h.track_size, ", config says ", options.track_size));
  }
  if (h.pen_records != options.pen_records || h.slot_count != slot_count) {
    return absl::FailedPreconditionError(
        absl::StrCat(where, ": made with ", h.slot_count, " slots and ", h.pen_records,
                     " pen records, config gives ", slot_count, " and ", options.pen_records));
  }
  return region;
}

CacheRegion::~CacheRegion() {
  if (base_ != nullptr) munmap(base_, size_);
}

bool CacheRegion::ReadEntry(uint64_t slot, SlotEntry* entry) const {
  *entry = entries_[slot];
  return ChecksumOf(*entry) == entry->checksum;
}

void CacheRegion::WriteEntry(uint64_t slot, SlotEntry entry) {
  entry.checksum = ChecksumOf(entry);
  std::atomic_thread_fence(std::memory_order_release);
  entries_[slot] = entry;
}

bool CacheRegion::ReadPenRecord(uint64_t index, PenRecord* record) const {
  *record = pen_[index];
  return ChecksumOf(*record) == record->checksum;
}

void CacheRegion::WritePenRecord(uint64_t index, PenRecord record) {
  record.checksum = ChecksumOf(record);
  std::atomic_thread_fence(std::memory_order_release);
  pen_[index] = record;
}

void CacheRegion::Commit(RegionHeader header) {
  header.checksum = ChecksumOf(header);
  // The shadow first, whole; then the header. A kill tears at most one of them.
  *shadow_ = header;
  std::atomic_thread_fence(std::memory_order_release);
  *header_ = header;
}

void CacheRegion::SetSequenceHighWater(uint64_t mark) {
  RegionHeader h = *header_;
  h.sequence_high_water = mark;
  Commit(h);
}

void CacheRegion::SetGeneration(uint64_t generation) {
  RegionHeader h = *header_;
  h.generation = generation;
  Commit(h);
}

void CacheRegion::SetPeerGeneration(uint64_t generation) {
  RegionHeader h = *header_;
  h.peer_generation = generation;
  Commit(h);
}

void CacheRegion::SetRole(Role role) {
  RegionHeader h = *header_;
  h.role = static_cast<uint32_t>(role);
  Commit(h);
}

absl::Status CacheRegion::Sync() {
  if (path_.empty()) return absl::OkStatus();
  if (msync(base_, size_, MS_SYNC) != 0) return ErrnoStatus("msync cache region");
  return absl::OkStatus();
}

}  // namespace simarray::cache
