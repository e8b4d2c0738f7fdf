#pragma once
// AdminService (proto/simarray/v1/admin.proto) on the management port: status, volumes,
// the consistency checker and fault injection. Synchronous gRPC service (admin calls may
// wait, e.g. CheckConsistency's wait_ms). Thread-safe; the Array must outlive it.
//
// With an admin token configured every call must carry metadata
// "authorization: Bearer <token>": without it the call fails UNAUTHENTICATED, with another
// token PERMISSION_DENIED. Health and reflection on the same port stay open.

#include <atomic>
#include <functional>
#include <string>

#include "absl/status/statusor.h"
#include "daemon/array.h"
#include "simarray/v1/admin.grpc.pb.h"

namespace simarray::daemon {

class Array;

class AdminServiceImpl final : public v1::AdminService::Service {
 public:
  // `token` empty: no token needed.
  AdminServiceImpl(Array* array, std::string token) : array_(array), token_(std::move(token)) {}

  // Calls refused for a missing or wrong token.
  uint64_t refusals() const { return refusals_.load(); }

  grpc::Status Status(grpc::ServerContext* context, const v1::StatusRequest* request,
                      v1::StatusReply* reply) override;
  grpc::Status CreateVolume(grpc::ServerContext* context, const v1::CreateVolumeRequest* request,
                            v1::VolumeInfo* reply) override;
  grpc::Status DeleteVolume(grpc::ServerContext* context, const v1::DeleteVolumeRequest* request,
                            v1::DeleteVolumeReply* reply) override;
  grpc::Status ListVolumes(grpc::ServerContext* context, const v1::ListVolumesRequest* request,
                           v1::ListVolumesReply* reply) override;
  grpc::Status CheckConsistency(grpc::ServerContext* context,
                                const v1::CheckConsistencyRequest* request,
                                v1::CheckConsistencyReply* reply) override;
  grpc::Status InjectFault(grpc::ServerContext* context, const v1::InjectFaultRequest* request,
                           v1::InjectFaultReply* reply) override;
  // At most kMaxWatchers at once (each holds a server thread); RESOURCE_EXHAUSTED beyond.
  grpc::Status WatchEvents(grpc::ServerContext* context, const v1::WatchEventsRequest* request,
                           grpc::ServerWriter<v1::Event>* writer) override;
  grpc::Status SuspendLink(grpc::ServerContext* context, const v1::SuspendLinkRequest* request,
                           v1::SuspendLinkReply* reply) override;
  grpc::Status EmulateLink(grpc::ServerContext* context, const v1::EmulateLinkRequest* request,
                           v1::EmulateLinkReply* reply) override;
  grpc::Status ResumeLink(grpc::ServerContext* context, const v1::ResumeLinkRequest* request,
                          v1::ResumeLinkReply* reply) override;
  grpc::Status Failover(grpc::ServerContext* context, const v1::RoleChangeRequest* request,
                        v1::RoleChangeReply* reply) override;
  grpc::Status Failback(grpc::ServerContext* context, const v1::RoleChangeRequest* request,
                        v1::RoleChangeReply* reply) override;
  grpc::Status Swap(grpc::ServerContext* context, const v1::RoleChangeRequest* request,
                    v1::RoleChangeReply* reply) override;
  grpc::Status Split(grpc::ServerContext* context, const v1::RoleChangeRequest* request,
                     v1::RoleChangeReply* reply) override;
  grpc::Status Establish(grpc::ServerContext* context, const v1::RoleChangeRequest* request,
                         v1::RoleChangeReply* reply) override;
  grpc::Status Restore(grpc::ServerContext* context, const v1::RoleChangeRequest* request,
                       v1::RoleChangeReply* reply) override;
  grpc::Status PairVolume(grpc::ServerContext* context, const v1::PairVolumeRequest* request,
                          v1::PairVolumeReply* reply) override;
  grpc::Status ListGroups(grpc::ServerContext* context, const v1::ListGroupsRequest* request,
                          v1::ListGroupsReply* reply) override;
  grpc::Status CreateGroup(grpc::ServerContext* context, const v1::CreateGroupRequest* request,
                           v1::GroupStatus* reply) override;
  grpc::Status DeleteGroup(grpc::ServerContext* context, const v1::DeleteGroupRequest* request,
                           v1::DeleteGroupReply* reply) override;

  static constexpr int kMaxWatchers = 16;

 private:
  // Runs a role change or group operation on the request's group (Array::OnGroup: NOT_FOUND,
  // ABORTED) and answers it, publishing its role_change event.
  grpc::Status GroupOperation(const char* what, const v1::RoleChangeRequest& request,
                              v1::RoleChangeReply* reply, const Array::GroupOp& operation);
  grpc::Status Authorize(const grpc::ServerContext& context);
  void Publish(const char* kind, const std::string& subject, const std::string& value,
               std::string detail);
  // disk-error, disk-full, disk-heal: arms or disarms the fault on the volume's backing file
  // and says what it did (docs/storage-faults.md).
  absl::StatusOr<std::string> InjectDiskFault(const v1::InjectFaultRequest& request);

  Array* const array_;
  const std::string token_;
  std::atomic<uint64_t> refusals_{0};
  std::atomic<int> watchers_{0};
};

}  // namespace simarray::daemon
