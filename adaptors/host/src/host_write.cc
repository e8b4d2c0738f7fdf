// The write path of one host write, steps 2 to 6 of docs/write-path.md.
#include <cstring>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "simarray/base/crc32c.h"
#include "simarray/host/host_adaptor.h"
#include "spdlog/spdlog.h"

namespace simarray::host {

HostWrite::HostWrite(HostAdaptor* adaptor, std::shared_ptr<disk::Volume> volume, uint64_t offset,
                     uint64_t length, uint32_t crc32c, uint64_t write_id,
                     mirror::Reservations reservations, Waits waits, uint32_t groups)
    : adaptor_(adaptor),
      volume_(std::move(volume)),
      offset_(offset),
      length_(length),
      crc32c_(crc32c),
      write_id_(write_id),
      waits_(waits),
      groups_(groups),
      reservations_(std::move(reservations)) {}

HostWrite::~HostWrite() {
  if (!finished_) Drop(InvalidReason::kCancelled);
}

void HostWrite::ResetReservations() {
  for (mirror::Reservation& r : reservations_) r.Reset();
}

void HostWrite::Cancel() {
  if (!finished_) Drop(InvalidReason::kCancelled);
}

void HostWrite::Abandon() {
  // Append gave up before the pen saw anything of this write (WouldWait).
  finished_ = true;
  portions_.clear();
  ResetReservations();
  absl::MutexLock lock(&adaptor_->mu_);
  --adaptor_->counters_.writes;
}

// Step 2 for a new portion: a slot of its own in cache (and, for a partial track, a pin on
// the track's current image so the commit can fill the rest from memory); step 3: its
// mirror request in this adaptor's holding pen.
absl::Status HostWrite::StartPortion() {
  cache::CacheMemory* cache = adaptor_->parts_.cache;
  const uint64_t track_size = cache->track_size();
  const uint64_t pos = offset_ + received_;
  const cache::TrackKey key{volume_->id, pos / track_size};
  const auto in_track = static_cast<uint32_t>(pos % track_size);
  const auto length =
      static_cast<uint32_t>(std::min<uint64_t>(offset_ + length_ - pos, track_size - in_track));
  const bool now = waits_ == Waits::kNever;
  mirror::Portion portion;
  portion.offset = in_track;
  portion.length = length;
  if (length < track_size) {
    if (now) {
      std::optional<cache::TrackPin> pin = cache->TryPinTrack(key);
      if (!pin) return WouldWait("the track to be staged from disk");
      portion.pin = std::move(*pin);
    } else {
      auto pin = cache->PinTrack(key);
      if (!pin.ok()) return pin.status();
      portion.pin = std::move(*pin);
    }
  }
  const absl::Time deadline =
      now ? absl::InfinitePast() : absl::Now() + adaptor_->options_.wait_limit;
  auto staged = cache->AllocateStaging(key, write_id_, deadline);
  if (now && absl::IsDeadlineExceeded(staged.status())) return WouldWait("a free cache slot");
  if (!staged.ok()) return staged.status();
  mirror::MirrorRequest request;
  request.key = key;
  request.slot = staged->slot();
  request.offset = in_track;
  request.length = length;
  request.write_id = write_id_;
  portion.staged = std::move(*staged);
  if (groups_ == 0) {
    // A local volume: no mirror request (docs/groups.md).
  } else if (adaptor_->options_.bypass_pen) {
    unpenned_.push_back(std::move(request));
  } else if (absl::Status s = adaptor_->pen_.Buffer(std::move(request)); !s.ok()) {
    return s;
  }
  portions_.push_back(std::move(portion));
  return absl::OkStatus();
}

absl::Status HostWrite::Append(std::span<const uint8_t> bytes) {
  const uint64_t track_size = adaptor_->parts_.cache->track_size();
  if (received_ + bytes.size() > length_) {
    overflow_ += received_ + bytes.size() - length_;
    bytes = bytes.first(length_ - received_);
  }
  while (!bytes.empty()) {
    const uint64_t pos = offset_ + received_;
    if (received_ == 0 || pos % track_size == 0) {
      if (absl::Status s = StartPortion(); !s.ok()) {
        // A full cache or pen, waited out: the write is refused, and says why.
        if (!IsWouldWait(s) && (absl::IsDeadlineExceeded(s) || absl::IsResourceExhausted(s))) {
          Drop(InvalidReason::kResourceExhausted);
        }
        return s;
      }
    }
    mirror::Portion& portion = portions_.back();
    const uint64_t in_track = pos % track_size;
    const uint64_t n = std::min<uint64_t>(bytes.size(), portion.offset + portion.length - in_track);
    std::memcpy(portion.staged.data().data() + in_track, bytes.data(), n);
    bytes = bytes.subspan(n);
    received_ += n;
  }
  return absl::OkStatus();
}

void HostWrite::Drop(InvalidReason reason) {
  finished_ = true;
  adaptor_->pen_.Delete(write_id_);  // claims 5, 8, 9: every request of the write
  portions_.clear();                 // staged slots freed, pins released
  unpenned_.clear();
  ResetReservations();
  adaptor_->CountInvalid(reason, received_ + overflow_);
}

uint32_t HostWrite::CrcInCache() {
  uint32_t state = kCrc32cInit;
  for (mirror::Portion& p : portions_) {
    state =
        Crc32cExtend(state, std::span<const uint8_t>(p.staged.data().data() + p.offset, p.length));
  }
  return Crc32cFinish(state);
}

void HostWrite::Finish(WriteDone done) {
  if (finished_) {
    done(absl::InternalError("write already finished"));
    return;
  }
  // Step 4: validity of the data as it now sits in cache.
  if (overflow_ != 0) {
    Drop(InvalidReason::kLongStream);
    done(absl::InvalidArgumentError(absl::StrCat("stream delivered ", length_ + overflow_,
                                                 " bytes, header declared ", length_)));
    return;
  }
  if (received_ != length_) {
    Drop(InvalidReason::kShortStream);
    done(absl::InvalidArgumentError(
        absl::StrCat("stream ended after ", received_, " bytes, header declared ", length_)));
    return;
  }
  const bool injected = adaptor_->parts_.faults->TakeCorruptNextWrite();
  if (injected) portions_.front().staged.data()[portions_.front().offset] ^= 0xFF;
  const bool validate = !adaptor_->options_.bypass_pen;
  const uint32_t actual = validate ? CrcInCache() : crc32c_;
  if (actual != crc32c_) {
    const size_t deleted = groups_ != 0 ? portions_.size() : 0;
    Drop(injected ? InvalidReason::kInjected : InvalidReason::kCrcMismatch);
    spdlog::info(
        "host adaptor {}: invalid write to {} at {} ({} bytes): crc32c {:#010x} "
        "expected, {:#010x} in cache{}; {} mirror requests deleted",
        adaptor_->id(), volume_->name, offset_, length_, crc32c_, actual,
        injected ? " (injected fault)" : "", deleted);
    done(absl::DataLossError(
        absl::StrFormat("crc32c mismatch: host sent 0x%08x, data in cache has 0x%08x%s", crc32c_,
                        actual, injected ? " (corrupted by an injected fault)" : "")));
    return;
  }

  // Step 5: commit. The ticket counts one extra so it cannot fire before we know the
  // sequence number.
  finished_ = true;
  done = [done = std::move(done), histogram = &adaptor_->write_latency_,
          started = started_](absl::StatusOr<WriteResult> result) {
    if (result.ok()) histogram->Record(absl::Now() - started);
    done(std::move(result));
  };
  mirror::CommitPoint& commit = *adaptor_->parts_.commit;
  const auto portions = static_cast<uint32_t>(portions_.size());
  // Sync groups: one ack per portion from each of their mirrors (an async group never
  // delays the reply).
  const uint32_t waiting = commit.WaitingPortions(portions, groups_);
  const bool mirrored = waiting != 0;
  auto sequence = std::make_shared<std::atomic<uint64_t>>(0);
  std::shared_ptr<mirror::WriteTicket> ticket;
  if (mirrored) {
    ticket = std::make_shared<mirror::WriteTicket>(
        waiting + 1,
        mirror::WriteTicket::Done([done, sequence, portions](absl::Status status, bool mirrored) {
          if (!status.ok()) {
            done(status);
          } else {
            done(WriteResult{sequence->load(), mirrored, portions});
          }
        }));
  }
  absl::StatusOr<uint64_t> committed =
      groups_ == 0 ? commit.CommitLocal(portions_, volume_->groups)
      : validate
          ? commit.Commit(write_id_, portions_, adaptor_->pen_, reservations_, ticket, groups_)
          : commit.CommitUnpenned(portions_, std::move(unpenned_), reservations_, ticket, groups_);
  if (!committed.ok()) {
    // The daemon is becoming the mirror: the write never happened (not an invalid write).
    adaptor_->pen_.Delete(write_id_);
    portions_.clear();
    ResetReservations();
    done(committed.status());
    return;
  }
  const uint64_t seq = *committed;
  portions_.clear();
  adaptor_->CountCommitted(length_);
  if (!adaptor_->parts_.cache->persistent()) {
    // Write-through: without a persistent region, an ack means destaged and synced.
    if (auto flushed = adaptor_->parts_.disk->Flush(); !flushed.ok()) {
      if (ticket)
        ticket->Fail(flushed.status());
      else
        done(flushed.status());
      return;
    }
  }
  if (ticket) {
    sequence->store(seq);
    ticket->Ack();
    return;
  }
  // An async or local write is answered now, or, paced, once its delay is over. (A write
  // that also goes down a sync group waits for its mirror instead.)
  const WriteResult result{seq, false, portions};
  const absl::Duration pace = commit.TakePacingDelay(groups_);
  DelayLine* pacer = adaptor_->parts_.pacer;
  if (pace > absl::ZeroDuration() && pacer != nullptr &&
      pacer->At(absl::Now() + pace, [done, result] { done(result); })) {
    return;
  }
  done(result);
}

}  // namespace simarray::host
