// gqa eval MODEL_DIR --text FILE...: held-out perplexity and bits per byte (sliding window when the
// text is longer than the context), optionally beside a baseline model measured in the same run.
#include <iomanip>
#include <iostream>

#include "cli/options.h"
#include "core/error.h"
#include "eval/perplexity.h"

namespace gqa::cli {

int eval(const Args& args) {
  po::options_description opts("gqa eval MODEL_DIR --text FILE... [--baseline DIR] [options]");
  int64_t max_tokens = 0, context = 0, stride = 0, batch = 0;
  std::string baseline;
  bool json_out = false;
  opts.add_options()("help,h", "show options")
      ("model", po::value<std::string>()->required(), "model folder")
      ("text", po::value<std::vector<std::string>>()->multitoken()->required(), "held-out text files (plain or .gz)")
      ("baseline", po::value<std::string>(&baseline), "a second model (e.g. the MHA source) measured on the same tokens")
      ("max-tokens", po::value<int64_t>(&max_tokens)->default_value(16384), "tokens scored per file")
      ("context", po::value<int64_t>(&context)->default_value(0), "window length (0: min(model positions, 512))")
      ("stride", po::value<int64_t>(&stride)->default_value(0), "window step (0: context / 2)")
      ("batch", po::value<int64_t>(&batch)->default_value(8), "windows per forward")
      ("json", po::bool_switch(&json_out), "one JSON object per model and file instead of the table");
  po::variables_map vm;
  if (!parse_options(args, opts, vm, {"model"})) return 0;
  if (max_tokens < 2 || context < 0 || stride < 0 || batch < 1)
    throw InputError("--max-tokens/--context/--stride/--batch", "", "must be positive");
  std::vector<std::string> models{vm["model"].as<std::string>()};
  if (!baseline.empty()) models.push_back(baseline);
  for (const std::string& dir : models) {
    auto model = load_model(dir);
    auto tokenizer = load_tokenizer(dir);
    const ModelConfig& c = model->config();
    const int64_t ctx = context > 0 ? context : c.max_positions > 0 ? std::min<int64_t>(c.max_positions, 512) : 512;
    if (c.max_positions > 0 && ctx > c.max_positions)
      throw InputError("--context", "", "is beyond the model's " + std::to_string(c.max_positions) + " positions");
    for (const std::string& file : vm["text"].as<std::vector<std::string>>()) {
      const auto [ids, bytes] = read_eval_tokens(*tokenizer, file, max_tokens);
      const PerplexityResult r = perplexity(*model, ids, bytes, ctx, stride > 0 ? stride : std::max<int64_t>(1, ctx / 2), batch);
      if (json_out) {
        std::cout << nlohmann::json{{"model", dir}, {"text", file}, {"tokens", r.tokens}, {"bytes", r.bytes},
                                    {"perplexity", r.perplexity()}, {"bits_per_byte", r.bits_per_byte()}, {"context", ctx}}
                         .dump()
                  << "\n";
      } else {
        std::cout << std::fixed << std::setprecision(3) << dir << "  " << file << ": perplexity " << r.perplexity()
                  << ", bits/byte " << std::setprecision(4) << r.bits_per_byte() << " (" << r.tokens << " tokens, context "
                  << ctx << ")\n";
      }
    }
  }
  return 0;
}

}  // namespace gqa::cli
