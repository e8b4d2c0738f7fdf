#pragma once
// RemoteAdaptor: the primary's side of the peer link (claim 13). It takes validated mirror
// requests from the mirror queue in order, reads each one's bytes from its cache slot at
// ship time, and ships them in batches on one long-lived PeerService.Ship stream, many
// records in flight. The mirror acknowledges cumulatively; each ack completes the request's
// write ticket (the sync host reply) and lets the track's owed bit clear.
//
// Link handling (docs/pair.md): the link is down when the stream breaks, when an ack or a
// heartbeat reply is overdue (link.ack_timeout), while an admin suspends it, or while a
// drop fault holds it. Then every request queued or in flight becomes owed: with policy
// "continue" the writes succeed with mirrored = false, with policy "fail" they fail
// UNAVAILABLE (and new writes are refused until the pair is synchronized again). The
// adaptor reconnects with bounded back-off and jitter; once connected it resyncs the owed
// tracks (whole tracks, current data, each stamped with the sequence at which it was read)
// before it resumes normal shipping. A mirror of another data generation gets an initial
// copy of every track that holds data.
//
// Async mode (docs/async.md): with a CycleSet on the commit point, the adaptor ships
// transmit cycles instead of the queue: it switches cycles every cycle_ms, sends a cycle's
// records and then its end marker, and the marker's ack (the mirror applied the whole
// cycle) acknowledges every track of it. A link loss turns the cycles into owed tracks;
// after the resync, cycles resume (remote_adaptor_cycles.cc).
//
// Parts: the Shipper (shipper.h) keeps each record's life on the link (queued, in flight,
// acked, refused, lost) with its timeouts and heartbeats; this class is the link around it
// (connect, pair volumes, resync, tear down; a typed LinkState) and what each record
// means to the array (tickets, owed tracks, cycles). The peer calls the admin service and
// role changes make are in remote_adaptor_calls.cc.
//
// Threads. In the steady state of sync mode (link up, nothing to resync) nothing hands a
// write to another thread: the committing thread's push into the mirror queue ships at
// once if no message is on the wire (Kick), and when one is, its completion ships whatever
// accumulated meanwhile, so batching follows the load. Replies complete the writes' tickets
// on the gRPC thread that read them. The Ship call runs on gRPC's callback API
// (ship_stream.h), so none of that waits. A sender thread does everything else: connect,
// resync (which reads tracks), async cycles, the delay fault's due records, heartbeats and
// timeouts, tearing the link down. Public methods are thread-safe.
//
#include <atomic>
#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "simarray/base/event_count.h"
#include "simarray/base/fault_injector.h"
#include "simarray/base/histogram.h"
#include "simarray/cache/cache_memory.h"
#include "simarray/disk/disk_adaptor.h"
#include "simarray/disk/volume_catalog.h"
#include "simarray/mirror/commit_point.h"
#include "simarray/mirror/mirror_queue.h"
#include "simarray/mirror/owed_tracks.h"
#include "simarray/remote/link_emulation.h"
#include "simarray/remote/pair_state.h"
#include "simarray/remote/shipper.h"
#include "simarray/rpc/rpc.h"
#include "simarray/v1/peer.grpc.pb.h"

namespace simarray::remote {

struct RemoteAdaptorOptions {
  std::string daemon_id;
  // The RDF group this adaptor is the link of (docs/groups.md): only the volumes in it are
  // told in Hello, paired, given twins and copied; the peer refuses a Hello for a group it
  // does not have.
  std::string group = "default";
  uint32_t route = 0;  // the group's route at the commit point (its array index)
  // The data generation of the peer this group last paired with (a new one means an
  // initial copy) and where it is kept; unset: the cache region's header.
  std::function<uint64_t()> peer_generation;
  std::function<void(uint64_t)> set_peer_generation;
  std::string mode = "sync";  // told to the peer in Hello
  // Async: the share of the mirror's cache slots a cycle may pin (cycle_cache_percent).
  uint32_t cycle_cache_percent = 25;
  std::string peer_address;  // may be set later (SetPeerAddress) on a mirror-role daemon
  std::string self_address;  // this daemon's PeerService address, told to the peer in Hello
  std::string secret;        // peer link secret (peer_auth.h); empty: none
  rpc::TlsConfig tls;        // mutual TLS on the link; not enabled: plain TCP
  // This daemon's role as said in a session-only Hello (before a role, volume or digest
  // call; "mirror" if unset); the pairing Hello before Ship always says "primary".
  std::function<std::string()> role;
  uint64_t max_write = 32 << 20;
  absl::Duration ack_timeout = absl::Seconds(5);
  bool fail_writes_when_down = false;  // link.policy = "fail"
  size_t batch_records = 64;
  size_t batch_bytes = 4 << 20;
  size_t max_in_flight = 4096;
  size_t resync_window = 64;  // whole-track records in flight during resync
  // resync.max_rate: bits a second of whole tracks a resync may ship; 0: no limit.
  uint64_t resync_max_rate = 0;
  // The link as a real one between sites (link_emulation.h, link.emulate); off by default.
  LinkEmulations emulation;
};

// The shipper's record counters (shipper.h) and the link's own.
struct LinkCounters : ShipperCounters {
  LinkState state = LinkState::kStopped;
  bool resyncing = false;
  uint64_t records_degraded = 0;  // dropped to owed tracks (mirrored = false)
  uint64_t connects = 0;
  uint64_t auth_failures = 0;  // Hellos the peer refused, or whose reply proof was wrong
  uint64_t link_losses = 0;
  uint64_t resyncs_started = 0;
  uint64_t resyncs_completed = 0;
  uint64_t mirror_applied_sequence = 0;
  double resync_tracks_per_second = 0;
  double resync_seconds_left = 0;
  LinkEmulations emulation;    // as set now
  uint64_t messages_lost = 0;  // by the emulated link, both ways
};
// The counters as figures (simarray/base/figures.h), in a link section.
void Describe(const LinkCounters& counters, FigureSink& sink);

class ShipStream;

class RemoteAdaptor {
 public:
  // All borrowed; must outlive the adaptor. `commit` switches and resumes cycles when it
  // has a CycleSet (async mode); it may be null in sync mode.
  RemoteAdaptor(RemoteAdaptorOptions options, cache::CacheMemory* cache, mirror::MirrorQueue* queue,
                mirror::OwedTracks* owed, disk::VolumeCatalog* volumes, disk::DiskAdaptor* disk,
                FaultInjector* faults, mirror::CommitPoint* commit = nullptr);
  ~RemoteAdaptor();
  RemoteAdaptor(const RemoteAdaptor&) = delete;
  RemoteAdaptor& operator=(const RemoteAdaptor&) = delete;

  // Something the sender waits for changed elsewhere (another group's cycle switch made
  // this one's transmit cycle, CommitPoint::SwitchTogether).
  void Wake() { Changed(); }

  // Start and Stop may alternate (a daemon whose role changes); Stop drains what was queued
  // or in flight into owed tracks.
  void Start();
  void Stop();
  bool running() const { return running_; }
  // Nothing queued, waiting, in flight or to resync (exact: a record the sender holds
  // between two of those places counts too).
  bool Idle();
  // The link is up (connected and not torn down since).
  bool LinkUp();
  // Waits until `condition` holds, checking it again whenever the link's state, the queue,
  // the resync set, the cycles or the acks change; false if `deadline` came first. For
  // conditions over this adaptor's state (Idle, LinkUp, PairState, Counters); `condition`
  // runs with no lock held.
  template <typename Condition>
  bool Await(Condition condition, absl::Time deadline) {
    return events_.Await(condition, deadline);
  }
  // Notified whenever the link's state, its suspension or a resync's running changes, and not
  // at every ack: the event watcher samples the array at once on it (docs/events.md).
  EventCount& state_changes() { return state_changes_; }
  // After Stop: turns requests still in the queue into owed tracks (writes that committed
  // while the adaptor stopped).
  void DrainStopped() { DrainQueueDegraded(); }
  // Where to ship; takes effect at the next Start.
  void SetPeerAddress(const std::string& address);
  std::string peer_address();
  void SetSelfAddress(const std::string& address);
  // True after the peer refused us because it is a primary too (split brain).
  bool split_brain();

  // Admin: SuspendLink / ResumeLink, and the drop-link fault.
  void Suspend();
  void Resume();
  void DropFor(absl::Duration duration);
  // Admin: EmulateLink (link_emulation.h). Applies from the next message, on the stream up
  // now and every later one.
  void SetEmulation(const LinkEmulations& emulation) { emulator_.Set(emulation); }
  LinkEmulations emulation() { return emulator_.Get(); }

  // False while writes must be refused (policy "fail" and the pair not synchronized).
  bool AdmitsWrites();
  // What this adaptor knows of the pair (a primary's view; the daemon adds failover).
  PairFacts Facts();
  // ComputePairState(Facts()).
  PairState pair_state() { return ComputePairState(Facts()); }

  // Peer calls used by the admin service and role changes (synchronous, with a deadline;
  // UNAVAILABLE when no peer address is known).
  // Demote: the peer becomes the mirror (`discard_changes`: and forgets the tracks it
  // changed, which this side is about to overwrite). Promote: the peer becomes the primary
  // and ships to this side (`split`: takes host writes but ships nothing).
  absl::Status Demote(bool discard_changes = false);
  absl::Status Promote(uint64_t generation, bool split = false);
  absl::StatusOr<std::vector<cache::TrackKey>> PeerOwed();
  absl::Status CreateTwin(const disk::VolumeInfo& volume);
  // The initial copy of a volume that joined the group: every track of it that holds data
  // joins the resync set. Returns how many.
  uint64_t CopyVolume(const disk::VolumeInfo& volume);
  absl::Status DeleteTwin(const disk::VolumeInfo& volume);
  absl::StatusOr<std::vector<uint64_t>> PeerDigests(uint32_t volume_id, uint64_t first,
                                                    uint64_t count);

  // Ships whole tracks (current data, stamped with the sequence at which they were read)
  // and waits for the mirror's acks; returns how many were acknowledged.
  absl::StatusOr<uint64_t> ResendTracks(const std::vector<cache::TrackKey>& keys,
                                        absl::Duration timeout);

  // Waits until the mirror applied every write up to `sequence` and owes nothing, or
  // nothing is queued, owed or in flight; false at the deadline.
  bool WaitApplied(uint64_t sequence, absl::Time deadline);

  LinkCounters Counters();
  // Seconds from a record's send to the mirror's ack of it.
  const Histogram& ship_latency() const { return ship_latency_; }

 private:
  // remote_adaptor.cc: the link's life.
  v1::HelloRequest MakeHello(const std::string& role, bool ships);
  // Challenge + signed Hello (`ships`: the pairing Hello before Ship); checks the reply's
  // proof and keeps its session.
  absl::StatusOr<v1::HelloReply> SayHello(v1::PeerService::Stub& stub, const std::string& role,
                                          bool ships, absl::Duration timeout);
  // Runs call(stub, context) with a deadline and the session (saying hello first when there
  // is none, and once more when the peer no longer knows it).
  template <typename Call>
  absl::Status CallPeer(absl::Duration timeout, Call call);
  bool LinkHeld();
  // A Ship stream is open (the sender thread).
  bool LinkOpen();
  bool Connect() ABSL_LOCKS_EXCLUDED(send_mu_, mu_);
  absl::Status PairVolumes(const v1::HelloReply& reply);
  std::vector<uint64_t> TracksWithData(const disk::VolumeInfo& volume);
  void TearDown(const std::string& why) ABSL_LOCKS_EXCLUDED(send_mu_, mu_);
  void Degrade(mirror::MirrorRequest& request) ABSL_LOCKS_EXCLUDED(mu_);

  // remote_adaptor_ship.cc: shipping.
  void SenderLoop();
  // The sender's turn, link up: fills the shipper from the queue, the cycles or the resync
  // set, and sends if no message is on the wire. Returns what SendDue did (kNothing when a
  // message was on the wire).
  Shipper::Sent Pump(bool resyncing) ABSL_LOCKS_EXCLUDED(send_mu_);
  // Steady-state shipping on any thread (see the top): never waits. Returns at once if
  // another thread is sending (it looks again when it is done).
  void Kick() ABSL_LOCKS_EXCLUDED(send_mu_);

  // SendDue on the stream if none is on the wire; kNothing if one is or there is no stream.
  Shipper::Sent SendLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(send_mu_);
  // A reply from the mirror (a gRPC thread).
  void HandleReply(const v1::ShipReply& reply) ABSL_LOCKS_EXCLUDED(send_mu_, mu_);
  // The mirror queue gained records (the pushing thread).
  void OnPush() ABSL_LOCKS_EXCLUDED(send_mu_);
  // Something changed that the sender and waiters may wait for.
  void Changed();
  void DrainQueueDegraded() ABSL_LOCKS_EXCLUDED(send_mu_, mu_);
  // Records from `source` (at most the shipper's room and one batch, without waiting) into
  // the shipper, behind the delay fault's delay; returns how many.
  using Source = std::function<std::vector<mirror::MirrorRequest>(size_t max)>;
  size_t Fill(const Source& source, Origin origin) ABSL_EXCLUSIVE_LOCKS_REQUIRED(send_mu_);
  size_t FillFromQueue() ABSL_EXCLUSIVE_LOCKS_REQUIRED(send_mu_);
  // Whole tracks of the resync set (at most resync_window queued or in flight).
  size_t FillResync() ABSL_EXCLUSIVE_LOCKS_REQUIRED(send_mu_);
  std::vector<mirror::MirrorRequest> TakeResyncRecords(size_t max);
  // resync.max_rate: how many of `wanted` tracks the rate allows now, taken from a token
  // bucket of a quarter window of tracks; when none, resync_due_ns_ says when one will be.
  size_t ResyncAllowance(size_t wanted) ABSL_LOCKS_EXCLUDED(rate_mu_);

  // remote_adaptor_cycles.cc: async mode.
  // The next records: the transmit cycle first (whole, before any resync record, so the
  // mirror never mixes the two), then the resync, then resuming or switching cycles.
  void FillAsync(bool resyncing) ABSL_EXCLUSIVE_LOCKS_REQUIRED(send_mu_);
  // Logs what the cycles did since the last call (pull-ahead).
  void LogCycleEvents();
  // When the sender must look again even if nothing is notified: the shipper's next
  // deadline (heartbeat, ack timeout, delayed record) or the cycle switch.
  absl::Time NextDeadline();
  // Until when the link is held down (InfiniteFuture while suspended).
  absl::Time HeldUntil();
  void SetState(LinkState state) ABSL_LOCKS_EXCLUDED(mu_);

  // Constant after construction; the addresses in it are only where peer_address_ and
  // self_address_ start from.
  const RemoteAdaptorOptions options_;
  cache::CacheMemory* const cache_;
  mirror::MirrorQueue* const queue_;
  mirror::OwedTracks* const owed_;
  disk::VolumeCatalog* const volumes_;
  disk::DiskAdaptor* const disk_;
  FaultInjector* const faults_;
  LinkEmulator emulator_;
  mirror::CommitPoint* const commit_;
  mirror::CycleSet* const cycles_;  // async mode; null in sync mode
  std::shared_ptr<grpc::Channel> channel_ ABSL_GUARDED_BY(mu_);
  std::shared_ptr<v1::PeerService::Stub> stub_ ABSL_GUARDED_BY(mu_);
  std::shared_ptr<v1::PeerService::Stub> PeerStub();
  // Replaces the channel to the peer with a new one, which resolves the peer's name afresh.
  // A gRPC channel whose peer came back at another address (a container reconnected to its
  // network) was seen to keep failing for minutes, its resolver backing off.
  void RenewChannel() ABSL_LOCKS_EXCLUDED(mu_);
  static constexpr int kConnectsBeforeNewChannel = 4;
  std::atomic<bool> stop_{false};
  std::atomic<bool> running_{false};
  std::atomic<bool> split_brain_{false};
  std::thread sender_;

  // Owned by the sender thread.
  bool was_resyncing_ = false;
  int failed_connects_ = 0;  // connection attempts failed in a row
  std::string last_refusal_;
  uint64_t pull_aheads_seen_ = 0;

  EventCount wake_;    // the sender's (see the top)
  EventCount events_;  // waiters' (see the top)
  EventCount state_changes_;
  Shipper shipper_;

  // Held by whoever fills the shipper or sends (the sender blocks on it; other threads only
  // try it), and while the stream is set up or torn down. Taken before mu_, and before the
  // shipper's, the queue's, the owed tracks' and the cache's own mutexes, which are taken
  // while it is held (docs/threads.md).
  absl::Mutex send_mu_;
  std::shared_ptr<v1::PeerService::Stub> ship_stub_ ABSL_GUARDED_BY(send_mu_);
  std::unique_ptr<ShipStream> stream_ ABSL_GUARDED_BY(send_mu_);
  // Sync mode, link up, nothing to resync: Kick may fill from the queue and send.
  std::atomic<bool> steady_{false};
  std::atomic<bool> stream_broken_{false};
  std::atomic<bool> on_wire_{false};  // a message is being written on stream_

  // A leaf but for the logger: nothing else is locked while it is held.
  absl::Mutex mu_ ABSL_ACQUIRED_AFTER(send_mu_);
  // Where to ship (SetPeerAddress, which the sender thread may race with: it reads a copy,
  // peer_address()) and this daemon's PeerService address told in Hello.
  std::string peer_address_ ABSL_GUARDED_BY(mu_);
  std::string self_address_ ABSL_GUARDED_BY(mu_);
  // Records popped from the mirror queue that are now in the shipper, acked or owed: with
  // the queue's pushed and depth it tells Idle whether the sender holds any between two
  // places.
  uint64_t queue_taken_ ABSL_GUARDED_BY(mu_) = 0;
  LinkState state_ ABSL_GUARDED_BY(mu_) = LinkState::kStopped;
  std::string session_ ABSL_GUARDED_BY(mu_);  // with the peer's PeerService; empty: none
  bool suspended_ ABSL_GUARDED_BY(mu_) = false;
  absl::Time held_until_ ABSL_GUARDED_BY(mu_) = absl::InfinitePast();
  absl::Time resync_started_ ABSL_GUARDED_BY(mu_);
  absl::Mutex rate_mu_;
  double resync_tokens_ ABSL_GUARDED_BY(rate_mu_) = 0;  // bytes the rate allows now
  absl::Time resync_refilled_ ABSL_GUARDED_BY(rate_mu_) = absl::InfinitePast();
  // When the rate allows the next track (unix ns; 0: not waiting): the sender's deadline.
  std::atomic<int64_t> resync_due_ns_{0};
  uint64_t resynced_at_start_ ABSL_GUARDED_BY(mu_) = 0;
  LinkCounters counters_ ABSL_GUARDED_BY(mu_);  // the link's own; the shipper keeps its
  Histogram ship_latency_;
};

}  // namespace simarray::remote
