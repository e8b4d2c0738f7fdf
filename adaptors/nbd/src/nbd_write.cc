// NbdConnection, transmission phase: WRITE (a buffered payload staged and committed on the
// I/O thread when nothing has to wait, else on the work pool; a larger one streamed into a
// HostWrite as it arrives, its CRC-32C taken on the way), TRIM and WRITE_ZEROES (writes of
// zeros), FUA.
#include "nbd_connection.h"

// clang-format off
#include <utility>  // before any Asio header (Boost 1.74 with GCC 12, docs/toolchain.md)
// clang-format on
#include <algorithm>
#include <boost/asio/buffer.hpp>
#include <boost/asio/read.hpp>
#include <cstring>

#include "absl/strings/str_cat.h"
#include "simarray/base/crc32c.h"
#include "spdlog/spdlog.h"

namespace simarray::nbd {

namespace asio = boost::asio;
using boost::system::error_code;
using tcp = asio::ip::tcp;

namespace {

// A payload too large for the receive buffer is read and staged in chunks of this size.
constexpr size_t kChunk = 512 << 10;
// Payloads up to this size are read and thrown away when the write is refused (the protocol
// asks servers not to disconnect below 32 MiB); a longer one closes the connection.
constexpr uint64_t kMaxDrain = 32 << 20;

constexpr size_t kZeroChunk = 1 << 20;
const uint8_t* Zeros() {
  static const auto* zeros = new uint8_t[kZeroChunk]();
  return zeros;
}

// CRC-32C of `length` zero bytes.
uint32_t ZerosCrc32c(uint64_t length) {
  uint32_t state = kCrc32cInit;
  while (length > 0) {
    const size_t n = std::min<uint64_t>(length, kZeroChunk);
    state = Crc32cExtend(state, {Zeros(), n});
    length -= n;
  }
  return Crc32cFinish(state);
}

}  // namespace

// The write whose payload is arriving. The I/O thread and the work pool take turns with it:
// a chunk job runs only while the reader waits for it.
struct NbdConnection::WriteState {
  Request request;
  std::string export_name;
  uint32_t error = 0;  // non-zero: the payload is drained and this error answered
  std::string why;
  uint64_t received = 0;
  uint32_t crc = kCrc32cInit;  // of the payload bytes as they came off the socket
  std::unique_ptr<host::HostWrite> write;
};

// A TRIM or WRITE_ZEROES in progress: the next piece starts at `pos`.
struct NbdConnection::ZeroState {
  Request request;
  std::string export_name;
  uint64_t pos = 0;
  uint64_t end = 0;
};

void NbdConnection::StartWrite(const Request& r) {
  if (r.length > std::max<uint64_t>(kMaxDrain, shared_->catalog.max_payload)) {
    // Too long even to read and throw away: answer, then hang up.
    Admit(0);
    ReplyError(r, kEinval,
               absl::StrCat("WRITE of ", r.length, " bytes exceeds max_write ",
                            shared_->catalog.max_payload));
    shared_->protocol_errors.fetch_add(1);
    spdlog::warn("host adaptor {}: nbd connection {} from {}: WRITE payload of {} bytes; closing",
                 shared_->id, number_, peer_, r.length);
    reader_stopped_ = true;
    return MaybeFinish();
  }
  auto w = std::make_shared<WriteState>();
  w->request = r;
  w->export_name = session_.export_name;
  w->error = Check(r, kCmdFlagFua, /*modifies=*/true, &w->why);
  if (w->error == 0 && r.length > shared_->catalog.max_payload) {
    w->error = kEinval;
    w->why = absl::StrCat("WRITE of ", r.length, " bytes exceeds max_write ",
                          shared_->catalog.max_payload);
  }
  Admit(r.length);
  if (r.length == 0) return ReplyError(r, w->error, w->why, 0);
  if (received_.size() >= r.length) {  // the whole payload is buffered
    const std::span<const uint8_t> payload = received_.Data().first(r.length);
    if (w->error != 0) {
      ReplyError(r, w->error, w->why, r.length);
    } else {
      WriteBuffered(std::move(w), payload);
    }
    return received_.Consume(r.length);
  }
  write_ = std::move(w);  // the parser waits until the payload is read
  ReadWriteChunk();
}

void NbdConnection::WriteBuffered(std::shared_ptr<WriteState> w, std::span<const uint8_t> payload) {
  w->received = payload.size();
  w->crc = Crc32cExtend(w->crc, payload);
  if (TryWriteNow(*w, payload)) return;
  StoreChunk(std::move(w), {payload.begin(), payload.end()}, /*last=*/true);
}

bool NbdConnection::TryWriteNow(const WriteState& w, std::span<const uint8_t> payload) {
  const Request& r = w.request;
  auto begun = shared_->parts.host->BeginWrite(w.export_name, r.offset, r.length,
                                               Crc32cFinish(w.crc), host::Waits::kNever);
  if (!begun.ok()) {
    if (host::IsWouldWait(begun.status())) return false;
    ReplyStatus(r, begun.status(), r.length);
    return true;
  }
  if (absl::Status s = (*begun)->Append(payload); !s.ok()) {
    if (host::IsWouldWait(s)) {
      (*begun)->Abandon();
      return false;
    }
    (*begun)->Cancel();
    ReplyStatus(r, s, r.length);
    return true;
  }
  // Finish validates and commits here; its reply may come at once (async mode) or from the
  // thread that gets the mirror's ack (sync mode).
  std::weak_ptr<NbdConnection> weak = weak_from_this();
  (*begun)->Finish([weak, r](absl::StatusOr<host::WriteResult> result) {
    CompleteWrite(weak, r, result.status());
  });
  return true;
}

void NbdConnection::ReadWriteChunk() {
  if (!write_) return;
  if (closed_) {
    write_.reset();  // no job holds it now: an unfinished HostWrite is dropped as cancelled
    return;
  }
  const size_t n = std::min<uint64_t>(kChunk, write_->request.length - write_->received);
  chunk_.clear();
  chunk_.resize(n);
  // What the receive buffer holds of the payload comes first, the rest straight off the socket.
  const size_t buffered = std::min(n, received_.size());
  if (buffered > 0) std::memcpy(chunk_.data(), received_.Data().data(), buffered);
  received_.Consume(buffered);
  if (buffered == n) {
    PostToStrand([this, n] { OnWriteChunk(error_code(), n); });
    return;
  }
  asio::async_read(socket_, asio::buffer(chunk_.data() + buffered, n - buffered),
                   Handler([this, buffered](const error_code& ec, size_t got) {
                     OnWriteChunk(ec, buffered + got);
                   }));
}

void NbdConnection::OnWriteChunk(const error_code& ec, size_t got) {
  std::shared_ptr<WriteState> w = write_;
  if (!w) return;
  if (ec) {
    write_.reset();
    if (w->error == 0) {
      chunk_.resize(got);
      LoseWrite(std::move(w), std::move(chunk_));
      chunk_ = {};
    }
    return StopReading(ec);
  }
  w->received += got;
  if (w->error == 0) w->crc = Crc32cExtend(w->crc, {chunk_.data(), got});
  const bool last = w->received == w->request.length;
  if (w->error != 0) {  // refused: drain the payload, then answer
    if (!last) return ReadWriteChunk();
    write_.reset();
    ReplyError(w->request, w->error, w->why, w->request.length);
    return ParseRequests();
  }
  std::vector<uint8_t> data = std::move(chunk_);
  chunk_ = {};
  if (last) write_.reset();
  StoreChunk(w, std::move(data), last);
  if (last) ParseRequests();  // the next requests are parsed while this write commits
}

void NbdConnection::LoseBufferedWrite() {
  const std::span<const uint8_t> data = received_.Data();
  if (data.size() >= kRequestSize) {
    // What ParseRequests left: a WRITE that fits the buffer, waiting for the rest of its
    // payload. One it would have refused is not a lost write.
    const Request r = ParseRequest(data.first<kRequestSize>());
    std::string why;
    if (r.magic == kRequestMagic && r.type == kCmdWrite &&
        r.length <= shared_->catalog.max_payload &&
        Check(r, kCmdFlagFua, /*modifies=*/true, &why) == 0) {
      auto w = std::make_shared<WriteState>();
      w->request = r;
      w->export_name = session_.export_name;
      LoseWrite(std::move(w), {data.begin() + kRequestSize, data.end()});
    }
  }
  received_.Consume(data.size());
}

void NbdConnection::LoseWrite(std::shared_ptr<WriteState> w, std::vector<uint8_t> partial) {
  // Stage what came, then cancel the write, so it is dropped and counted like a cancelled
  // stream.
  shared_->writes_dropped.fetch_add(1);
  spdlog::info(
      "host adaptor {}: nbd connection {} lost after {} of {} payload bytes of a WRITE at {}; "
      "the write is cancelled",
      shared_->id, number_, w->received + partial.size(), w->request.length, w->request.offset);
  auto self = shared_from_this();
  PostToPool([self, w, partial = std::move(partial)] {
    if (!w->write) {
      auto begun = self->shared_->parts.host->BeginWrite(w->export_name, w->request.offset,
                                                         w->request.length, 0);
      if (!begun.ok()) return;
      w->write = std::move(*begun);
    }
    (void)w->write->Append(partial);
    w->write->Cancel();
  });
}

void NbdConnection::StoreChunk(std::shared_ptr<WriteState> w, std::vector<uint8_t> data,
                               bool last) {
  auto self = shared_from_this();
  bool posted = PostToPool([self, w, data = std::move(data), last] {
    absl::Status s;
    if (!w->write) {
      auto begun = self->shared_->parts.host->BeginWrite(w->export_name, w->request.offset,
                                                         w->request.length, 0);
      if (begun.ok()) {
        w->write = std::move(*begun);
      } else {
        s = begun.status();
      }
    }
    if (s.ok()) s = w->write->Append(data);
    if (!s.ok()) {
      if (w->write) w->write->Cancel();
      w->write.reset();
      self->PostToStrand([self, w, s, last] {
        if (last) return self->ReplyStatus(w->request, s, w->request.length);
        // Drain the rest of the payload, then answer with the error.
        w->error = ErrnoFor(s, /*is_write=*/true);
        w->why = std::string(s.message());
        self->ReadWriteChunk();
      });
      return;
    }
    if (!last) {
      self->PostToStrand([self] { self->ReadWriteChunk(); });
      return;
    }
    // Validity: the CRC-32C of the bytes that came off the socket against the bytes in cache.
    w->write->set_crc32c(Crc32cFinish(w->crc));
    std::unique_ptr<host::HostWrite> write = std::move(w->write);
    std::weak_ptr<NbdConnection> weak = self;
    write->Finish([weak, request = w->request](absl::StatusOr<host::WriteResult> result) {
      CompleteWrite(weak, request, result.status());
    });
  });
  if (!posted) {
    if (w->write) w->write->Cancel();
    w->write.reset();
    if (last)
      return ReplyError(w->request, kEio, "host adaptor work queue full", w->request.length);
    w->error = kEio;
    w->why = "host adaptor work queue full";
    ReadWriteChunk();
  }
}

void NbdConnection::CompleteWrite(std::weak_ptr<NbdConnection> weak, Request request,
                                  absl::Status status) {
  std::shared_ptr<NbdConnection> self = weak.lock();
  if (!self) return;  // closed: nobody to answer
  const uint64_t bytes = request.type == kCmdWrite ? request.length : 0;
  const bool fua = (request.flags & kCmdFlagFua) != 0;
  if ((!status.ok() || !fua) && self->strand_.running_in_this_thread()) {
    return self->ReplyStatus(request, status, bytes);  // a write that finished on the strand
  }
  if (status.ok() && fua) {
    bool posted = self->PostToPool([self, request, bytes] {
      absl::Status flushed = self->shared_->parts.disk->Persist();
      self->PostToStrand(
          [self, request, bytes, flushed] { self->ReplyStatus(request, flushed, bytes); });
    });
    if (posted) return;
    status = absl::UnavailableError("host adaptor work queue full: cannot flush for FUA");
  }
  self->PostToStrand([self, request, bytes, status] { self->ReplyStatus(request, status, bytes); });
}

void NbdConnection::Zero(const Request& r) {
  const bool write_zeroes = r.type == kCmdWriteZeroes;
  std::string why;
  const uint32_t error =
      Check(r, kCmdFlagFua | (write_zeroes ? kCmdFlagNoHole : 0), /*modifies=*/true, &why);
  Admit(0);
  if (error != 0) return ReplyError(r, error, why);
  auto z = std::make_shared<ZeroState>();
  z->request = r;
  z->export_name = session_.export_name;
  z->pos = r.offset;
  z->end = r.offset + r.length;
  ZeroPiece(std::move(z));
}

// Thread-safe: called on the strand and from the thread that finished the previous piece.
void NbdConnection::ZeroPiece(std::shared_ptr<ZeroState> z) {
  auto self = shared_from_this();
  bool posted = PostToPool([self, z] {
    std::weak_ptr<NbdConnection> weak = self;
    const uint64_t max = self->shared_->catalog.max_payload;
    const uint64_t track = self->shared_->parts.track_size;
    uint64_t n = std::min(max, z->end - z->pos);
    // Pieces end on track boundaries where they can: no partial portions inside the range.
    if (z->pos + n < z->end && (z->pos + n) / track * track > z->pos) {
      n = (z->pos + n) / track * track - z->pos;
    }
    host::HostAdaptor* host = self->shared_->parts.host;
    auto begun = host->BeginWrite(z->export_name, z->pos, n, ZerosCrc32c(n));
    if (!begun.ok()) return CompleteWrite(weak, z->request, begun.status());
    for (uint64_t done = 0; done < n;) {
      const size_t m = std::min<uint64_t>(kZeroChunk, n - done);
      if (absl::Status s = (*begun)->Append({Zeros(), m}); !s.ok()) {
        (*begun)->Cancel();
        return CompleteWrite(weak, z->request, s);
      }
      done += m;
    }
    z->pos += n;
    (*begun)->Finish([weak, z](absl::StatusOr<host::WriteResult> result) {
      if (!result.ok() || z->pos >= z->end) return CompleteWrite(weak, z->request, result.status());
      if (std::shared_ptr<NbdConnection> next = weak.lock()) next->ZeroPiece(z);
    });
  });
  if (!posted) {
    CompleteWrite(self, z->request, absl::UnavailableError("host adaptor work queue full"));
  }
}

}  // namespace simarray::nbd
