#pragma once
// DeltaSetExtension (DSE; docs/async.md, "Delta set extension"): a file under data_dir that
// async cycles page track images out to when they would pin more than their cache share,
// as SRDF/A pages delta sets to a disk pool instead of dropping out of async. The file is a
// row of chunks, one track image each (the bytes a cycle changed) behind a header that
// names it: the cycle, the track, the byte range and the write's sequence, with a CRC-32C
// over header and bytes. A mirror that dies while it applies a cycle finds that cycle's
// spilled records again by their headers (ChunksOf) and redoes them.
//
// At most `max_size` bytes of chunks. A chunk is written with pwrite into the page cache,
// which a killed daemon's file keeps (like the cache region, nothing is fsynced: crash
// atomicity covers a kill, not a power cut). Thread-safe.

#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "simarray/base/figures.h"
#include "simarray/cache/cache_memory.h"

namespace simarray::mirror {

struct SpillHeader {
  uint64_t cycle = 0;
  cache::TrackKey key;
  uint32_t offset = 0;  // the bytes' place in the track
  uint32_t length = 0;
  uint64_t sequence = 0;
};

struct SpillCounters {
  uint64_t chunks = 0;         // what max_size holds
  uint64_t chunks_used = 0;    // held now
  uint64_t bytes_held = 0;     // bytes of the images held now
  uint64_t bytes_spilled = 0;  // bytes of the images written, ever
};

// The counters as figures (simarray/base/figures.h), in a cycles section: a source's cycles
// or a target's staging.
void Describe(const SpillCounters& counters, FigureSink& sink);

class DeltaSetExtension {
 public:
  // Opens (creating) `path` for chunks of one track of `track_size`; `keep`: what is in it
  // stays readable for ChunksOf (a mirror's redo), else it is emptied. FAILED_PRECONDITION
  // when max_size holds no chunk; INTERNAL naming the path and errno.
  static absl::StatusOr<std::unique_ptr<DeltaSetExtension>> Open(const std::string& path,
                                                                 uint64_t max_size,
                                                                 uint32_t track_size, bool keep);
  ~DeltaSetExtension();
  DeltaSetExtension(const DeltaSetExtension&) = delete;
  DeltaSetExtension& operator=(const DeltaSetExtension&) = delete;

  // Writes `bytes` (at most a track) behind `header` into a free chunk: its number, or
  // nullopt when every chunk is held or the write failed (logged).
  std::optional<uint32_t> Put(const SpillHeader& header, std::span<const uint8_t> bytes)
      ABSL_LOCKS_EXCLUDED(mu_);
  // Reads chunk `chunk` back: its header, and its bytes into `bytes`. DATA_LOSS when its
  // CRC-32C does not match (the file was changed under the daemon), INTERNAL on a read error.
  absl::Status Get(uint32_t chunk, SpillHeader* header, std::string* bytes) const;
  // The chunk is free again; `forget`: its header is wiped first, so ChunksOf never finds it
  // (a discarded cycle whose number may come again).
  void Free(uint32_t chunk, bool forget = false) ABSL_LOCKS_EXCLUDED(mu_);
  // Chunks whose header is whole and names `cycle` (the redo after a restart).
  // `headers`, when given, gets each one's header (in the same order).
  std::vector<uint32_t> ChunksOf(uint64_t cycle, std::vector<SpillHeader>* headers = nullptr) const;
  // ChunksOf, and those chunks are held from now on (a gold copy reloaded at a restart,
  // remote/gold_copy.h). Right after Open with `keep`, before any Put.
  std::vector<uint32_t> Hold(uint64_t cycle, std::vector<SpillHeader>* headers)
      ABSL_LOCKS_EXCLUDED(mu_);
  // Frees every chunk and empties the file.
  void Clear() ABSL_LOCKS_EXCLUDED(mu_);

  uint32_t track_size() const { return track_size_; }
  uint64_t chunks() const { return chunks_; }
  SpillCounters Counters() ABSL_LOCKS_EXCLUDED(mu_);

 private:
  DeltaSetExtension(std::string path, int fd, uint64_t chunks, uint32_t track_size);
  uint64_t ChunkOffset(uint32_t chunk) const { return uint64_t{chunk} * chunk_size_; }

  const std::string path_;
  const int fd_;
  const uint64_t chunks_;
  const uint32_t track_size_;
  const uint64_t chunk_size_;  // header + one track
  absl::Mutex mu_;
  std::vector<uint32_t> free_ ABSL_GUARDED_BY(mu_);   // chunk numbers, lowest last
  std::vector<uint32_t> bytes_ ABSL_GUARDED_BY(mu_);  // per chunk: bytes held (0: free)
  SpillCounters counters_ ABSL_GUARDED_BY(mu_);
};

}  // namespace simarray::mirror
