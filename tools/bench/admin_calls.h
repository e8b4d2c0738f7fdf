#pragma once
// The few AdminService calls the bench makes on a pair, as absl::Status (the gRPC status
// converted in one place, simarray_rpc).

#include <chrono>
#include <cstdint>
#include <string>

#include "absl/status/statusor.h"

namespace simarray::bench {

// Polls the primary at `admin` until its link reports "up"; UNAVAILABLE after `limit`.
absl::Status WaitLinkUp(const std::string& admin, std::chrono::seconds limit);

// Creates `name` of `size` bytes on the primary, and so its twin on the mirror. A volume of
// that name and size that is already there (a pair given with --primary) is fine;
// FAILED_PRECONDITION if it exists with another size or is not paired.
absl::Status EnsureVolume(const std::string& admin, const std::string& name, uint64_t size);

// Checks that the daemon at `admin` is a mirror with a volume named `volume` (for --mirror:
// the bench measures a pair, not a lone primary). FAILED_PRECONDITION if not.
absl::Status CheckMirrorRole(const std::string& admin, const std::string& volume);

// CheckConsistency of `volume` (waiting up to 10 s for the mirror to catch up): a one-line
// verdict for the report, e.g. "consistent (1024 tracks compared)".
std::string ConsistencyVerdict(const std::string& admin, const std::string& volume);

}  // namespace simarray::bench
