#pragma once
// HostAdaptor: a front-end port of the array. It owns a holding pen and runs the write path
// of docs/write-path.md for every host write that comes in on it, whatever the protocol:
//
//   BeginWrite  1. checks the request, reserves the write's places in the mirror queue and
//                  splits it into one portion per track;
//   Append      2. stages each portion's bytes into a cache slot of its own (invisible to
//                  readers), and 3. buffers the portion's mirror request in this pen;
//   Finish      4. determines validity from the bytes as they sit in cache, then
//               5. valid: commits (sequence, publish, pen -> mirror queue in one step) and,
//                  in sync mode, replies once the mirror acked every portion; or
//               6. invalid: deletes every request of the write from the pen, drops the
//                  staged bytes and replies with what was wrong.
//
// Thread-safe. Calls that may wait (queue places, cache slots, disk reads) are made from
// the adaptor's work pool, never from a gRPC reaction. A reaction may run a write itself
// with Waits::kNever: the write then takes nothing it would have to wait for, and says so
// (WouldWait) instead of waiting, and the reaction hands the write to the pool.

#include <atomic>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "simarray/base/delay_line.h"
#include "simarray/base/fault_injector.h"
#include "simarray/base/figures.h"
#include "simarray/base/histogram.h"
#include "simarray/base/work_pool.h"
#include "simarray/cache/cache_memory.h"
#include "simarray/disk/disk_adaptor.h"
#include "simarray/disk/volume_catalog.h"
#include "simarray/mirror/commit_point.h"
#include "simarray/mirror/holding_pen.h"
#include "simarray/mirror/mirror_queue.h"

namespace simarray::host {

// kResourceExhausted: no pen place or cache slot came within the wait limit
// (host_wait_ms), so the write could not be held whole (its bytes were never validated).
enum class InvalidReason {
  kCrcMismatch,
  kShortStream,
  kLongStream,
  kCancelled,
  kInjected,
  kResourceExhausted
};
const char* InvalidReasonName(InvalidReason reason);
inline constexpr int kInvalidReasons = 6;

// Whether a write may wait for queue places, cache slots and disk reads.
enum class Waits { kAllowed, kNever };
// What a Waits::kNever write returns when it would have had to wait (UNAVAILABLE); and
// whether a status is that. The write did nothing visible: Abandon it and run it again with
// waits allowed.
absl::Status WouldWait(const char* what);
bool IsWouldWait(const absl::Status& status);

struct WriteResult {
  uint64_t sequence = 0;
  bool mirrored = false;
  uint32_t portions = 0;
};
// Runs once per write, possibly on a remote adaptor thread; must not block.
using WriteDone = std::function<void(absl::StatusOr<WriteResult>)>;

struct HostCounters {
  uint64_t writes = 0;
  uint64_t writes_committed = 0;
  uint64_t invalid[kInvalidReasons] = {};
  uint64_t bytes_invalid[kInvalidReasons] = {};  // bytes received of writes refused
  uint64_t bytes_written = 0;
  uint64_t reads = 0;
  uint64_t bytes_read = 0;
};
// The counters as figures (simarray/base/figures.h), in a host adaptor's section.
void Describe(const HostCounters& counters, FigureSink& sink);

// What every host adaptor of a daemon shares. All borrowed; must outlive the adaptors.
struct ArrayParts {
  cache::CacheMemory* cache = nullptr;
  disk::VolumeCatalog* volumes = nullptr;
  disk::DiskAdaptor* disk = nullptr;
  // Its routes are the RDF groups' mirror queues and cycles: a volume in no routed group
  // (Volume::groups) is local, nothing of its writes is mirrored.
  mirror::CommitPoint* commit = nullptr;
  FaultInjector* faults = nullptr;
  // Held shared while a read copies, so it never sees half of an async cycle being applied
  // (RecordApplier::image_lock). May be null.
  absl::Mutex* image_lock = nullptr;
  // Under the image lock: the image a host read sees of a track instead of the cache's, into
  // `track` (made a whole track) — an async mirror's gold copy while a resync overwrites its
  // image (docs/async.md, "Gold copy"). Returns false, `track` untouched, for the cache's.
  // Unset: always the cache's.
  std::function<absl::StatusOr<bool>(cache::TrackKey key, std::vector<uint8_t>* track)> gold_image;
  // Whether a host write to `volume` may begin now: FAILED_PRECONDITION for a volume of a
  // group whose target this array is, UNAVAILABLE while link.policy = "fail" holds its
  // group's writes. Unset: yes.
  std::function<absl::Status(const disk::Volume& volume)> admit_write;
  // Where the reply to a paced write waits out its delay (CommitPoint::TakePacingDelay,
  // docs/async.md "Write pacing"); it runs waiting replies at once when stopped. Null: no
  // write is paced.
  DelayLine* pacer = nullptr;
};

struct HostAdaptorOptions {
  std::string id;
  uint32_t index = 0;  // distinguishes write ids across adaptors
  uint64_t max_write = 32 << 20;
  mirror::PenPlacement pen_placement = mirror::PenPlacement::kLocal;
  size_t pen_capacity = 4096;
  uint64_t first_pen_record = 0;  // kCache: where this pen's records start in the region
  // Benchmark only, UNSAFE (holding_pen = "bypass"): mirror requests skip the pen and go to
  // the mirror queue at commit, and step 4 checks lengths but not the CRC-32C, so a corrupt
  // write is committed and mirrored. Lets the benchmark measure what the pen costs.
  bool bypass_pen = false;
  size_t workers = 4;
  // How long a write waits for queue places or cache slots before failing.
  absl::Duration wait_limit = absl::Seconds(30);
};

class HostWrite;

class HostAdaptor {
 public:
  HostAdaptor(HostAdaptorOptions options, ArrayParts parts);
  ~HostAdaptor();
  HostAdaptor(const HostAdaptor&) = delete;
  HostAdaptor& operator=(const HostAdaptor&) = delete;

  const std::string& id() const { return options_.id; }
  uint64_t max_write() const { return options_.max_write; }
  WorkPool& pool() { return pool_; }
  mirror::HoldingPen& pen() { return pen_; }
  bool bypasses_pen() const { return options_.bypass_pen; }

  // Step 1. NOT_FOUND, OUT_OF_RANGE, INVALID_ARGUMENT (length 0 or over max_write),
  // FAILED_PRECONDITION (mirror role), DEADLINE_EXCEEDED (queue full too long).
  // With Waits::kNever also WouldWait: a write of more than one track, no queue place free
  // now, or a write-through cache (its ack waits for the destage).
  absl::StatusOr<std::unique_ptr<HostWrite>> BeginWrite(const std::string& volume, uint64_t offset,
                                                        uint64_t length, uint32_t crc32c,
                                                        Waits waits = Waits::kAllowed);

  // The bytes a host read returns: cache over disk. Appends to `out`.
  absl::Status Read(const std::string& volume, uint64_t offset, uint64_t length, std::string* out);

  HostCounters Counters();
  // Seconds from BeginWrite to the host's reply, of writes that committed (sync: acked by
  // the mirror or degraded).
  const Histogram& write_latency() const { return write_latency_; }

 private:
  friend class HostWrite;
  void CountInvalid(InvalidReason reason, uint64_t bytes) ABSL_LOCKS_EXCLUDED(mu_);
  void CountCommitted(uint64_t bytes) ABSL_LOCKS_EXCLUDED(mu_);

  const HostAdaptorOptions options_;
  const ArrayParts parts_;
  mirror::HoldingPen pen_;
  std::atomic<uint64_t> next_write_{1};
  absl::Mutex mu_;
  HostCounters counters_ ABSL_GUARDED_BY(mu_);
  Histogram write_latency_;
  WorkPool pool_;
};

// One host write in progress on a HostAdaptor (steps 2 to 6). Not thread-safe: one caller
// at a time (a stream's chunks arrive in order). Destroying an unfinished write drops it
// as cancelled.
class HostWrite {
 public:
  ~HostWrite();
  HostWrite(const HostWrite&) = delete;
  HostWrite& operator=(const HostWrite&) = delete;

  uint64_t write_id() const { return write_id_; }
  uint64_t received() const { return received_; }

  // Steps 2-3 for the next bytes of the write. Bytes past the declared length make the
  // write invalid (it stays open so Finish can report it). Errors (cache full) are final,
  // except WouldWait for a Waits::kNever write (no free slot, or the track's image is not in
  // cache), which leaves the pen untouched: Abandon the write.
  absl::Status Append(std::span<const uint8_t> bytes);

  // For protocols that learn the checksum only as the payload arrives (NBD: the CRC-32C of
  // the bytes read off the socket): replaces the crc32c given to BeginWrite. Before Finish.
  void set_crc32c(uint32_t crc32c) { crc32c_ = crc32c; }

  // Steps 4-6. `done` runs exactly once.
  void Finish(WriteDone done);

  // The host went away: drop the write (counted as cancelled).
  void Cancel();

  // A Waits::kNever write that would have waited: forget it as if it had never begun
  // (nothing counted), so that it can be run again on the pool.
  void Abandon();

 private:
  friend class HostAdaptor;
  // `groups`: the routed RDF groups the volume is in (bits, CommitPoint routes); their
  // places are in `reservations`. The write's portions get mirror requests in the pen,
  // unless there are none (a local volume).
  HostWrite(HostAdaptor* adaptor, std::shared_ptr<disk::Volume> volume, uint64_t offset,
            uint64_t length, uint32_t crc32c, uint64_t write_id, mirror::Reservations reservations,
            Waits waits, uint32_t groups);
  absl::Status StartPortion();
  void Drop(InvalidReason reason);
  void ResetReservations();
  // The CRC-32C of the write's bytes as they sit in the staged slots.
  uint32_t CrcInCache();

  HostAdaptor* const adaptor_;
  const std::shared_ptr<disk::Volume> volume_;
  const uint64_t offset_;
  const uint64_t length_;
  uint32_t crc32c_;
  const uint64_t write_id_;
  const Waits waits_;
  const uint32_t groups_;
  const absl::Time started_ = absl::Now();
  mirror::Reservations reservations_;
  std::vector<mirror::Portion> portions_;
  std::vector<mirror::MirrorRequest> unpenned_;  // bypass_pen only: requests kept here
  uint64_t received_ = 0;
  uint64_t overflow_ = 0;  // bytes beyond the declared length
  bool finished_ = false;
  std::shared_ptr<mirror::WriteTicket> ticket_;
  std::shared_ptr<std::atomic<uint64_t>> sequence_;
};

}  // namespace simarray::host
