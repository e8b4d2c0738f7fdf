// Array: the gold copy of an async target (docs/async.md, "Gold copy") — opened at start,
// and published back when the target is promoted before its image is consistent again.
#include <cstring>
#include <filesystem>

#include "absl/strings/str_cat.h"
#include "daemon/array.h"
#include "spdlog/spdlog.h"

namespace simarray::daemon {

absl::Status Array::OpenGoldCopy() {
  const std::string dir = config_.data_dir + "/gold";
  if (config_.gold_copy == "off") {
    std::error_code ec;
    if (std::filesystem::exists(dir + "/gold.state", ec)) {
      spdlog::warn(
          "gold_copy = \"off\": the gold copy held when the daemon stopped is dropped; the "
          "image is a mix of moments until the next consistent cycle");
    }
    std::filesystem::remove_all(dir, ec);
    return absl::OkStatus();
  }
  gold_ = std::make_unique<remote::GoldCopy>(dir, config_.track_size);
  uint64_t capacity = 0;
  for (const disk::VolumeInfo& v : volumes_->List()) capacity += v.size / config_.track_size;
  auto held = gold_->Reload(journal_applied_.consistent, capacity);
  if (!held.ok()) return held.status();
  applier_->SetGoldCopy(gold_.get());
  return absl::OkStatus();
}

absl::Status Array::CommitGoldTrack(cache::TrackKey key, std::span<const uint8_t> image) {
  std::shared_ptr<disk::Volume> volume = volumes_->FindById(key.volume_id);
  if (volume == nullptr) return absl::OkStatus();  // deleted since: nothing to publish back
  auto staged = cache_->AllocateStaging(key, 0, absl::Now() + absl::Seconds(30));
  if (!staged.ok()) return staged.status();
  std::memcpy(staged->data().data(), image.data(), image.size());
  std::vector<mirror::Portion> portions(1);
  portions[0].staged = *std::move(staged);
  portions[0].length = static_cast<uint32_t>(image.size());
  // A write of this array like a host's: its tracks are owed to the old primary, so a
  // failback copies the gold image back there too.
  return commit_->CommitLocal(portions, volume->groups).status();
}

void Array::PublishGoldBack(RoleChange* change) {
  auto restored =
      applier_->RestoreGold([this](cache::TrackKey key, std::span<const uint8_t> image) {
        return CommitGoldTrack(key, image);
      });
  std::string said;
  if (!restored.ok()) {
    said = absl::StrCat("the gold copy could not be published back (", restored.status().message(),
                        "): the image is NOT a cycle boundary of the primary");
    spdlog::error("{}", said);
  } else if (restored->has_value()) {
    const remote::RecordApplier::GoldRestored& r = **restored;
    said = absl::StrCat("the gold copy was published back (", r.tracks,
                        " tracks): the image is the primary's as of sequence ", r.mark.sequence,
                        " (cycle ", r.mark.cycle, ")");
    if (change != nullptr) {
      change->image_sequence = r.mark.sequence;
      change->gold_tracks = r.tracks;
    }
  } else if (applier_->applied_cycle() != 0) {  // an async mirror (it applied cycles)
    said =
        applier_->consistent()
            ? absl::StrCat("the image is the primary's as of sequence ",
                           applier_->applied_sequence(), " (cycle ", applier_->applied_cycle(), ")")
            : std::string("the image is not a cycle boundary of the primary (no gold copy)");
    if (change != nullptr && applier_->consistent()) {
      change->image_sequence = applier_->applied_sequence();
    }
  }
  if (said.empty()) return;
  spdlog::warn("promotion: {}", said);
  if (change != nullptr) {
    change->description =
        change->description.empty() ? said : absl::StrCat(change->description, "; ", said);
  }
}

}  // namespace simarray::daemon
