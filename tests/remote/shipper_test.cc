// The shipper with a fake clock and a fake transport: every transition of a record
// (queued -> sent -> acked | refused | lost), the timeouts, heartbeats and batching.
#include "simarray/remote/shipper.h"

#include <catch2/catch.hpp>
#include <memory>
#include <set>
#include <vector>

#include "simarray/mirror/write_ticket.h"

namespace simarray::remote {
namespace {

// What the link would carry: every message written, or a broken stream.
class FakeTransport : public ShipTransport {
 public:
  bool Write(v1::ShipRequest message) override {
    if (broken) return false;
    sent.push_back(std::move(message));
    return true;
  }
  // Record ids and sequences of message `i`.
  std::vector<uint64_t> Ids(size_t i) const {
    std::vector<uint64_t> ids;
    for (const auto& r : sent.at(i).records()) ids.push_back(r.record_id());
    return ids;
  }
  std::vector<uint64_t> Sequences(size_t i) const {
    std::vector<uint64_t> seqs;
    for (const auto& r : sent.at(i).records()) seqs.push_back(r.sequence());
    return seqs;
  }
  std::vector<v1::ShipRequest> sent;
  bool broken = false;
};

struct Fixture {
  explicit Fixture(ShipperOptions options = Defaults())
      : shipper(options, [this] { return now; }) {}
  static ShipperOptions Defaults() {
    return ShipperOptions{.batch_records = 4,
                          .batch_bytes = 1 << 20,
                          .max_in_flight = 16,
                          .ack_timeout = absl::Seconds(5),
                          .heartbeat = absl::Seconds(1)};
  }
  absl::Time now = absl::FromUnixSeconds(1000);
  FakeTransport transport;
  Shipper shipper;
};

mirror::MirrorRequest Record(uint64_t sequence, uint32_t length = 4096) {
  mirror::MirrorRequest r;
  r.key = cache::TrackKey{1, sequence};
  r.length = length;
  r.sequence = sequence;
  return r;
}

std::vector<mirror::MirrorRequest> Records(uint64_t first, uint64_t count) {
  std::vector<mirror::MirrorRequest> v;
  for (uint64_t s = first; s < first + count; ++s) v.push_back(Record(s));
  return v;
}

v1::ShipReply Ack(uint64_t through, std::vector<uint64_t> refused = {}) {
  v1::ShipReply reply;
  reply.set_acked_through(through);
  for (uint64_t id : refused) reply.add_refused(id);
  return reply;
}

std::vector<uint64_t> SequencesOf(const std::vector<ShippedRecord>& records) {
  std::vector<uint64_t> seqs;
  for (const auto& s : records) seqs.push_back(s.request.sequence);
  return seqs;
}

TEST_CASE("shipper: records go out in order, a batch at a time, and acks return them once",
          "[remote][shipper]") {
  Fixture f;
  f.shipper.Queue(Records(1, 6), Origin::kQueue);
  REQUIRE(f.shipper.SendDue(f.transport) == Shipper::Sent::kRecords);
  REQUIRE(f.shipper.SendDue(f.transport) == Shipper::Sent::kRecords);
  REQUIRE(f.transport.sent.size() == 2);
  CHECK(f.transport.Sequences(0) == std::vector<uint64_t>{1, 2, 3, 4});  // batch_records = 4
  CHECK(f.transport.Sequences(1) == std::vector<uint64_t>{5, 6});
  CHECK(f.transport.Ids(0) == std::vector<uint64_t>{1, 2, 3, 4});
  CHECK(f.shipper.held() == 6);

  // Cumulative: an ack through id 3 returns exactly records 1-3.
  CHECK(SequencesOf(f.shipper.OnReply(Ack(3))) == std::vector<uint64_t>{1, 2, 3});
  CHECK(f.shipper.AppliedSequence() == 3);
  CHECK(SequencesOf(f.shipper.OnReply(Ack(3))).empty());  // a repeated ack returns nothing
  CHECK(SequencesOf(f.shipper.OnReply(Ack(6))) == std::vector<uint64_t>{4, 5, 6});
  CHECK(f.shipper.held() == 0);
  CHECK(f.shipper.AppliedSequence() == 6);
  const ShipperCounters c = f.shipper.Counters();
  CHECK(c.records_shipped == 6);
  CHECK(c.records_acked == 6);
  CHECK(c.messages_shipped == 2);
  CHECK(c.bytes_shipped == 0);  // the fake records carry no bytes
}

TEST_CASE("shipper: a message holds at most batch_bytes, and the window limits what is queued",
          "[remote][shipper]") {
  ShipperOptions options = Fixture::Defaults();
  options.batch_bytes = 8192;
  options.max_in_flight = 5;
  Fixture f(options);
  CHECK(f.shipper.Room() == 5);
  f.shipper.Queue(Records(1, 3), Origin::kQueue);
  CHECK(f.shipper.Room() == 2);
  REQUIRE(f.shipper.SendDue(f.transport) == Shipper::Sent::kRecords);
  CHECK(f.transport.Sequences(0) == std::vector<uint64_t>{1, 2});  // 8 KiB reached
  CHECK(f.shipper.Room() == 2);  // in flight counts against the window too
  f.shipper.OnReply(Ack(2));
  CHECK(f.shipper.Room() == 4);
}

TEST_CASE("shipper: a refused record is sent again first, before anything queued after it",
          "[remote][shipper]") {
  Fixture f;
  f.shipper.Queue(Records(1, 3), Origin::kQueue);
  REQUIRE(f.shipper.SendDue(f.transport) == Shipper::Sent::kRecords);  // ids 1-3
  f.shipper.Queue(Records(4, 2), Origin::kQueue);
  // Record 2 failed its CRC on the way; 1 is acked, 3 is still in flight.
  CHECK(SequencesOf(f.shipper.OnReply(Ack(1, {2}))) == std::vector<uint64_t>{1});
  CHECK(f.shipper.Counters().records_refused == 1);
  // Until 2 is acked, the mirror has not applied everything up to 2.
  CHECK(f.shipper.AppliedSequence() == 1);
  REQUIRE(f.shipper.SendDue(f.transport) == Shipper::Sent::kRecords);
  CHECK(f.transport.Sequences(1) == std::vector<uint64_t>{2, 4, 5});
  // Ids never repeat: the resent record has a new one.
  CHECK(f.transport.Ids(1) == std::vector<uint64_t>{4, 5, 6});
  // 3 (id 3) and the resent 2 (id 4) come back once each.
  std::vector<ShippedRecord> acked = f.shipper.OnReply(Ack(6));
  CHECK(SequencesOf(acked) == std::vector<uint64_t>{3, 2, 4, 5});
  CHECK(f.shipper.held() == 0);
  CHECK(f.shipper.AppliedSequence() == 5);
}

TEST_CASE("shipper: a record is not acknowledged within ack_timeout, and the link must go down",
          "[remote][shipper]") {
  Fixture f;
  f.shipper.Queue(Records(1, 2), Origin::kQueue);
  REQUIRE(f.shipper.SendDue(f.transport) == Shipper::Sent::kRecords);
  CHECK(f.shipper.NextDeadline() == f.now + absl::Seconds(1));  // the next heartbeat
  f.now += absl::Seconds(2);
  // An answer for the message (a heartbeat reply would do) but no ack of the records.
  f.shipper.OnReply(Ack(0));
  CHECK(f.shipper.CheckOverdue() == Shipper::Overdue::kNo);
  f.now += absl::Seconds(3);
  CHECK(f.shipper.CheckOverdue() == Shipper::Overdue::kNo);  // exactly at the deadline
  f.now += absl::Milliseconds(1);
  CHECK(f.shipper.CheckOverdue() == Shipper::Overdue::kAck);
  CHECK(f.shipper.Counters().ack_timeouts == 1);
}

TEST_CASE("shipper: an idle link sends heartbeats, and a heartbeat not answered is overdue",
          "[remote][shipper]") {
  Fixture f;
  // The first message goes out at once (nothing was ever sent).
  REQUIRE(f.shipper.SendDue(f.transport) == Shipper::Sent::kHeartbeat);
  CHECK(f.transport.sent.at(0).records_size() == 0);
  CHECK(f.shipper.SendDue(f.transport) == Shipper::Sent::kNothing);
  f.shipper.OnReply(Ack(0));
  f.now += absl::Milliseconds(999);
  CHECK(f.shipper.SendDue(f.transport) == Shipper::Sent::kNothing);
  CHECK(f.shipper.NextDeadline() == f.now + absl::Milliseconds(1));
  f.now += absl::Milliseconds(1);
  REQUIRE(f.shipper.SendDue(f.transport) == Shipper::Sent::kHeartbeat);
  // No answer: overdue after ack_timeout.
  f.now += absl::Seconds(5);
  CHECK(f.shipper.CheckOverdue() == Shipper::Overdue::kNo);
  f.now += absl::Milliseconds(1);
  CHECK(f.shipper.CheckOverdue() == Shipper::Overdue::kHeartbeat);
  CHECK(f.shipper.Counters().heartbeat_timeouts == 1);
  // A new link: nothing is owed.
  f.shipper.Reset();
  CHECK(f.shipper.CheckOverdue() == Shipper::Overdue::kNo);
}

TEST_CASE("shipper: a delayed record waits for its due time without holding back the line",
          "[remote][shipper]") {
  Fixture f;
  f.shipper.Queue(Records(1, 1), Origin::kQueue, absl::Milliseconds(300));
  f.shipper.OnReply(Ack(0));
  REQUIRE(f.shipper.SendDue(f.transport) == Shipper::Sent::kHeartbeat);  // not the record
  CHECK(f.transport.sent.at(0).records_size() == 0);
  CHECK(f.shipper.NextDeadline() == f.now + absl::Milliseconds(300));
  // While a message is on the wire only the answer's deadline counts.
  CHECK(f.shipper.NextDeadline(/*can_send=*/false) == f.now + absl::Seconds(5));
  CHECK_FALSE(f.shipper.HasDue());
  f.now += absl::Milliseconds(300);
  CHECK(f.shipper.HasDue());
  REQUIRE(f.shipper.SendDue(f.transport) == Shipper::Sent::kRecords);
  CHECK(f.transport.Sequences(1) == std::vector<uint64_t>{1});
}

TEST_CASE("shipper: link loss hands back every record queued or in flight exactly once",
          "[remote][shipper]") {
  Fixture f;
  int fired = 0;
  auto ticket = std::make_shared<mirror::WriteTicket>(
      8, mirror::WriteTicket::Done([&](absl::Status, bool) { ++fired; }));
  std::vector<mirror::MirrorRequest> records = Records(1, 8);
  for (auto& r : records) r.ticket = ticket;
  f.shipper.Queue(std::move(records), Origin::kQueue);
  REQUIRE(f.shipper.SendDue(f.transport) == Shipper::Sent::kRecords);  // 1-4 in flight
  f.shipper.OnReply(Ack(2));                                           // 1, 2 acked
  f.transport.broken = true;
  CHECK(f.shipper.SendDue(f.transport) == Shipper::Sent::kBroken);  // 5-8 went nowhere

  std::vector<ShippedRecord> lost = f.shipper.LoseAll();
  CHECK(SequencesOf(lost) == std::vector<uint64_t>{3, 4, 5, 6, 7, 8});
  CHECK(f.shipper.held() == 6);  // handed out, not yet released
  // A late answer from the old stream returns nothing: those records are lost already.
  CHECK(f.shipper.OnReply(Ack(8)).empty());
  CHECK(f.shipper.LoseAll().empty());
  // The owner completes what the link lost: with the two acked, the ticket fires once.
  for (int i = 0; i < 2; ++i) ticket->Ack();
  for (ShippedRecord& s : lost) s.request.ticket->Unmirrored();
  CHECK(fired == 1);
  f.shipper.Released(lost.size());
  CHECK(f.shipper.held() == 0);
  CHECK(f.shipper.CheckOverdue() == Shipper::Overdue::kNo);
}

TEST_CASE("shipper: draining takes only the queued records asked for", "[remote][shipper]") {
  Fixture f;
  f.shipper.Queue(Records(1, 2), Origin::kQueue);
  REQUIRE(f.shipper.SendDue(f.transport) == Shipper::Sent::kRecords);  // 1, 2 in flight
  f.shipper.Queue(Records(3, 2), Origin::kQueue);
  f.shipper.Queue(Records(5, 2), Origin::kResync);
  std::vector<ShippedRecord> taken =
      f.shipper.TakeQueued([](const ShippedRecord& s) { return s.origin == Origin::kQueue; });
  CHECK(SequencesOf(taken) == std::vector<uint64_t>{3, 4});
  CHECK(f.shipper.ResyncHeld() == 2);
  f.shipper.Released(taken.size());
  CHECK(f.shipper.held() == 4);  // 1, 2 in flight; 5, 6 queued
}

TEST_CASE("shipper: resync records and staged cycle records do not advance the applied sequence",
          "[remote][shipper]") {
  Fixture f;
  f.shipper.Queue(Records(7, 1), Origin::kQueue);
  f.shipper.Queue(Records(50, 1), Origin::kResync);  // a whole track stamped at 50
  mirror::MirrorRequest staged = Record(60);
  staged.cycle = 3;  // a cycle's data record: only staged when acked
  std::vector<mirror::MirrorRequest> cycle;
  cycle.push_back(std::move(staged));
  f.shipper.Queue(std::move(cycle), Origin::kCycle);
  REQUIRE(f.shipper.SendDue(f.transport) == Shipper::Sent::kRecords);
  CHECK(f.shipper.OnReply(Ack(3)).size() == 3);
  CHECK(f.shipper.AppliedSequence() == 7);
  mirror::MirrorRequest end;
  end.cycle = 3;
  end.cycle_end = true;
  end.sequence = 61;  // the cycle's boundary
  std::vector<mirror::MirrorRequest> marker;
  marker.push_back(std::move(end));
  f.shipper.Queue(std::move(marker), Origin::kCycle);
  REQUIRE(f.shipper.SendDue(f.transport) == Shipper::Sent::kRecords);
  f.shipper.OnReply(Ack(4));
  CHECK(f.shipper.AppliedSequence() == 61);
}

}  // namespace
}  // namespace simarray::remote
