#include "simarray/disk/store_health.h"

#include <cerrno>
#include <cstring>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"

namespace simarray::disk {

absl::Status FailureStatus(const StoreFailure& f) {
  const std::string what =
      absl::StrCat("backing store of volume ", f.volume, " failed: ", DiskOpName(f.op), ": ",
                   strerror(f.error), " (errno ", f.error, ") since ",
                   absl::FormatTime("%Y-%m-%d %H:%M:%S UTC", f.since, absl::UTCTimeZone()), ", ",
                   f.failures, f.failures == 1 ? " attempt" : " attempts",
                   "; its write-pending tracks stay in cache and the destage retries them "
                   "(docs/storage-faults.md)");
  if (f.error == ENOSPC || f.error == EDQUOT) return absl::ResourceExhaustedError(what);
  return absl::UnavailableError(what);
}

StoreFailure StoreHealth::Failed(uint32_t volume_id, const std::string& volume, DiskOp op,
                                 int error) {
  errors_.fetch_add(1, std::memory_order_relaxed);
  absl::MutexLock lock(&mu_);
  auto [it, fresh] = failed_.try_emplace(volume_id);
  StoreFailure& f = it->second;
  if (fresh) {
    f.volume_id = volume_id;
    f.volume = volume;
    f.since = absl::Now();
  }
  f.op = op;
  f.error = error;
  ++f.failures;
  failed_count_.store(failed_.size(), std::memory_order_relaxed);
  return f;
}

std::optional<StoreFailure> StoreHealth::Recovered(uint32_t volume_id) {
  if (failed_count_.load(std::memory_order_relaxed) == 0) return std::nullopt;
  absl::MutexLock lock(&mu_);
  auto it = failed_.find(volume_id);
  if (it == failed_.end()) return std::nullopt;
  StoreFailure ended = std::move(it->second);
  failed_.erase(it);
  failed_count_.store(failed_.size(), std::memory_order_relaxed);
  recoveries_.fetch_add(1, std::memory_order_relaxed);
  return ended;
}

std::vector<StoreFailure> StoreHealth::Failures() {
  absl::MutexLock lock(&mu_);
  std::vector<StoreFailure> out;
  for (const auto& [id, f] : failed_) out.push_back(f);
  return out;
}

absl::Status StoreHealth::Verdict() {
  absl::MutexLock lock(&mu_);
  const StoreFailure* first = nullptr;
  for (const auto& [id, f] : failed_) {
    if (first == nullptr || f.since < first->since) first = &f;
  }
  return first == nullptr ? absl::OkStatus() : FailureStatus(*first);
}

}  // namespace simarray::disk
