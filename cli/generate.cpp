// gqa generate DIR --prompt "...": a quick look at what a (converted) model says.
#include <algorithm>
#include <iostream>

#include "cli/options.h"
#include "core/error.h"
#include "core/model/generate.h"
#include "core/model/memory_plan.h"
#include "core/tokenizers/tokenizer.h"

namespace gqa::cli {

int generate(const Args& args) {
  po::options_description opts("gqa generate DIR --prompt TEXT [options]");
  GenerateOptions g;
  std::vector<std::string> prompts;
  std::string dtype_text;
  opts.add_options()("help,h", "show options")("dir", po::value<std::string>()->required(),
                                               "Hugging Face model folder")(
      "prompt,p", po::value<std::vector<std::string>>(&prompts)->required(), "prompt text (repeat for a batch)")(
      "max-new-tokens,n", po::value<int64_t>(&g.max_new_tokens)->default_value(32), "tokens to generate")(
      "sample", po::bool_switch(&g.sample), "sample instead of greedy decoding")(
      "temperature", po::value<double>(&g.temperature)->default_value(1.0), "sampling temperature")(
      "top-k", po::value<int64_t>(&g.top_k)->default_value(0), "sample from the k most likely tokens (0: all)")(
      "top-p", po::value<double>(&g.top_p)->default_value(1.0), "nucleus sampling threshold")(
      "seed", po::value<uint64_t>(&g.seed)->default_value(0), "sampling seed")(
      "beams", po::value<int64_t>(&g.num_beams)->default_value(1), "beam search with this many beams (1: greedy)")(
      "length-penalty", po::value<double>(&g.length_penalty)->default_value(1.0),
      "beam score = log-prob / length^this")("early-stopping", po::bool_switch(&g.early_stopping),
                                             "beam search ends once every prompt has its beams finished")(
      "dtype", po::value<std::string>(&dtype_text)->default_value("auto"),
      "weights and activations: auto (the checkpoint's own) | f32 | bf16 | f16");
  po::variables_map vm;
  if (!parse_options(args, opts, vm)) return 0;
  if (g.max_new_tokens <= 0) throw InputError("--max-new-tokens", "", "must be positive");
  if (!(g.temperature > 0)) throw InputError("--temperature", "", "must be positive");
  if (!(g.top_p > 0 && g.top_p <= 1)) throw InputError("--top-p", "", "must be in (0, 1]");
  if (g.num_beams < 1) throw InputError("--beams", "", "must be at least 1");
  if (g.num_beams > 1 && g.sample)
    throw InputError("--beams", "", "beam search does not sample: drop --sample or use --beams 1");

  const std::string dir = vm["dir"].as<std::string>();
  Checkpoint ckpt(dir);
  auto tokenizer = load_tokenizer(dir);
  std::vector<std::vector<int64_t>> ids;
  int64_t longest = 0;
  for (const auto& p : prompts) {
    ids.push_back(tokenizer->encode_with_special(p));
    longest = std::max(longest, int64_t(ids.back().size()));
  }
  const at::ScalarType dtype = runtime_dtype(dtype_text, ckpt);
  const int64_t rows = int64_t(prompts.size()) * g.num_beams * (g.num_beams > 1 ? 2 : 1);
  std::vector<std::pair<std::string, MemoryNeed>> smaller;
  if (dtype == at::kFloat)
    smaller.push_back({"--dtype bf16", whole_model_need(ckpt, at::kBFloat16, rows, longest + g.max_new_tokens, true)});
  require_memory(dir, whole_model_need(ckpt, dtype, rows, longest + g.max_new_tokens, true), at::kCPU, smaller);
  auto model = load_model(ckpt, Placement{at::kCPU, dtype});
  g.eos_id = ckpt.config().eos_token_id ? ckpt.config().eos_token_id : tokenizer->eos_id();
  auto out = gqa::generate(*model, ids, g);
  for (size_t i = 0; i < prompts.size(); ++i) {
    if (prompts.size() > 1) std::cout << "[" << i << "] ";
    std::cout << (model->is_encoder_decoder() ? "" : prompts[i]) << tokenizer->decode(out[i]) << "\n";
  }
  return 0;
}

}  // namespace gqa::cli
