// cleave generate --model FILE --prompt TEXT [--adapter FILE] [-n N] ...
#include <iostream>

#include "cli/commands.h"
#include "cli/model_flags.h"
#include "model/generate.h"

namespace cleave::cli {

ArgParser generate_parser() {
  ArgParser parser("generate", "--model FILE.gguf --prompt TEXT [options]",
                   "Continues the prompt and streams the text to stdout (model and thread\n"
                   "information go to stderr). Temperature 0 is greedy decoding.");
  add_model_flags(parser)
      .value("--prompt", "TEXT", "the text to continue (BOS is added)")
      .value("--n-predict", "N", "new tokens at most (default 64); stops early at EOS", "-n")
      .value("--temperature", "T", "0: greedy; higher: more random (default 0.8)")
      .value("--top-k", "K", "sample from the K most likely tokens; 0: all (default 40)")
      .value("--top-p", "P", "sample from the smallest set with probability P (default 0.95)")
      .value("--seed", "S", "sampling seed (default 0): the same seed gives the same text");
  return add_runtime_flags(parser);
}

int run_generate(const ParsedArgs& args) {
  const ModelFlags model_flags = read_model_flags(args);
  const std::string prompt = args.require("--prompt");
  SamplingOptions options;
  options.max_new_tokens = args.get_int("--n-predict", options.max_new_tokens);
  options.temperature = args.get_double("--temperature", options.temperature);
  options.top_k = args.get_int("--top-k", options.top_k);
  options.top_p = args.get_double("--top-p", options.top_p);
  const int64_t seed = args.get_int("--seed", 0);
  if (seed < 0) throw UsageError("--seed must be >= 0");
  options.seed = static_cast<uint64_t>(seed);
  try {
    options.validate();
  } catch (const std::invalid_argument& e) {
    throw UsageError(e.what());
  }

  const AdaptedModel adapted = load_adapted_model(model_flags, std::cerr);
  const BaseModel& base = adapted.base;

  const std::vector<TokenId> ids = base.tokenizer->encode(prompt, /*add_bos=*/true);
  std::cout << prompt << std::flush;
  generate(*base.model, adapted.applied(), ids, base.tokenizer->eos(), options,
           [&](TokenId id) { std::cout << base.tokenizer->piece(id) << std::flush; });
  std::cout << std::endl;
  return 0;
}

}  // namespace cleave::cli
