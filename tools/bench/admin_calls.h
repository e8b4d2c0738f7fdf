#pragma once
// The few AdminService calls the bench makes on a pair, as absl::Status (the gRPC status
// converted in one place, simarray_rpc). Each call sends the daemon's admin token, if any.

#include <chrono>
#include <cstdint>
#include <string>

#include "absl/status/statusor.h"
#include "simarray/v1/admin.pb.h"

namespace simarray::bench {

// A daemon's admin port and the token its admin.token_file holds ("" when it has none).
struct AdminPort {
  std::string address;
  std::string token;
};

// The token in `path` (an admin.token_file); errors name the file.
absl::StatusOr<std::string> ReadToken(const std::string& path);

// Polls the primary at `admin` until its link reports "up"; UNAVAILABLE after `limit`.
absl::Status WaitLinkUp(const AdminPort& admin, std::chrono::seconds limit);

// Creates `name` of `size` bytes on the primary, and so its twin on the mirror. A volume of
// that name and size that is already there (a pair given with --primary) is fine;
// FAILED_PRECONDITION if it exists with another size or is not paired.
absl::Status EnsureVolume(const AdminPort& admin, const std::string& name, uint64_t size);

// Checks that the daemon at `admin` is a mirror with a volume named `volume` (for --mirror:
// the bench measures a pair, not a lone primary). FAILED_PRECONDITION if not.
absl::Status CheckMirrorRole(const AdminPort& admin, const std::string& volume);

// SuspendLink (`suspend`) or ResumeLink on the primary's first group.
absl::Status SetLink(const AdminPort& admin, bool suspend);

// The daemon's Status.
absl::StatusOr<v1::StatusReply> GetStatus(const AdminPort& admin);

// CheckConsistency of `volume` (waiting up to 10 s for the mirror to catch up): a one-line
// verdict for the report, e.g. "consistent (1024 tracks compared)".
std::string ConsistencyVerdict(const AdminPort& admin, const std::string& volume);

}  // namespace simarray::bench
