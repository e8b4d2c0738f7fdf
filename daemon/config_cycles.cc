#include "daemon/config_cycles.h"

#include <set>

#include "absl/strings/str_cat.h"

namespace simarray::daemon {

void ReadPacing(Reader& r, const std::string& key, const toml::node_view<const toml::node>& node,
                mirror::PacingSettings* out) {
  if (!node) return;
  const toml::table* table = node.as_table();
  if (table == nullptr) {
    return r.Fail(key,
                  "expected a table (pacing.mode, pacing.threshold_percent, "
                  "pacing.max_delay_us)");
  }
  static const std::set<std::string> kKeys = {"mode", "threshold_percent", "max_delay_us"};
  for (const auto& [k, v] : *table) {
    if (kKeys.count(std::string(k.str())) == 0) {
      r.Fail(absl::StrCat(key, ".", std::string(k.str())),
             "unknown key (expected mode, threshold_percent or max_delay_us)");
    }
  }
  std::string mode = out->on ? "on" : "off";
  r.String(key + ".mode", &mode, node["mode"]);
  if (mode != "on" && mode != "off") {
    r.Fail(key + ".mode", absl::StrCat("expected \"off\" or \"on\", got \"", mode, "\""));
  }
  out->on = mode == "on";
  r.Integer(key + ".threshold_percent", &out->threshold_percent, node["threshold_percent"]);
  if (out->threshold_percent < 1 || out->threshold_percent > 99) {
    r.Fail(key + ".threshold_percent",
           absl::StrCat("expected 1 to 99 (percent of the tracks the cycles may hold), got ",
                        out->threshold_percent));
  }
  uint64_t max_delay_us = absl::ToInt64Microseconds(out->max_delay);
  r.Integer(key + ".max_delay_us", &max_delay_us, node["max_delay_us"]);
  if (max_delay_us < 1 || max_delay_us > 1000000) {
    r.Fail(key + ".max_delay_us", absl::StrCat("expected 1 to 1000000, got ", max_delay_us));
  }
  out->max_delay = absl::Microseconds(max_delay_us);
}

}  // namespace simarray::daemon
