// RemoteAdaptor: the life of the link — connecting, pairing volumes, initial copy, losing
// the link. Hello and the admin-facing peer calls are in remote_adaptor_calls.cc, shipping
// in remote_adaptor_ship.cc.
#include "simarray/remote/remote_adaptor.h"

#include <algorithm>
#include <random>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/notification.h"
#include "absl/time/clock.h"
#include "ship_stream.h"
#include "simarray/base/secret.h"
#include "simarray/remote/peer_auth.h"
#include "simarray/rpc/rpc.h"
#include "spdlog/spdlog.h"

namespace simarray::remote {

RemoteAdaptor::RemoteAdaptor(RemoteAdaptorOptions options, cache::CacheMemory* cache,
                             mirror::MirrorQueue* queue, mirror::OwedTracks* owed,
                             disk::VolumeCatalog* volumes, disk::DiskAdaptor* disk,
                             FaultInjector* faults, mirror::CommitPoint* commit)
    : options_(std::move(options)),
      cache_(cache),
      queue_(queue),
      owed_(owed),
      volumes_(volumes),
      disk_(disk),
      faults_(faults),
      commit_(commit),
      cycles_(commit != nullptr ? commit->cycles(options_.route) : nullptr),
      shipper_(
          ShipperOptions{
              .batch_records = options_.batch_records,
              .batch_bytes = options_.batch_bytes,
              .max_in_flight = options_.max_in_flight,
              .ack_timeout = options_.ack_timeout,
              // Often enough that a dead link shows well within ack_timeout.
              .heartbeat =
                  std::clamp(options_.ack_timeout / 4, absl::Milliseconds(20), absl::Seconds(1)),
          },
          [] { return absl::Now(); }) {
  const mirror::QueueCounters q = queue_->Counters();
  queue_taken_ = q.pushed - q.depth;
  peer_address_ = options_.peer_address;
  self_address_ = options_.self_address;
  emulator_.Set(options_.emulation);
  if (!peer_address_.empty()) {
    channel_ = rpc::MakeChannel(peer_address_, options_.max_write, options_.tls);
    stub_ = v1::PeerService::NewStub(channel_);
  }
  queue_->SetPushHook([this] { OnPush(); });
  owed_->SetResyncEvent(&wake_);
}

RemoteAdaptor::~RemoteAdaptor() {
  Stop();
  queue_->SetPushHook(nullptr);
  owed_->SetResyncEvent(nullptr);
}

void RemoteAdaptor::Start() {
  if (running_ || !PeerStub()) return;
  stop_ = false;
  split_brain_ = false;
  running_ = true;
  SetState(LinkState::kConnecting);
  sender_ = std::thread([this] { SenderLoop(); });
}

void RemoteAdaptor::Stop() {
  stop_ = true;
  Changed();  // the sender may be waiting
  if (sender_.joinable()) sender_.join();
  running_ = false;
  SetState(LinkState::kStopped);
}

void RemoteAdaptor::SetState(LinkState state) {
  {
    absl::MutexLock lock(&mu_);
    if (state_ == state) return;
    state_ = state;
  }
  Changed();
}

void RemoteAdaptor::Changed() {
  wake_.Notify();
  events_.Notify();
  state_changes_.Notify();
}

void RemoteAdaptor::SetPeerAddress(const std::string& address) {
  if (running_ || address.empty()) return;
  absl::MutexLock lock(&mu_);
  if (address == peer_address_ && stub_) return;
  peer_address_ = address;
  session_.clear();
  channel_ = rpc::MakeChannel(address, options_.max_write, options_.tls);
  stub_ = v1::PeerService::NewStub(channel_);
}

void RemoteAdaptor::RenewChannel() {
  absl::MutexLock lock(&mu_);
  if (peer_address_.empty()) return;
  spdlog::debug(
      "remote adaptor: {} connection attempts to {} failed; a new channel resolves it "
      "again",
      failed_connects_, peer_address_);
  channel_ = rpc::MakeChannel(peer_address_, options_.max_write, options_.tls);
  stub_ = v1::PeerService::NewStub(channel_);
}

std::string RemoteAdaptor::peer_address() {
  absl::MutexLock lock(&mu_);
  return peer_address_;
}

void RemoteAdaptor::SetSelfAddress(const std::string& address) {
  absl::MutexLock lock(&mu_);
  self_address_ = address;
}

bool RemoteAdaptor::split_brain() { return split_brain_.load(); }

bool RemoteAdaptor::Idle() {
  // Records move from the queue or a cycle to the shipper (queued, in flight, or handed
  // back and not yet released) and from there, or from a cycle, to the resync set. Read in that
  // order, a record that moves between two reads is seen by the later one.
  const mirror::QueueCounters q = queue_->Counters();
  if (q.depth != 0) return false;
  if (cycles_ != nullptr && !cycles_->Idle()) return false;
  {
    absl::MutexLock lock(&mu_);
    if (queue_taken_ != q.pushed) return false;  // popped, not yet anywhere else
  }
  if (shipper_.held() != 0) return false;
  return !owed_->resyncing();
}

bool RemoteAdaptor::LinkUp() {
  absl::MutexLock lock(&mu_);
  return state_ == LinkState::kUp;
}

std::shared_ptr<v1::PeerService::Stub> RemoteAdaptor::PeerStub() {
  absl::MutexLock lock(&mu_);
  return stub_;
}

void RemoteAdaptor::Suspend() {
  {
    absl::MutexLock lock(&mu_);
    if (!suspended_)
      spdlog::info("remote adaptor: link to {} suspended by the admin", peer_address_);
    suspended_ = true;
  }
  Changed();
}

void RemoteAdaptor::Resume() {
  {
    absl::MutexLock lock(&mu_);
    if (suspended_) spdlog::info("remote adaptor: link to {} resumed by the admin", peer_address_);
    suspended_ = false;
  }
  Changed();
}

void RemoteAdaptor::DropFor(absl::Duration duration) {
  {
    absl::MutexLock lock(&mu_);
    held_until_ = absl::Now() + duration;
  }
  Changed();
}

bool RemoteAdaptor::LinkOpen() {
  absl::MutexLock lock(&send_mu_);
  return stream_ != nullptr;
}

bool RemoteAdaptor::LinkHeld() {
  absl::MutexLock lock(&mu_);
  return suspended_ || absl::Now() < held_until_;
}

absl::Time RemoteAdaptor::HeldUntil() {
  absl::MutexLock lock(&mu_);
  return suspended_ ? absl::InfiniteFuture() : held_until_;
}

PairFacts RemoteAdaptor::Facts() {
  PairFacts f;
  f.split_brain = split_brain_;
  f.resyncing = owed_->resyncing();
  if (cycles_ != nullptr) {
    const mirror::CycleCounters c = cycles_->Counters();
    f.async = true;
    f.cycling = c.cycling;
    f.cycles_consistent = c.consistent;
  }
  absl::MutexLock lock(&mu_);
  f.link = state_;
  return f;
}

bool RemoteAdaptor::AdmitsWrites() {
  if (!options_.fail_writes_when_down) return true;
  absl::MutexLock lock(&mu_);
  return !suspended_ && absl::Now() >= held_until_ && state_ == LinkState::kUp &&
         !owed_->resyncing();
}

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

void RemoteAdaptor::Degrade(mirror::MirrorRequest& request) {
  owed_->NeedResync(request.key);
  if (!request.ticket) return;
  if (options_.fail_writes_when_down) {
    request.ticket->Fail(absl::UnavailableError(
        absl::StrCat("link to mirror ", peer_address(),
                     " is down and link.policy is \"fail\"; the "
                     "write is committed on this array and owed to the mirror")));
  } else {
    request.ticket->Unmirrored();
  }
}

void RemoteAdaptor::TearDown(const std::string& why) {
  std::unique_ptr<ShipStream> stream;
  {
    // From here on nobody sends: Kick finds no stream.
    absl::MutexLock lock(&send_mu_);
    steady_ = false;
    stream = std::move(stream_);
  }
  if (stream) {
    stream->Cancel();
    stream->WaitDone();  // every reply read is handled: each record is acked or lost below
    stream.reset();
  }
  std::vector<ShippedRecord> lost = shipper_.LoseAll();
  {
    absl::MutexLock lock(&mu_);
    counters_.records_degraded += lost.size();
    state_ = LinkState::kDown;
    ++counters_.link_losses;
  }
  state_changes_.Notify();
  owed_->UntakeAll();  // resync records in flight are taken again later
  for (ShippedRecord& s : lost) {
    // A cycle's records are owed through the cycle set, below.
    if (s.origin == Origin::kQueue) Degrade(s.request);
  }
  // The mirror drops the cycle it was receiving; every track of the cycles becomes owed.
  if (cycles_ != nullptr) cycles_->LinkLost();
  shipper_.Released(lost.size());
  Changed();
  spdlog::warn("remote adaptor: link to {} is down ({}); {} tracks owed", peer_address(), why,
               owed_->owed());
}

absl::StatusOr<uint64_t> RemoteAdaptor::ResendTracks(const std::vector<cache::TrackKey>& keys,
                                                     absl::Duration timeout) {
  if (keys.empty()) return 0;
  struct Outcome {
    absl::Notification done;
    absl::Status status;
  };
  // The cycle in transit may already claim a boundary these images are newer than.
  if (cycles_ != nullptr) cycles_->Taint();
  auto outcome = std::make_shared<Outcome>();
  auto ticket = std::make_shared<mirror::WriteTicket>(
      keys.size(), mirror::WriteTicket::Done([outcome](absl::Status s, bool mirrored) {
        outcome->status =
            s.ok() && !mirrored ? absl::UnavailableError("the link went down during repair") : s;
        outcome->done.Notify();
      }));
  std::vector<mirror::MirrorRequest> requests;
  for (const cache::TrackKey& key : keys) {
    // Stamped before the read: the image is at least as new as its stamp.
    const uint64_t stamp = cache_->LastSequence();
    auto slot = cache_->ReadTrack(key);
    if (!slot.ok()) return slot.status();
    mirror::MirrorRequest r;
    r.key = key;
    r.slot = slot->slot();
    r.offset = 0;
    r.length = cache_->track_size();
    r.sequence = stamp;
    r.data = std::move(*slot);
    r.ticket = ticket;
    requests.push_back(std::move(r));
  }
  shipper_.QueueFirst(std::move(requests), Origin::kQueue);
  Changed();  // the sender sends them first
  if (!outcome->done.WaitForNotificationWithTimeout(timeout)) {
    return absl::DeadlineExceededError("repair records were not acknowledged in time");
  }
  if (!outcome->status.ok()) return outcome->status;
  return keys.size();
}

bool RemoteAdaptor::WaitApplied(uint64_t sequence, absl::Time deadline) {
  // Waits for: the link up and either the mirror's acks reaching `sequence` with nothing
  // left to resync, or nothing left to ship at all (Idle). Acks (HandleReply), the link
  // coming up (Connect) and the resync set shrinking notify events_.
  return Await(
      [this, sequence] {
        if (!LinkUp()) return false;
        if (shipper_.AppliedSequence() >= sequence) return !owed_->resyncing();
        return Idle() && LinkUp();
      },
      deadline);
}

LinkCounters RemoteAdaptor::Counters() {
  const bool resyncing = owed_->resyncing();
  const ShipperCounters sc = shipper_.Counters();
  const uint64_t applied = shipper_.AppliedSequence();
  absl::MutexLock lock(&mu_);
  LinkCounters c = counters_;
  c.state = state_;
  c.resyncing = resyncing;
  static_cast<ShipperCounters&>(c) = sc;
  c.mirror_applied_sequence = applied;
  c.emulation = emulator_.Get();
  c.messages_lost = emulator_.lost();
  if (resyncing) {
    const double elapsed = absl::ToDoubleSeconds(absl::Now() - resync_started_);
    const uint64_t done = owed_->tracks_resynced() - resynced_at_start_;
    if (elapsed > 0 && done > 0) {
      c.resync_tracks_per_second = done / elapsed;
      c.resync_seconds_left = owed_->resync_pending() / c.resync_tracks_per_second;
    }
  }
  return c;
}

}  // namespace simarray::remote
