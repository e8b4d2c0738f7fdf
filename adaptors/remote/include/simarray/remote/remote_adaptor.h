#pragma once
// RemoteAdaptor: the primary's side of the peer link (claim 13). It takes validated mirror
// requests from the mirror queue in order, reads each one's bytes from its cache slot at
// ship time, and ships them in batches on one long-lived PeerService.Ship stream, many
// records in flight. The mirror acknowledges cumulatively; each ack completes the request's
// write ticket (the sync host reply) and clears the slot's mirror-owed flag.
//
// Link handling in this version: while the stream is down, or when an ack does not come
// within ack_timeout, the affected writes fail UNAVAILABLE (their data is committed
// locally) and the adaptor reconnects with bounded back-off.
//
// Threads: a sender thread (queue -> delay line -> stream, timeouts) and, per stream, a
// receiver thread (acks). Public methods are thread-safe.

#include <atomic>
#include <cstdint>
#include <deque>
#include <map>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "simarray/base/fault_injector.h"
#include "simarray/cache/cache_memory.h"
#include "simarray/disk/volume_catalog.h"
#include "simarray/mirror/mirror_queue.h"
#include "simarray/v1/peer.grpc.pb.h"

namespace simarray::remote {

struct RemoteAdaptorOptions {
  std::string daemon_id;
  std::string peer_address;
  uint64_t max_write = 32 << 20;
  absl::Duration ack_timeout = absl::Seconds(5);
  size_t batch_records = 64;
  size_t batch_bytes = 4 << 20;
  size_t max_in_flight = 4096;
};

struct LinkCounters {
  std::string state;  // "up", "connecting", "down"
  uint64_t records_shipped = 0;
  uint64_t records_acked = 0;
  uint64_t records_refused = 0;
  uint64_t records_failed = 0;
  uint64_t bytes_shipped = 0;
  uint64_t in_flight = 0;
  uint64_t in_flight_peak = 0;
  uint64_t ack_timeouts = 0;
  uint64_t connects = 0;
  uint64_t mirror_applied_sequence = 0;
};

class RemoteAdaptor {
 public:
  // All borrowed; must outlive the adaptor.
  RemoteAdaptor(RemoteAdaptorOptions options, cache::CacheMemory* cache, mirror::MirrorQueue* queue,
                disk::VolumeCatalog* volumes, FaultInjector* faults);
  ~RemoteAdaptor();
  RemoteAdaptor(const RemoteAdaptor&) = delete;
  RemoteAdaptor& operator=(const RemoteAdaptor&) = delete;

  void Start();
  void Stop();

  // Peer calls used by the admin service (synchronous, with a deadline).
  v1::PeerService::Stub& stub() { return *stub_; }
  absl::Status CreateTwin(const disk::VolumeInfo& volume);
  absl::Status DeleteTwin(const disk::VolumeInfo& volume);
  absl::StatusOr<std::vector<uint64_t>> PeerDigests(uint32_t volume_id, uint64_t first,
                                                    uint64_t count);

  // Ships whole tracks (current data, stamped with the sequence at which they were read)
  // and waits for the mirror's acks; returns how many were acknowledged.
  absl::StatusOr<uint64_t> ResendTracks(const std::vector<cache::TrackKey>& keys,
                                        absl::Duration timeout);

  // Waits until the mirror applied every write up to `sequence`, or nothing is queued or in
  // flight; false at the deadline.
  bool WaitApplied(uint64_t sequence, absl::Time deadline);

  LinkCounters Counters();

 private:
  struct Pending {
    mirror::MirrorRequest request;
    absl::Time due;  // delay fault: not sent before this
  };
  struct InFlight {
    mirror::MirrorRequest request;
    absl::Time deadline;
  };
  using Stream = grpc::ClientReaderWriter<v1::ShipRequest, v1::ShipReply>;

  void SenderLoop();
  bool Connect();
  void ReceiverLoop(Stream* stream);
  void TearDown(const absl::Status& why);
  void FailRequest(mirror::MirrorRequest& request, const absl::Status& why);
  void HandleReply(const v1::ShipReply& reply);
  uint64_t AppliedSequenceLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  const RemoteAdaptorOptions options_;
  cache::CacheMemory* const cache_;
  mirror::MirrorQueue* const queue_;
  disk::VolumeCatalog* const volumes_;
  FaultInjector* const faults_;
  std::shared_ptr<grpc::Channel> channel_;
  std::unique_ptr<v1::PeerService::Stub> stub_;
  std::atomic<bool> stop_{false};
  std::thread sender_;

  // Owned by the sender thread.
  std::unique_ptr<grpc::ClientContext> context_;
  std::unique_ptr<Stream> stream_;
  std::thread receiver_;
  std::atomic<bool> stream_broken_{false};
  uint64_t next_record_id_ = 1;

  absl::Mutex mu_;
  std::deque<Pending> delay_line_ ABSL_GUARDED_BY(mu_);
  std::deque<mirror::MirrorRequest> resend_ ABSL_GUARDED_BY(mu_);
  std::map<uint64_t, InFlight> in_flight_ ABSL_GUARDED_BY(mu_);
  uint64_t last_acked_sequence_ ABSL_GUARDED_BY(mu_) = 0;
  LinkCounters counters_ ABSL_GUARDED_BY(mu_);
};

}  // namespace simarray::remote
