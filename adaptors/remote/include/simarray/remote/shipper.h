#pragma once
// Shipper: the life of each record on the peer link, and nothing else (no sockets, no
// threads, no cache). A record moves
//
//   Queue ─────> queued (the delay line) ──SendDue──> in flight ──OnReply──> acked
//                  ^                                     │
//                  └───────────── refused (CRC) ─────────┤ (sent again, first)
//                                                        └──LoseAll──> lost
//
// and the shipper hands each record back exactly once: from OnReply when the mirror acked
// it, or from LoseAll / TakeQueued when the link lost it or its owner drains it. What the
// owner then does with it (complete the write's ticket, clear the owed bit, turn it into an
// owed track) is the owner's business (RemoteAdaptor).
//
// Timing comes from an injected clock and the bytes go out through an injected transport,
// so every transition is testable without processes (tests/remote/shipper_test.cc):
//   - a record is not sent before its due time (the delay fault holds records back without
//     serialising them);
//   - a message carries at most batch_records records and batch_bytes bytes of data (a
//     single bigger record goes alone), and at
//     most max_in_flight records are queued or in flight together (Room);
//   - a message is a heartbeat when nothing is due and heartbeat has passed since the last
//     send; the mirror answers every message, so an answer clears the heartbeat;
//   - Overdue: the oldest record in flight was not acknowledged within ack_timeout, or a
//     sent message got no answer within ack_timeout (the link must be torn down).
//
// Thread-safety: OnReply may run on another thread than the rest; every method takes the
// shipper's own lock, and none calls out while holding it except to the clock. SendDue is
// called by one thread at a time (the sender), which is also the one that calls LoseAll.

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "simarray/mirror/mirror_request.h"
#include "simarray/v1/peer.pb.h"

namespace simarray::remote {

// Where a record came from; decides what an ack means and what a lost record becomes.
enum class Origin {
  kQueue,   // a host write from the mirror queue (sync mode), or a repair record
  kCycle,   // a record of an async transmit cycle (or its end marker)
  kResync,  // a whole track of the resync set
};

// Writes one message on the link (it may return before the message is on the wire). False:
// the stream is broken (the owner tears the link down; the message's records are in flight
// and come back from LoseAll).
class ShipTransport {
 public:
  virtual ~ShipTransport() = default;
  virtual bool Write(v1::ShipRequest message) = 0;
};

using Clock = std::function<absl::Time()>;

struct ShipperOptions {
  size_t batch_records = 64;
  size_t batch_bytes = 4 << 20;
  size_t max_in_flight = 4096;
  absl::Duration ack_timeout = absl::Seconds(5);
  absl::Duration heartbeat = absl::Seconds(1);
};

// A record handed back by the shipper.
struct ShippedRecord {
  mirror::MirrorRequest request;
  Origin origin = Origin::kQueue;
  absl::Time sent = absl::InfinitePast();  // InfinitePast: never sent
};

struct ShipperCounters {
  uint64_t records_shipped = 0;
  uint64_t messages_shipped = 0;  // including heartbeats
  uint64_t records_acked = 0;
  uint64_t records_refused = 0;
  uint64_t bytes_shipped = 0;
  uint64_t in_flight = 0;  // queued or in flight now
  uint64_t in_flight_peak = 0;
  uint64_t ack_timeouts = 0;
  uint64_t heartbeat_timeouts = 0;
};

class Shipper {
 public:
  Shipper(ShipperOptions options, Clock clock);
  Shipper(const Shipper&) = delete;
  Shipper& operator=(const Shipper&) = delete;

  absl::Duration heartbeat() const { return options_.heartbeat; }

  // queued: `records` join the end of the line, due `delay` from now.
  void Queue(std::vector<mirror::MirrorRequest> records, Origin origin,
             absl::Duration delay = absl::ZeroDuration());
  // queued, first: `records` go out before anything else queued (repair records).
  void QueueFirst(std::vector<mirror::MirrorRequest> records, Origin origin);
  // How many more records may be queued before the window of max_in_flight is full.
  size_t Room();
  // Whole-track resync records queued or in flight (the resync has its own, smaller window).
  size_t ResyncHeld();

  // Whether the sender has tracks left to resync; every message says it
  // (ShipRequest.source_resyncing).
  void SetResyncing(bool resyncing) { resyncing_.store(resyncing, std::memory_order_relaxed); }

  enum class Sent { kNothing, kRecords, kHeartbeat, kBroken };
  // sent: writes one message of the records due now, in line order, up to the batch
  // limits; or, if none is due and a heartbeat is due, an empty message. kBroken: the
  // transport refused the message.
  Sent SendDue(ShipTransport& transport);

  // A queued record is due now (SendDue would send records).
  bool HasDue();

  // acked | refused: the mirror's answer. Records whose ids are at most acked_through are
  // returned (acked, in id order); refused ids go back to the front of the line.
  std::vector<ShippedRecord> OnReply(const v1::ShipReply& reply);

  enum class Overdue { kNo, kAck, kHeartbeat };
  // Whether the link must be torn down for want of an answer (counted when it must).
  Overdue CheckOverdue();
  // When CheckOverdue or SendDue may next have something to do: the next heartbeat, a
  // queued record falling due, the oldest in-flight record's or the heartbeat's deadline.
  // With `can_send` false (a message is still on the wire), only the deadlines.
  absl::Time NextDeadline(bool can_send = true);

  // lost: every record queued or in flight, in flight first (the link went down). The
  // records count as held until Released(n).
  std::vector<ShippedRecord> LoseAll();
  // Takes the queued (not yet sent) records `take` selects. Held until Released(n).
  std::vector<ShippedRecord> TakeQueued(const std::function<bool(const ShippedRecord&)>& take);
  // The owner has put n records from LoseAll / TakeQueued where they belong.
  void Released(size_t n);
  // Records anywhere in the shipper, including handed out and not yet Released.
  size_t held();

  // The highest sequence up to which the mirror acknowledged every write record: the
  // highest acked, less than any host-write record still queued or in flight.
  uint64_t AppliedSequence();
  // The link came up: no answer is owed (the first message after it is due at once).
  void Reset();
  ShipperCounters Counters();

 private:
  struct Queued {
    ShippedRecord record;
    absl::Time due;
  };
  struct InFlight {
    ShippedRecord record;
    absl::Time deadline;
  };
  // Moves the due records (up to the batch limits) out of the line. Held until in flight.
  std::vector<ShippedRecord> TakeDueLocked(absl::Time now) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void NotePeakLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  const ShipperOptions options_;
  const Clock clock_;
  std::atomic<bool> resyncing_{false};
  absl::Mutex mu_;
  std::deque<Queued> line_ ABSL_GUARDED_BY(mu_);
  std::map<uint64_t, InFlight> in_flight_ ABSL_GUARDED_BY(mu_);  // by record id
  uint64_t next_record_id_ ABSL_GUARDED_BY(mu_) = 1;
  size_t handed_out_ ABSL_GUARDED_BY(mu_) = 0;  // taken out, not yet in flight or Released
  absl::Time last_sent_ ABSL_GUARDED_BY(mu_) = absl::InfinitePast();
  absl::Time answer_due_ ABSL_GUARDED_BY(mu_) = absl::InfiniteFuture();  // an answer owed by
  uint64_t last_acked_sequence_ ABSL_GUARDED_BY(mu_) = 0;
  ShipperCounters counters_ ABSL_GUARDED_BY(mu_);
};

}  // namespace simarray::remote
