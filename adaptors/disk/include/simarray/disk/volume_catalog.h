#pragma once
// VolumeCatalog: the volumes this daemon exports, each backed by a sparse file
// `vol-<id>.img` under data_dir. The list itself is kept in `volumes.tsv` (rewritten on
// every change with WriteFileAtomically, docs/reliability.md "State files"), so volumes
// survive restarts and crashes. Thread-safe.

#include <atomic>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"

namespace simarray::disk {

// An open volume. Shared: a volume deleted while a request uses it stays open until the
// request lets go. Immutable after creation but for `groups`.
struct Volume {
  Volume(std::string name, uint32_t id, uint64_t size, int fd, int direct_fd = -1)
      : name(std::move(name)), id(id), size(size), fd(fd), direct_fd(direct_fd) {}
  ~Volume();
  Volume(const Volume&) = delete;
  Volume& operator=(const Volume&) = delete;
  const std::string name;
  const uint32_t id;
  const uint64_t size;
  const int fd;
  // The same file opened with O_DIRECT, for the destage's block-aligned writes (-1 where the
  // file system refuses O_DIRECT). Going past the page cache keeps a 4 KiB destage from
  // dirtying a whole large folio of the file, which the kernel would then write back whole.
  const int direct_fd;
  // The RDF groups the volume is in (docs/groups.md), one bit per group of the array (the
  // array's group index); 0: a local volume, never mirrored. Kept by the catalog from
  // VolumeInfo::group through its group resolver; read by every host write.
  std::atomic<uint32_t> groups{0};
};

struct VolumeInfo {
  std::string name;
  uint32_t id = 0;
  uint64_t size = 0;
  bool paired = false;
  // The RDF groups the volume is in (docs/groups.md), comma-separated ("east,far" for a
  // concurrent volume, one that two groups mirror); empty: none, a local volume that is
  // never mirrored.
  std::string group;
};

// Whether `volume` is in RDF group `group` (one of the names in VolumeInfo::group).
bool InGroup(const VolumeInfo& volume, std::string_view group);
// VolumeInfo::group with `group` added.
std::string WithGroup(const std::string& groups, const std::string& group);

class VolumeCatalog {
 public:
  static constexpr uint32_t kLocalIdBase = 1u << 30;
  static constexpr uint32_t kPickLocalId = UINT32_MAX;

  static absl::StatusOr<std::unique_ptr<VolumeCatalog>> Open(std::string data_dir,
                                                             uint32_t track_size);

  // Volume::groups of a volume in RDF group `group` (not empty). Until one is set, every
  // group is bit 0.
  using GroupResolver = std::function<uint32_t(const std::string& group)>;
  // Sets the resolver and recomputes every volume's bits. The resolver must not call the
  // catalog.
  void SetGroupResolver(GroupResolver resolver);

  // INVALID_ARGUMENT for a bad name (must match [a-z0-9_-]{1,64}) or a size that is zero or
  // not a multiple of the track size; ALREADY_EXISTS for a taken name or id. `group` empty:
  // in no RDF group. `id` 0 picks the next free id from 1 (a twin takes its volume's id on
  // the peer); kPickLocalId the next free one from kLocalIdBase up, for a local volume made
  // on a group's target side, so it never takes an id the source gives a group volume.
  // `first_id` (with id 0): pick the next free id from there up to first_id + kIdRange, so
  // volumes of groups with different numbers never share an id (IdRangeOf).
  absl::StatusOr<VolumeInfo> Create(const std::string& name, uint64_t size, uint32_t id,
                                    bool paired, const std::string& group, uint32_t first_id = 1);
  // Where the ids of volumes created in RDF group number `number` (1 to 250) start: 1 for
  // group 1 (the single-peer form's), (number - 1) * kIdRange above.
  static constexpr uint32_t kIdRange = 1u << 20;
  static uint32_t IdRangeOf(uint32_t number) { return number <= 1 ? 1 : (number - 1) * kIdRange; }
  // NOT_FOUND when there is no such volume. Removes the backing file.
  absl::Status Delete(const std::string& name);
  absl::Status SetPaired(const std::string& name, bool paired);
  // Moves a volume into RDF group `group` (empty: out of any); NOT_FOUND names the volume.
  absl::Status SetGroup(const std::string& name, const std::string& group);

  // NOT_FOUND names the volume.
  absl::StatusOr<std::shared_ptr<Volume>> Find(const std::string& name);
  std::shared_ptr<Volume> FindById(uint32_t id);
  std::vector<VolumeInfo> List();
  std::vector<std::shared_ptr<Volume>> All();

 private:
  struct Entry {
    VolumeInfo info;
    std::shared_ptr<Volume> volume;
  };
  VolumeCatalog(std::string data_dir, uint32_t track_size)
      : data_dir_(std::move(data_dir)), track_size_(track_size) {}
  std::string PathFor(uint32_t id) const;
  absl::StatusOr<std::shared_ptr<Volume>> OpenBacking(const VolumeInfo& info)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  uint32_t GroupBitsLocked(const std::string& group) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Rewrites volumes.tsv from volumes_; the error names the file and the failed step.
  absl::Status SaveLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  const std::string data_dir_;
  const uint32_t track_size_;
  absl::Mutex mu_;
  std::map<std::string, Entry> volumes_ ABSL_GUARDED_BY(mu_);
  GroupResolver resolver_ ABSL_GUARDED_BY(mu_);
};

// Checks a volume name against [a-z0-9_-]{1,64}.
bool ValidVolumeName(const std::string& name);

}  // namespace simarray::disk
