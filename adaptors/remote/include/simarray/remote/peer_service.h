#pragma once
// PeerService (proto/simarray/v1/peer.proto) as served on the remote adaptor port: the
// receiving side of the link. Ship verifies each record's CRC-32C before applying it
// (a record that fails is refused and resent, never applied), applies records in the order
// they arrive (the primary's sequence order) and acknowledges cumulatively once the data
// is in this daemon's cache. Ship runs on gRPC's callback API (ShipReceiver, in
// src/ship_receiver.h): records are applied in the reaction when that needs no waiting,
// else on the service's one apply thread. The other calls are synchronous. Thread-safe;
// everything borrowed must outlive the server.

#include <atomic>
#include <functional>
#include <string>

#include "simarray/base/work_pool.h"
#include "simarray/cache/cache_memory.h"
#include "simarray/disk/disk_adaptor.h"
#include "simarray/disk/volume_catalog.h"
#include "simarray/mirror/owed_tracks.h"
#include "simarray/remote/peer_auth.h"
#include "simarray/remote/record_applier.h"
#include "simarray/v1/peer.grpc.pb.h"

namespace simarray::remote {

// This array's side of one RDF group, as the peer service sees it (docs/groups.md).
struct PeerGroupSide {
  std::string mode;  // "sync" or "async" (told in Hello replies)
  // This array is the group's source: it ships, it does not apply. It answers a source's
  // Hello with role "primary" (split brain, counted) and refuses its Ship with ABORTED.
  bool source = false;
  mirror::OwedTracks* owed = nullptr;  // twins made here get a bitmap too (may be null)
};

struct PeerServiceParts {
  std::string daemon_id;
  cache::CacheMemory* cache = nullptr;
  disk::VolumeCatalog* volumes = nullptr;
  disk::DiskAdaptor* disk = nullptr;
  RecordApplier* applier = nullptr;
  PeerGate* gate = nullptr;  // authentication: every call but Challenge and Hello
  // The side of RDF group `group` (a Hello that names none speaks for "default"); every
  // call after Hello is for the group its session's Hello named. FAILED_PRECONDITION,
  // naming this array's groups, for a group it does not have.
  std::function<absl::StatusOr<PeerGroupSide>(const std::string& group)> group;
  // A source said hello (no split brain): where its PeerService is, its data generation.
  std::function<void(const std::string& group, const std::string& address, uint64_t generation)>
      on_hello;
  // Role changes asked by the other side (RoleRequest in peer.proto says what each means).
  std::function<absl::Status(const std::string& group, const v1::RoleRequest& request)> demote;
  std::function<absl::Status(const std::string& group, const v1::RoleRequest& request)> promote;
};

class PeerServiceImpl final
    : public v1::PeerService::WithCallbackMethod_Ship<v1::PeerService::Service> {
 public:
  explicit PeerServiceImpl(PeerServiceParts parts) : parts_(std::move(parts)) {}

  grpc::Status Challenge(grpc::ServerContext* context, const v1::ChallengeRequest* request,
                         v1::ChallengeReply* reply) override;
  grpc::Status Hello(grpc::ServerContext* context, const v1::HelloRequest* request,
                     v1::HelloReply* reply) override;
  grpc::ServerBidiReactor<v1::ShipRequest, v1::ShipReply>* Ship(
      grpc::CallbackServerContext* context) override;
  grpc::Status TrackDigests(grpc::ServerContext* context, const v1::TrackDigestsRequest* request,
                            v1::TrackDigestsReply* reply) override;
  grpc::Status CreateVolume(grpc::ServerContext* context, const v1::PeerVolume* request,
                            v1::PeerVolumeReply* reply) override;
  grpc::Status DeleteVolume(grpc::ServerContext* context, const v1::PeerVolume* request,
                            v1::PeerVolumeReply* reply) override;
  grpc::Status Demote(grpc::ServerContext* context, const v1::RoleRequest* request,
                      v1::RoleReply* reply) override;
  grpc::Status Promote(grpc::ServerContext* context, const v1::RoleRequest* request,
                       v1::RoleReply* reply) override;
  grpc::Status ListOwed(grpc::ServerContext* context, const v1::ListOwedRequest* request,
                        v1::ListOwedReply* reply) override;

  uint64_t records_refused() const { return records_refused_.load(); }
  // Ship streams open now (a mirror with one is receiving from its primary).
  int open_streams() const { return open_streams_.load(); }
  // Hellos from a primary while this daemon was a primary too (split brain).
  uint64_t split_brain_refusals() const { return split_brain_refusals_.load(); }

 private:
  // The gate's check, then the side of the session's group.
  absl::StatusOr<PeerGroupSide> SessionGroup(const grpc::ServerContextBase& context,
                                             std::string* group);

  const PeerServiceParts parts_;
  std::atomic<uint64_t> records_refused_{0};
  std::atomic<int> open_streams_{0};
  std::atomic<uint64_t> split_brain_refusals_{0};
  // Applies that may wait (ship_receiver.h); one thread keeps a stream's records in order.
  WorkPool apply_pool_{1, 64};
};

}  // namespace simarray::remote
