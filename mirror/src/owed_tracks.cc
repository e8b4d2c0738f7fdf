#include "simarray/mirror/owed_tracks.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "absl/strings/str_cat.h"

namespace simarray::mirror {

OwedTracks::~OwedTracks() {
  absl::MutexLock lock(&mu_);
  for (auto& [id, b] : volumes_) {
    if (b.bits != nullptr) munmap(b.bits, b.bytes);
  }
}

std::string OwedTracks::PathFor(uint32_t volume_id) const {
  return absl::StrCat(data_dir_, "/owed-", volume_id, ".bitmap");
}

absl::Status OwedTracks::AddVolume(uint32_t volume_id, uint64_t tracks) {
  const size_t bytes = std::max<size_t>((tracks + 7) / 8, 1);
  const std::string path = PathFor(volume_id);
  int fd = open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
  if (fd < 0) return absl::InternalError(absl::StrCat("open ", path, ": ", strerror(errno)));
  if (ftruncate(fd, static_cast<off_t>(bytes)) != 0) {
    close(fd);
    return absl::InternalError(absl::StrCat("size ", path, ": ", strerror(errno)));
  }
  void* addr = mmap(nullptr, bytes, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
  close(fd);
  if (addr == MAP_FAILED) {
    return absl::InternalError(absl::StrCat("mmap ", path, ": ", strerror(errno)));
  }
  absl::MutexLock lock(&mu_);
  auto [it, inserted] = volumes_.try_emplace(volume_id);
  if (!inserted) {
    munmap(addr, bytes);
    return absl::OkStatus();
  }
  Bitmap& b = it->second;
  b.bits = static_cast<uint8_t*>(addr);
  b.bytes = bytes;
  b.tracks = tracks;
  for (uint64_t t = 0; t < tracks; ++t) {
    if (b.bits[t / 8] & (1u << (t % 8))) {
      ++b.set;
      resync_.emplace(volume_id, t);
    }
  }
  if (b.set != 0) ResyncChangedLocked();
  return absl::OkStatus();
}

void OwedTracks::DropVolume(uint32_t volume_id) {
  absl::MutexLock lock(&mu_);
  auto it = volumes_.find(volume_id);
  if (it == volumes_.end()) return;
  munmap(it->second.bits, it->second.bytes);
  volumes_.erase(it);
  unlink(PathFor(volume_id).c_str());
  auto in_volume = [volume_id](const auto& p) { return p.first == volume_id; };
  std::erase_if(resync_, in_volume);
  std::erase_if(taken_, in_volume);
  std::erase_if(again_, in_volume);
  std::erase_if(latest_, [volume_id](const auto& p) { return p.first.volume_id == volume_id; });
  ResyncChangedLocked();
}

bool OwedTracks::TestLocked(cache::TrackKey key) {
  auto it = volumes_.find(key.volume_id);
  if (it == volumes_.end() || key.track >= it->second.tracks) return false;
  return it->second.bits[key.track / 8] & (1u << (key.track % 8));
}

void OwedTracks::SetLocked(cache::TrackKey key, bool value) {
  auto it = volumes_.find(key.volume_id);
  if (it == volumes_.end() || key.track >= it->second.tracks) return;
  Bitmap& b = it->second;
  uint8_t& byte = b.bits[key.track / 8];
  const uint8_t mask = 1u << (key.track % 8);
  const bool was = byte & mask;
  if (was == value) return;
  byte = value ? (byte | mask) : (byte & ~mask);
  value ? ++b.set : --b.set;
}

void OwedTracks::MarkWritten(cache::TrackKey key, uint64_t sequence) {
  absl::MutexLock lock(&mu_);
  SetLocked(key, true);
  latest_[key] = sequence;
}

void OwedTracks::Acked(cache::TrackKey key, uint64_t sequence, bool resync) {
  absl::MutexLock lock(&mu_);
  const std::pair<uint32_t, uint64_t> k{key.volume_id, key.track};
  if (resync) {
    taken_.erase(k);
    ResyncChangedLocked();
    if (again_.erase(k)) return;  // written again while in flight: shipped whole again
    if (resync_.erase(k)) ++tracks_resynced_;
  } else if (resync_.count(k)) {
    return;  // still to be shipped whole
  }
  auto it = latest_.find(key);
  // A newer write is pending (queued or in a cycle): the bit stays until it is acked.
  if (it != latest_.end() && it->second > sequence) return;
  if (it != latest_.end()) latest_.erase(it);
  SetLocked(key, false);
}

void OwedTracks::NeedResync(cache::TrackKey key) {
  absl::MutexLock lock(&mu_);
  SetLocked(key, true);
  const std::pair<uint32_t, uint64_t> k{key.volume_id, key.track};
  resync_.insert(k);
  if (taken_.count(k)) again_.insert(k);
  ResyncChangedLocked();
}

void OwedTracks::NeedResyncAll(uint32_t volume_id, const std::vector<uint64_t>& tracks) {
  absl::MutexLock lock(&mu_);
  for (uint64_t t : tracks) {
    SetLocked(cache::TrackKey{volume_id, t}, true);
    resync_.emplace(volume_id, t);
    if (taken_.count({volume_id, t})) again_.emplace(volume_id, t);
  }
  ResyncChangedLocked();
}

std::vector<cache::TrackKey> OwedTracks::TakeResync(size_t max) {
  std::vector<cache::TrackKey> out;
  absl::MutexLock lock(&mu_);
  for (const auto& k : resync_) {
    if (out.size() >= max) break;
    if (taken_.count(k)) continue;
    taken_.insert(k);
    out.push_back(cache::TrackKey{k.first, k.second});
  }
  return out;
}

void OwedTracks::UntakeAll() {
  absl::MutexLock lock(&mu_);
  taken_.clear();
  again_.clear();
  ResyncChangedLocked();
}

std::vector<cache::TrackKey> OwedTracks::ListOwed() {
  std::vector<cache::TrackKey> out;
  absl::MutexLock lock(&mu_);
  for (const auto& [id, b] : volumes_) {
    for (uint64_t t = 0; t < b.tracks; ++t) {
      if (b.bits[t / 8] & (1u << (t % 8))) out.push_back(cache::TrackKey{id, t});
    }
  }
  return out;
}

void OwedTracks::ClearAll() {
  absl::MutexLock lock(&mu_);
  for (auto& [id, b] : volumes_) {
    std::memset(b.bits, 0, b.bytes);
    b.set = 0;
  }
  latest_.clear();
  resync_.clear();
  taken_.clear();
  again_.clear();
  ResyncChangedLocked();
}

void OwedTracks::SetResyncEvent(EventCount* changed) {
  absl::MutexLock lock(&mu_);
  resync_event_ = changed;
}

void OwedTracks::ResyncChangedLocked() {
  if (resync_event_ != nullptr) resync_event_->Notify();
}

uint64_t OwedTracks::owed() {
  absl::MutexLock lock(&mu_);
  uint64_t n = 0;
  for (const auto& [id, b] : volumes_) n += b.set;
  return n;
}

uint64_t OwedTracks::owed(uint32_t volume_id) {
  absl::MutexLock lock(&mu_);
  auto it = volumes_.find(volume_id);
  return it == volumes_.end() ? 0 : it->second.set;
}

uint64_t OwedTracks::resync_pending() {
  absl::MutexLock lock(&mu_);
  return resync_.size();
}

bool OwedTracks::resyncing() {
  absl::MutexLock lock(&mu_);
  return !resync_.empty();
}

uint64_t OwedTracks::tracks_resynced() {
  absl::MutexLock lock(&mu_);
  return tracks_resynced_;
}

}  // namespace simarray::mirror
