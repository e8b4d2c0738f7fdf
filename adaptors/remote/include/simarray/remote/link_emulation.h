#pragma once
// Link emulation (docs/link-emulation.md): what a real link between two sites does to the
// messages of an RDF group's Ship stream, applied by the group's source to each direction:
// out (records toward the target) and back (the target's acks).
//
//   latency    added to every message, one way
//   jitter     plus a random 0..jitter per message; messages keep their order, as on TCP
//   bandwidth  bits a second: a message takes its size / bandwidth on the wire, and the next
//              one waits for it; the sender may hand over one message while another is on
//              the wire (a socket buffer of one message), so the wire never idles while the
//              sender keeps up
//   loss       the chance a message never arrives; the target notices the gap in the
//              stream's message numbers and ends the stream, and the source resyncs what
//              was in flight (docs/pair.md, "When the link is lost")
//
// LinkModel is the arithmetic, with the clock passed in; ship_stream.cc runs it.

#include <atomic>
#include <cstdint>
#include <random>
#include <string>
#include <string_view>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"

namespace simarray::remote {

struct LinkEmulation {
  absl::Duration latency = absl::ZeroDuration();
  absl::Duration jitter = absl::ZeroDuration();
  uint64_t bandwidth = 0;  // bits a second; 0: unlimited
  double loss = 0;         // 0..1

  bool off() const {
    return latency == absl::ZeroDuration() && jitter == absl::ZeroDuration() && bandwidth == 0 &&
           loss == 0;
  }
  // "off", or e.g. "30 ms +0-5 ms, 100 Mbit/s, 0.1% loss".
  std::string ToString() const;
  bool operator==(const LinkEmulation&) const = default;
};

// Both directions of a group's link.
struct LinkEmulations {
  LinkEmulation out;   // records toward the target
  LinkEmulation back;  // acks toward the source
  bool off() const { return out.off() && back.off(); }
  bool operator==(const LinkEmulations&) const = default;
};

// "100Mbit", "1Gbit", "512kbit", "2500000" (bits a second), "12.5MB" (bytes a second), "0" or
// "off": unlimited. INVALID_ARGUMENT saying what was expected otherwise.
absl::StatusOr<uint64_t> ParseBandwidth(std::string_view text);
// "0.1%" or a fraction "0.001"; INVALID_ARGUMENT outside 0..100%.
absl::StatusOr<double> ParseLoss(std::string_view text);
// "100 Mbit/s", "1.5 Gbit/s", "unlimited".
std::string FormatBandwidth(uint64_t bits_per_second);
// Checks a whole setting: latency and jitter 0..60 s.
absl::Status Validate(const LinkEmulation& emulation);

// A group's link emulation as set now (from the config, then EmulateLink) and the messages
// it lost; shared by the group's Ship streams, which read it for every message.
// Thread-safe.
class LinkEmulator {
 public:
  void Set(const LinkEmulations& emulations) ABSL_LOCKS_EXCLUDED(mu_);
  LinkEmulations Get() ABSL_LOCKS_EXCLUDED(mu_);
  // Whether either direction is emulated (one load: the plain link's check).
  bool on() const { return on_.load(std::memory_order_acquire); }

  void CountLost() { lost_.fetch_add(1, std::memory_order_relaxed); }
  uint64_t lost() const { return lost_.load(std::memory_order_relaxed); }

 private:
  absl::Mutex mu_;
  LinkEmulations emulations_ ABSL_GUARDED_BY(mu_);
  std::atomic<bool> on_{false};
  std::atomic<uint64_t> lost_{0};
};

// One direction of a link: when each message leaves and arrives. Not thread-safe.
class LinkModel {
 public:
  explicit LinkModel(uint64_t seed) : random_(seed) {}

  struct Fate {
    absl::Time starts;   // the message is on the wire: the sender may hand over the next
    absl::Time left;     // the wire is free for the next message
    absl::Time arrives;  // at the far end (not before any earlier message)
    bool lost = false;
  };
  // A message of `bytes` handed to the link at `now` under `emulation`.
  Fate Send(const LinkEmulation& emulation, size_t bytes, absl::Time now);

 private:
  std::mt19937_64 random_;
  absl::Time wire_free_ = absl::InfinitePast();
  absl::Time last_arrival_ = absl::InfinitePast();
};

}  // namespace simarray::remote
