#pragma once
// The RPO study of docs/async.md (simarray-bench --rpo-study): how far behind an async mirror
// falls (its RPO: Status.cycles.seconds_behind, the age of its image) when the host writes at
// a steady rate below, near and above an emulated link's bandwidth, with the cycles' cache
// share alone, with a delta set extension, and with write pacing; and how long a resync of
// 1 GiB takes over each link. Prints a Markdown table. Minutes of machine time: not a row of
// `make bench`.

#include <string>

namespace simarray::bench {

// `simarrayd`: the daemon to start; pairs live under `scratch`. Returns the process's exit
// code (0, or 1 when a pair did not come up or a run failed).
int RunRpoStudy(const std::string& simarrayd, const std::string& scratch, double seconds);

}  // namespace simarray::bench
