#pragma once
// State files: the small files a daemon keeps beside its data (the failed-over marker, the
// learned peer address, the volume catalog, the cycle journal, the admin token, the ready
// file). They are written like data (docs/reliability.md, "State files"): a temporary file
// in the same directory, written whole, fsynced, closed, renamed over the old one, then the
// directory fsynced. A crash at any point leaves the old file or the new one, never a torn
// or empty one. Every state file of the daemon goes through these functions.
//
// Thread-safe: each call has its own temporary file; for one path the last rename wins.

#include <sys/types.h>

#include <string>
#include <string_view>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace simarray {

// Replaces `path` with `contents`, all or nothing, durably.
// - OK: `path` holds exactly `contents`, with permission bits exactly `mode` (set with
//   fchmod, so the umask does not change them), and the file and its directory entry are
//   fsynced: a crash after the return finds the new contents.
// - Error (INTERNAL): the message names `path`, the step that failed (create, write, fsync,
//   close, rename, fsync of the directory) and strerror(errno). Before the rename, `path` is
//   as it was (old contents, or absent) and the temporary file is removed. Only a failed
//   fsync of the directory comes after the rename: `path` then holds the new contents, but
//   a power loss may still bring the old ones back.
// - A crash during the call leaves `path` old or new; it may leave the temporary file,
//   named `.<name>.tmp.XXXXXX` in the same directory (RemoveStaleTempFiles removes it).
absl::Status WriteFileAtomically(const std::string& path, std::string_view contents, mode_t mode);

// Removes `path` durably: unlink, then fsync its directory. A missing file (or directory)
// is OK. Error (INTERNAL, naming the path, the step and strerror(errno)): `path` is still
// there, or, when only the directory fsync failed, gone but maybe back after a power loss.
absl::Status RemoveFileDurably(const std::string& path);

// Whether `name` (a file name, no directory) is a temporary file of WriteFileAtomically.
bool IsStateTempFileName(std::string_view name);

// Removes the temporary files that WriteFileAtomically calls cut short by a crash left in
// `dir`, and returns how many. Only for a directory no other process writes state files
// into at the same time (the daemon calls it on its data_dir, under the data_dir lock).
// Errors name the directory or the file that could not be removed.
absl::StatusOr<int> RemoveStaleTempFiles(const std::string& dir);

}  // namespace simarray
