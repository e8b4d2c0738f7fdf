#pragma once
// Authentication of the peer link (docs/security.md). With a shared secret configured on
// both daemons, the caller proves it knows the secret without ever sending it:
//
//   caller                                   server
//   Challenge(daemon_id)                 ->  nonce N (random, one Hello, 10 s)
//   Hello(N, client nonce C,
//         HMAC(secret, hello|N|C|id))    ->  checks and forgets N; opens session S;
//                                            replies S and HMAC(secret, reply|C|N|S)
//   checks the reply's proof (the server knows the secret too)
//   every other call: metadata simarray-peer-session: S
//
// A recorded Hello cannot be replayed (its nonce is gone) and a recorded proof reveals
// nothing about the secret. Without a secret Hello still opens the session, so a call
// without Hello is refused either way, but anyone who reaches the port may say hello.
// The session id itself travels in clear: against an eavesdropper on the path use mutual
// TLS as well.

#include <atomic>
#include <deque>
#include <map>
#include <string>
#include <string_view>

#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "grpcpp/grpcpp.h"
#include "simarray/v1/peer.pb.h"

namespace simarray::remote {

inline constexpr char kSessionMetadata[] = "simarray-peer-session";

// The two proofs of the handshake; both sides compute them.
std::string HelloProof(std::string_view secret, std::string_view nonce,
                       std::string_view client_nonce, std::string_view daemon_id);
std::string ReplyProof(std::string_view secret, std::string_view client_nonce,
                       std::string_view nonce, std::string_view session);

// Fills a Hello's nonce, client nonce and proof for `secret`, after Challenge gave `nonce`.
void SignHello(std::string_view secret, std::string nonce, v1::HelloRequest& hello);

// The server side: issues challenges, admits Hellos, checks sessions. Thread-safe.
class PeerGate {
 public:
  static constexpr size_t kMaxChallenges = 64;  // outstanding; the oldest is forgotten
  static constexpr size_t kMaxSessions = 64;    // open; the oldest is closed
  static constexpr absl::Duration kChallengeLifetime = absl::Seconds(10);

  // `secret` empty: Hellos need no proof.
  explicit PeerGate(std::string secret) : secret_(std::move(secret)) {}

  std::string IssueChallenge();

  struct Admission {
    std::string session;
    std::string proof;  // for HelloReply.proof (empty without a secret)
  };
  // Checks a Hello's nonce and proof; UNAUTHENTICATED (saying why) when either is wrong.
  absl::StatusOr<Admission> Admit(const v1::HelloRequest& hello);

  // OK when the call carries an open session; UNAUTHENTICATED otherwise. `group` (may be
  // null) gets the RDF group the session's Hello spoke for ("default" when it named none).
  grpc::Status Check(const grpc::ServerContextBase& context, std::string* group = nullptr);

  // Hellos and calls refused.
  uint64_t refusals() const { return refusals_.load(); }

 private:
  grpc::Status Refuse(const std::string& why);

  const std::string secret_;
  absl::Mutex mu_;
  std::map<std::string, absl::Time> challenges_ ABSL_GUARDED_BY(mu_);
  std::deque<std::string> challenge_order_ ABSL_GUARDED_BY(mu_);
  std::map<std::string, std::string> sessions_ ABSL_GUARDED_BY(mu_);  // id -> RDF group
  std::deque<std::string> session_order_ ABSL_GUARDED_BY(mu_);
  std::atomic<uint64_t> refusals_{0};
};

}  // namespace simarray::remote
