// Write pacing's delay (simarray/mirror/write_pacing.h): none up to the threshold, then in
// proportion up to the most at the cycles' slot limit.
#include "simarray/mirror/write_pacing.h"

#include <catch2/catch.hpp>

namespace simarray::mirror {
namespace {

TEST_CASE("pacing delays grow from the threshold to the limit", "[pacing]") {
  PacingSettings on{true, 50, absl::Milliseconds(40)};
  CHECK(PacingThreshold(on, 100) == 50);
  CHECK(PacingDelay(on, 0, 100) == absl::ZeroDuration());
  CHECK(PacingDelay(on, 50, 100) == absl::ZeroDuration());
  CHECK(PacingDelay(on, 75, 100) == absl::Milliseconds(20));
  CHECK(PacingDelay(on, 100, 100) == absl::Milliseconds(40));
  CHECK(PacingDelay(on, 400, 100) == absl::Milliseconds(40));  // past the limit: the most
}

TEST_CASE("pacing off or with no limit never delays", "[pacing]") {
  PacingSettings off{false, 50, absl::Milliseconds(40)};
  CHECK(PacingThreshold(off, 100) == 0);
  CHECK(PacingDelay(off, 100, 100) == absl::ZeroDuration());
  PacingSettings on{true, 50, absl::Milliseconds(40)};
  CHECK(PacingDelay(on, 10, 0) == absl::ZeroDuration());
  // A tiny limit still has a threshold of at least one slot.
  CHECK(PacingThreshold(on, 1) == 1);
  CHECK(PacingDelay(on, 2, 1) == absl::Milliseconds(40));
}

}  // namespace
}  // namespace simarray::mirror
