// RemoteAdaptor: the life of the link — its state, suspend and resume, losing it. Connecting
// (Hello, pairing volumes, the initial copy) is in remote_adaptor_connect.cc, the
// admin-facing peer calls in remote_adaptor_calls.cc, shipping in remote_adaptor_ship.cc.
#include "simarray/remote/remote_adaptor.h"

#include <algorithm>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/notification.h"
#include "absl/time/clock.h"
#include "ship_stream.h"
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
