#pragma once
// Test tool: a TCP proxy on 127.0.0.1 that forwards every connection to `target` and keeps
// a copy of every byte it carried, both ways, so a test can look at what crossed the wire.
// Thread-safe; stops (closing every connection) on destruction.

#include <atomic>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

namespace simarray::testing {

class TcpProxy {
 public:
  explicit TcpProxy(std::string target);  // "127.0.0.1:PORT"
  ~TcpProxy();
  TcpProxy(const TcpProxy&) = delete;
  TcpProxy& operator=(const TcpProxy&) = delete;

  // Where to connect instead of the target.
  const std::string& address() const { return address_; }
  // Everything carried so far, both directions, in arrival order per direction.
  std::string Captured();

 private:
  void AcceptLoop();
  void Pump(int from, int to);

  const std::string target_;
  std::string address_;
  int listener_ = -1;
  std::atomic<bool> stop_{false};
  std::thread acceptor_;
  std::mutex mu_;
  std::vector<std::thread> pumps_;
  std::vector<int> sockets_;
  std::string captured_;
};

}  // namespace simarray::testing
