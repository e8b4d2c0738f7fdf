#pragma once
// ScratchDir: a fresh directory under $TMPDIR (or /tmp) for a unit test, removed with
// everything in it on destruction. Shared by the component test binaries.

#include <stdlib.h>

#include <filesystem>
#include <string>

namespace simarray::testing {

class ScratchDir {
 public:
  explicit ScratchDir(const std::string& prefix = "simarray-test") {
    const char* base = getenv("TMPDIR");
    std::string tmpl =
        std::string(base != nullptr && *base != '\0' ? base : "/tmp") + "/" + prefix + "-XXXXXX";
    if (mkdtemp(tmpl.data()) != nullptr) path_ = tmpl;
  }
  ~ScratchDir() {
    std::error_code ec;
    if (!path_.empty()) std::filesystem::remove_all(path_, ec);
  }
  ScratchDir(const ScratchDir&) = delete;
  ScratchDir& operator=(const ScratchDir&) = delete;

  bool ok() const { return !path_.empty(); }
  const std::string& path() const { return path_; }
  std::string File(const std::string& name) const { return path_ + "/" + name; }

 private:
  std::string path_;
};

}  // namespace simarray::testing
