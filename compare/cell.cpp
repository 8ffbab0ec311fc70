// Cell results as JSON: the files a resumed comparison reloads, and the cells of results.json.
#include "compare/cell.h"

#include <algorithm>
#include <cmath>
#include <limits>

#include "compare/metrics.h"
#include "core/config.h"  // read_json_file
#include "core/error.h"
#include "core/files.h"

namespace gqa::report {
using json = nlohmann::json;

namespace {

bool same_number(double a, double b) { return a == b || (std::isnan(a) && std::isnan(b)); }

bool same_optional(const std::optional<double>& a, const std::optional<double>& b) {
  return a.has_value() == b.has_value() && (!a || same_number(*a, *b));
}

json number_to_json(double v) {
  if (std::isnan(v)) return "NaN";
  if (std::isinf(v)) return v > 0 ? "Infinity" : "-Infinity";
  return v;
}

std::string describe(const json& j) {
  std::string text = j.dump();
  return text.size() > 40 ? text.substr(0, 37) + "..." : text;
}

double number_from_json(const json& j, const std::string& source, const std::string& field) {
  if (j.is_number()) return j.get<double>();
  if (j.is_string()) {
    const std::string& s = j.get_ref<const std::string&>();
    if (s == "NaN") return std::numeric_limits<double>::quiet_NaN();
    if (s == "Infinity") return std::numeric_limits<double>::infinity();
    if (s == "-Infinity") return -std::numeric_limits<double>::infinity();
  }
  throw InputError(source, field, "expected a number (or \"NaN\", \"Infinity\", \"-Infinity\"), got " + describe(j));
}

int64_t integer_from_json(const json& j, const std::string& source, const std::string& field, int64_t minimum) {
  const bool fits = j.is_number_integer() &&
                    (!j.is_number_unsigned() || j.get<uint64_t>() <= uint64_t(std::numeric_limits<int64_t>::max()));
  if (!fits) throw InputError(source, field, "expected an integer, got " + describe(j));
  const int64_t value = j.get<int64_t>();
  if (value < minimum)
    throw InputError(source, field, "expected at least " + std::to_string(minimum) + ", got " + std::to_string(value));
  return value;
}

// The member `name` of object `j`, or nullptr when absent or null (both mean "not measured").
const json* member(const json& j, const char* name) {
  const auto it = j.find(name);
  return it == j.end() || it->is_null() ? nullptr : &*it;
}

const json& object_member(const json& j, const char* name, const std::string& source, const std::string& field) {
  const json* value = member(j, name);
  if (!value || !value->is_object())
    throw InputError(source, field, value ? "expected an object, got " + describe(*value) : "missing");
  return *value;
}

Quality quality_from_json(const json& j, const std::string& source, const std::string& field) {
  if (!j.is_object()) throw InputError(source, field, "expected an object, got " + describe(j));
  Quality quality;
  for (const Metric& metric : metrics())
    if (const json* value = member(j, metric.key))
      quality.*metric.member = number_from_json(*value, source, field + "." + metric.key);
  return quality;
}

json curve_to_json(const std::vector<LossPoint>& curve) {
  json array = json::array();
  for (const LossPoint& point : curve) array.push_back({point.step, number_to_json(point.loss)});
  return array;
}

std::vector<LossPoint> curve_from_json(const json& j, const std::string& source, const std::string& field) {
  if (!j.is_array()) throw InputError(source, field, "expected an array of [step, loss], got " + describe(j));
  std::vector<LossPoint> curve;
  for (size_t i = 0; i < j.size(); ++i) {
    const std::string where = field + "[" + std::to_string(i) + "]";
    if (!j[i].is_array() || j[i].size() != 2)
      throw InputError(source, where, "expected [step, loss], got " + describe(j[i]));
    curve.push_back(
        {integer_from_json(j[i][0], source, where + ".step", 0), number_from_json(j[i][1], source, where + ".loss")});
  }
  return curve;
}

int64_t batch_from_key(const std::string& key, const std::string& source, const std::string& field) {
  size_t used = 0;
  long long batch = 0;
  try {
    batch = std::stoll(key, &used);
  } catch (const std::exception&) {
    used = 0;
  }
  if (used != key.size() || key.empty() || batch < 1)
    throw InputError(source, field, "expected a batch size (a positive integer) as key, got \"" + key + "\"");
  return batch;
}

// The cell's maps keyed by batch size, as JSON objects of the same key.
struct ByBatch {
  const char* key;
  std::map<int64_t, double> CellResult::*member;
};

const std::vector<ByBatch>& by_batch_fields() {
  static const std::vector<ByBatch> list = {{"decode_ms_per_token", &CellResult::decode_ms_per_token},
                                            {"decode_spread", &CellResult::decode_spread},
                                            {"paired_mha_ms_per_token", &CellResult::paired_mha_ms_per_token},
                                            {"paired_mha_spread", &CellResult::paired_mha_spread}};
  return list;
}

// The cell's optional non-negative integers, as JSON integers of the same key.
struct Count {
  const char* key;
  std::optional<int64_t> CellResult::*member;
};

const std::vector<Count>& count_fields() {
  static const std::vector<Count> list = {{"kv_bytes_per_token", &CellResult::kv_bytes_per_token},
                                          {"latent_rank", &CellResult::latent_rank},
                                          {"latent_rope_dims", &CellResult::latent_rope_dims},
                                          {"parameters", &CellResult::parameters}};
  return list;
}

json by_batch_to_json(const std::map<int64_t, double>& values) {
  json object = json::object();
  for (const auto& [batch, v] : values) object[std::to_string(batch)] = number_to_json(v);
  return object;
}

// Indented JSON, except that arrays of numbers (and of number arrays, like a loss curve's
// [step, loss] pairs) stay on one line: one number per line would make a cell file thousands of
// lines long.
void append_json(std::string& out, const json& j, int depth) {
  // Numbers, and the strings that stand for non-finite ones ("NaN") inside number arrays.
  const auto scalar = [](const json& e) { return e.is_number() || e.is_string() || e.is_null(); };
  const auto number_or_tuple = [&](const json& e) {
    return e.is_number() || e.is_null() || (e.is_array() && std::all_of(e.begin(), e.end(), scalar));
  };
  const bool one_line =
      j.empty() || j.is_primitive() || (j.is_array() && std::all_of(j.begin(), j.end(), number_or_tuple));
  if (one_line) {
    out += j.dump();
    return;
  }
  const std::string indent(2 * size_t(depth + 1), ' ');
  out += j.is_object() ? "{\n" : "[\n";
  size_t i = 0;
  for (auto it = j.begin(); it != j.end(); ++it, ++i) {
    out += indent;
    if (j.is_object()) out += json(it.key()).dump() + ": ";
    append_json(out, it.value(), depth + 1);
    out += i + 1 < j.size() ? ",\n" : "\n";
  }
  out += std::string(2 * size_t(depth), ' ') + (j.is_object() ? "}" : "]");
}

}  // namespace

std::string pretty_json(const json& j) {
  std::string out;
  append_json(out, j, 0);
  return out + "\n";
}

bool Quality::operator==(const Quality& other) const {
  return std::all_of(metrics().begin(), metrics().end(),
                     [&](const Metric& m) { return same_optional(this->*m.member, other.*m.member); });
}

bool CellResult::operator==(const CellResult& other) const {
  const auto same_curve = [](const std::vector<LossPoint>& a, const std::vector<LossPoint>& b) {
    return std::equal(a.begin(), a.end(), b.begin(), b.end(), [](const LossPoint& x, const LossPoint& y) {
      return x.step == y.step && same_number(x.loss, y.loss);
    });
  };
  const auto same_times = [](const std::map<int64_t, double>& a, const std::map<int64_t, double>& b) {
    return std::equal(a.begin(), a.end(), b.begin(), b.end(), [](const auto& x, const auto& y) {
      return x.first == y.first && same_number(x.second, y.second);
    });
  };
  return strategy == other.strategy && kv_heads == other.kv_heads && is_baseline == other.is_baseline &&
         step0 == other.step0 && uptrained == other.uptrained &&
         same_times(decode_ms_per_token, other.decode_ms_per_token) && same_times(decode_spread, other.decode_spread) &&
         same_times(paired_mha_ms_per_token, other.paired_mha_ms_per_token) &&
         same_times(paired_mha_spread, other.paired_mha_spread) && noisy_batches == other.noisy_batches &&
         kv_bytes_per_token == other.kv_bytes_per_token && latent_rank == other.latent_rank &&
         latent_rope_dims == other.latent_rope_dims && parameters == other.parameters &&
         same_curve(train_loss, other.train_loss) && same_curve(valid_loss, other.valid_loss) &&
         same_optional(wall_seconds, other.wall_seconds);
}

void to_json(json& j, const Quality& quality) {
  j = json::object();
  for (const Metric& metric : metrics())
    if (const std::optional<double>& v = quality.*metric.member) j[metric.key] = number_to_json(*v);
}

void to_json(json& j, const CellResult& cell) {
  j = json::object();
  j["strategy"] = cell.strategy;
  j["kv_heads"] = cell.kv_heads;
  j["is_baseline"] = cell.is_baseline;
  for (const Phase& phase : phases()) j[phase.key] = cell.*phase.member;
  for (const ByBatch& field : by_batch_fields())
    if (!(cell.*field.member).empty()) j[field.key] = by_batch_to_json(cell.*field.member);
  if (!cell.noisy_batches.empty()) j["noisy_batches"] = cell.noisy_batches;
  for (const Count& field : count_fields())
    if (const std::optional<int64_t>& v = cell.*field.member) j[field.key] = *v;
  if (!cell.train_loss.empty()) j["train_loss"] = curve_to_json(cell.train_loss);
  if (!cell.valid_loss.empty()) j["valid_loss"] = curve_to_json(cell.valid_loss);
  if (cell.wall_seconds) j["wall_seconds"] = number_to_json(*cell.wall_seconds);
}

CellResult cell_from_json(const json& j, const std::string& source) {
  if (!j.is_object())
    throw InputError(source, "", "expected a JSON object (one comparison result), got " + describe(j));
  CellResult cell;
  const json* strategy = member(j, "strategy");
  if (!strategy || !strategy->is_string() || strategy->get_ref<const std::string&>().empty())
    throw InputError(source, "strategy",
                     strategy ? "expected a non-empty string, got " + describe(*strategy) : "missing");
  cell.strategy = strategy->get<std::string>();
  const json* kv_heads = member(j, "kv_heads");
  if (!kv_heads) throw InputError(source, "kv_heads", "missing");
  cell.kv_heads = integer_from_json(*kv_heads, source, "kv_heads", 1);
  if (const json* baseline = member(j, "is_baseline")) {
    if (!baseline->is_boolean())
      throw InputError(source, "is_baseline", "expected true or false, got " + describe(*baseline));
    cell.is_baseline = baseline->get<bool>();
  }
  for (const Phase& phase : phases())
    if (const json* quality = member(j, phase.key)) cell.*phase.member = quality_from_json(*quality, source, phase.key);
  for (const ByBatch& field : by_batch_fields())
    if (member(j, field.key)) {
      const json& values = object_member(j, field.key, source, field.key);
      for (const auto& [key, value] : values.items()) {
        const std::string where = std::string(field.key) + "." + key;
        (cell.*field.member)[batch_from_key(key, source, where)] = number_from_json(value, source, where);
      }
    }
  if (const json* noisy = member(j, "noisy_batches")) {
    if (!noisy->is_array())
      throw InputError(source, "noisy_batches", "expected an array of batch sizes, got " + describe(*noisy));
    for (size_t i = 0; i < noisy->size(); ++i)
      cell.noisy_batches.insert(integer_from_json((*noisy)[i], source, "noisy_batches[" + std::to_string(i) + "]", 1));
  }
  for (const Count& field : count_fields())
    if (const json* v = member(j, field.key)) cell.*field.member = integer_from_json(*v, source, field.key, 0);
  if (const json* v = member(j, "train_loss")) cell.train_loss = curve_from_json(*v, source, "train_loss");
  if (const json* v = member(j, "valid_loss")) cell.valid_loss = curve_from_json(*v, source, "valid_loss");
  if (const json* v = member(j, "wall_seconds")) cell.wall_seconds = number_from_json(*v, source, "wall_seconds");
  return cell;
}

void from_json(const json& j, CellResult& cell) { cell = cell_from_json(j, ""); }

void save_cell(const CellResult& cell, const std::string& path) {
  const std::string reason = files::write_file_atomically(path, pretty_json(json(cell)));
  if (!reason.empty()) throw InputError(path, "", reason);
}

CellResult load_cell(const std::string& path) { return cell_from_json(read_json_file(path), path); }

}  // namespace gqa::report
