#pragma once
// NbdConnection: one client of an NbdServer, from the greeting to the close. The handshake
// runs as a sequence of reads and writes on the socket, driven by a Handshake; then the
// transmission phase reads the socket into a bounded ReceiveBuffer (kReceiveBuffer bytes,
// one async_read_some at a time), parses every complete request in it, and only then reads
// again. Requests are answered out of order:
//
//   READ, BLOCK_STATUS, FLUSH  run on the host adaptor's work pool; the reply is queued;
//   WRITE whose header and     buffered whole: its CRC-32C is taken from the buffer, then it
//     payload fit the buffer   is staged, validated and committed right here on the I/O
//                              thread when nothing has to wait (Waits::kNever, as the gRPC
//                              adaptor does); when something would wait it is copied out and
//                              run on the work pool. A FUA flush runs on the pool after it;
//   larger WRITE               streams its payload in chunks: each chunk (the first one
//                              starting with what is buffered) is added to the CRC-32C as it
//                              arrives, then appended to the HostWrite on the work pool; the
//                              last chunk finishes the write (and FUA flushes); the next
//                              request is parsed meanwhile;
//   TRIM, WRITE_ZEROES         writes of zeros of at most max_write each, one after another;
//   DISC                       stops parsing; the connection closes once replies drained;
//   bad request magic          a protocol error: parsing stops there, the requests before it
//                              are still answered, then the connection closes.
//
// Replies wait in a queue; one socket write gathers up to kMaxBatch of them, and the replies
// made while parsing one buffer go out together once it is parsed. Bounded: at most
// max_requests requests and max_bytes of payload in flight (parsing pauses, with what is left
// buffered, until replies go out), plus the receive buffer and one chunk of a streamed write.
//
// A connection lost in the middle of a write payload, buffered or streamed, cancels the
// write: nothing of it is visible and its mirror requests leave the pen (counted as
// cancelled). docs/life-of-a-write.md follows an NBD write through these steps.
//
// Code: the life cycle, the handshake and the reply queue in nbd_connection.cc; reading,
// parsing and dispatching requests, READ, FLUSH and BLOCK_STATUS in nbd_requests.cc; WRITE,
// TRIM and WRITE_ZEROES in nbd_write.cc.
//
// Thread-safety: every member is used on the I/O thread (through the connection's strand)
// only; work-pool jobs touch nothing but what they were handed and post their results back.
// Owned by NbdShared::open while open, and by the handlers and jobs that hold it.

// clang-format off
#include <utility>  // before any Asio header (Boost 1.74 with GCC 12, docs/toolchain.md)
// clang-format on
#include <array>
#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/bind_executor.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/strand.hpp>
#include <cstdint>
#include <deque>
#include <memory>
#include <span>
#include <string>
#include <unordered_map>
#include <vector>

#include "absl/strings/str_cat.h"
#include "simarray/nbd/nbd_handshake.h"
#include "simarray/nbd/nbd_protocol.h"
#include "simarray/nbd/nbd_receive_buffer.h"
#include "simarray/nbd/nbd_server.h"
#include "spdlog/spdlog.h"

namespace simarray::nbd {

class NbdConnection;

// What the server and its connections share. Connections hold it, so it outlives them.
struct NbdShared {
  NbdServerOptions options;
  NbdServerParts parts;
  ExportCatalog catalog;
  std::string id;  // host adaptor id, for logs
  std::atomic<uint64_t> accepted{0}, refused{0}, open_count{0}, protocol_errors{0},
      writes_dropped{0};
  // Open connections by number; used on the I/O thread only.
  std::unordered_map<uint64_t, std::shared_ptr<NbdConnection>> open;
};

class NbdConnection : public std::enable_shared_from_this<NbdConnection> {
 public:
  // What one connection buffers of its requests: a WRITE whose header and payload fit in it
  // is handled whole, a larger one streams.
  static constexpr size_t kReceiveBuffer = 256 << 10;

  using Strand = boost::asio::strand<boost::asio::any_io_executor>;

  NbdConnection(boost::asio::ip::tcp::socket socket, std::shared_ptr<NbdShared> shared,
                uint64_t number);
  ~NbdConnection();
  NbdConnection(const NbdConnection&) = delete;
  NbdConnection& operator=(const NbdConnection&) = delete;

  // Sends the greeting and starts the handshake. I/O thread.
  void Start();
  // Closes the socket; handlers still pending see it closed and stop. Idempotent. I/O thread.
  void Close(const std::string& why);

 private:
  struct WriteState;
  struct ZeroState;
  // The reply to one request, waiting for the socket: header bytes, then data (READ). Once
  // sent, the request gives back its place and its `bytes` in flight.
  struct Outgoing {
    std::string head;
    std::string body;
    uint64_t bytes = 0;
  };

  // Wraps a handler: runs it on the strand, keeps the connection alive, and turns an
  // exception into a logged close.
  template <typename F>
  auto Handler(F f);
  // Runs `f` on the strand (from any thread).
  template <typename F>
  void PostToStrand(F f);
  // Runs `job` on the host adaptor's work pool; false when the pool refused it (full).
  // Thread-safe.
  bool PostToPool(std::function<void()> job);

  // --- handshake ---
  void ReadClientFlags();
  void ReadOptionHeader();
  void ReadOptionData(uint32_t option, uint32_t length);
  void ProtocolError(const std::string& what);

  // --- transmission ---
  // Parses and dispatches every complete request buffered (within the in-flight limits),
  // sends the replies that made, and reads the socket again when it needs more bytes.
  void ParseRequests();
  void ReceiveMore();
  // The client stopped sending (`ec`): a WRITE whose payload was partly buffered is
  // cancelled like a streamed one, then the reader stops.
  void OnReceiveEnd(const boost::system::error_code& ec);
  // Whether what is buffered starts with a whole request: a header, and for a WRITE that
  // fits the buffer its whole payload (larger ones stream).
  bool RequestBuffered() const;
  void OnRequest(const Request& request);
  // Bad request magic: parsing stops, what came before is answered, then the close.
  void BadRequest(const std::string& what);
  // 0 when `request` may go on; else the NBD error to answer with (and `why`): EINVAL for
  // flags outside `allowed_flags`, length 0 or a range outside the export (ENOSPC for
  // WRITE and WRITE_ZEROES), EPERM when it `modifies` the volume on a mirror-role daemon.
  uint32_t Check(const Request& request, uint16_t allowed_flags, bool modifies,
                 std::string* why) const;
  void Read(const Request& request);
  void StartWrite(const Request& request);
  // A WRITE whose payload is all in the receive buffer (`payload`, consumed by the caller).
  void WriteBuffered(std::shared_ptr<WriteState> w, std::span<const uint8_t> payload);
  // Runs the whole write on this thread with Waits::kNever; false when it would have to
  // wait (nothing done: run it on the pool).
  bool TryWriteNow(const WriteState& w, std::span<const uint8_t> payload);
  void ReadWriteChunk();
  void OnWriteChunk(const boost::system::error_code& ec, size_t got);
  void StoreChunk(std::shared_ptr<WriteState> w, std::vector<uint8_t> data, bool last);
  // The client went away after `partial` of `w`'s payload: counted, and the write staged
  // and cancelled on the pool so that it is dropped like a cancelled stream.
  void LoseWrite(std::shared_ptr<WriteState> w, std::vector<uint8_t> partial);
  // The same for a WRITE left in the receive buffer waiting for the rest of its payload, if
  // there is one; empties the buffer.
  void LoseBufferedWrite();
  void Zero(const Request& request);
  void ZeroPiece(std::shared_ptr<ZeroState> z);
  void Flush(const Request& request);
  void BlockStatus(const Request& request);
  // The end of a write (WRITE, TRIM, WRITE_ZEROES): flush first when FUA asked, then reply.
  // Any thread.
  static void CompleteWrite(std::weak_ptr<NbdConnection> weak, Request request,
                            absl::Status status);

  // --- replies ---
  void Admit(uint64_t bytes);
  // `bytes`: what the request counted in flight, given back once the reply is sent.
  void ReplyOk(const Request& request, uint64_t bytes = 0);
  void ReplyError(const Request& request, uint32_t error, const std::string& message,
                  uint64_t bytes = 0);
  // OK, or the error's NBD errno (ENOSPC past the end for WRITE and WRITE_ZEROES).
  void ReplyStatus(const Request& request, const absl::Status& status, uint64_t bytes = 0);
  void Send(Outgoing out);
  void WriteNext();
  // Closes once the client is done sending (DISC or EOF) and every reply went out.
  void MaybeFinish();
  // The reader stopped (client closed, DISC, error).
  void StopReading(const boost::system::error_code& ec);

  boost::asio::ip::tcp::socket socket_;
  Strand strand_;
  boost::asio::steady_timer handshake_timer_;
  const std::shared_ptr<NbdShared> shared_;
  const uint64_t number_;
  std::string peer_;
  bool closed_ = false;

  // Handshake.
  Handshake handshake_;
  std::array<uint8_t, kOptionHeaderSize> option_header_{};
  std::string option_data_;
  size_t options_seen_ = 0;
  bool in_transmission_ = false;
  Session session_;

  // Transmission: the reader.
  ReceiveBuffer received_{kReceiveBuffer};
  bool receiving_ = false;  // a read into received_ is pending
  bool parsing_ = false;    // in ParseRequests: replies wait until it ends
  bool reader_stopped_ = false;
  bool reader_waiting_ = false;        // paused by the in-flight limits
  std::shared_ptr<WriteState> write_;  // the write whose payload is being read
  std::vector<uint8_t> chunk_;
  size_t in_flight_ = 0;
  uint64_t in_flight_bytes_ = 0;

  // Transmission: the writer.
  std::deque<Outgoing> out_;
  bool writing_ = false;
};

template <typename F>
auto NbdConnection::Handler(F f) {
  return boost::asio::bind_executor(
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
  boost::asio::post(strand_, Handler(std::move(f)));
}

}  // namespace simarray::nbd
