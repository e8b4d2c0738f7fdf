#include "tools/bench/host_workload.h"

#include <mutex>
#include <random>

#include "simarray/base/crc32c.h"
#include "simarray/rpc/rpc.h"

namespace simarray::bench {
namespace {

std::string RandomBytes(size_t n) {
  std::mt19937_64 random(42);
  std::string out(n, '\0');
  for (char& c : out) c = static_cast<char>(random());
  return out;
}

// SplitMix64: spreads a counter over the volume without a shared random generator.
uint64_t Mix(uint64_t x) {
  x += 0x9E3779B97F4A7C15ull;
  x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ull;
  x = (x ^ (x >> 27)) * 0x94D049BB133111EBull;
  return x ^ (x >> 31);
}

// One Write in flight.
struct WriteCall {
  grpc::ClientContext context;
  v1::WriteRequest request;
  v1::WriteReply reply;
};

}  // namespace

absl::Status Prefill(const std::string& address, const std::string& volume, uint64_t size) {
  constexpr uint64_t kChunk = 1 << 20;
  auto stub = v1::HostService::NewStub(rpc::MakeChannel(address, kChunk));
  const std::string data = RandomBytes(kChunk);
  const uint32_t crc = Crc32c({reinterpret_cast<const uint8_t*>(data.data()), data.size()});
  for (uint64_t offset = 0; offset + kChunk <= size; offset += kChunk) {
    grpc::ClientContext context;
    context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(30));
    v1::WriteRequest request;
    request.set_volume(volume);
    request.set_offset(offset);
    request.set_data(data);
    request.set_crc32c(crc);
    v1::WriteReply reply;
    if (grpc::Status s = stub->Write(&context, request, &reply); !s.ok()) {
      return rpc::FromGrpc(s);
    }
  }
  grpc::ClientContext context;
  context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(60));
  v1::FlushRequest request;
  request.set_volume(volume);
  v1::FlushReply reply;
  return rpc::FromGrpc(stub->Flush(&context, request, &reply));
}

HostWriter::HostWriter(const std::string& address, std::string volume, uint64_t volume_size,
                       uint32_t block_size, bool sequential)
    : stub_(v1::HostService::NewStub(rpc::MakeChannel(address, block_size))),
      volume_(std::move(volume)),
      blocks_(volume_size / block_size),
      block_size_(block_size),
      sequential_(sequential),
      payload_(RandomBytes(block_size)),
      crc32c_(Crc32c({reinterpret_cast<const uint8_t*>(payload_.data()), payload_.size()})) {}

uint64_t HostWriter::OffsetOf(uint64_t n) const {
  return (sequential_ ? n : Mix(n)) % blocks_ * block_size_;
}

void HostWriter::Start(Completion done) {
  auto* call = new WriteCall;
  call->request.set_volume(volume_);
  call->request.set_offset(OffsetOf(counter_.fetch_add(1)));
  call->request.set_data(payload_);
  call->request.set_crc32c(crc32c_);
  stub_->async()->Write(&call->context, &call->request, &call->reply,
                        [this, call, done = std::move(done)](grpc::Status status) {
                          const bool ok = status.ok();
                          if (ok && !call->reply.mirrored()) unmirrored_.fetch_add(1);
                          if (!ok) {
                            std::lock_guard lock(mu_);
                            if (first_error_.empty()) first_error_ = status.error_message();
                          }
                          delete call;
                          done(ok);
                        });
}

std::string HostWriter::first_error() const {
  std::lock_guard lock(mu_);
  return first_error_;
}

}  // namespace simarray::bench
