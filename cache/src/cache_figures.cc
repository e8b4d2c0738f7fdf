// The cache's figures (simarray/base/figures.h): slots by state and bytes copied.
#include "simarray/cache/cache_memory.h"

namespace simarray::cache {

void Describe(const CacheMemory& cache, const SlotCounts& slots, FigureSink& sink) {
  constexpr std::string_view kSlots = "simarray_cache_slots";
  constexpr std::string_view kHelp = "Cache slots by state.";
  constexpr FigureKind kGauge = FigureKind::kGauge;
  sink.Add({kSlots, kGauge, kHelp, "free", "state", "free"}, slots.free);
  sink.Add({kSlots, kGauge, kHelp, "clean", "state", "clean"}, slots.clean);
  sink.Add({kSlots, kGauge, kHelp, "write_pending", "state", "write_pending"}, slots.write_pending);
  sink.Add({kSlots, kGauge, kHelp, "staging", "state", "staging"}, slots.staging);
  sink.Add({kSlots, kGauge, kHelp, "shipping", "state", "shipping"}, slots.shipping);
  sink.Add({"simarray_cache_slot_capacity", kGauge, "Cache slots in all.", "slots"}, slots.total);
  sink.Add({"simarray_cache_copied_bytes_total", FigureKind::kCounter,
            "Bytes commits copied into track images (written ranges, and copy-on-write fills).",
            "bytes_copied"},
           cache.bytes_copied());
}

}  // namespace simarray::cache
