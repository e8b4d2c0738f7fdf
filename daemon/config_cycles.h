#pragma once
// An async group's settings for cycles that outgrow their cache share (docs/async.md):
// write pacing, from the single-peer form's [pacing] table or an [[rdf_group]]'s `pacing`:
//
//   [pacing]
//   mode = "on"               # "off" (default) | "on"
//   threshold_percent = 60    # of the tracks the cycles may hold; pacing starts above it
//                             # (1 .. 99)
//   max_delay_us = 50000      # the delay at the limit (1 .. 1000000)
//
// (`pacing = "on"` cannot sit beside `pacing.max_delay_us` in TOML, a key is a value or a
// table; hence `pacing.mode`.)

#include <string>

#include "daemon/config_reader.h"
#include "simarray/mirror/write_pacing.h"

namespace simarray::daemon {

// Reads the table at `node`, named `key` in errors (absent: `out` is left as it is).
void ReadPacing(Reader& r, const std::string& key, const toml::node_view<const toml::node>& node,
                mirror::PacingSettings* out);

}  // namespace simarray::daemon
