#pragma once
// NbdServer: a host adaptor port speaking the Network Block Device protocol. Every volume of
// the array is an export of the same name. Reads and writes go through a HostAdaptor, so an
// NBD write takes exactly the path of a gRPC write (docs/write-path.md): BeginWrite, then Append
// as the payload arrives from the socket, then Finish with the CRC-32C of the bytes that
// arrived (validity), holding pen, commit and mirror. TRIM and WRITE_ZEROES are writes of
// zeros on the same path (split into writes of at most max_write), so the mirror stays
// identical. FLUSH and FUA make every write acknowledged before them durable for the whole
// array (DiskAdaptor::Persist: the cache region synced when it is persistent, a full Flush
// otherwise), which is why CAN_MULTI_CONN is advertised.
//
// Threads: one Boost.Asio I/O thread owns every socket; anything that may wait (queue
// places, cache slots, disk reads, flushes) runs on the host adaptor's work pool and hands
// its result back to the connection's strand. A small WRITE whose bytes are all buffered
// runs on the I/O thread itself when nothing has to wait (Waits::kNever), as the gRPC host
// adaptor's unary write does. No exception leaves an Asio handler: it is logged and the
// connection closed.
//
// Bounded: at most `max_connections` connections (more are closed on accept), per
// connection a 256 KiB receive buffer and at most `max_requests` requests and `max_bytes` of
// payload in flight (the connection stops parsing requests until replies drain), payloads
// of at most max_write.
//
// Thread-safe. Lifetime: the parts are borrowed. Stop() before the host adaptor's work pool
// is stopped; destroy the server after that pool has stopped (its jobs hold connections)
// and before the host adaptor, the volume catalog and the disk adaptor.

#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <thread>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "simarray/disk/disk_adaptor.h"
#include "simarray/disk/volume_catalog.h"
#include "simarray/host/host_adaptor.h"

namespace simarray::nbd {

struct NbdServerOptions {
  std::string listen = "127.0.0.1:0";  // host:port; port 0 picks a free one
  size_t max_connections = 64;
  size_t max_requests = 64;       // per connection, in flight
  uint64_t max_bytes = 64 << 20;  // per connection, payload in flight (reads and writes)
  absl::Duration handshake_timeout = absl::Seconds(10);
};

struct NbdServerParts {
  host::HostAdaptor* host = nullptr;  // the adaptor this port belongs to
  disk::VolumeCatalog* volumes = nullptr;
  disk::DiskAdaptor* disk = nullptr;
  uint32_t track_size = 64 << 10;
  // False for a volume hosts may only read (the target of an RDF group, docs/groups.md):
  // its export is read-only, writes get EPERM.
  std::function<bool(const std::string& volume)> accepts_writes;
};

struct NbdCounters {
  uint64_t connections_accepted = 0;
  uint64_t connections_refused = 0;  // over max_connections
  uint64_t connections_open = 0;
  uint64_t protocol_errors = 0;  // connections closed for breaking the protocol
  uint64_t writes_dropped = 0;   // connection lost in the middle of a write payload
};
// The counters as figures (simarray/base/figures.h), in an NBD port's section.
void Describe(const NbdCounters& counters, FigureSink& sink);

struct NbdShared;
struct NbdIo;

class NbdServer {
 public:
  NbdServer(NbdServerOptions options, NbdServerParts parts);
  ~NbdServer();
  NbdServer(const NbdServer&) = delete;
  NbdServer& operator=(const NbdServer&) = delete;

  // Binds the listen address and starts serving; returns the bound "host:port".
  absl::StatusOr<std::string> Start();
  // Stops accepting, closes every connection and joins the I/O thread. Idempotent.
  void Stop();

  NbdCounters Counters() const;
  // The id of the host adaptor this port belongs to.
  const std::string& id() const;

 private:
  std::shared_ptr<NbdShared> shared_;  // with the connections, which may outlive a Stop
  std::unique_ptr<NbdIo> io_;          // the io_context and the acceptor
  std::thread thread_;
  bool started_ = false;
  bool stopped_ = false;
};

}  // namespace simarray::nbd
