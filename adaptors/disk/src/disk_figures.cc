// The disk adaptor's figures (simarray/base/figures.h): the destage and the backing stores'
// failures.
#include "simarray/disk/disk_adaptor.h"

namespace simarray::disk {

void Describe(DiskAdaptor& disk, FigureSink& sink) {
  constexpr FigureKind kCounter = FigureKind::kCounter;
  sink.Add({"simarray_destage_tracks_total", kCounter,
            "Track images destaged to the backing files.", "tracks_destaged"},
           disk.tracks_destaged());
  sink.Add(
      {"simarray_destage_bytes_total", kCounter,
       "Bytes the destage wrote to the backing files (dirty 4 KiB blocks only).", "bytes_destaged"},
      disk.bytes_destaged());
  sink.Add({"simarray_backing_store_errors_total", kCounter,
            "Writes and syncs of backing files that failed (the tracks stayed in cache).",
            "backing_store_errors"},
           disk.health().errors());
  sink.Add({"simarray_backing_store_recoveries_total", kCounter,
            "Failed backing stores that took a destage again.", "backing_store_recoveries"},
           disk.health().recoveries());
}

}  // namespace simarray::disk
