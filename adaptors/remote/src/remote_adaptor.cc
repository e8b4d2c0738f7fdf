#include "simarray/remote/remote_adaptor.h"

#include "absl/strings/str_cat.h"
#include "absl/synchronization/notification.h"
#include "absl/time/clock.h"
#include "simarray/base/crc32c.h"
#include "simarray/rpc/rpc.h"
#include "spdlog/spdlog.h"

namespace simarray::remote {

RemoteAdaptor::RemoteAdaptor(RemoteAdaptorOptions options, cache::CacheMemory* cache,
                             mirror::MirrorQueue* queue, disk::VolumeCatalog* volumes,
                             FaultInjector* faults)
    : options_(std::move(options)),
      cache_(cache),
      queue_(queue),
      volumes_(volumes),
      faults_(faults),
      channel_(rpc::MakeChannel(options_.peer_address, options_.max_write)),
      stub_(v1::PeerService::NewStub(channel_)) {
  counters_.state = "connecting";
}

RemoteAdaptor::~RemoteAdaptor() { Stop(); }

void RemoteAdaptor::Start() {
  sender_ = std::thread([this] { SenderLoop(); });
}

void RemoteAdaptor::Stop() {
  stop_ = true;
  if (sender_.joinable()) sender_.join();
}

bool RemoteAdaptor::Connect() {
  grpc::ClientContext hello_context;
  hello_context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(1));
  v1::HelloRequest hello;
  hello.set_daemon_id(options_.daemon_id);
  hello.set_role("primary");
  hello.set_generation(cache_->region().header().generation);
  hello.set_track_size(cache_->track_size());
  for (const auto& v : volumes_->List()) {
    v1::PeerVolume* pv = hello.add_volumes();
    pv->set_name(v.name);
    pv->set_id(v.id);
    pv->set_size(v.size);
  }
  v1::HelloReply reply;
  grpc::Status status = stub_->Hello(&hello_context, hello, &reply);
  if (!status.ok()) {
    spdlog::debug("remote adaptor: Hello to {} failed: {}", options_.peer_address,
                  status.error_message());
    return false;
  }
  for (const auto& mismatch : reply.size_mismatches()) {
    spdlog::warn("remote adaptor: volume size differs on the peer: {}", mismatch);
  }
  context_ = std::make_unique<grpc::ClientContext>();
  stream_ = stub_->Ship(context_.get());
  stream_broken_ = false;
  receiver_ = std::thread([this, stream = stream_.get()] { ReceiverLoop(stream); });
  absl::MutexLock lock(&mu_);
  counters_.state = "up";
  ++counters_.connects;
  spdlog::info("remote adaptor: link to {} ({}) is up", options_.peer_address, reply.daemon_id());
  return true;
}

void RemoteAdaptor::ReceiverLoop(Stream* stream) {
  v1::ShipReply reply;
  while (stream->Read(&reply)) HandleReply(reply);
  stream_broken_ = true;
}

void RemoteAdaptor::HandleReply(const v1::ShipReply& reply) {
  std::vector<mirror::MirrorRequest> acked;
  {
    absl::MutexLock lock(&mu_);
    for (uint64_t id : reply.refused()) {
      auto it = in_flight_.find(id);
      if (it == in_flight_.end()) continue;
      resend_.push_back(std::move(it->second.request));
      in_flight_.erase(it);
      ++counters_.records_refused;
    }
    while (!in_flight_.empty() && in_flight_.begin()->first <= reply.acked_through()) {
      mirror::MirrorRequest& r = in_flight_.begin()->second.request;
      last_acked_sequence_ = std::max(last_acked_sequence_, r.sequence);
      acked.push_back(std::move(r));
      in_flight_.erase(in_flight_.begin());
    }
    counters_.records_acked += acked.size();
  }
  for (mirror::MirrorRequest& r : acked) {
    cache_->ClearMirrorOwed(r.slot, r.sequence);
    if (r.ticket) r.ticket->Ack();
  }
}

void RemoteAdaptor::FailRequest(mirror::MirrorRequest& request, const absl::Status& why) {
  if (request.ticket) request.ticket->Fail(why);
}

void RemoteAdaptor::TearDown(const absl::Status& why) {
  if (context_) context_->TryCancel();
  if (receiver_.joinable()) receiver_.join();
  if (stream_) stream_->Finish();
  stream_.reset();
  context_.reset();
  std::vector<mirror::MirrorRequest> failed;
  {
    absl::MutexLock lock(&mu_);
    for (auto& [id, f] : in_flight_) failed.push_back(std::move(f.request));
    in_flight_.clear();
    counters_.records_failed += failed.size();
    counters_.state = "down";
  }
  for (auto& r : failed) FailRequest(r, why);
  spdlog::warn("remote adaptor: link to {} is down: {}", options_.peer_address,
               std::string(why.message()));
}

void RemoteAdaptor::SenderLoop() {
  absl::Duration backoff = absl::Milliseconds(100);
  const absl::Status down =
      absl::UnavailableError(absl::StrCat("link to peer ", options_.peer_address,
                                          " is down; the write is committed "
                                          "on this array but not mirrored"));
  while (!stop_) {
    if (!stream_ && !Connect()) {
      // No link: every request that needs one fails now rather than waiting.
      std::vector<mirror::MirrorRequest> failed = queue_->PopBatch(4096, absl::ZeroDuration());
      {
        absl::MutexLock lock(&mu_);
        counters_.state = "down";
        for (auto& p : delay_line_) failed.push_back(std::move(p.request));
        delay_line_.clear();
        for (auto& r : resend_) failed.push_back(std::move(r));
        resend_.clear();
        counters_.records_failed += failed.size();
      }
      for (auto& r : failed) FailRequest(r, down);
      absl::SleepFor(backoff);
      backoff = std::min(backoff * 2, absl::Seconds(2));
      continue;
    }
    backoff = absl::Milliseconds(100);
    if (stream_broken_) {
      TearDown(
          absl::UnavailableError(absl::StrCat("Ship stream to ", options_.peer_address, " broke")));
      continue;
    }

    // Queue -> delay line (the delay fault holds records back without serialising them).
    size_t room;
    absl::Duration wait = absl::Milliseconds(5);
    {
      absl::MutexLock lock(&mu_);
      size_t held = in_flight_.size() + delay_line_.size();
      room = held < options_.max_in_flight ? options_.max_in_flight - held : 0;
      if (!delay_line_.empty()) {
        wait = std::clamp(delay_line_.front().due - absl::Now(), absl::ZeroDuration(), wait);
      }
      if (!resend_.empty()) wait = absl::ZeroDuration();
    }
    std::vector<mirror::MirrorRequest> popped;
    if (room > 0) {
      popped = queue_->PopBatch(std::min(room, options_.batch_records), wait);
    } else {
      absl::SleepFor(absl::Milliseconds(1));
    }
    const absl::Time now = absl::Now();
    const absl::Duration delay = absl::Milliseconds(faults_->record_delay_ms());

    // Delay line and resends -> one Ship message.
    std::vector<mirror::MirrorRequest> batch;
    {
      absl::MutexLock lock(&mu_);
      for (auto& r : popped) delay_line_.push_back(Pending{std::move(r), now + delay});
      size_t bytes = 0;
      while (batch.size() < options_.batch_records && bytes < options_.batch_bytes) {
        if (!resend_.empty()) {
          batch.push_back(std::move(resend_.front()));
          resend_.pop_front();
        } else if (!delay_line_.empty() && delay_line_.front().due <= now) {
          batch.push_back(std::move(delay_line_.front().request));
          delay_line_.pop_front();
        } else {
          break;
        }
        bytes += batch.back().length;
      }
    }
    if (!batch.empty()) {
      v1::ShipRequest message;
      uint64_t bytes = 0;
      std::vector<uint64_t> ids;
      for (const mirror::MirrorRequest& r : batch) {
        // The bytes are read from the cache slot now, at ship time.
        std::span<const uint8_t> data = r.data.data().subspan(r.offset, r.length);
        v1::ShipRecord* rec = message.add_records();
        rec->set_record_id(next_record_id_);
        ids.push_back(next_record_id_++);
        rec->set_sequence(r.sequence);
        rec->set_volume_id(r.key.volume_id);
        rec->set_track(r.key.track);
        rec->set_offset(r.offset);
        rec->set_data(data.data(), data.size());
        rec->set_crc32c(Crc32c(data));
        bytes += data.size();
      }
      {
        absl::MutexLock lock(&mu_);
        const absl::Time deadline = now + options_.ack_timeout;
        for (size_t i = 0; i < batch.size(); ++i) {
          in_flight_.emplace(ids[i], InFlight{std::move(batch[i]), deadline});
        }
        counters_.records_shipped += ids.size();
        counters_.bytes_shipped += bytes;
        counters_.in_flight_peak =
            std::max<uint64_t>(counters_.in_flight_peak, in_flight_.size() + delay_line_.size());
      }
      if (!stream_->Write(message)) stream_broken_ = true;
    }

    bool timed_out = false;
    {
      absl::MutexLock lock(&mu_);
      counters_.in_flight_peak =
          std::max<uint64_t>(counters_.in_flight_peak, in_flight_.size() + delay_line_.size());
      if (!in_flight_.empty() && in_flight_.begin()->second.deadline < absl::Now()) {
        timed_out = true;
        ++counters_.ack_timeouts;
      }
    }
    if (timed_out) {
      TearDown(absl::UnavailableError(absl::StrCat("mirror ", options_.peer_address,
                                                   " did not acknowledge within ack_timeout_ms=",
                                                   absl::ToInt64Milliseconds(options_.ack_timeout),
                                                   "; the write is committed on this "
                                                   "array but not mirrored")));
    }
  }
  if (stream_) TearDown(absl::UnavailableError("daemon stopping"));
  std::vector<mirror::MirrorRequest> left = queue_->PopBatch(1 << 20, absl::ZeroDuration());
  absl::MutexLock lock(&mu_);
  for (auto& p : delay_line_) left.push_back(std::move(p.request));
  for (auto& r : resend_) left.push_back(std::move(r));
  delay_line_.clear();
  resend_.clear();
  for (auto& r : left) FailRequest(r, absl::UnavailableError("daemon stopping"));
}

uint64_t RemoteAdaptor::AppliedSequenceLocked() {
  if (in_flight_.empty()) return last_acked_sequence_;
  return std::min(last_acked_sequence_, in_flight_.begin()->second.request.sequence - 1);
}

bool RemoteAdaptor::WaitApplied(uint64_t sequence, absl::Time deadline) {
  int idle_checks = 0;
  while (absl::Now() < deadline) {
    {
      absl::MutexLock lock(&mu_);
      if (AppliedSequenceLocked() >= sequence) return true;
      bool idle = in_flight_.empty() && delay_line_.empty() && resend_.empty();
      idle_checks = idle && queue_->Counters().depth == 0 ? idle_checks + 1 : 0;
    }
    if (idle_checks >= 2) return true;
    absl::SleepFor(absl::Milliseconds(2));
  }
  return false;
}

absl::StatusOr<uint64_t> RemoteAdaptor::ResendTracks(const std::vector<cache::TrackKey>& keys,
                                                     absl::Duration timeout) {
  if (keys.empty()) return 0;
  struct Outcome {
    absl::Notification done;
    absl::Status status;
  };
  auto outcome = std::make_shared<Outcome>();
  auto ticket = std::make_shared<mirror::WriteTicket>(keys.size(), [outcome](absl::Status s) {
    outcome->status = s;
    outcome->done.Notify();
  });
  std::vector<mirror::MirrorRequest> requests;
  for (const cache::TrackKey& key : keys) {
    auto slot = cache_->ReadTrack(key);
    if (!slot.ok()) return slot.status();
    mirror::MirrorRequest r;
    r.key = key;
    r.slot = slot->slot();
    r.offset = 0;
    r.length = cache_->track_size();
    r.sequence = cache_->LastSequence();  // the sequence at which it was read
    r.data = std::move(*slot);
    r.ticket = ticket;
    requests.push_back(std::move(r));
  }
  {
    absl::MutexLock lock(&mu_);
    for (auto& r : requests) resend_.push_back(std::move(r));
  }
  if (!outcome->done.WaitForNotificationWithTimeout(timeout)) {
    return absl::DeadlineExceededError("repair records were not acknowledged in time");
  }
  if (!outcome->status.ok()) return outcome->status;
  return keys.size();
}

namespace {

// Calls a PeerService volume RPC (CreateVolume or DeleteVolume) about `volume`.
template <typename Method>
absl::Status CallAboutVolume(v1::PeerService::Stub& stub, Method method,
                             const disk::VolumeInfo& volume) {
  grpc::ClientContext context;
  context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(5));
  v1::PeerVolume request;
  request.set_name(volume.name);
  request.set_id(volume.id);
  request.set_size(volume.size);
  v1::PeerVolumeReply reply;
  return rpc::FromGrpc((stub.*method)(&context, request, &reply));
}

}  // namespace

absl::Status RemoteAdaptor::CreateTwin(const disk::VolumeInfo& volume) {
  return CallAboutVolume(*stub_, &v1::PeerService::Stub::CreateVolume, volume);
}

absl::Status RemoteAdaptor::DeleteTwin(const disk::VolumeInfo& volume) {
  return CallAboutVolume(*stub_, &v1::PeerService::Stub::DeleteVolume, volume);
}

absl::StatusOr<std::vector<uint64_t>> RemoteAdaptor::PeerDigests(uint32_t volume_id, uint64_t first,
                                                                 uint64_t count) {
  grpc::ClientContext context;
  context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(60));
  v1::TrackDigestsRequest request;
  request.set_volume_id(volume_id);
  request.set_first_track(first);
  request.set_count(count);
  v1::TrackDigestsReply reply;
  grpc::Status status = stub_->TrackDigests(&context, request, &reply);
  if (!status.ok()) return rpc::FromGrpc(status);
  return std::vector<uint64_t>(reply.digests().begin(), reply.digests().end());
}

LinkCounters RemoteAdaptor::Counters() {
  absl::MutexLock lock(&mu_);
  LinkCounters c = counters_;
  c.in_flight = in_flight_.size() + delay_line_.size();
  c.mirror_applied_sequence = AppliedSequenceLocked();
  return c;
}

}  // namespace simarray::remote
