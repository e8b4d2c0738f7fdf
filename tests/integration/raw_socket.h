#pragma once
// Test tools that talk to a daemon's ports below gRPC: plain TCP connections, raw bytes,
// and a one-shot HTTP GET. Addresses are "127.0.0.1:PORT".

#include <string>

namespace simarray::testing {

// A connected TCP socket (blocking, 10 s receive timeout); fails the test if it cannot.
int ConnectTcp(const std::string& address);

// Sends raw bytes to `address` and closes.
void SendGarbage(const std::string& address, const std::string& bytes);

// True once the other end closed `fd` (reads whatever it still sends); false if it is
// still open after `wait_ms`.
bool ClosedByPeer(int fd, int wait_ms);

struct HttpReply {
  int status = 0;
  std::string content_type;
  std::string body;
};
// A one-shot HTTP/1.1 GET (Connection: close, body to EOF); checks Content-Length.
HttpReply HttpGet(const std::string& address, const std::string& path);

}  // namespace simarray::testing
