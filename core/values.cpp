#include "core/values.h"

#include <sstream>
#include <stdexcept>

#include "core/error.h"

namespace gqa {

std::vector<int> parse_group_map(const std::string& text, int n_q, const std::string& what) {
  std::vector<int> map;
  std::stringstream ss(text);
  std::string item;
  while (std::getline(ss, item, ',')) {
    size_t used = 0;
    long v = -1;
    try {
      v = std::stol(item, &used);
    } catch (...) {
      used = 0;
    }
    if (used == 0 || used != item.size() || v < 0 || v > 1 << 20)
      throw InputError(what, "", "'" + item + "' is not a KV head index (expected e.g. 0,0,0,1,1,1,2,2)");
    map.push_back(int(v));
  }
  validate_group_map(map, n_q, what, "");
  return map;
}

std::set<int64_t> parse_layers(const std::string& text, int64_t n_layers, const std::string& what) {
  std::set<int64_t> out;
  std::stringstream ss(text);
  std::string item;
  while (std::getline(ss, item, ',')) {
    const auto dash = item.find('-');
    try {
      size_t used = 0;
      const int64_t a = std::stoll(item.substr(0, dash), &used);
      if (used != (dash == std::string::npos ? item.size() : dash)) throw std::invalid_argument("trailing");
      int64_t b = a;
      if (dash != std::string::npos) {
        b = std::stoll(item.substr(dash + 1), &used);
        if (used != item.size() - dash - 1) throw std::invalid_argument("trailing");
      }
      if (a < 0 || b < a || b >= n_layers) throw std::out_of_range("range");
      for (int64_t l = a; l <= b; ++l) out.insert(l);
    } catch (const std::exception&) {
      throw InputError(what, "",
                       "'" + item + "' is not a layer or range below " + std::to_string(n_layers) + " (e.g. 0-3,6)");
    }
  }
  if (out.empty()) throw InputError(what, "", "selects no layer");
  return out;
}

std::set<AttentionModule> parse_modules(const std::string& text) {
  std::set<AttentionModule> out;
  std::stringstream ss(text);
  std::string item;
  while (std::getline(ss, item, ',')) {
    if (item == "decoder-self" || item == "decoder_self")
      out.insert(AttentionModule::DecoderSelf);
    else if (item == "decoder-cross" || item == "decoder_cross")
      out.insert(AttentionModule::DecoderCross);
    else if (item == "encoder-self" || item == "encoder_self")
      out.insert(AttentionModule::EncoderSelf);
    else
      throw InputError(
          "--modules", "",
          "unknown module '" + item + "' (expected decoder-self, decoder-cross, encoder-self, or the same with '_')");
  }
  return out;
}

}  // namespace gqa
