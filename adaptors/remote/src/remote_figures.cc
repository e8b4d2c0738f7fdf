// The figures (simarray/base/figures.h) of the peer link, the record applier and the gold
// copy.
#include "absl/time/clock.h"
#include "simarray/base/figures.h"
#include "simarray/mirror/cycle_set.h"
#include "simarray/remote/record_applier.h"
#include "simarray/remote/remote_adaptor.h"

namespace simarray::remote {
namespace {
constexpr FigureKind kCounter = FigureKind::kCounter;
constexpr FigureKind kGauge = FigureKind::kGauge;
}  // namespace

void Describe(const LinkCounters& c, FigureSink& sink) {
  constexpr std::string_view kRecords = "simarray_link_records_total";
  constexpr std::string_view kRecordsHelp =
      "Records on the peer link by event: shipped, acked, refused (bad CRC on the way, "
      "resent), degraded (dropped to owed tracks).";
  sink.Add({kRecords, kCounter, kRecordsHelp, "records_shipped", "event", "shipped"},
           c.records_shipped);
  sink.Add({kRecords, kCounter, kRecordsHelp, "records_acked", "event", "acked"}, c.records_acked);
  sink.Add({kRecords, kCounter, kRecordsHelp, "records_refused", "event", "refused"},
           c.records_refused);
  sink.Add({kRecords, kCounter, kRecordsHelp, "records_degraded", "event", "degraded"},
           c.records_degraded);
  sink.Add({"simarray_link_messages_total", kCounter,
            "Ship messages sent to the mirror (records per message is the batching).",
            "messages_shipped"},
           c.messages_shipped);
  sink.Add({"simarray_link_bytes_shipped_total", kCounter, "Data bytes shipped to the mirror.",
            "bytes_shipped"},
           c.bytes_shipped);
  sink.Add({"simarray_link_records_in_flight", kGauge, "Records shipped and not yet acked.",
            "in_flight"},
           c.in_flight);
  sink.Add({"simarray_link_records_in_flight_peak", kGauge, "Highest records in flight.",
            "in_flight_peak"},
           c.in_flight_peak);
  sink.Add({"simarray_link_ack_timeouts_total", kCounter, "Acks overdue past link.ack_timeout.",
            "ack_timeouts"},
           c.ack_timeouts);
  sink.Add({"simarray_link_heartbeat_timeouts_total", kCounter, "Heartbeat replies overdue.",
            "heartbeat_timeouts"},
           c.heartbeat_timeouts);
  sink.Add({"simarray_link_connects_total", kCounter, "Times the link came up.", "connects"},
           c.connects);
  sink.Add({"simarray_link_losses_total", kCounter, "Times the link went down.", "link_losses"},
           c.link_losses);
  sink.Add({"simarray_link_auth_failures_total", kCounter,
            "Hellos the peer refused, or whose reply did not prove the secret.", "auth_failures"},
           c.auth_failures);
  sink.Add({"simarray_resyncs_started_total", kCounter, "Resyncs of owed tracks started.",
            "resyncs_started"},
           c.resyncs_started);
  sink.Add({"simarray_resyncs_completed_total", kCounter, "Resyncs of owed tracks completed.",
            "resyncs_completed"},
           c.resyncs_completed);
  sink.Add({"simarray_resyncing", kGauge, "1 while owed tracks are being resynced.", "resyncing"},
           c.resyncing);
  sink.Add({"simarray_resync_tracks_per_second", kGauge,
            "Tracks a second the running resync ships (0 when idle).", "resync_tracks_per_second"},
           c.resync_tracks_per_second);
  sink.Add(
      {"simarray_resync_seconds_left", kGauge,
       "The running resync's pending tracks at its rate (0 when idle).", "resync_seconds_left"},
      c.resync_seconds_left);
  sink.Add(
      {"simarray_link_emulated_losses_total", kCounter,
       "Messages the emulated link lost, both ways (docs/link-emulation.md).", "messages_lost"},
      c.messages_lost);
  sink.Add({"simarray_mirror_applied_sequence", kGauge,
            "Highest sequence the mirror reported applied.", "mirror_applied_sequence"},
           c.mirror_applied_sequence);
}

void Describe(const RecordApplier& applier, FigureSink& sink) {
  sink.Add(
      {"simarray_records_applied_total", kCounter,
       "Records received from a primary and applied to this daemon's cache.", "records_applied"},
      applier.records_applied());
  sink.Add({"simarray_records_skipped_total", kCounter,
            "Records received from a primary and skipped (older than what the track holds).",
            "records_skipped"},
           applier.records_skipped());
  sink.Add({"simarray_applied_sequence", kGauge, "Highest sequence applied from a primary.",
            "applied_sequence"},
           applier.applied_sequence());
}

void DescribeCycles(const RecordApplier& applier, bool target, FigureSink& sink) {
  sink.Add({"simarray_cycles_applied_total", kCounter,
            "Async cycles this daemon applied whole as a mirror.", "cycles_applied"},
           applier.cycles_applied());
  sink.Add({"simarray_cycles_discarded_total", kCounter,
            "Async cycles this daemon dropped unfinished as a mirror (link lost mid-cycle).",
            "cycles_discarded"},
           applier.cycles_discarded());
  if (!target) return;
  sink.Add(mirror::kMirrorConsistentFigure, applier.consistent());
  sink.Add(mirror::kAppliedCycleFigure, applier.applied_cycle());
  sink.Add(mirror::kCycleAppliedSequenceFigure, applier.applied_sequence());
}

void Describe(const GoldCounters& c, FigureSink& sink) {
  sink.Add({"simarray_gold_copy_held", kGauge,
            "Whether the mirror holds a gold copy of its last consistent image now (a resync "
            "is overwriting it).",
            "gold_held"},
           c.held);
  sink.Add({"simarray_gold_copy_cycle", kGauge,
            "The cycle boundary the gold copy stands for (0: none held).", "gold_cycle"},
           c.held ? c.mark.cycle : 0);
  sink.Add(
      {"simarray_gold_copy_sequence", kGauge,
       "The primary's sequence the gold copy's image stands for (0: none held).", "gold_sequence"},
      c.held ? c.mark.sequence : 0);
  sink.Add({"simarray_gold_copy_tracks", kGauge, "Tracks the gold copy keeps now.", "gold_tracks"},
           c.tracks);
  sink.Add({"simarray_gold_copy_age_seconds", kGauge,
            "Time since the gold copy was taken (0: none held).", "gold_age_seconds"},
           c.held ? absl::ToDoubleSeconds(absl::Now() - c.since) : 0.0);
  sink.Add({"simarray_gold_copies_taken_total", kCounter, "Gold copies taken.", "gold_taken"},
           c.taken);
  sink.Add({"simarray_gold_copies_dropped_total", kCounter,
            "Gold copies ended: the image was consistent again, it was published back at a "
            "promotion, or it was lost.",
            "gold_dropped"},
           c.dropped);
  sink.Add({"simarray_gold_tracks_restored_total", kCounter,
            "Tracks of gold copies published back when the mirror was promoted.",
            "gold_tracks_restored"},
           c.restored);
  sink.Add({"simarray_gold_copies_lost_total", kCounter,
            "Gold copies lost because a track could not be kept (its file was full or could "
            "not be written).",
            "gold_lost"},
           c.lost);
}

}  // namespace simarray::remote
