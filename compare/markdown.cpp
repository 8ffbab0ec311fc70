#include "compare/markdown.h"

#include <algorithm>
#include <functional>
#include <sstream>

#include "compare/metrics.h"
#include "core/format.h"

namespace gqa::report {
namespace {

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

// Strategy and KV heads. An MLA row: "MLA rank 72 + rotary 24" and "bytes of 2", the GQA KV-head
// count whose cache bytes it matches.
std::vector<Column> identity_columns() {
  return {{"Strategy",
           [](const CellResult& c) {
             return std::optional<std::string>(c.is_baseline ? "MHA (baseline)" : markdown_escape(strategy_label(c)));
           }},
          {"KV heads", [](const CellResult& c) {
             return std::optional<std::string>((is_mla(c) ? "bytes of " : "") + std::to_string(c.kv_heads));
           }}};
}

std::string quality_table(const Plan& plan) {
  std::vector<Column> columns = identity_columns();
  for (const Metric& metric : metrics())
    for (const Phase& phase : phases())
      columns.push_back({std::string(metric.label) + ", " + phase.label, [&metric, &phase](const CellResult& c) {
                           const std::optional<double>& v = (c.*phase.member).*metric.member;
                           return v ? std::optional<std::string>(metric.format(*v)) : std::nullopt;
                         }});
  return markdown_table(columns, plan.ordered);
}

std::string speed_table(const Plan& plan) {
  std::vector<Column> columns = identity_columns();
  const auto noisy_mark = [](const CellResult& c, int64_t batch) {
    return is_noisy(c, batch) ? std::string(" (noisy)") : std::string();
  };
  for (int64_t batch : plan.batches) {
    columns.push_back({"ms/token, batch " + std::to_string(batch), [batch](const CellResult& c) {
                         const std::optional<double> ms = decode_ms(c, batch);
                         return ms ? std::optional<std::string>(format_significant(*ms)) : std::nullopt;
                       }});
    columns.push_back({"Spread, batch " + std::to_string(batch), [batch, noisy_mark](const CellResult& c) {
                         const std::optional<double> spread = timing_spread(c, batch);
                         return spread ? std::optional<std::string>(format_percent(*spread) + noisy_mark(c, batch))
                                       : std::nullopt;
                       }});
  }
  for (int64_t batch : plan.batches)
    columns.push_back({"Speedup, batch " + std::to_string(batch), [&plan, batch](const CellResult& c) {
                         const std::optional<double> s = speedup(plan, c, batch);
                         const std::string mark = speedup_is_noisy(plan, c, batch) ? " (noisy)" : "";
                         return s ? std::optional<std::string>(format_fixed(*s, 2) + "\u00d7" + mark) : std::nullopt;
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
                       return format_percent(double(*c.kv_bytes_per_token) /
                                             double(*plan.baseline->kv_bytes_per_token));
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

// What the speed table's timing figures mean, for the kinds of timing its cells hold (cells
// written before issue #20 have no spread, pairing or noisy flag).
std::string timing_notes(const Plan& plan) {
  const auto any = [&](auto has) { return std::any_of(plan.ordered.begin(), plan.ordered.end(), has); };
  const bool spreads = any([](const CellResult* c) { return !c->decode_spread.empty(); });
  const bool paired = any([](const CellResult* c) { return !c->paired_mha_ms_per_token.empty(); });
  const bool noisy = any([](const CellResult* c) { return !c->noisy_batches.empty(); });
  std::string notes;
  if (spreads)
    notes +=
        "ms/token is the fastest of the timed repeats (another job on the machine only adds time); spread is "
        "the slowest repeat over the fastest, minus 1 (the larger of the model's and its paired MHA run's). ";
  if (paired)
    notes +=
        "Each converted model was timed in turns with the MHA model (MHA, model, MHA, model, ...), so that "
        "load hit both; its speedup is over that paired MHA time. ";
  if (noisy)
    notes += std::string("A timing marked (noisy) had a spread above ") +
             (plan.noisy_spread ? format_percent(*plan.noisy_spread) : std::string("the threshold")) +
             " (gqa compare --noisy-spread), was measured once more, and was still above it: its figures are "
             "unreliable, and the chart draws it hollow. ";
  if (!notes.empty()) notes.pop_back();
  return notes.empty() ? "" : "\n" + notes + "\n";
}

// What the converted models are: "2 strategies × KV heads 4, 2"; with MLA cells "2 GQA strategies
// × KV heads 4, 2, and MLA at the KV bytes of those KV-head counts", or "MLA at the KV bytes of
// 4, 2 KV heads" without GQA cells.
std::string grid_description(const Plan& plan) {
  std::vector<std::string> kv;
  for (int64_t k : plan.kv_counts) kv.push_back(std::to_string(k));
  const size_t gqa = plan.strategies.size() - (plan.has_mla ? 1 : 0);
  if (plan.has_mla && gqa == 0) return "MLA at the KV bytes of " + join(kv, ", ") + " KV heads";
  return std::to_string(gqa) + (plan.has_mla ? " GQA" : "") + " strateg" + (gqa == 1 ? "y" : "ies") +
         (kv.empty() ? "" : " \u00d7 KV heads " + join(kv, ", ")) +
         (plan.has_mla ? ", and MLA at the KV bytes of those KV-head counts" : "");
}

}  // namespace

std::string render_markdown(const Plan& plan, const ReportOptions& options, const std::vector<std::string>& warnings) {
  std::ostringstream md;
  md << "# " << report_title(plan, options) << "\n\n";
  if (!options.model_name.empty()) md << "Model: `" << options.model_name << "`\n\n";
  const size_t converted = plan.ordered.size() - (plan.baseline ? 1 : 0);
  md << plan.ordered.size() << " result" << (plan.ordered.size() == 1 ? "" : "s") << ": " << converted
     << " converted model" << (converted == 1 ? "" : "s") << " (" << grid_description(plan) << ")"
     << (plan.baseline ? " and the MHA baseline" : ", no MHA baseline") << ".\n"
     << "\"Step 0\" is measured right after conversion, \"uptrained\" after uptraining. Speedup is MHA's "
        "decode "
        "time per token divided by the model's, at the same batch size. "
     << kMissing << " marks a value that was not measured.\n\n";
  if (plan.has_mla)
    md << "MLA rows cache a latent of rank R (and D shared rotary key dims) per token and layer instead of keys and "
          "values; their KV heads column names the GQA KV-head count whose cache bytes they match.\n\n";
  md << "## Quality\n\n" << quality_table(plan) << "\n";
  md << "## Decode speed and memory\n\n" << speed_table(plan) << timing_notes(plan) << "\n";
  md << "## Charts\n\n"
     << "![Perplexity after uptraining vs decode speed](" << kQualityVsSpeedSvg << ")\n\n"
     << "![Perplexity after uptraining vs KV cache bytes per token](" << kQualityVsKvBytesSvg << ")\n\n"
     << "![Uptraining loss curves](" << kLossCurvesSvg << ")\n";
  if (plan.baseline && !plan.baseline->uptrained.perplexity && plan.baseline->step0.perplexity)
    md << "\nThe MHA baseline was not uptrained: the perplexity charts place it at its step-0 perplexity.\n";
  if (!warnings.empty()) {
    md << "\n## Notes\n\n";
    for (const std::string& warning : warnings) md << "- " << markdown_escape(warning) << "\n";
  }
  return md.str();
}

}  // namespace gqa::report
