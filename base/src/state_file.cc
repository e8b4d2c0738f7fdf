#include "simarray/base/state_file.h"

#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <vector>

#include "absl/strings/str_cat.h"

namespace simarray {
namespace {

constexpr std::string_view kTempMark = ".tmp.";
constexpr size_t kTempSuffix = 6;  // mkostemp's XXXXXX

// "<what> <path>: <step>: <strerror(error)>".
absl::Status StepError(absl::string_view what, const std::string& path, absl::string_view step,
                       int error) {
  return absl::InternalError(absl::StrCat(what, " ", path, ": ", step, ": ", std::strerror(error)));
}

std::string DirOf(const std::string& path) {
  const size_t slash = path.rfind('/');
  if (slash == std::string::npos) return ".";
  if (slash == 0) return "/";
  return path.substr(0, slash);
}

std::string NameOf(const std::string& path) {
  const size_t slash = path.rfind('/');
  return slash == std::string::npos ? path : path.substr(slash + 1);
}

// fsync of a directory, so the entries renamed or unlinked in it are on disk. Returns the
// errno of the failed step (0: done) and the step in `*step`. A missing directory is
// reported as ENOENT: the callers decide.
int SyncDir(const std::string& dir, const char** step) {
  *step = "open the directory for fsync";
  const int fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) return errno;
  *step = "fsync the directory";
  int error = ::fsync(fd) == 0 ? 0 : errno;
  if (::close(fd) != 0 && error == 0) {
    *step = "close the directory";
    error = errno;
  }
  return error;
}

// Writes all of `data` to `fd`, through short writes and EINTR; 0 or the errno.
int WriteAll(int fd, std::string_view data) {
  size_t done = 0;
  while (done < data.size()) {
    const ssize_t n = ::write(fd, data.data() + done, data.size() - done);
    if (n < 0) {
      if (errno == EINTR) continue;
      return errno;
    }
    if (n == 0) return EIO;  // no progress and no error: never expected of a regular file
    done += static_cast<size_t>(n);
  }
  return 0;
}

}  // namespace

bool IsStateTempFileName(std::string_view name) {
  if (name.size() < 1 + kTempMark.size() + kTempSuffix || name[0] != '.') return false;
  const size_t mark = name.size() - kTempSuffix - kTempMark.size();
  return name.substr(mark, kTempMark.size()) == kTempMark;
}

absl::Status WriteFileAtomically(const std::string& path, std::string_view contents, mode_t mode) {
  constexpr absl::string_view kWhat = "write state file";
  const std::string dir = DirOf(path);
  std::string temp = absl::StrCat(dir, "/.", NameOf(path), std::string(kTempMark), "XXXXXX");
  const int fd = ::mkostemp(temp.data(), O_CLOEXEC);  // O_CREAT | O_EXCL, mode 0600
  if (fd < 0)
    return StepError(kWhat, path, absl::StrCat("create a temporary file in ", dir), errno);
  // Every failure from here removes the temporary file; `fd` is closed at most once.
  auto fail = [&](absl::string_view step, int error, bool open) {
    if (open) ::close(fd);
    ::unlink(temp.c_str());
    return StepError(kWhat, path, absl::StrCat(step, " (temporary file ", temp, ")"), error);
  };
  if (::fchmod(fd, mode) != 0) return fail("fchmod", errno, true);
  if (const int error = WriteAll(fd, contents); error != 0) {
    return fail(absl::StrCat("write ", contents.size(), " bytes"), error, true);
  }
  if (::fsync(fd) != 0) return fail("fsync", errno, true);
  // Linux releases the descriptor even when close fails: never close it twice.
  if (::close(fd) != 0) return fail("close", errno, false);
  if (::rename(temp.c_str(), path.c_str()) != 0) {
    return fail("rename the temporary file over it", errno, false);
  }
  const char* step = "";
  if (const int error = SyncDir(dir, &step); error != 0) {
    return StepError(kWhat, path, absl::StrCat(step, " ", dir, " after the rename"), error);
  }
  return absl::OkStatus();
}

absl::Status RemoveFileDurably(const std::string& path) {
  constexpr absl::string_view kWhat = "remove state file";
  if (::unlink(path.c_str()) != 0 && errno != ENOENT) {
    return StepError(kWhat, path, "unlink", errno);
  }
  // Also when the file was already missing: an unlink cut short before its directory fsync
  // by a crash is made durable now.
  const std::string dir = DirOf(path);
  const char* step = "";
  if (const int error = SyncDir(dir, &step); error != 0 && error != ENOENT) {
    return StepError(kWhat, path, absl::StrCat(step, " ", dir), error);
  }
  return absl::OkStatus();
}

absl::StatusOr<int> RemoveStaleTempFiles(const std::string& dir) {
  DIR* d = ::opendir(dir.c_str());
  if (d == nullptr) {
    return absl::InternalError(
        absl::StrCat("list ", dir, " for stale temporary files: ", std::strerror(errno)));
  }
  std::vector<std::string> stale;
  while (const dirent* entry = ::readdir(d)) {
    if (IsStateTempFileName(entry->d_name)) stale.push_back(entry->d_name);
  }
  ::closedir(d);
  for (const std::string& name : stale) {
    if (absl::Status s = RemoveFileDurably(absl::StrCat(dir, "/", name)); !s.ok()) return s;
  }
  return static_cast<int>(stale.size());
}

}  // namespace simarray
