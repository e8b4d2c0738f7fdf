#pragma once
// DiskAdaptor: moves tracks between cache memory and the volumes' backing files. It stages
// tracks on a cache miss (the cache's BackingStore), destages write-pending track images in
// the background (only their dirty blocks, pwritev in file order, one fdatasync per volume
// per batch, then mark clean; woken by the cache, never polling), and serves Flush. Thread-safe;
// owns one destage thread, stopped by Stop() or the destructor.

#include <atomic>
#include <cstdint>
#include <memory>
#include <thread>

#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "simarray/cache/cache_memory.h"
#include "simarray/disk/disk_faults.h"
#include "simarray/disk/store_health.h"
#include "simarray/disk/volume_catalog.h"

namespace simarray::disk {

class BatchWriter;
struct WriteRun;

class DiskAdaptor : public cache::BackingStore {
 public:
  // Both borrowed; must outlive the adaptor.
  DiskAdaptor(cache::CacheMemory* cache, VolumeCatalog* volumes);
  ~DiskAdaptor() override;
  DiskAdaptor(const DiskAdaptor&) = delete;
  DiskAdaptor& operator=(const DiskAdaptor&) = delete;

  void Start();
  void Stop();

  // BackingStore: reads a whole track from the volume's backing file. NOT_FOUND for an
  // unknown volume id (a deleted volume reads as zeros in flight).
  absl::Status ReadTrack(cache::TrackKey key, std::span<uint8_t> out) override;
  // The same, for a read that goes around the cache (not counted as a stage): what a host
  // read of a track missing from cache gets when no slot can take it
  // (docs/storage-faults.md).
  absl::Status ReadUncached(cache::TrackKey key, std::span<uint8_t> out);

  // Destages every track image committed before the call, fdatasyncs the backing files and syncs
  // the cache region: what was acknowledged before survives a machine crash. Returns the number of
  // tracks destaged while it waited. Fails at once, with FailureStatus (UNAVAILABLE, or
  // RESOURCE_EXHAUSTED for a full disk), while a backing store it waits on is failing.
  absl::StatusOr<uint64_t> Flush();

  // What an NBD FLUSH, or a write with FUA, asks for: every write acknowledged before the call
  // survives a machine crash. With a persistent cache region (the array's battery-backed
  // cache) that only takes the region synced: nothing is destaged, no volume file synced.
  // Without one it is Flush(). docs/write-path.md, "What an acknowledgement means".
  absl::Status Persist();

  // Overwrites `track` of `volume` in the backing file with garbage after destaging it, and
  // drops its cached copy, so that the next read (and the consistency checker) sees it.
  absl::Status CorruptTrack(const std::string& volume, uint64_t track);

  // Digest of what a host read of the track returns (cache over disk), without staging it.
  absl::StatusOr<uint64_t> TrackDigest(cache::TrackKey key);

  // Whether a host read of the track returns anything but zeros (an initial copy ships only
  // such tracks).
  absl::StatusOr<bool> TrackHasData(cache::TrackKey key);

  // Ends the back-off after a failed destage: the next batch goes out now (a disk fault was
  // healed, space was freed).
  void RetryNow();

  // Faults armed on the backing files (the admin's disk-error and disk-full).
  DiskFaults& faults() { return faults_; }
  // Which backing files are failing (docs/storage-faults.md).
  StoreHealth& health() { return health_; }

  uint64_t tracks_destaged() const { return tracks_destaged_.load(); }
  uint64_t tracks_staged() const { return tracks_staged_.load(); }
  // Bytes written to backing files by the destage: only the dirty 4 KiB blocks of each image.
  uint64_t bytes_destaged() const { return bytes_destaged_.load(); }

 private:
  void DestageLoop();
  // Destages up to one batch; returns how many tracks it wrote, and in `failed` how many
  // went back in line (a write or fdatasync failed). A track is marked clean only once its
  // blocks were written and its volume synced; a volume whose write or sync failed goes into
  // the failed state (health()) until a later batch of it succeeds.
  size_t DestageBatch(size_t* failed = nullptr);
  // Beside each WriteRun of a batch: its volume, and the index into the batch of its first
  // track.
  struct RunSource {
    const Volume* volume;
    size_t first_track;
  };
  // Writes the runs (an armed write fault fails a run without writing it).
  void WriteRuns(std::span<WriteRun> runs, std::span<const RunSource> sources);
  // fdatasync of the volume's file (or the armed sync fault): 0 or the errno.
  int SyncVolume(const Volume& volume);
  // Record a volume's outcome in health_ and log the change; true if its state changed.
  bool ReportFailure(const Volume& volume, DiskOp op, int error);
  bool ReportSuccess(const Volume& volume);

  cache::CacheMemory* const cache_;
  // Stop() and RetryNow() end the back-off the destage waits out after a failed batch.
  absl::Mutex stop_mu_;
  absl::CondVar stop_cv_;
  bool stopping_ ABSL_GUARDED_BY(stop_mu_) = false;
  bool retry_now_ ABSL_GUARDED_BY(stop_mu_) = false;
  VolumeCatalog* const volumes_;
  std::unique_ptr<BatchWriter> writer_;  // the destage thread's
  DiskFaults faults_;
  StoreHealth health_;
  std::thread thread_;
  std::atomic<uint64_t> tracks_destaged_{0};
  std::atomic<uint64_t> tracks_staged_{0};
  std::atomic<uint64_t> bytes_destaged_{0};
};

// The destage's and the backing stores' figures (simarray/base/figures.h), in the cache
// section.
void Describe(DiskAdaptor& disk, FigureSink& sink);

}  // namespace simarray::disk
