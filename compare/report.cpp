#include "compare/report.h"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <functional>
#include <limits>
#include <set>
#include <sstream>
#include <stdexcept>

#include "core/config.h"  // read_json_file
#include "core/error.h"
#include "core/files.h"
#include "core/format.h"

namespace gqa::report {
using json = nlohmann::json;

namespace {

// ---------------------------------------------------------------------------------------------
// Numbers and their text

bool same_number(double a, double b) { return a == b || (std::isnan(a) && std::isnan(b)); }

bool same_optional(const std::optional<double>& a, const std::optional<double>& b) {
  return a.has_value() == b.has_value() && (!a || same_number(*a, *b));
}

std::string format_perplexity(double v) { return format_fixed(v, 2); }
std::string format_three_decimals(double v) { return format_fixed(v, 3); }

// Shortest text that reads back as the same double (nlohmann's), or nan/inf/-inf.
std::string csv_number(double v) {
  if (std::isnan(v)) return "nan";
  if (std::isinf(v)) return v > 0 ? "inf" : "-inf";
  return json(v).dump();
}

// ---------------------------------------------------------------------------------------------
// Quality metrics: one list drives the JSON keys, the CSV columns and the table columns.

struct Metric {
  const char* key;    // JSON key, CSV column stem
  const char* label;  // table header
  std::optional<double> Quality::*member;
  std::string (*format)(double);
};

const std::vector<Metric>& metrics() {
  static const std::vector<Metric> list = {
      {"perplexity", "Perplexity", &Quality::perplexity, format_perplexity},
      {"bits_per_byte", "Bits/byte", &Quality::bits_per_byte, format_three_decimals},
      {"rouge1", "ROUGE-1", &Quality::rouge1, format_three_decimals},
      {"rouge2", "ROUGE-2", &Quality::rouge2, format_three_decimals},
      {"rouge_l", "ROUGE-L", &Quality::rouge_l, format_three_decimals},
      {"minimal_pair_accuracy", "Minimal pairs", &Quality::minimal_pair_accuracy, format_percent},
  };
  return list;
}

// The two moments a cell's quality is measured at.
struct Phase {
  const char* key;    // JSON key, CSV column suffix
  const char* label;  // table header suffix, warnings
  Quality CellResult::*member;
};

const std::vector<Phase>& phases() {
  static const std::vector<Phase> list = {{"step0", "step 0", &CellResult::step0},
                                          {"uptrained", "uptrained", &CellResult::uptrained}};
  return list;
}

// ---------------------------------------------------------------------------------------------
// JSON fields

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
  throw InputError(source, field,
                   "expected a number (or \"NaN\", \"Infinity\", \"-Infinity\"), got " + describe(j));
}

int64_t integer_from_json(const json& j, const std::string& source, const std::string& field,
                          int64_t minimum) {
  const bool fits = j.is_number_integer() &&
                    (!j.is_number_unsigned() ||
                     j.get<uint64_t>() <= static_cast<uint64_t>(std::numeric_limits<int64_t>::max()));
  if (!fits) throw InputError(source, field, "expected an integer, got " + describe(j));
  const int64_t value = j.get<int64_t>();
  if (value < minimum)
    throw InputError(source, field,
                     "expected at least " + std::to_string(minimum) + ", got " + std::to_string(value));
  return value;
}

// The member `name` of object `j`, or nullptr when absent or null (both mean "not measured").
const json* member(const json& j, const char* name) {
  const auto it = j.find(name);
  return it == j.end() || it->is_null() ? nullptr : &*it;
}

const json& object_member(const json& j, const char* name, const std::string& source,
                          const std::string& field) {
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
    curve.push_back({integer_from_json(j[i][0], source, where + ".step", 0),
                     number_from_json(j[i][1], source, where + ".loss")});
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
  const std::string indent(2 * static_cast<size_t>(depth + 1), ' ');
  out += j.is_object() ? "{\n" : "[\n";
  size_t i = 0;
  for (auto it = j.begin(); it != j.end(); ++it, ++i) {
    out += indent;
    if (j.is_object()) out += json(it.key()).dump() + ": ";
    append_json(out, it.value(), depth + 1);
    out += i + 1 < j.size() ? ",\n" : "\n";
  }
  out += std::string(2 * static_cast<size_t>(depth), ' ') + (j.is_object() ? "}" : "]");
}

std::string pretty_json(const json& j) {
  std::string out;
  append_json(out, j, 0);
  return out + "\n";
}

// ---------------------------------------------------------------------------------------------
// Files

void write_file_atomically(const std::string& path, const std::string& text) {
  const std::string reason = files::write_file_atomically(path, text);
  if (!reason.empty()) throw InputError(path, "", reason);
}

// ---------------------------------------------------------------------------------------------
// The comparison as the report shows it

std::string cell_name(const CellResult& cell) {
  if (cell.is_baseline) return "MHA baseline";
  return cell.strategy + ", " + std::to_string(cell.kv_heads) + " KV head" + (cell.kv_heads == 1 ? "" : "s");
}

std::string join(const std::vector<std::string>& parts, const std::string& separator) {
  std::string text;
  for (size_t i = 0; i < parts.size(); ++i) text += (i ? separator : "") + parts[i];
  return text;
}

std::optional<double> decode_ms(const CellResult& cell, int64_t batch) {
  const auto it = cell.decode_ms_per_token.find(batch);
  if (it == cell.decode_ms_per_token.end()) return std::nullopt;
  return it->second;
}

struct Plan {
  std::vector<const CellResult*>
      ordered;  // baseline, then strategies by first appearance, KV heads descending
  const CellResult* baseline = nullptr;
  std::vector<std::string> strategies;  // non-baseline, by first appearance
  std::vector<int64_t> kv_counts;       // non-baseline, descending
  std::vector<int64_t> batches;         // every batch any cell measured, ascending
  int64_t speed_batch = 0;              // the chart's batch; 0 when no cell measured decode speed
  bool x_is_speedup = false;            // the baseline measured speed_batch, so speedups exist

  size_t strategy_index(const std::string& strategy) const {
    return static_cast<size_t>(std::find(strategies.begin(), strategies.end(), strategy) -
                               strategies.begin());
  }
  size_t kv_index(int64_t kv_heads) const {
    return static_cast<size_t>(std::find(kv_counts.begin(), kv_counts.end(), kv_heads) - kv_counts.begin());
  }
};

Plan make_plan(const std::vector<CellResult>& cells, const ReportOptions& options) {
  Plan plan;
  std::set<std::pair<std::string, int64_t>> seen;
  std::set<int64_t> kv_counts, batches;
  for (const CellResult& cell : cells) {
    if (cell.is_baseline) {
      if (plan.baseline)
        throw InputError("", "cells", "two MHA baselines among the results (one is expected)");
      plan.baseline = &cell;
    } else {
      if (!seen.insert({cell.strategy, cell.kv_heads}).second)
        throw InputError(
            "", "cells",
            "two results for " + cell_name(cell) + " (one per strategy and KV-head count is expected)");
      if (std::find(plan.strategies.begin(), plan.strategies.end(), cell.strategy) == plan.strategies.end())
        plan.strategies.push_back(cell.strategy);
      kv_counts.insert(cell.kv_heads);
    }
    for (const auto& [batch, ms] : cell.decode_ms_per_token) batches.insert(batch);
  }
  plan.kv_counts.assign(kv_counts.rbegin(), kv_counts.rend());
  plan.batches.assign(batches.begin(), batches.end());

  if (plan.baseline) plan.ordered.push_back(plan.baseline);
  for (const std::string& strategy : plan.strategies)
    for (int64_t kv_heads : plan.kv_counts)
      for (const CellResult& cell : cells)
        if (!cell.is_baseline && cell.strategy == strategy && cell.kv_heads == kv_heads)
          plan.ordered.push_back(&cell);

  if (options.speed_batch) {
    if (!batches.count(*options.speed_batch)) {
      std::vector<std::string> measured;
      for (int64_t b : plan.batches) measured.push_back(std::to_string(b));
      throw InputError(
          "", "speed_batch",
          "no result has a decode time at batch " + std::to_string(*options.speed_batch) +
              (measured.empty() ? " (none has any)" : " (measured: " + join(measured, ", ") + ")"));
    }
    plan.speed_batch = *options.speed_batch;
  } else if (plan.baseline && !plan.baseline->decode_ms_per_token.empty()) {
    plan.speed_batch = plan.baseline->decode_ms_per_token.rbegin()->first;  // GQA's gain grows with batch
  } else if (!plan.batches.empty()) {
    plan.speed_batch = plan.batches.back();
  }
  const std::optional<double> baseline_ms =
      plan.baseline ? decode_ms(*plan.baseline, plan.speed_batch) : std::nullopt;
  plan.x_is_speedup = baseline_ms && std::isfinite(*baseline_ms) && *baseline_ms > 0;
  return plan;
}

// MHA's decode time over the cell's, at the same batch; only from finite positive times.
std::optional<double> speedup(const Plan& plan, const CellResult& cell, int64_t batch) {
  if (!plan.baseline) return std::nullopt;
  const std::optional<double> base = decode_ms(*plan.baseline, batch), own = decode_ms(cell, batch);
  if (!base || !own || !std::isfinite(*base) || !std::isfinite(*own) || *base <= 0 || *own <= 0)
    return std::nullopt;
  return *base / *own;
}

// The chart's quality: perplexity after uptraining. The baseline is never converted, so when it
// was not uptrained its step-0 perplexity is its final quality.
std::optional<double> plotted_perplexity(const CellResult& cell) {
  if (cell.uptrained.perplexity || !cell.is_baseline) return cell.uptrained.perplexity;
  return cell.step0.perplexity;
}

struct PlotPoint {
  const CellResult* cell;
  double x, y;
};

// The quality-vs-speed points; `skipped` (optional) collects, per reason, the cells left out.
std::vector<PlotPoint> quality_points(const Plan& plan,
                                      std::map<std::string, std::vector<std::string>>* skipped) {
  std::vector<PlotPoint> points;
  const std::string batch = std::to_string(plan.speed_batch);
  for (const CellResult* cell : plan.ordered) {
    const std::optional<double> y = plotted_perplexity(*cell);
    const std::optional<double> ms = decode_ms(*cell, plan.speed_batch);
    // Non-finite values have a warning of their own (non_finite_fields), so only other reasons
    // are collected here.
    if ((y && !std::isfinite(*y)) || (ms && !std::isfinite(*ms))) continue;
    std::string why_not;
    if (!y)
      why_not = "no perplexity after uptraining";
    else if (!ms)
      why_not = plan.speed_batch ? "no decode time at batch " + batch : "no decode time measured";
    else if (*ms <= 0)
      why_not = "decode time at batch " + batch + " is not positive";
    if (!why_not.empty()) {
      if (skipped) (*skipped)[why_not].push_back(cell_name(*cell));
      continue;
    }
    const double x = plan.x_is_speedup ? *speedup(plan, *cell, plan.speed_batch) : *ms;
    points.push_back({cell, x, *y});
  }
  return points;
}

std::vector<std::string> non_finite_fields(const CellResult& cell) {
  std::vector<std::string> fields;
  for (const Phase& phase : phases())
    for (const Metric& metric : metrics()) {
      const std::optional<double>& v = (cell.*phase.member).*metric.member;
      if (v && !std::isfinite(*v))
        fields.push_back(std::string(metric.label) + " (" + phase.label + ") " + non_finite_text(*v));
    }
  for (const auto& [batch, ms] : cell.decode_ms_per_token)
    if (!std::isfinite(ms))
      fields.push_back("decode time at batch " + std::to_string(batch) + " " + non_finite_text(ms));
  if (cell.wall_seconds && !std::isfinite(*cell.wall_seconds))
    fields.push_back("wall time " + non_finite_text(*cell.wall_seconds));
  const auto count_curve = [&](const std::vector<LossPoint>& curve, const char* what) {
    const auto bad =
        std::count_if(curve.begin(), curve.end(), [](const LossPoint& p) { return !std::isfinite(p.loss); });
    if (bad)
      fields.push_back(std::string(what) + " at " + std::to_string(bad) + " step" + (bad == 1 ? "" : "s"));
  };
  count_curve(cell.train_loss, "training loss");
  count_curve(cell.valid_loss, "validation loss");
  return fields;
}

std::vector<std::string> warnings_for(const Plan& plan) {
  std::vector<std::string> warnings;
  if (!plan.baseline)
    warnings.push_back(
        "No MHA baseline among the results: no speedups; the chart's x axis is decode time per token.");
  else if (plan.speed_batch && !plan.x_is_speedup)
    warnings.push_back("The MHA baseline has no usable decode time at batch " +
                       std::to_string(plan.speed_batch) + ": the chart's x axis is decode time per token.");
  for (const CellResult* cell : plan.ordered) {
    const std::vector<std::string> fields = non_finite_fields(*cell);
    if (!fields.empty())
      warnings.push_back(cell_name(*cell) + ": non-finite values (" + join(fields, "; ") +
                         ") are shown as such in the tables and left out of the charts.");
  }
  std::map<std::string, std::vector<std::string>> skipped;
  quality_points(plan, &skipped);
  for (const auto& [reason, names] : skipped)
    warnings.push_back("Not in the quality-vs-speed chart (" + reason + "): " + join(names, "; ") + ".");
  return warnings;
}

// ---------------------------------------------------------------------------------------------
// SVG drawing

const char* const kPalette[] = {"#0072B2", "#E69F00", "#009E73", "#D55E00", "#CC79A7",
                                "#56B4E9", "#8C564B", "#BCBD22", "#7F7F7F", "#17BECF"};
const char* const kBaselineColor = "#222222";
const char* const kDashes[] = {"", "7 4", "2 3", "9 3 2 3", "14 4", "4 2 4 6"};

std::string strategy_color(const Plan& plan, const CellResult& cell) {
  if (cell.is_baseline) return kBaselineColor;
  return kPalette[plan.strategy_index(cell.strategy) % std::size(kPalette)];
}

std::string kv_dash(const Plan& plan, const CellResult& cell) {
  if (cell.is_baseline) return "";
  return kDashes[plan.kv_index(cell.kv_heads) % std::size(kDashes)];
}

constexpr double kPi = 3.14159265358979323846;

enum class Shape { kCircle, kSquare, kTriangleUp, kDiamond, kTriangleDown, kStar };
constexpr int kKvShapes = 5;  // every shape but the star, which marks the baseline

Shape kv_shape(const Plan& plan, const CellResult& cell) {
  if (cell.is_baseline) return Shape::kStar;
  return static_cast<Shape>(plan.kv_index(cell.kv_heads) % kKvShapes);
}

std::string coord(double v) {
  std::string text = string_printf("%.1f", v);
  return text == "-0.0" ? "0.0" : text;
}

std::string xml_escape(const std::string& text) {
  std::string out;
  for (char c : text) {
    switch (c) {
      case '&':
        out += "&amp;";
        break;
      case '<':
        out += "&lt;";
        break;
      case '>':
        out += "&gt;";
        break;
      case '"':
        out += "&quot;";
        break;
      case '\'':
        out += "&apos;";
        break;
      default:
        // Control characters are not allowed in XML 1.0 text.
        if (static_cast<unsigned char>(c) >= 0x20 || c == '\t' || c == '\n') out += c;
    }
  }
  return out;
}

// Width of a line of text, estimated (no font metrics here): DejaVu/Helvetica average ~0.6 em.
double text_width(const std::string& text, double font_size) {
  const auto characters = std::count_if(
      text.begin(), text.end(), [](char c) { return (static_cast<unsigned char>(c) & 0xC0) != 0x80; });
  return 0.6 * font_size * static_cast<double>(characters);
}

std::string marker_path(Shape shape, double cx, double cy, double r) {
  const auto p = [](double x, double y) { return coord(x) + "," + coord(y); };
  switch (shape) {
    case Shape::kCircle:
      return "M" + p(cx - r, cy) + " a" + coord(r) + "," + coord(r) + " 0 1,0 " + coord(2 * r) + ",0 a" +
             coord(r) + "," + coord(r) + " 0 1,0 " + coord(-2 * r) + ",0Z";
    case Shape::kSquare: {
      const double s = 0.85 * r;
      return "M" + p(cx - s, cy - s) + " L" + p(cx + s, cy - s) + " L" + p(cx + s, cy + s) + " L" +
             p(cx - s, cy + s) + "Z";
    }
    case Shape::kTriangleUp:
      return "M" + p(cx, cy - 1.2 * r) + " L" + p(cx + 1.1 * r, cy + 0.8 * r) + " L" +
             p(cx - 1.1 * r, cy + 0.8 * r) + "Z";
    case Shape::kTriangleDown:
      return "M" + p(cx, cy + 1.2 * r) + " L" + p(cx + 1.1 * r, cy - 0.8 * r) + " L" +
             p(cx - 1.1 * r, cy - 0.8 * r) + "Z";
    case Shape::kDiamond:
      return "M" + p(cx, cy - 1.25 * r) + " L" + p(cx + 1.05 * r, cy) + " L" + p(cx, cy + 1.25 * r) + " L" +
             p(cx - 1.05 * r, cy) + "Z";
    case Shape::kStar: {
      std::string d;
      for (int i = 0; i < 10; ++i) {
        const double angle = kPi * i / 5 - kPi / 2, radius = i % 2 ? 0.6 * r : 1.5 * r;
        d += (i ? " L" : "M") + p(cx + radius * std::cos(angle), cy + radius * std::sin(angle));
      }
      return d + "Z";
    }
  }
  return "";
}

class Svg {
 public:
  Svg(double width, double height) : width_(width), height_(height) {}
  std::ostringstream& body() { return body_; }

  void text(double x, double y, const std::string& text, double size, const std::string& attributes = "") {
    body_ << "<text x=\"" << coord(x) << "\" y=\"" << coord(y) << "\" font-size=\"" << coord(size) << "\""
          << (attributes.empty() ? "" : " " + attributes) << ">" << xml_escape(text) << "</text>\n";
  }
  void line(double x1, double y1, double x2, double y2, const std::string& attributes) {
    body_ << "<line x1=\"" << coord(x1) << "\" y1=\"" << coord(y1) << "\" x2=\"" << coord(x2) << "\" y2=\""
          << coord(y2) << "\" " << attributes << "/>\n";
  }
  void rect(double x, double y, double w, double h, const std::string& attributes) {
    body_ << "<rect x=\"" << coord(x) << "\" y=\"" << coord(y) << "\" width=\"" << coord(w) << "\" height=\""
          << coord(h) << "\" " << attributes << "/>\n";
  }
  // A path with an optional tooltip (<title>, shown on hover by browsers).
  void path(const std::string& d, const std::string& attributes, const std::string& tooltip = "") {
    body_ << "<path d=\"" << d << "\" " << attributes;
    if (tooltip.empty())
      body_ << "/>\n";
    else
      body_ << "><title>" << xml_escape(tooltip) << "</title></path>\n";
  }

  std::string str() const {
    std::ostringstream out;
    out << "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
        << "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"" << coord(width_) << "\" height=\""
        << coord(height_) << "\" viewBox=\"0 0 " << coord(width_) << " " << coord(height_)
        << "\" font-family=\"DejaVu Sans, Helvetica, Arial, sans-serif\">\n"
        << "<rect x=\"0\" y=\"0\" width=\"100%\" height=\"100%\" fill=\"#ffffff\"/>\n"
        << body_.str() << "</svg>\n";
    return out.str();
  }

 private:
  double width_, height_;
  std::ostringstream body_;
};

// A plot area with its axes' ticks; maps data to canvas coordinates.
struct Frame {
  double left, top, width, height;
  Ticks x, y;
  double px(double v) const { return left + (v - x.lo) / (x.hi - x.lo) * width; }
  double py(double v) const { return top + height - (v - y.lo) / (y.hi - y.lo) * height; }
};

constexpr double kTickFont = 11, kLabelFont = 13, kTitleFont = 17, kSubtitleFont = 12, kLegendFont = 12;

void draw_frame(Svg& svg, const Frame& f, const std::string& x_label, const std::string& y_label) {
  svg.body() << "<g class=\"axes\">\n";
  double widest_y_tick = 0;
  for (double v : f.x.values) {
    const double x = f.px(v);
    svg.line(x, f.top, x, f.top + f.height, "stroke=\"#e6e6e6\" stroke-width=\"1\"");
    svg.line(x, f.top + f.height, x, f.top + f.height + 5, "stroke=\"#444\" stroke-width=\"1\"");
    svg.text(x, f.top + f.height + 18, f.x.label(v), kTickFont, "text-anchor=\"middle\" fill=\"#333\"");
  }
  for (double v : f.y.values) {
    const double y = f.py(v);
    svg.line(f.left, y, f.left + f.width, y, "stroke=\"#e6e6e6\" stroke-width=\"1\"");
    svg.line(f.left - 5, y, f.left, y, "stroke=\"#444\" stroke-width=\"1\"");
    svg.text(f.left - 8, y + 4, f.y.label(v), kTickFont, "text-anchor=\"end\" fill=\"#333\"");
    widest_y_tick = std::max(widest_y_tick, text_width(f.y.label(v), kTickFont));
  }
  svg.rect(f.left, f.top, f.width, f.height, "fill=\"none\" stroke=\"#444\" stroke-width=\"1\"");
  svg.text(f.left + f.width / 2, f.top + f.height + 42, x_label, kLabelFont,
           "text-anchor=\"middle\" fill=\"#222\"");
  if (!y_label.empty()) {
    const double x = f.left - 8 - widest_y_tick - 14;
    const double y = f.top + f.height / 2;
    svg.text(
        x, y, y_label, kLabelFont,
        "text-anchor=\"middle\" fill=\"#222\" transform=\"rotate(-90 " + coord(x) + " " + coord(y) + ")\"");
  }
  svg.body() << "</g>\n";
}

void draw_titles(Svg& svg, double x, const std::string& title, const std::string& subtitle) {
  svg.text(x, 28, title, kTitleFont, "font-weight=\"bold\" fill=\"#111\"");
  if (!subtitle.empty()) svg.text(x, 48, subtitle, kSubtitleFont, "fill=\"#555\"");
}

// A legend entry: a heading when `swatch` is empty, else a sample drawn centred at (x, y).
struct LegendItem {
  std::string label;
  std::function<void(Svg&, double x, double y)> swatch;
};

constexpr double kLegendRow = 20, kLegendSwatch = 34, kLegendPadding = 10;

double legend_width(const std::vector<LegendItem>& items) {
  double widest = 0;
  for (const LegendItem& item : items)
    widest = std::max(widest, text_width(item.label, kLegendFont) + (item.swatch ? kLegendSwatch : 0));
  return widest + 2 * kLegendPadding;
}

double legend_height(const std::vector<LegendItem>& items) {
  return static_cast<double>(items.size()) * kLegendRow + 2 * kLegendPadding - 4;
}

void draw_legend(Svg& svg, double x, double y, const std::vector<LegendItem>& items) {
  svg.body() << "<g class=\"legend\">\n";
  svg.rect(x, y, legend_width(items), legend_height(items),
           "fill=\"#fafafa\" stroke=\"#ccc\" stroke-width=\"1\" rx=\"4\"");
  double row_y = y + kLegendPadding + kLegendRow / 2;
  for (const LegendItem& item : items) {
    if (item.swatch) {
      item.swatch(svg, x + kLegendPadding + kLegendSwatch / 2 - 4, row_y);
      svg.text(x + kLegendPadding + kLegendSwatch, row_y + 4, item.label, kLegendFont, "fill=\"#222\"");
    } else {
      svg.text(x + kLegendPadding, row_y + 4, item.label, kLegendFont, "font-weight=\"bold\" fill=\"#222\"");
    }
    row_y += kLegendRow;
  }
  svg.body() << "</g>\n";
}

// An axis over the data's range plus a margin (so no point sits on the frame), with the nice
// ticks inside it: extending the axis to the outer ticks would waste up to a step at each end.
// nice_ticks counts the outer ticks too, so ask for more until at least 4 fall inside.
Ticks axis_ticks(double lo, double hi, double margin_fraction) {
  const double margin = (hi - lo) * margin_fraction;
  lo -= margin, hi += margin;
  Ticks ticks;
  std::vector<double> inside;
  for (int target = 6; target <= 9 && inside.size() < 4; ++target) {
    ticks = nice_ticks(lo, hi, target);
    inside.clear();
    for (double v : ticks.values)
      if (v >= lo - 1e-9 * ticks.step && v <= hi + 1e-9 * ticks.step) inside.push_back(v);
  }
  if (inside.size() < 2) return ticks;  // a range nice_ticks had to widen (a single value)
  ticks.values = inside;
  ticks.lo = lo, ticks.hi = hi;
  return ticks;
}

std::string subtitle_for(const ReportOptions& options, const std::vector<std::string>& parts) {
  std::vector<std::string> all;
  if (!options.model_name.empty()) all.push_back(options.model_name);
  all.insert(all.end(), parts.begin(), parts.end());
  return join(all, "  \u00b7  ");
}

std::string render_quality_vs_speed(const Plan& plan, const ReportOptions& options) {
  const std::vector<PlotPoint> points = quality_points(plan, nullptr);
  const std::string batch = std::to_string(plan.speed_batch);

  std::vector<LegendItem> legend;
  std::set<std::string> plotted_strategies;
  std::set<int64_t> plotted_kv;
  for (const PlotPoint& point : points)
    if (!point.cell->is_baseline) {
      plotted_strategies.insert(point.cell->strategy);
      plotted_kv.insert(point.cell->kv_heads);
    }
  if (!plotted_strategies.empty()) legend.push_back({"Strategy", nullptr});
  for (size_t i = 0; i < plan.strategies.size(); ++i) {
    if (!plotted_strategies.count(plan.strategies[i])) continue;
    const std::string color = kPalette[i % std::size(kPalette)];
    legend.push_back({plan.strategies[i], [color](Svg& svg, double x, double y) {
                        svg.path(marker_path(Shape::kCircle, x, y, 5.5), "fill=\"" + color + "\"");
                      }});
  }
  if (!plotted_kv.empty()) legend.push_back({"KV heads", nullptr});
  for (size_t i = 0; i < plan.kv_counts.size(); ++i) {
    if (!plotted_kv.count(plan.kv_counts[i])) continue;
    const Shape shape = static_cast<Shape>(i % kKvShapes);
    legend.push_back({std::to_string(plan.kv_counts[i]), [shape](Svg& svg, double x, double y) {
                        svg.path(marker_path(shape, x, y, 5.5), "fill=\"#888\"");
                      }});
  }
  const bool baseline_plotted =
      std::any_of(points.begin(), points.end(), [](const PlotPoint& p) { return p.cell->is_baseline; });
  if (baseline_plotted) {
    legend.push_back({"", nullptr});  // a gap before the baseline
    legend.push_back({"MHA baseline (" + std::to_string(plan.baseline->kv_heads) + " KV heads)",
                      [](Svg& svg, double x, double y) {
                        svg.path(marker_path(Shape::kStar, x, y, 5.5),
                                 std::string("fill=\"") + kBaselineColor + "\"");
                      }});
  }

  const double left = 92, top = 70, plot_width = 580, plot_height = 400;
  const double legend_x = left + plot_width + 24;
  const double width = legend.empty() ? left + plot_width + 30 : legend_x + legend_width(legend) + 16;
  const double height = std::max(top + plot_height + 62, top + legend_height(legend) + 20);
  Svg svg(width, height);

  const bool x_higher_is_better = plan.x_is_speedup;
  const std::string better_corner = x_higher_is_better ? "lower right is better" : "lower left is better";
  draw_titles(svg, left, "Perplexity vs decode speed",
              subtitle_for(options, {plan.speed_batch ? "decode at batch " + batch : "no decode times",
                                     std::to_string(points.size()) + " of " +
                                         std::to_string(plan.ordered.size()) + " results plotted",
                                     better_corner}));

  Frame frame{left, top, plot_width, plot_height, Ticks{}, Ticks{}};  // no ticks unless there is data
  if (!points.empty()) {
    double x_lo = points[0].x, x_hi = x_lo, y_lo = points[0].y, y_hi = y_lo;
    for (const PlotPoint& p : points) {
      x_lo = std::min(x_lo, p.x), x_hi = std::max(x_hi, p.x);
      y_lo = std::min(y_lo, p.y), y_hi = std::max(y_hi, p.y);
    }
    frame.x = axis_ticks(x_lo, x_hi, 0.06);
    frame.y = axis_ticks(y_lo, y_hi, 0.08);
  }
  const std::string x_label =
      x_higher_is_better ? "Decode speedup vs MHA at batch " + batch + " (\u00d7, higher is better \u2192)"
                         : "Decode time per token at batch " + batch + " (ms, \u2190 lower is better)";
  draw_frame(svg, frame, x_label, "Perplexity after uptraining (\u2193 lower is better)");

  if (points.empty()) {
    svg.text(left + plot_width / 2, top + plot_height / 2,
             "No result has both a perplexity after uptraining and a decode time", kLabelFont,
             "text-anchor=\"middle\" fill=\"#888\"");
  }

  // Reference lines through the baseline: where MHA's speed and quality are.
  for (const PlotPoint& p : points) {
    if (!p.cell->is_baseline) continue;
    const std::string style = "stroke=\"#999\" stroke-width=\"1\" stroke-dasharray=\"4 3\"";
    svg.line(frame.px(p.x), top, frame.px(p.x), top + plot_height, style);
    svg.line(left, frame.py(p.y), left + plot_width, frame.py(p.y), style);
    svg.text(frame.px(p.x) + 4, top + 12, "MHA speed", 10, "fill=\"#777\"");
    svg.text(left + plot_width - 4, frame.py(p.y) - 4, "MHA perplexity", 10,
             "text-anchor=\"end\" fill=\"#777\"");
  }

  // A faint line through each strategy's cells, in KV-head order, so a strategy reads as a curve.
  for (const std::string& strategy : plan.strategies) {
    std::string d;
    std::string color;
    for (const PlotPoint& p : points)
      if (!p.cell->is_baseline && p.cell->strategy == strategy) {
        d += (d.empty() ? "M" : " L") + coord(frame.px(p.x)) + "," + coord(frame.py(p.y));
        color = strategy_color(plan, *p.cell);
      }
    if (d.find('L') != std::string::npos)
      svg.path(d, "fill=\"none\" stroke=\"" + color + "\" stroke-width=\"1.5\" stroke-opacity=\"0.45\"");
  }

  // Markers last, the baseline on top.
  std::vector<PlotPoint> drawing_order = points;
  std::stable_partition(drawing_order.begin(), drawing_order.end(),
                        [](const PlotPoint& p) { return !p.cell->is_baseline; });
  for (const PlotPoint& p : drawing_order) {
    const std::string tooltip =
        cell_name(*p.cell) + ": perplexity " + format_perplexity(p.y) + ", " +
        (x_higher_is_better ? format_fixed(p.x, 2) + "\u00d7 MHA speed" : format_significant(p.x) + " ms/token");
    const std::string css_class = p.cell->is_baseline ? "point baseline" : "point";
    svg.path(
        marker_path(kv_shape(plan, *p.cell), frame.px(p.x), frame.py(p.y), p.cell->is_baseline ? 6.5 : 5.5),
        "class=\"" + css_class + "\" fill=\"" + strategy_color(plan, *p.cell) +
            "\" fill-opacity=\"0.92\" stroke=\"#fff\" stroke-width=\"1\"",
        tooltip);
  }
  if (!legend.empty()) draw_legend(svg, legend_x, top, legend);
  return svg.str();
}

// The uptraining curves of one kind (training or validation loss).
struct CurveKind {
  const char* title;
  std::vector<LossPoint> CellResult::*member;
  bool smooth;  // training loss is one batch per step: too noisy to compare 20+ curves raw
};

using Segment = std::vector<LossPoint>;

// The curve sorted by step and cut into runs of finite losses (a gap where a loss was NaN/inf).
std::vector<Segment> finite_segments(std::vector<LossPoint> curve) {
  std::stable_sort(curve.begin(), curve.end(),
                   [](const LossPoint& a, const LossPoint& b) { return a.step < b.step; });
  std::vector<Segment> segments(1);
  for (const LossPoint& point : curve) {
    if (std::isfinite(point.loss))
      segments.back().push_back(point);
    else if (!segments.back().empty())
      segments.emplace_back();
  }
  if (segments.back().empty()) segments.pop_back();
  return segments;
}

// Centred moving average over `window` points (odd), shrinking at the ends.
Segment moving_average(const Segment& segment, size_t window) {
  Segment smoothed = segment;
  const size_t half = window / 2;
  for (size_t i = 0; i < segment.size(); ++i) {
    const size_t from = i >= half ? i - half : 0, to = std::min(segment.size(), i + half + 1);
    double sum = 0;
    for (size_t k = from; k < to; ++k) sum += segment[k].loss;
    smoothed[i].loss = sum / static_cast<double>(to - from);
  }
  return smoothed;
}

struct Panel {
  std::string title;
  std::vector<std::pair<const CellResult*, std::vector<Segment>>>
      curves;  // cells with points, in report order
};

std::vector<Panel> loss_panels(const Plan& plan) {
  const std::vector<CurveKind> kinds = {{"Training loss", &CellResult::train_loss, true},
                                        {"Validation loss", &CellResult::valid_loss, false}};
  std::vector<Panel> panels;
  for (const CurveKind& kind : kinds) {
    Panel panel{kind.title, {}};
    size_t longest = 0;
    for (const CellResult* cell : plan.ordered) {
      std::vector<Segment> segments = finite_segments(cell->*kind.member);
      for (const Segment& segment : segments) longest = std::max(longest, segment.size());
      if (!segments.empty()) panel.curves.push_back({cell, std::move(segments)});
    }
    if (panel.curves.empty()) continue;
    const size_t window = (longest / 20) | 1;  // ~5% of the run, odd so the average is centred
    if (kind.smooth && window >= 3) {
      for (auto& [cell, segments] : panel.curves)
        for (Segment& segment : segments) segment = moving_average(segment, window);
      panel.title += " (moving average of " + std::to_string(window) + " points)";
    }
    panels.push_back(std::move(panel));
  }
  return panels;
}

std::string render_loss_curves(const Plan& plan, const ReportOptions& options) {
  const std::vector<Panel> panels = loss_panels(plan);

  // Axis ranges shared by the panels, so training and validation losses compare at a glance.
  Ticks x_ticks, y_ticks;  // no ticks unless there is data
  std::string clip_note;
  std::vector<LossPoint> all_points;
  for (const Panel& panel : panels)
    for (const auto& [cell, segments] : panel.curves)
      for (const Segment& segment : segments)
        all_points.insert(all_points.end(), segment.begin(), segment.end());
  if (!all_points.empty()) {
    int64_t first_step = all_points[0].step, last_step = first_step;
    double lowest = all_points[0].loss, highest = lowest;
    for (const LossPoint& p : all_points) {
      first_step = std::min(first_step, p.step), last_step = std::max(last_step, p.step);
      lowest = std::min(lowest, p.loss), highest = std::max(highest, p.loss);
    }
    // Right after conversion the loss can sit far above where the runs end up, flattening the
    // part worth comparing into a line: when the first quarter of the run takes over half the
    // height, the axis is cut above the highest loss of the remaining three quarters.
    const double settled_from =
        static_cast<double>(first_step) + 0.25 * static_cast<double>(last_step - first_step);
    double settled_highest = lowest;
    for (const LossPoint& p : all_points)
      if (static_cast<double>(p.step) >= settled_from) settled_highest = std::max(settled_highest, p.loss);
    double top_loss = highest;
    if (settled_highest > lowest && highest - lowest > 2 * (settled_highest - lowest)) {
      top_loss = settled_highest + 0.5 * (settled_highest - lowest);
      clip_note = "y axis cut at " + format_significant(top_loss) + " (the first steps reach " +
                  format_significant(highest) + ")";
    }
    if (last_step == first_step) last_step = first_step + 10;  // one step: an axis of whole steps around it
    x_ticks = nice_ticks(static_cast<double>(first_step), static_cast<double>(last_step), 6);
    y_ticks = axis_ticks(lowest, top_loss, 0.04);
  }

  std::vector<LegendItem> legend;
  std::set<std::string> strategies_drawn;
  std::set<int64_t> kv_drawn;
  bool baseline_drawn = false;
  for (const Panel& panel : panels)
    for (const auto& [cell, segments] : panel.curves) {
      if (cell->is_baseline)
        baseline_drawn = true;
      else
        strategies_drawn.insert(cell->strategy), kv_drawn.insert(cell->kv_heads);
    }
  const auto line_swatch = [](std::string color, std::string dash) {
    return [color, dash](Svg& svg, double x, double y) {
      svg.line(x - 13, y, x + 13, y,
               "stroke=\"" + color + "\" stroke-width=\"2.2\"" +
                   (dash.empty() ? "" : " stroke-dasharray=\"" + dash + "\""));
    };
  };
  if (!strategies_drawn.empty()) legend.push_back({"Strategy", nullptr});
  for (size_t i = 0; i < plan.strategies.size(); ++i)
    if (strategies_drawn.count(plan.strategies[i]))
      legend.push_back({plan.strategies[i], line_swatch(kPalette[i % std::size(kPalette)], "")});
  if (!kv_drawn.empty()) legend.push_back({"KV heads", nullptr});
  for (size_t i = 0; i < plan.kv_counts.size(); ++i)
    if (kv_drawn.count(plan.kv_counts[i]))
      legend.push_back(
          {std::to_string(plan.kv_counts[i]), line_swatch("#777", kDashes[i % std::size(kDashes)])});
  if (baseline_drawn) {
    legend.push_back({"", nullptr});
    legend.push_back({"MHA baseline", line_swatch(kBaselineColor, "")});
  }

  const size_t panel_count = std::max<size_t>(panels.size(), 1);
  const double left = 84, top = 84, panel_gap = 84, plot_height = 400;
  const double plot_width = panel_count == 1 ? 580 : 420;
  const double panels_right =
      left + static_cast<double>(panel_count) * plot_width + static_cast<double>(panel_count - 1) * panel_gap;
  const double legend_x = panels_right + 24;
  const double width = legend.empty() ? panels_right + 30 : legend_x + legend_width(legend) + 16;
  const double height = std::max(top + plot_height + 62, top + legend_height(legend) + 20);
  Svg svg(width, height);
  draw_titles(svg, left, "Uptraining loss",
              subtitle_for(options, clip_note.empty() ? std::vector<std::string>{}
                                                      : std::vector<std::string>{clip_note}));

  if (panels.empty()) {
    draw_frame(svg, Frame{left, top, plot_width, plot_height, x_ticks, y_ticks}, "Uptraining step", "Loss");
    svg.text(left + plot_width / 2, top + plot_height / 2, "No uptraining curves recorded", kLabelFont,
             "text-anchor=\"middle\" fill=\"#888\"");
  }
  const double stroke_width = all_points.size() > 2000 ? 1.3 : 1.7;  // many curves: thinner lines
  for (size_t k = 0; k < panels.size(); ++k) {
    const double panel_left = left + static_cast<double>(k) * (plot_width + panel_gap);
    const Frame frame{panel_left, top, plot_width, plot_height, x_ticks, y_ticks};
    draw_frame(svg, frame, "Uptraining step", k == 0 ? "Cross-entropy loss (\u2193 lower is better)" : "");
    svg.text(panel_left + plot_width / 2, top - 8, panels[k].title, kLabelFont,
             "text-anchor=\"middle\" font-weight=\"bold\" fill=\"#333\"");
    const std::string clip_id = "plot-area-" + std::to_string(k);
    svg.body() << "<clipPath id=\"" << clip_id << "\"><rect x=\"" << coord(panel_left) << "\" y=\""
               << coord(top) << "\" width=\"" << coord(plot_width) << "\" height=\"" << coord(plot_height)
               << "\"/></clipPath>\n"
               << "<g clip-path=\"url(#" << clip_id << ")\">\n";
    // The baseline last, so the reference curve stays on top of the others.
    auto curves = panels[k].curves;
    std::stable_partition(curves.begin(), curves.end(),
                          [](const auto& curve) { return !curve.first->is_baseline; });
    for (const auto& [cell, segments] : curves) {
      const std::string color = strategy_color(plan, *cell), dash = kv_dash(plan, *cell);
      for (const Segment& segment : segments) {
        if (segment.size() == 1) {  // a lone value: a dot, since a one-point line is invisible
          svg.path(marker_path(Shape::kCircle, frame.px(static_cast<double>(segment[0].step)),
                               frame.py(segment[0].loss), 2.5),
                   "class=\"curve\" fill=\"" + color + "\"", cell_name(*cell));
          continue;
        }
        std::string d;
        for (const LossPoint& point : segment)
          d += (d.empty() ? "M" : " L") + coord(frame.px(static_cast<double>(point.step))) + "," +
               coord(frame.py(point.loss));
        svg.path(d,
                 "class=\"curve\" fill=\"none\" stroke=\"" + color + "\" stroke-width=\"" +
                     coord(stroke_width) + "\" stroke-linejoin=\"round\"" +
                     (dash.empty() ? "" : " stroke-dasharray=\"" + dash + "\""),
                 cell_name(*cell));
      }
    }
    svg.body() << "</g>\n";
  }
  if (!legend.empty()) draw_legend(svg, legend_x, top, legend);
  return svg.str();
}

// ---------------------------------------------------------------------------------------------
// Markdown

const char* const kMissing = "\u2014";

struct Column {
  std::string header;
  std::function<std::optional<std::string>(const CellResult&)> value;  // nullopt: not measured
};

std::string markdown_escape(const std::string& text) {
  std::string out;
  for (char c : text) {
    if (c == '|' || c == '\\' || c == '*' || c == '_' || c == '`') out += '\\';
    out += (c == '\n' || c == '\r') ? ' ' : c;
  }
  return out;
}

// A table of the cells, dropping measured columns that no cell has a value for; the first two
// columns (strategy, KV heads) always stay.
std::string markdown_table(const std::vector<Column>& columns, const std::vector<const CellResult*>& cells) {
  std::vector<const Column*> shown;
  for (size_t c = 0; c < columns.size(); ++c)
    if (c < 2 || std::any_of(cells.begin(), cells.end(),
                             [&](const CellResult* cell) { return columns[c].value(*cell).has_value(); }))
      shown.push_back(&columns[c]);
  std::string header = "|", rule = "|";
  for (size_t c = 0; c < shown.size(); ++c) {
    header += " " + shown[c]->header + " |";
    rule += c == 0 ? "---|" : "---:|";  // numbers right-aligned
  }
  std::string table = header + "\n" + rule + "\n";
  for (const CellResult* cell : cells) {
    table += "|";
    for (const Column* column : shown) table += " " + column->value(*cell).value_or(kMissing) + " |";
    table += "\n";
  }
  return table;
}

std::vector<Column> identity_columns() {
  return {
      {"Strategy",
       [](const CellResult& c) {
         return std::optional<std::string>(c.is_baseline ? "MHA (baseline)" : markdown_escape(c.strategy));
       }},
      {"KV heads",
       [](const CellResult& c) { return std::optional<std::string>(std::to_string(c.kv_heads)); }}};
}

std::string quality_table(const Plan& plan) {
  std::vector<Column> columns = identity_columns();
  for (const Metric& metric : metrics())
    for (const Phase& phase : phases())
      columns.push_back(
          {std::string(metric.label) + ", " + phase.label, [&metric, &phase](const CellResult& c) {
             const std::optional<double>& v = (c.*phase.member).*metric.member;
             return v ? std::optional<std::string>(metric.format(*v)) : std::nullopt;
           }});
  return markdown_table(columns, plan.ordered);
}

std::string speed_table(const Plan& plan) {
  std::vector<Column> columns = identity_columns();
  for (int64_t batch : plan.batches)
    columns.push_back({"ms/token, batch " + std::to_string(batch), [batch](const CellResult& c) {
                         const std::optional<double> ms = decode_ms(c, batch);
                         return ms ? std::optional<std::string>(format_significant(*ms)) : std::nullopt;
                       }});
  for (int64_t batch : plan.batches)
    columns.push_back({"Speedup, batch " + std::to_string(batch), [&plan, batch](const CellResult& c) {
                         const std::optional<double> s = speedup(plan, c, batch);
                         return s ? std::optional<std::string>(format_fixed(*s, 2) + "\u00d7") : std::nullopt;
                       }});
  columns.push_back({"KV cache/token", [](const CellResult& c) {
                       return c.kv_bytes_per_token
                                  ? std::optional<std::string>(format_bytes(double(*c.kv_bytes_per_token)))
                                  : std::nullopt;
                     }});
  columns.push_back({"KV cache vs MHA", [&plan](const CellResult& c) -> std::optional<std::string> {
                       if (!plan.baseline || !plan.baseline->kv_bytes_per_token || !c.kv_bytes_per_token ||
                           *plan.baseline->kv_bytes_per_token <= 0)
                         return std::nullopt;
                       return format_percent(static_cast<double>(*c.kv_bytes_per_token) /
                                             static_cast<double>(*plan.baseline->kv_bytes_per_token));
                     }});
  columns.push_back({"Parameters", [](const CellResult& c) {
                       return c.parameters ? std::optional<std::string>(format_count(double(*c.parameters)))
                                           : std::nullopt;
                     }});
  columns.push_back({"Wall time", [](const CellResult& c) {
                       return c.wall_seconds ? std::optional<std::string>(format_duration(*c.wall_seconds))
                                             : std::nullopt;
                     }});
  return markdown_table(columns, plan.ordered);
}

std::string render_markdown(const Plan& plan, const ReportOptions& options,
                            const std::vector<std::string>& warnings) {
  std::ostringstream md;
  md << "# " << options.title << "\n\n";
  if (!options.model_name.empty()) md << "Model: `" << options.model_name << "`\n\n";
  std::vector<std::string> kv;
  for (int64_t k : plan.kv_counts) kv.push_back(std::to_string(k));
  const size_t converted = plan.ordered.size() - (plan.baseline ? 1 : 0);
  md << plan.ordered.size() << " result" << (plan.ordered.size() == 1 ? "" : "s") << ": " << converted
     << " converted model" << (converted == 1 ? "" : "s") << " (" << plan.strategies.size() << " strateg"
     << (plan.strategies.size() == 1 ? "y" : "ies")
     << (kv.empty() ? "" : " \u00d7 KV heads " + join(kv, ", ")) << ")"
     << (plan.baseline ? " and the MHA baseline" : ", no MHA baseline") << ".\n"
     << "\"Step 0\" is measured right after conversion, \"uptrained\" after uptraining. Speedup is MHA's "
        "decode "
        "time per token divided by the model's, at the same batch size. "
     << kMissing << " marks a value that was not measured.\n\n";
  md << "## Quality\n\n" << quality_table(plan) << "\n";
  md << "## Decode speed and memory\n\n" << speed_table(plan) << "\n";
  md << "## Charts\n\n"
     << "![Perplexity after uptraining vs decode speed](" << kQualityVsSpeedSvg << ")\n\n"
     << "![Uptraining loss curves](" << kLossCurvesSvg << ")\n";
  if (plan.baseline && !plan.baseline->uptrained.perplexity && plan.baseline->step0.perplexity)
    md << "\nThe MHA baseline was not uptrained: the first chart places it at its step-0 perplexity.\n";
  if (!warnings.empty()) {
    md << "\n## Notes\n\n";
    for (const std::string& warning : warnings) md << "- " << markdown_escape(warning) << "\n";
  }
  return md.str();
}

// A CSV field, quoted when it holds a comma, quote or line break (RFC 4180).
std::string csv_field(const std::string& text) {
  if (text.find_first_of(",\"\n\r") == std::string::npos) return text;
  std::string quoted = "\"";
  for (char c : text) quoted += c == '"' ? std::string("\"\"") : std::string(1, c);
  return quoted + "\"";
}

std::string render_csv(const Plan& plan) {
  const auto field = csv_field;
  const auto optional_number = [](const std::optional<double>& v) {
    return v ? csv_number(*v) : std::string();
  };
  std::vector<std::string> header = {"strategy", "kv_heads", "is_baseline"};
  for (const Metric& metric : metrics())
    for (const Phase& phase : phases()) header.push_back(std::string(metric.key) + "_" + phase.key);
  for (int64_t batch : plan.batches) header.push_back("decode_ms_per_token_b" + std::to_string(batch));
  for (int64_t batch : plan.batches) header.push_back("speedup_b" + std::to_string(batch));
  for (const char* name :
       {"kv_bytes_per_token", "parameters", "wall_seconds", "final_train_loss", "final_valid_loss"})
    header.push_back(name);
  std::string csv = join(header, ",") + "\n";

  const auto final_loss = [](const std::vector<LossPoint>& curve) -> std::optional<double> {
    if (curve.empty()) return std::nullopt;
    return std::max_element(curve.begin(), curve.end(),
                            [](const LossPoint& a, const LossPoint& b) { return a.step < b.step; })
        ->loss;
  };
  for (const CellResult* cell : plan.ordered) {
    std::vector<std::string> row = {field(cell->strategy), std::to_string(cell->kv_heads),
                                    cell->is_baseline ? "true" : "false"};
    for (const Metric& metric : metrics())
      for (const Phase& phase : phases())
        row.push_back(optional_number((cell->*phase.member).*metric.member));
    for (int64_t batch : plan.batches) row.push_back(optional_number(decode_ms(*cell, batch)));
    for (int64_t batch : plan.batches) row.push_back(optional_number(speedup(plan, *cell, batch)));
    row.push_back(cell->kv_bytes_per_token ? std::to_string(*cell->kv_bytes_per_token) : "");
    row.push_back(cell->parameters ? std::to_string(*cell->parameters) : "");
    row.push_back(optional_number(cell->wall_seconds));
    row.push_back(optional_number(final_loss(cell->train_loss)));
    row.push_back(optional_number(final_loss(cell->valid_loss)));
    csv += join(row, ",") + "\n";
  }
  return csv;
}

json render_json(const Plan& plan, const ReportOptions& options, const std::vector<std::string>& warnings) {
  json cells = json::array();
  for (const CellResult* cell : plan.ordered) {
    json j = *cell;
    if (plan.baseline) {
      json speedups = json::object();
      for (const auto& [batch, ms] : cell->decode_ms_per_token)
        if (const std::optional<double> s = speedup(plan, *cell, batch)) speedups[std::to_string(batch)] = *s;
      j["speedup_vs_mha"] = speedups;
    }
    cells.push_back(j);
  }
  json result = {{"title", options.title}, {"cells", cells}, {"warnings", warnings}};
  if (!options.model_name.empty()) result["model"] = options.model_name;
  result["speed_batch"] = plan.speed_batch ? json(plan.speed_batch) : json(nullptr);
  return result;
}

}  // namespace

// ---------------------------------------------------------------------------------------------
// Public API

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
         same_times(decode_ms_per_token, other.decode_ms_per_token) &&
         kv_bytes_per_token == other.kv_bytes_per_token && parameters == other.parameters &&
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
  if (!cell.decode_ms_per_token.empty()) {
    json times = json::object();
    for (const auto& [batch, ms] : cell.decode_ms_per_token)
      times[std::to_string(batch)] = number_to_json(ms);
    j["decode_ms_per_token"] = times;
  }
  if (cell.kv_bytes_per_token) j["kv_bytes_per_token"] = *cell.kv_bytes_per_token;
  if (cell.parameters) j["parameters"] = *cell.parameters;
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
    if (const json* quality = member(j, phase.key))
      cell.*phase.member = quality_from_json(*quality, source, phase.key);
  if (member(j, "decode_ms_per_token")) {
    const json& times = object_member(j, "decode_ms_per_token", source, "decode_ms_per_token");
    for (const auto& [key, value] : times.items()) {
      const std::string field = "decode_ms_per_token." + key;
      cell.decode_ms_per_token[batch_from_key(key, source, field)] = number_from_json(value, source, field);
    }
  }
  if (const json* v = member(j, "kv_bytes_per_token"))
    cell.kv_bytes_per_token = integer_from_json(*v, source, "kv_bytes_per_token", 0);
  if (const json* v = member(j, "parameters"))
    cell.parameters = integer_from_json(*v, source, "parameters", 0);
  if (const json* v = member(j, "train_loss")) cell.train_loss = curve_from_json(*v, source, "train_loss");
  if (const json* v = member(j, "valid_loss")) cell.valid_loss = curve_from_json(*v, source, "valid_loss");
  if (const json* v = member(j, "wall_seconds"))
    cell.wall_seconds = number_from_json(*v, source, "wall_seconds");
  return cell;
}

void from_json(const json& j, CellResult& cell) { cell = cell_from_json(j, ""); }

void save_cell(const CellResult& cell, const std::string& path) {
  write_file_atomically(path, pretty_json(json(cell)));
}

CellResult load_cell(const std::string& path) { return cell_from_json(read_json_file(path), path); }

std::string Ticks::label(double value) const {
  if (std::fabs(value) < step * 1e-9) value = 0;  // no "-0.0" from rounding
  return format_fixed(value, decimals);
}

Ticks nice_ticks(double lo, double hi, int target_count) {
  if (!std::isfinite(lo) || !std::isfinite(hi)) throw std::invalid_argument("nice_ticks: non-finite range");
  if (target_count < 2) throw std::invalid_argument("nice_ticks: target_count must be at least 2");
  if (lo > hi) std::swap(lo, hi);
  const double scale = std::max(std::fabs(lo), std::fabs(hi));
  if (hi - lo <= scale * 1e-9) {  // one value: a window around it
    const double half = scale > 0 ? 0.1 * scale : 1.0;
    lo -= half, hi += half;
  }
  // Among the nice steps near (hi - lo) / (target_count - 1), the one whose ticks come closest to
  // target_count in number; a tie goes to the smaller step (more ticks to read values by).
  const int base_exponent = static_cast<int>(std::floor(std::log10((hi - lo) / (target_count - 1))));
  const auto tick_count = [&](double step) {
    return std::ceil(hi / step - 1e-9) - std::floor(lo / step + 1e-9) + 1;
  };
  double best_mantissa = 1, best_step = 0;
  int best_exponent = 0;
  for (int exponent = base_exponent - 1; exponent <= base_exponent + 1; ++exponent)
    for (double mantissa : {1.0, 2.0, 2.5, 5.0}) {
      const double step = mantissa * std::pow(10.0, exponent);
      const double miss = std::fabs(tick_count(step) - target_count);
      if (best_step == 0 || miss < std::fabs(tick_count(best_step) - target_count)) {
        best_mantissa = mantissa, best_exponent = exponent, best_step = step;
      }
    }
  Ticks ticks;
  ticks.step = best_step;
  ticks.decimals = std::max(0, -best_exponent) + (best_mantissa == 2.5 && best_exponent <= 0 ? 1 : 0);
  // Tick indices are integers, so values are exact multiples of the step (no drift).
  const double first = std::floor(lo / best_step + 1e-9), last = std::ceil(hi / best_step - 1e-9);
  for (double i = first; i <= last + 0.5; ++i) ticks.values.push_back(i * best_step);
  ticks.lo = ticks.values.front();
  ticks.hi = ticks.values.back();
  return ticks;
}

std::vector<std::string> report_warnings(const std::vector<CellResult>& cells, const ReportOptions& options) {
  return warnings_for(make_plan(cells, options));
}

std::string results_csv(const std::vector<CellResult>& cells) { return render_csv(make_plan(cells, {})); }

json results_json(const std::vector<CellResult>& cells, const ReportOptions& options) {
  const Plan plan = make_plan(cells, options);
  return render_json(plan, options, warnings_for(plan));
}

std::string quality_vs_speed_svg(const std::vector<CellResult>& cells, const ReportOptions& options) {
  return render_quality_vs_speed(make_plan(cells, options), options);
}

std::string loss_curves_svg(const std::vector<CellResult>& cells, const ReportOptions& options) {
  return render_loss_curves(make_plan(cells, options), options);
}

std::string report_markdown(const std::vector<CellResult>& cells, const ReportOptions& options) {
  const Plan plan = make_plan(cells, options);
  return render_markdown(plan, options, warnings_for(plan));
}

std::vector<std::string> write_report(const std::vector<CellResult>& cells, const std::string& out_dir,
                                      const ReportOptions& options) {
  const Plan plan = make_plan(cells, options);  // validates before anything is written
  const std::vector<std::string> warnings = warnings_for(plan);
  if (files::exists(out_dir) && !files::is_directory(out_dir))
    throw InputError(out_dir, "", "exists and is not a folder");
  if (!files::make_directories(out_dir))
    throw InputError(out_dir, "", std::string("cannot create the folder: ") + std::strerror(errno));
  const std::string dir = out_dir + "/";
  // The charts first: report.md, written last, links to them.
  write_file_atomically(dir + kQualityVsSpeedSvg, render_quality_vs_speed(plan, options));
  write_file_atomically(dir + kLossCurvesSvg, render_loss_curves(plan, options));
  write_file_atomically(dir + "results.csv", render_csv(plan));
  write_file_atomically(dir + "results.json", pretty_json(render_json(plan, options, warnings)));
  write_file_atomically(dir + "report.md", render_markdown(plan, options, warnings));
  return warnings;
}

std::string records_csv(const std::vector<nlohmann::json>& records) {
  std::vector<std::string> keys;
  std::set<std::string> seen;
  for (const nlohmann::json& r : records)
    for (auto it = r.begin(); it != r.end(); ++it)
      if (seen.insert(it.key()).second) keys.push_back(it.key());
  std::string csv;
  for (size_t i = 0; i < keys.size(); ++i) csv += (i ? "," : "") + csv_field(keys[i]);
  csv += "\n";
  for (const nlohmann::json& r : records) {
    for (size_t i = 0; i < keys.size(); ++i) {
      if (i) csv += ",";
      const auto it = r.find(keys[i]);
      if (it == r.end()) continue;
      if (it->is_string()) csv += csv_field(it->get<std::string>());
      else if (it->is_number_float()) csv += csv_number(it->get<double>());
      else csv += csv_field(it->dump());
    }
    csv += "\n";
  }
  return csv;
}

}  // namespace gqa::report
