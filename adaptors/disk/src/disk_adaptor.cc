#include "simarray/disk/disk_adaptor.h"

#include <sys/uio.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <climits>
#include <cstring>
#include <map>
#include <tuple>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "simarray/base/digest.h"
#include "simarray/disk/batch_writer.h"
#include "spdlog/spdlog.h"

namespace simarray::disk {
namespace {
// Images per destage batch: their writes go out in one submission and share one fdatasync.
constexpr size_t kDestageBatch = 256;
// How long the destage lets writes gather once one is waiting (unless a flush waits).
constexpr absl::Duration kDestageGather = absl::Milliseconds(20);
// After a batch whose writes failed: wait this long before the next, doubling up to the max.
constexpr absl::Duration kMinBackoff = absl::Milliseconds(2);
constexpr absl::Duration kMaxBackoff = absl::Seconds(1);
}  // namespace

DiskAdaptor::DiskAdaptor(cache::CacheMemory* cache, VolumeCatalog* volumes)
    : cache_(cache), volumes_(volumes), writer_(std::make_unique<BatchWriter>()) {}

DiskAdaptor::~DiskAdaptor() { Stop(); }

void DiskAdaptor::Start() {
  thread_ = std::thread([this] { DestageLoop(); });
}

void DiskAdaptor::Stop() {
  {
    absl::MutexLock lock(&stop_mu_);
    stopping_ = true;
    stop_cv_.SignalAll();
  }
  cache_->StopDirtyWaits();
  if (thread_.joinable()) thread_.join();
}

void DiskAdaptor::RetryNow() {
  absl::MutexLock lock(&stop_mu_);
  retry_now_ = true;
  stop_cv_.SignalAll();
}

absl::Status DiskAdaptor::ReadTrack(cache::TrackKey key, std::span<uint8_t> out) {
  absl::Status read = ReadUncached(key, out);
  if (read.ok()) tracks_staged_.fetch_add(1);
  return read;
}

absl::Status DiskAdaptor::ReadUncached(cache::TrackKey key, std::span<uint8_t> out) {
  std::shared_ptr<Volume> volume = volumes_->FindById(key.volume_id);
  if (volume == nullptr) {
    std::memset(out.data(), 0, out.size());
    return absl::NotFoundError(absl::StrCat("no volume with id ", key.volume_id));
  }
  if (const int injected = faults_.Take(volume->id, DiskOp::kRead); injected != 0) {
    return absl::UnavailableError(
        absl::StrCat("read of track ", key.track, " of ", volume->name, ": ", strerror(injected)));
  }
  size_t done = 0;
  const off_t base = static_cast<off_t>(key.track * out.size());
  // A track that is a hole of the sparse file reads as zeros without a pread: reading a hole
  // would make the kernel allocate and zero page-cache pages for it, which on a large, mostly
  // unwritten volume costs more than the write that caused the miss.
  if (const off_t data = lseek(volume->fd, base, SEEK_DATA);
      (data < 0 && errno == ENXIO) || data >= base + static_cast<off_t>(out.size())) {
    std::memset(out.data(), 0, out.size());
    done = out.size();
  }
  while (done < out.size()) {
    ssize_t n = pread(volume->fd, out.data() + done, out.size() - done, base + done);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      return absl::UnavailableError(
          absl::StrCat("read of track ", key.track, " of ", volume->name, ": ", strerror(errno)));
    }
    if (n == 0) {  // past the end of a short file: zeros
      std::memset(out.data() + done, 0, out.size() - done);
      break;
    }
    done += n;
  }
  return absl::OkStatus();
}

size_t DiskAdaptor::DestageBatch(size_t* failed_count) {
  std::vector<cache::DirtyTrack> batch = cache_->TakeDirty(kDestageBatch);
  if (batch.empty()) return 0;
  // In file order, so that dirty ranges that meet across a track boundary go out as one
  // pwritev.
  std::sort(batch.begin(), batch.end(), [](const cache::DirtyTrack& a, const cache::DirtyTrack& b) {
    return std::tie(a.key.volume_id, a.key.track) < std::tie(b.key.volume_id, b.key.track);
  });
  const uint32_t track_size = cache_->track_size();
  // Every volume the batch touches, and the first write or sync of it that failed.
  struct Touched {
    std::shared_ptr<Volume> volume;  // null: deleted, nothing to keep
    DiskOp op = DiskOp::kWrite;
    int error = 0;
  };
  std::map<uint32_t, Touched> touched;
  // Runs: adjacent dirty ranges of consecutive tracks, each written with one request.
  std::vector<WriteRun> runs;
  // Beside each run: its volume, and the index into batch of its first track.
  std::vector<RunSource> sources;
  for (size_t i = 0; i < batch.size(); ++i) {
    cache::DirtyTrack& d = batch[i];
    auto [it, inserted] = touched.try_emplace(d.key.volume_id);
    if (inserted) it->second.volume = volumes_->FindById(d.key.volume_id);
    const Volume* volume = it->second.volume.get();
    if (volume == nullptr) continue;
    const off_t base = static_cast<off_t>(d.key.track * track_size);
    std::span<const uint8_t> data = d.slot.data();
    for (const cache::TrackRange& r : d.Ranges(track_size)) {
      const off_t at = base + r.offset;
      if (runs.empty() || sources.back().volume != volume ||
          runs.back().at + static_cast<off_t>(runs.back().bytes) != at) {
        // Dirty ranges are whole 4 KiB blocks of page-aligned slots: fit for O_DIRECT. Should
        // the file system still refuse it, the buffered descriptor does the same job.
        WriteRun run;
        run.fd = volume->direct_fd >= 0 ? volume->direct_fd : volume->fd;
        run.fallback_fd = volume->direct_fd >= 0 ? volume->fd : -1;
        run.at = at;
        runs.push_back(std::move(run));
        sources.push_back(RunSource{volume, i});
      }
      runs.back().iov.push_back(iovec{const_cast<uint8_t*>(data.data()) + r.offset, r.length});
      runs.back().bytes += r.length;
    }
  }
  WriteRuns(runs, sources);
  // A track whose ranges did not all reach the file goes back in line.
  std::vector<bool> failed(batch.size(), false);
  uint64_t bytes = 0;
  for (size_t k = 0; k < runs.size(); ++k) {
    if (runs[k].error == 0) {
      bytes += runs[k].bytes;
      continue;
    }
    // The run covers its first track to the next run's first track (a run that crosses a
    // track boundary covers both).
    const size_t last = k + 1 < runs.size() ? sources[k + 1].first_track : batch.size() - 1;
    for (size_t i = sources[k].first_track; i <= last; ++i) failed[i] = true;
    Touched& t = touched[sources[k].volume->id];
    if (t.error == 0) t.error = runs[k].error;
  }
  // The images are not read again: writes may go into them in place while the sync runs.
  cache_->DestageWritten(batch);
  for (auto& [id, t] : touched) {
    if (t.volume == nullptr) continue;
    // A volume whose write failed is synced too: its other runs' tracks may still be clean.
    if (const int error = SyncVolume(*t.volume); error != 0) {
      t.op = DiskOp::kSync;
      t.error = error;
    } else if (t.error == 0) {
      t.op = DiskOp::kWrite;
    }
  }
  size_t count = 0;
  for (size_t i = 0; i < batch.size(); ++i) {
    const Touched& t = touched[batch[i].key.volume_id];
    // A sync that failed leaves every write of its volume in doubt since the last good one:
    // those tracks were all in this batch, so all of them stay write-pending.
    const bool unsynced = t.error != 0 && t.op == DiskOp::kSync;
    if (!failed[i] && !unsynced) {
      cache_->MarkClean(batch[i].slot.slot(), batch[i].sequence);
      ++count;
    } else {
      cache_->Redirty(batch[i].slot.slot());
    }
  }
  tracks_destaged_.fetch_add(count);
  bytes_destaged_.fetch_add(bytes);
  bool changed = false;
  for (const auto& [id, t] : touched) {
    if (t.volume == nullptr) continue;
    changed |= t.error != 0 ? ReportFailure(*t.volume, t.op, t.error) : ReportSuccess(*t.volume);
  }
  if (changed) cache_->SetDestageError(health_.Verdict());
  if (failed_count != nullptr) *failed_count = batch.size() - count;
  return count;
}

void DiskAdaptor::WriteRuns(std::span<WriteRun> runs, std::span<const RunSource> sources) {
  // A run of a volume with an armed write fault fails unwritten; the others go out in as
  // few submissions as the faulted ones leave (one, when nothing is armed).
  size_t from = 0;
  for (size_t k = 0; k <= runs.size(); ++k) {
    const int injected = k < runs.size() ? faults_.Take(sources[k].volume->id, DiskOp::kWrite) : 0;
    if (k < runs.size() && injected == 0) continue;
    if (k > from) writer_->Write(runs.subspan(from, k - from));
    if (k < runs.size()) runs[k].error = injected;
    from = k + 1;
  }
}

int DiskAdaptor::SyncVolume(const Volume& volume) {
  if (const int injected = faults_.Take(volume.id, DiskOp::kSync); injected != 0) return injected;
  return fdatasync(volume.fd) == 0 ? 0 : errno;
}

bool DiskAdaptor::ReportFailure(const Volume& volume, DiskOp op, int error) {
  const StoreFailure f = health_.Failed(volume.id, volume.name, op, error);
  // The first failure, then one line a minute or so (the retries back off to a second).
  if (f.failures == 1) {
    spdlog::error("disk adaptor: {}; {} of its tracks are write-pending",
                  std::string(FailureStatus(f).message()), cache_->WritePendingOf(volume.id));
  } else if (f.failures % 64 == 0) {
    spdlog::warn("disk adaptor: backing store of {} still failing ({}: {}), {} attempts",
                 volume.name, DiskOpName(op), strerror(error), f.failures);
  }
  return true;
}

bool DiskAdaptor::ReportSuccess(const Volume& volume) {
  std::optional<StoreFailure> ended = health_.Recovered(volume.id);
  if (!ended) return false;
  spdlog::info("disk adaptor: backing store of {} recovered after {} failed attempt(s) over {}",
               volume.name, ended->failures, absl::FormatDuration(absl::Now() - ended->since));
  return true;
}

void DiskAdaptor::DestageLoop() {
  absl::Duration backoff = kMinBackoff;
  while (cache_->WaitDirty(kDestageGather, kDestageBatch)) {
    size_t failed = 0;
    while (DestageBatch(&failed) != 0 && failed == 0) {
    }
    // A volume deleted while its store failed has nothing left to destage: forget it.
    if (health_.Prune([&](uint32_t id) { return volumes_->FindById(id) != nullptr; })) {
      cache_->SetDestageError(health_.Verdict());
    }
    if (failed == 0) {
      backoff = kMinBackoff;
      continue;
    }
    // The disk is failing: the tracks went back in line, and retrying at once would spin.
    absl::MutexLock lock(&stop_mu_);
    if (!stopping_ && !retry_now_) stop_cv_.WaitWithTimeout(&stop_mu_, backoff);
    backoff = retry_now_ ? kMinBackoff : std::min(backoff * 2, kMaxBackoff);
    retry_now_ = false;
  }
  while (DestageBatch() != 0) {
  }
}

absl::StatusOr<uint64_t> DiskAdaptor::Flush() {
  const uint64_t before = tracks_destaged_.load();
  // A failing backing store fails the flush at once (its tracks stay in cache), rather
  // than after the whole wait.
  if (absl::Status s =
          cache_->WaitDestaged(cache_->LastSequence(), absl::Now() + absl::Seconds(60));
      !s.ok()) {
    if (absl::IsDeadlineExceeded(s)) {
      return absl::DeadlineExceededError("flush: write-pending tracks did not destage in 60 s");
    }
    return absl::Status(s.code(), absl::StrCat("flush: ", s.message()));
  }
  for (const auto& volume : volumes_->All()) {
    if (const int error = SyncVolume(*volume); error != 0) {
      StoreFailure f{volume->id, volume->name, DiskOp::kSync, error, 1, absl::Now()};
      return absl::Status(FailureStatus(f).code(),
                          absl::StrCat("flush: ", FailureStatus(f).message()));
    }
  }
  if (absl::Status s = cache_->region().Sync(); !s.ok()) return s;
  return tracks_destaged_.load() - before;
}

absl::Status DiskAdaptor::Persist() {
  if (!cache_->persistent()) return Flush().status();
  return cache_->region().Sync();
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
  if (absl::Status s = ReadUncached(key, buffer); !s.ok()) return s;
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
  if (absl::Status s = ReadUncached(key, buffer); !s.ok()) return s;
  return nonzero(buffer);
}

}  // namespace simarray::disk
