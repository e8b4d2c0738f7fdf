// LoadSecrets (config.h): the admin token and the peer link's secret and TLS files.
#include <filesystem>
#include <fstream>
#include <sstream>

#include "absl/strings/str_cat.h"
#include "daemon/config.h"
#include "simarray/base/secret.h"
#include "simarray/base/state_file.h"

namespace simarray::daemon {

namespace {

std::string InDataDir(const DaemonConfig& c, const std::string& file) {
  return std::filesystem::path(c.data_dir) / file;  // an absolute `file` stays as it is
}

// Writes a fresh random admin token to `path`, readable by its owner only (mode 0600 from
// its creation), like a state file (docs/reliability.md, "State files"): a crash leaves no
// empty or partial token behind.
absl::Status CreateToken(const std::string& path) {
  std::error_code ec;
  std::filesystem::create_directories(std::filesystem::path(path).parent_path(), ec);
  if (absl::Status s = WriteFileAtomically(path, Hex(RandomBytes(32)) + "\n", 0600); !s.ok()) {
    return absl::PermissionDeniedError(absl::StrCat("cannot create the token: ", s.message()));
  }
  return absl::OkStatus();
}

}  // namespace

absl::Status LoadSecrets(DaemonConfig& c, std::vector<std::string>* warnings) {
  auto fail = [&](const char* key, const absl::Status& s) {
    return absl::InvalidArgumentError(
        absl::StrCat("config ", c.path, ": key ", key, ": ", std::string(s.message())));
  };
  auto read = [&](const char* key, const std::string& path, std::string* out) {
    bool loose = false;
    auto secret = ReadSecretFile(path, &loose);
    if (!secret.ok()) return fail(key, secret.status());
    if (loose && warnings != nullptr) {
      warnings->push_back(absl::StrCat(key, " ", path,
                                       " may be read by others than its owner "
                                       "(chmod 600 it)"));
    }
    *out = *std::move(secret);
    return absl::OkStatus();
  };
  if (!c.admin_token_file.empty()) {
    c.admin_token_file = InDataDir(c, c.admin_token_file);
    if (!std::filesystem::exists(c.admin_token_file)) {
      if (absl::Status s = CreateToken(c.admin_token_file); !s.ok()) {
        return fail("admin.token_file", s);
      }
    }
    if (absl::Status s = read("admin.token_file", c.admin_token_file, &c.admin_token); !s.ok()) {
      return s;
    }
  }
  if (!c.peer_tls_ca_file.empty()) {
    const std::pair<const char*, std::string*> pems[] = {
        {"peer.tls.cert_file", &c.peer_tls_cert_file},
        {"peer.tls.key_file", &c.peer_tls_key_file},
        {"peer.tls.ca_file", &c.peer_tls_ca_file}};
    std::string* out[] = {&c.peer_tls.cert, &c.peer_tls.key, &c.peer_tls.ca};
    for (int i = 0; i < 3; ++i) {
      *pems[i].second = InDataDir(c, *pems[i].second);
      std::ifstream in(*pems[i].second, std::ios::binary);
      std::stringstream text;
      text << in.rdbuf();
      *out[i] = text.str();
      if (!in || out[i]->find("-----BEGIN ") == std::string::npos) {
        return fail(pems[i].first, absl::InvalidArgumentError(
                                       absl::StrCat(*pems[i].second, ": expected a PEM file")));
      }
    }
  }
  if (!c.peer_secret_file.empty()) {
    c.peer_secret_file = InDataDir(c, c.peer_secret_file);
    if (!std::filesystem::exists(c.peer_secret_file)) {
      return fail("peer.secret_file",
                  absl::NotFoundError(
                      absl::StrCat(c.peer_secret_file,
                                   " does not exist; both daemons need the same secret, e.g. "
                                   "`openssl rand -hex 32` written to this file on each side")));
    }
    return read("peer.secret_file", c.peer_secret_file, &c.peer_secret);
  }
  return absl::OkStatus();
}

}  // namespace simarray::daemon
