#pragma once
// What the NBD tests share (nbd_test.cc drives real block tools, nbd_protocol_test.cc speaks
// raw bytes): daemon options with an NBD host adaptor, the NBD adaptor's pen counters, and a
// raw NBD client that can send anything, including what no real client would.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <map>
#include <string>

#include "daemon_process.h"

namespace simarray::testing {

inline constexpr uint64_t kTrack = 64 << 10;
inline constexpr uint64_t kMaxWrite = 4 << 20;  // DaemonOptions' default max_write

inline DaemonOptions WithNbd(std::string cache_size = "64M") {
  DaemonOptions options;
  options.nbd_adaptors = 1;
  options.cache_size = std::move(cache_size);
  return options;
}

// Pen counters of the NBD adaptor (after the one gRPC adaptor).
inline const v1::PenStatus& NbdPen(const v1::StatusReply& status) { return Pen(status, 1); }

inline uint64_t Cancelled(const v1::PenStatus& pen) {
  auto it = pen.invalid_writes().find("cancelled");
  return it == pen.invalid_writes().end() ? 0 : it->second;
}

// --- a raw NBD client --------------------------------------------------------------------

inline void Put16(std::string* out, uint16_t v) {
  out->push_back(static_cast<char>(v >> 8));
  out->push_back(static_cast<char>(v));
}
inline void Put32(std::string* out, uint32_t v) {
  Put16(out, static_cast<uint16_t>(v >> 16));
  Put16(out, static_cast<uint16_t>(v));
}
inline void Put64(std::string* out, uint64_t v) {
  Put32(out, static_cast<uint32_t>(v >> 32));
  Put32(out, static_cast<uint32_t>(v));
}
inline uint64_t Get(const std::string& s, size_t at, int bytes) {
  uint64_t v = 0;
  for (int i = 0; i < bytes; ++i) v = (v << 8) | static_cast<uint8_t>(s[at + i]);
  return v;
}

inline constexpr uint64_t kOptMagic = 0x49484156454f5054ull;
inline constexpr uint32_t kRequestMagic = 0x25609513u;
inline constexpr uint32_t kSimpleReplyMagic = 0x67446698u;
inline constexpr uint32_t kOptGo = 7, kRepAck = 1, kRepInfo = 3;
inline constexpr uint32_t kRepErrUnsup = 0x80000001u, kRepErrInvalid = 0x80000003u,
                          kRepErrUnknown = 0x80000006u;
inline constexpr uint16_t kCmdRead = 0, kCmdWrite = 1, kCmdDisc = 2, kCmdFlush = 3, kCmdTrim = 4,
                          kCmdBlockStatus = 7;
inline constexpr uint32_t kEperm = 1, kEinval = 22, kEnospc = 28;
inline constexpr uint16_t kFlagReadOnly = 1 << 1;

inline std::string Option(uint32_t option, const std::string& data) {
  std::string out;
  Put64(&out, kOptMagic);
  Put32(&out, option);
  Put32(&out, static_cast<uint32_t>(data.size()));
  return out + data;
}

inline std::string GoData(const std::string& name) {
  std::string data;
  Put32(&data, static_cast<uint32_t>(name.size()));
  data += name;
  Put16(&data, 0);
  return data;
}

inline std::string RequestBytes(uint16_t type, uint64_t cookie, uint64_t offset, uint32_t length,
                                uint16_t flags = 0) {
  std::string out;
  Put32(&out, kRequestMagic);
  Put16(&out, flags);
  Put16(&out, type);
  Put64(&out, cookie);
  Put64(&out, offset);
  Put32(&out, length);
  return out;
}

class RawNbd {
 public:
  explicit RawNbd(const std::string& address) {
    const size_t colon = address.rfind(':');
    sockaddr_in sa{};
    sa.sin_family = AF_INET;
    sa.sin_port = htons(static_cast<uint16_t>(std::stoi(address.substr(colon + 1))));
    REQUIRE(inet_pton(AF_INET, address.substr(0, colon).c_str(), &sa.sin_addr) == 1);
    fd_ = socket(AF_INET, SOCK_STREAM, 0);
    REQUIRE(fd_ >= 0);
    REQUIRE(connect(fd_, reinterpret_cast<sockaddr*>(&sa), sizeof(sa)) == 0);
    int one = 1;
    setsockopt(fd_, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
  }
  ~RawNbd() { Close(); }
  RawNbd(const RawNbd&) = delete;
  RawNbd& operator=(const RawNbd&) = delete;

  void Close() {
    if (fd_ >= 0) close(fd_);
    fd_ = -1;
  }

  // Sends everything it can; a server that hung up is not an error here.
  void Send(const std::string& bytes) {
    size_t done = 0;
    while (done < bytes.size()) {
      ssize_t n = send(fd_, bytes.data() + done, bytes.size() - done, MSG_NOSIGNAL);
      if (n <= 0) return;
      done += n;
    }
  }

  // Up to `n` bytes; fewer when the server closes or nothing comes for `timeout_ms`.
  std::string Recv(size_t n, int timeout_ms = 20000) {
    std::string out;
    while (out.size() < n) {
      pollfd p{fd_, POLLIN, 0};
      if (poll(&p, 1, timeout_ms) <= 0) break;
      char buffer[65536];
      ssize_t got = recv(fd_, buffer, std::min(sizeof(buffer), n - out.size()), 0);
      if (got <= 0) break;
      out.append(buffer, got);
    }
    return out;
  }

  // True when the server closes the connection (EOF or reset) within `timeout_ms`; bytes
  // it still sends are read and dropped.
  bool ClosedByServer(int timeout_ms = 20000) {
    for (;;) {
      pollfd p{fd_, POLLIN, 0};
      if (poll(&p, 1, timeout_ms) <= 0) return false;
      char buffer[4096];
      ssize_t got = recv(fd_, buffer, sizeof(buffer), 0);
      if (got <= 0) return true;
    }
  }

  std::string Greeting() {
    std::string g = Recv(18);
    REQUIRE(g.size() == 18);
    REQUIRE(g.substr(0, 8) == "NBDMAGIC");
    REQUIRE(g.substr(8, 8) == "IHAVEOPT");
    return g;
  }

  struct OptionReply {
    uint32_t type = 0;
    std::string data;
  };
  OptionReply ReadOptionReply() {
    std::string h = Recv(20);
    REQUIRE(h.size() == 20);
    REQUIRE(Get(h, 0, 8) == 0x0003e889045565a9ull);
    OptionReply r;
    r.type = static_cast<uint32_t>(Get(h, 12, 4));
    r.data = Recv(Get(h, 16, 4));
    return r;
  }

  // Greeting, client flags, NBD_OPT_GO on `volume`; returns the transmission flags.
  uint16_t Negotiate(const std::string& volume) {
    Greeting();
    std::string flags;
    Put32(&flags, 1);  // fixed newstyle
    Send(flags);
    Send(Option(kOptGo, GoData(volume)));
    uint16_t transmission = 0;
    for (;;) {
      OptionReply r = ReadOptionReply();
      if (r.type == kRepAck) break;
      REQUIRE(r.type == kRepInfo);
      if (Get(r.data, 0, 2) == 0) transmission = static_cast<uint16_t>(Get(r.data, 10, 2));
    }
    return transmission;
  }

  struct Reply {
    uint32_t error = 0;
    uint64_t cookie = 0;
    std::string data;
  };
  // One simple reply; `read_lengths` gives, by cookie, how many data bytes follow a
  // successful READ reply.
  Reply ReadReply(const std::map<uint64_t, uint32_t>& read_lengths = {}) {
    std::string h = Recv(16);
    REQUIRE(h.size() == 16);
    REQUIRE(Get(h, 0, 4) == kSimpleReplyMagic);
    Reply r;
    r.error = static_cast<uint32_t>(Get(h, 4, 4));
    r.cookie = Get(h, 8, 8);
    auto it = read_lengths.find(r.cookie);
    if (r.error == 0 && it != read_lengths.end()) {
      r.data = Recv(it->second);
      REQUIRE(r.data.size() == it->second);
    }
    return r;
  }

  Reply Call(uint16_t type, uint64_t offset, uint32_t length, const std::string& payload = "",
             uint16_t flags = 0) {
    const uint64_t cookie = ++cookie_;
    Send(RequestBytes(type, cookie, offset, length, flags) + payload);
    std::map<uint64_t, uint32_t> lengths;
    if (type == kCmdRead) lengths[cookie] = length;
    Reply r = ReadReply(lengths);
    REQUIRE(r.cookie == cookie);
    return r;
  }

 private:
  int fd_ = -1;
  uint64_t cookie_ = 1000;
};

}  // namespace simarray::testing
