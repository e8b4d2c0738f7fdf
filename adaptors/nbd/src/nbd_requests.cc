// NbdConnection, transmission phase: reading the socket into the receive buffer, parsing
// and dispatching the requests in it; READ, FLUSH and BLOCK_STATUS. Writes are in
// nbd_write.cc.
#include "nbd_connection.h"

// clang-format off
#include <utility>  // before any Asio header (Boost 1.74 with GCC 12, docs/toolchain.md)
// clang-format on
#include <algorithm>
#include <boost/asio/buffer.hpp>
#include <boost/asio/error.hpp>
#include <boost/asio/read.hpp>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "simarray/nbd/nbd_block_status.h"
#include "spdlog/spdlog.h"

namespace simarray::nbd {

namespace asio = boost::asio;
using boost::system::error_code;
using tcp = asio::ip::tcp;

namespace {

// Ends of a connection that are not the client's fault.
bool Normal(const error_code& ec) {
  return ec == asio::error::eof || ec == asio::error::connection_reset ||
         ec == asio::error::operation_aborted || ec == asio::error::broken_pipe;
}

}  // namespace

void NbdConnection::ParseRequests() {
  if (closed_ || parsing_) return;
  parsing_ = true;
  bool need_bytes = false;
  while (!closed_ && !reader_stopped_ && !write_) {
    if (in_flight_ >= shared_->options.max_requests ||
        in_flight_bytes_ >= shared_->options.max_bytes) {
      reader_waiting_ = true;  // resumed when a reply goes out
      break;
    }
    if (!RequestBuffered()) {
      need_bytes = true;
      break;
    }
    const Request r = ParseRequest(received_.Data().first<kRequestSize>());
    if (r.magic != kRequestMagic) {
      BadRequest(absl::StrFormat("bad request magic 0x%08x", r.magic));
      break;
    }
    received_.Consume(kRequestSize);
    OnRequest(r);
  }
  parsing_ = false;
  // The replies made while parsing (errors, writes committed here) leave in one write.
  if (!closed_ && !writing_ && !out_.empty()) WriteNext();
  if (need_bytes) ReceiveMore();
}

bool NbdConnection::RequestBuffered() const {
  const std::span<const uint8_t> data = received_.Data();
  if (data.size() < kRequestSize) return false;
  const Request r = ParseRequest(data.first<kRequestSize>());
  if (r.magic != kRequestMagic || r.type != kCmdWrite) return true;
  return kRequestSize + uint64_t{r.length} > received_.capacity() ||
         data.size() - kRequestSize >= r.length;
}

void NbdConnection::ReceiveMore() {
  if (closed_ || reader_stopped_ || receiving_) return;
  receiving_ = true;
  const std::span<uint8_t> space = received_.Space();
  socket_.async_read_some(asio::buffer(space.data(), space.size()),
                          Handler([this](const error_code& ec, size_t got) {
                            receiving_ = false;
                            if (ec) return OnReceiveEnd(ec);
                            received_.Filled(got);
                            ParseRequests();
                          }));
}

void NbdConnection::OnReceiveEnd(const error_code& ec) {
  LoseBufferedWrite();
  StopReading(ec);
}

void NbdConnection::StopReading(const error_code& ec) {
  reader_stopped_ = true;
  if (ec && !Normal(ec)) {
    spdlog::debug("host adaptor {}: nbd connection {}: read: {}", shared_->id, number_,
                  ec.message());
  }
  MaybeFinish();
}

void NbdConnection::BadRequest(const std::string& what) {
  shared_->protocol_errors.fetch_add(1);
  spdlog::warn("host adaptor {}: nbd connection {} from {}: {}; closing once answered", shared_->id,
               number_, peer_, what);
  reader_stopped_ = true;
  MaybeFinish();
}

void NbdConnection::OnRequest(const Request& r) {
  switch (r.type) {
    case kCmdRead:
      return Read(r);
    case kCmdWrite:
      return StartWrite(r);  // takes its payload from the buffer, or streams it
    case kCmdDisc:
      reader_stopped_ = true;
      return MaybeFinish();
    case kCmdFlush:
      return Flush(r);
    case kCmdTrim:
    case kCmdWriteZeroes:
      return Zero(r);
    case kCmdBlockStatus:
      return BlockStatus(r);
    default:
      Admit(0);
      return ReplyError(r, kEinval, absl::StrCat("unknown command ", r.type));
  }
}

uint32_t NbdConnection::Check(const Request& r, uint16_t allowed_flags, bool modifies,
                              std::string* why) const {
  if ((r.flags & ~allowed_flags) != 0) {
    *why = absl::StrCat("flags 0x", absl::Hex(r.flags), " are not valid for ", CommandName(r.type));
    return kEinval;
  }
  if (modifies && shared_->parts.accepts_writes &&
      !shared_->parts.accepts_writes(session_.export_name)) {
    *why = absl::StrCat("volume ", session_.export_name,
                        " is the target of an RDF group: hosts may read only; write to its source");
    return kEperm;
  }
  if (r.length == 0) {
    *why = absl::StrCat(CommandName(r.type), " of length 0");
    return kEinval;
  }
  if (r.offset > session_.size || r.length > session_.size - r.offset) {
    *why = absl::StrCat(CommandName(r.type), " of [", r.offset, ", +", r.length,
                        ") is outside volume \"", session_.export_name, "\" of ", session_.size,
                        " bytes");
    return (r.type == kCmdWrite || r.type == kCmdWriteZeroes) ? kEnospc : kEinval;
  }
  return 0;
}

void NbdConnection::Read(const Request& r) {
  std::string why;
  uint32_t error =
      Check(r, kCmdFlagFua | (session_.structured ? kCmdFlagDf : 0), /*modifies=*/false, &why);
  if (error == 0 && r.length > shared_->catalog.max_payload) {
    error = kEinval;
    why = absl::StrCat("READ of ", r.length, " bytes exceeds max_write ",
                       shared_->catalog.max_payload);
  }
  if (error != 0) {
    Admit(0);
    return ReplyError(r, error, why);
  }
  Admit(r.length);
  auto self = shared_from_this();
  bool posted = PostToPool([self, r, name = session_.export_name] {
    std::string data;
    absl::Status s = self->shared_->parts.host->Read(name, r.offset, r.length, &data);
    self->PostToStrand([self, r, s, data = std::move(data)]() mutable {
      if (!s.ok()) return self->ReplyStatus(r, s, r.length);
      Outgoing out;
      out.head = self->session_.structured
                     ? EncodeOffsetDataHeader(r.cookie, r.offset, r.length, /*done=*/true)
                     : EncodeSimpleReply(0, r.cookie);
      out.body = std::move(data);
      out.bytes = r.length;
      self->Send(std::move(out));
    });
  });
  if (!posted) ReplyError(r, kEio, "host adaptor work queue full", r.length);
}

void NbdConnection::Flush(const Request& r) {
  Admit(0);
  if ((r.flags & ~kCmdFlagFua) != 0) {
    return ReplyError(r, kEinval,
                      absl::StrCat("flags 0x", absl::Hex(r.flags), " not valid for FLUSH"));
  }
  auto self = shared_from_this();
  bool posted = PostToPool([self, r] {
    absl::Status s = self->shared_->parts.disk->Persist();
    self->PostToStrand([self, r, s] { self->ReplyStatus(r, s); });
  });
  if (!posted) ReplyError(r, kEio, "host adaptor work queue full");
}

void NbdConnection::BlockStatus(const Request& r) {
  Admit(0);
  if (!session_.base_allocation) {
    return ReplyError(r, kEinval, "BLOCK_STATUS without base:allocation selected");
  }
  std::string why;
  if (uint32_t error = Check(r, kCmdFlagFua | kCmdFlagReqOne, /*modifies=*/false, &why)) {
    return ReplyError(r, error, why);
  }
  // Describe at most max_write (whole tracks) per request: a client asks again for the rest.
  const uint32_t track = shared_->parts.track_size;
  const uint64_t cap = std::max<uint64_t>(track, shared_->catalog.max_payload / track * track);
  const uint64_t length = std::min<uint64_t>(r.length, cap);
  auto self = shared_from_this();
  bool posted = PostToPool([self, r, length, track, name = session_.export_name] {
    host::HostAdaptor* host = self->shared_->parts.host;
    const uint64_t piece = std::min<uint64_t>(track, self->shared_->catalog.max_payload);
    std::vector<bool> zero_tracks;
    std::string buffer;
    for (uint64_t t = r.offset / track; t * track < r.offset + length; ++t) {
      bool zero = true;
      for (uint64_t at = t * track; zero && at < (t + 1) * track; at += piece) {
        buffer.clear();
        const uint64_t n = std::min(piece, (t + 1) * track - at);
        if (absl::Status s = host->Read(name, at, n, &buffer); !s.ok()) {
          return self->PostToStrand([self, r, s] { self->ReplyStatus(r, s); });
        }
        zero = AllZero({reinterpret_cast<const uint8_t*>(buffer.data()), buffer.size()});
      }
      zero_tracks.push_back(zero);
    }
    std::vector<Extent> extents =
        AllocationExtents(r.offset, length, track, zero_tracks, (r.flags & kCmdFlagReqOne) != 0);
    self->PostToStrand([self, r, extents = std::move(extents)] {
      Outgoing out;
      out.head = EncodeBlockStatusChunk(r.cookie, kBaseAllocationId, extents);
      self->Send(std::move(out));
    });
  });
  if (!posted) ReplyError(r, kEio, "host adaptor work queue full");
}

}  // namespace simarray::nbd
