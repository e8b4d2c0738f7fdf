#pragma once
// CommitPoint: the one place where a validated write becomes part of the array's history
// (docs/write-path.md, step 5). Under one lock it takes the write's sequence number, publishes
// every portion in cache, and moves all of the write's mirror requests from the holding pen
// to the mirror queue in one step (claims 1, 4). Serialising these three keeps the cache and
// the queue in sequence order, which is what lets both sides end every byte equal to the
// highest-sequence write covering it. In async mode the requests do not go to the queue:
// each portion joins the capture cycle instead (CycleSet), and cycle switches happen under
// the same lock. Thread-safe.
//
// RDF groups (docs/groups.md): the point has one route per group of the array — the group's
// mirror queue or capture cycle, its owed tracks and its gate — and a write goes down the
// route of every group its volume is in (Volume::groups, one bit per route): a concurrent
// volume's write reaches each of its groups, or, invalid, none of them.

#include <array>
#include <atomic>
#include <cstdint>
#include <functional>
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

// One RDF group's side of the commit point. `queue` null: the route is unused.
struct CommitRoute {
  MirrorQueue* queue = nullptr;
  OwedTracks* owed = nullptr;  // every committed track is marked owed before it is queued
  CycleSet* cycles = nullptr;  // async mode: committed portions join the capture cycle
};

inline constexpr uint32_t kMaxRoutes = 8;
// The mirror-queue places one write holds, one reservation per route it goes down.
using Reservations = std::array<Reservation, kMaxRoutes>;

class CommitPoint {
 public:
  // `cache` borrowed; must outlive this. Routes come from SetRoute.
  explicit CommitPoint(cache::CacheMemory* cache) : cache_(cache) {}
  // One route, 0 (a single group): `queue` may be null (no peer: nothing is mirrored).
  // With `owed`, every committed portion's track is marked owed before its request is
  // queued, so a crash or link loss after the commit never forgets it. With `cycles`
  // (async mode; needs `owed`), committed portions join the capture cycle, not the queue.
  CommitPoint(cache::CacheMemory* cache, MirrorQueue* queue, OwedTracks* owed = nullptr,
              CycleSet* cycles = nullptr)
      : cache_(cache) {
    SetRoute(0, CommitRoute{queue, owed, cycles});
  }

  // Route `index` (< kMaxRoutes), open; a route with no queue removes it. At start or at run
  // time (a group created or deleted): a route is set before its bit shows in routes(),
  // and a write reads a route only for a bit it saw there.
  void SetRoute(uint32_t index, CommitRoute route) ABSL_LOCKS_EXCLUDED(mu_);
  const CommitRoute& route(uint32_t index) const { return routes_[index]; }
  // The routes set, as bits.
  uint32_t routes() const { return routes_set_.load(std::memory_order_acquire); }

  // Commits `portions` of write `write_id`, whose requests wait in `pen`, down every route
  // in `groups` (bits). Returns the sequence number. `reservations` (one per route, by
  // index) are consumed; `ticket` (may be null) goes with every sync route's request, so
  // the remote adaptors can report the mirrors' acks (WaitingPortions counts them). While
  // one of the routes' gates is closed it commits nothing, takes nothing and returns
  // FAILED_PRECONDITION.
  absl::StatusOr<uint64_t> Commit(uint64_t write_id, std::vector<Portion>& portions,
                                  HoldingPen& pen, Reservations& reservations,
                                  std::shared_ptr<WriteTicket> ticket, uint32_t groups)
      ABSL_LOCKS_EXCLUDED(mu_);
  // The same down route 0 with one reservation.
  absl::StatusOr<uint64_t> Commit(uint64_t write_id, std::vector<Portion>& portions,
                                  HoldingPen& pen, Reservation& reservation,
                                  std::shared_ptr<WriteTicket> ticket) ABSL_LOCKS_EXCLUDED(mu_);

  // Benchmark only (holding_pen = "bypass"): the same commit for a write whose `requests`
  // (one per portion, in portion order) never waited in a holding pen. It exists so the
  // benchmark can measure what the pen and validation cost; nothing else may call it.
  absl::StatusOr<uint64_t> CommitUnpenned(std::vector<Portion>& portions,
                                          std::vector<MirrorRequest> requests,
                                          Reservations& reservations,
                                          std::shared_ptr<WriteTicket> ticket, uint32_t groups)
      ABSL_LOCKS_EXCLUDED(mu_);
  absl::StatusOr<uint64_t> CommitUnpenned(std::vector<Portion>& portions,
                                          std::vector<MirrorRequest> requests,
                                          Reservation& reservation,
                                          std::shared_ptr<WriteTicket> ticket)
      ABSL_LOCKS_EXCLUDED(mu_);

  // Commits `portions` of a write to a local volume, one in no RDF group (docs/groups.md):
  // it takes a sequence number and publishes, and nothing is mirrored; the gates do not
  // apply. `groups` is the volume's bits, read under the commit lock: a volume that joined
  // a group after the write began (Array::PairVolume) has the write's tracks marked owed
  // and put in that group's resync set, so the initial copy cannot miss them.
  absl::StatusOr<uint64_t> CommitLocal(std::vector<Portion>& portions,
                                       const std::atomic<uint32_t>& groups)
      ABSL_LOCKS_EXCLUDED(mu_);

  // Cascaded (docs/groups.md, "Topologies"): publishes a record received from a source
  // (RecordApplier's Forwarder) at the source's `sequence`, and every open route in
  // `groups` (a group this array is the source of) takes it like a committed write: the
  // track is marked owed and, in async mode, the image joins the capture cycle; a sync route
  // resyncs the track. Under the commit lock, so a cycle switch never splits the two.
  // `changed` is the part of [offset, offset + length) the record changes. Returns whether
  // it was applied (false: the track already holds a newer sequence).
  // `write_continues`: more records of the same write follow; its captures wait for the
  // last, so a cycle never holds part of a write, and the route's boundary moves only then.
  bool PublishForwarded(cache::StagedSlot staged, uint32_t offset, uint32_t length,
                        uint64_t sequence, cache::TrackRange changed, uint32_t groups,
                        bool write_continues) ABSL_LOCKS_EXCLUDED(mu_);
  // The stream that forwarded part of a write ended before its last record: what it held
  // back is resynced instead (the tracks join their routes' resync sets).
  void DropOpenForward() ABSL_LOCKS_EXCLUDED(mu_);

  // A route's gate, for role changes. Close returns once no commit is in progress, so from
  // then on nothing new reaches the cache or the route's queue: a group becoming the target
  // closes it before it drains its queue, and opens it again when it becomes the source.
  void Close(uint32_t route = 0) ABSL_LOCKS_EXCLUDED(mu_);
  void Open(uint32_t route = 0) ABSL_LOCKS_EXCLUDED(mu_);

  // Async mode: route's CycleSet::Switch (the last sequence assigned is the boundary) and
  // CycleSet::Resume, under the commit lock. False without cycles.
  bool SwitchCycle(uint32_t route = 0) ABSL_LOCKS_EXCLUDED(mu_);
  // A cascaded group's route (docs/groups.md, "Topologies"): its cycles' boundaries are the
  // highest sequence that went down the route (its source's numbering, which this array's
  // own counter runs ahead of after a restart), or what the route's mirror said it applied
  // when the link came up (ObserveRouteSequence), if higher; until something went down the
  // route since the start, its cycles close not consistent (what this array holds may be
  // newer than either). Before any commit.
  // `covered`: nothing this array holds can be newer than the route's first boundary (a
  // fresh cache), so its cycles may close consistent from the start.
  void NumberByPassage(uint32_t route, bool covered) ABSL_LOCKS_EXCLUDED(mu_);
  // Multi-group consistency (SRDF's MSC, docs/groups.md): the async routes in `routes`
  // (bits) switch their cycles together, all at one boundary, when the first of them is due
  // and none has a transmit cycle pending; `wake` tells a route's remote adaptor that its
  // cycle switched on another's turn. Before the route's first cycle switch.
  void SwitchTogether(uint32_t routes) ABSL_LOCKS_EXCLUDED(mu_);
  void SetRouteWake(uint32_t route, std::function<void()> wake) ABSL_LOCKS_EXCLUDED(mu_);
  void ObserveRouteSequence(uint32_t route, uint64_t sequence) ABSL_LOCKS_EXCLUDED(mu_);
  bool ResumeCycles(uint32_t route = 0) ABSL_LOCKS_EXCLUDED(mu_);

  // Sync mode with a peer: the host reply waits for the mirror's ack (the write ticket).
  bool waits_for_mirror(uint32_t route = 0) const {
    return routes_[route].queue != nullptr && routes_[route].cycles == nullptr;
  }
  // How many acks a write of `portions` down `groups` waits for: one per portion per sync
  // route.
  uint32_t WaitingPortions(uint32_t portions, uint32_t groups) const;
  CycleSet* cycles(uint32_t route = 0) const { return routes_[route].cycles; }
  // Write pacing (write_pacing.h): how long the reply to a write just committed down
  // `groups` is held back, the longest any of their async routes asks for (each counts the
  // write as paced). Zero, and one atomic load per route, while no cycles are past their
  // pacing threshold.
  absl::Duration TakePacingDelay(uint32_t groups) const;

 private:
  uint64_t PublishAndQueue(std::vector<Portion>& portions, std::vector<MirrorRequest> requests,
                           Reservations& reservations, std::shared_ptr<WriteTicket> ticket,
                           uint32_t groups) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  bool OpenFor(uint32_t groups) const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void NotePassage(uint32_t groups, uint64_t sequence) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  cache::CacheMemory* const cache_;
  std::array<CommitRoute, kMaxRoutes> routes_;
  std::atomic<uint32_t> routes_set_{0};
  absl::Mutex mu_;
  uint32_t closed_ ABSL_GUARDED_BY(mu_) = 0;      // bits of the routes whose gate is closed
  uint32_t by_passage_ ABSL_GUARDED_BY(mu_) = 0;  // bits of the routes NumberByPassage set
  uint32_t together_ ABSL_GUARDED_BY(mu_) = 0;    // bits of the routes SwitchTogether set
  std::array<std::function<void()>, kMaxRoutes> wake_ ABSL_GUARDED_BY(mu_);
  // The highest sequence that went down each route (NumberByPassage routes).
  std::array<uint64_t, kMaxRoutes> passed_ ABSL_GUARDED_BY(mu_) = {};
  uint32_t passed_since_start_ ABSL_GUARDED_BY(mu_) = 0;  // routes something went down
  // Captures of a forwarded write whose last record has not come yet.
  struct HeldCapture {
    CycleSet* cycles;
    OwedTracks* owed;
    cache::TrackKey key;
    uint64_t sequence;
    uint32_t offset, length;
    cache::SlotRef image;
  };
  std::vector<HeldCapture> held_ ABSL_GUARDED_BY(mu_);
  uint32_t held_groups_ ABSL_GUARDED_BY(mu_) = 0;
};

}  // namespace simarray::mirror
