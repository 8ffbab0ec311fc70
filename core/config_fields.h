// Typed reads of a config.json object: every mismatch is an InputError naming the file and field.
// Shared by core/config.cpp and the family files (core/families/).
#pragma once
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "core/error.h"

namespace gqa {

constexpr int64_t kMaxConfigCount = 4096;  // layers, heads

class ConfigFields {
 public:
  // `prefix` names nested objects in errors ("rope_parameters." + "factor").
  ConfigFields(const nlohmann::json& j, const std::string& path, std::string prefix = "")
      : j_(j), path_(path), prefix_(std::move(prefix)) {}
  bool has(const char* key) const { return j_.contains(key) && !j_[key].is_null(); }
  int64_t integer(const char* key) const {
    if (!has(key)) throw InputError(path_, prefix_ + key, "missing (expected an integer)");
    return integer_of(j_[key], key);
  }
  int64_t integer_or(const char* key, int64_t dflt) const { return has(key) ? integer(key) : dflt; }
  int64_t positive(const char* key) const {
    int64_t v = integer(key);
    if (v <= 0 || v >= (int64_t(1) << 31))
      throw InputError(path_, prefix_ + key, "expected a positive integer, got " + std::to_string(v));
    return v;
  }
  // Layer and head counts: each sizes per-layer tables here, so a lying config.json could ask for
  // billions of entries. The limit is gqa train's too (core/init_model.cpp).
  int64_t count(const char* key) const {
    int64_t v = integer(key);
    if (v <= 0 || v > kMaxConfigCount)
      throw InputError(
          path_, prefix_ + key,
          "expected a positive integer up to " + std::to_string(kMaxConfigCount) + ", got " + std::to_string(v));
    return v;
  }
  double number_or(const char* key, double dflt) const {
    if (!has(key)) return dflt;
    if (!j_[key].is_number()) throw InputError(path_, prefix_ + key, "expected a number");
    return j_[key].get<double>();
  }
  bool boolean_or(const char* key, bool dflt) const {
    if (!has(key)) return dflt;
    if (!j_[key].is_boolean()) throw InputError(path_, prefix_ + key, "expected true or false");
    return j_[key].get<bool>();
  }
  std::string string_or(const char* key, const std::string& dflt) const {
    if (!has(key)) return dflt;
    if (!j_[key].is_string()) throw InputError(path_, prefix_ + key, "expected a string");
    return j_[key].get<std::string>();
  }
  std::optional<int64_t> optional_id(const char* key) const {
    if (!has(key)) return std::nullopt;
    if (j_[key].is_array()) {  // e.g. Llama-3 lists several EOS ids: keep the first
      if (j_[key].empty()) return std::nullopt;
      return integer_of(j_[key][0], key);
    }
    return integer_of(j_[key], key);
  }
  int64_t integer_of(const nlohmann::json& v, const std::string& key) const {
    if (!v.is_number_integer()) throw InputError(path_, prefix_ + key, "expected an integer");
    return v.get<int64_t>();
  }
  std::vector<int> int_list(const nlohmann::json& v, const std::string& key) const {
    if (!v.is_array()) throw InputError(path_, prefix_ + key, "expected a list of integers");
    std::vector<int> out;
    for (const auto& e : v) {
      int64_t x = integer_of(e, key);
      if (x < 0 || x > 1 << 20) throw InputError(path_, prefix_ + key, "entry " + std::to_string(x) + " out of range");
      out.push_back(int(x));
    }
    return out;
  }
  const nlohmann::json& at(const char* key) const { return j_.at(key); }
  const nlohmann::json& object() const { return j_; }
  const std::string& path() const { return path_; }

 private:
  const nlohmann::json& j_;
  std::string path_;
  std::string prefix_;
};

}  // namespace gqa
