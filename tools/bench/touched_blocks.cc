#include "tools/bench/touched_blocks.h"

#include <algorithm>
#include <chrono>
#include <memory>

#include "absl/status/statusor.h"
#include "fmt/format.h"
#include "simarray/rpc/rpc.h"
#include "simarray/v1/host.grpc.pb.h"

namespace simarray::bench {
namespace {

absl::StatusOr<std::string> ReadBlock(v1::HostService::Stub& stub, const std::string& volume,
                                      uint64_t offset, uint64_t length) {
  grpc::ClientContext context;
  context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(10));
  v1::ReadRequest request;
  request.set_volume(volume);
  request.set_offset(offset);
  request.set_length(length);
  v1::ReadReply reply;
  if (grpc::Status s = stub.Read(&context, request, &reply); !s.ok()) return rpc::FromGrpc(s);
  return std::move(*reply.mutable_data());
}

}  // namespace

std::string TouchedBlocksVerdict(const HostWriter& writer, const std::string& primary_host,
                                 const std::string& mirror_host, uint64_t max_samples) {
  const uint64_t writes = writer.started();
  if (writes == 0 || max_samples == 0) return "no writes to check";
  const uint64_t length = writer.payload().size();
  auto primary = v1::HostService::NewStub(rpc::MakeChannel(primary_host, 1 << 20));
  auto mirror = v1::HostService::NewStub(rpc::MakeChannel(mirror_host, 1 << 20));
  const uint64_t samples = std::min(writes, max_samples);
  uint64_t wrong_primary = 0, wrong_mirror = 0;
  std::string first_wrong;
  for (uint64_t i = 0; i < samples; ++i) {
    const uint64_t offset = writer.OffsetOf(i * writes / samples);
    auto p = ReadBlock(*primary, writer.volume(), offset, length);
    auto m = ReadBlock(*mirror, writer.volume(), offset, length);
    if (!p.ok()) return fmt::format("read back from the primary failed: {}", p.status().ToString());
    if (!m.ok()) return fmt::format("read back from the mirror failed: {}", m.status().ToString());
    const bool p_right = *p == writer.payload();
    const bool m_right = *m == writer.payload();
    wrong_primary += p_right ? 0 : 1;
    wrong_mirror += m_right ? 0 : 1;
    if ((!p_right || !m_right) && first_wrong.empty()) {
      first_wrong = fmt::format("first at offset {}", offset);
    }
  }
  if (wrong_primary == 0 && wrong_mirror == 0) {
    return fmt::format(
        "mirror holds the written bytes at all {} sampled blocks of {} writes (4 KiB reads from "
        "both sides; bounded, not CheckConsistency's whole-volume digest)",
        samples, writes);
  }
  return fmt::format(
      "mirror NOT consistent: of {} sampled blocks of {} writes, {} wrong on the primary, {} on "
      "the mirror ({})",
      samples, writes, wrong_primary, wrong_mirror, first_wrong);
}

}  // namespace simarray::bench
