// RemoteAdaptor: saying hello (challenge-response, peer_auth.h) and the calls the admin
// service and role changes make to the peer, each on an authenticated session.
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "simarray/base/secret.h"
#include "simarray/remote/peer_auth.h"
#include "simarray/remote/remote_adaptor.h"
#include "simarray/rpc/rpc.h"

namespace simarray::remote {

v1::HelloRequest RemoteAdaptor::MakeHello(const std::string& role, bool ships) {
  v1::HelloRequest hello;
  hello.set_ships(ships);
  hello.set_mode(options_.mode);
  hello.set_daemon_id(options_.daemon_id);
  hello.set_role(role);
  hello.set_generation(cache_->generation());
  hello.set_track_size(cache_->track_size());
  {
    absl::MutexLock lock(&mu_);
    hello.set_peer_address(self_address_);
  }
  hello.set_group(options_.group);
  for (const auto& v : volumes_->List()) {
    if (!disk::InGroup(v, options_.group)) continue;
    v1::PeerVolume* pv = hello.add_volumes();
    pv->set_name(v.name);
    pv->set_id(v.id);
    pv->set_size(v.size);
  }
  return hello;
}

absl::StatusOr<v1::HelloReply> RemoteAdaptor::SayHello(v1::PeerService::Stub& stub,
                                                       const std::string& role, bool ships,
                                                       absl::Duration timeout) {
  const auto deadline = absl::ToChronoTime(absl::Now() + timeout);
  grpc::ClientContext challenge_context;
  challenge_context.set_deadline(deadline);
  v1::ChallengeRequest challenge;
  challenge.set_daemon_id(options_.daemon_id);
  v1::ChallengeReply nonce;
  grpc::Status status = stub.Challenge(&challenge_context, challenge, &nonce);
  if (!status.ok()) return rpc::FromGrpc(status);

  v1::HelloRequest hello = MakeHello(role, ships);
  SignHello(options_.secret, nonce.nonce(), hello);
  grpc::ClientContext hello_context;
  hello_context.set_deadline(deadline);
  v1::HelloReply reply;
  status = stub.Hello(&hello_context, hello, &reply);
  if (!status.ok()) return rpc::FromGrpc(status);
  if (!options_.secret.empty() &&
      !ConstantTimeEquals(reply.proof(), ReplyProof(options_.secret, hello.client_nonce(),
                                                    hello.nonce(), reply.session()))) {
    return absl::UnauthenticatedError(absl::StrCat(
        "peer ", reply.daemon_id(), " did not prove it knows the secret: the peer secrets differ"));
  }
  absl::MutexLock lock(&mu_);
  session_ = reply.session();
  return reply;
}

template <typename Call>
absl::Status RemoteAdaptor::CallPeer(absl::Duration timeout, Call call) {
  for (int attempt = 0;; ++attempt) {
    auto stub = PeerStub();
    if (!stub) return absl::UnavailableError("no peer address known");
    std::string session;
    {
      absl::MutexLock lock(&mu_);
      session = session_;
    }
    if (session.empty()) {
      auto hello =
          SayHello(*stub, options_.role ? options_.role() : "mirror", /*ships=*/false, timeout);
      if (!hello.ok()) return hello.status();
      session = hello->session();
    }
    grpc::ClientContext context;
    context.set_deadline(absl::ToChronoTime(absl::Now() + timeout));
    context.AddMetadata(kSessionMetadata, session);
    grpc::Status status = call(*stub, context);
    if (status.error_code() != grpc::StatusCode::UNAUTHENTICATED || attempt > 0) {
      return rpc::FromGrpc(status);
    }
    // The peer restarted (or closed the session): say hello again, once.
    absl::MutexLock lock(&mu_);
    if (session_ == session) session_.clear();
  }
}

absl::Status RemoteAdaptor::Demote(bool discard_changes) {
  v1::RoleRequest request;
  request.set_daemon_id(options_.daemon_id);
  request.set_discard_changes(discard_changes);
  v1::RoleReply reply;
  return CallPeer(absl::Seconds(10), [&](auto& stub, auto& context) {
    return stub.Demote(&context, request, &reply);
  });
}

absl::Status RemoteAdaptor::Promote(uint64_t generation, bool split) {
  v1::RoleRequest request;
  request.set_daemon_id(options_.daemon_id);
  request.set_split(split);
  {
    absl::MutexLock lock(&mu_);
    request.set_peer_address(self_address_);
  }
  request.set_generation(generation);
  v1::RoleReply reply;
  return CallPeer(absl::Seconds(10), [&](auto& stub, auto& context) {
    return stub.Promote(&context, request, &reply);
  });
}

absl::StatusOr<std::vector<cache::TrackKey>> RemoteAdaptor::PeerOwed() {
  v1::ListOwedReply reply;
  absl::Status status = CallPeer(absl::Seconds(30), [&](auto& stub, auto& context) {
    return stub.ListOwed(&context, v1::ListOwedRequest(), &reply);
  });
  if (!status.ok()) return status;
  std::vector<cache::TrackKey> out;
  for (const auto& t : reply.tracks()) out.push_back(cache::TrackKey{t.volume_id(), t.track()});
  return out;
}

namespace {

// Calls a PeerService volume RPC (CreateVolume or DeleteVolume) about `volume`.
// `group`: the RDF group the twin is in on the peer (the adaptor's).
v1::PeerVolume AsPeerVolume(const disk::VolumeInfo& volume, const std::string& group) {
  v1::PeerVolume out;
  out.set_name(volume.name);
  out.set_id(volume.id);
  out.set_size(volume.size);
  out.set_group(group);
  return out;
}

}  // namespace

absl::Status RemoteAdaptor::CreateTwin(const disk::VolumeInfo& volume) {
  v1::PeerVolumeReply reply;
  absl::Status s = CallPeer(absl::Seconds(5), [&](auto& stub, auto& context) {
    return stub.CreateVolume(&context, AsPeerVolume(volume, options_.group), &reply);
  });
  return s.code() == absl::StatusCode::kAlreadyExists ? absl::OkStatus() : s;
}

absl::Status RemoteAdaptor::DeleteTwin(const disk::VolumeInfo& volume) {
  v1::PeerVolumeReply reply;
  return CallPeer(absl::Seconds(5), [&](auto& stub, auto& context) {
    return stub.DeleteVolume(&context, AsPeerVolume(volume, options_.group), &reply);
  });
}

absl::StatusOr<std::vector<uint64_t>> RemoteAdaptor::PeerDigests(uint32_t volume_id, uint64_t first,
                                                                 uint64_t count) {
  v1::TrackDigestsRequest request;
  request.set_volume_id(volume_id);
  request.set_first_track(first);
  request.set_count(count);
  v1::TrackDigestsReply reply;
  absl::Status status = CallPeer(absl::Seconds(60), [&](auto& stub, auto& context) {
    return stub.TrackDigests(&context, request, &reply);
  });
  if (!status.ok()) return status;
  return std::vector<uint64_t>(reply.digests().begin(), reply.digests().end());
}

}  // namespace simarray::remote
