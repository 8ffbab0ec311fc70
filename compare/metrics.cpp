#include "compare/metrics.h"

#include "core/format.h"

namespace gqa::report {
namespace {

std::string format_three_decimals(double v) { return format_fixed(v, 3); }

}  // namespace

std::string format_perplexity(double v) { return format_fixed(v, 2); }

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

const std::vector<Phase>& phases() {
  static const std::vector<Phase> list = {{"step0", "step 0", &CellResult::step0},
                                          {"uptrained", "uptrained", &CellResult::uptrained}};
  return list;
}

}  // namespace gqa::report
