#include "nbd_connection.h"

// clang-format off
#include <utility>  // before any Asio header (Boost 1.74 with GCC 12, see STYLE.md)
// clang-format on
#include <algorithm>
#include <boost/asio/bind_executor.hpp>
#include <boost/asio/buffer.hpp>
#include <boost/asio/error.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/read.hpp>
#include <boost/asio/write.hpp>
#include <chrono>

#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "simarray/base/crc32c.h"
#include "simarray/nbd/nbd_block_status.h"
#include "spdlog/spdlog.h"

namespace simarray::nbd {

namespace asio = boost::asio;
using boost::system::error_code;
using tcp = asio::ip::tcp;

namespace {

// A write payload is read and staged in chunks of this size: what one connection buffers.
constexpr size_t kChunk = 512 << 10;
// A client that sends this many options without choosing an export is hung up on.
constexpr size_t kMaxOptions = 256;
// Payloads up to this size are read and thrown away when the write is refused (the protocol
// asks servers not to disconnect below 32 MiB); a longer one closes the connection.
constexpr uint64_t kMaxDrain = 32 << 20;
// Replies gathered into one socket write.
constexpr size_t kMaxBatch = 32;

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

// Ends of a connection that are not the client's fault.
bool Normal(const error_code& ec) {
  return ec == asio::error::eof || ec == asio::error::connection_reset ||
         ec == asio::error::operation_aborted || ec == asio::error::broken_pipe;
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

NbdConnection::NbdConnection(tcp::socket socket, std::shared_ptr<NbdShared> shared, uint64_t number)
    : socket_(std::move(socket)),
      strand_(asio::make_strand(socket_.get_executor())),
      handshake_timer_(socket_.get_executor()),
      shared_(std::move(shared)),
      number_(number),
      handshake_(&shared_->catalog) {
  shared_->open_count.fetch_add(1);
}

NbdConnection::~NbdConnection() { shared_->open_count.fetch_sub(1); }

template <typename F>
auto NbdConnection::Handler(F f) {
  return asio::bind_executor(
      strand_, [self = shared_from_this(), f = std::move(f)](auto&&... args) mutable {
        try {
          f(std::forward<decltype(args)>(args)...);
        } catch (const std::exception& e) {
          spdlog::error("host adaptor {}: nbd connection {}: {}", self->shared_->id, self->number_,
                        e.what());
          self->Close(absl::StrCat("internal error: ", e.what()));
        } catch (...) {
          spdlog::error("host adaptor {}: nbd connection {}: unknown exception", self->shared_->id,
                        self->number_);
          self->Close("internal error");
        }
      });
}

template <typename F>
void NbdConnection::PostToStrand(F f) {
  asio::post(strand_, Handler(std::move(f)));
}

bool NbdConnection::PostToPool(std::function<void()> job) {
  // An exception in a job (bad_alloc) must not take the daemon down: the connection, whose
  // request would never be answered, is closed instead.
  return shared_->parts.host->pool().Post([self = shared_from_this(), job = std::move(job)] {
    try {
      job();
    } catch (const std::exception& e) {
      spdlog::error("host adaptor {}: nbd connection {}: {}", self->shared_->id, self->number_,
                    e.what());
      self->PostToStrand([self] { self->Close("internal error in a work-pool job"); });
    }
  });
}

void NbdConnection::Start() {
  error_code ec;
  tcp::endpoint peer = socket_.remote_endpoint(ec);
  peer_ = ec ? std::string("?") : absl::StrCat(peer.address().to_string(), ":", peer.port());
  socket_.set_option(tcp::no_delay(true), ec);
  handshake_timer_.expires_after(
      std::chrono::nanoseconds(absl::ToInt64Nanoseconds(shared_->options.handshake_timeout)));
  handshake_timer_.async_wait(Handler([this](const error_code& ec) {
    if (!ec && !in_transmission_ && !closed_) ProtocolError("handshake not finished in time");
  }));
  auto greeting = std::make_shared<std::string>(EncodeGreeting());
  asio::async_write(socket_, asio::buffer(*greeting),
                    Handler([this, greeting](const error_code& ec, size_t) {
                      if (ec) return Close(ec.message());
                      ReadClientFlags();
                    }));
}

void NbdConnection::Close(const std::string& why) {
  if (closed_) return;
  closed_ = true;
  auto self = shared_from_this();  // the registry may hold the last reference
  error_code ec;
  handshake_timer_.cancel();
  socket_.shutdown(tcp::socket::shutdown_both, ec);
  socket_.close(ec);
  shared_->open.erase(number_);
  spdlog::debug("host adaptor {}: nbd connection {} from {} closed: {}", shared_->id, number_,
                peer_, why);
}

void NbdConnection::ProtocolError(const std::string& what) {
  shared_->protocol_errors.fetch_add(1);
  spdlog::warn("host adaptor {}: nbd connection {} from {}: {}; closing", shared_->id, number_,
               peer_, what);
  Close(what);
}

// --- handshake ---------------------------------------------------------------------------

void NbdConnection::ReadClientFlags() {
  asio::async_read(socket_, asio::buffer(option_header_.data(), 4),
                   Handler([this](const error_code& ec, size_t) {
                     if (ec) return Close(ec.message());
                     client_flags_ = GetU32(option_header_.data());
                     if (absl::Status s = handshake_.OnClientFlags(client_flags_); !s.ok()) {
                       return ProtocolError(std::string(s.message()));
                     }
                     ReadOptionHeader();
                   }));
}

void NbdConnection::ReadOptionHeader() {
  asio::async_read(socket_, asio::buffer(option_header_),
                   Handler([this](const error_code& ec, size_t) {
                     if (ec) return Close(ec.message());
                     const OptionHeader h = ParseOptionHeader(option_header_);
                     if (h.magic != kOptionMagic) {
                       return ProtocolError(absl::StrFormat("bad option magic 0x%016x", h.magic));
                     }
                     if (h.length > kMaxOptionLength) {
                       return ProtocolError(absl::StrCat("option ", h.option, " carries ", h.length,
                                                         " bytes, more than ", kMaxOptionLength));
                     }
                     if (++options_seen_ > kMaxOptions) {
                       return ProtocolError(
                           absl::StrCat("more than ", kMaxOptions, " options in one handshake"));
                     }
                     ReadOptionData(h.option, h.length);
                   }));
}

void NbdConnection::ReadOptionData(uint32_t option, uint32_t length) {
  auto handle = [this, option](const error_code& ec, size_t) {
    if (ec) return Close(ec.message());
    Handshake::Outcome outcome = handshake_.OnOption(option, option_data_);
    const Handshake::Next next = outcome.next;
    if (next == Handshake::Next::kClose && outcome.reply.empty()) {
      spdlog::info("host adaptor {}: nbd connection {} from {} asked for unknown export \"{}\"",
                   shared_->id, number_, peer_, absl::CHexEscape(option_data_.substr(0, 256)));
      return Close("unknown export");
    }
    auto reply = std::make_shared<std::string>(std::move(outcome.reply));
    asio::async_write(
        socket_, asio::buffer(*reply), Handler([this, reply, next](const error_code& ec, size_t) {
          if (ec) return Close(ec.message());
          if (next == Handshake::Next::kContinue) return ReadOptionHeader();
          if (next == Handshake::Next::kClose) return Close("client aborted the handshake");
          in_transmission_ = true;
          handshake_timer_.cancel();
          session_ = handshake_.session();
          spdlog::info(
              "host adaptor {}: nbd connection {} from {} opened export \"{}\" ({} bytes, "
              "flags {:#06x}{}{})",
              shared_->id, number_, peer_, session_.export_name, session_.size, session_.flags,
              session_.structured ? ", structured replies" : "",
              session_.base_allocation ? ", base:allocation" : "");
          ReadRequest();
        }));
  };
  option_data_.assign(length, '\0');
  if (length == 0) {
    PostToStrand([handle]() mutable { handle(error_code(), 0); });
    return;
  }
  asio::async_read(socket_, asio::buffer(option_data_), Handler(std::move(handle)));
}

// --- transmission: requests --------------------------------------------------------------

void NbdConnection::ReadRequest() {
  if (closed_ || reader_stopped_) return;
  if (in_flight_ >= shared_->options.max_requests ||
      in_flight_bytes_ >= shared_->options.max_bytes) {
    reader_waiting_ = true;  // resumed when a reply goes out
    return;
  }
  asio::async_read(socket_, asio::buffer(request_bytes_),
                   Handler([this](const error_code& ec, size_t) {
                     if (ec) return StopReading(ec);
                     OnRequest();
                   }));
}

void NbdConnection::StopReading(const error_code& ec) {
  reader_stopped_ = true;
  if (ec && !Normal(ec)) {
    spdlog::debug("host adaptor {}: nbd connection {}: read: {}", shared_->id, number_,
                  ec.message());
  }
  MaybeFinish();
}

void NbdConnection::OnRequest() {
  const Request r = ParseRequest(request_bytes_);
  if (r.magic != kRequestMagic) {
    return ProtocolError(absl::StrFormat("bad request magic 0x%08x", r.magic));
  }
  switch (r.type) {
    case kCmdRead:
      Read(r);
      break;
    case kCmdWrite:
      return StartWrite(r);  // reads the payload, then the next request
    case kCmdDisc:
      reader_stopped_ = true;
      return MaybeFinish();
    case kCmdFlush:
      Flush(r);
      break;
    case kCmdTrim:
    case kCmdWriteZeroes:
      Zero(r);
      break;
    case kCmdBlockStatus:
      BlockStatus(r);
      break;
    default:
      Admit(0);
      ReplyError(r, kEinval, absl::StrCat("unknown command ", r.type));
      break;
  }
  ReadRequest();
}

uint32_t NbdConnection::Check(const Request& r, uint16_t allowed_flags, bool modifies,
                              std::string* why) const {
  if ((r.flags & ~allowed_flags) != 0) {
    *why = absl::StrCat("flags 0x", absl::Hex(r.flags), " are not valid for ", CommandName(r.type));
    return kEinval;
  }
  if (modifies && shared_->parts.accepts_writes && !shared_->parts.accepts_writes()) {
    *why = "this daemon is a mirror: hosts may read only; write to the primary";
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
  if (r.length == 0) {
    ReplyError(r, w->error, w->why, 0);
    return ReadRequest();
  }
  write_ = std::move(w);
  ReadWriteChunk();
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
  asio::async_read(socket_, asio::buffer(chunk_),
                   Handler([this](const error_code& ec, size_t got) { OnWriteChunk(ec, got); }));
}

void NbdConnection::OnWriteChunk(const error_code& ec, size_t got) {
  std::shared_ptr<WriteState> w = write_;
  if (!w) return;
  if (ec) {
    write_.reset();
    if (w->error == 0) {
      // The client went away in the middle of the payload: stage what came, then cancel the
      // write, so it is dropped and counted like a cancelled stream.
      shared_->writes_dropped.fetch_add(1);
      spdlog::info(
          "host adaptor {}: nbd connection {} lost after {} of {} payload bytes of a WRITE at {}; "
          "the write is cancelled",
          shared_->id, number_, w->received + got, w->request.length, w->request.offset);
      chunk_.resize(got);
      auto self = shared_from_this();
      PostToPool([self, w, partial = std::move(chunk_)] {
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
    return StopReading(ec);
  }
  w->received += got;
  if (w->error == 0) w->crc = Crc32cExtend(w->crc, {chunk_.data(), got});
  const bool last = w->received == w->request.length;
  if (w->error != 0) {  // refused: drain the payload, then answer
    if (!last) return ReadWriteChunk();
    write_.reset();
    ReplyError(w->request, w->error, w->why, w->request.length);
    return ReadRequest();
  }
  std::vector<uint8_t> data = std::move(chunk_);
  chunk_ = {};
  if (last) write_.reset();
  StoreChunk(w, std::move(data), last);
  if (last) ReadRequest();  // the next request is read while this write commits
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
  if (status.ok() && (request.flags & kCmdFlagFua) != 0) {
    bool posted = self->PostToPool([self, request, bytes] {
      absl::Status flushed = self->shared_->parts.disk->Flush().status();
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

void NbdConnection::Flush(const Request& r) {
  Admit(0);
  if ((r.flags & ~kCmdFlagFua) != 0) {
    return ReplyError(r, kEinval,
                      absl::StrCat("flags 0x", absl::Hex(r.flags), " not valid for FLUSH"));
  }
  auto self = shared_from_this();
  bool posted = PostToPool([self, r] {
    absl::Status s = self->shared_->parts.disk->Flush().status();
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

// --- transmission: replies ---------------------------------------------------------------

void NbdConnection::Admit(uint64_t bytes) {
  ++in_flight_;
  in_flight_bytes_ += bytes;
}

void NbdConnection::ReplyOk(const Request& r, uint64_t bytes) {
  Outgoing out;
  out.head = EncodeSimpleReply(0, r.cookie);
  out.bytes = bytes;
  Send(std::move(out));
}

void NbdConnection::ReplyError(const Request& r, uint32_t error, const std::string& message,
                               uint64_t bytes) {
  spdlog::debug("host adaptor {}: nbd connection {}: {} failed with errno {}: {}", shared_->id,
                number_, CommandName(r.type), error, message);
  Outgoing out;
  out.head = session_.structured ? EncodeErrorChunk(r.cookie, error, message)
                                 : EncodeSimpleReply(error, r.cookie);
  out.bytes = bytes;
  Send(std::move(out));
}

void NbdConnection::ReplyStatus(const Request& r, const absl::Status& status, uint64_t bytes) {
  if (status.ok()) return ReplyOk(r, bytes);
  const uint32_t error =
      ErrnoFor(status, /*is_write=*/r.type == kCmdWrite || r.type == kCmdWriteZeroes);
  if (error == kEio) {
    spdlog::warn("host adaptor {}: nbd {} at {} (+{}) on \"{}\" failed: {}", shared_->id,
                 CommandName(r.type), r.offset, r.length, session_.export_name, status.ToString());
  }
  ReplyError(r, error, std::string(status.message()), bytes);
}

void NbdConnection::Send(Outgoing out) {
  if (closed_) return;
  out_.push_back(std::move(out));
  if (!writing_) WriteNext();
}

void NbdConnection::WriteNext() {
  if (closed_) return;
  if (out_.empty()) {
    writing_ = false;
    return MaybeFinish();
  }
  writing_ = true;
  // Gather the replies ready now into one write; they stay at the front of out_ until it ends.
  const size_t count = std::min(out_.size(), kMaxBatch);
  std::vector<asio::const_buffer> buffers;
  buffers.reserve(2 * count);
  for (size_t i = 0; i < count; ++i) {
    buffers.push_back(asio::buffer(out_[i].head));
    if (!out_[i].body.empty()) buffers.push_back(asio::buffer(out_[i].body));
  }
  asio::async_write(socket_, buffers, Handler([this, count](const error_code& ec, size_t) {
                      if (ec) return Close(absl::StrCat("write: ", ec.message()));
                      for (size_t i = 0; i < count; ++i) {
                        if (out_.front().ends_request) {
                          --in_flight_;
                          in_flight_bytes_ -= out_.front().bytes;
                        }
                        out_.pop_front();
                      }
                      if (reader_waiting_) {
                        reader_waiting_ = false;
                        ReadRequest();
                      }
                      WriteNext();
                    }));
}

void NbdConnection::MaybeFinish() {
  if (closed_ || !reader_stopped_ || write_ || in_flight_ != 0 || writing_ || !out_.empty()) {
    return;
  }
  Close("client disconnected");
}

}  // namespace simarray::nbd
