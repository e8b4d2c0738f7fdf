#pragma once
// CycleJournal: an async mirror's durable note of the cycle it is applying and of the last
// cycle it applied whole (data_dir/cycles.journal). The note is replaced like every state
// file (WriteFileAtomically, docs/reliability.md "State files": a new file fsynced and
// renamed over the old one, then the directory fsynced), so a crash leaves the old note or
// the new one, never a torn one.
//
// With the cache region it makes applying a cycle atomic across a crash (docs/async.md):
// before the first record of a cycle is published, every record is made a whole-track image
// sealed with the cycle's write id (CacheMemory::SealStaged) and the note says "applying";
// after the last it says "applied". At start, a cycle still noted as applying is redone from
// its sealed slots (CacheOptions::redo_write_id); a cycle staged but never noted is
// discarded with every other staged slot, and the mirror keeps the cycle before it.
//
// Not thread-safe: the record applier calls it under its lock, the daemon before that.

#include <cstdint>
#include <string>

#include "absl/status/statusor.h"

namespace simarray::remote {

struct CycleMark {
  uint64_t cycle = 0;  // 0: none
  uint64_t sequence = 0;
  bool consistent = false;
};

struct CycleNote {
  CycleMark applying;  // the cycle being applied, if any
  CycleMark applied;   // the last cycle applied whole
};

class CycleJournal {
 public:
  // The write id a cycle's staged slots are sealed with (host write ids never have bit 63).
  static uint64_t WriteIdOf(uint64_t cycle) { return (uint64_t{1} << 63) | cycle; }

  explicit CycleJournal(std::string path) : path_(std::move(path)) {}

  // The note; an empty one when the file does not exist. DATA_LOSS when it is malformed.
  absl::StatusOr<CycleNote> Read() const;
  // Replaces the note durably (WriteFileAtomically). The error names the file and the step.
  absl::Status Write(const CycleNote& note);

 private:
  const std::string path_;
};

}  // namespace simarray::remote
