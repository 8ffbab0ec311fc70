// gqa generate DIR --prompt "...": a quick look at what a (converted) model says.
#include <iostream>

#include "cli/options.h"
#include "core/error.h"
#include "core/model/generate.h"
#include "core/tokenizers/tokenizer.h"

namespace gqa::cli {

int generate(const Args& args) {
  po::options_description opts("gqa generate DIR --prompt TEXT [options]");
  GenerateOptions g;
  std::vector<std::string> prompts;
  opts.add_options()("help,h", "show options")
      ("dir", po::value<std::string>()->required(), "Hugging Face model folder")
      ("prompt,p", po::value<std::vector<std::string>>(&prompts)->required(), "prompt text (repeat for a batch)")
      ("max-new-tokens,n", po::value<int64_t>(&g.max_new_tokens)->default_value(32), "tokens to generate")
      ("sample", po::bool_switch(&g.sample), "sample instead of greedy decoding")
      ("temperature", po::value<double>(&g.temperature)->default_value(1.0), "sampling temperature")
      ("top-k", po::value<int64_t>(&g.top_k)->default_value(0), "sample from the k most likely tokens (0: all)")
      ("top-p", po::value<double>(&g.top_p)->default_value(1.0), "nucleus sampling threshold")
      ("seed", po::value<uint64_t>(&g.seed)->default_value(0), "sampling seed")
      ("beams", po::value<int64_t>(&g.num_beams)->default_value(1), "beam search with this many beams (1: greedy)")
      ("length-penalty", po::value<double>(&g.length_penalty)->default_value(1.0), "beam score = log-prob / length^this")
      ("early-stopping", po::bool_switch(&g.early_stopping), "beam search ends once every prompt has its beams finished");
  po::variables_map vm;
  if (!parse_options(args, opts, vm)) return 0;
  if (g.max_new_tokens <= 0) throw InputError("--max-new-tokens", "", "must be positive");
  if (!(g.temperature > 0)) throw InputError("--temperature", "", "must be positive");
  if (!(g.top_p > 0 && g.top_p <= 1)) throw InputError("--top-p", "", "must be in (0, 1]");
  if (g.num_beams < 1) throw InputError("--beams", "", "must be at least 1");
  if (g.num_beams > 1 && g.sample) throw InputError("--beams", "", "beam search does not sample: drop --sample or use --beams 1");

  const std::string dir = vm["dir"].as<std::string>();
  Checkpoint ckpt(dir);
  auto tokenizer = load_tokenizer(dir);
  auto model = load_model(ckpt);
  g.eos_id = ckpt.config().eos_token_id ? ckpt.config().eos_token_id : tokenizer->eos_id();
  std::vector<std::vector<int64_t>> ids;
  for (const auto& p : prompts) ids.push_back(tokenizer->encode_with_special(p));
  auto out = gqa::generate(*model, ids, g);
  for (size_t i = 0; i < prompts.size(); ++i) {
    if (prompts.size() > 1) std::cout << "[" << i << "] ";
    std::cout << (model->is_encoder_decoder() ? "" : prompts[i]) << tokenizer->decode(out[i]) << "\n";
  }
  return 0;
}

}  // namespace gqa::cli
