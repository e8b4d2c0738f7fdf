#pragma once
// CommitPoint: the one place where a validated write becomes part of the array's history
// (docs/write-path.md, step 5). Under one lock it takes the write's sequence number, publishes
// every portion in cache, and moves all of the write's mirror requests from the holding pen
// to the mirror queue in one step (claims 1, 4). Serialising these three keeps the cache and
// the queue in sequence order, which is what lets both sides end every byte equal to the
// highest-sequence write covering it. In async mode the requests do not go to the queue:
// each portion joins the capture cycle instead (CycleSet), and cycle switches happen under
// the same lock. Thread-safe.

#include <atomic>
#include <cstdint>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "simarray/cache/cache_memory.h"
#include "simarray/mirror/cycle_set.h"
#include "simarray/mirror/holding_pen.h"
#include "simarray/mirror/mirror_queue.h"
#include "simarray/mirror/owed_tracks.h"

namespace simarray::mirror {

// One portion of a write: a staged slot holding [offset, offset + length) of its track.
struct Portion {
  cache::StagedSlot staged;
  uint32_t offset = 0;
  uint32_t length = 0;
  cache::TrackPin pin;  // held for partial portions so Publish fills from memory
};

class CommitPoint {
 public:
  // All borrowed; must outlive this. `queue` may be null (no peer: nothing is mirrored).
  // With `owed`, every committed portion's track is marked owed before its request is
  // queued, so a crash or link loss after the commit never forgets it. With `cycles`
  // (async mode; needs `owed`), committed portions join the capture cycle, not the queue.
  CommitPoint(cache::CacheMemory* cache, MirrorQueue* queue, OwedTracks* owed = nullptr,
              CycleSet* cycles = nullptr)
      : cache_(cache), queue_(queue), owed_(owed), cycles_(cycles) {}

  // Commits `portions` of write `write_id`, whose requests wait in `pen`. Returns the
  // sequence number. `reservation` is consumed; `ticket` (may be null) goes with every
  // request so the remote adaptor can report the mirror's acks. While the gate is closed
  // it commits nothing, takes nothing and returns FAILED_PRECONDITION.
  absl::StatusOr<uint64_t> Commit(uint64_t write_id, std::vector<Portion>& portions,
                                  HoldingPen& pen, Reservation& reservation,
                                  std::shared_ptr<WriteTicket> ticket) ABSL_LOCKS_EXCLUDED(mu_);

  // Benchmark only (holding_pen = "bypass"): the same commit for a write whose `requests`
  // (one per portion, in portion order) never waited in a holding pen. It exists so the
  // benchmark can measure what the pen and validation cost; nothing else may call it.
  absl::StatusOr<uint64_t> CommitUnpenned(std::vector<Portion>& portions,
                                          std::vector<MirrorRequest> requests,
                                          Reservation& reservation,
                                          std::shared_ptr<WriteTicket> ticket)
      ABSL_LOCKS_EXCLUDED(mu_);

  // Commits `portions` of a write to a local volume, one in no RDF group (docs/groups.md):
  // it takes a sequence number and publishes, and nothing is mirrored; the gate does not
  // apply. `in_group` is the volume's flag, read under the commit lock: a volume that
  // joined a group after the write began (Array::PairVolume) has the write's tracks marked
  // owed and put in the resync set, so the initial copy cannot miss them.
  absl::StatusOr<uint64_t> CommitLocal(std::vector<Portion>& portions,
                                       const std::atomic<bool>& in_group) ABSL_LOCKS_EXCLUDED(mu_);

  // The gate, for role changes. Close returns once no commit is in progress, so from then
  // on nothing new reaches the cache or the mirror queue: a daemon becoming the mirror
  // closes it before it drains its queue, and opens it again when it becomes the primary.
  void Close() ABSL_LOCKS_EXCLUDED(mu_);
  void Open() ABSL_LOCKS_EXCLUDED(mu_);

  // Async mode: CycleSet::Switch (the last sequence assigned is the boundary) and
  // CycleSet::Resume, under the commit lock. False without cycles.
  bool SwitchCycle() ABSL_LOCKS_EXCLUDED(mu_);
  bool ResumeCycles() ABSL_LOCKS_EXCLUDED(mu_);

  // Sync mode with a peer: the host reply waits for the mirror's ack (the write ticket).
  bool waits_for_mirror() const { return queue_ != nullptr && cycles_ == nullptr; }
  CycleSet* cycles() const { return cycles_; }

 private:
  uint64_t PublishAndQueue(std::vector<Portion>& portions, std::vector<MirrorRequest> requests,
                           Reservation& reservation, std::shared_ptr<WriteTicket> ticket)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  cache::CacheMemory* const cache_;
  MirrorQueue* const queue_;
  OwedTracks* const owed_;
  CycleSet* const cycles_;
  absl::Mutex mu_;
  bool closed_ ABSL_GUARDED_BY(mu_) = false;
};

}  // namespace simarray::mirror
