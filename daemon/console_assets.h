#pragma once
// The web console's files (daemon/console/), compiled into the binary: console_assets.cc is
// generated at build time by daemon/console/embed.cmake.

#include <string_view>
#include <vector>

namespace simarray::daemon {

struct ConsoleAsset {
  std::string_view name;  // "index.html", "console.js", ...
  std::string_view content_type;
  std::string_view content;
};

const std::vector<ConsoleAsset>& ConsoleAssets();

}  // namespace simarray::daemon
