#pragma once
// Reader: typed values out of a TOML table for the config (config.cc) and its parts
// (config_link.cc), remembering the first error with its key.

#include <toml++/toml.h>

#include <limits>
#include <optional>
#include <set>
#include <string>
#include <string_view>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "simarray/base/size.h"

namespace simarray::daemon {

// Reads typed values out of a TOML table, remembering the first error with its key.
class Reader {
 public:
  Reader(const std::string& path, const toml::table& root) : path_(path), root_(root) {}

  absl::Status status() const { return status_; }
  void Fail(const std::string& key, const std::string& reason) {
    if (status_.ok()) {
      status_ =
          absl::InvalidArgumentError(absl::StrCat("config ", path_, ": key ", key, ": ", reason));
    }
  }

  void String(const std::string& key, std::string* out,
              const toml::node_view<const toml::node>& node) {
    if (!node) return;
    if (const auto* v = node.as_string()) {
      *out = v->get();
    } else {
      Fail(key, "expected a string");
    }
  }
  void String(const std::string& key, std::string* out) { String(key, out, Named(key)); }

  void Bool(const std::string& key, bool* out) {
    auto node = Named(key);
    if (!node) return;
    if (const auto* v = node.as_boolean()) {
      *out = v->get();
    } else {
      Fail(key, "expected true or false");
    }
  }

  // A size: an integer number of bytes or a string like "64K".
  template <typename T>
  void Size(const std::string& key, T* out, const toml::node_view<const toml::node>& node) {
    if (!node) return;
    uint64_t value = 0;
    if (const auto* i = node.as_integer()) {
      if (i->get() < 0) return Fail(key, absl::StrCat("expected a size, got ", i->get()));
      value = static_cast<uint64_t>(i->get());
    } else if (const auto* s = node.as_string()) {
      auto parsed = ParseSize(s->get());
      if (!parsed.ok()) return Fail(key, std::string(parsed.status().message()));
      value = *parsed;
    } else {
      return Fail(key, "expected a size (bytes, or a string like \"64K\")");
    }
    if (value > std::numeric_limits<T>::max()) {
      return Fail(key, absl::StrCat("expected at most ", std::numeric_limits<T>::max(),
                                    " bytes, got ", value));
    }
    *out = static_cast<T>(value);
  }
  template <typename T>
  void Size(const std::string& key, T* out) {
    Size(key, out, Named(key));
  }

  template <typename T>
  void Integer(const std::string& key, T* out) {
    Integer(key, out, Named(key));
  }
  template <typename T>
  void Integer(const std::string& key, T* out, const toml::node_view<const toml::node>& node) {
    if (!node) return;
    // as_integer, not value<int64_t>: toml++ converts a float with an unchecked cast
    // (undefined behaviour for 1e20; found by fuzz_config).
    const auto* integer = node.as_integer();
    const std::optional<int64_t> i =
        integer != nullptr ? std::optional<int64_t>(integer->get()) : std::nullopt;
    if (!i || *i < 0) return Fail(key, "expected a non-negative integer");
    if (static_cast<uint64_t>(*i) > std::numeric_limits<T>::max()) {
      return Fail(key,
                  absl::StrCat("expected at most ", std::numeric_limits<T>::max(), ", got ", *i));
    }
    *out = static_cast<T>(*i);
  }

  // The node at `key` of the root table, for a reader of its own (ReadPacing, ...): the key
  // and everything under it count as read for UnknownKeys.
  toml::node_view<const toml::node> Named(const std::string& key) {
    read_.insert(key);
    return root_.at_path(key);
  }
  // Fails on the first key of the root table (outside the arrays of tables in `arrays`,
  // which their readers check) that no read asked for by name: a misspelt "cache.sise" or a
  // key that landed in the wrong table must not be silently ignored.
  void FailUnknownKeys(std::initializer_list<std::string_view> arrays) { Walk(root_, "", arrays); }

 private:
  void Walk(const toml::table& table, const std::string& prefix,
            std::initializer_list<std::string_view> arrays) {
    for (const auto& [k, v] : table) {
      const std::string key = prefix + std::string(k.str());
      if (read_.count(key) != 0) continue;
      bool array = false;
      for (std::string_view a : arrays) array = array || key == a;
      if (array) continue;
      if (const toml::table* sub = v.as_table()) {
        Walk(*sub, key + ".", arrays);
      } else {
        Fail(key, "unknown key (the README's configuration table lists every key)");
      }
    }
  }

  std::set<std::string> read_;
  const std::string path_;
  const toml::table& root_;
  absl::Status status_;
};

}  // namespace simarray::daemon
