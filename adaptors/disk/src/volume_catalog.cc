#include "simarray/disk/volume_catalog.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <fstream>
#include <limits>
#include <sstream>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "simarray/base/state_file.h"

namespace simarray::disk {
namespace {

absl::Status ErrnoStatus(const std::string& what) {
  return absl::InternalError(absl::StrCat(what, ": ", std::strerror(errno)));
}

constexpr const char* kCatalogFile = "volumes.tsv";
constexpr const char* kNoGroup = "-";  // the group column of a volume in none

}  // namespace

Volume::~Volume() {
  if (fd >= 0) close(fd);
  if (direct_fd >= 0) close(direct_fd);
}

bool ValidVolumeName(const std::string& name) {
  if (name.empty() || name.size() > 64) return false;
  for (char c : name) {
    if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_' || c == '-')) return false;
  }
  return true;
}

std::string VolumeCatalog::PathFor(uint32_t id) const {
  return absl::StrCat(data_dir_, "/vol-", id, ".img");
}

absl::StatusOr<std::unique_ptr<VolumeCatalog>> VolumeCatalog::Open(std::string data_dir,
                                                                   uint32_t track_size) {
  std::unique_ptr<VolumeCatalog> catalog(new VolumeCatalog(std::move(data_dir), track_size));
  std::ifstream in(absl::StrCat(catalog->data_dir_, "/", kCatalogFile));
  std::string line;
  absl::MutexLock lock(&catalog->mu_);
  while (std::getline(in, line)) {
    std::istringstream fields(line);
    VolumeInfo info;
    int paired = 0;
    if (!(fields >> info.id >> info.name >> info.size >> paired)) continue;
    info.paired = paired != 0;
    // The group column: none for "default" (a catalog from before RDF groups has none, and
    // all its volumes were mirrored by the single-peer form's group, "default").
    if (!(fields >> info.group)) info.group = "default";
    if (info.group == kNoGroup) info.group.clear();
    auto volume = catalog->OpenBacking(info);
    if (!volume.ok()) return volume.status();
    catalog->volumes_[info.name] = Entry{info, *volume};
  }
  return catalog;
}

absl::StatusOr<std::shared_ptr<Volume>> VolumeCatalog::OpenBacking(const VolumeInfo& info) {
  std::string path = PathFor(info.id);
  int fd = open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
  if (fd < 0) return ErrnoStatus(absl::StrCat("open ", path));
  if (ftruncate(fd, static_cast<off_t>(info.size)) != 0) {
    const int error = errno;
    close(fd);
    if (error == EFBIG || error == EINVAL) {
      // The file system under data_dir holds no file that big (ext4: 16 TiB with 4 KiB
      // blocks): a request this array cannot serve, not a failure of it.
      return absl::InvalidArgumentError(
          absl::StrCat("volume size ", info.size,
                       " bytes is more than the file system under data_dir holds in one file (",
                       std::strerror(error), "); choose a smaller size"));
    }
    errno = error;
    return ErrnoStatus(absl::StrCat("size ", path));
  }
  const int direct_fd = open(path.c_str(), O_RDWR | O_DIRECT | O_CLOEXEC);
  auto volume = std::make_shared<Volume>(info.name, info.id, info.size, fd, direct_fd);
  volume->groups = GroupBitsLocked(info.group);
  return volume;
}

bool InGroup(const VolumeInfo& volume, std::string_view group) {
  for (absl::string_view name : absl::StrSplit(volume.group, ',', absl::SkipEmpty())) {
    if (std::string_view(name.data(), name.size()) == group) return true;
  }
  return false;
}

std::string WithGroup(const std::string& groups, const std::string& group) {
  return groups.empty() ? group : absl::StrCat(groups, ",", group);
}

uint32_t VolumeCatalog::GroupBitsLocked(const std::string& groups) {
  if (groups.empty()) return 0;
  if (!resolver_) return 1;
  uint32_t bits = 0;
  for (absl::string_view name : absl::StrSplit(groups, ',', absl::SkipEmpty())) {
    bits |= resolver_(std::string(name));
  }
  return bits;
}

void VolumeCatalog::SetGroupResolver(GroupResolver resolver) {
  absl::MutexLock lock(&mu_);
  resolver_ = std::move(resolver);
  for (auto& [name, e] : volumes_) e.volume->groups = GroupBitsLocked(e.info.group);
}

absl::Status VolumeCatalog::SaveLocked() {
  std::string text;
  for (const auto& [name, e] : volumes_) {
    absl::StrAppend(&text, e.info.id, "\t", name, "\t", e.info.size, "\t", e.info.paired ? 1 : 0);
    // No group column means "default", so a single-peer array's catalog reads as it always did.
    if (e.info.group != "default") {
      absl::StrAppend(&text, "\t", e.info.group.empty() ? kNoGroup : e.info.group);
    }
    absl::StrAppend(&text, "\n");
  }
  // Written like data (docs/reliability.md, "State files"): the old catalog or the new one.
  return WriteFileAtomically(absl::StrCat(data_dir_, "/", kCatalogFile), text, 0644);
}

absl::StatusOr<VolumeInfo> VolumeCatalog::Create(const std::string& name, uint64_t size,
                                                 uint32_t id, bool paired, const std::string& group,
                                                 uint32_t first_id) {
  if (!ValidVolumeName(name)) {
    return absl::InvalidArgumentError(
        absl::StrCat("volume name must match [a-z0-9_-]{1,64}, got \"", name, "\""));
  }
  if (size == 0 || size % track_size_ != 0) {
    return absl::InvalidArgumentError(absl::StrCat(
        "volume size must be a non-zero multiple of the track size ", track_size_, ", got ", size));
  }
  absl::MutexLock lock(&mu_);
  if (volumes_.count(name)) {
    return absl::AlreadyExistsError(absl::StrCat("volume \"", name, "\" already exists"));
  }
  const bool high = id == kPickLocalId;
  // The range the id is picked from: [low, high_end).
  const uint32_t low = high ? kLocalIdBase : std::max<uint32_t>(first_id, 1);
  const uint32_t high_end = high ? UINT32_MAX : std::min(kLocalIdBase, low + kIdRange);
  uint32_t max_id = low - 1;
  for (const auto& [n, e] : volumes_) {
    if (id != 0 && e.info.id == id) {
      return absl::AlreadyExistsError(absl::StrCat("volume id ", id, " is taken by \"", n, "\""));
    }
    if (e.info.id >= low && e.info.id < high_end) max_id = std::max(max_id, e.info.id);
  }
  VolumeInfo info{name, id != 0 && !high ? id : max_id + 1, size, paired, group};
  // A stale file of a deleted volume with this id must not leak old data.
  unlink(PathFor(info.id).c_str());
  if (size > static_cast<uint64_t>(std::numeric_limits<off_t>::max())) {
    return absl::InvalidArgumentError(absl::StrCat(
        "volume size must be at most ", std::numeric_limits<off_t>::max(), " bytes, got ", size));
  }
  auto volume = OpenBacking(info);
  if (!volume.ok()) {
    unlink(PathFor(info.id).c_str());  // nothing of a refused volume is left behind
    return volume.status();
  }
  volumes_[name] = Entry{info, *volume};
  if (absl::Status s = SaveLocked(); !s.ok()) {
    volumes_.erase(name);
    return s;
  }
  return info;
}

absl::Status VolumeCatalog::Delete(const std::string& name) {
  absl::MutexLock lock(&mu_);
  auto it = volumes_.find(name);
  if (it == volumes_.end()) {
    return absl::NotFoundError(absl::StrCat("no volume \"", name, "\""));
  }
  uint32_t id = it->second.info.id;
  volumes_.erase(it);
  unlink(PathFor(id).c_str());
  return SaveLocked();
}

absl::Status VolumeCatalog::SetPaired(const std::string& name, bool paired) {
  absl::MutexLock lock(&mu_);
  auto it = volumes_.find(name);
  if (it == volumes_.end()) return absl::NotFoundError(absl::StrCat("no volume \"", name, "\""));
  it->second.info.paired = paired;
  return SaveLocked();
}

absl::Status VolumeCatalog::SetGroup(const std::string& name, const std::string& group) {
  absl::MutexLock lock(&mu_);
  auto it = volumes_.find(name);
  if (it == volumes_.end()) return absl::NotFoundError(absl::StrCat("no volume \"", name, "\""));
  const std::string before = it->second.info.group;
  it->second.info.group = group;
  if (absl::Status s = SaveLocked(); !s.ok()) {
    it->second.info.group = before;
    return s;
  }
  it->second.volume->groups = GroupBitsLocked(group);
  return absl::OkStatus();
}

absl::StatusOr<std::shared_ptr<Volume>> VolumeCatalog::Find(const std::string& name) {
  absl::MutexLock lock(&mu_);
  auto it = volumes_.find(name);
  if (it == volumes_.end()) return absl::NotFoundError(absl::StrCat("no volume \"", name, "\""));
  return it->second.volume;
}

std::shared_ptr<Volume> VolumeCatalog::FindById(uint32_t id) {
  absl::MutexLock lock(&mu_);
  for (const auto& [n, e] : volumes_) {
    if (e.info.id == id) return e.volume;
  }
  return nullptr;
}

std::vector<VolumeInfo> VolumeCatalog::List() {
  absl::MutexLock lock(&mu_);
  std::vector<VolumeInfo> out;
  for (const auto& [n, e] : volumes_) out.push_back(e.info);
  return out;
}

std::vector<std::shared_ptr<Volume>> VolumeCatalog::All() {
  absl::MutexLock lock(&mu_);
  std::vector<std::shared_ptr<Volume>> out;
  for (const auto& [n, e] : volumes_) out.push_back(e.volume);
  return out;
}

}  // namespace simarray::disk
