#pragma once
// Small JSON output for what is not one protobuf message (protobuf's JSON printer does
// those): a quoted string, and a flat object built field by field. Used by simarrayctl's
// --json output and the daemon's console API. Thread-compatible.

#include <cstdint>
#include <string>
#include <string_view>

namespace simarray {

// `text` as a JSON string: quoted, with '"', '\' and control characters escaped.
std::string JsonString(std::string_view text);

class JsonObject {
 public:
  JsonObject& Add(std::string_view key, std::string_view value);
  JsonObject& Add(std::string_view key, const char* value) {
    return Add(key, std::string_view(value));
  }
  JsonObject& Add(std::string_view key, uint64_t value);
  JsonObject& Add(std::string_view key, bool value);
  // A value that is JSON already (an object, an array).
  JsonObject& AddJson(std::string_view key, std::string_view json);
  std::string str() const { return "{" + body_ + "}"; }

 private:
  void Key(std::string_view key);
  std::string body_;
};

}  // namespace simarray
