#pragma once
// RdfGroup: one RDF group of this array (docs/groups.md) — a set of volumes mirrored to one
// remote array, in one mode, over one link. It owns what the pair needs on this side: the
// mirror queue, the owed tracks, the async cycles, the remote adaptor (link, shipper and
// peer calls), and the group's two state files: the peer a source taught this side in Hello
// (peer.address) and the failed-over marker (failed_over), both in the group's state
// directory (GroupConfig::StateDir) and written like data (docs/reliability.md, "State
// files").
//
// Life: construct, LoadLearnedPeer, Open (queue, owed tracks, cycles), then, once the commit
// point exists, Wire (the remote adaptor). The array decides the group's role and calls its
// adaptor's Start/Stop at role changes (daemon/array_roles.cc). Thread-safe after Wire.

#include <array>
#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/synchronization/mutex.h"
#include "daemon/config.h"
#include "simarray/base/fault_injector.h"
#include "simarray/cache/cache_memory.h"
#include "simarray/disk/disk_adaptor.h"
#include "simarray/disk/volume_catalog.h"
#include "simarray/mirror/commit_point.h"
#include "simarray/mirror/cycle_set.h"
#include "simarray/mirror/mirror_queue.h"
#include "simarray/mirror/owed_tracks.h"
#include "simarray/remote/remote_adaptor.h"
#include "simarray/rpc/rpc.h"

namespace simarray::daemon {

// What a group borrows from its array; all must outlive it.
struct GroupParts {
  std::string daemon_name;
  std::string data_dir;
  cache::CacheMemory* cache = nullptr;
  disk::VolumeCatalog* volumes = nullptr;
  disk::DiskAdaptor* disk = nullptr;
  FaultInjector* faults = nullptr;
  uint64_t queue_capacity = 4096;
  uint64_t max_write = 32 << 20;
  std::string peer_secret;  // the array's peer link secret and TLS (daemon-wide for now)
  rpc::TlsConfig peer_tls;
};

// Which side of a split this array is (docs/groups.md, "Operations"), if split.
enum class SplitSide { kNone, kR1, kR2 };

class RdfGroup {
 public:
  // `index`: the group's place in the array (0 for the first), which is its route at the
  // commit point and its bit in Volume::groups.
  RdfGroup(GroupConfig config, GroupParts parts, uint32_t index);
  ~RdfGroup();
  RdfGroup(const RdfGroup&) = delete;
  RdfGroup& operator=(const RdfGroup&) = delete;

  const GroupConfig& config() const { return config_; }
  const std::string& name() const { return config_.name; }
  uint32_t index() const { return index_; }
  uint32_t bit() const { return 1u << index_; }
  bool async() const { return config_.mode == "async"; }
  // data_dir for "default", data_dir/groups/NAME for any other.
  const std::string& state_dir() const { return state_dir_; }

  // Reads state_dir/peer.address, if there is one (an unreadable one is logged and ignored).
  void LoadLearnedPeer();
  // Creates the state directory, the mirror queue, the owed tracks (one bitmap per volume of
  // the array) and, in async mode, the cycles. The error names the file or directory.
  absl::Status Open();
  // Sets the group's route at `commit` and creates the remote adaptor, which ships through
  // the route's cycles in async mode.
  void Wire(mirror::CommitPoint* commit);

  // This array's side of the group: the source (R1), which takes host writes and ships, or
  // the target (R2), which applies. The first group's side is the daemon's role, kept in
  // the cache region's header by the array; any other group's is kept here, in
  // state_dir/role ("R1" or "R2"), written like data before the side changes.
  bool source() const { return source_.load(); }
  // Deleted at run time (Array::DeleteGroup): stopped, and skipped by GroupList.
  bool retired() const { return retired_.load(); }
  void Retire() { retired_ = true; }
  std::string role() const { return source() ? "primary" : "mirror"; }
  // At start: the side from state_dir/role, else `initial` (the config's); and the peer's
  // data generation this group last paired with (state_dir/peer.generation).
  void ReadRole(bool initial);
  // That generation: in the cache region's header for the first group (where it always
  // was), in state_dir/peer.generation for the others. A new one means an initial copy.
  uint64_t peer_generation();
  void SetPeerGeneration(uint64_t generation);
  // Persists the side (groups after the first) and only then changes source().
  absl::Status SetSource(bool source);
  // Stops shipping and closes the queue (array shutdown).
  void Shutdown();

  mirror::MirrorQueue* queue() { return queue_.get(); }
  mirror::OwedTracks* owed() { return owed_.get(); }
  mirror::CycleSet* cycles() { return cycles_.get(); }
  remote::RemoteAdaptor* remote() { return remote_.get(); }

  // Where the adaptor ships: the configured peer, else the learned one.
  std::string peer_address();
  // The source that last said Hello to this side (target) and its data generation.
  std::string learned_peer() ABSL_LOCKS_EXCLUDED(mu_);
  uint64_t learned_generation() ABSL_LOCKS_EXCLUDED(mu_);
  // Keeps a source's address and generation, in state_dir/peer.address first; on an error
  // (naming the file, the step and the errno) nothing learned changes. Tells the adaptor
  // (which takes it at its next Start).
  absl::Status LearnPeer(const std::string& address, uint64_t generation) ABSL_LOCKS_EXCLUDED(mu_);

  // state_dir/failed_over: a failed-over source keeps it so a restart does not start
  // shipping. SetFailedOver writes or removes it durably and only then changes
  // failed_over(); on an error failed_over() is unchanged and the caller refuses its role
  // change. ReadFailedOver is for the start: whether the marker is there.
  bool failed_over() const { return failed_over_.load(); }
  absl::Status SetFailedOver(bool failed_over);
  bool ReadFailedOver();
  std::string FailedOverPath() const;

  // state_dir/split, while the group is split: which side this array is ("R1" or "R2").
  // Written like the failed-over marker, and read at start (ReadSplit).
  SplitSide split() const { return split_.load(); }
  absl::Status SetSplit(SplitSide side);
  SplitSide ReadSplit();
  std::string SplitPath() const;

 private:
  const GroupConfig config_;
  const GroupParts parts_;
  const uint32_t index_;
  std::atomic<bool> source_{true};
  std::atomic<bool> retired_{false};
  std::atomic<uint64_t> peer_generation_{0};  // groups after the first
  const std::string state_dir_;
  std::unique_ptr<mirror::MirrorQueue> queue_;
  std::unique_ptr<mirror::OwedTracks> owed_;
  // Async mode: the cycles, and their delta set extension (dse.max_size, on the source).
  std::unique_ptr<mirror::DeltaSetExtension> dse_;
  std::unique_ptr<mirror::CycleSet> cycles_;
  std::unique_ptr<remote::RemoteAdaptor> remote_;
  std::atomic<bool> failed_over_{false};
  std::atomic<SplitSide> split_{SplitSide::kNone};
  absl::Mutex mu_;
  std::string learned_peer_ ABSL_GUARDED_BY(mu_);
  uint64_t learned_generation_ ABSL_GUARDED_BY(mu_) = 0;
};

// The array's groups: a fixed number of slots filled in order, at start and at run time
// (CreateGroup), never moved or freed while the array lives; a deleted group is retired, and
// iteration skips it. Readers take no lock (a slot is filled before the count says so);
// Add is serialised by its caller.
class GroupList {
 public:
  static constexpr size_t kSlots = DaemonConfig::kMaxGroups;
  using Slots = std::array<std::unique_ptr<RdfGroup>, kSlots>;

  class Iterator {
   public:
    Iterator(const Slots* slots, size_t at, size_t end) : slots_(slots), at_(at), end_(end) {
      Skip();
    }
    const std::unique_ptr<RdfGroup>& operator*() const { return (*slots_)[at_]; }
    Iterator& operator++() {
      ++at_;
      Skip();
      return *this;
    }
    bool operator!=(const Iterator& other) const { return at_ != other.at_; }

   private:
    void Skip() {
      while (at_ < end_ && (*slots_)[at_]->retired()) ++at_;
    }
    const Slots* slots_;
    size_t at_;
    size_t end_;
  };

  Iterator begin() const {
    const size_t n = count_.load(std::memory_order_acquire);
    return Iterator(&slots_, 0, n);
  }
  Iterator end() const {
    const size_t n = count_.load(std::memory_order_acquire);
    return Iterator(&slots_, n, n);
  }
  // Groups not retired.
  size_t size() const {
    size_t n = 0;
    for (auto it = begin(); it != end(); ++it) ++n;
    return n;
  }
  bool empty() const { return count_.load(std::memory_order_acquire) == 0; }
  // The first group (never retired: it is the daemon's role); the list must not be empty.
  const std::unique_ptr<RdfGroup>& front() const { return slots_[0]; }
  // The slot the next Add fills (its index), or kSlots when all are used.
  size_t next_index() const { return count_.load(std::memory_order_acquire); }
  RdfGroup* Add(std::unique_ptr<RdfGroup> group) {
    const size_t n = count_.load(std::memory_order_relaxed);
    slots_[n] = std::move(group);
    count_.store(n + 1, std::memory_order_release);
    return slots_[n].get();
  }

 private:
  Slots slots_;
  std::atomic<size_t> count_{0};
};

}  // namespace simarray::daemon
