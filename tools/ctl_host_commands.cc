// The HostService commands: write (unary or streamed) and read.
#include <algorithm>
#include <cstdio>
#include <fstream>
#include <span>
#include <string>

#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "simarray/base/crc32c.h"
#include "simarray/rpc/rpc.h"
#include "simarray/v1/host.grpc.pb.h"
#include "tools/ctl_commands.h"
#include "tools/ctl_output.h"
#include "tools/ctl_write_source.h"

namespace simarray::ctl {
namespace {

// Shown in the human form of a read without --out.
constexpr size_t kHexDumpBytes = 256;

std::unique_ptr<v1::HostService::Stub> HostStub(const std::string& address) {
  return v1::HostService::NewStub(rpc::MakeChannel(address, kClientMaxWrite));
}

std::span<const uint8_t> Bytes(std::string_view s) {
  return {reinterpret_cast<const uint8_t*>(s.data()), s.size()};
}

grpc::Status UnaryWrite(v1::HostService::Stub& stub, const GlobalOptions& global,
                        const WriteOptions& options, const WriteSource& source, uint32_t crc,
                        v1::WriteReply* reply) {
  v1::WriteRequest request;
  request.set_volume(options.volume);
  request.set_offset(options.offset);
  request.set_crc32c(crc);
  auto data = source.ReadAll();
  if (!data.ok()) return rpc::ToGrpc(data.status());
  *request.mutable_data() = std::move(*data);
  grpc::ClientContext context;
  PrepareCall(context, global);
  return stub.Write(&context, request, reply);
}

// One WriteStream call: the header, then the source in chunks of options.chunk. A source that
// fails part-way cancels the stream, so the daemon drops the write.
grpc::Status StreamWrite(v1::HostService::Stub& stub, const GlobalOptions& global,
                         const WriteOptions& options, const WriteSource& source, uint32_t crc,
                         v1::WriteReply* reply) {
  grpc::ClientContext context;
  PrepareCall(context, global);
  auto writer = stub.WriteStream(&context, reply);
  v1::WriteStreamRequest message;
  v1::WriteStreamHeader* header = message.mutable_header();
  header->set_volume(options.volume);
  header->set_offset(options.offset);
  header->set_length(source.length());
  header->set_crc32c(crc);
  bool open = writer->Write(message);
  absl::Status read = absl::OkStatus();
  if (open) {
    read = source.ForEachPiece(options.chunk, [&](std::string_view piece) {
      message.set_chunk(std::string(piece));
      open = writer->Write(message);
      return open;  // A closed stream's status comes from Finish.
    });
  }
  if (!read.ok()) {
    context.TryCancel();
    writer->Finish().IgnoreError();
    return rpc::ToGrpc(read);
  }
  if (open) writer->WritesDone();
  return writer->Finish();
}

}  // namespace

int RunWrite(const GlobalOptions& global, const WriteOptions& options) {
  absl::StatusOr<WriteSource> source = options.pattern
                                           ? WriteSource::Pattern(*options.pattern, options.length)
                                           : WriteSource::FromFile(options.file);
  if (!source.ok()) return ReportError("write", source.status().message());
  uint32_t crc = 0;
  if (options.crc32c) {
    crc = *options.crc32c;
  } else {
    auto computed = source->Crc32c();
    if (!computed.ok()) return ReportError("write", computed.status().message());
    crc = *computed;
  }
  const bool streamed = options.stream || source->length() > kUnaryWriteLimit;
  auto stub = HostStub(options.host);
  v1::WriteReply reply;
  grpc::Status status = streamed ? StreamWrite(*stub, global, options, *source, crc, &reply)
                                 : UnaryWrite(*stub, global, options, *source, crc, &reply);
  if (!status.ok()) return ReportRpcError("write", status);
  std::string text;
  if (global.json) {
    text = JsonObject()
               .Add("volume", options.volume)
               .Add("offset", options.offset)
               .Add("length", source->length())
               .Add("crc32c", uint64_t{crc})
               .Add("streamed", streamed)
               .Add("sequence", reply.sequence())
               .Add("mirrored", reply.mirrored())
               .Add("portions", uint64_t{reply.portions()})
               .str();
  } else {
    text = absl::StrCat("wrote ", source->length(), " bytes at ", options.offset, " of ",
                        options.volume, ": sequence ", reply.sequence(), ", mirrored ",
                        reply.mirrored() ? "yes" : "no", ", ", reply.portions(), " portions");
  }
  std::printf("%s\n", text.c_str());
  return kExitOk;
}

int RunRead(const GlobalOptions& global, const ReadOptions& options) {
  v1::ReadRequest request;
  request.set_volume(options.volume);
  request.set_offset(options.offset);
  request.set_length(options.length);
  v1::ReadReply reply;
  grpc::ClientContext context;
  PrepareCall(context, global);
  grpc::Status status = HostStub(options.host)->Read(&context, request, &reply);
  if (!status.ok()) return ReportRpcError("read", status);
  const std::string& data = reply.data();
  const uint32_t actual = Crc32c(Bytes(data));
  if (actual != reply.crc32c()) {
    return ReportRpcError(
        "read",
        grpc::Status(grpc::StatusCode::DATA_LOSS,
                     absl::StrCat("the reply's crc32c is ", Hex32(reply.crc32c()), " but its ",
                                  data.size(), " bytes have ", Hex32(actual))));
  }
  if (!options.out.empty()) {
    std::ofstream out(options.out, std::ios::binary | std::ios::trunc);
    out.write(data.data(), static_cast<std::streamsize>(data.size()));
    out.close();
    if (!out) return ReportError("read", absl::StrCat("cannot write ", options.out));
  }
  std::string text;
  if (global.json) {
    JsonObject json;
    json.Add("volume", options.volume)
        .Add("offset", options.offset)
        .Add("length", uint64_t{data.size()})
        .Add("crc32c", uint64_t{reply.crc32c()});
    if (!options.out.empty()) {
      json.Add("out", options.out);
    } else if (data.size() <= kJsonDataLimit) {
      json.Add("data_base64", absl::Base64Escape(data));
    }
    text = json.str() + "\n";
  } else {
    text = absl::StrCat("read ", data.size(), " bytes at ", options.offset, " of ", options.volume,
                        ": crc32c ", Hex32(reply.crc32c()), "\n");
    if (!options.out.empty()) {
      absl::StrAppend(&text, "written to ", options.out, "\n");
    } else {
      const size_t shown = std::min(data.size(), kHexDumpBytes);
      absl::StrAppend(&text, HexDump(std::string_view(data).substr(0, shown), options.offset));
      if (shown < data.size()) {
        absl::StrAppend(&text, "... ", data.size() - shown, " more bytes (use --out FILE)\n");
      }
    }
  }
  std::fputs(text.c_str(), stdout);
  return kExitOk;
}

}  // namespace simarray::ctl
