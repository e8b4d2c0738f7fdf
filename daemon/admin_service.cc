#include "daemon/admin_service.h"

#include <cerrno>
#include <cstring>

#include "absl/strings/str_cat.h"
#include "daemon/array.h"
#include "daemon/status_report.h"
#include "simarray/base/secret.h"
#include "simarray/rpc/rpc.h"
#include "spdlog/spdlog.h"

namespace simarray::daemon {
namespace {

grpc::Status Error(grpc::StatusCode code, std::string message) {
  return grpc::Status(code, std::move(message));
}

// Tracks whose digests differ between this side and the mirror `link` ships to, compared in
// chunks.
absl::StatusOr<std::vector<uint64_t>> MismatchedTracks(Array& array, remote::RemoteAdaptor& link,
                                                       uint32_t volume_id, uint64_t tracks) {
  constexpr uint64_t kChunk = 4096;
  std::vector<uint64_t> mismatched;
  for (uint64_t first = 0; first < tracks; first += kChunk) {
    const uint64_t count = std::min(kChunk, tracks - first);
    auto theirs = link.PeerDigests(volume_id, first, count);
    if (!theirs.ok()) return theirs.status();
    for (uint64_t i = 0; i < count; ++i) {
      auto mine = array.disk().TrackDigest(cache::TrackKey{volume_id, first + i});
      if (!mine.ok()) return mine.status();
      if (i >= theirs->size() || (*theirs)[i] != *mine) mismatched.push_back(first + i);
    }
  }
  return mismatched;
}

}  // namespace

grpc::Status AdminServiceImpl::Authorize(const grpc::ServerContext& context) {
  if (token_.empty()) return grpc::Status::OK;
  const auto& metadata = context.client_metadata();
  auto it = metadata.find("authorization");
  if (it == metadata.end()) {
    refusals_.fetch_add(1);
    spdlog::warn("admin: call from {} without a token refused", context.peer());
    return Error(grpc::StatusCode::UNAUTHENTICATED,
                 "this daemon needs the admin token: expected metadata "
                 "\"authorization: Bearer <token>\" (simarrayctl --token-file), got none");
  }
  constexpr std::string_view kBearer = "Bearer ";
  const std::string_view value(it->second.data(), it->second.size());
  if (value.substr(0, kBearer.size()) != kBearer ||
      !ConstantTimeEquals(value.substr(kBearer.size()), token_)) {
    refusals_.fetch_add(1);
    spdlog::warn("admin: call from {} with a wrong token refused", context.peer());
    return Error(grpc::StatusCode::PERMISSION_DENIED,
                 "wrong admin token (expected \"authorization: Bearer <token>\" with the "
                 "token of admin.token_file)");
  }
  return grpc::Status::OK;
}

grpc::Status AdminServiceImpl::Status(grpc::ServerContext* context,
                                      const v1::StatusRequest* request, v1::StatusReply* reply) {
  if (grpc::Status denied = Authorize(*context); !denied.ok()) return denied;
  FillStatus(*array_, reply, /*slot_counts=*/true);
  return grpc::Status::OK;
}

grpc::Status AdminServiceImpl::WatchEvents(grpc::ServerContext* context,
                                           const v1::WatchEventsRequest* request,
                                           grpc::ServerWriter<v1::Event>* writer) {
  if (grpc::Status denied = Authorize(*context); !denied.ok()) return denied;
  // Each watcher holds one of the sync server's threads while it follows.
  if (watchers_.fetch_add(1) >= kMaxWatchers) {
    watchers_.fetch_sub(1);
    return Error(grpc::StatusCode::RESOURCE_EXHAUSTED,
                 absl::StrCat("already ", kMaxWatchers, " event watchers; try again later"));
  }
  struct Release {
    std::atomic<int>* n;
    ~Release() { n->fetch_sub(1); }
  } release{&watchers_};
  EventLog& log = array_->events();
  uint64_t after = request->after_id();
  while (!context->IsCancelled()) {
    absl::StatusOr<std::vector<Event>> events = log.After(after, 256);
    if (!events.ok()) return rpc::ToGrpc(events.status());
    for (const Event& e : *events) {
      v1::Event out;
      FillEvent(e, &out);
      if (!writer->Write(out)) return grpc::Status::OK;  // the client went away
      after = e.id;
    }
    if (!events->empty()) continue;
    if (!request->follow()) return grpc::Status::OK;
    // Wakes at a new event, and now and then to notice a cancelled call.
    if (!log.WaitAfter(after, absl::Now() + absl::Milliseconds(250)) && log.closed()) {
      return Error(grpc::StatusCode::UNAVAILABLE, "the daemon is stopping");
    }
  }
  return grpc::Status::OK;
}

namespace {

void FillVolumeInfo(const disk::VolumeInfo& v, v1::VolumeInfo* out) {
  out->set_name(v.name);
  out->set_id(v.id);
  out->set_size(v.size);
  out->set_paired(v.paired);
  out->set_group(v.group);
}

}  // namespace

grpc::Status AdminServiceImpl::CreateVolume(grpc::ServerContext* context,
                                            const v1::CreateVolumeRequest* request,
                                            v1::VolumeInfo* reply) {
  if (grpc::Status denied = Authorize(*context); !denied.ok()) return denied;
  if (request->local() && !request->group().empty()) {
    return Error(grpc::StatusCode::INVALID_ARGUMENT,
                 absl::StrCat("expected a group or local, got both (group \"", request->group(),
                              "\" and local)"));
  }
  auto created =
      array_->CreateVolume(request->name(), request->size(), request->group(), request->local());
  if (!created.ok()) return rpc::ToGrpc(created.status());
  Publish("volume", created->name, "created",
          absl::StrCat("volume created: ", created->size, " bytes, id ", created->id,
                       created->group.empty() ? ", local (in no RDF group)"
                                              : absl::StrCat(", in RDF group ", created->group),
                       created->paired ? ", with its twin on the mirror" : ""));
  FillVolumeInfo(*created, reply);
  return grpc::Status::OK;
}

grpc::Status AdminServiceImpl::PairVolume(grpc::ServerContext* context,
                                          const v1::PairVolumeRequest* request,
                                          v1::PairVolumeReply* reply) {
  if (grpc::Status denied = Authorize(*context); !denied.ok()) return denied;
  auto paired = array_->PairVolume(request->name(), request->group());
  if (!paired.ok()) return rpc::ToGrpc(paired.status());
  if (paired->tracks_to_copy != 0 || paired->volume.paired) {
    Publish("volume", paired->volume.name, "paired",
            absl::StrCat("volume joined RDF group ", paired->volume.group, "; initial copy of ",
                         paired->tracks_to_copy, " tracks"));
  }
  FillVolumeInfo(paired->volume, reply->mutable_volume());
  reply->set_tracks_to_copy(paired->tracks_to_copy);
  return grpc::Status::OK;
}

grpc::Status AdminServiceImpl::DeleteVolume(grpc::ServerContext* context,
                                            const v1::DeleteVolumeRequest* request,
                                            v1::DeleteVolumeReply* reply) {
  if (grpc::Status denied = Authorize(*context); !denied.ok()) return denied;
  absl::Status deleted = array_->DeleteVolume(request->name(), request->force());
  if (deleted.ok()) Publish("volume", request->name(), "deleted", "volume deleted");
  return rpc::ToGrpc(deleted);
}

grpc::Status AdminServiceImpl::ListVolumes(grpc::ServerContext* context,
                                           const v1::ListVolumesRequest* request,
                                           v1::ListVolumesReply* reply) {
  if (grpc::Status denied = Authorize(*context); !denied.ok()) return denied;
  for (const auto& v : array_->volumes().List()) FillVolumeInfo(v, reply->add_volumes());
  return grpc::Status::OK;
}

grpc::Status AdminServiceImpl::CheckConsistency(grpc::ServerContext* context,
                                                const v1::CheckConsistencyRequest* request,
                                                v1::CheckConsistencyReply* reply) {
  if (grpc::Status denied = Authorize(*context); !denied.ok()) return denied;
  auto volume = array_->volumes().Find(request->volume());
  if (!volume.ok()) return rpc::ToGrpc(volume.status());
  if (array_->remote() == nullptr) {
    return Error(grpc::StatusCode::FAILED_PRECONDITION,
                 "this daemon ships to no mirror; run the check on the primary of a pair");
  }
  // The twin compared with: the one in the first of the volume's groups this array ships.
  remote::RemoteAdaptor* ra = nullptr;
  for (RdfGroup* g : array_->GroupsOf(**volume)) {
    if (ra == nullptr && g->source()) ra = g->remote();
  }
  if (!array_->InGroup(**volume)) {
    return Error(grpc::StatusCode::FAILED_PRECONDITION,
                 absl::StrCat("volume ", (*volume)->name,
                              " is local (in no RDF group): it has no twin to compare with; "
                              "volume pair puts it in the group"));
  }
  if (ra == nullptr) {
    return Error(grpc::StatusCode::FAILED_PRECONDITION,
                 absl::StrCat("volume ", (*volume)->name,
                              " is a target (R2) here; run the check on its group's source"));
  }
  const uint32_t id = (*volume)->id;
  const uint64_t tracks = (*volume)->size / array_->cache().track_size();
  const uint64_t cut = array_->cache().LastSequence();
  reply->set_cut_sequence(cut);
  ra->WaitApplied(cut, absl::Now() + absl::Milliseconds(request->wait_ms()));
  reply->set_mirror_applied_sequence(ra->Counters().mirror_applied_sequence);
  auto mismatched = MismatchedTracks(*array_, *ra, id, tracks);
  if (!mismatched.ok()) return rpc::ToGrpc(mismatched.status());
  reply->set_tracks_compared(tracks);
  for (uint64_t t : *mismatched) reply->add_mismatched_tracks(t);
  bool consistent = mismatched->empty();
  if (!consistent && request->repair()) {
    std::vector<cache::TrackKey> keys;
    for (uint64_t t : *mismatched) keys.push_back(cache::TrackKey{id, t});
    auto repaired = ra->ResendTracks(keys, absl::Seconds(30));
    if (!repaired.ok()) return rpc::ToGrpc(repaired.status());
    reply->set_tracks_repaired(*repaired);
    auto again = MismatchedTracks(*array_, *ra, id, tracks);
    if (!again.ok()) return rpc::ToGrpc(again.status());
    consistent = again->empty();
  }
  reply->set_owed_tracks(array_->owed()->owed(id));
  reply->set_consistent(consistent);
  spdlog::info(
      "consistency check of {}: cut {}, {} tracks compared, {} mismatched{}{}", (*volume)->name,
      cut, tracks, mismatched->size(),
      reply->tracks_repaired() ? absl::StrCat(", ", reply->tracks_repaired(), " repaired") : "",
      consistent ? ", consistent" : ", NOT consistent");
  return grpc::Status::OK;
}

void AdminServiceImpl::Publish(const char* kind, const std::string& subject,
                               const std::string& value, std::string detail) {
  Event e;
  e.kind = kind;
  e.subject = subject;
  e.value = value;
  e.detail = std::move(detail);
  array_->events().Publish(std::move(e));
}

absl::StatusOr<std::string> AdminServiceImpl::InjectDiskFault(
    const v1::InjectFaultRequest& request) {
  auto volume = array_->volumes().Find(request.volume());
  if (!volume.ok()) return volume.status();
  disk::DiskFaults& faults = array_->disk().faults();
  const std::string& name = (*volume)->name;
  if (request.kind() == v1::FAULT_DISK_HEAL) {
    const size_t cleared = faults.Clear((*volume)->id);
    array_->disk().RetryNow();
    return absl::StrCat(cleared, " disk fault", cleared == 1 ? "" : "s", " of ", name,
                        " disarmed; the destage retries its write-pending tracks by itself");
  }
  const bool full = request.kind() == v1::FAULT_DISK_FULL;
  disk::DiskOp op = disk::DiskOp::kWrite;
  if (request.op() == "sync") {
    op = disk::DiskOp::kSync;
  } else if (request.op() == "read" && !full) {
    op = disk::DiskOp::kRead;
  } else if (!request.op().empty() && request.op() != "write") {
    return absl::InvalidArgumentError(absl::StrCat("unknown disk operation \"", request.op(),
                                                   "\" for ",
                                                   full ? "disk-full; expected write or sync"
                                                        : "disk-error; expected write, "
                                                          "sync or read"));
  }
  const int error = full ? ENOSPC : EIO;
  faults.Arm((*volume)->id, op, error, request.count());
  return absl::StrCat(request.count() == 0 ? "every" : absl::StrCat("the next ", request.count()),
                      " ", disk::DiskOpName(op), " of ", name, "'s backing file fails with ",
                      full ? "ENOSPC (the disk is full)" : "EIO",
                      request.count() == 0 ? " until disk-heal" : "");
}

grpc::Status AdminServiceImpl::InjectFault(grpc::ServerContext* context,
                                           const v1::InjectFaultRequest* request,
                                           v1::InjectFaultReply* reply) {
  if (grpc::Status denied = Authorize(*context); !denied.ok()) return denied;
  switch (request->kind()) {
    case v1::FAULT_CORRUPT_NEXT_WRITE:
      array_->faults().ArmCorruptNextWrite();
      reply->set_description("the next host write will be corrupted in cache after staging");
      break;
    case v1::FAULT_CORRUPT_TRACK: {
      absl::Status s = array_->disk().CorruptTrack(request->volume(), request->track());
      if (!s.ok()) return rpc::ToGrpc(s);
      reply->set_description(absl::StrCat("track ", request->track(), " of ", request->volume(),
                                          " corrupted in the backing store, cached copy dropped"));
      break;
    }
    case v1::FAULT_DELAY_RECORDS:
      array_->faults().SetRecordDelayMs(request->duration_ms());
      reply->set_description(
          request->duration_ms() == 0
              ? std::string("shipped records are no longer delayed")
              : absl::StrCat("every shipped record is delayed by ", request->duration_ms(), " ms"));
      break;
    case v1::FAULT_CRASH_MID_APPLY:
      if (array_->is_primary() || array_->config().mode != "async") {
        return Error(grpc::StatusCode::FAILED_PRECONDITION,
                     "only an async mirror applies cycles; this daemon is " +
                         absl::StrCat(array_->role(), " in ", array_->config().mode, " mode"));
      }
      array_->faults().ArmCrashMidApply();
      reply->set_description(
          "this mirror will kill itself halfway through applying its next cycle; restart it "
          "to watch the cycle being redone");
      break;
    case v1::FAULT_DROP_LINK:
      if (array_->remote() == nullptr) {
        return Error(grpc::StatusCode::FAILED_PRECONDITION, "this daemon ships to no mirror");
      }
      array_->remote()->DropFor(absl::Milliseconds(request->duration_ms()));
      reply->set_description(
          absl::StrCat("the peer link is dropped for ", request->duration_ms(), " ms"));
      break;
    case v1::FAULT_DISK_ERROR:
    case v1::FAULT_DISK_FULL:
    case v1::FAULT_DISK_HEAL: {
      absl::StatusOr<std::string> described = InjectDiskFault(*request);
      if (!described.ok()) return rpc::ToGrpc(described.status());
      reply->set_description(*described);
      break;
    }
    default:
      return Error(grpc::StatusCode::INVALID_ARGUMENT,
                   absl::StrCat("unknown fault kind ", static_cast<int>(request->kind()),
                                "; expected corrupt-next-write, corrupt-track, delay-records, "
                                "drop-link, crash-mid-apply, disk-error, disk-full or disk-heal"));
  }
  spdlog::warn("fault injected: {}", reply->description());
  Publish("fault", request->volume().empty() ? std::string("array") : request->volume(),
          v1::FaultKind_Name(request->kind()),
          absl::StrCat("fault injected: ", reply->description()));
  return grpc::Status::OK;
}

}  // namespace simarray::daemon
