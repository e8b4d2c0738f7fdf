#pragma once
// Array: one simarrayd, wired. It owns the cache memory, the volumes, the disk adaptor, the
// commit point, the host adaptors (a gRPC or NBD port each), its RDF groups (rdf_group.h:
// mirror queue, owed tracks, cycles, remote adaptor each; none for a primary without a
// peer), the peer service, and the admin service. Start() opens
// every listener and reports the bound addresses; Shutdown() stops accepting, drains and
// destroys in the reverse order. Thread-safe after Start().

#include <array>
#include <atomic>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "daemon/config.h"
#include "daemon/console.h"
#include "daemon/http_server.h"
#include "daemon/rdf_group.h"
#include "grpcpp/grpcpp.h"
#include "simarray/base/event_log.h"
#include "simarray/base/fault_injector.h"
#include "simarray/cache/cache_memory.h"
#include "simarray/disk/disk_adaptor.h"
#include "simarray/disk/volume_catalog.h"
#include "simarray/host/grpc_host_service.h"
#include "simarray/host/host_adaptor.h"
#include "simarray/mirror/commit_point.h"
#include "simarray/mirror/delta_set_extension.h"
#include "simarray/mirror/mirror_queue.h"
#include "simarray/mirror/owed_tracks.h"
#include "simarray/nbd/nbd_server.h"
#include "simarray/remote/peer_service.h"
#include "simarray/remote/record_applier.h"
#include "simarray/remote/remote_adaptor.h"

namespace simarray::daemon {

class AdminServiceImpl;
class EventWatcher;

struct RoleChange {
  uint64_t tracks_copied = 0;
  std::string description;
  // An async target promoted: the primary's sequence its image stands for (0: not a cycle
  // boundary), and the gold copy's tracks published back first (docs/async.md, "Gold copy").
  uint64_t image_sequence = 0;
  uint64_t gold_tracks = 0;
};

struct BoundAddresses {
  std::map<std::string, std::string> host_adaptors;  // id -> host:port
  std::string admin;
  std::string peer;
  std::string metrics;  // empty: no metrics.listen
};

class Array {
 public:
  explicit Array(DaemonConfig config);
  ~Array();
  Array(const Array&) = delete;
  Array& operator=(const Array&) = delete;

  // Opens (or recovers) the cache region and volumes, starts adaptors and listeners.
  absl::StatusOr<BoundAddresses> Start();
  void Shutdown();

  const DaemonConfig& config() const { return config_; }
  // The daemon's role: its first group's side (docs/groups.md), kept in the cache region's
  // header; "primary" for an array without a group.
  std::string role() const { return is_primary_.load() ? "primary" : "mirror"; }
  bool is_primary() const { return is_primary_.load(); }
  // The first group's pair state (the daemon-wide form of Status), and any group's.
  remote::PairState pair_state();
  remote::PairState pair_state(RdfGroup& group);

  cache::CacheMemory& cache() { return *cache_; }
  // Pen records of uncommitted writes this start's cache recovery dropped.
  uint64_t pen_records_dropped() const { return pen_records_dropped_; }
  disk::VolumeCatalog& volumes() { return *volumes_; }
  disk::DiskAdaptor& disk() { return *disk_; }
  // The array's RDF groups (docs/groups.md), in config order; none for a primary without a
  // peer. group() is the first, whose side is the daemon's role.
  const GroupList& groups() const { return groups_; }
  RdfGroup* group() { return groups_.empty() ? nullptr : groups_.front().get(); }
  // The first group's parts, or null without a group.
  mirror::MirrorQueue* queue() { return group() ? group()->queue() : nullptr; }
  mirror::OwedTracks* owed() { return group() ? group()->owed() : nullptr; }
  mirror::CycleSet* cycles() { return group() ? group()->cycles() : nullptr; }
  remote::RemoteAdaptor* remote() { return group() ? group()->remote() : nullptr; }
  // The group this array is the target (R2) of, if any (at most one for now).
  RdfGroup* inbound_group();
  // Groups at run time (array_groups.cc, docs/groups.md "Groups at run time"), kept in
  // data_dir/groups.toml: CreateGroup checks the settings like a config's (INVALID_ARGUMENT),
  // refuses a name or number in use (ALREADY_EXISTS), a second R2 group and an array with
  // no group yet (FAILED_PRECONDITION), and starts the link of an R1. DeleteGroup removes a
  // group made at run time that has no volumes (FAILED_PRECONDITION otherwise, or for a
  // group of the config file), with its state directory.
  absl::StatusOr<RdfGroup*> CreateGroup(GroupConfig config);
  absl::Status DeleteGroup(const std::string& name);
  remote::RecordApplier& applier() { return *applier_; }
  remote::PeerServiceImpl& peer_service() { return *peer_service_; }
  remote::PeerGate& peer_gate() { return *peer_gate_; }
  AdminServiceImpl& admin_service() { return *admin_service_; }
  FaultInjector& faults() { return faults_; }
  // What the array did, one event per state change (docs/events.md).
  EventLog& events() { return events_; }
  const std::vector<std::unique_ptr<host::HostAdaptor>>& host_adaptors() { return hosts_; }
  // Async target: the delta set extension its cycles page out to (null: dse.max_size 0).
  mirror::DeltaSetExtension* target_dse() { return target_dse_.get(); }
  // Async target: its gold copy (null: gold_copy = "off").
  remote::GoldCopy* gold() { return gold_.get(); }
  const std::vector<std::unique_ptr<nbd::NbdServer>>& nbd_servers() { return nbd_servers_; }
  uint64_t streams_cancelled();

  // Volumes and their groups (array_volumes.cc, docs/groups.md).
  // Creates a volume in RDF group `group` (empty: the array's group, if any) or, `local`, in
  // none. A group volume is created on the group's source side only (FAILED_PRECONDITION
  // elsewhere), with its twin on the peer when the link is up (else when it comes up); a
  // local one on either side. NOT_FOUND for a group this array does not have.
  absl::StatusOr<disk::VolumeInfo> CreateVolume(const std::string& name, uint64_t size,
                                                const std::string& group, bool local);
  absl::Status DeleteVolume(const std::string& name, bool force);
  // Moves a local volume into RDF group `group` (empty: the array's) on its source side:
  // creates the twin and queues the initial copy of every track that holds data, whose
  // count it returns. Already in that group: returns 0 tracks (idempotent).
  struct Paired {
    disk::VolumeInfo volume;
    uint64_t tracks_to_copy = 0;
  };
  absl::StatusOr<Paired> PairVolume(const std::string& name, const std::string& group);
  // Whether hosts may write `volume` now: not when it is in a group whose target this array
  // is (FAILED_PRECONDITION naming the group), nor while link.policy "fail" holds its
  // group's writes (UNAVAILABLE). A local volume always.
  absl::Status AdmitWrite(const disk::Volume& volume);
  // The group `name` names (empty: the array's); NOT_FOUND, naming the groups there are.
  absl::StatusOr<RdfGroup*> FindGroup(const std::string& name);
  // For NBD's export flags: false for a volume hosts may only read (a target's).
  bool AcceptsWrites(const std::string& volume);
  // A volume whose writes one of this array's groups mirrors or receives.
  bool InGroup(const disk::Volume& volume) const {
    return !groups_.empty() && volume.groups.load(std::memory_order_relaxed) != 0;
  }
  // The groups a volume is in (its Volume::groups bits).
  std::vector<RdfGroup*> GroupsOf(const disk::Volume& volume);

  // Role changes (docs/pair.md), per RDF group, asked of this daemon's admin service.
  // Failover and Swap are asked of the group's target, Failback of the side that was failed
  // over to.
  absl::StatusOr<RoleChange> Failover(RdfGroup& group);
  absl::StatusOr<RoleChange> Failback(RdfGroup& group, bool force, absl::Duration wait);
  absl::StatusOr<RoleChange> Swap(RdfGroup& group, absl::Duration wait);
  // Group operations (group_operations.cc, docs/groups.md "Operations"): Split and
  // Establish asked of the group's R1 side, Restore of its R2 side during a split.
  absl::StatusOr<RoleChange> Split(RdfGroup& group);
  absl::StatusOr<RoleChange> Establish(RdfGroup& group, absl::Duration wait);
  absl::StatusOr<RoleChange> Restore(RdfGroup& group, absl::Duration wait);
  // Runs `operation` on RDF group `group` (empty: the first) unless another operation on it
  // is running (ABORTED) or there is no such group (NOT_FOUND).
  using GroupOp = std::function<absl::StatusOr<RoleChange>(RdfGroup& group)>;
  absl::StatusOr<RoleChange> OnGroup(const std::string& group, const GroupOp& operation);

 private:
  absl::Status OpenStorage();
  absl::Status CreateConfiguredVolumes();
  // Makes the groups of the config and of data_dir/groups.toml (with their roles) and wires
  // them to the commit point.
  absl::Status OpenGroups();
  // Makes one group in the next slot, with side `source` unless its state says otherwise.
  absl::StatusOr<RdfGroup*> AddGroup(const GroupConfig& config, bool source);
  // data_dir/groups.toml: read, and written from runtime_groups_ (like data).
  absl::StatusOr<std::vector<GroupConfig>> RuntimeGroups();
  absl::Status SaveRuntimeGroups();
  // The peer service's view of the groups (PeerServiceParts).
  remote::PeerServiceParts PeerParts();
  // The group's RdfGroup::LearnPeer, serialised with role changes.
  // Opens the target's delta set extension (dse.max_size) and redoes from it the cycle the
  // journal said was being applied; then writes the journal.
  absl::Status OpenTargetSpill();
  // The gold copy (array_gold.cc, docs/async.md "Gold copy"): opened (and a copy left from
  // before reloaded) after the applier, before OpenTargetSpill's redo; published back
  // through the commit point when the target is promoted (or at a start that finds the
  // array promoted with a copy still held), with what the image then is said in `change`.
  absl::Status OpenGoldCopy();
  void PublishGoldBack(RoleChange* change);
  absl::Status CommitGoldTrack(cache::TrackKey key, std::span<const uint8_t> image);
  absl::Status LearnPeer(RdfGroup& group, const std::string& address, uint64_t generation);
  // At start, with the group wired: a failed-over marker keeps the adaptor suspended; one on
  // a target (a failover cut short) is dropped.
  void RestoreFailedOver(RdfGroup& group);
  // At start: a split marker keeps both sides writable and the link suspended; one that
  // does not fit the role (a split cut short) is dropped.
  void RestoreSplit(RdfGroup& group);
  // The peer's Demote and Promote (RoleRequest in peer.proto).
  absl::Status DemotedByPeer(RdfGroup& group, const v1::RoleRequest& request);
  absl::Status PromotedByPeer(RdfGroup& group, const v1::RoleRequest& request);
  // The group's side changes; for the first group the daemon's role too.
  absl::Status BecomeMirror(RdfGroup& group, bool graceful);
  // `change`, when given, learns what the promoted image is (RoleChange::image_sequence).
  absl::Status BecomePrimary(RdfGroup& group, bool ship, RoleChange* change = nullptr);
  // Ships `theirs` (the peer's owed tracks) and this side's, whole, to the peer; waits
  // until done and returns how many were copied.
  absl::StatusOr<uint64_t> CopyBack(RdfGroup& group, absl::Duration wait,
                                    const std::vector<cache::TrackKey>& theirs);

  const DaemonConfig config_;
  std::atomic<bool> is_primary_{true};
  FaultInjector faults_;
  std::unique_ptr<cache::CacheMemory> cache_;
  uint64_t pen_records_dropped_ = 0;  // set at start, before any service runs
  bool cache_fresh_ = false;          // the cache region was new at this start
  std::unique_ptr<disk::VolumeCatalog> volumes_;
  std::unique_ptr<disk::DiskAdaptor> disk_;
  // Before commit_, whose routes they own.
  GroupList groups_;
  std::vector<GroupConfig> runtime_groups_;  // in data_dir/groups.toml; under role_mu_
  std::string peer_address_;                 // where this array's PeerService listens
  std::unique_ptr<mirror::CommitPoint> commit_;
  std::unique_ptr<remote::CycleJournal> journal_;  // async mirror: data_dir/cycles.journal
  remote::CycleMark journal_applied_;              // what it said at start
  // A cycle it said was being applied: redone from cache in OpenStorage, and from the delta
  // set extension in Start, which then writes `redo_note_` (0: none).
  uint64_t redo_cycle_ = 0;
  remote::CycleNote redo_note_;
  // Async target: the delta set extension a cycle past the cache share pages out to.
  std::unique_ptr<mirror::DeltaSetExtension> target_dse_;
  std::unique_ptr<remote::GoldCopy> gold_;  // before applier_, which borrows it
  std::unique_ptr<remote::RecordApplier> applier_;
  // Paced host writes' replies wait here (docs/async.md, "Write pacing"); before hosts_, so
  // it outlives them.
  DelayLine pacer_{DelayLine::AtStop::kRun};
  std::vector<std::unique_ptr<host::HostAdaptor>> hosts_;
  std::vector<std::unique_ptr<host::GrpcHostService>> host_services_;
  // NBD ports; after hosts_ so they are destroyed first (and after the pools stopped).
  std::vector<std::unique_ptr<nbd::NbdServer>> nbd_servers_;
  std::unique_ptr<remote::PeerGate> peer_gate_;
  std::unique_ptr<remote::PeerServiceImpl> peer_service_;
  std::unique_ptr<AdminServiceImpl> admin_service_;
  // The HTTP port (metrics.listen): /metrics and the web console; both read every component
  // above.
  std::unique_ptr<HttpServer> http_;
  std::unique_ptr<Console> console_;
  EventLog events_;
  std::unique_ptr<EventWatcher> watcher_;  // samples every component above into events_
  std::vector<std::unique_ptr<grpc::Server>> servers_;
  // Role changes are serialised (and so is learning a peer, which they read).
  absl::Mutex role_mu_;
  // Held by the admin's operation on a group for its whole run (OnGroup), one per group.
  std::array<absl::Mutex, DaemonConfig::kMaxGroups> operation_mu_;
  std::atomic<uint64_t> split_brain_seen_{0};
  int data_dir_lock_ = -1;  // flock on data_dir/LOCK: one daemon per data_dir
  bool stopped_ = false;
};

}  // namespace simarray::daemon
