// The comparison report: cell JSON round trips, CSV/JSON/Markdown content, well-formed SVG with
// one marker per plottable cell, atomic writes, nice ticks.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <fstream>
#include <limits>
#include <map>
#include <set>
#include <sstream>

#include "compare/csv.h"
#include "compare/plan.h"
#include "compare/report.h"
#include "compare/ticks.h"
#include "core/error.h"
#include "core/files.h"

namespace gqa::report {
namespace {

using json = nlohmann::json;
constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();
constexpr double kInf = std::numeric_limits<double>::infinity();

CellResult make_cell(const std::string& strategy, int64_t kv_heads, double ppl_step0, double ppl_uptrained,
                     double ms_batch1, double ms_batch16) {
  CellResult cell;
  cell.strategy = strategy;
  cell.kv_heads = kv_heads;
  cell.step0.perplexity = ppl_step0;
  cell.uptrained.perplexity = ppl_uptrained;
  cell.decode_ms_per_token = {{1, ms_batch1}, {16, ms_batch16}};
  cell.kv_bytes_per_token = 2 * 4 * kv_heads * 64 * 2;
  cell.parameters = 10'000'000 + 1000 * kv_heads;
  cell.train_loss = {{0, std::log(ppl_step0)}, {10, 4.0}, {20, std::log(ppl_uptrained) - 0.05}};
  cell.valid_loss = {{0, std::log(ppl_step0)}, {20, std::log(ppl_uptrained)}};
  cell.wall_seconds = 12.5;
  return cell;
}

CellResult make_baseline() {
  CellResult mha = make_cell("mha", 8, 20.0, 20.0, 2.0, 0.8);
  mha.is_baseline = true;
  mha.uptrained = {};  // the baseline is not uptrained: the chart falls back to its step-0 perplexity
  mha.train_loss.clear();
  mha.valid_loss.clear();
  return mha;
}

// Baseline + mean/first at 4 and 2 KV heads.
std::vector<CellResult> sample_cells() {
  return {make_baseline(), make_cell("mean", 4, 60, 22.5, 1.9, 0.5), make_cell("mean", 2, 150, 24.0, 1.8, 0.4),
          make_cell("first", 4, 90, 23.0, 1.9, 0.5), make_cell("first", 2, 300, 25.0, 1.8, 0.4)};
}

// MLA at the KV bytes of `kv_heads` GQA KV heads (make_cell's 1024 bytes per KV head): 4 layers x
// 2-byte values x (rank + rotary dims) = 1024 * kv_heads.
CellResult make_mla(int64_t kv_heads, double ppl_step0, double ppl_uptrained) {
  CellResult cell = make_cell("mla", kv_heads, ppl_step0, ppl_uptrained, 1.95, 0.45);
  cell.latent_rope_dims = 32;
  cell.latent_rank = 128 * kv_heads - 32;
  EXPECT_EQ(*cell.kv_bytes_per_token, 4 * 2 * (*cell.latent_rank + *cell.latent_rope_dims));
  return cell;
}

// sample_cells plus MLA at the KV bytes of 4 and 2 KV heads.
std::vector<CellResult> mla_cells() {
  std::vector<CellResult> cells = sample_cells();
  cells.push_back(make_mla(4, 40, 21.5));
  cells.push_back(make_mla(2, 70, 22.0));
  return cells;
}

// A CellResult with every field set, non-finite values included.
CellResult full_cell() {
  CellResult cell = make_cell("random-weighted", 2, 1234.5, kNaN, 0.25, -kInf);
  cell.step0.bits_per_byte = 1.0 / 3.0;
  cell.uptrained.rouge1 = 0.41;
  cell.uptrained.rouge2 = 0.19;
  cell.uptrained.rouge_l = 0.38;
  cell.uptrained.minimal_pair_accuracy = kInf;
  cell.decode_ms_per_token[512] = 0.012345678901234567;
  cell.train_loss.push_back({30, kNaN});
  cell.train_loss.push_back({40, 3.25});
  cell.wall_seconds = 3601.25;
  cell.decode_spread = {{1, 0.031}, {16, kNaN}, {512, 0.4}};
  cell.paired_mha_ms_per_token = {{1, 0.3}, {512, 0.02}};
  cell.paired_mha_spread = {{1, 0.012}, {512, 0.05}};
  cell.noisy_batches = {512};
  cell.latent_rank = 72;
  cell.latent_rope_dims = 0;
  return cell;
}

// Sample cells timed the way gqa compare times them now: each converted cell beside its own MHA
// run (interleaved), with spreads; mean at 2 KV heads had a noisy timing at batch 16.
std::vector<CellResult> paired_cells() {
  std::vector<CellResult> cells = sample_cells();
  cells[0].decode_spread = {{1, 0.02}, {16, 0.01}};
  for (size_t i = 1; i < cells.size(); ++i) {
    cells[i].decode_spread = {{1, 0.03}, {16, 0.04}};
    cells[i].paired_mha_ms_per_token = {{1, 2.1}, {16, 1.0}};  // the baseline cell measured 2.0 and 0.8
    cells[i].paired_mha_spread = {{1, 0.02}, {16, 0.05}};
  }
  cells[2].decode_ms_per_token[16] = 180.0;  // an injected slow run that stayed slow
  cells[2].decode_spread[16] = 0.6;
  cells[2].paired_mha_spread[16] = 2.5;
  cells[2].noisy_batches = {16};
  return cells;
}

size_t count_occurrences(const std::string& text, const std::string& needle) {
  size_t count = 0;
  for (size_t at = text.find(needle); at != std::string::npos; at = text.find(needle, at + needle.size())) ++count;
  return count;
}

// Each class="point" marker of a chart: its tooltip and the x of its centre (the middle of the
// marker's extent: every marker shape is symmetric about its centre).
std::vector<std::pair<std::string, double>> plotted_points(const std::string& svg) {
  std::vector<std::pair<std::string, double>> points;
  const std::string start = "<path d=\"", point = "\" class=\"point";
  for (size_t at = svg.find(start); at != std::string::npos; at = svg.find(start, at + 1)) {
    const size_t d_end = svg.find('"', at + start.size());
    if (svg.compare(d_end, point.size(), point) != 0) continue;
    std::istringstream d(svg.substr(at + start.size(), d_end - at - start.size()));
    std::vector<double> xs;
    double x = 0;
    for (std::string token; d >> token;) {
      if (token[0] == 'M' || token[0] == 'L') {
        x = std::stod(token.substr(1));
      } else if (token[0] == 'a') {  // a rx,ry 0 1,0 dx,dy: an arc to (x + dx, y + dy)
        std::string rotation, flags, delta;
        d >> rotation >> flags >> delta;
        x += std::stod(delta);
      } else {
        continue;
      }
      xs.push_back(x);
    }
    const size_t title = svg.find("<title>", d_end), title_end = svg.find("</title>", d_end);
    const std::string tooltip = title == std::string::npos ? "" : svg.substr(title + 7, title_end - title - 7);
    if (!xs.empty())
      points.push_back(
          {tooltip, (*std::min_element(xs.begin(), xs.end()) + *std::max_element(xs.begin(), xs.end())) / 2});
  }
  return points;
}

std::string read_text(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream text;
  text << in.rdbuf();
  return text.str();
}

// Minimal XML 1.0 well-formedness check: one root element, properly nested tags, quoted and unique
// attributes, only the five named entities or character references, no '<' in attribute values
// and no stray text outside the root. Returns "" when well-formed, else the first problem.
std::string xml_problem(const std::string& xml) {
  size_t pos = 0;
  std::vector<std::string> open;
  int roots = 0;
  const auto is_name_char = [](char c) {
    return std::isalnum(static_cast<unsigned char>(c)) || c == '_' || c == ':' || c == '-' || c == '.';
  };
  const auto check_entities = [](const std::string& text) -> std::string {
    for (size_t amp = text.find('&'); amp != std::string::npos; amp = text.find('&', amp + 1)) {
      const size_t semi = text.find(';', amp);
      if (semi == std::string::npos) return "unterminated entity";
      const std::string name = text.substr(amp + 1, semi - amp - 1);
      static const std::set<std::string> named = {"amp", "lt", "gt", "quot", "apos"};
      const bool reference = name.size() > 1 && name[0] == '#';
      if (!named.count(name) && !reference) return "unknown entity &" + name + ";";
    }
    return "";
  };
  if (xml.compare(0, 5, "<?xml") == 0) pos = xml.find("?>") + 2;
  while (pos < xml.size()) {
    const size_t lt = xml.find('<', pos);
    const std::string text = xml.substr(pos, lt == std::string::npos ? std::string::npos : lt - pos);
    if (open.empty() && text.find_first_not_of(" \t\r\n") != std::string::npos) return "text outside the root element";
    if (std::string problem = check_entities(text); !problem.empty()) return problem;
    if (lt == std::string::npos) break;
    pos = lt;
    if (xml.compare(pos, 4, "<!--") == 0) {
      const size_t end = xml.find("-->", pos);
      if (end == std::string::npos) return "unterminated comment";
      pos = end + 3;
      continue;
    }
    if (xml.compare(pos, 2, "</") == 0) {
      const size_t end = xml.find('>', pos);
      if (end == std::string::npos) return "unterminated end tag";
      const std::string name = xml.substr(pos + 2, end - pos - 2);
      if (open.empty() || open.back() != name)
        return "</" + name + "> does not close <" + (open.empty() ? "" : open.back()) + ">";
      open.pop_back();
      pos = end + 1;
      continue;
    }
    size_t i = pos + 1;
    while (i < xml.size() && is_name_char(xml[i])) ++i;
    const std::string name = xml.substr(pos + 1, i - pos - 1);
    if (name.empty()) return "'<' that starts no tag at byte " + std::to_string(pos);
    if (open.empty() && roots++ > 0) return "a second root element <" + name + ">";
    std::set<std::string> attributes;
    while (true) {
      while (i < xml.size() && std::isspace(static_cast<unsigned char>(xml[i]))) ++i;
      if (i >= xml.size()) return "unterminated tag <" + name + ">";
      if (xml.compare(i, 2, "/>") == 0) {
        pos = i + 2;
        break;
      }
      if (xml[i] == '>') {
        open.push_back(name);
        pos = i + 1;
        break;
      }
      const size_t attribute_start = i;
      while (i < xml.size() && is_name_char(xml[i])) ++i;
      const std::string attribute = xml.substr(attribute_start, i - attribute_start);
      if (attribute.empty() || i + 1 >= xml.size() || xml[i] != '=' || (xml[i + 1] != '"' && xml[i + 1] != '\''))
        return "malformed attribute in <" + name + "> at byte " + std::to_string(i);
      if (!attributes.insert(attribute).second) return "duplicate attribute " + attribute + " in <" + name + ">";
      const char quote = xml[i + 1];
      const size_t end = xml.find(quote, i + 2);
      if (end == std::string::npos) return "unterminated attribute value";
      const std::string value = xml.substr(i + 2, end - i - 2);
      if (value.find('<') != std::string::npos) return "'<' in attribute " + attribute;
      if (std::string problem = check_entities(value); !problem.empty()) return problem;
      i = end + 1;
    }
  }
  if (!open.empty()) return "<" + open.back() + "> is never closed";
  if (roots != 1) return "no root element";
  return "";
}

class TempDir {
 public:
  TempDir() : path_(files::make_unique_directory("/tmp/gqa-test-report-")) {}
  ~TempDir() { files::remove_all(path_); }
  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

// ---------------------------------------------------------------------------------------------

TEST(XmlCheck, CatchesMalformedDocuments) {
  // The checker itself must be able to fail, or the SVG tests prove nothing.
  EXPECT_EQ(xml_problem("<svg><g a=\"1\"/></svg>"), "");
  EXPECT_NE(xml_problem("<svg><g></svg>"), "");
  EXPECT_NE(xml_problem("<svg a=\"1\" a=\"2\"></svg>"), "");
  EXPECT_NE(xml_problem("<svg><text>a < b</text></svg>"), "");
  EXPECT_NE(xml_problem("<svg><text>R&D</text></svg>"), "");
  EXPECT_NE(xml_problem("<svg a=1></svg>"), "");
  EXPECT_NE(xml_problem("<svg></svg><svg></svg>"), "");
}

TEST(CellJson, RoundTripKeepsEveryFieldIncludingNonFinite) {
  const CellResult cell = full_cell();
  const json j = cell;
  EXPECT_EQ(j["uptrained"]["perplexity"], "NaN");
  EXPECT_EQ(j["decode_ms_per_token"]["16"], "-Infinity");
  EXPECT_EQ(j["uptrained"]["minimal_pair_accuracy"], "Infinity");
  const CellResult back = j.get<CellResult>();
  EXPECT_EQ(back, cell);
  // Through text too (the file form), where doubles must survive printing.
  EXPECT_EQ(cell_from_json(json::parse(j.dump()), "text"), cell);
}

TEST(CellJson, MissingValuesAreOmittedAndStayMissing) {
  CellResult cell;
  cell.strategy = "mean";
  cell.kv_heads = 4;
  const json j = cell;
  EXPECT_FALSE(j.contains("decode_ms_per_token"));
  EXPECT_FALSE(j.contains("parameters"));
  EXPECT_FALSE(j.contains("train_loss"));
  EXPECT_TRUE(j["step0"].empty());
  const CellResult back = j.get<CellResult>();
  EXPECT_EQ(back, cell);
  EXPECT_FALSE(back.uptrained.perplexity.has_value());
  EXPECT_FALSE(back.kv_bytes_per_token.has_value());
  EXPECT_FALSE(j.contains("latent_rank"));
  EXPECT_FALSE(j.contains("latent_rope_dims"));
  EXPECT_FALSE(back.latent_rank.has_value());
  EXPECT_FALSE(back.latent_rope_dims.has_value());
}

TEST(CellJson, MlaCellRoundTripsWithItsLatentDims) {
  const CellResult cell = make_mla(2, 70, 22.0);
  const json j = cell;
  EXPECT_EQ(j["strategy"], "mla");
  EXPECT_EQ(j["kv_heads"], 2);
  EXPECT_EQ(j["latent_rank"], 224);
  EXPECT_EQ(j["latent_rope_dims"], 32);
  EXPECT_EQ(j["kv_bytes_per_token"], 2048);
  const CellResult back = cell_from_json(json::parse(j.dump()), "mla.json");
  EXPECT_EQ(back, cell);
  EXPECT_EQ(back.latent_rank, std::optional<int64_t>(224));
  EXPECT_EQ(back.latent_rope_dims, std::optional<int64_t>(32));
  // A rank without rotary dims stays without them.
  CellResult no_rope = cell;
  no_rope.latent_rope_dims.reset();
  const json k = no_rope;
  EXPECT_FALSE(k.contains("latent_rope_dims"));
  EXPECT_EQ(k.get<CellResult>(), no_rope);
  EXPECT_NE(k.get<CellResult>(), cell);
}

TEST(CellJson, EqualityNoticesEveryKindOfDifference) {
  const CellResult cell = full_cell();
  std::vector<CellResult> changed(15, cell);
  changed[12].latent_rank = 73;
  changed[13].latent_rope_dims.reset();
  changed[14].kv_bytes_per_token.reset();
  changed[8].decode_spread[1] = 0.032;
  changed[9].paired_mha_ms_per_token.erase(512);
  changed[10].paired_mha_spread[16] = 0.1;
  changed[11].noisy_batches.insert(1);
  changed[0].strategy = "mean";
  changed[1].kv_heads = 4;
  changed[2].step0.bits_per_byte.reset();
  changed[3].uptrained.perplexity = 30.0;  // NaN -> number
  changed[4].decode_ms_per_token[1] = 0.26;
  changed[5].train_loss.back().loss = 3.26;
  changed[6].valid_loss.pop_back();
  changed[7].is_baseline = true;
  for (size_t i = 0; i < changed.size(); ++i) EXPECT_NE(changed[i], cell) << "change " << i;
}

TEST(CellJson, TimingFieldsRoundTripAndAreOmittedWhenEmpty) {
  const CellResult cell = full_cell();
  const json j = cell;
  EXPECT_EQ(j["decode_spread"]["16"], "NaN");
  EXPECT_DOUBLE_EQ(j["paired_mha_ms_per_token"]["512"].get<double>(), 0.02);
  EXPECT_EQ(j["noisy_batches"], json::array({512}));
  EXPECT_EQ(cell_from_json(json::parse(j.dump()), "text"), cell);
  const json plain = make_cell("mean", 4, 60, 22.5, 1.9, 0.5);
  for (const char* key : {"decode_spread", "paired_mha_ms_per_token", "paired_mha_spread", "noisy_batches"})
    EXPECT_FALSE(plain.contains(key)) << key;
}

// A cell file written before issue #20 (median times, no spread, pairing or flag) still loads, and
// its speedup falls back to the baseline cell's time.
TEST(CellJson, OlderCellFilesLoadAndUseTheBaselineCellsTime) {
  const CellResult old_cell = cell_from_json(json::parse(R"({
    "strategy": "mean", "kv_heads": 4, "is_baseline": false,
    "step0": {"perplexity": 60.0}, "uptrained": {"perplexity": 22.5},
    "decode_ms_per_token": {"1": 1.9, "16": 0.5},
    "kv_bytes_per_token": 4096, "parameters": 10004000,
    "train_loss": [[0, 4.1], [20, 3.1]], "wall_seconds": 12.5})"),
                                             "old.json");
  EXPECT_TRUE(old_cell.decode_spread.empty());
  EXPECT_TRUE(old_cell.paired_mha_ms_per_token.empty());
  EXPECT_TRUE(old_cell.noisy_batches.empty());
  const std::vector<CellResult> cells = {make_baseline(), old_cell};
  const json results = results_json(cells);
  EXPECT_DOUBLE_EQ(results["cells"][1]["speedup_vs_mha"]["16"].get<double>(), 0.8 / 0.5);
  // No spread anywhere: no spread columns, no timing notes.
  const std::string md = report_markdown(cells);
  EXPECT_EQ(md.find("Spread"), std::string::npos);
  EXPECT_EQ(md.find("noisy"), std::string::npos);
}

TEST(CellJson, RejectsMalformedCellsNamingTheField) {
  const json good = full_cell();
  const auto field_of = [](const json& j) {
    try {
      cell_from_json(j, "cell.json");
    } catch (const InputError& e) {
      EXPECT_EQ(e.file(), "cell.json");
      return e.field();
    }
    return std::string("(accepted)");
  };
  json j = good;
  j.erase("strategy");
  EXPECT_EQ(field_of(j), "strategy");
  j = good;
  j["kv_heads"] = 0;
  EXPECT_EQ(field_of(j), "kv_heads");
  j = good;
  j["kv_heads"] = 2.5;
  EXPECT_EQ(field_of(j), "kv_heads");
  j = good;
  j["decode_ms_per_token"]["sixteen"] = 1.0;
  EXPECT_EQ(field_of(j), "decode_ms_per_token.sixteen");
  j = good;
  j["decode_ms_per_token"]["1"] = "fast";
  EXPECT_EQ(field_of(j), "decode_ms_per_token.1");
  j = good;
  j["train_loss"][1] = json::array({10});
  EXPECT_EQ(field_of(j), "train_loss[1]");
  j = good;
  j["step0"]["perplexity"] = true;
  EXPECT_EQ(field_of(j), "step0.perplexity");
  j = good;
  j["parameters"] = -1;
  EXPECT_EQ(field_of(j), "parameters");
  j = good;
  j["decode_spread"]["x"] = 0.1;
  EXPECT_EQ(field_of(j), "decode_spread.x");
  j = good;
  j["paired_mha_ms_per_token"] = 1.0;
  EXPECT_EQ(field_of(j), "paired_mha_ms_per_token");
  j = good;
  j["noisy_batches"] = {16, 0};
  EXPECT_EQ(field_of(j), "noisy_batches[1]");
  j = good;
  j["noisy_batches"] = 16;
  EXPECT_EQ(field_of(j), "noisy_batches");
  j = good;
  j["latent_rank"] = -1;
  EXPECT_EQ(field_of(j), "latent_rank");
  j = good;
  j["latent_rank"] = "72";
  EXPECT_EQ(field_of(j), "latent_rank");
  j = good;
  j["latent_rope_dims"] = 1.5;
  EXPECT_EQ(field_of(j), "latent_rope_dims");
  j = good;
  j["kv_bytes_per_token"] = -2;
  EXPECT_EQ(field_of(j), "kv_bytes_per_token");
  EXPECT_EQ(field_of(json::array()), "");
  // Unknown keys (results.json adds speedups) are fine.
  j = good;
  j["speedup_vs_mha"] = {{"1", 1.5}};
  EXPECT_EQ(field_of(j), "(accepted)");
}

TEST(CellFile, SaveAndLoadRoundTripAtomically) {
  TempDir dir;
  const std::string path = dir.path() + "/cell-mean-4.json";
  const CellResult cell = full_cell();
  save_cell(cell, path);
  EXPECT_EQ(load_cell(path), cell);
  EXPECT_EQ(files::list_directory(dir.path()), std::vector<std::string>{"cell-mean-4.json"});
  // Curves stay one line each instead of one number per line.
  const std::string text = read_text(path);
  EXPECT_NE(text.find("\n  \"train_loss\": [[0,"), std::string::npos) << text;
  EXPECT_LT(count_occurrences(text, "\n"), 60u);
}

TEST(CellFile, LoadReportsBadFilesAsInputErrors) {
  TempDir dir;
  EXPECT_THROW(load_cell(dir.path() + "/missing.json"), InputError);
  const std::string broken = dir.path() + "/broken.json";
  std::ofstream(broken) << "{\"strategy\": \"mean\", ";
  try {
    load_cell(broken);
    FAIL() << "a truncated file was accepted";
  } catch (const InputError& e) {
    EXPECT_EQ(e.file(), broken);
    EXPECT_NE(std::string(e.what()).find("invalid JSON"), std::string::npos);
  }
}

TEST(CellName, NamesMlaCellsByRankRotaryAndMatchedBytes) {
  CellResult mla = make_mla(2, 70, 22.0);
  mla.latent_rank = 72;
  mla.latent_rope_dims = 24;
  EXPECT_EQ(cell_name(mla), "MLA rank 72 + rotary 24 (KV bytes of 2 KV heads)");
  EXPECT_EQ(strategy_label(mla), "MLA rank 72 + rotary 24");
  mla.latent_rope_dims = 0;
  EXPECT_EQ(cell_name(mla), "MLA rank 72 (KV bytes of 2 KV heads)");
  mla.latent_rope_dims.reset();
  EXPECT_EQ(cell_name(mla), "MLA rank 72 (KV bytes of 2 KV heads)");
  mla.latent_rank.reset();
  mla.kv_heads = 1;
  EXPECT_EQ(cell_name(mla), "MLA (KV bytes of 1 KV head)");
  // GQA cells and the baseline keep their names.
  EXPECT_EQ(cell_name(make_cell("mean", 2, 150, 24.0, 1.8, 0.4)), "mean, 2 KV heads");
  EXPECT_EQ(strategy_label(make_cell("mean", 2, 150, 24.0, 1.8, 0.4)), "mean");
  EXPECT_EQ(cell_name(make_baseline()), "MHA baseline");
}

TEST(NiceTicks, KnownCases) {
  Ticks t = nice_ticks(0, 10, 6);
  EXPECT_DOUBLE_EQ(t.step, 2);
  EXPECT_EQ(t.values, (std::vector<double>{0, 2, 4, 6, 8, 10}));
  EXPECT_EQ(t.decimals, 0);

  t = nice_ticks(0.13, 0.87, 5);
  EXPECT_DOUBLE_EQ(t.step, 0.25);
  EXPECT_DOUBLE_EQ(t.lo, 0);
  EXPECT_DOUBLE_EQ(t.hi, 1);
  EXPECT_EQ(t.decimals, 2);
  EXPECT_EQ(t.label(t.values[1]), "0.25");

  t = nice_ticks(24.1, 29.9, 6);
  EXPECT_DOUBLE_EQ(t.step, 1);
  EXPECT_DOUBLE_EQ(t.lo, 24);
  EXPECT_DOUBLE_EQ(t.hi, 30);
  EXPECT_EQ(t.label(27), "27");

  t = nice_ticks(0, 2000, 6);
  EXPECT_DOUBLE_EQ(t.step, 500);
  EXPECT_EQ(t.label(1500), "1500");

  t = nice_ticks(-7, -2, 5);  // negative ranges, and no "-0"
  EXPECT_LE(t.lo, -7);
  EXPECT_GE(t.hi, -2);
  EXPECT_EQ(nice_ticks(-1, 1, 5).label(-1e-17), "0.0");

  t = nice_ticks(0.0213, 0.0687, 6);  // small values: enough decimals to tell ticks apart
  std::set<std::string> labels;
  for (double v : t.values) labels.insert(t.label(v));
  EXPECT_EQ(labels.size(), t.values.size());
  EXPECT_DOUBLE_EQ(t.step, 0.01);
  EXPECT_EQ(t.label(0.05), "0.05");
  EXPECT_EQ(nice_ticks(0, 0.1, 5).label(0.075), "0.075");  // step 0.025 needs three decimals
}

TEST(NiceTicks, PropertiesOverManyRanges) {
  const std::vector<std::pair<double, double>> ranges = {{0, 1},          {1, 4.87},    {3.14, 3.75}, {-50, 50},
                                                         {0.001, 0.0013}, {1e6, 3.7e6}, {24.1, 24.6}, {7, 1}};
  for (const auto& [lo, hi] : ranges) {
    const Ticks t = nice_ticks(lo, hi, 6);
    SCOPED_TRACE(std::to_string(lo) + ".." + std::to_string(hi));
    EXPECT_LE(t.lo, std::min(lo, hi));
    EXPECT_GE(t.hi, std::max(lo, hi));
    EXPECT_GE(t.values.size(), 4u);
    EXPECT_LE(t.values.size(), 9u);
    const double mantissa = t.step / std::pow(10.0, std::floor(std::log10(t.step)));
    EXPECT_TRUE(std::fabs(mantissa - 1) < 1e-9 || std::fabs(mantissa - 2) < 1e-9 || std::fabs(mantissa - 2.5) < 1e-9 ||
                std::fabs(mantissa - 5) < 1e-9)
        << mantissa;
    for (size_t i = 1; i < t.values.size(); ++i) EXPECT_NEAR(t.values[i] - t.values[i - 1], t.step, t.step * 1e-9);
  }
}

TEST(NiceTicks, DegenerateRanges) {
  Ticks t = nice_ticks(3, 3);  // one value: a window around it
  EXPECT_LT(t.lo, 3);
  EXPECT_GT(t.hi, 3);
  t = nice_ticks(0, 0);
  EXPECT_LT(t.lo, 0);
  EXPECT_GT(t.hi, 0);
  EXPECT_THROW(nice_ticks(0, kNaN), std::invalid_argument);
  EXPECT_THROW(nice_ticks(-kInf, 1), std::invalid_argument);
  EXPECT_THROW(nice_ticks(0, 1, 1), std::invalid_argument);
}

// gqa eval --csv: heterogeneous records share one header in order of first appearance; missing
// fields are empty; strings with commas or quotes are quoted; nested values are JSON text.
TEST(RecordsCsv, UnionOfFieldsInFirstSeenOrder) {
  const std::vector<json> records = {
      {{"model", "a,b"}, {"metric", "perplexity"}, {"perplexity", 12.5}, {"tokens", 100}},
      {{"model", "say \"hi\""}, {"metric", "minimal_pairs"}, {"accuracy", 0.5}, {"by", {{"x", 1}}}},
      {{"model", "m"}, {"metric", "decode"}, {"tokens", 7}, {"speedup", std::nan("")}}};
  const std::string csv = records_csv(records);
  // nlohmann::json objects keep keys sorted, so "first seen" runs over each record's sorted keys.
  EXPECT_EQ(csv,
            "metric,model,perplexity,tokens,accuracy,by,speedup\n"
            "perplexity,\"a,b\",12.5,100,,,\n"
            "minimal_pairs,\"say \"\"hi\"\"\",,,0.5,\"{\"\"x\"\":1}\",\n"
            "decode,m,,7,,,nan\n");
  EXPECT_EQ(records_csv({}), "\n");
}

TEST(ResultsCsv, OneRowPerCellWithSpeedupsAndEmptyMissingFields) {
  std::vector<CellResult> cells = sample_cells();
  cells.push_back(make_cell("odd, \"quoted\"", 1, 500, kNaN, 1.7, 0.35));
  cells.back().decode_ms_per_token.erase(16);
  const std::string csv = results_csv(cells);
  std::vector<std::string> lines;
  std::istringstream in(csv);
  for (std::string line; std::getline(in, line);) lines.push_back(line);
  ASSERT_EQ(lines.size(), cells.size() + 1);
  EXPECT_EQ(lines[0].rfind("strategy,kv_heads,is_baseline,perplexity_step0,perplexity_uptrained,", 0), 0u);
  EXPECT_NE(lines[0].find(",decode_ms_per_token_b1,decode_ms_per_token_b16,speedup_b1,speedup_b16,"),
            std::string::npos);
  // Baseline first, its uptrained perplexity empty; then strategies in input order.
  EXPECT_EQ(lines[1].rfind("mha,8,true,20.0,,", 0), 0u);
  EXPECT_EQ(lines[2].rfind("mean,4,false,60.0,22.5,", 0), 0u);
  EXPECT_EQ(lines[4].rfind("first,4,false,", 0), 0u);
  // 0.8 / 0.5 = 1.6x at batch 16 for mean/4.
  EXPECT_NE(lines[2].find(",1.9,0.5,"), std::string::npos);
  EXPECT_NE(lines[2].find(",1.6,"), std::string::npos);
  // Quoted name, NaN written as nan, missing batch-16 time and speedup empty.
  EXPECT_EQ(lines[6].rfind("\"odd, \"\"quoted\"\"\",1,false,500.0,nan,", 0), 0u);
  EXPECT_NE(lines[6].find(",1.7,,"), std::string::npos);
}

TEST(ResultsJson, CellsReadBackAndCarrySpeedups) {
  const std::vector<CellResult> cells = sample_cells();
  const json results = results_json(cells);
  ASSERT_EQ(results["cells"].size(), cells.size());
  EXPECT_EQ(results["speed_batch"], 16);  // the baseline's largest batch
  for (size_t i = 0; i < cells.size(); ++i) EXPECT_EQ(cell_from_json(results["cells"][i], "results.json"), cells[i]);
  EXPECT_DOUBLE_EQ(results["cells"][1]["speedup_vs_mha"]["16"].get<double>(), 0.8 / 0.5);
  EXPECT_DOUBLE_EQ(results["cells"][0]["speedup_vs_mha"]["1"].get<double>(), 1.0);
}

TEST(ResultsCsv, TimingColumnsPerBatch) {
  const std::vector<CellResult> cells = paired_cells();
  const std::string csv = results_csv(cells);
  std::vector<std::string> lines;
  std::istringstream in(csv);
  for (std::string line; std::getline(in, line);) lines.push_back(line);
  ASSERT_EQ(lines.size(), cells.size() + 1);
  EXPECT_NE(lines[0].find(",speedup_b16,decode_spread_b1,decode_spread_b16,paired_mha_ms_per_token_b1,"
                          "paired_mha_ms_per_token_b16,paired_mha_spread_b1,paired_mha_spread_b16,noisy_b1,noisy_b16,"),
            std::string::npos)
      << lines[0];
  // The baseline: its own spreads, no paired run, clean.
  EXPECT_NE(lines[1].find(",0.02,0.01,,,,,false,false,"), std::string::npos) << lines[1];
  // mean at 2 KV heads: speedup over its paired MHA run (1.0 / 180 at batch 16), noisy there.
  EXPECT_NE(lines[3].find(",0.03,0.6,2.1,1.0,0.02,2.5,false,true,"), std::string::npos) << lines[3];
  EXPECT_NE(lines[3].find("," + csv_number(1.0 / 180.0) + ","), std::string::npos) << lines[3];
}

TEST(ResultsJson, SpeedupsUseThePairedMhaTime) {
  const std::vector<CellResult> cells = paired_cells();
  const json results = results_json(cells);
  EXPECT_DOUBLE_EQ(results["cells"][1]["speedup_vs_mha"]["16"].get<double>(), 1.0 / 0.5);  // not 0.8 / 0.5
  EXPECT_DOUBLE_EQ(results["cells"][1]["speedup_vs_mha"]["1"].get<double>(), 2.1 / 1.9);
  EXPECT_DOUBLE_EQ(results["cells"][0]["speedup_vs_mha"]["16"].get<double>(), 1.0);
  for (size_t i = 0; i < cells.size(); ++i) EXPECT_EQ(cell_from_json(results["cells"][i], "results.json"), cells[i]);
}

// A noisy cell is marked in the speed table, drawn hollow in the chart with a legend entry, and
// named in the warnings with its spread and the threshold.
TEST(NoisyTiming, MarkedInTableChartAndWarnings) {
  const std::vector<CellResult> cells = paired_cells();
  ReportOptions options;
  options.noisy_spread = 0.25;
  const std::string md = report_markdown(cells, options);
  EXPECT_NE(md.find("| ms/token, batch 1 | Spread, batch 1 | ms/token, batch 16 | Spread, batch 16 | Speedup, batch 1 "
                    "| Speedup, batch 16 |"),
            std::string::npos)
      << md;
  EXPECT_NE(md.find("| mean | 2 | 1.80 | 3.0% | 180 | 250.0% (noisy) | 1.17\u00d7 | 0.01\u00d7 (noisy) |"),
            std::string::npos)
      << md;
  EXPECT_NE(md.find("| mean | 4 | 1.90 | 3.0% | 0.500 | 5.0% | 1.11\u00d7 | 2.00\u00d7 |"), std::string::npos) << md;
  EXPECT_EQ(count_occurrences(md, "(noisy) |"), 2u);
  EXPECT_NE(md.find("spread is the slowest repeat over the fastest, minus 1"), std::string::npos) << md;
  EXPECT_NE(md.find("A timing marked (noisy) had a spread above 25.0%"), std::string::npos) << md;
  const size_t notes = md.find("## Notes");
  ASSERT_NE(notes, std::string::npos);
  EXPECT_NE(md.find("mean, 2 KV heads: noisy decode timing (batch 16, spread 250.0%) after one re-measure, above "
                    "the 25.0% threshold",
                    notes),
            std::string::npos)
      << md;

  const std::string svg = quality_vs_speed_svg(cells, options);  // the chart's batch is 16
  EXPECT_EQ(xml_problem(svg), "");
  EXPECT_EQ(count_occurrences(svg, "class=\"point"), cells.size());
  EXPECT_EQ(count_occurrences(svg, "class=\"point noisy\""), 1u);
  EXPECT_NE(svg.find("Noisy timing (hollow)"), std::string::npos);
  EXPECT_NE(svg.find("mean, 2 KV heads: perplexity 24.00, 0.01\u00d7 MHA speed (noisy timing)"), std::string::npos);

  // At batch 1 nothing was noisy: solid markers only, no legend entry.
  options.speed_batch = 1;
  const std::string at_one = quality_vs_speed_svg(cells, options);
  EXPECT_EQ(count_occurrences(at_one, "noisy"), 0u);
}

// A noisy baseline: its own speedup stays 1 (unmarked, a solid star); speedups taken over its time
// (cells without a paired MHA run) are marked, and those over a paired run are not.
TEST(NoisyTiming, ANoisyBaselineMarksTheSpeedupsTakenOverIt) {
  std::vector<CellResult> cells = paired_cells();
  cells[2].noisy_batches.clear();
  cells[0].decode_spread[16] = 0.9;
  cells[0].noisy_batches = {16};
  cells[3].paired_mha_ms_per_token.clear();  // first at 4 KV heads: an older cell, no paired time
  cells[3].paired_mha_spread.clear();
  const std::string md = report_markdown(cells);
  EXPECT_NE(md.find("| MHA (baseline) | 8 | 2.00 | 2.0% | 0.800 | 90.0% (noisy) | 1.00\u00d7 | 1.00\u00d7 |"),
            std::string::npos)
      << md;
  EXPECT_NE(md.find("| first | 4 | 1.90 | 3.0% | 0.500 | 4.0% | 1.05\u00d7 | 1.60\u00d7 (noisy) |"), std::string::npos)
      << md;
  EXPECT_NE(md.find("| mean | 4 | 1.90 | 3.0% | 0.500 | 5.0% | 1.11\u00d7 | 2.00\u00d7 |"), std::string::npos) << md;
  const std::string svg = quality_vs_speed_svg(cells);
  EXPECT_EQ(count_occurrences(svg, "class=\"point noisy\""), 1u);  // first, 4 KV heads
  EXPECT_NE(svg.find("first, 4 KV heads: perplexity 23.00, 1.60\u00d7 MHA speed (noisy timing)"), std::string::npos);
  EXPECT_EQ(count_occurrences(svg, "class=\"point baseline noisy\""), 0u);
}

TEST(ReportMarkdown, TablesHoldEveryCellAndDashesForMissingValues) {
  std::vector<CellResult> cells = sample_cells();
  cells[2].uptrained.bits_per_byte = 1.234;  // one value in an otherwise empty column
  cells[3].uptrained.perplexity = kNaN;
  ReportOptions options;
  options.model_name = "tiny-llama";
  const std::string md = report_markdown(cells, options);
  EXPECT_NE(md.find("Model: `tiny-llama`"), std::string::npos);
  EXPECT_NE(md.find("| Strategy | KV heads | Perplexity, step 0 | Perplexity, uptrained | Bits/byte, uptrained |"),
            std::string::npos);
  EXPECT_EQ(md.find("ROUGE"), std::string::npos);  // columns no cell measured are left out
  EXPECT_NE(md.find("| MHA (baseline) | 8 | 20.00 | \u2014 | \u2014 |"), std::string::npos);
  EXPECT_NE(md.find("| mean | 4 | 60.00 | 22.50 | \u2014 |"), std::string::npos);
  EXPECT_NE(md.find("| mean | 2 | 150.00 | 24.00 | 1.234 |"), std::string::npos);
  EXPECT_NE(md.find("| first | 4 | 90.00 | NaN | \u2014 |"), std::string::npos);
  // Speed table: ms/token at both batches, speedups, KV bytes (8 heads: 2*4*8*64*2 = 8 KiB).
  EXPECT_NE(md.find("| MHA (baseline) | 8 | 2.00 | 0.800 | 1.00\u00d7 | 1.00\u00d7 | 8.0 KiB | 100.0% |"),
            std::string::npos);
  EXPECT_NE(md.find("| first | 2 | 1.80 | 0.400 | 1.11\u00d7 | 2.00\u00d7 | 2.0 KiB | 25.0% |"), std::string::npos);
  EXPECT_NE(md.find("![Perplexity after uptraining vs decode speed](quality_vs_speed.svg)"), std::string::npos);
  EXPECT_NE(md.find("![Uptraining loss curves](loss_curves.svg)"), std::string::npos);
  // The NaN is called out under Notes.
  const size_t notes = md.find("## Notes");
  ASSERT_NE(notes, std::string::npos);
  EXPECT_NE(md.find("first, 4 KV heads: non-finite values (Perplexity (uptrained) NaN)", notes), std::string::npos);
}

// How the speed table prints byte sizes, parameter counts and wall times.
TEST(ReportMarkdown, SpeedTableFiguresAsPrinted) {
  std::vector<CellResult> cells = sample_cells();
  cells[1].kv_bytes_per_token = 1536 * 1024;
  cells[1].parameters = 6'738'415'616;
  cells[1].wall_seconds = 303;
  cells[2].kv_bytes_per_token = 512;
  cells[2].parameters = 999;
  cells[2].wall_seconds = 3725;
  cells[3].kv_bytes_per_token = int64_t(3) << 30;
  cells[3].parameters = 12'345;
  cells[3].wall_seconds = 42;
  const std::string md = report_markdown(cells);
  EXPECT_NE(md.find("| 8.0 KiB | 100.0% | 10.01M | 13s |\n"), std::string::npos) << md;
  EXPECT_NE(md.find("| 1.5 MiB | 19200.0% | 6.74B | 5m 03s |\n"), std::string::npos) << md;
  EXPECT_NE(md.find("| 512 B | 6.2% | 999 | 1h 02m |\n"), std::string::npos) << md;
  EXPECT_NE(md.find("| 3.0 GiB | 39321600.0% | 12.3K | 42s |\n"), std::string::npos) << md;
  EXPECT_NE(md.find("| 2.0 KiB | 25.0% | 10.00M | 13s |\n"), std::string::npos) << md;
}

TEST(QualityVsSpeedSvg, OneWellFormedMarkerPerPlottableCell) {
  std::vector<CellResult> cells = sample_cells();
  cells.push_back(make_cell("<svd & co>", 2, 80, 23.5, 1.8, 0.4));  // must be escaped
  const std::string svg = quality_vs_speed_svg(cells);
  EXPECT_EQ(xml_problem(svg), "");
  EXPECT_EQ(count_occurrences(svg, "class=\"point"), cells.size());
  EXPECT_EQ(count_occurrences(svg, "class=\"point baseline\""), 1u);
  EXPECT_NE(svg.find("&lt;svd &amp; co&gt;"), std::string::npos);
  EXPECT_NE(svg.find("Decode speedup vs MHA at batch 16"), std::string::npos);
  EXPECT_NE(svg.find("lower is better"), std::string::npos);
  EXPECT_EQ(svg.find("nan"), std::string::npos);
  EXPECT_EQ(svg.find("<script"), std::string::npos);  // self-contained: no scripts, no links out
  EXPECT_EQ(svg.find("href"), std::string::npos);
}

TEST(QualityVsSpeedSvg, SkipsNonFiniteAndMissingValuesAndSaysWhy) {
  std::vector<CellResult> cells = sample_cells();
  cells[1].uptrained.perplexity = kNaN;
  cells[2].uptrained.perplexity.reset();
  cells[3].decode_ms_per_token[16] = kInf;
  cells[4].decode_ms_per_token.erase(16);
  const std::string svg = quality_vs_speed_svg(cells);
  EXPECT_EQ(xml_problem(svg), "");
  EXPECT_EQ(count_occurrences(svg, "class=\"point"), 1u);  // only the baseline is left
  EXPECT_EQ(svg.find("nan"), std::string::npos);
  EXPECT_EQ(svg.find("inf"), std::string::npos);
  const std::vector<std::string> warnings = report_warnings(cells);
  const std::string all = [&] {
    std::string text;
    for (const std::string& w : warnings) text += w + "\n";
    return text;
  }();
  EXPECT_NE(all.find("mean, 4 KV heads: non-finite values (Perplexity (uptrained) NaN)"), std::string::npos);
  EXPECT_NE(all.find("first, 4 KV heads: non-finite values (decode time at batch 16 inf)"), std::string::npos);
  EXPECT_NE(all.find("(no perplexity after uptraining): mean, 2 KV heads"), std::string::npos);
  EXPECT_NE(all.find("(no decode time at batch 16): first, 2 KV heads"), std::string::npos);
}

TEST(QualityVsSpeedSvg, EdgeCasesStayWellFormed) {
  // A single cell, no baseline: the x axis falls back to time per token.
  const std::vector<CellResult> single = {make_cell("mean", 4, 60, 22.5, 1.9, 0.5)};
  std::string svg = quality_vs_speed_svg(single);
  EXPECT_EQ(xml_problem(svg), "");
  EXPECT_EQ(count_occurrences(svg, "class=\"point"), 1u);
  EXPECT_NE(svg.find("Decode time per token at batch 16"), std::string::npos);
  EXPECT_NE(report_warnings(single).at(0).find("No MHA baseline"), std::string::npos);

  // Identical x (and y) everywhere.
  std::vector<CellResult> same;
  for (int64_t kv : {8, 4, 2, 1}) same.push_back(make_cell("mean", kv, 60, 22.5, 1.0, 1.0));
  svg = quality_vs_speed_svg(same);
  EXPECT_EQ(xml_problem(svg), "");
  EXPECT_EQ(count_occurrences(svg, "class=\"point"), 4u);
  EXPECT_EQ(svg.find("nan"), std::string::npos);

  // Nothing at all.
  svg = quality_vs_speed_svg({});
  EXPECT_EQ(xml_problem(svg), "");
  EXPECT_EQ(count_occurrences(svg, "class=\"point"), 0u);

  // Many cells: 6 strategies x 4 KV counts + MHA, all plotted.
  std::vector<CellResult> many = {make_baseline()};
  for (const char* strategy : {"mean", "first", "weighted", "random-weighted", "similarity", "svd"})
    for (int64_t kv : {8, 4, 2, 1})
      many.push_back(make_cell(strategy, kv, 100.0 / kv, 21 + 4.0 / kv, 1.9, 0.3 + 0.05 * kv));
  svg = quality_vs_speed_svg(many);
  EXPECT_EQ(xml_problem(svg), "");
  EXPECT_EQ(count_occurrences(svg, "class=\"point"), many.size());
}

// Every target on one chart: baseline, GQA and MLA cells at the same KV bytes sit at the same x,
// ordered by KV bytes relative to MHA.
TEST(QualityVsKvBytesSvg, OneMarkerPerCellPlacedByKvBytesVsMha) {
  const std::vector<CellResult> cells = mla_cells();
  const std::string svg = quality_vs_kv_bytes_svg(cells);
  EXPECT_EQ(xml_problem(svg), "");
  EXPECT_EQ(count_occurrences(svg, "class=\"point"), cells.size());
  EXPECT_EQ(count_occurrences(svg, "class=\"point baseline\""), 1u);
  EXPECT_EQ(count_occurrences(svg, "noisy"), 0u);  // no timings on this axis
  EXPECT_NE(svg.find("KV cache bytes per token vs MHA (fraction, \u2190 smaller is better)"), std::string::npos);
  EXPECT_NE(svg.find(">MHA KV bytes<"), std::string::npos);
  EXPECT_NE(svg.find(">MHA perplexity<"), std::string::npos);
  EXPECT_NE(svg.find(">MLA<"), std::string::npos);  // the legend names the strategy
  EXPECT_NE(svg.find("KV heads (MLA: equal bytes)"), std::string::npos);

  std::map<std::string, double> x;
  for (const auto& [tooltip, centre] : plotted_points(svg)) x[tooltip.substr(0, tooltip.find(':'))] = centre;
  ASSERT_EQ(x.size(), cells.size());
  const double quarter = x.at("mean, 2 KV heads"), half = x.at("mean, 4 KV heads"), mha = x.at("MHA baseline");
  EXPECT_LT(quarter, half);
  EXPECT_LT(half, mha);
  EXPECT_NEAR(x.at("first, 2 KV heads"), quarter, 0.2);
  EXPECT_NEAR(x.at("MLA rank 224 + rotary 32 (KV bytes of 2 KV heads)"), quarter, 0.2);
  EXPECT_NEAR(x.at("MLA rank 480 + rotary 32 (KV bytes of 4 KV heads)"), half, 0.2);
  EXPECT_NEAR((half - quarter) * 2, mha - half, 0.5);  // a linear axis of the fraction: 1/4, 1/2, 1
  EXPECT_NE(
      svg.find("MLA rank 224 + rotary 32 (KV bytes of 2 KV heads): perplexity 22.00, 25.0% of MHA&apos;s KV bytes"),
      std::string::npos);
  // The faint strategy lines: mean, first and MLA each join two points.
  EXPECT_EQ(count_occurrences(svg, "stroke-opacity=\"0.45\""), 3u);
}

TEST(QualityVsKvBytesSvg, SkipsCellsWithoutPerplexityOrKvBytesAndSaysWhy) {
  std::vector<CellResult> cells = mla_cells();
  cells[2].uptrained.perplexity.reset();  // mean, 2 KV heads: in neither quality chart
  cells[5].kv_bytes_per_token.reset();    // MLA at 4 KV heads' bytes
  cells[6].uptrained.perplexity = kNaN;   // MLA at 2 KV heads' bytes: warned about as non-finite
  const std::string svg = quality_vs_kv_bytes_svg(cells);
  EXPECT_EQ(xml_problem(svg), "");
  EXPECT_EQ(count_occurrences(svg, "class=\"point"), cells.size() - 3);
  EXPECT_EQ(svg.find("MLA rank"), std::string::npos);
  std::string all;
  for (const std::string& w : report_warnings(cells)) all += w + "\n";
  EXPECT_NE(all.find("Not in the quality-vs-KV-bytes chart (no KV bytes per token): MLA rank 480 + rotary 32 (KV "
                     "bytes of 4 KV heads)."),
            std::string::npos)
      << all;
  EXPECT_NE(all.find("Not in the quality-vs-speed or quality-vs-KV-bytes chart (no perplexity after uptraining): "
                     "mean, 2 KV heads."),
            std::string::npos)
      << all;
  EXPECT_NE(all.find("MLA rank 224 + rotary 32 (KV bytes of 2 KV heads): non-finite values"), std::string::npos) << all;
  EXPECT_EQ(count_occurrences(all, "Not in the"), 2u) << all;
}

TEST(QualityVsKvBytesSvg, WithoutBaselineBytesTheAxisIsBytes) {
  std::vector<CellResult> cells = mla_cells();
  cells[0].kv_bytes_per_token.reset();
  std::string svg = quality_vs_kv_bytes_svg(cells);
  EXPECT_EQ(xml_problem(svg), "");
  EXPECT_EQ(count_occurrences(svg, "class=\"point"), cells.size() - 1);
  EXPECT_NE(svg.find("KV cache bytes per token (bytes, \u2190 smaller is better)"), std::string::npos);
  EXPECT_NE(svg.find("perplexity 21.50, 4.0 KiB KV/token"), std::string::npos);
  EXPECT_NE(report_warnings(cells).at(0).find("The MHA baseline has no KV bytes per token"), std::string::npos);

  cells.erase(cells.begin());  // no baseline at all
  svg = quality_vs_kv_bytes_svg(cells);
  EXPECT_EQ(xml_problem(svg), "");
  EXPECT_EQ(count_occurrences(svg, "class=\"point"), cells.size());
  EXPECT_NE(svg.find("KV cache bytes per token (bytes,"), std::string::npos);

  svg = quality_vs_kv_bytes_svg({});
  EXPECT_EQ(xml_problem(svg), "");
  EXPECT_EQ(count_occurrences(svg, "class=\"point"), 0u);
  EXPECT_NE(svg.find("No result has both a perplexity after uptraining and KV bytes per token"), std::string::npos);
}

// MLA rows name their rank and the KV heads whose bytes they match; the title names MLA.
TEST(ReportMarkdown, MlaRowsTitleAndKvBytesChart) {
  std::vector<CellResult> cells = mla_cells();
  cells[6].uptrained.perplexity = kNaN;  // so the MLA cell's full name is in the notes too
  const std::string md = report_markdown(cells);
  EXPECT_EQ(md.rfind("# MHA \u2192 GQA / MLA conversion comparison\n", 0), 0u) << md;
  EXPECT_NE(md.find("(2 GQA strategies \u00d7 KV heads 4, 2, and MLA at the KV bytes of those KV-head counts)"),
            std::string::npos)
      << md;
  EXPECT_NE(md.find("| MLA rank 480 + rotary 32 | bytes of 4 | 40.00 | 21.50 |"), std::string::npos) << md;
  EXPECT_NE(md.find("| MLA rank 224 + rotary 32 | bytes of 2 | 1.95 | 0.450 |"), std::string::npos) << md;
  EXPECT_NE(md.find("| bytes of 2 |"), std::string::npos);
  EXPECT_NE(md.find("| 2.0 KiB | 25.0% |"), std::string::npos) << md;
  EXPECT_NE(md.find("![Perplexity after uptraining vs decode speed](quality_vs_speed.svg)\n\n"
                    "![Perplexity after uptraining vs KV cache bytes per token](quality_vs_kv_bytes.svg)"),
            std::string::npos)
      << md;
  const size_t notes = md.find("## Notes");
  ASSERT_NE(notes, std::string::npos);
  EXPECT_NE(md.find("MLA rank 224 + rotary 32 (KV bytes of 2 KV heads): non-finite values", notes), std::string::npos)
      << md;
  EXPECT_EQ(results_json(cells)["title"], "MHA \u2192 GQA / MLA conversion comparison");

  // GQA only: the default title stays; a title of one's own is kept with MLA too.
  EXPECT_EQ(report_markdown(sample_cells()).rfind("# MHA \u2192 GQA conversion comparison\n", 0), 0u);
  EXPECT_EQ(report_markdown(sample_cells()).find("MLA"), std::string::npos);
  ReportOptions options;
  options.title = "My comparison";
  EXPECT_EQ(report_markdown(cells, options).rfind("# My comparison\n", 0), 0u);
  // MLA only.
  const std::vector<CellResult> only_mla = {make_baseline(), make_mla(4, 40, 21.5), make_mla(2, 70, 22.0)};
  EXPECT_NE(report_markdown(only_mla).find("2 converted models (MLA at the KV bytes of 4, 2 KV heads)"),
            std::string::npos)
      << report_markdown(only_mla);
}

TEST(ResultsCsv, LatentColumnsForMlaCells) {
  const std::vector<CellResult> cells = mla_cells();
  const std::string csv = results_csv(cells);
  std::vector<std::string> lines;
  std::istringstream in(csv);
  for (std::string line; std::getline(in, line);) lines.push_back(line);
  ASSERT_EQ(lines.size(), cells.size() + 1);
  EXPECT_NE(lines[0].find(",kv_bytes_per_token,latent_rank,latent_rope_dims,parameters,"), std::string::npos)
      << lines[0];
  EXPECT_EQ(lines[6].rfind("mla,4,false,", 0), 0u) << lines[6];
  EXPECT_NE(lines[6].find(",4096,480,32,10004000,"), std::string::npos) << lines[6];
  EXPECT_NE(lines[7].find(",2048,224,32,10002000,"), std::string::npos) << lines[7];
  EXPECT_NE(lines[2].find(",4096,,,10004000,"), std::string::npos) << lines[2];  // GQA: empty
  const json results = results_json(cells);
  EXPECT_EQ(results["cells"][6]["latent_rank"], 224);
  EXPECT_FALSE(results["cells"][1].contains("latent_rank"));
  for (size_t i = 0; i < cells.size(); ++i) EXPECT_EQ(cell_from_json(results["cells"][i], "results.json"), cells[i]);
}

TEST(LossCurvesSvg, OneCurvePerCellAndGapsAtNonFiniteLosses) {
  std::vector<CellResult> cells = sample_cells();  // 4 cells with train + valid curves
  std::string svg = loss_curves_svg(cells);
  EXPECT_EQ(xml_problem(svg), "");
  EXPECT_EQ(count_occurrences(svg, "class=\"curve\""), 8u);
  EXPECT_NE(svg.find("Training loss"), std::string::npos);
  EXPECT_NE(svg.find("Validation loss"), std::string::npos);
  EXPECT_NE(svg.find("stroke-dasharray"), std::string::npos);  // 2 KV heads drawn dashed

  cells[1].train_loss = {{0, 5.0}, {10, 4.0}, {20, kNaN}, {30, 3.5}, {40, 3.4}};  // two segments
  cells[2].valid_loss = {{0, kInf}};                                              // nothing to draw
  svg = loss_curves_svg(cells);
  EXPECT_EQ(xml_problem(svg), "");
  EXPECT_EQ(count_occurrences(svg, "class=\"curve\""), 8u);
  EXPECT_EQ(svg.find("nan"), std::string::npos);

  svg = loss_curves_svg({make_baseline()});  // no curves anywhere
  EXPECT_EQ(xml_problem(svg), "");
  EXPECT_EQ(count_occurrences(svg, "class=\"curve\""), 0u);
  EXPECT_NE(svg.find("No uptraining curves recorded"), std::string::npos);
}

TEST(LossCurvesSvg, NamesMlaInTheLegend) {
  const std::vector<CellResult> cells = mla_cells();
  const std::string svg = loss_curves_svg(cells);
  EXPECT_EQ(xml_problem(svg), "");
  EXPECT_EQ(count_occurrences(svg, "class=\"curve\""), 2 * (cells.size() - 1));  // the baseline has no curves
  EXPECT_NE(svg.find(">MLA<"), std::string::npos);
  EXPECT_NE(svg.find("KV heads (MLA: equal bytes)"), std::string::npos);
  EXPECT_EQ(loss_curves_svg(sample_cells()).find("MLA"), std::string::npos);
}

TEST(LossCurvesSvg, CutsTheAxisAboveAFarOffStart) {
  CellResult cell = make_cell("random-weighted", 2, 20, 20, 1, 1);
  cell.valid_loss.clear();
  cell.train_loss.clear();
  for (int step = 0; step <= 100; ++step) cell.train_loss.push_back({step, 3.0 + 7.0 * std::exp(-step / 3.0)});
  const std::string svg = loss_curves_svg({cell});
  EXPECT_EQ(xml_problem(svg), "");
  EXPECT_NE(svg.find("y axis cut at"), std::string::npos);
  EXPECT_NE(svg.find("clip-path=\"url(#plot-area-0)\""), std::string::npos);
}

TEST(WriteReport, WritesAllFilesAtomicallyAndLeavesNoTemporaries) {
  TempDir dir;
  const std::string out = dir.path() + "/report/nested";  // created with its parents
  const std::vector<CellResult> cells = sample_cells();
  EXPECT_TRUE(write_report(cells, out).empty());
  std::vector<std::string> names = files::list_directory(out);
  std::sort(names.begin(), names.end());
  const std::vector<std::string> expected = {
      "loss_curves.svg", "quality_vs_kv_bytes.svg", "quality_vs_speed.svg", "report.md", "results.csv", "results.json"};
  EXPECT_EQ(names, expected);
  EXPECT_EQ(read_text(out + "/results.csv"), results_csv(cells));
  EXPECT_EQ(read_text(out + "/report.md"), report_markdown(cells));
  EXPECT_EQ(xml_problem(read_text(out + "/quality_vs_speed.svg")), "");
  EXPECT_EQ(xml_problem(read_text(out + "/quality_vs_kv_bytes.svg")), "");
  EXPECT_EQ(read_text(out + std::string("/") + kQualityVsKvBytesSvg), quality_vs_kv_bytes_svg(cells));
  EXPECT_EQ(json::parse(read_text(out + "/results.json")), results_json(cells));

  // Writing again over an existing report replaces it, still without leftovers.
  std::vector<CellResult> fewer(cells.begin(), cells.begin() + 2);
  const std::vector<std::string> warnings = write_report(fewer, out);
  names = files::list_directory(out);
  std::sort(names.begin(), names.end());
  EXPECT_EQ(names, expected);
  EXPECT_EQ(read_text(out + "/results.csv"), results_csv(fewer));

  // With MLA cells: the same files, the MLA cells in the KV-bytes chart and the report.
  const std::vector<CellResult> with_mla = mla_cells();
  EXPECT_TRUE(write_report(with_mla, out).empty());
  names = files::list_directory(out);
  std::sort(names.begin(), names.end());
  EXPECT_EQ(names, expected);
  EXPECT_EQ(count_occurrences(read_text(out + "/quality_vs_kv_bytes.svg"), "class=\"point"), with_mla.size());
  EXPECT_NE(read_text(out + "/report.md").find("| MLA rank 224 + rotary 32 | bytes of 2 |"), std::string::npos);
}

TEST(WriteReport, RefusesContradictoryInputBeforeWritingAnything) {
  TempDir dir;
  const std::string out = dir.path() + "/report";
  std::vector<CellResult> duplicate = sample_cells();
  duplicate.push_back(duplicate[1]);
  EXPECT_THROW(write_report(duplicate, out), InputError);
  std::vector<CellResult> two_baselines = sample_cells();
  two_baselines.push_back(make_baseline());
  EXPECT_THROW(write_report(two_baselines, out), InputError);
  ReportOptions options;
  options.speed_batch = 64;
  try {
    write_report(sample_cells(), out, options);
    FAIL() << "a batch no cell measured was accepted";
  } catch (const InputError& e) {
    EXPECT_NE(std::string(e.what()).find("measured: 1, 16"), std::string::npos) << e.what();
  }
  EXPECT_FALSE(files::exists(out));

  std::ofstream(dir.path() + "/a-file") << "x";
  EXPECT_THROW(write_report(sample_cells(), dir.path() + "/a-file"), InputError);
}

TEST(WriteReport, ChosenSpeedBatchDrivesTheChart) {
  ReportOptions options;
  options.speed_batch = 1;
  const std::string svg = quality_vs_speed_svg(sample_cells(), options);
  EXPECT_NE(svg.find("Decode speedup vs MHA at batch 1 "), std::string::npos);
  EXPECT_EQ(results_json(sample_cells(), options)["speed_batch"], 1);
}

}  // namespace
}  // namespace gqa::report
