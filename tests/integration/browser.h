#pragma once
// Browser: Debian's chromium, headless, driven through the DevTools protocol (a WebSocket,
// Boost.Beast) for the console test (docs/console.md): load a page, evaluate JavaScript in
// it, collect what it logs as errors, take a screenshot. One page; not thread-safe.

#include <sys/types.h>

#include <memory>
#include <string>
#include <vector>

#include "google/protobuf/struct.pb.h"

namespace simarray::testing {

class Browser {
 public:
  // Starts chromium with a fresh profile in `dir` (which must exist) and attaches to its
  // page. Fails the test if chromium is missing or does not come up within 30 s.
  explicit Browser(const std::string& dir);
  ~Browser();  // kills chromium
  Browser(const Browser&) = delete;
  Browser& operator=(const Browser&) = delete;

  // Loads `url` and waits for its load event.
  void Navigate(const std::string& url);
  // The value of `expression` evaluated in the page (a promise is awaited); an exception
  // thrown by it fails the test.
  google::protobuf::Value Evaluate(const std::string& expression);
  // Evaluate, as text: a string as it is, anything else as JSON.
  std::string Text(const std::string& expression);
  // What the page reported as errors so far: uncaught exceptions, console.error, and the
  // browser's own error log entries (a failed request, say).
  const std::vector<std::string>& errors() const { return errors_; }
  // A PNG of the page at `width` x `height` CSS pixels, written to `path`.
  void Screenshot(const std::string& path, int width, int height);

 private:
  // Sends one command and reads until its reply, noting the events that come meanwhile.
  google::protobuf::Struct Call(const std::string& method, const google::protobuf::Struct& params);
  google::protobuf::Struct Read();
  void Note(const google::protobuf::Struct& event);

  struct Socket;
  // Chromium's process group, killed when this goes (also when the constructor fails).
  struct Child {
    pid_t pid = -1;
    ~Child();
  };
  Child chromium_;
  std::unique_ptr<Socket> socket_;
  int next_id_ = 1;
  bool loaded_ = false;
  std::vector<std::string> errors_;
};

}  // namespace simarray::testing
