#include "cli/eval_generate.h"

#include <algorithm>
#include <cstdio>
#include <iostream>
#include <optional>

#include "client/dataset.h"
#include "client/generation_metrics.h"
#include "model/chat_template.h"
#include "model/generate.h"
#include "model/utf8.h"
#include "util/atomic_file.h"
#include "util/json.h"

namespace cleave::cli {
namespace {

// What a completion of `prompt` is trained to follow, and the token it is
// trained to end with: BOS + prompt and EOS without a chat format, the
// format's user turn and assistant header and its end-of-turn token with
// one. Read off the training example of an empty completion, so generation
// sees exactly the context training did (client/dataset_tokenize.cpp).
struct GenerationPrompt {
  std::vector<TokenId> context;
  TokenId stop;
};

GenerationPrompt generation_prompt(const Tokenizer &tokenizer,
                                   const std::string &prompt,
                                   std::optional<ChatFormat> chat) {
  data::Record record;
  record.prompt = prompt;
  record.has_prompt = true;
  const data::Example example = data::tokenize_record(tokenizer, record, chat);
  const auto first_trained =
      std::find(example.loss_mask.begin(), example.loss_mask.end(), uint8_t{1});
  if (first_trained == example.loss_mask.end()) {
    throw std::runtime_error("prompt has no trained completion position: " +
                             prompt);
  }
  const auto position =
      static_cast<size_t>(first_trained - example.loss_mask.begin());
  return {std::vector<TokenId>(example.tokens.begin(),
                               example.tokens.begin() + position + 1),
          example.tokens[position + 1]};
}

// Malformed UTF-8 (a byte-level piece cut off mid-character by the token
// limit, or bytes a small model strings together) as U+FFFD, one for each
// byte, so the output is text and the --out file JSON.
std::string well_formed_utf8(const std::string &text) {
  std::string out;
  const auto *bytes = reinterpret_cast<const unsigned char *>(text.data());
  for (size_t i = 0; i < text.size();) {
    const size_t length = valid_utf8_length(bytes + i, text.size() - i);
    if (length == 0) {
      out += "\xEF\xBF\xBD";
      ++i;
    } else {
      out.append(text, i, length);
      i += length;
    }
  }
  return out;
}

// The generated text as one output line, as the E2E script reads outputs:
// up to the first newline, without surrounding whitespace.
std::string first_line(const std::string &text) {
  std::string line = well_formed_utf8(text.substr(0, text.find('\n')));
  const size_t begin = line.find_first_not_of(" \t\r");
  if (begin == std::string::npos)
    return "";
  const size_t end = line.find_last_not_of(" \t\r");
  return line.substr(begin, end - begin + 1);
}

std::string four_places(double value) {
  char text[64];
  std::snprintf(text, sizeof text, "%.4f", value);
  return text;
}

} // namespace

ArgParser &add_generation_eval_flags(ArgParser &parser) {
  return parser
      .toggle("--generate", "greedy-decode from each distinct prompt of the "
                            "JSONL and print BLEU, NIST, ROUGE-L and "
                            "CIDEr-D against all completions of that prompt "
                            "(E2E NLG Challenge metrics)")
      .value("--max-tokens", "N",
             "with --generate: new tokens per prompt at most; stops at EOS")
      .defaults_to(64)
      .value("--limit", "N",
             "with --generate: score only the first N distinct prompts")
      .value("--out", "FILE.jsonl",
             "with --generate: write each prompt, generation and references");
}

int run_generation_eval(const ParsedArgs &args, const ModelFlags &model_flags) {
  const std::string data_path = args.require("--data");
  if (!data::is_jsonl_path(data_path)) {
    throw UsageError("--generate needs a JSONL file of {\"prompt\", "
                     "\"completion\"} records, got " +
                     data_path);
  }
  if (args.has("--ctx"))
    throw UsageError("--ctx does not apply to --generate (see --max-tokens)");
  SamplingOptions options;
  options.temperature = 0; // greedy
  options.max_new_tokens = args.get_int("--max-tokens");
  if (options.max_new_tokens <= 0)
    throw UsageError("--max-tokens must be > 0");
  const int64_t limit = args.has("--limit") ? args.get_int("--limit") : 0;
  if (args.has("--limit") && limit <= 0)
    throw UsageError("--limit must be > 0");
  const std::optional<std::string> out_path = args.get("--out");
  const std::string chat_template = args.require("--chat-template");

  std::vector<data::ReferenceGroup> groups =
      data::group_references(data::read_records(data_path));
  const size_t in_file = groups.size();
  if (limit > 0 && static_cast<size_t>(limit) < groups.size())
    groups.resize(limit);
  size_t references = 0;
  for (const auto &group : groups)
    references += group.references.size();

  const AdaptedModel adapted = load_adapted_model(model_flags, std::cout);
  const BaseModel &base = adapted.base;
  const std::optional<ChatFormat> chat = data::choose_chat_format(
      chat_template, *base.tokenizer, model_flags.model);
  std::cout << "data: " << data_path << ": " << groups.size() << " prompts (of "
            << in_file << "), " << references << " references; greedy, up to "
            << options.max_new_tokens << " tokens each" << std::endl;

  std::vector<data::ScoredText> corpus;
  corpus.reserve(groups.size());
  const size_t report_every = std::max<size_t>(1, groups.size() / 20);
  for (const data::ReferenceGroup &group : groups) {
    const GenerationPrompt prompt =
        generation_prompt(*base.tokenizer, group.prompt, chat);
    std::vector<TokenId> generated = generate(
        *base.model, adapted.applied(), prompt.context, prompt.stop, options);
    if (!generated.empty() && generated.back() == prompt.stop)
      generated.pop_back();
    corpus.push_back(
        {first_line(base.tokenizer->decode(generated)), group.references});
    if (corpus.size() % report_every == 0 || corpus.size() == groups.size()) {
      std::cerr << "generated " << corpus.size() << "/" << groups.size()
                << " prompts" << std::endl;
    }
  }

  if (out_path) {
    std::string lines;
    for (size_t i = 0; i < corpus.size(); ++i) {
      json::Value line = json::Value::object();
      line.set("prompt", groups[i].prompt);
      line.set("generation", corpus[i].hypothesis);
      json::Value refs = json::Value::array();
      for (const std::string &reference : corpus[i].references)
        refs.push_back(reference);
      line.set("references", std::move(refs));
      lines += line.dump() + "\n";
    }
    write_file_atomically(*out_path, lines);
    std::cout << "generations: " << *out_path << "\n";
  }

  const data::GenerationScores scores = data::score_generations(corpus);
  std::cout << "nist: " << four_places(scores.nist) << "\n";
  std::cout << "rouge_l: " << four_places(scores.rouge_l) << "\n";
  std::cout << "cider: " << four_places(scores.cider) << "\n";
  std::cout << "bleu: " << four_places(scores.bleu) << std::endl;
  return 0;
}

} // namespace cleave::cli
