#include "browser.h"

#include <fcntl.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

// Boost 1.74 with GCC 12 in C++20 wants <utility> before Asio.
#include <utility>
// clang-format off
#include <boost/asio/connect.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/beast/core/buffers_to_string.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/websocket.hpp>
// clang-format on
#include <catch2/catch.hpp>
#include <chrono>
#include <fstream>
#include <sstream>
#include <thread>

#include "absl/strings/escaping.h"
#include "google/protobuf/util/json_util.h"
#include "simarray/base/json.h"

namespace simarray::testing {
namespace {

namespace asio = boost::asio;
namespace beast = boost::beast;
using tcp = asio::ip::tcp;

google::protobuf::Struct Params(const std::string& json) {
  google::protobuf::Struct out;
  const auto s = google::protobuf::util::JsonStringToMessage(json, &out);
  INFO(json);
  REQUIRE(s.ok());
  return out;
}

std::string ToJson(const google::protobuf::Message& message) {
  std::string out;
  (void)google::protobuf::util::MessageToJsonString(message, &out);
  return out;
}

const google::protobuf::Value* Field(const google::protobuf::Struct& s, const std::string& name) {
  auto it = s.fields().find(name);
  return it == s.fields().end() ? nullptr : &it->second;
}

std::string StringField(const google::protobuf::Struct& s, const std::string& name) {
  const google::protobuf::Value* v = Field(s, name);
  return v != nullptr && v->has_string_value() ? v->string_value() : std::string();
}

// GET http://127.0.0.1:port/path, the body.
std::string HttpGetBody(int port, const std::string& path) {
  asio::io_context io;
  tcp::socket socket(io);
  socket.connect(tcp::endpoint(asio::ip::make_address("127.0.0.1"), port));
  beast::http::request<beast::http::empty_body> req(beast::http::verb::get, path, 11);
  req.set(beast::http::field::host, "127.0.0.1");
  beast::http::write(socket, req);
  beast::flat_buffer buffer;
  beast::http::response<beast::http::string_body> res;
  beast::http::read(socket, buffer, res);
  return res.body();
}

}  // namespace

struct Browser::Socket {
  asio::io_context io;
  beast::websocket::stream<tcp::socket> ws{io};
};

Browser::Browser(const std::string& dir) {
  REQUIRE(access("/usr/bin/chromium", X_OK) == 0);  // scripts/install-deps.sh installs it
  const std::string profile = dir + "/chromium-profile";
  const std::string log = dir + "/chromium.log";
  // Everything the child needs is made before fork: the test process has threads, and the
  // child only execs.
  const std::string user_data = "--user-data-dir=" + profile;
  std::vector<const char*> argv = {"chromium",
                                   "--headless=new",
                                   "--no-sandbox",
                                   "--disable-gpu",
                                   "--disable-quic",
                                   "--no-first-run",
                                   "--disable-background-networking",
                                   "--disable-component-update",
                                   "--disable-sync",
                                   "--disable-dev-shm-usage",
                                   "--remote-debugging-address=127.0.0.1",
                                   "--remote-debugging-port=0",
                                   user_data.c_str(),
                                   "about:blank",
                                   nullptr};
  const int log_fd = open(log.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  REQUIRE(log_fd >= 0);
  chromium_.pid = fork();
  REQUIRE(chromium_.pid >= 0);
  if (chromium_.pid == 0) {
    setpgid(0, 0);  // chromium's own processes go with it
    dup2(log_fd, STDOUT_FILENO);
    dup2(log_fd, STDERR_FILENO);
    // As root on a machine without the network: the flags Debian's chromium needs headless
    // here (docs/console.md).
    execv("/usr/bin/chromium", const_cast<char* const*>(argv.data()));
    _exit(127);
  }
  close(log_fd);
  // Chromium writes the port it took into the profile.
  int port = 0;
  for (int i = 0; i < 300 && port == 0; ++i) {
    std::ifstream in(profile + "/DevToolsActivePort");
    if (!(in >> port)) {
      port = 0;
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
    }
  }
  INFO("chromium did not come up; see " << log);
  REQUIRE(port != 0);

  google::protobuf::ListValue targets;
  std::string ws_url;
  for (int i = 0; i < 100 && ws_url.empty(); ++i) {
    targets.Clear();
    REQUIRE(google::protobuf::util::JsonStringToMessage(HttpGetBody(port, "/json/list"), &targets)
                .ok());
    for (const google::protobuf::Value& t : targets.values()) {
      if (StringField(t.struct_value(), "type") == "page") {
        ws_url = StringField(t.struct_value(), "webSocketDebuggerUrl");
      }
    }
    if (ws_url.empty()) std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  REQUIRE_FALSE(ws_url.empty());
  const size_t path = ws_url.find('/', ws_url.find("//") + 2);
  socket_ = std::make_unique<Socket>();
  socket_->ws.next_layer().connect(tcp::endpoint(asio::ip::make_address("127.0.0.1"), port));
  socket_->ws.read_message_max(64 << 20);
  socket_->ws.handshake("127.0.0.1:" + std::to_string(port), ws_url.substr(path));
  for (const char* domain : {"Page.enable", "Runtime.enable", "Log.enable"}) {
    Call(domain, google::protobuf::Struct());
  }
}

Browser::~Browser() {
  if (socket_) {
    beast::error_code ignored;
    socket_->ws.next_layer().close(ignored);
  }
}

Browser::Child::~Child() {
  if (pid <= 0) return;
  kill(-pid, SIGKILL);
  kill(pid, SIGKILL);
  waitpid(pid, nullptr, 0);
}

google::protobuf::Struct Browser::Read() {
  // Read with a deadline: a reply or an event that never comes fails the test.
  beast::flat_buffer buffer;
  beast::error_code ec;
  bool done = false;
  socket_->ws.async_read(buffer, [&](beast::error_code e, size_t) {
    ec = e;
    done = true;
  });
  socket_->io.restart();
  socket_->io.run_for(std::chrono::seconds(30));
  INFO("DevTools socket: " << (done ? ec.message() : "nothing from chromium for 30 s"));
  REQUIRE(done);
  REQUIRE_FALSE(ec);
  google::protobuf::Struct message;
  google::protobuf::util::JsonParseOptions options;
  options.ignore_unknown_fields = true;
  REQUIRE(google::protobuf::util::JsonStringToMessage(beast::buffers_to_string(buffer.data()),
                                                      &message, options)
              .ok());
  return message;
}

void Browser::Note(const google::protobuf::Struct& event) {
  const std::string method = StringField(event, "method");
  const google::protobuf::Value* params = Field(event, "params");
  if (params == nullptr) return;
  const google::protobuf::Struct& p = params->struct_value();
  if (method == "Page.loadEventFired") {
    loaded_ = true;
  } else if (method == "Runtime.exceptionThrown") {
    errors_.push_back("exception: " + ToJson(p));
  } else if (method == "Runtime.consoleAPICalled" && StringField(p, "type") == "error") {
    errors_.push_back("console.error: " + ToJson(p));
  } else if (method == "Log.entryAdded") {
    const google::protobuf::Value* entry = Field(p, "entry");
    if (entry != nullptr && StringField(entry->struct_value(), "level") == "error") {
      errors_.push_back("log: " + ToJson(entry->struct_value()));
    }
  }
}

google::protobuf::Struct Browser::Call(const std::string& method,
                                       const google::protobuf::Struct& params) {
  const int id = next_id_++;
  const std::string request = "{\"id\":" + std::to_string(id) +
                              ",\"method\":" + JsonString(method) +
                              ",\"params\":" + ToJson(params) + "}";
  socket_->ws.text(true);
  socket_->ws.write(asio::buffer(request));
  for (;;) {
    google::protobuf::Struct message = Read();
    const google::protobuf::Value* reply_id = Field(message, "id");
    if (reply_id == nullptr) {
      Note(message);
      continue;
    }
    if (static_cast<int>(reply_id->number_value()) != id) continue;
    const google::protobuf::Value* error = Field(message, "error");
    INFO(method << " failed: " << (error != nullptr ? ToJson(*error) : ""));
    REQUIRE(error == nullptr);
    const google::protobuf::Value* result = Field(message, "result");
    return result != nullptr ? result->struct_value() : google::protobuf::Struct();
  }
}

void Browser::Navigate(const std::string& url) {
  loaded_ = false;
  Call("Page.navigate", Params("{\"url\":" + JsonString(url) + "}"));
  while (!loaded_) Note(Read());
}

google::protobuf::Value Browser::Evaluate(const std::string& expression) {
  google::protobuf::Struct result =
      Call("Runtime.evaluate", Params("{\"expression\":" + JsonString(expression) +
                                      ",\"returnByValue\":true,\"awaitPromise\":true}"));
  const google::protobuf::Value* exception = Field(result, "exceptionDetails");
  INFO(expression << " threw " << (exception != nullptr ? ToJson(*exception) : ""));
  REQUIRE(exception == nullptr);
  const google::protobuf::Value* value = Field(result, "result");
  REQUIRE(value != nullptr);
  const google::protobuf::Value* inner = Field(value->struct_value(), "value");
  return inner != nullptr ? *inner : google::protobuf::Value();
}

std::string Browser::Text(const std::string& expression) {
  const google::protobuf::Value v = Evaluate(expression);
  return v.has_string_value() ? v.string_value() : ToJson(v);
}

void Browser::Screenshot(const std::string& path, int width, int height) {
  Call("Emulation.setDeviceMetricsOverride",
       Params("{\"width\":" + std::to_string(width) + ",\"height\":" + std::to_string(height) +
              ",\"deviceScaleFactor\":1,\"mobile\":false}"));
  google::protobuf::Struct shot = Call("Page.captureScreenshot", Params("{\"format\":\"png\"}"));
  std::string png;
  REQUIRE(absl::Base64Unescape(StringField(shot, "data"), &png));
  std::ofstream(path, std::ios::binary) << png;
}

}  // namespace simarray::testing
