// A host adaptor's figures (simarray/base/figures.h): its writes and reads, by result.
#include "simarray/host/host_adaptor.h"

namespace simarray::host {

void Describe(const HostCounters& c, FigureSink& sink) {
  constexpr std::string_view kWrites = "simarray_host_writes_total";
  constexpr std::string_view kWritesHelp =
      "Host writes finished, by host adaptor and result (committed or the invalid reason).";
  constexpr std::string_view kBytes = "simarray_host_write_bytes_total";
  constexpr std::string_view kBytesHelp =
      "Bytes of host writes, by host adaptor and result (committed or the invalid reason).";
  constexpr std::string_view kInvalid = "simarray_host_invalid_writes_total";
  constexpr std::string_view kInvalidHelp =
      "Host writes refused as invalid (nothing of them committed or mirrored), by reason.";
  constexpr FigureKind kCounter = FigureKind::kCounter;
  sink.Add({kWrites, kCounter, kWritesHelp, "writes_committed", "result", "committed"},
           c.writes_committed);
  sink.Add({kBytes, kCounter, kBytesHelp, "bytes_written", "result", "committed"}, c.bytes_written);
  for (int r = 0; r < kInvalidReasons; ++r) {
    const std::string_view reason = InvalidReasonName(static_cast<InvalidReason>(r));
    sink.Add({kWrites, kCounter, kWritesHelp, {}, "result", reason}, c.invalid[r]);
    sink.Add({kBytes, kCounter, kBytesHelp, "invalid_bytes", "result", reason}, c.bytes_invalid[r]);
    sink.Add({kInvalid, kCounter, kInvalidHelp, "invalid_writes", "reason", reason}, c.invalid[r]);
  }
  sink.Add({"simarray_host_writes_started_total", kCounter,
            "Host writes begun (checked and given queue places), by host adaptor.", "writes"},
           c.writes);
  sink.Add({"simarray_host_reads_total", kCounter, "Host reads served, by host adaptor.", "reads"},
           c.reads);
  sink.Add({"simarray_host_read_bytes_total", kCounter, "Bytes of host reads, by host adaptor.",
            "bytes_read"},
           c.bytes_read);
}

}  // namespace simarray::host
