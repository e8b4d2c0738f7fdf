#include "tools/bench/stream_baseline.h"

#include <condition_variable>
#include <mutex>
#include <thread>

#include "absl/strings/str_cat.h"
#include "bench.grpc.pb.h"
#include "fmt/format.h"
#include "grpcpp/grpcpp.h"
#include "tools/bench/cost.h"
#include "tools/bench/progress.h"

namespace simarray::bench {
namespace {

using Clock = std::chrono::steady_clock;

// What the reader thread learned from the acknowledgements.
struct Acks {
  std::mutex mu;
  std::condition_variable changed;
  uint64_t chunks = 0;
  bool ended = false;
};

}  // namespace

absl::StatusOr<StreamResult> RunStream(const StreamOptions& options) {
  grpc::ChannelArguments args;
  const int limit = static_cast<int>(options.chunk_size) + (1 << 20);
  args.SetMaxReceiveMessageSize(limit);
  args.SetMaxSendMessageSize(limit);
  auto stub = Echo::NewStub(
      grpc::CreateCustomChannel(options.address, grpc::InsecureChannelCredentials(), args));
  grpc::ClientContext context;
  std::unique_ptr<grpc::ClientReaderWriter<Chunk, ChunkAck>> stream = stub->Stream(&context);

  Acks acks;
  std::thread reader([&] {
    ChunkAck ack;
    while (stream->Read(&ack)) {
      std::lock_guard lock(acks.mu);
      acks.chunks = ack.chunks();
      acks.changed.notify_all();
    }
    std::lock_guard lock(acks.mu);
    acks.ended = true;
    acks.changed.notify_all();
  });

  const Clock::time_point begin = Clock::now();
  const Clock::time_point window_start =
      begin + std::chrono::duration_cast<Clock::duration>(options.warmup);
  const Clock::time_point window_end =
      window_start + std::chrono::duration_cast<Clock::duration>(options.duration);
  ProgressLine progress(fmt::format("raw gRPC stream, {} KiB chunks, {} in flight",
                                    options.chunk_size >> 10, options.window),
                        options.warmup + options.duration);
  Chunk chunk;
  chunk.set_data(std::string(options.chunk_size, 's'));
  uint64_t sent = 0;
  uint64_t acked_at_start = 0;
  double cpu_at_start = -1;
  bool window_started = false;
  bool broken = false;
  while (!broken) {
    const Clock::time_point now = Clock::now();
    if (now >= window_end) break;
    {
      std::unique_lock lock(acks.mu);
      if (!window_started && now >= window_start) {
        window_started = true;
        acked_at_start = acks.chunks;
        cpu_at_start = SelfCpuSeconds();
      }
      acks.changed.wait(lock, [&] {
        return acks.ended || sent - acks.chunks < static_cast<uint64_t>(options.window);
      });
      broken = acks.ended;
      const double seconds = std::chrono::duration<double>(now - window_start).count();
      progress.Update(window_started && seconds > 0
                          ? fmt::format("{:.0f} MB/s", (acks.chunks - acked_at_start) *
                                                           options.chunk_size / seconds / 1e6)
                          : "warming up");
    }
    if (!broken && !stream->Write(chunk)) broken = true;
    ++sent;
  }
  uint64_t acked_at_end = 0;
  {
    std::lock_guard lock(acks.mu);
    acked_at_end = acks.chunks;
  }
  const double cpu_at_end = SelfCpuSeconds();
  stream->WritesDone();
  reader.join();
  grpc::Status status = stream->Finish();
  StreamResult result;
  result.chunks_acked = acked_at_end - acked_at_start;
  result.seconds = options.duration.count();
  if (cpu_at_start >= 0) result.cpu_seconds = cpu_at_end - cpu_at_start;
  progress.Done(fmt::format("{:.0f} MB/s", result.MegabytesPerSecond(options.chunk_size)));
  if (broken || !status.ok()) {
    return absl::UnavailableError(
        absl::StrCat("the stream broke: ", status.ok() ? "ended early" : status.error_message()));
  }
  return result;
}

}  // namespace simarray::bench
