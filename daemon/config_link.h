#pragma once
// The link's settings that take rates: link.emulate and resync.max_rate.
//
// link.emulate (docs/link-emulation.md): a group's emulated link, from the single-peer form's
// [link.emulate] table or an [[rdf_group]]'s link.emulate. The table sets both directions;
// a `back` table in it sets the way back (the target's acks) on its own:
//
//   [link.emulate]
//   latency_ms = 20      # one way; a number, fractions allowed
//   jitter_ms = 2
//   bandwidth = "100Mbit"
//   loss = "0.1%"
//   back = { latency_ms = 20 }

#include <string>

#include "daemon/config_reader.h"
#include "simarray/remote/link_emulation.h"

namespace simarray::daemon {

// Reads the table at `node`, named `key` in errors (absent: `out` is left as it is).
void ReadLinkEmulation(Reader& r, const std::string& key,
                       const toml::node_view<const toml::node>& node, remote::LinkEmulations* out);

// A rate in bits a second ("50Mbit", "10MB", remote::ParseBandwidth) at `node`, named `key`
// in errors (absent: `out` is left as it is). resync.max_rate.
void ReadRate(Reader& r, const std::string& key, const toml::node_view<const toml::node>& node,
              uint64_t* out);

// The settings as a TOML inline table for data_dir/groups.toml ("" when off).
std::string LinkEmulationToml(const remote::LinkEmulations& emulations);

}  // namespace simarray::daemon
