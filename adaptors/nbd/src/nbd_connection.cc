#include "nbd_connection.h"

// clang-format off
#include <utility>  // before any Asio header (Boost 1.74 with GCC 12, docs/toolchain.md)
// clang-format on
#include <algorithm>
#include <boost/asio/buffer.hpp>
#include <boost/asio/read.hpp>
#include <boost/asio/write.hpp>
#include <chrono>

#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "spdlog/spdlog.h"

namespace simarray::nbd {

namespace asio = boost::asio;
using boost::system::error_code;
using tcp = asio::ip::tcp;

namespace {

// A client that sends this many options without choosing an export is hung up on.
constexpr size_t kMaxOptions = 256;
// Replies gathered into one socket write.
constexpr size_t kMaxBatch = 32;

}  // namespace

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
                     const uint32_t flags = GetU32(option_header_.data());
                     if (absl::Status s = handshake_.OnClientFlags(flags); !s.ok()) {
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
          ParseRequests();
        }));
  };
  option_data_.assign(length, '\0');
  if (length == 0) {
    PostToStrand([handle]() mutable { handle(error_code(), 0); });
    return;
  }
  asio::async_read(socket_, asio::buffer(option_data_), Handler(std::move(handle)));
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
  if (writing_ || parsing_) return;  // gathered by the next write, or when the parse ends
  // Write once the handlers already queued on the strand ran: replies posted back from other
  // threads at about the same time go out together.
  writing_ = true;
  PostToStrand([this] { WriteNext(); });
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
                        --in_flight_;
                        in_flight_bytes_ -= out_.front().bytes;
                        out_.pop_front();
                      }
                      if (reader_waiting_) {
                        reader_waiting_ = false;
                        ParseRequests();
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
