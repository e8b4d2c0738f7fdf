// Fuzz target: the config parser (daemon/config.h ParseConfig) on arbitrary text. It must
// return a config or an error naming a key, never crash or hang.
#include <cstdint>
#include <string_view>

#include "daemon/config.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  auto config = simarray::daemon::ParseConfig(text, "fuzz.toml", "");
  if (!config.ok() && config.status().message().find("config fuzz.toml") != 0) {
    __builtin_trap();  // every error names the file
  }
  return 0;
}
