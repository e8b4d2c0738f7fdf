#include "tools/bench/admin_calls.h"

#include <thread>

#include "absl/strings/str_cat.h"
#include "simarray/base/secret.h"
#include "simarray/rpc/rpc.h"
#include "simarray/v1/admin.grpc.pb.h"

namespace simarray::bench {
namespace {

std::unique_ptr<v1::AdminService::Stub> Admin(const AdminPort& admin) {
  return v1::AdminService::NewStub(rpc::MakeChannel(admin.address, 1 << 20));
}

// A call's deadline and the admin token, as simarrayctl sends it.
void Prepare(grpc::ClientContext& context, const AdminPort& admin, std::chrono::seconds limit) {
  context.set_deadline(std::chrono::system_clock::now() + limit);
  if (!admin.token.empty()) context.AddMetadata("authorization", "Bearer " + admin.token);
}

}  // namespace

absl::StatusOr<std::string> ReadToken(const std::string& path) {
  bool loose = false;
  return ReadSecretFile(path, &loose);
}

absl::Status WaitLinkUp(const AdminPort& admin, std::chrono::seconds limit) {
  auto stub = Admin(admin);
  const auto deadline = std::chrono::steady_clock::now() + limit;
  std::string last = "no answer";
  while (std::chrono::steady_clock::now() < deadline) {
    grpc::ClientContext context;
    Prepare(context, admin, std::chrono::seconds(5));
    v1::StatusReply reply;
    grpc::Status s = stub->Status(&context, v1::StatusRequest(), &reply);
    if (s.ok() && reply.link().state() == "up") return absl::OkStatus();
    if (s.error_code() == grpc::StatusCode::UNAUTHENTICATED ||
        s.error_code() == grpc::StatusCode::PERMISSION_DENIED) {
      return rpc::FromGrpc(s);  // waiting will not bring the token
    }
    last = s.ok() ? absl::StrCat("link ", reply.link().state()) : s.error_message();
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  return absl::UnavailableError(absl::StrCat("the primary at ", admin.address,
                                             " has no link up after ", limit.count(), " s (", last,
                                             ")"));
}

absl::Status EnsureVolume(const AdminPort& admin, const std::string& name, uint64_t size) {
  auto stub = Admin(admin);
  v1::VolumeInfo info;
  {
    grpc::ClientContext context;
    Prepare(context, admin, std::chrono::seconds(30));
    v1::CreateVolumeRequest request;
    request.set_name(name);
    request.set_size(size);
    grpc::Status s = stub->CreateVolume(&context, request, &info);
    if (!s.ok() && s.error_code() != grpc::StatusCode::ALREADY_EXISTS) {
      return rpc::FromGrpc(s);
    }
  }
  if (info.name().empty()) {  // it was there already: look it up
    grpc::ClientContext context;
    Prepare(context, admin, std::chrono::seconds(30));
    v1::ListVolumesReply list;
    if (grpc::Status s = stub->ListVolumes(&context, v1::ListVolumesRequest(), &list); !s.ok()) {
      return rpc::FromGrpc(s);
    }
    for (const v1::VolumeInfo& v : list.volumes()) {
      if (v.name() == name) info = v;
    }
  }
  if (info.size() != size) {
    return absl::FailedPreconditionError(absl::StrCat("volume ", name, " exists with ", info.size(),
                                                      " bytes, the bench needs ", size));
  }
  if (!info.paired()) {
    return absl::FailedPreconditionError(
        absl::StrCat("volume ", name, " is not paired: the mirror has no twin of it"));
  }
  return absl::OkStatus();
}

absl::Status SetLink(const AdminPort& admin, bool suspend) {
  auto stub = Admin(admin);
  grpc::ClientContext context;
  Prepare(context, admin, std::chrono::seconds(10));
  grpc::Status s;
  if (suspend) {
    v1::SuspendLinkReply reply;
    s = stub->SuspendLink(&context, v1::SuspendLinkRequest(), &reply);
  } else {
    v1::ResumeLinkReply reply;
    s = stub->ResumeLink(&context, v1::ResumeLinkRequest(), &reply);
  }
  return rpc::FromGrpc(s);
}

absl::StatusOr<v1::StatusReply> GetStatus(const AdminPort& admin) {
  auto stub = Admin(admin);
  v1::StatusReply status;
  grpc::ClientContext context;
  Prepare(context, admin, std::chrono::seconds(10));
  if (grpc::Status s = stub->Status(&context, v1::StatusRequest(), &status); !s.ok()) {
    return rpc::FromGrpc(s);
  }
  return status;
}

absl::Status CheckMirrorRole(const AdminPort& admin, const std::string& volume) {
  auto status = GetStatus(admin);
  if (!status.ok()) return status.status();
  if (status->role() != "mirror") {
    return absl::FailedPreconditionError(
        absl::StrCat("the daemon at ", admin.address, " is a ", status->role(), ", not a mirror"));
  }
  auto stub = Admin(admin);
  grpc::ClientContext context;
  Prepare(context, admin, std::chrono::seconds(10));
  v1::ListVolumesReply list;
  if (grpc::Status s = stub->ListVolumes(&context, v1::ListVolumesRequest(), &list); !s.ok()) {
    return rpc::FromGrpc(s);
  }
  for (const v1::VolumeInfo& v : list.volumes()) {
    if (v.name() == volume) return absl::OkStatus();
  }
  return absl::FailedPreconditionError(
      absl::StrCat("the mirror at ", admin.address, " has no volume ", volume));
}

std::string ConsistencyVerdict(const AdminPort& admin, const std::string& volume) {
  auto stub = Admin(admin);
  grpc::ClientContext context;
  Prepare(context, admin, std::chrono::seconds(60));
  v1::CheckConsistencyRequest request;
  request.set_volume(volume);
  request.set_wait_ms(10000);
  v1::CheckConsistencyReply reply;
  grpc::Status s = stub->CheckConsistency(&context, request, &reply);
  if (!s.ok()) return absl::StrCat("consistency check failed: ", s.error_message());
  if (reply.consistent()) {
    return absl::StrCat("mirror consistent (", reply.tracks_compared(), " tracks compared)");
  }
  return absl::StrCat("mirror NOT consistent: ", reply.mismatched_tracks_size(), " tracks differ, ",
                      reply.owed_tracks(), " owed");
}

}  // namespace simarray::bench
