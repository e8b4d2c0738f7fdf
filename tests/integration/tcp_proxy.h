#pragma once
// Test tool: a TCP proxy on 127.0.0.1 that forwards every connection to `target` and keeps
// a copy of every byte it carried, both ways, so a test can look at what crossed the wire.
// Thread-safe; stops (closing every connection) on destruction. A test can cut the link:
// Cut shuts every open connection down, and refuses new ones (accepts and closes them)
// until `refuse_for` has passed.

#include <atomic>
#include <chrono>
#include <mutex>
#include <string>
#include <thread>
#include <utility>
#include <vector>

namespace simarray::testing {

class TcpProxy {
 public:
  // "127.0.0.1:PORT"; `capture` false: Captured() stays empty (long, heavy runs).
  explicit TcpProxy(std::string target, bool capture = true);
  ~TcpProxy();
  TcpProxy(const TcpProxy&) = delete;
  TcpProxy& operator=(const TcpProxy&) = delete;

  // Where to connect instead of the target.
  const std::string& address() const { return address_; }
  // Everything carried so far, both directions, in arrival order per direction.
  std::string Captured();
  // Shuts down every connection carried so far (both ends see it break) and refuses new
  // ones for `refuse_for`; returns how many connections were open.
  int Cut(std::chrono::milliseconds refuse_for = std::chrono::milliseconds(0));

 private:
  void AcceptLoop();
  void Pump(int from, int to);

  const std::string target_;
  const bool capture_;
  std::string address_;
  int listener_ = -1;
  std::atomic<bool> stop_{false};
  std::thread acceptor_;
  std::mutex mu_;
  std::vector<std::thread> pumps_;
  std::vector<int> sockets_;
  std::string captured_;
  std::vector<std::pair<int, int>> open_;  // client, server: not cut yet
  std::chrono::steady_clock::time_point refuse_until_{};
};

}  // namespace simarray::testing
