// cleave eval --model FILE.gguf --data FILE [--adapter FILE] [--ctx N] ...
#include <algorithm>
#include <cstdio>
#include <iostream>
#include <optional>

#include "cli/commands.h"
#include "cli/eval_generate.h"
#include "cli/model_flags.h"
#include "client/batching.h"
#include "client/dataset.h"
#include "client/evaluate.h"
#include "model/chat_template.h"

namespace cleave::cli {
namespace {

// Without --ctx, examples are scored one per row up to this many tokens
// (or the model's context if shorter): the padded rows stay small.
constexpr int64_t kDefaultEvalSeqLen = 512;

}  // namespace

ArgParser eval_parser() {
  ArgParser parser("cleave eval", "--model FILE.gguf --data FILE [options]",
                   "Prints the perplexity of the model (with an adapter, if given) on the data;\n"
                   "`perplexity: X` is the last line.\n"
                   "With --ctx N on a plain-text file: llama.cpp's llama-perplexity scheme (the\n"
                   "text tokenized once with BOS, cut into chunks of N tokens that each start\n"
                   "with BOS, the second half of each chunk scored), so figures compare with\n"
                   "llama.cpp. Otherwise every record of a JSONL (or blank-line separated\n"
                   "text) file is scored on its own, up to --ctx or min(model context, 512)\n"
                   "tokens; prompt tokens of prompt/completion records are not scored.\n"
                   "With --generate: greedy decoding from each distinct prompt of a\n"
                   "prompt/completion JSONL, scored against all completions of that prompt\n"
                   "with the E2E NLG Challenge's BLEU-4 and NIST (mteval-v13a), ROUGE-L and\n"
                   "CIDEr-D (MS-COCO); `bleu: X` is the last line, `cider: X` before it.");
  add_model_flags(parser)
      .value("--data", "FILE", "JSONL ({\"text\"} or {\"prompt\",\"completion\"}) or plain text")
      .value("--ctx", "N", "chunk length (text) or maximum tokens per record (JSONL)")
      .value("--batch-size", "B", "rows per forward pass").defaults_to(4)
      .value("--chat-template", "NAME",
             "prompt/completion records as data.chat_template writes them: none | "
             "auto | llama3 | chatml | llama2")
      .defaults_to("none");
  add_generation_eval_flags(parser);
  return add_runtime_flags(parser);
}

int run_eval(const ParsedArgs& args) {
  const ModelFlags model_flags = read_model_flags(args);
  const std::string data_path = args.require("--data");
  const int64_t batch_size = args.get_int("--batch-size");
  if (batch_size <= 0) throw UsageError("--batch-size must be > 0");
  const std::string chat_template = args.require("--chat-template");
  const std::vector<std::string> settings = data::chat_template_settings();
  if (std::find(settings.begin(), settings.end(), chat_template) == settings.end()) {
    std::string names;
    for (const std::string& name : settings) names += (names.empty() ? "" : " | ") + name;
    throw UsageError("--chat-template " + chat_template + ": expected " + names);
  }
  if (args.get_switch("--generate")) return run_generation_eval(args, model_flags);
  for (const char* flag : {"--max-tokens", "--limit", "--out"}) {
    if (args.has(flag)) throw UsageError(std::string(flag) + " needs --generate");
  }
  const bool has_ctx = args.has("--ctx");
  const int64_t ctx = has_ctx ? args.get_int("--ctx") : 0;
  if (has_ctx && ctx < 2) throw UsageError("--ctx must be at least 2");

  const AdaptedModel adapted = load_adapted_model(model_flags, std::cout);
  const BaseModel& base = adapted.base;
  const LinearAdapters* applied = adapted.applied();

  EvalResult result;
  if (has_ctx && !data::is_jsonl_path(data_path)) {
    const std::vector<int32_t> tokens =
        base.tokenizer->encode(data::read_text_file(data_path), /*add_bos=*/true);
    const auto chunks = data::perplexity_chunks(tokens, ctx, base.tokenizer->bos());
    std::cout << "data: " << data_path << ": " << tokens.size() << " tokens, " << chunks.size()
              << " chunks of " << ctx << " (second half of each scored)\n";
    result = evaluate_chunks(*base.model, applied, chunks, batch_size);
  } else {
    const std::optional<ChatFormat> chat =
        data::choose_chat_format(chat_template, *base.tokenizer, model_flags.model);
    const std::vector<data::Example> examples =
        data::tokenize_records(*base.tokenizer, data::read_records(data_path), chat);
    data::BatchOptions options;
    options.mode = data::BatchMode::padding;
    options.batch_size = batch_size;
    options.seq_len = has_ctx ? ctx : std::min(base.model->config().context_length, kDefaultEvalSeqLen);
    options.pad_token = base.tokenizer->eos();
    std::cout << "data: " << data_path << ": " << examples.size() << " records, up to "
              << options.seq_len << " tokens each\n";
    result = evaluate(*base.model, applied, data::eval_batches(examples, options));
  }
  char line[64];
  std::snprintf(line, sizeof line, "%.4f", result.perplexity());
  std::cout << "scored tokens: " << result.n_scored << "\n";
  std::cout << "perplexity: " << line << std::endl;
  return 0;
}

}  // namespace cleave::cli
