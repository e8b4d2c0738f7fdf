#pragma once
// Every figure of the array (simarray/base/figures.h), described once for all its views:
// RenderMetrics (metrics.cc) and FillStatus (status_report.cc) both walk the array with
// DescribeArray, so /metrics, Status and the console (which shows Status) never disagree.
//
// The sections follow the Status reply (admin.proto):
//   top      the sequence, the first group's mirror queue and owed tracks, what this daemon
//            applied as a target, cancelled streams, refused calls
//   cache    slots by state, bytes copied, the destage and the backing stores
//   pens[]   one per host adaptor (label adaptor): its writes and reads, its holding pen
//   nbd[]    one per NBD port (label adaptor)
//   link     the first group's peer link
//   cycles   async mode: the first group's cycles (source) or what was applied (target)
// Each RDF group's own figures are in Status.groups (FillGroup), not repeated in /metrics.

#include "daemon/array.h"
#include "simarray/base/figures.h"

namespace simarray::daemon {

// `slot_counts` false reports the cache slot counts as zero: counting takes a scan of every
// slot under the cache lock (the event watcher samples without it).
void DescribeArray(Array& array, FigureSink& sink, bool slot_counts);

// A cycles section's figures, for `group`'s cycles (null: the array's first group). A group
// whose side ships cycles tells them; otherwise what this daemon applied as a target.
void DescribeCycles(Array& array, RdfGroup* group, FigureSink& sink);

}  // namespace simarray::daemon
