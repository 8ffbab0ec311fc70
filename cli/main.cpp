// gqa: convert MHA checkpoints to grouped-query attention, uptrain, evaluate.
// Every user error becomes one line on stderr and exit code 2.
#include <c10/util/Exception.h>
#include <boost/program_options/errors.hpp>

#include <cstdio>
#include <iostream>

#include "cli/verbs.h"
#include "core/error.h"

namespace {

struct Verb {
  const char* name;
  int (*run)(const gqa::cli::Args&);
  const char* help;
};

const Verb kVerbs[] = {
    {"inspect", gqa::cli::inspect, "show family, heads, KV groups, head dims, parameters and KV-cache size"},
    {"generate", gqa::cli::generate, "generate text from a prompt (greedy or sampling) with the KV cache"},
    {"convert", gqa::cli::convert,
     "turn MHA attention into GQA/MQA (mean, first, random, weighted, similarity, svd) or latent attention (MLA)"},
    {"fold", gqa::cli::fold, "bake learned WGQA scalars into plain GQA weights"},
    {"export", gqa::cli::export_folder, "write a latent (MLA) Llama as a Hugging Face deepseek_v3 folder"},
    {"uptrain", gqa::cli::uptrain, "continue training a converted model for a fraction of its pretraining tokens"},
    {"eval", gqa::cli::eval, "perplexity, minimal pairs and decode speed, beside a baseline model"},
    {"compare", gqa::cli::compare, "strategies x KV heads: convert, uptrain, evaluate against MHA; one report"},
    {"train", gqa::cli::train, "train a fresh model of any family and grouping from a small config"},
    {"bench", gqa::cli::bench, "bench decode: time per token, ideal attention speedup and bandwidth vs a baseline"},
};

void usage(std::ostream& os) {
  os << "usage: gqa <verb> [options]   (gqa <verb> --help for its options)\n\nverbs:\n";
  for (const auto& v : kVerbs)
    os << "  " << v.name << std::string(12 - std::string(v.name).size(), ' ') << v.help << "\n";
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2) {
    std::cerr << "gqa: error: no verb given (run gqa --help for the list)\n";
    return 2;
  }
  if (std::string(argv[1]) == "--help" || std::string(argv[1]) == "-h") {
    usage(std::cout);
    return 0;
  }
  const std::string verb = argv[1];
  gqa::cli::Args args(argv + 2, argv + argc);
  for (const auto& v : kVerbs) {
    if (verb != v.name) continue;
    try {
      return v.run(args);
    } catch (const gqa::InputError& e) {
      std::cerr << "gqa " << verb << ": error: " << e.what() << "\n";
      return 2;
    } catch (const boost::program_options::error& e) {
      std::cerr << "gqa " << verb << ": error: " << e.what() << " (see gqa " << verb << " --help)\n";
      return 2;
    } catch (const c10::Error& e) {
      std::cerr << "gqa " << verb << ": error: " << e.what_without_backtrace() << "\n";
      return 1;
    } catch (const std::exception& e) {
      std::cerr << "gqa " << verb << ": error: " << e.what() << "\n";
      return 1;
    }
  }
  std::cerr << "gqa: error: unknown verb '" << verb << "' (run gqa --help for the list)\n";
  return 2;
}
