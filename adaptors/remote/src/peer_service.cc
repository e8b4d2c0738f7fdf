#include "simarray/remote/peer_service.h"

#include "absl/strings/str_cat.h"
#include "ship_receiver.h"
#include "simarray/remote/cycle_receiver.h"
#include "simarray/rpc/rpc.h"
#include "spdlog/spdlog.h"

namespace simarray::remote {
namespace {
constexpr uint64_t kMaxDigestsPerCall = 1 << 16;
}  // namespace

absl::StatusOr<PeerGroupSide> PeerServiceImpl::SessionGroup(const grpc::ServerContextBase& context,
                                                            std::string* group) {
  if (grpc::Status denied = parts_.gate->Check(context, group); !denied.ok()) {
    return rpc::FromGrpc(denied);
  }
  return parts_.group(*group);
}

grpc::Status PeerServiceImpl::Challenge(grpc::ServerContext* context,
                                        const v1::ChallengeRequest* request,
                                        v1::ChallengeReply* reply) {
  reply->set_nonce(parts_.gate->IssueChallenge());
  return grpc::Status::OK;
}

grpc::Status PeerServiceImpl::Hello(grpc::ServerContext* context, const v1::HelloRequest* request,
                                    v1::HelloReply* reply) {
  auto admitted = parts_.gate->Admit(*request);
  if (!admitted.ok()) return rpc::ToGrpc(admitted.status());
  reply->set_session(admitted->session);
  reply->set_proof(admitted->proof);
  const uint32_t track_size = parts_.cache->track_size();
  if (request->track_size() != track_size) {
    return grpc::Status(grpc::StatusCode::FAILED_PRECONDITION,
                        absl::StrCat("track sizes differ: peer ", request->daemon_id(), " uses ",
                                     request->track_size(), ", this daemon uses ", track_size));
  }
  const std::string group = request->group().empty() ? "default" : request->group();
  auto side = parts_.group(group);
  if (!side.ok()) {
    return grpc::Status(grpc::StatusCode::FAILED_PRECONDITION,
                        absl::StrCat("peer ", request->daemon_id(), " speaks for RDF group ", group,
                                     ", ", side.status().message(),
                                     ": name the same group on both sides (docs/groups.md)"));
  }
  const bool pairing = request->ships() && request->role() == "primary";
  const bool split_brain = pairing && side->source;
  if (split_brain) {
    // The session stays open: the admin's failback --force needs the role calls. The caller
    // sees role "primary" in the reply and ships nothing; Ship refuses it anyway.
    spdlog::error(
        "peer service: SPLIT BRAIN: {} says hello as the source of RDF group {}, and so is "
        "this daemon; nothing is applied until an admin decides",
        request->daemon_id(), group);
    split_brain_refusals_.fetch_add(1);
  } else if (pairing && parts_.on_hello) {
    parts_.on_hello(group, request->peer_address(), request->generation());
  }
  if (pairing && !request->mode().empty() && request->mode() != side->mode) {
    spdlog::warn(
        "peer service: {} ships RDF group {} in {} mode, this daemon has it in {} mode; the "
        "source's mode decides, but set the same on both (a failover keeps this side's)",
        request->daemon_id(), group, request->mode(), side->mode);
  }
  reply->set_mode(side->mode);
  reply->set_cache_slots(parts_.cache->slot_count());
  reply->set_stage_tracks(parts_.applier->stage_capacity());
  reply->set_daemon_id(parts_.daemon_id);
  reply->set_role(side->source ? "primary" : "mirror");
  reply->set_generation(parts_.cache->generation());
  reply->set_track_size(track_size);
  reply->set_applied_sequence(parts_.applier->applied_sequence());
  reply->set_applied_cycle(parts_.applier->applied_cycle());
  reply->set_last_sequence(parts_.cache->LastSequence());
  for (const auto& v : parts_.volumes->List()) {
    v1::PeerVolume* pv = reply->add_volumes();
    pv->set_name(v.name);
    pv->set_id(v.id);
    pv->set_size(v.size);
    for (const auto& theirs : request->volumes()) {
      if (theirs.name() == v.name && theirs.size() != v.size) {
        reply->add_size_mismatches(
            absl::StrCat(v.name, ": local ", v.size, ", peer ", theirs.size()));
      }
    }
  }
  return grpc::Status::OK;
}

grpc::ServerBidiReactor<v1::ShipRequest, v1::ShipReply>* PeerServiceImpl::Ship(
    grpc::CallbackServerContext* context) {
  std::string group;
  auto side = SessionGroup(*context, &group);
  if (!side.ok()) return new RefusedShip(rpc::ToGrpc(side.status()));
  if (side->source) {
    return new RefusedShip(grpc::Status(
        grpc::StatusCode::ABORTED, absl::StrCat("this daemon is the source (primary) of RDF group ",
                                                group, ": it ships, it does not apply")));
  }
  return new ShipReceiver(context->peer(), parts_.applier, &apply_pool_,
                          ShipReceiver::Counters{&records_refused_, &open_streams_});
}

grpc::Status PeerServiceImpl::TrackDigests(grpc::ServerContext* context,
                                           const v1::TrackDigestsRequest* request,
                                           v1::TrackDigestsReply* reply) {
  if (grpc::Status denied = parts_.gate->Check(*context); !denied.ok()) return denied;
  auto volume = parts_.volumes->FindById(request->volume_id());
  if (volume == nullptr) {
    return grpc::Status(grpc::StatusCode::NOT_FOUND,
                        absl::StrCat("no volume with id ", request->volume_id()));
  }
  const uint64_t tracks = volume->size / parts_.cache->track_size();
  if (request->count() > kMaxDigestsPerCall || request->first_track() > tracks ||
      request->count() > tracks - request->first_track()) {
    return grpc::Status(grpc::StatusCode::OUT_OF_RANGE,
                        absl::StrCat("tracks [", request->first_track(), ", +", request->count(),
                                     ") outside volume of ", tracks, " tracks (at most ",
                                     kMaxDigestsPerCall, " a call)"));
  }
  for (uint64_t t = 0; t < request->count(); ++t) {
    auto digest = parts_.disk->TrackDigest(cache::TrackKey{volume->id, request->first_track() + t});
    if (!digest.ok()) return rpc::ToGrpc(digest.status());
    reply->add_digests(*digest);
  }
  return grpc::Status::OK;
}

grpc::Status PeerServiceImpl::CreateVolume(grpc::ServerContext* context,
                                           const v1::PeerVolume* request,
                                           v1::PeerVolumeReply* reply) {
  std::string session_group;
  if (grpc::Status denied = parts_.gate->Check(*context, &session_group); !denied.ok()) {
    return denied;
  }
  const std::string group = !request->group().empty() ? request->group() : session_group;
  auto side = parts_.group(group);
  if (!side.ok()) {
    return grpc::Status(grpc::StatusCode::FAILED_PRECONDITION,
                        absl::StrCat("a twin for RDF group ", group,
                                     " cannot be created here: ", side.status().message()));
  }
  auto created =
      parts_.volumes->Create(request->name(), request->size(), request->id(), true, group);
  if (!created.ok()) return rpc::ToGrpc(created.status());
  if (side->owed != nullptr) {
    (void)side->owed->AddVolume(created->id, created->size / parts_.cache->track_size());
  }
  spdlog::info("peer service: created twin volume {} (id {}, {} bytes)", request->name(),
               request->id(), request->size());
  return grpc::Status::OK;
}

grpc::Status PeerServiceImpl::DeleteVolume(grpc::ServerContext* context,
                                           const v1::PeerVolume* request,
                                           v1::PeerVolumeReply* reply) {
  if (grpc::Status denied = parts_.gate->Check(*context); !denied.ok()) return denied;
  auto volume = parts_.volumes->Find(request->name());
  if (!volume.ok()) return rpc::ToGrpc(volume.status());
  parts_.cache->DropVolume((*volume)->id);
  return rpc::ToGrpc(parts_.volumes->Delete(request->name()));
}

grpc::Status PeerServiceImpl::Demote(grpc::ServerContext* context, const v1::RoleRequest* request,
                                     v1::RoleReply* reply) {
  std::string group;
  if (auto side = SessionGroup(*context, &group); !side.ok()) return rpc::ToGrpc(side.status());
  if (!parts_.demote) return grpc::Status(grpc::StatusCode::UNIMPLEMENTED, "no role changes");
  spdlog::warn("peer service: {} asks this daemon to become the target of RDF group {}",
               request->daemon_id(), group);
  if (absl::Status s = parts_.demote(group, *request); !s.ok()) return rpc::ToGrpc(s);
  reply->set_role(parts_.group(group).value_or(PeerGroupSide{}).source ? "primary" : "mirror");
  reply->set_generation(parts_.cache->generation());
  return grpc::Status::OK;
}

grpc::Status PeerServiceImpl::Promote(grpc::ServerContext* context, const v1::RoleRequest* request,
                                      v1::RoleReply* reply) {
  std::string group;
  if (auto side = SessionGroup(*context, &group); !side.ok()) return rpc::ToGrpc(side.status());
  if (!parts_.promote) return grpc::Status(grpc::StatusCode::UNIMPLEMENTED, "no role changes");
  spdlog::warn("peer service: {} {} of RDF group {}", request->daemon_id(),
               request->split() ? "splits the pair: this daemon takes host writes"
                                : "hands the source role to this daemon",
               group);
  if (absl::Status s = parts_.promote(group, *request); !s.ok()) {
    return rpc::ToGrpc(s);
  }
  reply->set_role(parts_.group(group).value_or(PeerGroupSide{}).source ? "primary" : "mirror");
  reply->set_generation(parts_.cache->generation());
  return grpc::Status::OK;
}

grpc::Status PeerServiceImpl::ListOwed(grpc::ServerContext* context,
                                       const v1::ListOwedRequest* request,
                                       v1::ListOwedReply* reply) {
  std::string group;
  auto side = SessionGroup(*context, &group);
  if (!side.ok()) return rpc::ToGrpc(side.status());
  if (side->owed == nullptr) return grpc::Status::OK;
  for (const cache::TrackKey& key : side->owed->ListOwed()) {
    v1::OwedTrack* t = reply->add_tracks();
    t->set_volume_id(key.volume_id);
    t->set_track(key.track);
  }
  return grpc::Status::OK;
}

}  // namespace simarray::remote
