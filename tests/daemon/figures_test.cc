// The views of the figures (simarray/base/figures.h): StatusFigures fills admin.proto's Status
// by the names the components give, MetricsWriter writes them as Prometheus families. Every
// component description that reads plain counters is run with distinct values, so a name out
// of step with admin.proto, a counter without a figure, or a figure in the wrong field fails.

#include <catch2/catch.hpp>
#include <set>
#include <string>

#include "absl/time/clock.h"
#include "daemon/metrics.h"
#include "daemon/status_figures.h"
#include "google/protobuf/descriptor.h"
#include "simarray/host/host_adaptor.h"
#include "simarray/mirror/cycle_set.h"
#include "simarray/mirror/holding_pen.h"
#include "simarray/mirror/mirror_queue.h"
#include "simarray/nbd/nbd_server.h"
#include "simarray/remote/gold_copy.h"
#include "simarray/remote/remote_adaptor.h"
#include "simarray/v1/admin.pb.h"

namespace simarray::daemon {
namespace {

using google::protobuf::FieldDescriptor;
using google::protobuf::Message;

// The numeric and bool fields of `m` that hold zero, but those in `by_hand` (filled by
// FillStatus from config and state, not from figures).
std::set<std::string> ZeroFields(const Message& m, const std::set<std::string>& by_hand) {
  std::set<std::string> zero;
  const google::protobuf::Reflection* r = m.GetReflection();
  const google::protobuf::Descriptor* d = m.GetDescriptor();
  for (int i = 0; i < d->field_count(); ++i) {
    const FieldDescriptor* f = d->field(i);
    if (by_hand.count(f->name()) != 0) continue;
    if (f->is_map()) {
      if (r->FieldSize(m, f) == 0) zero.insert(f->name());
      continue;
    }
    if (f->is_repeated()) continue;
    switch (f->cpp_type()) {
      case FieldDescriptor::CPPTYPE_UINT64:
        if (r->GetUInt64(m, f) == 0) zero.insert(f->name());
        break;
      case FieldDescriptor::CPPTYPE_DOUBLE:
        if (r->GetDouble(m, f) == 0) zero.insert(f->name());
        break;
      case FieldDescriptor::CPPTYPE_BOOL:
        if (!r->GetBool(m, f)) zero.insert(f->name());
        break;
      default:
        break;
    }
  }
  return zero;
}

host::HostCounters SomeHostCounters() {
  host::HostCounters c{
      .writes = 11, .writes_committed = 7, .bytes_written = 4096, .reads = 3, .bytes_read = 512};
  for (int r = 0; r < host::kInvalidReasons; ++r) {
    c.invalid[r] = 100 + r;
    c.bytes_invalid[r] = 1000 + r;
  }
  return c;
}

remote::LinkCounters SomeLinkCounters() {
  remote::LinkCounters c;
  c.records_shipped = 1;
  c.messages_shipped = 2;
  c.records_acked = 3;
  c.records_refused = 4;
  c.bytes_shipped = 5;
  c.in_flight = 6;
  c.in_flight_peak = 7;
  c.ack_timeouts = 8;
  c.heartbeat_timeouts = 9;
  c.resyncing = true;
  c.records_degraded = 10;
  c.connects = 11;
  c.auth_failures = 12;
  c.link_losses = 13;
  c.resyncs_started = 14;
  c.resyncs_completed = 15;
  c.mirror_applied_sequence = 16;
  c.resync_tracks_per_second = 17.5;
  c.resync_seconds_left = 18.5;
  c.messages_lost = 19;
  return c;
}

mirror::CycleCounters SomeCycleCounters() {
  return {.cycling = true,
          .consistent = true,
          .capture_cycle = 1,
          .transmit_cycle = 2,
          .applied_cycle = 3,
          .applied_sequence = 4,
          .seconds_behind = 5.5,
          .capture_tracks = 6,
          .capture_bytes = 7,
          .transmit_tracks = 8,
          .transmit_bytes = 9,
          .writes_captured = 10,
          .writes_folded = 11,
          .cycles_switched = 12,
          .cycles_applied = 13,
          .cycle_records_shipped = 14,
          .pull_aheads = 15,
          .pinned_slots = 16,
          .slot_limit = 17,
          .pacing_threshold = 18,
          .pacing_delay_us = 19,
          .writes_paced = 20,
          .pacing_seconds = 21.5,
          .dse = {.chunks = 22, .chunks_used = 23, .bytes_held = 24, .bytes_spilled = 25}};
}

// The sections as DescribeArray (daemon/array_figures.cc) makes them.
void DescribeSections(FigureSink& sink) {
  {
    FigureScope pen(
        sink,
        {.field = "pens", .label = "adaptor", .label_value = "ha0", .key_field = "host_adaptor"});
    host::Describe(SomeHostCounters(), sink);
    mirror::Describe(
        mirror::PenCounters{
            .depth = 1, .requests_buffered = 2, .requests_sent = 3, .requests_deleted = 4},
        sink);
  }
  {
    FigureScope port(
        sink,
        {.field = "nbd", .label = "adaptor", .label_value = "nbd0", .key_field = "host_adaptor"});
    nbd::Describe(nbd::NbdCounters{.connections_accepted = 1,
                                   .connections_refused = 2,
                                   .connections_open = 3,
                                   .protocol_errors = 4,
                                   .writes_dropped = 5},
                  sink);
  }
  mirror::Describe(
      mirror::QueueCounters{.depth = 1, .peak = 2, .reserved = 3, .capacity = 4, .pushed = 5},
      sink);
  {
    FigureScope link(sink, {.field = "link"});
    remote::Describe(SomeLinkCounters(), sink);
  }
  {
    FigureScope cycles(sink, {.field = "cycles"});
    mirror::Describe(SomeCycleCounters(), sink);
    remote::Describe(remote::GoldCounters{.on = true,
                                          .held = true,
                                          .mark = {.cycle = 31, .sequence = 32},
                                          .since = absl::Now() - absl::Seconds(34),
                                          .tracks = 33,
                                          .taken = 35,
                                          .dropped = 36,
                                          .restored = 37,
                                          .lost = 38},
                     sink);
  }
}

TEST_CASE("figures: every counter of pens nbd link and cycles has a figure that fits admin.proto",
          "[figures]") {
  v1::StatusReply reply;
  StatusFigures figures(&reply);
  DescribeSections(figures);
  for (const std::string& e : figures.errors()) UNSCOPED_INFO(e);
  CHECK(figures.errors().empty());

  REQUIRE(reply.pens_size() == 1);
  const v1::PenStatus& pen = reply.pens(0);
  CHECK(pen.host_adaptor() == "ha0");
  CHECK(pen.writes() == 11);
  CHECK(pen.writes_committed() == 7);
  CHECK(pen.bytes_written() == 4096);
  CHECK(pen.reads() == 3);
  CHECK(pen.bytes_read() == 512);
  CHECK(pen.invalid_writes().at("crc_mismatch") == 100);
  CHECK(pen.invalid_writes().at("resource_exhausted") == 105);
  CHECK(pen.invalid_bytes().at("crc_mismatch") == 1000);
  CHECK(pen.invalid_writes().size() == host::kInvalidReasons);
  CHECK(pen.requests_deleted() == 4);
  CHECK(ZeroFields(pen, {}) == std::set<std::string>{});

  REQUIRE(reply.nbd_size() == 1);
  CHECK(reply.nbd(0).host_adaptor() == "nbd0");
  CHECK(reply.nbd(0).protocol_errors() == 4);
  CHECK(ZeroFields(reply.nbd(0), {}) == std::set<std::string>{});

  CHECK(reply.queue_reserved() == 3);
  CHECK(reply.queue_pushed() == 5);

  const v1::LinkStatus& link = reply.link();
  CHECK(link.records_refused() == 4);
  CHECK(link.resync_seconds_left() == 18.5);
  CHECK(link.resyncing());
  // Owed-track figures (resync_pending, tracks_resynced) come from OwedTracks.
  CHECK(ZeroFields(link, {"resync_pending", "tracks_resynced"}) == std::set<std::string>{});

  const v1::CycleStatus& cycles = reply.cycles();
  CHECK(cycles.seconds_behind() == 5.5);
  CHECK(cycles.slot_limit() == 17);
  CHECK(cycles.mirror_consistent());
  CHECK(cycles.gold_held());
  CHECK(cycles.gold_sequence() == 32);
  CHECK(cycles.gold_tracks() == 33);
  CHECK(cycles.gold_age_seconds() >= 34);
  CHECK(cycles.gold_lost() == 38);
  // cycles_applied and cycles_discarded are the target's (RecordApplier); cycle_ms is config.
  CHECK(ZeroFields(cycles, {"cycles_applied", "cycles_discarded", "cycle_ms"}) ==
        std::set<std::string>{});
}

TEST_CASE("figures: a name admin.proto lacks is reported and loses only that number", "[figures]") {
  v1::StatusReply reply;
  StatusFigures figures(&reply);
  figures.Add({"simarray_x", FigureKind::kGauge, "x", "no_such_field"}, uint64_t{1});
  figures.Add({"simarray_y", FigureKind::kGauge, "y", "link.no_such_field"}, uint64_t{1});
  figures.Add({"simarray_z", FigureKind::kGauge, "z", "daemon_id"}, uint64_t{1});
  {
    FigureScope missing(figures, {.field = "no_such_section"});
    figures.Add({"simarray_w", FigureKind::kGauge, "w", "queue_depth"}, uint64_t{5});
  }
  figures.Add({"simarray_q", FigureKind::kGauge, "q", "queue_depth"}, uint64_t{9});
  REQUIRE(figures.errors().size() == 4);
  CHECK(figures.errors()[0] == "StatusReply has no field no_such_field");
  CHECK(figures.errors()[1] == "LinkStatus has no field no_such_field");
  CHECK(figures.errors()[2] == "simarray.v1.StatusReply.daemon_id is not a number");
  CHECK(figures.errors()[3] == "StatusReply has no section no_such_section");
  CHECK(reply.queue_depth() == 9);
}

TEST_CASE("figures: /metrics gathers each family once with the sections' labels first",
          "[figures]") {
  MetricsWriter w;
  DescribeSections(w);
  w.Add({"simarray_pen_depth", FigureKind::kGauge, "late", "depth"}, uint64_t{8});
  const std::string text = w.Text();
  // One # TYPE per family, however many samples and wherever they were added.
  size_t types = 0;
  for (size_t at = text.find("# TYPE simarray_pen_depth "); at != std::string::npos;
       at = text.find("# TYPE simarray_pen_depth ", at + 1)) {
    ++types;
  }
  CHECK(types == 1);
  CHECK(text.find("simarray_pen_depth{adaptor=\"ha0\"} 1\nsimarray_pen_depth 8\n") !=
        std::string::npos);
  CHECK(text.find("# TYPE simarray_host_writes_total counter\n") != std::string::npos);
  CHECK(text.find("simarray_host_writes_total{adaptor=\"ha0\",result=\"committed\"} 7\n") !=
        std::string::npos);
  CHECK(
      text.find("simarray_host_invalid_writes_total{adaptor=\"ha0\",reason=\"cancelled\"} 103\n") !=
      std::string::npos);
  CHECK(text.find("simarray_nbd_connection_events_total{adaptor=\"nbd0\",event=\"refused\"} 2\n") !=
        std::string::npos);
  CHECK(text.find("simarray_link_records_total{event=\"refused\"} 4\n") != std::string::npos);
  CHECK(text.find("simarray_resync_seconds_left 18.5\n") != std::string::npos);
  CHECK(text.find("simarray_cycle_number{cycle=\"transmit\"} 2\n") != std::string::npos);
  CHECK(text.find("simarray_mirror_queue_reserved 3\n") != std::string::npos);
}

}  // namespace
}  // namespace simarray::daemon
