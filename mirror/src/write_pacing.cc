#include "simarray/mirror/write_pacing.h"

#include <algorithm>

namespace simarray::mirror {

uint64_t PacingThreshold(const PacingSettings& settings, uint64_t limit) {
  if (!settings.on || limit == 0) return 0;
  return std::max<uint64_t>(1, limit * settings.threshold_percent / 100);
}

absl::Duration PacingDelay(const PacingSettings& settings, uint64_t pinned, uint64_t limit) {
  const uint64_t threshold = PacingThreshold(settings, limit);
  if (threshold == 0 || pinned <= threshold) return absl::ZeroDuration();
  if (pinned >= limit || threshold >= limit) return settings.max_delay;
  return settings.max_delay * static_cast<double>(pinned - threshold) /
         static_cast<double>(limit - threshold);
}

}  // namespace simarray::mirror
