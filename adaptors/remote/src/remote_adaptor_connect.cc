// RemoteAdaptor: the link coming up — Connect (authentication, Hello, the volumes paired
// with the peer's, the cycles numbered on), and the initial copy of a volume. The rest of
// the link's life is in remote_adaptor.cc.
#include <algorithm>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "ship_stream.h"
#include "simarray/base/secret.h"
#include "simarray/remote/peer_auth.h"
#include "simarray/remote/remote_adaptor.h"
#include "spdlog/spdlog.h"

namespace simarray::remote {

uint64_t RemoteAdaptor::CopyVolume(const disk::VolumeInfo& volume) {
  std::vector<uint64_t> tracks = TracksWithData(volume);
  owed_->NeedResyncAll(volume.id, tracks);
  Changed();
  return tracks.size();
}

std::vector<uint64_t> RemoteAdaptor::TracksWithData(const disk::VolumeInfo& volume) {
  std::vector<uint64_t> tracks;
  const uint64_t count = volume.size / cache_->track_size();
  for (uint64_t t = 0; t < count; ++t) {
    auto has = disk_->TrackHasData(cache::TrackKey{volume.id, t});
    if (!has.ok() || *has) tracks.push_back(t);  // unreadable: ship it to be safe
  }
  return tracks;
}

absl::Status RemoteAdaptor::PairVolumes(const v1::HelloReply& reply) {
  const uint64_t last_paired =
      options_.peer_generation ? options_.peer_generation() : cache_->peer_generation();
  const bool initial_copy = reply.generation() != last_paired;
  for (const disk::VolumeInfo& v : volumes_->List()) {
    if (!disk::InGroup(v, options_.group)) continue;  // local, or another group's
    const v1::PeerVolume* twin = nullptr;
    for (const auto& pv : reply.volumes()) {
      if (pv.name() == v.name) twin = &pv;
    }
    if (twin != nullptr && (twin->id() != v.id || twin->size() != v.size)) {
      spdlog::error(
          "remote adaptor: volume {} differs on the mirror (id {} vs {}, size {} vs {}); "
          "not paired",
          v.name, v.id, twin->id(), v.size, twin->size());
      continue;
    }
    if (twin == nullptr) {
      if (absl::Status s = CreateTwin(v); !s.ok()) return s;
      spdlog::info("remote adaptor: created twin of volume {} on the mirror", v.name);
    }
    if (!v.paired) (void)volumes_->SetPaired(v.name, true);
    if (twin == nullptr || initial_copy) {
      std::vector<uint64_t> tracks = TracksWithData(v);
      spdlog::info("remote adaptor: initial copy of volume {}: {} of {} tracks hold data", v.name,
                   tracks.size(), v.size / cache_->track_size());
      owed_->NeedResyncAll(v.id, tracks);
    }
  }
  if (initial_copy) {
    spdlog::info(
        "remote adaptor: mirror {} has data generation {:#x}, this primary last paired "
        "with {:#x}: initial copy",
        reply.daemon_id(), reply.generation(), last_paired);
    if (options_.set_peer_generation) {
      options_.set_peer_generation(reply.generation());
    } else {
      cache_->SetPeerGeneration(reply.generation());
    }
  }
  return absl::OkStatus();
}

bool RemoteAdaptor::Connect() {
  auto stub = PeerStub();
  const std::string peer = peer_address();  // for the logs
  auto hello = SayHello(*stub, "primary", /*ships=*/true, absl::Seconds(1));
  if (!hello.ok()) {
    const absl::StatusCode code = hello.status().code();
    if (code == absl::StatusCode::kUnauthenticated ||
        code == absl::StatusCode::kFailedPrecondition) {
      // Refused for a reason retrying does not fix: a wrong secret, or a peer set up
      // otherwise (another RDF group, another track size).
      if (code == absl::StatusCode::kUnauthenticated) {
        absl::MutexLock lock(&mu_);
        ++counters_.auth_failures;
      }
      // Logged once per cause: a wrong secret does not fix itself between retries.
      if (last_refusal_ != hello.status().message()) {
        last_refusal_ = std::string(hello.status().message());
        spdlog::error("remote adaptor: {} refused the link: {}", peer, last_refusal_);
      }
    } else {
      spdlog::debug("remote adaptor: Hello to {} failed: {}", peer,
                    std::string(hello.status().message()));
    }
    return false;
  }
  last_refusal_.clear();
  const v1::HelloReply& reply = *hello;
  if (reply.role() == "primary") {
    if (!split_brain_.exchange(true)) {
      spdlog::error(
          "remote adaptor: SPLIT BRAIN: {} ({}) is a primary too; nothing is shipped until "
          "an admin decides",
          peer, reply.daemon_id());
    }
    return false;
  }
  split_brain_ = false;
  if (!reply.mode().empty() && reply.mode() != options_.mode) {
    spdlog::warn(
        "remote adaptor: the mirror {} is configured for {} mode, this primary ships in {} "
        "mode; set the same on both (a failover would switch to the mirror's)",
        reply.daemon_id(), reply.mode(), options_.mode);
  }
  if (cycles_ != nullptr && reply.cache_slots() != 0) {
    // The share of the mirror's slots (with its delta set extension, what it says it stages).
    cycles_->LimitToPeer(
        std::max(reply.stage_tracks(), reply.cache_slots() * options_.cycle_cache_percent / 100));
  }
  if (cycles_ != nullptr) {
    cycles_->NumberAfter(reply.applied_cycle());
    // A cascaded route numbers its boundaries from what passed it: at least what the
    // mirror applied, so its boundary never goes back.
    commit_->ObserveRouteSequence(options_.route, reply.applied_sequence());
  }
  // Ship above whatever the mirror holds: after a split or a failover it wrote tracks of
  // its own, and a record stamped lower than its image of a track would be skipped.
  cache_->ObserveSequence(reply.last_sequence());
  for (const auto& mismatch : reply.size_mismatches()) {
    spdlog::warn("remote adaptor: volume size differs on the peer: {}", mismatch);
  }
  if (absl::Status s = PairVolumes(reply); !s.ok()) {
    spdlog::warn("remote adaptor: pairing volumes with {} failed: {}", peer,
                 std::string(s.message()));
    return false;
  }
  shipper_.Reset();
  stream_broken_ = false;
  on_wire_ = false;
  {
    absl::MutexLock lock(&send_mu_);
    ship_stub_ = stub;
    stream_ = std::make_unique<ShipStream>(
        reply.session(),
        ShipStreamHandlers{
            .on_reply = [this](const v1::ShipReply& r) { HandleReply(r); },
            .on_write_done =
                [this] {
                  on_wire_ = false;
                  Kick();
                },
            .on_broken =
                [this] {
                  stream_broken_ = true;
                  wake_.Notify();  // the sender tears the link down
                },
        },
        &emulator_);
    stream_->Start(*ship_stub_);
  }
  {
    absl::MutexLock lock(&mu_);
    state_ = LinkState::kUp;
    ++counters_.connects;
    spdlog::info("remote adaptor: link to {} ({}) is up; {} tracks owed", peer, reply.daemon_id(),
                 owed_->owed());
  }
  state_changes_.Notify();
  Changed();
  return true;
}

}  // namespace simarray::remote
