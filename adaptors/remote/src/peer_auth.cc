#include "simarray/remote/peer_auth.h"

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "simarray/base/secret.h"
#include "simarray/rpc/rpc.h"
#include "spdlog/spdlog.h"

namespace simarray::remote {
namespace {

constexpr size_t kNonceBytes = 32;

// Labels and a zero byte keep the two proofs, and their fields, apart.
std::string ProofInput(std::string_view label, std::initializer_list<std::string_view> fields) {
  std::string input(label);
  for (std::string_view f : fields) {
    input.push_back('\0');
    input.append(f);
  }
  return input;
}

}  // namespace

std::string HelloProof(std::string_view secret, std::string_view nonce,
                       std::string_view client_nonce, std::string_view daemon_id) {
  return HmacSha256(secret, ProofInput("simarray hello", {nonce, client_nonce, daemon_id}));
}

std::string ReplyProof(std::string_view secret, std::string_view client_nonce,
                       std::string_view nonce, std::string_view session) {
  return HmacSha256(secret, ProofInput("simarray reply", {client_nonce, nonce, session}));
}

void SignHello(std::string_view secret, std::string nonce, v1::HelloRequest& hello) {
  hello.set_client_nonce(RandomBytes(kNonceBytes));
  if (!secret.empty()) {
    hello.set_proof(HelloProof(secret, nonce, hello.client_nonce(), hello.daemon_id()));
  }
  hello.set_nonce(std::move(nonce));
}

std::string PeerGate::IssueChallenge() {
  std::string nonce = RandomBytes(kNonceBytes);
  absl::MutexLock lock(&mu_);
  if (challenge_order_.size() >= kMaxChallenges) {
    challenges_.erase(challenge_order_.front());
    challenge_order_.pop_front();
  }
  challenges_[nonce] = absl::Now() + kChallengeLifetime;
  challenge_order_.push_back(nonce);
  return nonce;
}

absl::StatusOr<PeerGate::Admission> PeerGate::Admit(const v1::HelloRequest& hello) {
  Admission out;
  if (!secret_.empty()) {
    bool known = false;
    {
      absl::MutexLock lock(&mu_);
      auto it = challenges_.find(hello.nonce());
      if (it != challenges_.end()) {
        known = it->second > absl::Now();
        challenges_.erase(it);  // one Hello per nonce, right or wrong
      }
    }
    if (!known) {
      return rpc::FromGrpc(
          Refuse(absl::StrCat("Hello from ", hello.daemon_id(),
                              " with an unknown, used or expired nonce (a replayed Hello?)")));
    }
    const std::string expected =
        HelloProof(secret_, hello.nonce(), hello.client_nonce(), hello.daemon_id());
    if (hello.client_nonce().size() != kNonceBytes ||
        !ConstantTimeEquals(hello.proof(), expected)) {
      return rpc::FromGrpc(Refuse(absl::StrCat("Hello from ", hello.daemon_id(),
                                               " with a wrong proof: the peer secrets differ")));
    }
  }
  out.session = Hex(RandomBytes(16));
  if (!secret_.empty()) {
    out.proof = ReplyProof(secret_, hello.client_nonce(), hello.nonce(), out.session);
  }
  absl::MutexLock lock(&mu_);
  if (session_order_.size() >= kMaxSessions) {
    sessions_.erase(session_order_.front());
    session_order_.pop_front();
  }
  sessions_[out.session] = hello.group().empty() ? std::string("default") : hello.group();
  session_order_.push_back(out.session);
  return out;
}

grpc::Status PeerGate::Check(const grpc::ServerContextBase& context, std::string* group) {
  const auto& metadata = context.client_metadata();
  auto it = metadata.find(kSessionMetadata);
  if (it == metadata.end()) {
    return Refuse(absl::StrCat("call from ", context.peer(),
                               " without a session: expected Challenge and Hello first"));
  }
  const std::string session(it->second.data(), it->second.size());
  absl::MutexLock lock(&mu_);
  auto found = sessions_.find(session);
  if (found == sessions_.end()) {
    return Refuse(absl::StrCat("call from ", context.peer(),
                               " with an unknown session (this daemon restarted, or the "
                               "session was closed): say Hello again"));
  }
  if (group != nullptr) *group = found->second;
  return grpc::Status::OK;
}

grpc::Status PeerGate::Refuse(const std::string& why) {
  refusals_.fetch_add(1);
  spdlog::warn("peer service: refused: {}", why);
  return grpc::Status(grpc::StatusCode::UNAUTHENTICATED, why);
}

}  // namespace simarray::remote
