// The AdminService commands: status, volume, consistency, fault; and health (gRPC health).
#include <chrono>
#include <cstdio>
#include <string>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "grpc/health/v1/health.grpc.pb.h"
#include "simarray/base/size.h"
#include "simarray/rpc/rpc.h"
#include "simarray/v1/admin.grpc.pb.h"
#include "tools/ctl_commands.h"
#include "tools/ctl_output.h"

namespace simarray::ctl {
namespace {

std::unique_ptr<v1::AdminService::Stub> AdminStub(const GlobalOptions& global) {
  return v1::AdminService::NewStub(rpc::MakeChannel(global.admin, kClientMaxWrite));
}

void Print(const std::string& text) { std::fputs(text.c_str(), stdout); }

// Mismatched track numbers, at most `limit` of them, then how many more there are.
std::string TrackList(const v1::CheckConsistencyReply& reply, int limit) {
  std::vector<uint64_t> shown;
  for (int i = 0; i < reply.mismatched_tracks_size() && i < limit; ++i) {
    shown.push_back(reply.mismatched_tracks(i));
  }
  std::string out = absl::StrJoin(shown, ", ");
  if (reply.mismatched_tracks_size() > limit) {
    absl::StrAppend(&out, " and ", reply.mismatched_tracks_size() - limit, " more");
  }
  return out;
}

int InjectFault(const GlobalOptions& global, absl::string_view command,
                const v1::InjectFaultRequest& request) {
  grpc::ClientContext context;
  PrepareCall(context, global);
  v1::InjectFaultReply reply;
  grpc::Status status = AdminStub(global)->InjectFault(&context, request, &reply);
  if (!status.ok()) return ReportRpcError(command, status);
  Print(global.json ? ReplyJson(reply) + "\n" : reply.description() + "\n");
  return kExitOk;
}

}  // namespace

void PrepareCall(grpc::ClientContext& context, const GlobalOptions& global, int64_t extra_ms) {
  context.set_deadline(std::chrono::system_clock::now() +
                       std::chrono::milliseconds(global.timeout_ms + extra_ms));
  if (!global.token.empty()) context.AddMetadata("authorization", "Bearer " + global.token);
}

int RunHealth(const GlobalOptions& global, const std::string& address) {
  const std::string target = address.empty() ? global.admin : address;
  auto stub = grpc::health::v1::Health::NewStub(rpc::MakeChannel(target, kClientMaxWrite));
  grpc::ClientContext context;
  PrepareCall(context, global);
  grpc::health::v1::HealthCheckResponse reply;
  grpc::Status status = stub->Check(&context, grpc::health::v1::HealthCheckRequest(), &reply);
  if (!status.ok()) return ReportRpcError("health", status);
  const std::string name =
      grpc::health::v1::HealthCheckResponse::ServingStatus_Name(reply.status());
  Print(global.json ? JsonObject().Add("address", target).Add("status", name).str() + "\n"
                    : target + ": " + name + "\n");
  return reply.status() == grpc::health::v1::HealthCheckResponse::SERVING
             ? kExitOk
             : ReportError("health", absl::StrCat(target, " answers ", name, ", expected SERVING"));
}

int RunStatus(const GlobalOptions& global) {
  grpc::ClientContext context;
  PrepareCall(context, global);
  v1::StatusReply reply;
  grpc::Status status = AdminStub(global)->Status(&context, v1::StatusRequest(), &reply);
  if (!status.ok()) return ReportRpcError("status", status);
  Print(global.json ? ReplyJson(reply) + "\n" : FormatStatus(reply));
  return kExitOk;
}

int RunVolumeCreate(const GlobalOptions& global, const VolumeCreateOptions& options) {
  grpc::ClientContext context;
  PrepareCall(context, global);
  v1::CreateVolumeRequest request;
  request.set_name(options.name);
  request.set_size(options.size);
  request.set_group(options.group);
  request.set_local(options.local);
  v1::VolumeInfo reply;
  grpc::Status status = AdminStub(global)->CreateVolume(&context, request, &reply);
  if (!status.ok()) return ReportRpcError("volume create", status);
  Print(global.json
            ? ReplyJson(reply) + "\n"
            : absl::StrCat("created volume ", reply.name(), ": id ", reply.id(), ", size ",
                           FormatSize(reply.size()), " (", reply.size(), " bytes), ",
                           reply.group().empty() ? "local (in no RDF group)\n"
                           : reply.paired()      ? absl::StrCat("in RDF group ", reply.group(),
                                                                ", paired with its twin on the mirror\n")
                                                 : absl::StrCat("in RDF group ", reply.group(),
                                                                ", not paired yet\n")));
  return kExitOk;
}

int RunVolumePair(const GlobalOptions& global, const std::string& name, const std::string& group) {
  grpc::ClientContext context;
  PrepareCall(context, global);
  v1::PairVolumeRequest request;
  request.set_name(name);
  request.set_group(group);
  v1::PairVolumeReply reply;
  grpc::Status status = AdminStub(global)->PairVolume(&context, request, &reply);
  if (!status.ok()) return ReportRpcError("volume pair", status);
  Print(global.json
            ? ReplyJson(reply) + "\n"
            : absl::StrCat("volume ", reply.volume().name(), " is in RDF group ",
                           reply.volume().group(), "; initial copy of ", reply.tracks_to_copy(),
                           " tracks", reply.volume().paired() ? "" : " once the link is up", "\n"));
  return kExitOk;
}

int RunVolumeList(const GlobalOptions& global) {
  grpc::ClientContext context;
  PrepareCall(context, global);
  v1::ListVolumesReply reply;
  grpc::Status status = AdminStub(global)->ListVolumes(&context, v1::ListVolumesRequest(), &reply);
  if (!status.ok()) return ReportRpcError("volume list", status);
  if (global.json) {
    Print(ReplyJson(reply) + "\n");
    return kExitOk;
  }
  if (reply.volumes_size() == 0) {
    Print("no volumes\n");
    return kExitOk;
  }
  std::vector<std::vector<std::string>> rows = {{"NAME", "ID", "SIZE", "BYTES", "GROUP", "PAIRED"}};
  for (const v1::VolumeInfo& v : reply.volumes()) {
    rows.push_back({v.name(), absl::StrCat(v.id()), FormatSize(v.size()), absl::StrCat(v.size()),
                    v.group().empty() ? "-" : v.group(), v.paired() ? "yes" : "no"});
  }
  Print(FormatTable(rows, {false, true, true, true, false, false}));
  return kExitOk;
}

int RunGroupList(const GlobalOptions& global) {
  grpc::ClientContext context;
  PrepareCall(context, global);
  v1::ListGroupsReply reply;
  grpc::Status status = AdminStub(global)->ListGroups(&context, v1::ListGroupsRequest(), &reply);
  if (!status.ok()) return ReportRpcError("group list", status);
  if (global.json) {
    Print(ReplyJson(reply) + "\n");
  } else if (reply.groups_size() == 0) {
    Print("no RDF groups (this array has no peer)\n");
  } else {
    Print(FormatGroups(reply));
  }
  return kExitOk;
}

int RunGroupCreate(const GlobalOptions& global, const v1::CreateGroupRequest& request) {
  grpc::ClientContext context;
  PrepareCall(context, global);
  v1::GroupStatus reply;
  grpc::Status status = AdminStub(global)->CreateGroup(&context, request, &reply);
  if (!status.ok()) return ReportRpcError("group create", status);
  if (global.json) {
    Print(ReplyJson(reply) + "\n");
  } else {
    Print(absl::StrCat("created RDF group ", reply.name(), " (number ", reply.number(),
                       "): ", reply.role(), ", ", reply.mode(), ", ", reply.state(), "\n"));
  }
  return kExitOk;
}

int RunGroupDelete(const GlobalOptions& global, const std::string& name) {
  grpc::ClientContext context;
  PrepareCall(context, global);
  v1::DeleteGroupRequest request;
  request.set_name(name);
  v1::DeleteGroupReply reply;
  grpc::Status status = AdminStub(global)->DeleteGroup(&context, request, &reply);
  if (!status.ok()) return ReportRpcError("group delete", status);
  Print(absl::StrCat("deleted RDF group ", name, "\n"));
  return kExitOk;
}

int RunVolumeDelete(const GlobalOptions& global, const std::string& name, bool force) {
  grpc::ClientContext context;
  PrepareCall(context, global);
  v1::DeleteVolumeRequest request;
  request.set_name(name);
  request.set_force(force);
  v1::DeleteVolumeReply reply;
  grpc::Status status = AdminStub(global)->DeleteVolume(&context, request, &reply);
  if (!status.ok()) return ReportRpcError("volume delete", status);
  Print(global.json ? JsonObject().Add("volume", name).Add("deleted", true).str() + "\n"
                    : absl::StrCat("deleted volume ", name, "\n"));
  return kExitOk;
}

int RunConsistency(const GlobalOptions& global, const ConsistencyOptions& options) {
  grpc::ClientContext context;
  // The daemon may wait up to wait_ms before it starts comparing.
  PrepareCall(context, global, options.wait_ms);
  v1::CheckConsistencyRequest request;
  request.set_volume(options.volume);
  request.set_wait_ms(options.wait_ms);
  request.set_repair(options.repair);
  v1::CheckConsistencyReply reply;
  grpc::Status status = AdminStub(global)->CheckConsistency(&context, request, &reply);
  if (!status.ok()) return ReportRpcError("consistency", status);
  const int code = reply.consistent() ? kExitOk : kExitNotConsistent;
  if (global.json) {
    Print(ReplyJson(reply) + "\n");
    return code;
  }
  std::string text = absl::StrCat(
      options.volume, ": ", reply.consistent() ? "consistent" : "NOT consistent",
      "\n  cut sequence ", reply.cut_sequence(), ", mirror applied sequence ",
      reply.mirror_applied_sequence(), "\n  ", reply.tracks_compared(), " tracks compared, ",
      reply.mismatched_tracks_size(), options.repair ? " mismatched before repair" : " mismatched");
  if (reply.mismatched_tracks_size() > 0) absl::StrAppend(&text, ": ", TrackList(reply, 32));
  absl::StrAppend(&text, "\n  owed tracks ", reply.owed_tracks(), "\n");
  if (options.repair) {
    absl::StrAppend(&text, "  tracks repaired ", reply.tracks_repaired(),
                    reply.mismatched_tracks_size() > 0 && reply.consistent()
                        ? ", consistent after repair\n"
                        : "\n");
  }
  Print(text);
  return code;
}

int RunFaultCorruptNextWrite(const GlobalOptions& global) {
  v1::InjectFaultRequest request;
  request.set_kind(v1::FAULT_CORRUPT_NEXT_WRITE);
  return InjectFault(global, "fault corrupt-next-write", request);
}

int RunFaultCorruptTrack(const GlobalOptions& global, const std::string& volume, uint64_t track) {
  v1::InjectFaultRequest request;
  request.set_kind(v1::FAULT_CORRUPT_TRACK);
  request.set_volume(volume);
  request.set_track(track);
  return InjectFault(global, "fault corrupt-track", request);
}

int RunFaultCrashMidApply(const GlobalOptions& global) {
  v1::InjectFaultRequest request;
  request.set_kind(v1::FAULT_CRASH_MID_APPLY);
  return InjectFault(global, "fault crash-mid-apply", request);
}

int RunFaultDisk(const GlobalOptions& global, const std::string& kind, const std::string& volume,
                 const std::string& op, uint32_t count) {
  v1::InjectFaultRequest request;
  request.set_kind(kind == "disk-full"   ? v1::FAULT_DISK_FULL
                   : kind == "disk-heal" ? v1::FAULT_DISK_HEAL
                                         : v1::FAULT_DISK_ERROR);
  request.set_volume(volume);
  request.set_op(op);
  request.set_count(count);
  return InjectFault(global, "fault " + kind, request);
}

int RunFaultDelayRecords(const GlobalOptions& global, uint32_t delay_ms) {
  v1::InjectFaultRequest request;
  request.set_kind(v1::FAULT_DELAY_RECORDS);
  request.set_duration_ms(delay_ms);
  return InjectFault(global, "fault delay-records", request);
}

}  // namespace simarray::ctl
