#pragma once
// VolumeCatalog: the volumes this daemon exports, each backed by a sparse file
// `vol-<id>.img` under data_dir. The list itself is kept in `volumes.tsv` (rewritten on
// every change with WriteFileAtomically, docs/reliability.md "State files"), so volumes
// survive restarts and crashes. Thread-safe.

#include <atomic>
#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"

namespace simarray::disk {

// An open volume. Shared: a volume deleted while a request uses it stays open until the
// request lets go. Immutable after creation but for `in_group`.
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
  // A member of an RDF group (docs/groups.md): its host writes are mirrored by the group's
  // source side. Kept by the catalog from VolumeInfo::group; read by every host write.
  std::atomic<bool> in_group{false};
};

struct VolumeInfo {
  std::string name;
  uint32_t id = 0;
  uint64_t size = 0;
  bool paired = false;
  // The RDF group the volume is in (docs/groups.md); empty: none, a local volume that is
  // never mirrored.
  std::string group;
};

class VolumeCatalog {
 public:
  static constexpr uint32_t kLocalIdBase = 1u << 30;
  static constexpr uint32_t kPickLocalId = UINT32_MAX;

  static absl::StatusOr<std::unique_ptr<VolumeCatalog>> Open(std::string data_dir,
                                                             uint32_t track_size);

  // INVALID_ARGUMENT for a bad name (must match [a-z0-9_-]{1,64}) or a size that is zero or
  // not a multiple of the track size; ALREADY_EXISTS for a taken name or id. `group` empty:
  // in no RDF group. `id` 0 picks the next free id from 1 (a twin takes its volume's id on
  // the peer); kPickLocalId the next free one from kLocalIdBase up, for a local volume made
  // on a group's target side, so it never takes an id the source gives a group volume.
  absl::StatusOr<VolumeInfo> Create(const std::string& name, uint64_t size, uint32_t id,
                                    bool paired, const std::string& group);
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
  absl::StatusOr<std::shared_ptr<Volume>> OpenBacking(const VolumeInfo& info);
  // Rewrites volumes.tsv from volumes_; the error names the file and the failed step.
  absl::Status SaveLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  const std::string data_dir_;
  const uint32_t track_size_;
  absl::Mutex mu_;
  std::map<std::string, Entry> volumes_ ABSL_GUARDED_BY(mu_);
};

// Checks a volume name against [a-z0-9_-]{1,64}.
bool ValidVolumeName(const std::string& name);

}  // namespace simarray::disk
