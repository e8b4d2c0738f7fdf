#pragma once
// Handshake: the option haggling of one NBD connection (fixed newstyle), as a pure state
// machine: it is fed the client flags and then one option at a time, and answers with the
// bytes to send and what the connection does next (go on, enter transmission, close). No
// I/O, so every option can be tested without a socket.
//
// Supported: NBD_OPT_EXPORT_NAME, ABORT, LIST, INFO, GO, STRUCTURED_REPLY,
// LIST_META_CONTEXT and SET_META_CONTEXT (the "base:allocation" context). Every other
// option gets NBD_REP_ERR_UNSUP and the negotiation goes on; an unknown export gets
// NBD_REP_ERR_UNKNOWN (or, for EXPORT_NAME, which cannot answer an error, a close).
//
// Not thread-safe: one connection drives it. The catalog is borrowed and must outlive it.

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"

namespace simarray::nbd {

// Options whose data is longer than this close the connection (denial of service).
inline constexpr uint32_t kMaxOptionLength = 64 << 10;

// What the handshake needs to know about the array: each volume is an export of its name.
struct ExportCatalog {
  // Size in bytes of the export `name`; nullopt when there is no such volume.
  std::function<std::optional<uint64_t>(const std::string& name)> size_of;
  std::function<std::vector<std::string>()> names;
  // False for a volume hosts may only read (a target's): its export is advertised read-only.
  std::function<bool(const std::string& volume)> accepts_writes;
  uint32_t track_size = 64 << 10;   // advertised as the preferred block size
  uint32_t max_payload = 32 << 20;  // max_write, advertised as the maximum block size
};

// The export a connection chose and what was negotiated for the transmission phase.
struct Session {
  std::string export_name;
  uint64_t size = 0;
  uint16_t flags = 0;            // transmission flags sent to the client
  bool structured = false;       // structured replies negotiated
  bool base_allocation = false;  // base:allocation selected for this export
};

class Handshake {
 public:
  explicit Handshake(const ExportCatalog* catalog) : catalog_(catalog) {}

  // The client flags that follow the greeting. INVALID_ARGUMENT for a flag this server did
  // not offer: the connection must be closed.
  absl::Status OnClientFlags(uint32_t flags);

  enum class Next { kContinue, kTransmission, kClose };
  struct Outcome {
    Next next = Next::kContinue;
    std::string reply;  // bytes to send before acting on `next`
  };
  // One option from the client: its code and its data.
  Outcome OnOption(uint32_t option, std::string_view data);

  // Valid once OnOption answered kTransmission.
  const Session& session() const { return session_; }

  // The transmission flags for an export, given what was negotiated so far.
  uint16_t TransmissionFlags() const;

 private:
  Outcome ExportName(std::string_view data);
  Outcome InfoOrGo(uint32_t option, std::string_view data);
  Outcome MetaContext(uint32_t option, std::string_view data);
  Outcome List(std::string_view data);
  // Fills session_ for `name` of `size` bytes.
  void Choose(const std::string& name, uint64_t size);

  const ExportCatalog* const catalog_;
  bool no_zeroes_ = false;
  bool structured_ = false;
  // The export the last SET_META_CONTEXT named, when it selected base:allocation.
  std::optional<std::string> allocation_export_;
  Session session_;
};

}  // namespace simarray::nbd
