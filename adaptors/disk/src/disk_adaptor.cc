#include "simarray/disk/disk_adaptor.h"

#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <algorithm>
#include <map>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "simarray/base/digest.h"
#include "spdlog/spdlog.h"

namespace simarray::disk {
namespace {
constexpr size_t kDestageBatch = 64;
}

DiskAdaptor::DiskAdaptor(cache::CacheMemory* cache, VolumeCatalog* volumes)
    : cache_(cache), volumes_(volumes) {}

DiskAdaptor::~DiskAdaptor() { Stop(); }

void DiskAdaptor::Start() {
  thread_ = std::thread([this] { DestageLoop(); });
}

void DiskAdaptor::Stop() {
  stop_ = true;
  if (thread_.joinable()) thread_.join();
}

absl::Status DiskAdaptor::ReadTrack(cache::TrackKey key, std::span<uint8_t> out) {
  std::shared_ptr<Volume> volume = volumes_->FindById(key.volume_id);
  if (volume == nullptr) {
    std::memset(out.data(), 0, out.size());
    return absl::NotFoundError(absl::StrCat("no volume with id ", key.volume_id));
  }
  size_t done = 0;
  const off_t base = static_cast<off_t>(key.track * out.size());
  while (done < out.size()) {
    ssize_t n = pread(volume->fd, out.data() + done, out.size() - done, base + done);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      return absl::InternalError(
          absl::StrCat("read of track ", key.track, " of ", volume->name, ": ", strerror(errno)));
    }
    if (n == 0) {  // past the end of a short file: zeros
      std::memset(out.data() + done, 0, out.size() - done);
      break;
    }
    done += n;
  }
  tracks_staged_.fetch_add(1);
  return absl::OkStatus();
}

size_t DiskAdaptor::DestageBatch() {
  std::vector<cache::DirtyTrack> batch = cache_->TakeDirty(kDestageBatch);
  if (batch.empty()) return 0;
  std::map<uint32_t, std::shared_ptr<Volume>> touched;
  std::vector<bool> written(batch.size(), false);
  for (size_t i = 0; i < batch.size(); ++i) {
    cache::DirtyTrack& d = batch[i];
    auto [it, inserted] = touched.try_emplace(d.key.volume_id, nullptr);
    if (inserted) it->second = volumes_->FindById(d.key.volume_id);
    if (it->second == nullptr) {
      written[i] = true;  // volume deleted: nothing to keep
      continue;
    }
    std::span<const uint8_t> data = d.slot.data();
    const off_t at = static_cast<off_t>(d.key.track * data.size());
    size_t done = 0;
    while (done < data.size()) {
      ssize_t n = pwrite(it->second->fd, data.data() + done, data.size() - done, at + done);
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) break;
      done += n;
    }
    if (done == data.size()) {
      written[i] = true;
    } else {
      spdlog::error("disk adaptor: destage of track {} of {} failed: {}", d.key.track,
                    it->second->name, strerror(errno));
    }
  }
  for (auto& [id, volume] : touched) {
    if (volume != nullptr && fdatasync(volume->fd) != 0) {
      spdlog::error("disk adaptor: fdatasync of {} failed: {}", volume->name, strerror(errno));
    }
  }
  size_t count = 0;
  for (size_t i = 0; i < batch.size(); ++i) {
    if (written[i]) {
      cache_->MarkClean(batch[i].slot.slot(), batch[i].sequence);
      ++count;
    } else {
      cache_->Redirty(batch[i].slot.slot(), batch[i].sequence);
    }
  }
  tracks_destaged_.fetch_add(count);
  return count;
}

void DiskAdaptor::DestageLoop() {
  while (!stop_) {
    if (DestageBatch() == 0) absl::SleepFor(absl::Milliseconds(2));
  }
  while (DestageBatch() != 0) {
  }
}

absl::StatusOr<uint64_t> DiskAdaptor::Flush() {
  const uint64_t before = tracks_destaged_.load();
  if (!cache_->WaitDestaged(cache_->LastSequence(), absl::Now() + absl::Seconds(60))) {
    return absl::DeadlineExceededError("flush: write-pending tracks did not destage in 60 s");
  }
  for (const auto& volume : volumes_->All()) {
    if (fdatasync(volume->fd) != 0) {
      return absl::InternalError(
          absl::StrCat("fdatasync of ", volume->name, ": ", strerror(errno)));
    }
  }
  if (absl::Status s = cache_->region().Sync(); !s.ok()) return s;
  return tracks_destaged_.load() - before;
}

absl::Status DiskAdaptor::CorruptTrack(const std::string& name, uint64_t track) {
  auto volume = volumes_->Find(name);
  if (!volume.ok()) return volume.status();
  const uint32_t track_size = cache_->track_size();
  if (track >= (*volume)->size / track_size) {
    return absl::OutOfRangeError(absl::StrCat("track ", track, " is past the end of ", name, " (",
                                              (*volume)->size / track_size, " tracks)"));
  }
  if (auto flushed = Flush(); !flushed.ok()) return flushed.status();
  std::vector<uint8_t> garbage(track_size);
  for (size_t i = 0; i < garbage.size(); ++i) garbage[i] = static_cast<uint8_t>(i * 131 + 7);
  if (pwrite((*volume)->fd, garbage.data(), track_size, static_cast<off_t>(track * track_size)) !=
          static_cast<ssize_t>(track_size) ||
      fdatasync((*volume)->fd) != 0) {
    return absl::InternalError(absl::StrCat("corrupting track ", track, ": ", strerror(errno)));
  }
  return cache_->DropTrack(cache::TrackKey{(*volume)->id, track});
}

}  // namespace simarray::disk

namespace simarray::disk {

absl::StatusOr<uint64_t> DiskAdaptor::TrackDigest(cache::TrackKey key) {
  uint64_t sequence = 0;
  cache::SlotRef slot = cache_->PeekTrack(key, &sequence);
  if (slot.valid()) return Digest64(slot.data());
  std::vector<uint8_t> buffer(cache_->track_size());
  if (absl::Status s = ReadTrack(key, buffer); !s.ok()) return s;
  tracks_staged_.fetch_sub(1);  // not staged into cache, only read
  return Digest64(buffer);
}

absl::StatusOr<bool> DiskAdaptor::TrackHasData(cache::TrackKey key) {
  auto nonzero = [](std::span<const uint8_t> data) {
    return std::any_of(data.begin(), data.end(), [](uint8_t b) { return b != 0; });
  };
  uint64_t sequence = 0;
  cache::SlotRef slot = cache_->PeekTrack(key, &sequence);
  if (slot.valid()) return nonzero(slot.data());
  std::vector<uint8_t> buffer(cache_->track_size());
  if (absl::Status s = ReadTrack(key, buffer); !s.ok()) return s;
  tracks_staged_.fetch_sub(1);  // not staged into cache, only read
  return nonzero(buffer);
}

}  // namespace simarray::disk
